//! Server-rendered pages (askama templates in `templates/`).

use askama::Template;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use time::OffsetDateTime;

use super::AppState;
use super::error::ApiError;
use super::extract::PathParam;
use super::i18n::{Lang, Texts};
use super::openapi;
use serde::Deserialize;
use utoipa::IntoParams;

use crate::domain::event::{CURRENCIES, SaleState};
use crate::domain::gate::Refusal;
use crate::domain::{Event, EventId, ReturnTo};
use time::format_description::well_known::Rfc3339;

/// One event on the home page. Times and prices carry a readable fallback the
/// page's script replaces with the visitor's own format and time zone.
struct EventCard {
    id: String,
    name: String,
    venue: String,
    starts_at: Instant,
    /// When the sale opens, while it has not.
    opens_at: Option<Instant>,
    state: SaleState,
    seats_available: u64,
    seats_total: u64,
    low: Price,
    high: Price,
}

/// An instant as `<time datetime>` takes it, and in words in UTC for a page without scripts.
struct Instant {
    rfc3339: String,
    in_utc: String,
}

impl Instant {
    fn of(at: OffsetDateTime) -> Self {
        let utc = at.to_offset(time::UtcOffset::UTC);
        let in_utc = utc
            .format(time::macros::format_description!(
                "[year]-[month]-[day] [hour]:[minute] UTC"
            ))
            .unwrap_or_default();
        Self {
            rfc3339: utc.format(&Rfc3339).unwrap_or_default(),
            in_utc,
        }
    }
}

/// A price in cents of a currency; shown as "99.00 EUR" until the script formats it for the visitor.
struct Price {
    cents: i64,
    currency: &'static str,
}

impl Price {
    fn plain(&self) -> String {
        format!(
            "{}.{:02} {}",
            self.cents / 100,
            self.cents % 100,
            self.currency
        )
    }
}

#[derive(Template)]
#[template(path = "home.html")]
struct Home {
    t: &'static Texts,
    events: Vec<EventCard>,
}

/// Events that have not started yet, soonest first, each with where its sale stands.
#[utoipa::path(
    get,
    path = "/",
    operation_id = "homePage",
    summary = "Page: events on sale",
    tag = "pages",
    params(Lang),
    responses((status = 200, response = openapi::HtmlPage))
)]
pub async fn home(State(state): State<AppState>, lang: Lang) -> Response {
    let now = state.clock.now();
    let events = state
        .catalog
        .all()
        .iter()
        .filter(|e| e.spec.starts_at > now)
        .map(|e| {
            let (low, high) = e.price_range();
            let currency = e.spec.currency.code();
            EventCard {
                id: e.id().to_string(),
                name: e.spec.name.clone(),
                venue: e.spec.venue.clone(),
                starts_at: Instant::of(e.spec.starts_at),
                opens_at: e
                    .spec
                    .on_sale_at
                    .filter(|_| !e.is_on_sale(now))
                    .map(Instant::of),
                state: e.sale_state(now, state.booking.sold_out(e)),
                seats_available: state.booking.seats_available(e),
                seats_total: e.spec.seats_total(),
                low: Price {
                    cents: low,
                    currency,
                },
                high: Price {
                    cents: high,
                    currency,
                },
            }
        })
        .collect();
    render(
        &lang,
        &Home {
            t: lang.texts,
            events,
        },
    )
}

#[derive(Template)]
#[template(path = "waiting.html")]
struct Waiting {
    t: &'static Texts,
    id: String,
    name: String,
    venue: String,
    /// The page asks for an invitation code before joining.
    invitation_only: bool,
    /// Where an admitted visitor goes instead of the seat map.
    return_to: Option<ReturnView>,
}

/// A checked return address, as the waiting room shows and follows it.
struct ReturnView {
    url: String,
    host: String,
}

/// The waiting room's query: where to go once admitted.
#[derive(Deserialize, IntoParams, Default)]
#[into_params(parameter_in = Query)]
pub struct WaitingQuery {
    /// Once admitted, the visitor is sent to this address with the pass added as the query parameter anteroom_pass (and, when the site shares a parent domain with ANTEROOM_PUBLIC_URL, the cookie anteroom_pass), through GET /events/{id}/return. It must be an http(s) address on one of the event's return_origins. Absent: on to the seat map
    return_to: Option<String>,
}

#[derive(Template)]
#[template(path = "return_refused.html")]
struct ReturnRefusedPage {
    t: &'static Texts,
    id: String,
    name: String,
    why: Refusal,
}

