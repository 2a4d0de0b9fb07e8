//! Seats and orders: the seat map, holds (needs a pass), and the pass's orders.

use std::borrow::Cow;

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{FromRequestParts, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{
    AllOfBuilder, ArrayBuilder, ObjectBuilder, OneOfBuilder, Schema, SchemaType, Type,
};
use utoipa::{IntoParams, PartialSchema, ToSchema};
use uuid::Uuid;

use super::AppState;
use super::conditional::json_with_etag;
use super::error::ApiError;
use super::events::find;
use super::extract::{JsonBody, PathParam, RequestBody, bearer};
use super::limit::WithinClientRate;
use super::openapi::{self, CancelledOrder, PaidOrder, PendingOrder, SectionId, UtcTime};
use crate::domain::{EventId, Order, OrderStatus, Pass, SeatId};
use crate::ports::{BackendError, SeatState};
use crate::services::booking::{BestAvailable, BookingError, SeatRequest};

pub(super) const MAX_PAYMENT_REF_CHARS: usize = 128;

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

#[derive(Serialize, ToSchema)]
pub struct SeatView {
    #[schema(value_type = SeatId)]
    id: String,
    state: SeatMark,
}

/// A seat's state on the map.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
enum SeatMark {
    Free,
    Held,
    Sold,
}

#[derive(Serialize, ToSchema)]
#[schema(as = SeatMap)]
pub struct SeatMapBody {
    event: EventId,
    /// In section, row, seat order
    seats: Vec<SeatView>,
}

#[utoipa::path(
    get,
    path = "/api/events/{id}/seats",
    operation_id = "getSeatMap",
    summary = "The seat map (may lag the truth by up to 1 s)",
    tag = "public",
    params(
        ("id" = EventId, Path, description = "The event's id"),
        openapi::IfNoneMatch,
    ),
    responses(
        (status = 200, description = "Every seat in section, row, seat order", body = SeatMapBody,
            headers(("ETag" = String, description = "The validator to send back in If-None-Match"))),
        (status = 304, response = openapi::NotModified),
        (status = 404, response = openapi::NotFound),
        (status = 503, response = openapi::Unavailable),
    )
)]
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
                SeatState::Free => SeatMark::Free,
                SeatState::Held => SeatMark::Held,
                SeatState::Sold => SeatMark::Sold,
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
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ProposalQuery {
    /// How many adjacent seats, 1 to the event's max_seats_per_user
    #[param(value_type = u32, required = true, minimum = 1)]
    count: Option<String>,
    /// Only in this section (absent or empty: any section)
    section: Option<String>,
    /// Only in sections whose price_cents is at most this, in cents (absent or empty: any price)
    #[param(value_type = Option<String>, pattern = "^[0-9]{0,18}$")]
    max_price_cents: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct ProposalBody {
    #[schema(value_type = Vec<SeatId>, min_items = 1)]
    seats: Vec<String>,
}

/// The seats a best-available hold would take now, held for nobody: the page
/// shows them for the buyer to confirm (hold) or change. `409 seat_unavailable`
/// with `"seats": []`, and what is available, when no such block is free.
#[utoipa::path(
    get,
    path = "/api/events/{id}/best_available",
    operation_id = "proposeBestAvailable",
    summary = "The seats a best-available hold would take now, held for nobody (the page proposes them for the buyer to confirm or change)",
    tag = "public",
    params(("id" = EventId, Path, description = "The event's id"), ProposalQuery),
    responses(
        (status = 200, body = inline(ProposalBody),
            description = "`count` adjacent free seats in one row, best first: lowest section, then lowest row; within that row a block that leaves no single free seat stranded (between taken seats, or at the row's end) when the row has one, then the lowest seat, as `best_available` in a hold picks them; the map may lag the truth by up to 1 s"),
        (status = 404, response = openapi::NotFound),
        (status = 409, response = inline(openapi::NoFreeBlock)),
        (status = 422, response = openapi::InvalidRequest),
        (status = 429, response = openapi::RateLimited),
        (status = 503, response = openapi::Unavailable),
    )
)]
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

/// Exactly one of `seats` or `best_available`.
#[derive(Deserialize)]
pub struct HoldBody {
    #[serde(default)]
    seats: Option<Vec<String>>,
    #[serde(default)]
    best_available: Option<BestAvailableBody>,
}

#[derive(Deserialize, ToSchema)]
#[schema(as = BestAvailable)]
struct BestAvailableBody {
    #[schema(minimum = 1, maximum = 4_294_967_295_u32)]
    count: u32,
    #[serde(default)]
    #[schema(value_type = Option<SectionId>)]
    section: Option<String>,
    /// Only in sections whose price_cents is at most this
    #[serde(default)]
    #[schema(minimum = 0)]
    max_price_cents: Option<i64>,
}

