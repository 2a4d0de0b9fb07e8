//! The HTTP surface: API.md's routes, the pages, and operations endpoints.

mod error;
mod events;
mod extract;
mod limit;
mod ops;
mod orders;
mod pages;
mod queue;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use axum::routing::{get, post};
use metrics_exporter_prometheus::PrometheusHandle;
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

pub use error::ApiError;
pub use limit::ClientLimiter;

use crate::app::Backends;
use crate::config::Secret;
use crate::services::booking::Booking;
use crate::services::catalog::Catalog;
use crate::services::line::Line;

/// Request bodies above this are refused with 413 (API.md).
pub const BODY_LIMIT: usize = 64 * 1024;
/// Scripts and styles from this origin only, and no inline script.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
     connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'; object-src 'none'";

/// No request is worked on for longer than this.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

#[derive(Clone)]
pub struct AppState(Arc<Inner>);

pub struct Inner {
    pub line: Arc<Line>,
    pub catalog: Arc<Catalog>,
    pub booking: Arc<Booking>,
    pub admin_token: Secret,
    pub backends: Backends,
    pub metrics: PrometheusHandle,
    pub limiter: ClientLimiter,
    pub trust_forwarded: bool,
}

impl std::ops::Deref for AppState {
    type Target = Inner;

    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl AppState {
    pub fn new(inner: Inner) -> Self {
        Self(Arc::new(inner))
    }
}

pub fn router(state: AppState) -> Router {
    let api = Router::new()
        .route("/api/admin/events", post(events::create))
        .route("/api/admin/events/{id}", axum::routing::patch(events::update))
        .route("/api/admin/events/{id}/stats", get(events::stats))
        .route("/api/events", get(events::list))
        .route("/api/events/{id}", get(events::show))
        .route("/api/events/{id}/queue", post(queue::join))
        .route("/api/queue/{token}", get(queue::poll).delete(queue::leave))
        .route("/api/events/{id}/seats", get(orders::seat_map))
        .route("/api/events/{id}/holds", post(orders::hold))
        .route("/api/orders/{id}", get(orders::show).delete(orders::cancel))
        .route("/api/orders/{id}/pay", post(orders::pay))
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/metrics", get(ops::metrics))
        .route("/", get(pages::home))
        .route("/static/{file}", get(pages::asset))
        .route("/events/{id}", get(pages::waiting))
        .route("/events/{id}/seats", get(pages::seats))
        .route("/admin", get(pages::admin))
        .route("/api/openapi.json", get(ops::openapi))
        .fallback(|| async { ApiError::NotFound });

    api.layer(axum::middleware::from_fn(record_metrics))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(TimeoutLayer::with_status_code(axum::http::StatusCode::SERVICE_UNAVAILABLE, REQUEST_TIMEOUT))
        .layer(TraceLayer::new_for_http().make_span_with(|req: &Request| {
            let route = req.extensions().get::<MatchedPath>().map_or("unmatched", |p| p.as_str());
            tracing::info_span!("request", method = %req.method(), route)
        }))
        .layer(security_header("x-content-type-options", "nosniff"))
        .layer(security_header("x-frame-options", "DENY"))
        .layer(security_header("referrer-policy", "no-referrer"))
        .layer(security_header("content-security-policy", CONTENT_SECURITY_POLICY))
        .with_state(state)
}

fn security_header(name: &'static str, value: &'static str) -> SetResponseHeaderLayer<HeaderValue> {
    SetResponseHeaderLayer::if_not_present(HeaderName::from_static(name), HeaderValue::from_static(value))
}

/// Counts and times every request by route and status.
async fn record_metrics(req: Request, next: Next) -> Response {
    let route = req.extensions().get::<MatchedPath>().map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = req.method().to_string();
    let started = Instant::now();
    let response = next.run(req).await;
    let labels = [("route", route), ("method", method), ("status", response.status().as_u16().to_string())];
    metrics::histogram!("anteroom_http_request_duration_seconds", &labels).record(started.elapsed().as_secs_f64());
    response
}
