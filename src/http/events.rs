//! Events: admin create / change / stats, public list and show.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;

use super::AppState;
use super::conditional::json_with_etag;
use super::error::ApiError;
use super::extract::{Admin, JsonBody, PathParam, RequestBody};
use super::openapi::{self, UtcTime};
use crate::domain::door::WindowLimit;
use crate::domain::event::{
    DEFAULT_ABANDON_SECONDS, address_limit, utc_instant, validate_max_active, validate_per_second,
};
use crate::domain::gate::parse_return_origins;
use crate::domain::{
    Access, Admission, AdmissionPatch, Currency, Difficulty, Event, EventId, EventPatch, EventSpec,
    Origin, Section, prequeue,
};
use crate::services::refusals::Refusal;

#[derive(Deserialize, ToSchema)]
#[schema(as = EventCreate, example = json!({
    "id": "rock-2027",
    "name": "Rock Night 2027",
    "venue": "Arena",
    "starts_at": "2027-06-01T19:00:00Z",
    "on_sale_at": "2027-01-15T10:00:00Z",
    "hold_seconds": 300,
    "max_seats_per_user": 4,
    "currency": "EUR",
    "admission": {"per_second": 50, "max_active": 500, "pass_seconds": 600},
    "sections": [{"id": "A", "name": "Floor", "price_cents": 9900, "rows": 10, "seats_per_row": 20}]
}))]
pub struct CreateEvent {
    #[schema(value_type = EventId)]
    id: String,
    #[schema(schema_with = openapi::some_text)]
    name: String,
    venue: String,
    #[serde(deserialize_with = "instant")]
    starts_at: OffsetDateTime,
    /// Absent (or null): on sale now. Before it, joins enter the pre-queue
    #[serde(default, deserialize_with = "optional_instant")]
    on_sale_at: Option<OffsetDateTime>,
    #[schema(schema_with = openapi::seconds)]
    hold_seconds: u32,
    #[schema(schema_with = openapi::max_seats_per_user)]
    max_seats_per_user: u32,
    admission: CreateAdmission,
    #[serde(default)]
    #[schema(default = false)]
    paused: bool,
    /// Absent: euros, as every event was before events had a currency.
    #[serde(default)]
    #[schema(value_type = Option<Currency>, default = "EUR")]
    currency: Option<String>,
    /// Absent (or null): no challenge
    #[serde(default)]
    join_challenge: Option<JoinChallenge>,
    /// Who may join: "open" (anyone; the default) or "codes" (a join must bring an invitation code from POST /api/admin/events/{id}/codes)
    #[serde(default)]
    #[schema(value_type = Option<Access>, default = "open")]
    access: Option<String>,
    /// Absent (or null): no limit
    #[serde(default)]
    address_limit: Option<AddressLimit>,
    /// Absent (or null): none; the waiting room then refuses every return_to
    #[serde(default)]
    #[schema(schema_with = openapi::optional_return_origins)]
    return_origins: Option<Vec<String>>,
    #[schema(schema_with = openapi::sections)]
    sections: Vec<Section>,
}

/// At most `places` new places per client address in each window of `window_seconds` (fixed windows that every instance shares); a join past it gets 429 too_many_places with Retry-After. A join that returns a live place does not count. `places` 0: no limit
#[derive(Deserialize, Serialize, ToSchema)]
struct AddressLimit {
    #[serde(deserialize_with = "whole_number")]
    #[schema(minimum = 0, maximum = 1_000_000)]
    places: u64,
    #[serde(deserialize_with = "whole_number")]
    #[schema(minimum = 1, maximum = 31_536_000)]
    window_seconds: u64,
}

impl AddressLimit {
    fn limit(&self) -> Result<Option<WindowLimit>, ApiError> {
        Ok(address_limit(self.places, self.window_seconds)?)
    }

    fn shown(limit: Option<WindowLimit>) -> Option<Self> {
        limit.map(|l| Self {
            places: l.per_window,
            window_seconds: l.window_seconds,
        })
    }
}

fn access(raw: Option<&str>) -> Result<Option<Access>, ApiError> {
    Ok(raw.map(Access::parse).transpose()?)
}

/// The proof of work each new place costs: a join must bring a challenge from GET /api/events/{id}/challenge, solved
#[derive(Deserialize, Serialize, ToSchema)]
struct JoinChallenge {
    /// Leading zero bits that sha256(challenge + ":" + nonce) needs; 0: off. A solution takes 2^bits hashes on average
    #[serde(deserialize_with = "whole_number")]
    #[schema(minimum = 0, maximum = 32)]
    bits: u64,
}