/// `raw` checked against the event's return origins; refused: the page that says why (`400`),
/// boxed because a response is large beside the address.
pub(super) fn checked_return(
    lang: &Lang,
    event: &Event,
    raw: &str,
) -> Result<ReturnTo, Box<Response>> {
    ReturnTo::parse(raw, &event.spec.return_origins).map_err(|why| {
        tracing::info!(event = %event.id(), ?why, "a return address refused");
        let page = ReturnRefusedPage {
            t: lang.texts,
            id: event.id().to_string(),
            name: event.spec.name.clone(),
            why,
        };
        Box::new((StatusCode::BAD_REQUEST, render(lang, &page)).into_response())
    })
}

#[derive(Template)]
#[template(path = "seats.html")]
struct Seats {
    t: &'static Texts,
    id: String,
    name: String,
    max_seats_per_user: u32,
}

#[derive(Template)]
#[template(path = "admin.html")]
struct Admin {
    t: &'static Texts,
    /// The currencies the create form offers: the ones the API accepts.
    currencies: &'static [&'static str],
}

#[derive(Template)]
#[template(path = "not_found.html")]
struct NotFound {
    t: &'static Texts,
}

/// An event's page, or the page saying there is no such event (also for a path that does not decode).
pub(super) fn event_page(
    state: &AppState,
    lang: &Lang,
    id: Result<PathParam, ApiError>,
    page: impl FnOnce(&Event) -> Response,
) -> Response {
    let event = id
        .ok()
        .and_then(|PathParam(id)| EventId::parse(&id).ok())
        .and_then(|id| state.catalog.get(&id));
    match event {
        Some(event) => page(&event),
        None => (
            StatusCode::NOT_FOUND,
            render(lang, &NotFound { t: lang.texts }),
        )
            .into_response(),
    }
}

/// The waiting room: join, live position, then on to the seat map, or back to the site named by return_to.
#[utoipa::path(
    get,
    path = "/events/{id}",
    operation_id = "waitingRoomPage",
    summary = "Page: the waiting room (join, live position, progress and ETA, then on to the seat map or back to return_to)",
    tag = "pages",
    params(("id" = EventId, Path, description = "The event's id"), Lang, WaitingQuery),
    responses(
        (status = 200, response = openapi::HtmlPage),
        (status = 400, response = openapi::ReturnRefused),
        (status = 404, response = openapi::PageNotFound),
    )
)]
pub async fn waiting(
    State(state): State<AppState>,
    lang: Lang,
    id: Result<PathParam, ApiError>,
    query: Result<Query<WaitingQuery>, QueryRejection>,
) -> Response {
    event_page(&state, &lang, id, |e| {
        let return_to = match query.map(|q| q.0).unwrap_or_default().return_to {
            None => None,
            Some(raw) => match checked_return(&lang, e, &raw) {
                Ok(back) => Some(ReturnView {
                    url: back.as_str().to_owned(),
                    host: back.site(),
                }),
                Err(refused) => return *refused,
            },
        };
        let page = Waiting {
            t: lang.texts,
            id: e.id().to_string(),
            name: e.spec.name.clone(),
            venue: e.spec.venue.clone(),
            invitation_only: e.spec.access == crate::domain::Access::Codes,
            return_to,
        };
        render(&lang, &page)
    })
}

/// The seat map: pick, hold, pay, confirmation.
#[utoipa::path(
    get,
    path = "/events/{id}/seats",
    operation_id = "seatMapPage",
    summary = "Page: the seat map (pick, hold, timer, pay, confirmation)",
    tag = "pages",
    params(("id" = EventId, Path, description = "The event's id"), Lang),
    responses((status = 200, response = openapi::HtmlPage), (status = 404, response = openapi::PageNotFound))
)]
pub async fn seats(
    State(state): State<AppState>,
    lang: Lang,
    id: Result<PathParam, ApiError>,
) -> Response {
    event_page(&state, &lang, id, |e| {
        let page = Seats {
            t: lang.texts,
            id: e.id().to_string(),
            name: e.spec.name.clone(),
            max_seats_per_user: e.spec.max_seats_per_user,
        };
        render(&lang, &page)
    })
}

/// The operator's dashboard; it signs in with the admin token in the browser.
#[utoipa::path(
    get,
    path = "/admin",
    operation_id = "adminPage",
    summary = "Page: live dashboard of every event's stats, with admission rate and pause controls",
    tag = "pages",
    params(Lang),
    responses((status = 200, response = openapi::HtmlPage))
)]
pub async fn admin(lang: Lang) -> Response {
    render(
        &lang,
        &Admin {
            t: lang.texts,
            currencies: CURRENCIES,
        },
    )
}

