//! The gate for sites Anteroom did not build: the check a reverse proxy asks
//! before it lets a request through, and the hop that takes an admitted visitor
//! back to the site with the pass.
//!
//! The check verifies the pass's signature locally, with the event from the
//! in-process catalog: it never touches Redis, RabbitMQ or the database, so a
//! proxy can ask it on every request.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use utoipa::IntoParams;

use super::AppState;
use super::error::ApiError;
use super::events::find;
use super::extract::PathParam;
use super::i18n::Lang;
use super::openapi;
use super::pages::{checked_return, event_page};
use crate::domain::gate::{
    CookieScope, MAX_RETURN_TO_BYTES, PASS_PARAMETER, pass_admits, strip_pass,
};
use crate::domain::{Event, EventId, unix_ms};
use crate::ports::BackendError;

/// The header a proxy names the protected request's full URL in (nginx:
/// `proxy_set_header X-Original-URL $scheme://$http_host$request_uri`).
const ORIGINAL_URL: &str = "x-original-url";

/// Answers that depend on credentials are never stored by a cache on the way.
fn no_store() -> (HeaderName, HeaderValue) {
    (header::CACHE_CONTROL, HeaderValue::from_static("no-store"))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct GateQuery {
    /// The protected address to come back to after the line, for the Location of a 401. Absent: the X-Original-URL header, if any
    return_to: Option<String>,
}

/// The passes a request presents: `Authorization: Bearer`, then every
/// `anteroom_pass` cookie (a browser may hold one per scope).
fn presented_passes(headers: &HeaderMap) -> impl Iterator<Item = &str> {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, pass)| pass.trim());
    let cookies = headers
        .get_all(header::COOKIE)
        .into_iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .filter(|(name, _)| *name == PASS_PARAMETER)
        .map(|(_, pass)| pass.trim_matches('"'));
    bearer.into_iter().chain(cookies)
}

/// Whether `raw` is a pass that lets its holder in to `event` now.
fn admits(state: &AppState, event: &EventId, raw: &str) -> bool {
    let now = unix_ms(state.clock.now());
    state
        .line
        .signer()
        .verify_pass(raw)
        .is_some_and(|pass| pass_admits(&pass, event, now))
}

/// Lets a request through (204) when it carries a valid pass for the event, in
/// the cookie anteroom_pass or as Authorization: Bearer (any one presented that is valid will do). Otherwise 401 and a Location to
/// the event's waiting room, with return_to when the request named where it was going (the query's return_to, else X-Original-URL). A
/// signature check only: no server is asked.
#[utoipa::path(
    get,
    path = "/api/gate/{event_id}",
    operation_id = "checkGate",
    summary = "The reverse proxy's check: does this request carry a valid pass for the event?",
    tag = "queue",
    params(
        ("event_id" = EventId, Path, description = "The event's id"),
        GateQuery,
        ("X-Original-URL" = Option<String>, Header, description = "The protected request's full URL, as a proxy reports it: the return_to of the Location when the query names none"),
        ("Cookie" = Option<String>, Header, description = "anteroom_pass=<pass>"),
    ),
    security((), ("pass" = [])),
    responses(
        (status = 204, description = "The pass is valid for this event now: let the request through",
            headers(("Cache-Control" = String, description = "no-store"))),
        (status = 401, response = inline(openapi::GateRefused)),
        (status = 404, response = openapi::NotFound),
    )
)]
pub async fn check(
    State(state): State<AppState>,
    PathParam(id): PathParam,
    query: Result<Query<GateQuery>, QueryRejection>,
    headers: HeaderMap,
) -> Response {
    let event = match find(&state, &id) {
        Ok(event) => event,
        Err(unknown) => return unknown.into_response(),
    };
    if presented_passes(&headers).any(|raw| admits(&state, event.id(), raw)) {
        return (StatusCode::NO_CONTENT, [no_store()]).into_response();
    }
    let named = query.ok().and_then(|Query(q)| q.return_to).or_else(|| {
        headers
            .get(ORIGINAL_URL)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    });
    let mut line = state.public_link(&format!("/events/{}", event.id()));
    if let Some(back) = named.filter(|raw| !raw.is_empty() && raw.len() <= MAX_RETURN_TO_BYTES) {
        let back: String =
            url::form_urlencoded::byte_serialize(strip_pass(&back).as_bytes()).collect();
        line = format!("{line}?return_to={back}");
    }
    let mut refused = ApiError::InvalidPass.into_response();
    let headers = refused.headers_mut();
    // Percent-encoded above: always a valid header value.
    if let Ok(location) = HeaderValue::try_from(line) {
        headers.insert(header::LOCATION, location);
    }
    let (name, value) = no_store();
    headers.insert(name, value);
    refused
}

#[derive(Deserialize, IntoParams, Default)]
#[into_params(parameter_in = Query)]
pub struct ReturnQuery {
    /// The address to go back to: an http(s) address on one of the event's return_origins
    return_to: Option<String>,
    /// The pass of an admitted poll of GET /api/queue/{token}
    anteroom_pass: Option<String>,
}

