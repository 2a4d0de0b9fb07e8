//! The waiting room's API: join, short-poll, leave.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use super::AppState;
use super::error::ApiError;
use super::events::find;
use super::extract::{JsonBody, PathParam, RequestBody};
use super::limit::WithinClientRate;
use crate::domain::line::poll_after_ms;
use crate::domain::{Event, LogPosition, Pass, QueueToken, TokenStatus, from_unix_ms};
use crate::services::line::Standing;

const MAX_VISITOR_CHARS: usize = 64;

/// How far into the line's log an answer was read. A client sends back the
/// last one it got, so that whichever instance answers next has read at least
/// as much: behind a balancer, a position never goes up from one poll to the next.
pub static LOG_POSITION: HeaderName = HeaderName::from_static("anteroom-log-position");

#[derive(Deserialize)]
pub struct JoinBody {
    #[serde(default)]
    visitor: Option<String>,
}

impl RequestBody for JoinBody {
    const OBJECTS: &'static [&'static [&'static str]] = &[&[]];
}

/// What a join or a poll answers. Fields a state does not have are left out.
#[derive(Serialize)]
pub struct StatusBody {
    #[serde(skip_serializing_if = "Option::is_none")]
    token: Option<String>,
    state: &'static str,
    token_id: Uuid,
    #[serde(skip_serializing_if = "Option::is_none")]
    position: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    eta_seconds: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    eta_max_seconds: Option<u64>,
    /// What the wait is for: `rate`, `passes` (every pass is taken) or `paused`.
    #[serde(skip_serializing_if = "Option::is_none")]
    limited_by: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pass: Option<String>,
    #[serde(
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    pass_expires_at: Option<OffsetDateTime>,
    #[serde(
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    opens_at: Option<OffsetDateTime>,
    #[serde(skip_serializing_if = "Option::is_none")]
    poll_after_ms: Option<u64>,
    /// Sent as the [`LOG_POSITION`] header, not in the body.
    #[serde(skip)]
    read_up_to: Option<LogPosition>,
}

impl IntoResponse for StatusBody {
    fn into_response(self) -> Response {
        let header = self
            .read_up_to
            .as_ref()
            .and_then(|p| HeaderValue::try_from(p.to_string()).ok())
            .map(|value| [(LOG_POSITION.clone(), value)]);
        (header, Json(self)).into_response()
    }
}

impl StatusBody {
    fn new(state: &'static str, token_id: Uuid) -> Self {
        Self {
            token: None,
            state,
            token_id,
            position: None,
            eta_seconds: None,
            eta_max_seconds: None,
            limited_by: None,
            pass: None,
            pass_expires_at: None,
            opens_at: None,
            poll_after_ms: None,
            read_up_to: None,
        }
    }
}

pub async fn join(
    State(state): State<AppState>,
    _: WithinClientRate,
    PathParam(id): PathParam,
    JsonBody(body): JsonBody<JoinBody>,
) -> Result<(StatusCode, StatusBody), ApiError> {
    let event = find(&state, &id)?;
    if let Some(visitor) = &body.visitor
        && !(1..=MAX_VISITOR_CHARS).contains(&visitor.chars().count())
    {
        return Err(ApiError::InvalidRequest(format!(
            "visitor: must be 1 to {MAX_VISITOR_CHARS} characters"
        )));
    }
    if state.booking.sold_out(&event) {
        return Err(ApiError::SoldOut);
    }
    let joined = state.line.join(event.clone(), body.visitor).await?;
    let token = state.line.token_for(event.id(), joined.message);
    let mut answer = describe(&state, &event, &token, state.clock.now());
    answer.token = Some(state.line.signer().sign_token(&token));
    let status = if joined.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, answer))
}

