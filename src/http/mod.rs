//! The HTTP surface: API.md's routes, the pages, and operations endpoints.

mod challenge;
mod codes;
mod conditional;
mod error;
mod events;
mod extract;
mod gate;
mod i18n;
mod keys;
mod limit;
mod openapi;
mod ops;
mod orders;
mod pages;
mod queue;
mod seatmap;

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, RwLock};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use metrics::Histogram;
use metrics_exporter_prometheus::PrometheusHandle;
use tower_http::compression::CompressionLayer;
use tower_http::compression::predicate::{NotForContentType, Predicate, SizeAbove};
use tower_http::trace::TraceLayer;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use error::ApiError;
pub use limit::ClientLimiter;
pub use openapi::json as openapi_json;

use crate::config::Secret;
use crate::ports::{BackendError, Clock};
use crate::services::booking::Booking;
use crate::services::catalog::Catalog;
use crate::services::codes::Invitations;
use crate::services::door::FailureDoor;
use crate::services::line::Line;
use crate::services::readiness::Readiness;
use crate::services::refusals::Refusals;
use crate::tasks::Tasks;

/// Request bodies above this are refused with 413 (API.md).
pub const BODY_LIMIT: usize = 64 * 1024;
/// Scripts and styles from this origin only, and no inline script; workers
/// (the join challenge's solver) from this origin only.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; worker-src 'self'; style-src 'self'; img-src 'self' data:; \
     connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'; object-src 'none'";

/// No request is worked on for longer than this...
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);
/// ...but bulk work an operator asks for: a million invitation codes are
/// hashed, written and shown in one answer (a couple of seconds in a release
/// build, several times that in a debug build on a loaded machine).
pub const BULK_REQUEST_TIMEOUT: Duration = Duration::from_secs(120);

#[derive(Clone)]
pub struct AppState(Arc<Inner>);

pub struct Inner {
    pub line: Arc<Line>,
    pub catalog: Arc<Catalog>,
    pub booking: Arc<Booking>,
    pub invitations: Invitations,
    pub refusals: Arc<Refusals>,
    pub admin_token: Secret,
    pub admin_door: FailureDoor,
    /// Unknown invitation codes, per client address.
    pub code_door: FailureDoor,
    pub readiness: Readiness,
    pub metrics: PrometheusHandle,
    pub limiter: ClientLimiter,
    pub trust_forwarded: bool,
    /// Where visitors reach this deployment (`ANTEROOM_PUBLIC_URL`).
    pub public_url: url::Url,
    /// Owns the changes that outlive their request (see `orders::to_completion`).
    pub tasks: Tasks,
    pub clock: Clock,
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

    /// `path` (starting with `/`) under the deployment's public URL.
    pub fn public_link(&self, path: &str) -> String {
        format!("{}{path}", self.public_url.as_str().trim_end_matches('/'))
    }
}

/// Every route with its handler and its description: the OpenAPI document
/// ([`openapi::document`]) is what this registers, so that a route cannot be
/// served without being described.
pub fn routes() -> OpenApiRouter<AppState> {
    // API.md: every JSON and HTML answer over 1 KB, gzip or brotli as the client allows.
    let compression = CompressionLayer::new().gzip(true).br(true).compress_when(
        SizeAbove::new(1024)
            .and(NotForContentType::GRPC)
            .and(NotForContentType::IMAGES),
    );
    let compressed = OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .routes(routes!(events::create))
        .routes(routes!(events::update))
        .routes(routes!(events::stats))
        .routes(routes!(codes::stats))
        .routes(routes!(events::list))
        .routes(routes!(events::show))
        .routes(routes!(challenge::show))
        .routes(routes!(queue::join))
        .routes(routes!(orders::seat_map))
        .routes(routes!(seatmap::show))
        .routes(routes!(orders::hold))
        .routes(routes!(orders::propose_best))
        .routes(routes!(orders::show, orders::cancel))
        .routes(routes!(orders::pay))
        .routes(routes!(ops::healthz))
        .routes(routes!(ops::readyz))
        .routes(routes!(ops::metrics))
        .routes(routes!(ops::openapi))
        .routes(routes!(keys::jwks))
        .routes(routes!(pages::home))
        .routes(routes!(pages::waiting))
        .routes(routes!(gate::back))
        .routes(routes!(pages::seats))
        .routes(routes!(pages::admin))
        .routes(routes!(pages::asset))
        .route_layer(compression.clone())
        .route_layer(axum::middleware::from_fn(|req, next| {
            within(REQUEST_TIMEOUT, req, next)
        }));
    let bulk = OpenApiRouter::new()
        .routes(routes!(codes::issue))
        .route_layer(compression)
        .route_layer(axum::middleware::from_fn(|req, next| {
            within(BULK_REQUEST_TIMEOUT, req, next)
        }));
    // The hottest routes answer well under 1 KB, and every wait in them has its
    // own bound (the log position's, a Redis command's) or there is none (the
    // gate checks a signature): they pay for neither the compression layer nor
    // the deadline's timer.
    compressed
        .merge(bulk)
        .routes(routes!(queue::poll, queue::leave))
        .routes(routes!(gate::check))
}

