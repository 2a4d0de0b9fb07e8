//! Invitation codes: the operator issues them (generated or imported) and
//! reads how many are issued and used.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use utoipa::openapi::{RefOr, Schema};
use utoipa::{PartialSchema, ToSchema};

use super::AppState;
use super::error::ApiError;
use super::events::{find, whole_number};
use super::extract::{Admin, JsonBody, PathParam, RequestBody};
use super::openapi;
use crate::domain::EventId;
use crate::domain::codes::{InviteCode, MAX_CODE_CHARS, MAX_GENERATED, MIN_CODE_CHARS};

/// Either `count` (generate that many codes) or `codes` (import these); its
/// schema is [`openapi::issue_codes`], the two fields are read here so that
/// each mistake is named in words.
#[derive(Deserialize)]
pub struct IssueCodes {
    #[serde(default, deserialize_with = "optional_whole_number")]
    count: Option<u64>,
    #[serde(default)]
    codes: Option<Vec<String>>,
}

impl PartialSchema for IssueCodes {
    fn schema() -> RefOr<Schema> {
        openapi::issue_codes().into()
    }
}

impl ToSchema for IssueCodes {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("CodesIssue")
    }
}

fn optional_whole_number<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<u64>, D::Error> {
    Option::<serde_json::Value>::deserialize(deserializer)?
        .filter(|v| !v.is_null())
        .map(|v| whole_number(v).map_err(serde::de::Error::custom))
        .transpose()
}

impl RequestBody for IssueCodes {
    const OBJECTS: &'static [&'static [&'static str]] = &[&[]];
}

/// The codes, shown this once: only their keyed hashes are kept
#[derive(Serialize, ToSchema)]
#[schema(as = CodesIssued)]
pub struct IssuedCodes {
    codes: Vec<String>,
    /// How many of them were not issued already (an imported code issued before is not counted twice)
    added: u64,
}

/// How many codes the event has
#[derive(Serialize, ToSchema)]
#[schema(as = CodeStats)]
pub struct CodeStats {
    issued: u64,
    /// Codes that have taken a place in the line
    used: u64,
}

#[utoipa::path(
    post,
    path = "/api/admin/events/{id}/codes",
    operation_id = "issueCodes",
    summary = "Generate or import invitation codes",
    description = "Codes are shown once, in this answer: the record keeps only their keyed hashes (HMAC-SHA256 with the deployment's secret). On an event with `access: codes`, a join must bring one.",
    tag = "admin",
    security(("admin" = [])),
    params(("id" = EventId, Path, description = "The event's id")),
    request_body = IssueCodes,
    responses(
        (status = 201, description = "The codes, shown this once", body = IssuedCodes),
        (status = 401, response = openapi::Unauthorized),
        (status = 404, response = openapi::NotFound),
        (status = 413, response = openapi::PayloadTooLarge),
        (status = 422, response = openapi::InvalidRequest),
        (status = 429, response = openapi::RateLimited),
        (status = 503, response = openapi::Unavailable),
    )
)]
pub async fn issue(
    State(state): State<AppState>,
    _: Admin,
    PathParam(id): PathParam,
    JsonBody(body): JsonBody<IssueCodes>,
) -> Result<(StatusCode, Json<IssuedCodes>), ApiError> {
    let event = find(&state, &id)?;
    let issued = match (body.count, body.codes) {
        (Some(count), None) => {
            if !(1..=MAX_GENERATED).contains(&count) {
                return Err(ApiError::InvalidRequest(format!(
                    "count: must be 1 to {MAX_GENERATED}"
                )));
            }
            let started = std::time::Instant::now();
            let codes = state.invitations.generate(event.id(), count).await?;
            tracing::info!(event = %event.id(), count, elapsed_ms = started.elapsed().as_millis() as u64,
                "invitation codes generated");
            IssuedCodes {
                added: count,
                codes,
            }
        }
        (None, Some(codes)) => {
            if codes.is_empty() {
                return Err(ApiError::InvalidRequest(
                    "codes: must list at least one code".into(),
                ));
            }
            let parsed = codes
                .iter()
                .enumerate()
                .map(|(i, code)| InviteCode::parse(code, &format!("codes[{i}]")))
                .collect::<Result<Vec<_>, _>>()?;
            let added = state.invitations.import(event.id(), &parsed).await?;
            tracing::info!(event = %event.id(), count = codes.len(), added, "invitation codes imported");
            IssuedCodes { codes, added }
        }
        (Some(_), Some(_)) => {
            return Err(ApiError::InvalidRequest(
                "count: give either count (to generate codes) or codes (to import them), not both"
                    .into(),
            ));
        }
        (None, None) => {
            return Err(ApiError::InvalidRequest(format!(
                "count: is required (1 to {MAX_GENERATED} codes to generate), or codes: a list of \
                 codes to import ({MIN_CODE_CHARS} to {MAX_CODE_CHARS} letters and digits each)"
            )));
        }
    };
    Ok((StatusCode::CREATED, Json(issued)))
}

#[utoipa::path(
    get,
    path = "/api/admin/events/{id}/codes/stats",
    operation_id = "getCodeStats",
    summary = "How many invitation codes are issued and used",
    tag = "admin",
    security(("admin" = [])),
    params(("id" = EventId, Path, description = "The event's id")),
    responses(
        (status = 200, description = "The counts", body = CodeStats),
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
) -> Result<Json<CodeStats>, ApiError> {
    let event = find(&state, &id)?;
    let counts = state.invitations.counts(event.id()).await?;
    Ok(Json(CodeStats {
        issued: counts.issued,
        used: counts.used,
    }))
}
