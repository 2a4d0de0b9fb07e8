//! Liveness, readiness, metrics and the OpenAPI document.

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;

use super::AppState;
use super::error::ApiError;
use super::openapi;

#[utoipa::path(
    get,
    path = "/healthz",
    operation_id = "healthz",
    summary = "Liveness: 200 while the process runs",
    tag = "operations",
    responses((status = 200, description = "Alive", body = String, content_type = "text/plain"))
)]
pub async fn healthz() -> &'static str {
    "ok"
}

/// `200` once every backend answers; otherwise `503` in the API's error shape
/// (which backends failed, and why, goes to the log).
#[utoipa::path(
    get,
    path = "/readyz",
    operation_id = "readyz",
    summary = "Readiness: 200 only when every backend answers",
    tag = "operations",
    responses(
        (status = 200, description = "Every backend answers", body = String, content_type = "text/plain"),
        (status = 503, response = inline(openapi::NotReady)),
    )
)]
pub async fn readyz(State(state): State<AppState>) -> Result<&'static str, ApiError> {
    let mut failures = state.readiness.failures().await.into_iter();
    let Some(first) = failures.next() else {
        return Ok("ready");
    };
    // The answer logs the first failure; the others are logged here.
    failures.for_each(|other| tracing::warn!(error = %other, "not ready"));
    Err(ApiError::Unavailable(first))
}

#[utoipa::path(
    get,
    path = "/metrics",
    operation_id = "metrics",
    summary = "Prometheus metrics",
    tag = "operations",
    responses((status = 200, description = "Prometheus text exposition format", body = String, content_type = "text/plain"))
)]
pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
}

/// The machine-readable copy of the HTTP contract (API.md), generated from the handlers.
#[utoipa::path(
    get,
    path = "/api/openapi.json",
    operation_id = "openapi",
    summary = "This document: the machine-readable copy of the contract",
    tag = "operations",
    responses((status = 200, description = "OpenAPI 3.1", body = Object, content_type = "application/json"))
)]
pub async fn openapi() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        openapi::json(),
    )
}
