//! No request is worked on for longer than its deadline (a slow body
//! included): past it, `503` with `Retry-After` in the API's error shape. A
//! layer of its own rather than `middleware::from_fn`, which clones the route
//! and boxes its future once more for every request.

use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use tokio::time::Timeout;
use tower::{Layer, Service};

use super::ApiError;
use crate::ports::BackendError;

/// Answers `503` for every request its routes have not answered within `deadline`.
#[derive(Debug, Clone, Copy)]
pub struct DeadlineLayer {
    deadline: Duration,
}

impl DeadlineLayer {
    pub fn new(deadline: Duration) -> Self {
        Self { deadline }
    }
}

impl<S> Layer<S> for DeadlineLayer {
    type Service = Deadline<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Deadline {
            inner,
            deadline: self.deadline,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Deadline<S> {
    inner: S,
    deadline: Duration,
}

impl<S> Service<Request> for Deadline<S>
where
    S: Service<Request, Response = Response>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = WithinDeadline<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        WithinDeadline {
            answer: tokio::time::timeout(self.deadline, self.inner.call(req)),
        }
    }
}

pin_project_lite::pin_project! {
    /// A request's answer, or the deadline's once it has passed.
    pub struct WithinDeadline<F> {
        #[pin]
        answer: Timeout<F>,
    }
}

impl<F, E> Future for WithinDeadline<F>
where
    F: Future<Output = Result<Response, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Poll::Ready(match ready!(self.project().answer.poll(cx)) {
            Ok(answer) => answer,
            Err(_) => Ok(ApiError::Unavailable(BackendError::unavailable(
                "anteroom",
                "the request timed out",
            ))
            .into_response()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::{Body, to_bytes};
    use axum::http::StatusCode;
    use std::convert::Infallible;
    use tower::ServiceExt;

    async fn answer<S>(service: S) -> (StatusCode, Response)
    where
        S: Service<Request, Response = Response, Error = Infallible>,
    {
        let answer = service
            .oneshot(Request::new(Body::empty()))
            .await
            .unwrap_or_else(|never| match never {});
        (answer.status(), answer)
    }

    #[tokio::test]
    async fn a_request_past_its_deadline_is_answered_unavailable_with_a_retry_after() {
        let never_answers = tower::service_fn(|_: Request| async {
            std::future::pending::<Result<Response, Infallible>>().await
        });
        let (status, answer) =
            answer(DeadlineLayer::new(Duration::from_millis(10)).layer(never_answers)).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(answer.headers().contains_key("retry-after"));
        let body = to_bytes(answer.into_body(), usize::MAX)
            .await
            .expect("a body");
        let body: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
        assert_eq!(body["error"], "unavailable", "{body}");
    }

    #[tokio::test]
    async fn a_request_answered_in_time_keeps_its_answer_even_after_waiting() {
        let answers_later = tower::service_fn(|_: Request| async {
            // Pending at least once before it answers.
            tokio::task::yield_now().await;
            Ok::<_, Infallible>(StatusCode::CREATED.into_response())
        });
        let (status, _) =
            answer(DeadlineLayer::new(Duration::from_secs(15)).layer(answers_later)).await;
        assert_eq!(status, StatusCode::CREATED);
    }
}
