//! The compact, versioned seat map: every seat as one character, or only the
//! seats that changed since the version a client has.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use serde::ser::Serializer;
use serde::{Deserialize, Serialize};

use super::AppState;
use super::conditional::json_at_version;
use super::error::ApiError;
use super::events::find;
use super::extract::PathParam;
use crate::domain::{EventId, SeatState, Section};
use crate::services::booking::VersionedAnswer;

/// `?since=<version>`, read as text so that a bad value is the API's own `422`.
#[derive(Deserialize)]
pub struct SeatMapQuery {
    since: Option<String>,
}

#[derive(Serialize)]
struct WholeMap<'a> {
    event: &'a EventId,
    version: u64,
    sections: &'a [Section],
    states: String,
}

#[derive(Serialize)]
struct ChangedSince<'a> {
    event: &'a EventId,
    version: u64,
    changes: ChangedSeats<'a>,
}

/// `{"<seat id>": "f"|"h"|"s", …}`, written straight from the store's answer.
struct ChangedSeats<'a>(&'a [(String, SeatState)]);

impl Serialize for ChangedSeats<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.0.iter().map(|(seat, state)| (seat, state.code())))
    }
}

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