/// The pages' scripts and stylesheet, compiled into the binary: no build step,
/// nothing loaded from other hosts.
#[utoipa::path(
    get,
    path = "/static/{file}",
    operation_id = "asset",
    summary = "The pages' scripts and stylesheet",
    tag = "pages",
    params(("file" = String, Path, description = "anteroom.css, common.js, waiting.js, pow.js (the join challenge's worker), seatcanvas.js, seats.js, admin.js or home.js")),
    responses(
        (status = 200, description = "The file; revalidated before each use",
            content(
                (String = "text/css"),
                (String = "text/javascript"),
            ),
            headers(("Cache-Control" = String, description = "no-cache"))),
        (status = 404, response = openapi::NotFound),
    )
)]
pub async fn asset(PathParam(file): PathParam) -> Response {
    let (content_type, body) = match file.as_str() {
        "anteroom.css" => (
            "text/css; charset=utf-8",
            include_str!("../../static/anteroom.css"),
        ),
        "common.js" => (
            "text/javascript; charset=utf-8",
            include_str!("../../static/common.js"),
        ),
        "waiting.js" => (
            "text/javascript; charset=utf-8",
            include_str!("../../static/waiting.js"),
        ),
        "pow.js" => (
            "text/javascript; charset=utf-8",
            include_str!("../../static/pow.js"),
        ),
        "seatcanvas.js" => (
            "text/javascript; charset=utf-8",
            include_str!("../../static/seatcanvas.js"),
        ),
        "seats.js" => (
            "text/javascript; charset=utf-8",
            include_str!("../../static/seats.js"),
        ),
        "admin.js" => (
            "text/javascript; charset=utf-8",
            include_str!("../../static/admin.js"),
        ),
        "home.js" => (
            "text/javascript; charset=utf-8",
            include_str!("../../static/home.js"),
        ),
        _ => return ApiError::NotFound.into_response(),
    };
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

/// A page in the visitor's language; a language just chosen with the switch is remembered.
pub(super) fn render(lang: &Lang, page: &impl Template) -> Response {
    match page.render() {
        Ok(html) => {
            let mut response = Html(html).into_response();
            if let Some(cookie) = lang.remember() {
                response.headers_mut().insert(header::SET_COOKIE, cookie);
            }
            response.headers_mut().insert(
                header::VARY,
                header::HeaderValue::from_static("accept-language, cookie"),
            );
            response
        }
        Err(e) => {
            tracing::error!(error = %e, "a page failed to render");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "the page could not be rendered",
            )
                .into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::i18n::LANGUAGES;

    fn en() -> &'static Texts {
        &LANGUAGES[0]
    }

    fn card(state: SaleState) -> EventCard {
        EventCard {
            id: "rock".into(),
            name: "Rock <Night>".into(),
            venue: "Arena".into(),
            starts_at: Instant::of(time::macros::datetime!(2027-06-01 21:00 +02:00)),
            opens_at: None,
            state,
            seats_available: 150,
            seats_total: 200,
            low: Price {
                cents: 2500,
                currency: "USD",
            },
            high: Price {
                cents: 9900,
                currency: "USD",
            },
        }
    }

    #[test]
    fn the_home_page_lists_events_with_escaped_names() {
        let html = Home {
            t: en(),
            events: vec![card(SaleState::OnSale)],
        }
        .render()
        .unwrap();
        assert!(
            html.contains("Rock &#60;Night&#62;") || html.contains("Rock &lt;Night&gt;"),
            "{html}"
        );
        assert!(html.contains("/events/rock"));
        assert!(html.contains("150 of 200"));
        assert!(
            html.contains(r#"<time datetime="2027-06-01T19:00:00Z">2027-06-01 19:00 UTC</time>"#),
            "{html}"
        );
        assert!(
            html.contains("25.00 USD") && html.contains("99.00 USD"),
            "{html}"
        );
        assert!(html.contains(r#"<script src="/static/home.js" defer>"#));
    }

    #[test]
    fn the_home_page_says_where_each_sale_stands_and_offers_the_right_door() {
        let page = |state| {
            Home {
                t: en(),
                events: vec![card(state)],
            }
            .render()
            .unwrap()
        };
        let on_sale = page(SaleState::OnSale);
        assert!(
            on_sale.contains("On sale now") && on_sale.contains("Join the line"),
            "{on_sale}"
        );
        let paused = page(SaleState::Paused);
        assert!(
            paused.contains("Admission paused") && paused.contains("Join the line"),
            "{paused}"
        );
        let mut opening = card(SaleState::OpensLater);
        opening.opens_at = Some(Instant::of(time::macros::datetime!(2027-01-15 10:00 UTC)));
        let opens = Home {
            t: en(),
            events: vec![opening],
        }
        .render()
        .unwrap();
        assert!(
            opens.contains("Join the early line")
                && opens.contains(r#"datetime="2027-01-15T10:00:00Z""#)
        );
        let sold_out = page(SaleState::SoldOut);
        assert!(
            sold_out.contains("Sold out") && !sold_out.contains("/events/rock"),
            "{sold_out}"
        );
    }

    #[test]
    fn the_home_page_says_when_nothing_is_on_sale() {
        let html = Home {
            t: en(),
            events: vec![],
        }
        .render()
        .unwrap();
        assert!(html.contains("No events are on sale"));
    }

    #[test]
    fn the_waiting_room_carries_its_event_and_loads_its_script() {
        let html = Waiting {
            t: en(),
            id: "rock".into(),
            name: "Rock & Roll".into(),
            venue: "Arena".into(),
            invitation_only: false,
            return_to: None,
        }
        .render()
        .unwrap();
        assert!(html.contains(r#"data-event="rock""#));
        assert!(
            html.contains("Rock &#38; Roll") || html.contains("Rock &amp; Roll"),
            "{html}"
        );
        assert!(html.contains(r#"<script src="/static/waiting.js" defer>"#));
        assert!(html.contains(r#"<script src="/static/common.js" defer>"#));
        assert!(html.contains(r#"role="progressbar""#));
        assert!(
            !html.contains("data-access"),
            "an open event asks for no code"
        );
    }

    #[test]
    fn an_invitation_only_waiting_room_asks_for_the_code_with_a_label() {
        let html = Waiting {
            t: en(),
            id: "presale".into(),
            name: "Presale".into(),
            venue: "Arena".into(),
            invitation_only: true,
            return_to: None,
        }
        .render()
        .unwrap();
        assert!(html.contains(r#"data-access="codes""#), "{html}");
        // The input sits in its label, so that a screen reader names it.
        let label = html.find("Your invitation code").unwrap();
        let input = html.find(r#"id="code-input""#).unwrap();
        let closed = html[label..].find("</label>").unwrap() + label;
        assert!(label < input && input < closed, "{html}");
        assert!(html.contains(r#"aria-describedby="code-hint code-error""#));
    }

    #[test]
    fn the_seat_map_states_the_limit_and_the_test_card() {
        let html = Seats {
            t: en(),
            id: "rock".into(),
            name: "Rock".into(),
            max_seats_per_user: 4,
        }
        .render()
        .unwrap();
        assert!(html.contains("Pick up to 4 seats"), "{html}");
        assert!(html.contains("4242 4242 4242 4242"));
        assert!(html.contains(r#"aria-label="Seat map""#));
        assert!(html.contains(r#"aria-describedby="map-help""#));
        // The canvas view before the page's script, which uses it.
        let view = html.find(r#"<script src="/static/seatcanvas.js" defer>"#);
        let page = html.find(r#"<script src="/static/seats.js" defer>"#);
        assert!(view.is_some() && view < page, "{html}");
    }

    #[test]
    fn pages_carry_no_inline_script() {
        let pages = [
            Waiting {
                t: en(),
                id: "a".into(),
                name: "A".into(),
                venue: "V".into(),
                invitation_only: true,
                return_to: Some(ReturnView {
                    url: "https://shop.example/".into(),
                    host: "shop.example".into(),
                }),
            }
            .render()
            .unwrap(),
            Seats {
                t: en(),
                id: "a".into(),
                name: "A".into(),
                max_seats_per_user: 2,
            }
            .render()
            .unwrap(),
            Admin {
                t: en(),
                currencies: CURRENCIES,
            }
            .render()
            .unwrap(),
            Home {
                t: en(),
                events: vec![],
            }
            .render()
            .unwrap(),
        ];
        for html in pages {
            for (i, _) in html.match_indices("<script") {
                let tag = &html[i..html[i..].find('>').map_or(html.len(), |end| i + end)];
                assert!(tag.contains("src=\"/static/"), "an inline script: {tag}");
            }
            assert!(!html.contains(" onclick="), "an inline handler");
        }
    }
}
