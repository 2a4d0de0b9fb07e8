//! Server-rendered pages (askama templates in `templates/`).

use askama::Template;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse};
use time::OffsetDateTime;

use super::AppState;

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

pub async fn stylesheet() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], include_str!("../../static/anteroom.css"))
}

fn render(page: &impl Template) -> axum::response::Response {
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
}
