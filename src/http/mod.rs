//! The HTTP surface: API.md's routes, the pages, and operations endpoints.

mod challenge;
mod codes;
mod conditional;
mod deadline;
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
mod security;
mod timing;

use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::response::Response;
use axum::routing::future::RouteFuture;
use futures_util::future::Either;
use metrics_exporter_prometheus::PrometheusHandle;
use tower::layer::util::{Identity, Stack};
use tower_http::compression::CompressionLayer;
use tower_http::compression::predicate::{NotForContentType, Predicate, SizeAbove};
use tower_http::trace::TraceLayer;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use error::ApiError;
pub use limit::ClientLimiter;
pub use openapi::json as openapi_json;

use deadline::DeadlineLayer;
use security::SecurityHeadersLayer;
use timing::RecordTimingsLayer;

use crate::config::Secret;
use crate::ports::Clock;
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
    let span = TraceLayer::new_for_http().make_span_with(request_span);
    // A route's request span, its answer compressed, within `deadline`: one
    // layer, as each `route_layer` call boxes the route again, paid for on
    // every request.
    let around_api_route = |deadline| {
        tower::ServiceBuilder::new()
            .layer(span.clone())
            .layer(compression.clone())
            .layer(DeadlineLayer::new(deadline))
    };
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
        .route_layer(around_api_route(REQUEST_TIMEOUT));
    let bulk = OpenApiRouter::new()
        .routes(routes!(codes::issue))
        .route_layer(around_api_route(BULK_REQUEST_TIMEOUT));
    // The hottest routes answer well under 1 KB, and every wait in them has its
    // own bound (the log position's, a Redis command's) or there is none (the
    // gate checks a signature): they pay for neither the compression layer nor
    // the deadline's timer.
    let without_deadline = OpenApiRouter::new()
        .routes(routes!(queue::leave))
        .routes(routes!(gate::check))
        .route_layer(span);
    // Nor has the status poll a request span: at tens of thousands per second
    // it would cost more than the answer. What an operator watches of it is in
    // the metrics, and its failures are logged (`ApiError`).
    compressed
        .merge(bulk)
        .merge(without_deadline)
        .routes(routes!(queue::poll))
}

/// The deployment's HTTP service: axum's router, but the status poll answered
/// before it ([`PollFirst`]).
pub fn service(
    state: AppState,
) -> impl tower::Service<Request, Response = Response, Error = Infallible, Future: Send>
+ Clone
+ Send
+ 'static {
    let (api, _) = routes().split_for_parts();
    let api = api
        .fallback(|| async { ApiError::NotFound })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed });
    // One layer, not several: `Router::layer` boxes every route's service
    // again for each call.
    let routes = api
        .layer(
            tower::ServiceBuilder::new()
                .layer(every_answer(RecordTimingsLayer::by_matched_route()))
                .layer(DefaultBodyLimit::max(BODY_LIMIT)),
        )
        .with_state(state.clone());
    let poll = every_answer(RecordTimingsLayer::under(queue::POLL_ROUTE))
        .service_fn(move |request| queue::answer_poll(state.clone(), request));
    PollFirst { poll, routes }
}

/// What every answer carries and how it is counted: the security headers and
/// the request's timing.
fn every_answer(
    timings: RecordTimingsLayer,
) -> tower::ServiceBuilder<Stack<RecordTimingsLayer, Stack<SecurityHeadersLayer, Identity>>> {
    tower::ServiceBuilder::new()
        .layer(SecurityHeadersLayer)
        .layer(timings)
}

/// The status poll, answered without axum's router: at tens of thousands
/// per second its routing (matching the path, percent-decoding the token,
/// the route's boxed service) was a sixth of the poll's instructions. Every
/// other request, and a poll [`queue::polled_token`] leaves to the router,
/// is routed as usual, to the same answer.
#[derive(Clone)]
struct PollFirst<P> {
    poll: P,
    routes: Router,
}

impl<P> tower::Service<Request> for PollFirst<P>
where
    P: tower::Service<Request, Response = Response, Error = Infallible>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Either<P::Future, RouteFuture<Infallible>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        ready!(self.poll.poll_ready(cx))?;
        tower::Service::<Request>::poll_ready(&mut self.routes, cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        if queue::polled_token(request.method(), request.uri()).is_some() {
            Either::Left(self.poll.call(request))
        } else {
            Either::Right(self.routes.call(request))
        }
    }
}

/// The span of a request's logs.
fn request_span(req: &Request) -> tracing::Span {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", MatchedPath::as_str);
    tracing::info_span!("request", method = %req.method(), route)
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::{Method, StatusCode};
    use axum::response::IntoResponse;
    use tower::ServiceExt;

    use super::*;

    #[test]
    fn the_polls_route_is_the_only_one_under_its_prefix() {
        let (_, document) = routes().split_for_parts();
        let prefix = queue::POLL_ROUTE.trim_end_matches("{token}");
        let under: Vec<_> = document
            .paths
            .paths
            .iter()
            .filter(|(path, _)| path.starts_with(prefix))
            .collect();
        assert_eq!(
            under.len(),
            1,
            "{:?}",
            under.iter().map(|(path, _)| path).collect::<Vec<_>>()
        );
        let (path, item) = under[0];
        assert_eq!(path, queue::POLL_ROUTE);
        assert!(item.get.is_some(), "the poll is a GET");
    }

    #[tokio::test]
    async fn a_plain_poll_is_answered_before_the_router_and_anything_else_by_it() {
        let poll = tower::service_fn(|_: Request| async {
            Ok::<_, Infallible>(StatusCode::IM_A_TEAPOT.into_response())
        });
        let routes = Router::new().fallback(|| async { StatusCode::NOT_FOUND });
        let service = PollFirst { poll, routes };
        for (method, uri, answer) in [
            (Method::GET, "/api/queue/abc", StatusCode::IM_A_TEAPOT),
            (Method::GET, "/api/queue/abc?x=1", StatusCode::IM_A_TEAPOT),
            (Method::GET, "/api/queue/%41bc", StatusCode::NOT_FOUND),
            (Method::HEAD, "/api/queue/abc", StatusCode::NOT_FOUND),
            (Method::GET, "/api/events", StatusCode::NOT_FOUND),
        ] {
            let request = Request::builder()
                .method(method.clone())
                .uri(uri)
                .body(Body::empty())
                .expect("a request");
            let response = service.clone().oneshot(request).await.expect("infallible");
            assert_eq!(response.status(), answer, "{method} {uri}");
        }
    }
}