const NOT_A_WHOLE_NUMBER: &str = "must be a whole number, 0 or more";

/// A number without a fractional part, `11` or `11.0` alike (JSON Schema's
/// `integer`, which the document promises); one too large for `u64` saturates,
/// for the range check to refuse.
pub(super) fn whole_number<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<u64, D::Error> {
    let number = serde_json::Number::deserialize(deserializer)
        .map_err(|_| serde::de::Error::custom(NOT_A_WHOLE_NUMBER))?;
    number
        .as_u64()
        .or_else(|| {
            number
                .as_f64()
                .filter(|n| n.fract() == 0.0 && *n >= 0.0)
                // Saturating: a float beyond u64 becomes u64::MAX.
                .map(|n| n as u64)
        })
        .ok_or_else(|| serde::de::Error::custom(NOT_A_WHOLE_NUMBER))
}

impl JoinChallenge {
    fn difficulty(&self) -> Result<Difficulty, ApiError> {
        Ok(Difficulty::parse(self.bits)?)
    }
}

#[derive(Deserialize, ToSchema)]
#[schema(as = AdmissionCreate)]
struct CreateAdmission {
    #[schema(schema_with = openapi::per_second)]
    per_second: f64,
    #[schema(schema_with = openapi::max_active)]
    max_active: u64,
    #[schema(schema_with = openapi::seconds)]
    pass_seconds: u32,
    #[serde(default = "default_abandon_seconds")]
    #[schema(schema_with = openapi::abandon_seconds)]
    abandon_seconds: u32,
}

fn default_abandon_seconds() -> u32 {
    DEFAULT_ABANDON_SECONDS
}

const NOT_AN_INSTANT: &str = "must be a date and time such as 2027-06-01T19:00:00Z (RFC 3339)";

/// An RFC 3339 time; anything else is refused with an example of the form, not the parser's words.
fn instant<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<OffsetDateTime, D::Error> {
    match serde_json::Value::deserialize(deserializer)? {
        serde_json::Value::String(text) => {
            OffsetDateTime::parse(&text, &time::format_description::well_known::Rfc3339)
                .map_err(|_| serde::de::Error::custom(NOT_AN_INSTANT))
        }
        _ => Err(serde::de::Error::custom(NOT_AN_INSTANT)),
    }
}

fn optional_instant<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<OffsetDateTime>, D::Error> {
    match serde_json::Value::deserialize(deserializer)? {
        serde_json::Value::Null => Ok(None),
        value => instant(value).map(Some).map_err(serde::de::Error::custom),
    }
}

impl RequestBody for CreateEvent {
    const OBJECTS: &'static [&'static [&'static str]] = &[
        &[],
        &["admission"],
        &["join_challenge"],
        &["address_limit"],
        &["sections", "[]"],
    ];
}

impl CreateEvent {
    fn into_spec(self) -> Result<EventSpec, ApiError> {
        let spec = EventSpec {
            id: EventId::parse(&self.id)?,
            name: self.name,
            venue: self.venue,
            starts_at: utc_instant("starts_at", self.starts_at)?,
            on_sale_at: self
                .on_sale_at
                .map(|at| utc_instant("on_sale_at", at))
                .transpose()?,
            hold_seconds: self.hold_seconds,
            max_seats_per_user: self.max_seats_per_user,
            admission: Admission {
                per_second: self.admission.per_second,
                max_active: self.admission.max_active,
                pass_seconds: self.admission.pass_seconds,
                abandon_seconds: self.admission.abandon_seconds,
            },
            paused: self.paused,
            currency: self
                .currency
                .as_deref()
                .map(Currency::parse)
                .transpose()?
                .unwrap_or_default(),
            join_challenge: self
                .join_challenge
                .as_ref()
                .map(JoinChallenge::difficulty)
                .transpose()?
                .unwrap_or(Difficulty::OFF),
            access: access(self.access.as_deref())?.unwrap_or_default(),
            address_limit: self
                .address_limit
                .as_ref()
                .map(AddressLimit::limit)
                .transpose()?
                .flatten(),
            return_origins: parse_return_origins(
                self.return_origins.as_deref().unwrap_or_default(),
            )?,
            sections: self.sections,
        };
        spec.validate()?;
        Ok(spec)
    }
}

