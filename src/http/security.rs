//! The security headers every answer carries unless its handler set them.
//!
//! One layer for all four, rather than tower-http's `SetResponseHeader` per
//! header: that is a layer, a future and two lookups in the answer's headers
//! for each one, and the status poll, the hottest answer, paid for all of it
//! (about a tenth of its instructions).

use std::pin::Pin;
use std::task::{Context, Poll, ready};

use axum::http::header::{self, HeaderName};
use axum::http::{HeaderMap, HeaderValue, Request, Response};
use tower::{Layer, Service};

/// Scripts and styles from this origin only, and no inline script; workers
/// (the join challenge's solver) from this origin only.
const PAGE_POLICY: &str = "default-src 'self'; script-src 'self'; worker-src 'self'; style-src 'self'; img-src 'self' data:; \
     connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'; object-src 'none'";
/// A JSON answer loads nothing and is framed nowhere (OWASP's advice for
/// APIs): a fifth of the page policy's bytes on the hottest answer, the poll's.
const JSON_POLICY: &str = "default-src 'none'; frame-ancestors 'none'";

/// The headers besides the [`policy`], in the order they were always written
/// (after the policy).
static HEADERS: [(HeaderName, HeaderValue); 3] = [
    (
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    ),
    (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
    (
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    ),
];

/// The content security policy for an answer with these headers: the pages'
/// unless it is JSON.
fn policy(headers: &HeaderMap) -> HeaderValue {
    let json = headers
        .get(header::CONTENT_TYPE)
        .is_some_and(|kind| kind.as_bytes().starts_with(b"application/json"));
    HeaderValue::from_static(if json { JSON_POLICY } else { PAGE_POLICY })
}

/// Adds what an answer lacks of the security headers.
fn secure(headers: &mut HeaderMap) {
    if !headers.contains_key(header::CONTENT_SECURITY_POLICY) {
        let policy = policy(headers);
        headers.insert(header::CONTENT_SECURITY_POLICY, policy);
    }
    for (name, value) in &HEADERS {
        headers.entry(name).or_insert_with(|| value.clone());
    }
}

#[derive(Debug, Clone, Copy, Default)]
pub struct SecurityHeadersLayer;

impl<S> Layer<S> for SecurityHeadersLayer {
    type Service = SecurityHeaders<S>;

    fn layer(&self, inner: S) -> Self::Service {
        SecurityHeaders { inner }
    }
}

#[derive(Debug, Clone)]
pub struct SecurityHeaders<S> {
    inner: S,
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for SecurityHeaders<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Secured<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        Secured {
            answer: self.inner.call(req),
        }
    }
}

pin_project_lite::pin_project! {
    /// An answer, given the security headers it lacks when its head is ready.
    pub struct Secured<F> {
        #[pin]
        answer: F,
    }
}

impl<F, ResBody, E> Future for Secured<F>
where
    F: Future<Output = Result<Response<ResBody>, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut answer = ready!(self.project().answer.poll(cx));
        if let Ok(response) = &mut answer {
            secure(response.headers_mut());
        }
        Poll::Ready(answer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `headers` as a handler set them (a name given twice has two values), secured.
    fn secured(headers: &[(HeaderName, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            map.append(name, HeaderValue::from_static(value));
        }
        secure(&mut map);
        map
    }

    #[test]
    fn json_gets_the_apis_policy_and_anything_else_the_pages() {
        let json = secured(&[(header::CONTENT_TYPE, "application/json")]);
        assert_eq!(json[header::CONTENT_SECURITY_POLICY], JSON_POLICY);
        let page = secured(&[(header::CONTENT_TYPE, "text/html; charset=utf-8")]);
        assert_eq!(page[header::CONTENT_SECURITY_POLICY], PAGE_POLICY);
        assert_eq!(secured(&[])[header::CONTENT_SECURITY_POLICY], PAGE_POLICY);
        for map in [json, page] {
            assert_eq!(map[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
            assert_eq!(map[header::X_FRAME_OPTIONS], "DENY");
            assert_eq!(map[header::REFERRER_POLICY], "no-referrer");
        }
    }

    #[test]
    fn what_a_handler_set_is_kept() {
        let map = secured(&[
            (header::CONTENT_TYPE, "application/json"),
            (header::CONTENT_SECURITY_POLICY, "sandbox"),
            (header::CONTENT_SECURITY_POLICY, "img-src 'none'"),
            (header::X_FRAME_OPTIONS, "SAMEORIGIN"),
        ]);
        let policies: Vec<_> = map
            .get_all(header::CONTENT_SECURITY_POLICY)
            .iter()
            .collect();
        assert_eq!(policies, ["sandbox", "img-src 'none'"]);
        let frames: Vec<_> = map.get_all(header::X_FRAME_OPTIONS).iter().collect();
        assert_eq!(frames, ["SAMEORIGIN"]);
        assert_eq!(map[header::REFERRER_POLICY], "no-referrer");
    }

    #[test]
    fn the_headers_are_written_in_the_order_they_always_were() {
        let map = secured(&[(header::CONTENT_TYPE, "application/json")]);
        let names: Vec<_> = map.keys().map(HeaderName::as_str).collect();
        assert_eq!(
            names,
            [
                "content-type",
                "content-security-policy",
                "referrer-policy",
                "x-frame-options",
                "x-content-type-options"
            ]
        );
    }
}
