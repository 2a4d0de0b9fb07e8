//! Every request counted and timed by route, method and status
//! (`anteroom_http_request_duration_seconds`), around the route's own future
//! rather than a boxed one: the status poll is the hottest path.

use std::pin::Pin;
use std::sync::{LazyLock, RwLock};
use std::task::{Context, Poll, ready};
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::{Method, Response, StatusCode};
use metrics::Histogram;
use tower::{Layer, Service};

/// Times the requests of every route it is laid around.
#[derive(Debug, Clone, Copy)]
pub struct RecordTimingsLayer {
    /// The route of every request, for a service axum's router does not route;
    /// `None`: the route the router matched.
    route: Option<&'static str>,
}

impl RecordTimingsLayer {
    /// Each request under the route axum's router matched it to.
    pub const fn by_matched_route() -> Self {
        Self { route: None }
    }

    /// Every request under `route`.
    pub const fn under(route: &'static str) -> Self {
        Self { route: Some(route) }
    }
}

impl<S> Layer<S> for RecordTimingsLayer {
    type Service = RecordTimings<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RecordTimings {
            inner,
            route: self.route,
        }
    }
}

#[derive(Debug, Clone)]
pub struct RecordTimings<S> {
    inner: S,
    route: Option<&'static str>,
}

impl<S, ResBody> Service<Request> for RecordTimings<S>
where
    S: Service<Request, Response = Response<ResBody>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Timed<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        Timed {
            route: match self.route {
                Some(route) => Route::Named(route),
                None => Route::Matched(req.extensions().get::<MatchedPath>().cloned()),
            },
            method: req.method().clone(),
            started: Instant::now(),
            answer: self.inner.call(req),
        }
    }
}

pin_project_lite::pin_project! {
    /// A request's answer, timed when its head is ready.
    pub struct Timed<F> {
        #[pin]
        answer: F,
        route: Route,
        method: Method,
        started: Instant,
    }
}

impl<F, ResBody, E> Future for Timed<F>
where
    F: Future<Output = Result<Response<ResBody>, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        static TIMERS: LazyLock<RequestTimers> = LazyLock::new(RequestTimers::default);
        let this = self.project();
        let answer = ready!(this.answer.poll(cx));
        if let Ok(response) = &answer {
            TIMERS
                .timer(this.route.as_str(), this.method, response.status())
                .record(this.started.elapsed().as_secs_f64());
        }
        Poll::Ready(answer)
    }
}

/// A request's route, as its label.
enum Route {
    Named(&'static str),
    Matched(Option<MatchedPath>),
}

impl Route {
    fn as_str(&self) -> &str {
        match self {
            Self::Named(route) => route,
            Self::Matched(matched) => matched.as_ref().map_or("unmatched", MatchedPath::as_str),
        }
    }
}

/// The request histograms by route, method and status, registered once each:
/// recording a request then allocates nothing (the status poll is the hottest path).
#[derive(Default)]
struct RequestTimers(RwLock<foldhash::HashMap<String, TimersByOutcome>>);

/// One route's histograms, by method (its label) and status.
type TimersByOutcome = foldhash::HashMap<(&'static str, StatusCode), Histogram>;

impl RequestTimers {
    fn timer(&self, route: &str, method: &Method, status: StatusCode) -> Histogram {
        let method = method_label(method);
        let known = self.0.read().unwrap_or_else(|p| p.into_inner());
        if let Some(timer) = known.get(route).and_then(|by| by.get(&(method, status))) {
            return timer.clone();
        }
        drop(known);
        let labels = [
            ("route", route.to_owned()),
            ("method", method.to_owned()),
            ("status", status.as_str().to_owned()),
        ];
        let timer = metrics::histogram!("anteroom_http_request_duration_seconds", &labels);
        let mut known = self.0.write().unwrap_or_else(|p| p.into_inner());
        known
            .entry(route.to_owned())
            .or_default()
            .insert((method, status), timer.clone());
        timer
    }
}

static STANDARD_METHODS: [Method; 9] = [
    Method::GET,
    Method::POST,
    Method::DELETE,
    Method::PATCH,
    Method::PUT,
    Method::HEAD,
    Method::OPTIONS,
    Method::CONNECT,
    Method::TRACE,
];

/// A request's method as a label: any method but the standard ones is
/// `other`, so that a client inventing methods cannot add histograms without end.
fn method_label(method: &Method) -> &'static str {
    STANDARD_METHODS
        .iter()
        .find(|standard| *standard == method)
        .map_or("other", Method::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_method_is_labelled_by_name_only_if_it_is_a_standard_one() {
        assert_eq!(method_label(&Method::GET), "GET");
        assert_eq!(method_label(&Method::DELETE), "DELETE");
        for invented in ["FOO123", "get", "PROPFIND"] {
            let method = Method::from_bytes(invented.as_bytes()).expect("a method token");
            assert_eq!(method_label(&method), "other", "{invented}");
        }
    }
}
