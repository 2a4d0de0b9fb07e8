//! `ETag` / `If-None-Match` for the read routes that clients poll: a client that
//! already has the current body gets `304` and no body.

use std::hash::{DefaultHasher, Hasher};

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::error::ApiError;
use crate::ports::BackendError;

/// A JSON answer with a validator; `304 Not Modified` when the request's
/// `If-None-Match` already names it.
pub fn json_with_etag(request: &HeaderMap, body: &impl Serialize) -> Result<Response, ApiError> {
    let bytes = serde_json::to_vec(body)
        .map_err(|e| ApiError::from(BackendError::bug_caused_by("a body did not serialize", e)))?;
    let etag = etag_of(&bytes);
    if none_match(request, &etag) {
        return Ok((StatusCode::NOT_MODIFIED, [(header::ETAG, etag)]).into_response());
    }
    Ok((
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            ),
            (header::ETAG, etag),
        ],
        bytes,
    )
        .into_response())
}

/// A weak validator: the same JSON under any content coding (the compression
/// layer may gzip or brotli it) is the same representation to a client. Every
/// instance of one build computes the same tag for the same bytes.
fn etag_of(bytes: &[u8]) -> HeaderValue {
    let mut hasher = DefaultHasher::new();
    hasher.write(bytes);
    let tag = format!("W/\"{:016x}{:x}\"", hasher.finish(), bytes.len());
    HeaderValue::from_str(&tag).unwrap_or_else(|_| HeaderValue::from_static("W/\"\""))
}

/// Whether `If-None-Match` lists `etag` (weak comparison, RFC 9110 13.1.2) or is `*`.
fn none_match(request: &HeaderMap, etag: &HeaderValue) -> bool {
    let opaque = |tag: &str| tag.trim().trim_start_matches("W/").to_owned();
    let ours = opaque(etag.to_str().unwrap_or_default());
    request
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|tag| tag.trim() == "*" || opaque(tag) == ours)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conditional(if_none_match: Option<&str>, body: &serde_json::Value) -> Response {
        let mut headers = HeaderMap::new();
        if let Some(value) = if_none_match {
            headers.insert(header::IF_NONE_MATCH, HeaderValue::from_str(value).unwrap());
        }
        json_with_etag(&headers, body).unwrap()
    }

    #[test]
    fn the_same_body_has_the_same_tag_and_another_body_another() {
        let first = conditional(None, &serde_json::json!({"a": 1}));
        let again = conditional(None, &serde_json::json!({"a": 1}));
        let other = conditional(None, &serde_json::json!({"a": 2}));
        assert_eq!(first.status(), StatusCode::OK);
        assert_eq!(first.headers()[header::ETAG], again.headers()[header::ETAG]);
        assert_ne!(first.headers()[header::ETAG], other.headers()[header::ETAG]);
    }

    #[test]
    fn a_client_with_the_current_tag_gets_304_in_any_of_the_forms_it_may_send() {
        let body = serde_json::json!({"seats": ["A-1-1"]});
        let etag = conditional(None, &body).headers()[header::ETAG]
            .to_str()
            .unwrap()
            .to_owned();
        let strong = etag.trim_start_matches("W/");
        for sent in [etag.as_str(), strong, &format!("\"x\", {etag}"), "*"] {
            let answer = conditional(Some(sent), &body);
            assert_eq!(answer.status(), StatusCode::NOT_MODIFIED, "{sent}");
            assert_eq!(answer.headers()[header::ETAG].to_str().unwrap(), etag);
        }
        assert_eq!(
            conditional(Some("W/\"stale\""), &body).status(),
            StatusCode::OK
        );
    }
}