/// An event as created (without secrets), plus live fields and the pre-queue commitment
#[derive(Serialize, ToSchema)]
#[schema(as = Event)]
pub struct EventBody {
    id: EventId,
    #[schema(schema_with = openapi::some_text)]
    name: String,
    venue: String,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = UtcTime)]
    starts_at: OffsetDateTime,
    /// Null: on sale since creation
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<UtcTime>)]
    on_sale_at: Option<OffsetDateTime>,
    #[schema(schema_with = openapi::seconds)]
    hold_seconds: u32,
    #[schema(schema_with = openapi::max_seats_per_user)]
    max_seats_per_user: u32,
    admission: Admission,
    paused: bool,
    currency: Currency,
    /// bits 0: off
    join_challenge: JoinChallenge,
    access: Access,
    /// Absent: no limit
    #[serde(skip_serializing_if = "Option::is_none")]
    address_limit: Option<AddressLimit>,
    #[schema(schema_with = openapi::return_origins)]
    return_origins: Vec<Origin>,
    #[schema(schema_with = openapi::sections)]
    sections: Vec<Section>,
    #[schema(minimum = 1)]
    seats_total: u64,
    seats_available: u64,
    /// Hex sha256 of the pre-queue draw's secret 32-byte seed
    #[schema(pattern = "^[0-9a-f]{64}$")]
    prequeue_commitment: String,
    /// The hex seed, shown once on_sale_at has passed. Pre-queued tokens are placed in ascending hex sha256(seed_bytes || token_id_utf8)
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(pattern = "^[0-9a-f]{64}$")]
    prequeue_seed: Option<String>,
}

impl EventBody {
    pub fn new(state: &AppState, event: &Event, now: OffsetDateTime) -> Self {
        let s = &event.spec;
        Self {
            id: s.id.clone(),
            name: s.name.clone(),
            venue: s.venue.clone(),
            starts_at: s.starts_at,
            on_sale_at: s.on_sale_at,
            hold_seconds: s.hold_seconds,
            max_seats_per_user: s.max_seats_per_user,
            admission: s.admission,
            paused: s.paused,
            currency: s.currency,
            join_challenge: JoinChallenge {
                bits: s.join_challenge.bits().into(),
            },
            access: s.access,
            address_limit: AddressLimit::shown(s.address_limit),
            return_origins: s.return_origins.clone(),
            sections: s.sections.clone(),
            seats_total: s.seats_total(),
            seats_available: state.booking.seats_available(event),
            prequeue_commitment: prequeue::commitment(&event.prequeue_seed),
            // Revealed only once the draw it decides can no longer be influenced.
            prequeue_seed: event
                .is_on_sale(now)
                .then(|| hex::encode(event.prequeue_seed)),
        }
    }
}

pub(super) fn find(state: &AppState, id: &str) -> Result<std::sync::Arc<Event>, ApiError> {
    let id = EventId::parse(id).map_err(|_| ApiError::NotFound)?;
    state.catalog.get(&id).ok_or(ApiError::NotFound)
}

/// A venue of 100,000 seats is created in under 5 s.
#[utoipa::path(
    post,
    path = "/api/admin/events",
    operation_id = "createEvent",
    summary = "Create an event",
    tag = "admin",
    security(("admin" = [])),
    request_body = CreateEvent,
    responses(
        (status = 201, description = "The event, as GET /api/events/{id} shows it", body = EventBody,
            links(
                ("GetEvent" = (operation_id = "getEvent", parameters(("id" = "$response.body#/id")))),
                ("UpdateEvent" = (operation_id = "updateEvent", parameters(("id" = "$response.body#/id")))),
                ("GetEventStats" = (operation_id = "getEventStats", parameters(("id" = "$response.body#/id")))),
                ("GetSeatMap" = (operation_id = "getSeatMap", parameters(("id" = "$response.body#/id")))),
                ("JoinQueue" = (operation_id = "joinQueue", parameters(("id" = "$response.body#/id")))),
            )
        ),
        (status = 401, response = openapi::Unauthorized),
        (status = 409, response = inline(openapi::EventExists)),
        (status = 413, response = openapi::PayloadTooLarge),
        (status = 422, response = openapi::InvalidRequest),
        (status = 429, response = openapi::RateLimited),
        (status = 503, response = openapi::Unavailable),
    )
)]
pub async fn create(
    State(state): State<AppState>,
    _: Admin,
    JsonBody(body): JsonBody<CreateEvent>,
) -> Result<(StatusCode, Json<EventBody>), ApiError> {
    let event = state.line.create_event(body.into_spec()?).await?;
    tracing::info!(event = %event.id(), seats = event.spec.seats_total(), "event created");
    Ok((
        StatusCode::CREATED,
        Json(EventBody::new(&state, &event, state.clock.now())),
    ))
}

