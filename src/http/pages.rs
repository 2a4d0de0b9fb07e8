//! Server-rendered pages (askama templates in `templates/`).

use askama::Template;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use time::OffsetDateTime;

use super::AppState;
use super::error::ApiError;
use super::extract::PathParam;
use crate::domain::EventId;

struct EventCard {
    id: String,
    name: String,
    venue: String,
    starts_at: String,
    seats_available: u64,
    seats_total: u64,
}

#[derive(Template)]
#[template(path = "home.html")]
struct Home {
    events: Vec<EventCard>,
}

/// Events on sale or opening soon, soonest first.
pub async fn home(State(state): State<AppState>) -> impl IntoResponse {
    let now = OffsetDateTime::now_utc();
    let events = state
        .catalog
        .all()
        .iter()
        .filter(|e| e.spec.starts_at > now)
        .map(|e| EventCard {
            id: e.id().to_string(),
            name: e.spec.name.clone(),
            venue: e.spec.venue.clone(),
            starts_at: e.spec.starts_at.format(&time::format_description::well_known::Rfc3339).unwrap_or_default(),
            seats_available: state.booking.seats_available(e),
            seats_total: e.spec.seats_total(),
        })
        .collect();
    render(&Home { events })
}

#[derive(Template)]
#[template(path = "waiting.html")]
struct Waiting {
    id: String,
    name: String,
    venue: String,
}

#[derive(Template)]
#[template(path = "seats.html")]
struct Seats {
    id: String,
    name: String,
    max_seats_per_user: u32,
}

#[derive(Template)]
#[template(path = "admin.html")]
struct Admin;

#[derive(Template)]
#[template(path = "not_found.html")]
struct NotFound;

/// An event's page, or the page saying there is no such event (also for a path that does not decode).
fn event_page(
    state: &AppState,
    id: Result<PathParam, ApiError>,
    page: impl FnOnce(&crate::domain::Event) -> Response,
) -> Response {
    let event = id.ok().and_then(|PathParam(id)| EventId::parse(&id).ok()).and_then(|id| state.catalog.get(&id));
    match event {
        Some(event) => page(&event),
        None => (StatusCode::NOT_FOUND, render(&NotFound)).into_response(),
    }
}

/// The waiting room: join, live position, then on to the seat map.
pub async fn waiting(State(state): State<AppState>, id: Result<PathParam, ApiError>) -> Response {
    event_page(&state, id, |e| {
        render(&Waiting { id: e.id().to_string(), name: e.spec.name.clone(), venue: e.spec.venue.clone() })
    })
}

/// The seat map: pick, hold, pay, confirmation.
pub async fn seats(State(state): State<AppState>, id: Result<PathParam, ApiError>) -> Response {
    event_page(&state, id, |e| {
        render(&Seats {
            id: e.id().to_string(),
            name: e.spec.name.clone(),
            max_seats_per_user: e.spec.max_seats_per_user,
        })
    })
}

/// The operator's dashboard; it signs in with the admin token in the browser.
pub async fn admin() -> Response {
    render(&Admin)
}

/// The pages' scripts and stylesheet, compiled into the binary: no build step,
/// nothing loaded from other hosts.
pub async fn asset(PathParam(file): PathParam) -> Response {
    let (content_type, body) = match file.as_str() {
        "anteroom.css" => ("text/css; charset=utf-8", include_str!("../../static/anteroom.css")),
        "common.js" => ("text/javascript; charset=utf-8", include_str!("../../static/common.js")),
        "waiting.js" => ("text/javascript; charset=utf-8", include_str!("../../static/waiting.js")),
        "seats.js" => ("text/javascript; charset=utf-8", include_str!("../../static/seats.js")),
        "admin.js" => ("text/javascript; charset=utf-8", include_str!("../../static/admin.js")),
        _ => return ApiError::NotFound.into_response(),
    };
    ([(header::CONTENT_TYPE, content_type), (header::CACHE_CONTROL, "no-cache")], body).into_response()
}

fn render(page: &impl Template) -> Response {
    match page.render() {
        Ok(html) => Html(html).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "a page failed to render");
            (StatusCode::INTERNAL_SERVER_ERROR, "the page could not be rendered").into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_home_page_lists_events_with_escaped_names() {
        let page = Home {
            events: vec![EventCard {
                id: "rock".into(),
                name: "Rock <Night>".into(),
                venue: "Arena".into(),
                starts_at: "2027-06-01T19:00:00Z".into(),
                seats_available: 150,
                seats_total: 200,
            }],
        };
        let html = page.render().unwrap();
        assert!(html.contains("Rock &#60;Night&#62;") || html.contains("Rock &lt;Night&gt;"), "{html}");
        assert!(html.contains("/events/rock"));
        assert!(html.contains("150 of 200"));
    }

    #[test]
    fn the_home_page_says_when_nothing_is_on_sale() {
        let html = Home { events: vec![] }.render().unwrap();
        assert!(html.contains("No events are on sale"));
    }

    #[test]
    fn the_waiting_room_carries_its_event_and_loads_its_script() {
        let html = Waiting { id: "rock".into(), name: "Rock & Roll".into(), venue: "Arena".into() }.render().unwrap();
        assert!(html.contains(r#"data-event="rock""#));
        assert!(html.contains("Rock &#38; Roll") || html.contains("Rock &amp; Roll"), "{html}");
        assert!(html.contains(r#"<script src="/static/waiting.js" defer>"#));
        assert!(html.contains(r#"<script src="/static/common.js" defer>"#));
        assert!(html.contains(r#"role="progressbar""#));
    }

    #[test]
    fn the_seat_map_states_the_limit_and_the_test_card() {
        let html = Seats { id: "rock".into(), name: "Rock".into(), max_seats_per_user: 4 }.render().unwrap();
        assert!(html.contains(r#"<strong id="limit">4</strong>"#));
        assert!(html.contains("4242 4242 4242 4242"));
        assert!(html.contains(r#"aria-label="Seat map""#));
    }

    #[test]
    fn pages_carry_no_inline_script() {
        let pages = [
            Waiting { id: "a".into(), name: "A".into(), venue: "V".into() }.render().unwrap(),
            Seats { id: "a".into(), name: "A".into(), max_seats_per_user: 2 }.render().unwrap(),
            Admin.render().unwrap(),
            Home { events: vec![] }.render().unwrap(),
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