/// Written by hand: that exactly one of the two fields is given is a rule
/// across fields, which the derive cannot say.
impl PartialSchema for HoldBody {
    fn schema() -> RefOr<Schema> {
        let nullable = |schema_type: Type| SchemaType::from_iter([schema_type, Type::Null]);
        let seats = ArrayBuilder::new()
            .schema_type(nullable(Type::Array))
            .items(SeatId::schema())
            .min_items(Some(1))
            .unique_items(true);
        let best_available = OneOfBuilder::new()
            .item(ObjectBuilder::new().schema_type(Type::Null))
            .item(BestAvailableBody::schema());
        // Present and not null: what the handler takes as given.
        let given = |field: &str, schema_type: Type| {
            ObjectBuilder::new()
                .property(field, ObjectBuilder::new().schema_type(schema_type))
                .required(field)
        };
        AllOfBuilder::new()
            .description(Some(
                "Exactly one of `seats` (1 to max_seats_per_user distinct ids) or \
                 `best_available` (`count` adjacent free seats in one row, best first: lowest \
                 section, then lowest row; within that row a block that leaves no single free \
                 seat stranded when the row has one, then the lowest seat)",
            ))
            .item(
                ObjectBuilder::new()
                    .property("seats", seats)
                    .property("best_available", best_available),
            )
            .item(
                OneOfBuilder::new()
                    .item(given("seats", Type::Array))
                    .item(given("best_available", Type::Object)),
            )
            .into()
    }
}

impl ToSchema for HoldBody {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("Hold")
    }

    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        BestAvailableBody::schemas(schemas);
    }
}

impl RequestBody for HoldBody {
    const OBJECTS: &'static [&'static [&'static str]] = &[&[], &["best_available"]];
}

#[derive(Serialize, ToSchema)]
#[schema(as = Order)]
pub struct OrderBody {
    order_id: Uuid,
    event: EventId,
    #[schema(value_type = OrderStatus)]
    status: &'static str,
    #[schema(value_type = Vec<SeatId>, min_items = 1)]
    seats: Vec<String>,
    #[schema(minimum = 0)]
    amount_cents: i64,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = UtcTime)]
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

#[utoipa::path(
    post,
    path = "/api/events/{id}/holds",
    operation_id = "holdSeats",
    summary = "Hold seats, all or none (needs a valid pass for this event)",
    tag = "booking",
    security(("pass" = [])),
    params(("id" = EventId, Path, description = "The event's id")),
    request_body = HoldBody,
    responses(
        (status = 201, description = "The pending order", body = inline(PendingOrder),
            links(
                ("GetOrder" = (operation_id = "getOrder", parameters(("order_id" = "$response.body#/order_id")))),
                ("PayOrder" = (operation_id = "payOrder", parameters(("order_id" = "$response.body#/order_id")))),
                ("CancelOrder" = (operation_id = "cancelOrder", parameters(("order_id" = "$response.body#/order_id")))),
            )
        ),
        (status = 401, response = openapi::InvalidPass),
        (status = 404, response = openapi::NotFound),
        (status = 409, response = inline(openapi::SeatsNotFree)),
        (status = 413, response = openapi::PayloadTooLarge),
        (status = 422, response = inline(openapi::HoldRefused)),
        (status = 429, response = openapi::RateLimited),
        (status = 503, response = openapi::Unavailable),
    )
)]
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

#[utoipa::path(
    get,
    path = "/api/orders/{order_id}",
    operation_id = "getOrder",
    summary = "An order of this pass (an expired pass still identifies its holder)",
    tag = "booking",
    security(("pass" = [])),
    params(("order_id" = Uuid, Path, description = "The order's id")),
    responses(
        (status = 200, description = "The order", body = OrderBody),
        (status = 401, response = openapi::InvalidPass),
        (status = 404, response = inline(openapi::OrderNotFound)),
        (status = 503, response = openapi::Unavailable),
    )
)]
pub async fn show(
    State(state): State<AppState>,
    PathParam(id): PathParam,
    PassAuth(pass): PassAuth,
) -> Result<Json<OrderBody>, ApiError> {
    Ok(Json(
        state.booking.order(order_id(&id)?, &pass).await?.into(),
    ))
}

#[derive(Deserialize, ToSchema)]
#[schema(as = Pay)]
pub struct PayBody {
    #[schema(min_length = 1, max_length = 128)]
    payment_ref: String,
}

impl RequestBody for PayBody {
    const OBJECTS: &'static [&'static [&'static str]] = &[&[]];
}

#[utoipa::path(
    post,
    path = "/api/orders/{order_id}/pay",
    operation_id = "payOrder",
    summary = "Pay (paying a paid order again changes nothing)",
    tag = "booking",
    security(("pass" = [])),
    params(("order_id" = Uuid, Path, description = "The order's id")),
    request_body = PayBody,
    responses(
        (status = 200, description = "Paid", body = inline(PaidOrder)),
        (status = 401, response = openapi::InvalidPass),
        (status = 404, response = inline(openapi::OrderNotFound)),
        (status = 410, response = inline(openapi::PaymentTooLate)),
        (status = 413, response = openapi::PayloadTooLarge),
        (status = 422, response = openapi::InvalidRequest),
        (status = 503, response = openapi::Unavailable),
    )
)]
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

#[utoipa::path(
    delete,
    path = "/api/orders/{order_id}",
    operation_id = "cancelOrder",
    summary = "Cancel a pending order; its seats are free at once",
    tag = "booking",
    security(("pass" = [])),
    params(("order_id" = Uuid, Path, description = "The order's id")),
    responses(
        (status = 200, description = "Cancelled (again: unchanged)", body = inline(CancelledOrder)),
        (status = 401, response = openapi::InvalidPass),
        (status = 404, response = inline(openapi::OrderNotFound)),
        (status = 409, response = inline(openapi::AlreadyPaid)),
        (status = 410, response = inline(openapi::HoldExpired)),
        (status = 503, response = openapi::Unavailable),
    )
)]
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