/// Any of the fields; absent (or null) ones are unchanged. A paused event admits nobody; joins are still accepted
#[derive(Deserialize, ToSchema)]
#[schema(as = EventPatch)]
pub struct UpdateEvent {
    #[serde(default)]
    #[schema(inline)]
    admission: Option<UpdateAdmission>,
    #[serde(default)]
    paused: Option<bool>,
    /// Takes effect at once: a join whose solution falls short of new, higher bits gets 428 with a fresh challenge
    #[serde(default)]
    join_challenge: Option<JoinChallenge>,
    /// Takes effect at once: from then on, a join that brings no code of the event gets 403 (a live place is kept)
    #[serde(default)]
    #[schema(value_type = Option<Access>)]
    access: Option<String>,
    /// Takes effect at once; `places` 0 turns the limit off
    #[serde(default)]
    address_limit: Option<AddressLimit>,
    /// Replaces the whole list ([] sends nobody back anywhere); takes effect at once for new return_to links
    #[serde(default)]
    #[schema(schema_with = openapi::optional_return_origins)]
    return_origins: Option<Vec<String>>,
}

#[derive(Deserialize, ToSchema)]
struct UpdateAdmission {
    #[schema(exclusive_minimum = 0)]
    per_second: Option<f64>,
    #[schema(minimum = 1, maximum = 1_000_000_000)]
    max_active: Option<u64>,
}

impl RequestBody for UpdateEvent {
    const OBJECTS: &'static [&'static [&'static str]] =
        &[&[], &["admission"], &["join_challenge"], &["address_limit"]];
}

#[utoipa::path(
    patch,
    path = "/api/admin/events/{id}",
    operation_id = "updateEvent",
    summary = "Change admission while live, or pause",
    tag = "admin",
    security(("admin" = [])),
    params(("id" = EventId, Path, description = "The event's id")),
    // A `ref` leaves the body optional (an empty one reads as `{}`) without making `null` valid.
    request_body(
        content = ref("#/components/schemas/EventPatch"),
        content_type = "application/json",
        description = "An empty body changes nothing"
    ),
    responses(
        (status = 200, description = "The event", body = EventBody),
        (status = 401, response = openapi::Unauthorized),
        (status = 404, response = openapi::NotFound),
        (status = 413, response = openapi::PayloadTooLarge),
        (status = 422, response = openapi::InvalidRequest),
        (status = 429, response = openapi::RateLimited),
        (status = 503, response = openapi::Unavailable),
    )
)]
pub async fn update(
    State(state): State<AppState>,
    _: Admin,
    PathParam(id): PathParam,
    JsonBody(body): JsonBody<UpdateEvent>,
) -> Result<Json<EventBody>, ApiError> {
    let event = find(&state, &id)?;
    let admission = body
        .admission
        .map_or_else(AdmissionPatch::default, |a| AdmissionPatch {
            per_second: a.per_second,
            max_active: a.max_active,
        });
    admission.per_second.map(validate_per_second).transpose()?;
    admission.max_active.map(validate_max_active).transpose()?;
    let patch = EventPatch {
        admission,
        paused: body.paused,
        join_challenge: body
            .join_challenge
            .as_ref()
            .map(JoinChallenge::difficulty)
            .transpose()?,
        access: access(body.access.as_deref())?,
        address_limit: body
            .address_limit
            .as_ref()
            .map(AddressLimit::limit)
            .transpose()?,
        return_origins: body
            .return_origins
            .as_deref()
            .map(parse_return_origins)
            .transpose()?,
    };
    let event = state
        .catalog
        .update(event.id(), patch)
        .await?
        .ok_or(ApiError::NotFound)?;
    tracing::info!(event = %event.id(), admission = ?event.spec.admission, paused = event.spec.paused,
        join_challenge = %event.spec.join_challenge, access = event.spec.access.as_str(),
        address_limit = ?event.spec.address_limit, return_origins = ?event.spec.return_origins,
        "event changed");
    Ok(Json(EventBody::new(&state, &event, state.clock.now())))
}