pub fn router(state: AppState) -> Router {
    let (api, _) = routes().split_for_parts();
    let api = api
        .fallback(|| async { ApiError::NotFound })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed });
    api.layer(axum::middleware::from_fn(record_metrics))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(TraceLayer::new_for_http().make_span_with(request_span))
        .layer(axum::middleware::map_response(with_security_headers))
        .with_state(state)
}

/// The span of a request's logs. None for the status poll: at tens of
/// thousands per second its span would cost more than its answer, and what an
/// operator watches of it is in the metrics; its failures are still logged.
fn request_span(req: &Request) -> tracing::Span {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", MatchedPath::as_str);
    if route == queue::POLL_ROUTE && req.method() == Method::GET {
        return tracing::Span::none();
    }
    tracing::info_span!("request", method = %req.method(), route)
}

/// Headers every answer carries unless its handler set them.
static SECURITY_HEADERS: [(HeaderName, HeaderValue); 4] = [
    (
        HeaderName::from_static("x-content-type-options"),
        HeaderValue::from_static("nosniff"),
    ),
    (
        HeaderName::from_static("x-frame-options"),
        HeaderValue::from_static("DENY"),
    ),
    (
        HeaderName::from_static("referrer-policy"),
        HeaderValue::from_static("no-referrer"),
    ),
    (
        HeaderName::from_static("content-security-policy"),
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    ),
];

async fn with_security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    for (name, value) in &SECURITY_HEADERS {
        if !headers.contains_key(name) {
            headers.insert(name, value.clone());
        }
    }
    response
}

/// No request is worked on for longer than `deadline` (a slow body included);
/// past it, `503` with `Retry-After` in the API's error shape.
async fn within(deadline: Duration, req: Request, next: Next) -> Response {
    match tokio::time::timeout(deadline, next.run(req)).await {
        Ok(response) => response,
        Err(_) => ApiError::Unavailable(BackendError::unavailable(
            "anteroom",
            "the request timed out",
        ))
        .into_response(),
    }
}

/// Counts and times every request by route and status.
async fn record_metrics(req: Request, next: Next) -> Response {
    static TIMERS: LazyLock<RequestTimers> = LazyLock::new(RequestTimers::default);
    let route = req.extensions().get::<MatchedPath>().cloned();
    let method = req.method().clone();
    let started = Instant::now();
    let response = next.run(req).await;
    let route = route.as_ref().map_or("unmatched", MatchedPath::as_str);
    TIMERS
        .timer(route, &method, response.status())
        .record(started.elapsed().as_secs_f64());
    response
}

/// The request histograms by route, method and status, registered once each:
/// recording a request then allocates nothing (the status poll is the hottest path).
#[derive(Default)]
struct RequestTimers(RwLock<HashMap<String, TimersByOutcome>>);

/// One route's histograms, by method and status.
type TimersByOutcome = HashMap<(Method, StatusCode), Histogram>;

impl RequestTimers {
    fn timer(&self, route: &str, method: &Method, status: StatusCode) -> Histogram {
        let known = self.0.read().unwrap_or_else(|p| p.into_inner());
        if let Some(timer) = known
            .get(route)
            .and_then(|by| by.get(&(method.clone(), status)))
        {
            return timer.clone();
        }
        drop(known);
        let labels = [
            ("route", route.to_owned()),
            ("method", method.to_string()),
            ("status", status.as_str().to_owned()),
        ];
        let timer = metrics::histogram!("anteroom_http_request_duration_seconds", &labels);
        let mut known = self.0.write().unwrap_or_else(|p| p.into_inner());
        known
            .entry(route.to_owned())
            .or_default()
            .insert((method.clone(), status), timer.clone());
        timer
    }
}
