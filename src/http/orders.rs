//! Seats and orders: the seat map, holds (needs a pass), and the pass's orders.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{FromRequestParts, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use super::AppState;
use super::conditional::json_with_etag;
use super::error::ApiError;
use super::events::find;
use super::extract::{JsonBody, PathParam, RequestBody, bearer};
use super::limit::WithinClientRate;
use crate::domain::{EventId, Order, Pass};
use crate::ports::{BackendError, SeatState};
use crate::services::booking::{BestAvailable, BookingError, SeatRequest};

const MAX_PAYMENT_REF_CHARS: usize = 128;

/// The admission pass in `Authorization: Bearer`, signature checked. Whether it
/// is still valid is for the route to decide: order routes accept expired passes.
pub struct PassAuth(pub Pass);

impl FromRequestParts<AppState> for PassAuth {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let raw = bearer(parts).ok_or(ApiError::InvalidPass)?;
        state
            .line
            .signer()
            .verify_pass(raw)
            .map(PassAuth)
            .ok_or(ApiError::InvalidPass)
    }
}

#[derive(Serialize)]
pub struct SeatView {
    id: String,
    state: &'static str,
}

#[derive(Serialize)]
pub struct SeatMapBody {
    event: EventId,
    seats: Vec<SeatView>,
}

pub async fn seat_map(
    State(state): State<AppState>,
    PathParam(id): PathParam,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let event = find(&state, &id)?;
    let map = state.booking.seat_map(&event).await?;
    let venue = crate::domain::Venue::of(&event.spec);
    let seats = venue
        .seats()
        .zip(map.states.iter())
        .map(|(seat, s)| SeatView {
            id: venue.id(seat).to_string(),
            state: match s {
                SeatState::Free => "free",
                SeatState::Held => "held",
                SeatState::Sold => "sold",
            },
        })
        .collect();
    json_with_etag(
        &headers,
        &SeatMapBody {
            event: event.id().clone(),
            seats,
        },
    )
}

/// `?count=<n>&section=<id>&max_price_cents=<n>`, read as text so that a bad
/// value is the API's own `422` naming the parameter.
#[derive(Deserialize)]
pub struct ProposalQuery {
    count: Option<String>,
    section: Option<String>,
    max_price_cents: Option<String>,
}

#[derive(Serialize)]
pub struct ProposalBody {
    seats: Vec<String>,
}

/// The seats a best-available hold would take now, held for nobody: the page
/// shows them for the buyer to confirm (hold) or change. `409 seat_unavailable`
/// with `"seats": []`, and what is available, when no such block is free.
pub async fn propose_best(
    State(state): State<AppState>,
    _: WithinClientRate,
    PathParam(id): PathParam,
    query: Result<Query<ProposalQuery>, QueryRejection>,
) -> Result<Json<ProposalBody>, ApiError> {
    let event = find(&state, &id)?;
    let Query(query) =
        query.map_err(|e| ApiError::InvalidRequest(format!("invalid query: {}", e.body_text())))?;
    let max = event.spec.max_seats_per_user;
    let count = match query.count.as_deref().map(str::parse::<u32>) {
        None => return Err(ApiError::InvalidRequest("count: is required".into())),
        Some(Ok(count)) => count,
        Some(Err(_)) => {
            return Err(ApiError::InvalidRequest(format!(
                "count: must be a whole number from 1 to {max}"
            )));
        }
    };
    // An empty value, as a form sends "any section" or "any price", is no value.
    let given = |value: Option<String>| value.filter(|v| !v.is_empty());
    let max_price_cents = given(query.max_price_cents)
        .map(|raw| {
            raw.parse::<i64>().map_err(|_| {
                ApiError::InvalidRequest("max_price_cents: must be a whole number of cents".into())
            })
        })
        .transpose()?;
    let asked = BestAvailable {
        count,
        section: given(query.section),
        max_price_cents,
    };
    let seats = state.booking.propose_best(&event, &asked).await?;
    Ok(Json(ProposalBody { seats }))
}

#[derive(Deserialize)]
pub struct HoldBody {
    #[serde(default)]
    seats: Option<Vec<String>>,
    #[serde(default)]
    best_available: Option<BestAvailableBody>,
}

