//! The compact, versioned seat map: every seat as one character, or only the
//! seats that changed since the version a client has.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use serde::ser::Serializer;
use serde::{Deserialize, Serialize};
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Schema, Type};
use utoipa::{IntoParams, PartialSchema, ToSchema};

use super::AppState;
use super::conditional::json_at_version;
use super::error::ApiError;
use super::events::find;
use super::extract::PathParam;
use super::openapi;
use crate::domain::{EventId, SeatState, Section};
use crate::services::booking::VersionedAnswer;

/// `?since=<version>`, read as text so that a bad value is the API's own `422`.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SeatMapQuery {
    /// A version the client has: only the seats changed after it are answered, or the whole map when those changes are no longer kept, would be longer than the whole map, or the version is from the future. Not a whole number 0 or more: 422
    #[param(schema_with = version)]
    since: Option<String>,
}

/// A seat map's version: any `u64` (`format: int64` would refuse the upper half).
fn version() -> ObjectBuilder {
    ObjectBuilder::new()
        .description(Some("A version of the seat map the client has"))
        .schema_type(Type::Integer)
        .minimum(Some(0))
        .maximum(Some(u64::MAX))
}

#[derive(Serialize, ToSchema)]
struct WholeMap<'a> {
    event: &'a EventId,
    /// The seat map's version: it grows with every change of a seat's state, and every instance answers the same states for the same version
    version: u64,
    #[schema(schema_with = openapi::sections)]
    sections: &'a [Section],
    /// One character per seat, section by section in the event's order, row 1..rows, seat 1..seats_per_row: `f` free, `h` held, `s` sold
    #[schema(pattern = "^[fhs]*$")]
    states: String,
}

#[derive(Serialize, ToSchema)]
struct ChangedSince<'a> {
    event: &'a EventId,
    /// The seat map's version: it grows with every change of a seat's state, and every instance answers the same states for the same version
    version: u64,
    #[schema(schema_with = changed_seats)]
    changes: ChangedSeats<'a>,
}

/// The whole map, or with `since` the seats changed after it.
enum CompactSeatMap {}

impl PartialSchema for CompactSeatMap {
    fn schema() -> RefOr<Schema> {
        OneOfBuilder::new()
            .item(WholeMap::schema())
            .item(ChangedSince::schema())
            .into()
    }
}

impl ToSchema for CompactSeatMap {
    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        WholeMap::schemas(schemas);
        ChangedSince::schemas(schemas);
    }
}

fn changed_seats() -> ObjectBuilder {
    let codes = [SeatState::Free, SeatState::Held, SeatState::Sold].map(|s| s.code().to_string());
    ObjectBuilder::new()
        .description(Some(
            "Seat id \u{2192} its state now, for each seat changed after `since`",
        ))
        .additional_properties(Some(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .enum_values(Some(codes)),
        ))
        .examples([serde_json::json!({"A-1-2": "h", "B-10-4": "f"})])
}

/// `{"<seat id>": "f"|"h"|"s", …}`, written straight from the store's answer.
struct ChangedSeats<'a>(&'a [(String, SeatState)]);

impl Serialize for ChangedSeats<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.0.iter().map(|(seat, state)| (seat, state.code())))
    }
}

#[utoipa::path(
    get,
    path = "/api/events/{id}/seatmap",
    operation_id = "getCompactSeatMap",
    summary = "The compact, versioned seat map: one character per seat, or only the seats changed since a version",
    tag = "public",
    params(
        ("id" = EventId, Path, description = "The event's id"),
        SeatMapQuery,
        openapi::IfNoneMatch,
    ),
    responses(
        (status = 200, body = inline(CompactSeatMap),
            description = "The whole map (`states`), or with `since` the seats changed after it (`changes`)",
            headers(("ETag" = String, description = "The validator to send back in If-None-Match"))),
        (status = 304, response = openapi::NotModified),
        (status = 404, response = openapi::NotFound),
        (status = 422, response = openapi::InvalidRequest),
        (status = 503, response = openapi::Unavailable),
    )
)]
pub async fn show(
    State(state): State<AppState>,
    PathParam(id): PathParam,
    query: Result<Query<SeatMapQuery>, QueryRejection>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let event = find(&state, &id)?;
    let Query(query) =
        query.map_err(|e| ApiError::InvalidRequest(format!("invalid query: {}", e.body_text())))?;
    let since = query
        .since
        .as_deref()
        .map(|raw| {
            raw.parse::<u64>().map_err(|_| {
                ApiError::InvalidRequest(
                    "since: must be a version of the seat map, a whole number 0 or more".into(),
                )
            })
        })
        .transpose()?;
    match state.booking.versioned_map(&event, since).await? {
        VersionedAnswer::Whole(map) => json_at_version(
            &headers,
            map.version(),
            &WholeMap {
                event: event.id(),
                version: map.version(),
                sections: &event.spec.sections,
                states: map.codes(),
            },
        ),
        VersionedAnswer::Changes { version, seats } => json_at_version(
            &headers,
            version,
            &ChangedSince {
                event: event.id(),
                version,
                changes: ChangedSeats(&seats),
            },
        ),
    }
}