#[derive(Serialize, ToSchema)]
pub struct Stats {
    /// Joined, not yet admitted nor abandoned
    waiting: u64,
    admitted_total: u64,
    /// Admitted passes still valid
    active: u64,
    held_seats: u64,
    sold_seats: u64,
    available_seats: u64,
    orders_paid: u64,
    orders_expired: u64,
    /// Joins each defence of the door refused, added up over every instance (each instance adds its own within a second)
    refused: Refused,
}

/// Refused joins, by the error code they were answered with
#[derive(Serialize, ToSchema)]
#[schema(as = JoinRefusals)]
struct Refused {
    /// No solved proof-of-work challenge (428)
    challenge_required: u64,
    /// A challenge that had bought a place already (409)
    challenge_used: u64,
    /// Invitation-only, and no code (403)
    code_required: u64,
    /// A code not issued for the event (403)
    invalid_code: u64,
    /// The address took address_limit.places new places in this window (429)
    too_many_places: u64,
    /// Over ANTEROOM_CLIENT_RATE, or ten unknown codes this minute (429)
    rate_limited: u64,
}

#[utoipa::path(
    get,
    path = "/api/admin/events/{id}/stats",
    operation_id = "getEventStats",
    summary = "Live counts",
    tag = "admin",
    security(("admin" = [])),
    params(("id" = EventId, Path, description = "The event's id")),
    responses(
        (status = 200, description = "The counts", body = Stats),
        (status = 401, response = openapi::Unauthorized),
        (status = 404, response = openapi::NotFound),
        (status = 429, response = openapi::RateLimited),
        (status = 503, response = openapi::Unavailable),
    )
)]
pub async fn stats(
    State(state): State<AppState>,
    _: Admin,
    PathParam(id): PathParam,
) -> Result<Json<Stats>, ApiError> {
    let event = find(&state, &id)?;
    let (line, seats, orders, refused) = tokio::try_join!(
        state.line.counters(event.id(), state.clock.now()),
        state.booking.fresh_counts(event.id()),
        state.booking.order_counts(event.id()),
        state.refusals.counts(event.id()),
    )?;
    let refused = |why: Refusal| refused.get(&why).copied().unwrap_or(0);
    Ok(Json(Stats {
        waiting: line.waiting(),
        admitted_total: line.admitted,
        active: line.active,
        held_seats: seats.held,
        sold_seats: seats.sold,
        available_seats: event
            .spec
            .seats_total()
            .saturating_sub(seats.held + seats.sold),
        orders_paid: orders.0,
        orders_expired: orders.1,
        refused: Refused {
            challenge_required: refused(Refusal::ChallengeRequired),
            challenge_used: refused(Refusal::ChallengeUsed),
            code_required: refused(Refusal::CodeRequired),
            invalid_code: refused(Refusal::InvalidCode),
            too_many_places: refused(Refusal::TooManyPlaces),
            rate_limited: refused(Refusal::RateLimited),
        },
    }))
}

#[derive(Serialize, ToSchema)]
pub struct EventList {
    events: Vec<EventBody>,
}

#[utoipa::path(
    get,
    path = "/api/events",
    operation_id = "listEvents",
    summary = "Every event",
    tag = "public",
    responses((status = 200, description = "The events", body = EventList))
)]
pub async fn list(State(state): State<AppState>) -> Json<EventList> {
    let now = state.clock.now();
    Json(EventList {
        events: state
            .catalog
            .all()
            .iter()
            .map(|e| EventBody::new(&state, e, now))
            .collect(),
    })
}

#[utoipa::path(
    get,
    path = "/api/events/{id}",
    operation_id = "getEvent",
    summary = "One event",
    tag = "public",
    params(
        ("id" = EventId, Path, description = "The event's id"),
        openapi::IfNoneMatch,
    ),
    responses(
        (status = 200, description = "The event", body = EventBody,
            headers(("ETag" = String, description = "The validator to send back in If-None-Match"))),
        (status = 304, response = openapi::NotModified),
        (status = 404, response = openapi::NotFound),
    )
)]
pub async fn show(
    State(state): State<AppState>,
    PathParam(id): PathParam,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let event = find(&state, &id)?;
    json_with_etag(&headers, &EventBody::new(&state, &event, state.clock.now()))
}
