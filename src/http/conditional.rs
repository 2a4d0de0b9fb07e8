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
    let bytes = to_json(body)?;
    let etag = etag_of(&bytes);
    if none_match(request, &etag) {
        return Ok(not_modified(etag));
    }
    Ok(json_tagged(etag, bytes))
}

/// A JSON answer whose validator is the version of the state it shows (the
/// compact seat map): a client that has that version gets `304` before any
/// body is built.
pub fn json_at_version(
    request: &HeaderMap,
    version: u64,
    body: &impl Serialize,
) -> Result<Response, ApiError> {
    // Weak for the same reason as `etag_of`'s: any content coding of it is the same version.
    let etag = HeaderValue::from_str(&format!("W/\"{version}\""))
        .unwrap_or_else(|_| HeaderValue::from_static("W/\"\""));
    if none_match(request, &etag) {
        return Ok(not_modified(etag));
    }
    Ok(json_tagged(etag, to_json(body)?))
}

fn to_json(body: &impl Serialize) -> Result<Vec<u8>, ApiError> {
    serde_json::to_vec(body)
        .map_err(|e| ApiError::from(BackendError::bug_caused_by("a body did not serialize", e)))
}

fn not_modified(etag: HeaderValue) -> Response {
    (StatusCode::NOT_MODIFIED, [(header::ETAG, etag)]).into_response()
}

fn json_tagged(etag: HeaderValue, bytes: Vec<u8>) -> Response {
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            ),
            (header::ETAG, etag),
        ],
        bytes,
    )
        .into_response()
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

    #[test]
    fn a_versioned_answer_is_tagged_with_its_version_and_304_for_a_client_that_has_it() {
        let at_version = |if_none_match: Option<&str>| {
            let mut headers = HeaderMap::new();
            if let Some(value) = if_none_match {
                headers.insert(header::IF_NONE_MATCH, HeaderValue::from_str(value).unwrap());
            }
            json_at_version(&headers, 42, &serde_json::json!({"version": 42})).unwrap()
        };
        let first = at_version(None);
        assert_eq!(first.status(), StatusCode::OK);
        assert_eq!(first.headers()[header::ETAG], "W/\"42\"");
        for sent in ["W/\"42\"", "\"42\"", "\"41\", W/\"42\""] {
            assert_eq!(
                at_version(Some(sent)).status(),
                StatusCode::NOT_MODIFIED,
                "{sent}"
            );
        }
        assert_eq!(at_version(Some("\"41\"")).status(), StatusCode::OK);
    }
}
