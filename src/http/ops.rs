//! Liveness, readiness and metrics.

use axum::extract::State;
use axum::http::StatusCode;
use axum::http::header;
use axum::response::IntoResponse;

use super::AppState;

pub async fn healthz() -> &'static str {
    "ok"
}

/// Ready only when every backend answers.
pub async fn readyz(State(state): State<AppState>) -> (StatusCode, String) {
    let b = &state.backends;
    let (repo, store, queue) = tokio::join!(b.events.ping(), b.line_store.ping(), b.line_queue.ping());
    let failures: Vec<String> =
        [repo, store, queue].into_iter().filter_map(Result::err).map(|e| e.to_string()).collect();
    if failures.is_empty() {
        (StatusCode::OK, "ready".into())
    } else {
        tracing::warn!(?failures, "not ready");
        let backends: Vec<&str> = failures.iter().map(|f| f.split(' ').next().unwrap_or("a backend")).collect();
        (StatusCode::SERVICE_UNAVAILABLE, format!("unavailable: {}", backends.join(", ")))
    }
}

pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], state.metrics.render())
}

/// The machine-readable copy of the HTTP contract (API.md).
pub async fn openapi() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], include_str!("../../static/openapi.json"))
}