/// The waiting room's last hop: with a pass valid for the event, 303 to return_to with anteroom_pass added to its query, and the pass in the cookie anteroom_pass when this deployment (ANTEROOM_PUBLIC_URL) and the site share the host or a parent domain. A pass that is not valid (any more): 303 back to the line, with the same return_to. A return_to the event does not list: the page that says why (400), never a redirect.
#[utoipa::path(
    get,
    path = "/events/{id}/return",
    operation_id = "returnToSite",
    summary = "Page: back to the protected site with the pass",
    tag = "pages",
    params(("id" = EventId, Path, description = "The event's id"), Lang, ReturnQuery),
    responses(
        (status = 303, description = "To return_to with the pass (and its cookie), or back to the line when the pass is not valid",
            headers(
                ("Location" = String, description = "return_to with anteroom_pass=<pass> in its query, or /events/{id}?return_to=…"),
                ("Set-Cookie" = String, description = "anteroom_pass=<pass>; Path=/; Max-Age=<the pass's remaining seconds>; Secure; HttpOnly; SameSite=Lax (and Domain=<the shared parent domain>), when the site shares this deployment's host or a parent domain"),
            )),
        (status = 400, response = openapi::ReturnRefused),
        (status = 404, response = openapi::PageNotFound),
    )
)]
pub async fn back(
    State(state): State<AppState>,
    lang: Lang,
    id: Result<PathParam, ApiError>,
    query: Result<Query<ReturnQuery>, QueryRejection>,
) -> Response {
    event_page(&state, &lang, id, |event| {
        let query = query.map(|Query(q)| q).unwrap_or_default();
        let back = match checked_return(&lang, event, query.return_to.as_deref().unwrap_or("")) {
            Ok(back) => back,
            Err(refused) => return *refused,
        };
        let pass = query
            .anteroom_pass
            .as_deref()
            .and_then(|raw| Some((raw, state.line.signer().verify_pass(raw)?)));
        let now = unix_ms(state.clock.now());
        let Some((raw, pass)) = pass.filter(|(_, pass)| pass_admits(pass, event.id(), now)) else {
            return to_the_line(event, back.as_str());
        };
        let mut response = see_other(&back.with_pass(raw));
        if let Some(scope) = back.cookie_scope(&state.public_url) {
            let cookie = pass_cookie(raw, (pass.expires_at_ms - now) / 1000, &scope);
            if let Ok(cookie) = HeaderValue::try_from(cookie) {
                response.headers_mut().insert(header::SET_COOKIE, cookie);
            }
        }
        response
    })
}

/// The cookie that carries a pass to a site in `scope`, gone when the pass ends.
fn pass_cookie(pass: &str, seconds_left: i64, scope: &CookieScope) -> String {
    let domain = match scope {
        CookieScope::HostOnly => String::new(),
        CookieScope::Domain(domain) => format!("; Domain={domain}"),
    };
    format!(
        "{PASS_PARAMETER}={pass}; Path=/; Max-Age={}; Secure; HttpOnly; SameSite=Lax{domain}",
        seconds_left.max(0)
    )
}

/// Back into the event's line, to come back to `return_to` once admitted again.
fn to_the_line(event: &Event, return_to: &str) -> Response {
    let back: String = url::form_urlencoded::byte_serialize(return_to.as_bytes()).collect();
    see_other(&format!("/events/{}?return_to={back}", event.id()))
}

fn see_other(location: &str) -> Response {
    match HeaderValue::try_from(location) {
        Ok(location) => (
            StatusCode::SEE_OTHER,
            [(header::LOCATION, location), no_store()],
        )
            .into_response(),
        // A checked URL serialises to a valid header value; anything else is a bug of ours.
        Err(e) => ApiError::from(BackendError::bug_caused_by(
            "a redirect's Location is not a header value",
            e,
        ))
        .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passes_come_from_the_bearer_then_every_pass_cookie() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer b.1"),
        );
        headers.append(
            header::COOKIE,
            HeaderValue::from_static("lang=de; anteroom_pass=c.1; anteroom_passport=x"),
        );
        headers.append(
            header::COOKIE,
            HeaderValue::from_static("anteroom_pass=\"c.2\""),
        );
        assert_eq!(
            presented_passes(&headers).collect::<Vec<_>>(),
            ["b.1", "c.1", "c.2"]
        );
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic x"));
        assert_eq!(
            presented_passes(&headers).collect::<Vec<_>>(),
            ["c.1", "c.2"]
        );
        assert_eq!(presented_passes(&HeaderMap::new()).count(), 0);
    }

    #[test]
    fn the_pass_cookie_is_scoped_and_ends_with_the_pass() {
        assert_eq!(
            pass_cookie("p.q", 90, &CookieScope::Domain("shop.example".into())),
            "anteroom_pass=p.q; Path=/; Max-Age=90; Secure; HttpOnly; SameSite=Lax; Domain=shop.example"
        );
        assert_eq!(
            pass_cookie("p.q", -5, &CookieScope::HostOnly),
            "anteroom_pass=p.q; Path=/; Max-Age=0; Secure; HttpOnly; SameSite=Lax"
        );
    }
}
