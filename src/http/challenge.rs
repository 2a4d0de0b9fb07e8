//! The proof-of-work join challenge: fetch one, and check a join's solution.

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use time::OffsetDateTime;
use utoipa::ToSchema;

use super::AppState;
use super::error::ApiError;
use super::events::find;
use super::extract::PathParam;
use super::openapi::{self, UtcTime};
use crate::domain::challenge::{self, Challenge, Unsolved};
use crate::domain::{Event, EventId, Ticket, from_unix_ms, unix_ms};
use crate::ports::BackendError;

/// A challenge to solve before joining, at the event's current difficulty.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Challenge)]
pub struct ChallengeBody {
    /// Opaque, signed; send it back with the join, with a nonce that makes sha256(challenge + ":" + nonce) start with `bits` zero bits
    #[schema(min_length = 1)]
    pub challenge: String,
    /// Leading zero bits the solution's SHA-256 needs (0: any nonce solves it)
    #[schema(minimum = 0, maximum = 32)]
    pub bits: u8,
    /// The challenge buys no place after this
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = UtcTime)]
    pub expires_at: OffsetDateTime,
}

/// A fresh challenge for `event`, signed with the deployment's secret: the
/// server stores nothing until it is used.
pub(super) fn issue(state: &AppState, event: &Event) -> Result<ChallengeBody, ApiError> {
    let mut random = [0u8; 16];
    getrandom::fill(&mut random).map_err(|e| BackendError::unavailable("random", e))?;
    let now_ms = unix_ms(state.clock.now());
    let issued = Challenge::issue(event.id(), random, now_ms);
    let expires_at = from_unix_ms(issued.expires_at_ms)
        .ok_or_else(|| BackendError::bug("a challenge expires beyond what a time can hold"))?;
    Ok(ChallengeBody {
        challenge: state.line.signer().sign_challenge(&issued),
        bits: event.spec.join_challenge.bits(),
        expires_at,
    })
}

/// What a join brings to the door, and, when it brought no valid solution,
/// why (for the `428` that answers it if the visitor has no live place).
pub(super) fn ticket(
    state: &AppState,
    event: &Event,
    challenge: Option<&str>,
    nonce: Option<&str>,
) -> (Ticket, Option<Unsolved>) {
    let bits = event.spec.join_challenge;
    if !bits.is_on() {
        return (Ticket::NotAsked, None);
    }
    let now_ms = unix_ms(state.clock.now());
    let answer = challenge.zip(nonce);
    match challenge::check(state.line.signer(), event.id(), bits, answer, now_ms) {
        Ok(solved) => (Ticket::Solved(solved), None),
        Err(unsolved) => (Ticket::Unsolved, Some(unsolved)),
    }
}

#[utoipa::path(
    get,
    path = "/api/events/{id}/challenge",
    operation_id = "getJoinChallenge",
    summary = "A proof-of-work challenge to join with",
    description = "Stateless: the challenge is signed, not stored, until a join uses it. Each challenge buys one new place, once.",
    tag = "queue",
    params(("id" = EventId, Path, description = "The event's id")),
    responses(
        (status = 200, description = "A fresh challenge at the event's current difficulty", body = ChallengeBody),
        (status = 404, response = openapi::NotFound),
        (status = 503, response = openapi::Unavailable),
    )
)]
pub async fn show(
    State(state): State<AppState>,
    PathParam(id): PathParam,
) -> Result<Json<ChallengeBody>, ApiError> {
    let event = find(&state, &id)?;
    Ok(Json(issue(&state, &event)?))
}