#[derive(Deserialize)]
struct BestAvailableBody {
    count: u32,
    #[serde(default)]
    section: Option<String>,
    #[serde(default)]
    max_price_cents: Option<i64>,
}

impl RequestBody for HoldBody {
    const OBJECTS: &'static [&'static [&'static str]] = &[&[], &["best_available"]];
}

#[derive(Serialize)]
pub struct OrderBody {
    order_id: Uuid,
    event: EventId,
    status: &'static str,
    seats: Vec<String>,
    amount_cents: i64,
    #[serde(with = "time::serde::rfc3339")]
    expires_at: OffsetDateTime,
}

impl From<Order> for OrderBody {
    fn from(o: Order) -> Self {
        Self {
            order_id: o.id,
            event: o.event,
            status: o.status.as_str(),
            seats: o.seats,
            amount_cents: o.amount_cents,
            expires_at: o.expires_at,
        }
    }
}

pub async fn hold(
    State(state): State<AppState>,
    _: WithinClientRate,
    PathParam(id): PathParam,
    PassAuth(pass): PassAuth,
    JsonBody(body): JsonBody<HoldBody>,
) -> Result<(StatusCode, Json<OrderBody>), ApiError> {
    let event = find(&state, &id)?;
    let request = match (body.seats, body.best_available) {
        (Some(seats), None) => SeatRequest::Seats(seats),
        (None, Some(best)) => SeatRequest::BestAvailable(BestAvailable {
            count: best.count,
            section: best.section,
            max_price_cents: best.max_price_cents,
        }),
        _ => {
            return Err(ApiError::InvalidRequest(
                "give either seats or best_available".into(),
            ));
        }
    };
    let booking = state.booking.clone();
    let order = to_completion(
        &state,
        async move { booking.hold(&event, &pass, request).await },
    )
    .await?;
    Ok((StatusCode::CREATED, Json(order.into())))
}

/// Runs a change of seats and orders to its end even if the client goes away
/// or the request times out: a hold is never left half-made. Shutdown waits
/// for it, as it does for a request.
async fn to_completion<F>(state: &AppState, change: F) -> Result<Order, ApiError>
where
    F: std::future::Future<Output = Result<Order, BookingError>> + Send + 'static,
{
    match state.tasks.spawn(change).await {
        Ok(outcome) => Ok(outcome?),
        // A panic in the change is a bug; a cancelled task only happens at shutdown.
        Err(e) if e.is_panic() => {
            Err(BackendError::bug_caused_by("a change of seats panicked", e).into())
        }
        Err(e) => Err(BackendError::unavailable("anteroom", e).into()),
    }
}

fn order_id(raw: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(raw).map_err(|_| ApiError::NotFound)
}

pub async fn show(
    State(state): State<AppState>,
    PathParam(id): PathParam,
    PassAuth(pass): PassAuth,
) -> Result<Json<OrderBody>, ApiError> {
    Ok(Json(
        state.booking.order(order_id(&id)?, &pass).await?.into(),
    ))
}

#[derive(Deserialize)]
pub struct PayBody {
    payment_ref: String,
}

impl RequestBody for PayBody {
    const OBJECTS: &'static [&'static [&'static str]] = &[&[]];
}

pub async fn pay(
    State(state): State<AppState>,
    PathParam(id): PathParam,
    PassAuth(pass): PassAuth,
    JsonBody(body): JsonBody<PayBody>,
) -> Result<Json<OrderBody>, ApiError> {
    if !(1..=MAX_PAYMENT_REF_CHARS).contains(&body.payment_ref.chars().count()) {
        return Err(ApiError::InvalidRequest(format!(
            "payment_ref: must be 1 to {MAX_PAYMENT_REF_CHARS} characters"
        )));
    }
    let (booking, id) = (state.booking.clone(), order_id(&id)?);
    Ok(Json(
        to_completion(&state, async move {
            booking.pay(id, &pass, &body.payment_ref).await
        })
        .await?
        .into(),
    ))
}

pub async fn cancel(
    State(state): State<AppState>,
    PathParam(id): PathParam,
    PassAuth(pass): PassAuth,
) -> Result<Json<OrderBody>, ApiError> {
    let (booking, id) = (state.booking.clone(), order_id(&id)?);
    Ok(Json(
        to_completion(&state, async move { booking.cancel(id, &pass).await })
            .await?
            .into(),
    ))
}