pub async fn poll(
    State(state): State<AppState>,
    headers: HeaderMap,
    token: Result<PathParam, ApiError>,
) -> Result<StatusBody, ApiError> {
    let (token, event) = verify(&state, token)?;
    let last_read = headers
        .get(&LOG_POSITION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<LogPosition>().ok());
    if let Some(position) = last_read {
        state.line.read_up_to(&token.event, &position).await;
    }
    // Only in the moment after the sale opens, before this process has read the
    // pre-queue's close: without it a regular token's position would later go up.
    if !state.line.can_place(&token)
        && let Err(e) = state.line.catch_up(&event).await
    {
        tracing::debug!(error = %e, "could not read the log before placing a token");
    }
    Ok(describe(&state, &event, &token, state.clock.now()))
}

pub async fn leave(
    State(state): State<AppState>,
    token: Result<PathParam, ApiError>,
) -> Result<StatusBody, ApiError> {
    let (token, _) = verify(&state, token)?;
    state.line.leave(&token).await?;
    Ok(StatusBody::new("left", token.token_id))
}

/// A path that does not even decode is no token of ours either.
fn verify(
    state: &AppState,
    raw: Result<PathParam, ApiError>,
) -> Result<(QueueToken, Arc<Event>), ApiError> {
    let PathParam(raw) = raw.map_err(|_| ApiError::InvalidToken)?;
    let token = state
        .line
        .signer()
        .verify_token(&raw)
        .ok_or(ApiError::InvalidToken)?;
    let event = state
        .catalog
        .get(&token.event)
        .ok_or(ApiError::InvalidToken)?;
    Ok((token, event))
}

/// The answer for a token's current status.
fn describe(
    state: &AppState,
    event: &Event,
    token: &QueueToken,
    now: OffsetDateTime,
) -> StatusBody {
    let standing = state.line.standing(token, event, now);
    StatusBody {
        read_up_to: standing.read_up_to.clone(),
        ..status_body(state, event, token, standing, now)
    }
}

fn status_body(
    state: &AppState,
    event: &Event,
    token: &QueueToken,
    standing: Standing,
    now: OffsetDateTime,
) -> StatusBody {
    let admission = &event.spec.admission;
    let jitter = token.token_id.as_u64_pair().1;
    match standing.status {
        TokenStatus::Waiting { .. } | TokenStatus::PreQueue if state.booking.sold_out(event) => {
            StatusBody::new("sold_out", token.token_id)
        }
        TokenStatus::Waiting { position } => {
            let estimate = standing.estimate;
            let eta_seconds = estimate.map(|e| e.eta.seconds);
            StatusBody {
                position: Some(position),
                eta_seconds,
                eta_max_seconds: estimate.map(|e| e.eta.max_seconds),
                limited_by: estimate.map(|e| e.limited_by.as_str()),
                poll_after_ms: Some(poll_after_ms(
                    eta_seconds.unwrap_or(0),
                    admission.abandon_seconds,
                    jitter,
                )),
                ..StatusBody::new("waiting", token.token_id)
            }
        }
        TokenStatus::PreQueue => {
            let opens_at = event.spec.on_sale_at.unwrap_or(now);
            let until_open = (opens_at - now).whole_seconds().max(0) as u64;
            StatusBody {
                opens_at: Some(opens_at),
                poll_after_ms: Some(poll_after_ms(until_open, admission.abandon_seconds, jitter)),
                ..StatusBody::new("pre_queue", token.token_id)
            }
        }
        TokenStatus::Admitted { expires_at_ms } => {
            let pass = Pass {
                event: token.event.clone(),
                key: token.key,
                token_id: token.token_id,
                expires_at_ms,
            };
            StatusBody {
                pass: Some(state.line.signer().sign_pass(&pass)),
                pass_expires_at: from_unix_ms(expires_at_ms),
                poll_after_ms: Some(0),
                ..StatusBody::new("admitted", token.token_id)
            }
        }
        TokenStatus::Expired => StatusBody::new("expired", token.token_id),
        TokenStatus::Left => StatusBody::new("left", token.token_id),
    }
}
