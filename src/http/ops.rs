//! Liveness, readiness and metrics.

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;

use super::AppState;
use super::error::ApiError;

pub async fn healthz() -> &'static str {
    "ok"
}

/// `200` once every backend answers; otherwise `503` in the API's error shape
/// (which backends failed, and why, goes to the log).
pub async fn readyz(State(state): State<AppState>) -> Result<&'static str, ApiError> {
    let mut failures = state.readiness.failures().await.into_iter();
    let Some(first) = failures.next() else {
        return Ok("ready");
    };
    // The answer logs the first failure; the others are logged here.
    failures.for_each(|other| tracing::warn!(error = %other, "not ready"));
    Err(ApiError::Unavailable(first))
}

pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
}

/// The machine-readable copy of the HTTP contract (API.md).
pub async fn openapi() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        include_str!("../../static/openapi.json"),
    )
}
