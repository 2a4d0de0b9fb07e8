//! Extractors that turn every rejection into the API's own error shape.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Path, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;
use serde_json::Value;
use subtle::ConstantTimeEq;

use super::AppState;
use super::error::ApiError;

/// A request body, and where it must hold JSON objects: serde also reads a
/// struct from an array (`[1, 2]` for `{"a": 1, "b": 2}`), which API.md calls malformed.
pub trait RequestBody: DeserializeOwned {
    /// Paths of the values that must be objects where present: `&[]` is the body
    /// itself, `&["admission"]` a field, `&["sections", "[]"]` each element of an array.
    const OBJECTS: &'static [&'static [&'static str]];
}

/// A JSON body; malformed or missing fields are `422 invalid_request` naming the
/// field, and bodies over the limit `413`. An empty body reads as `{}`.
pub struct JsonBody<T>(pub T);

impl<T: RequestBody, S: Send + Sync> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(req, state).await.map_err(|r| {
            if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge
            } else {
                ApiError::InvalidRequest(r.body_text())
            }
        })?;
        let bytes: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) { b"{}" } else { &bytes };
        let json: Value =
            serde_json::from_slice(bytes).map_err(|e| ApiError::InvalidRequest(format!("invalid JSON body: {e}")))?;
        for path in T::OBJECTS {
            objects_at(&json, path, String::new()).map_err(ApiError::InvalidRequest)?;
        }
        let value = serde_path_to_error::deserialize(json).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner();
            if path == "." {
                ApiError::InvalidRequest(format!("invalid JSON body: {inner}"))
            } else {
                ApiError::InvalidRequest(format!("{path}: {inner}"))
            }
        })?;
        Ok(JsonBody(value))
    }
}

/// Checks that the values at `path` below `value` are objects (absent and null pass:
/// whether they may be missing is the deserializer's to say).
fn objects_at(value: &Value, path: &[&str], at: String) -> Result<(), String> {
    let described = |at: &str| if at.is_empty() { "the body".to_owned() } else { at.to_owned() };
    match (path.split_first(), value) {
        (_, Value::Null) => Ok(()),
        (None, Value::Object(_)) => Ok(()),
        (None, _) => Err(format!("{}: must be a JSON object", described(&at))),
        (Some((&"[]", rest)), Value::Array(items)) => {
            items.iter().enumerate().try_for_each(|(i, item)| objects_at(item, rest, format!("{at}[{i}]")))
        }
        (Some((field, rest)), Value::Object(fields)) => match fields.get(*field) {
            Some(inner) => {
                objects_at(inner, rest, if at.is_empty() { (*field).to_owned() } else { format!("{at}.{field}") })
            }
            None => Ok(()),
        },
        // Not the container the path expects: the deserializer names the mismatch.
        (Some(_), _) => Ok(()),
    }
}

/// The route's one path parameter. One that does not decode (bad
/// percent-encoding) names nothing that exists: `404 not_found`.
pub struct PathParam(pub String);

impl<S: Send + Sync> FromRequestParts<S> for PathParam {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Path(param) = Path::<String>::from_request_parts(parts, state).await.map_err(|_| ApiError::NotFound)?;
        Ok(Self(param))
    }
}

/// Proof that the request carried the admin token (compared in constant time).
pub struct Admin;

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let presented = bearer(parts).ok_or(ApiError::Unauthorized)?;
        let expected = state.admin_token.expose().as_bytes();
        if bool::from(presented.as_bytes().ct_eq(expected)) { Ok(Admin) } else { Err(ApiError::Unauthorized) }
    }
}

pub fn bearer(parts: &Parts) -> Option<&str> {
    let value = parts.headers.get(axum::http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const SHAPE: &[&[&str]] = &[&[], &["admission"], &["sections", "[]"]];

    fn check(body: Value) -> Result<(), String> {
        SHAPE.iter().try_for_each(|path| objects_at(&body, path, String::new()))
    }

    #[test]
    fn arrays_in_place_of_objects_are_refused_and_named() {
        assert_eq!(check(json!([1, 2])), Err("the body: must be a JSON object".into()));
        assert_eq!(check(json!({"admission": [null]})), Err("admission: must be a JSON object".into()));
        assert_eq!(check(json!({"sections": [{}, ["A"]]})), Err("sections[1]: must be a JSON object".into()));
    }

    #[test]
    fn objects_and_absent_values_pass() {
        assert_eq!(check(json!({})), Ok(()));
        assert_eq!(check(json!({"admission": null, "sections": [{"id": "A"}]})), Ok(()));
        // Wrong types that are not arrays-for-objects are left to the deserializer's message.
        assert_eq!(check(json!({"sections": "A"})), Ok(()));
    }

    use proptest::prelude::*;

    /// Any JSON value, nested a few levels, with the field names the shapes look for.
    fn values() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<f64>().prop_map(Value::from),
            ".{0,8}".prop_map(Value::from),
        ];
        leaf.prop_recursive(4, 64, 6, |inner| {
            let name = prop_oneof![Just("admission".to_owned()), Just("sections".to_owned()), ".{0,6}"];
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::vec((name, inner), 0..6)
                    .prop_map(|fields| Value::Object(fields.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// Never panics; refuses exactly the bodies with a non-object where the shape
        /// wants one, and names that place.
        #[test]
        fn the_shape_check_never_panics_and_refuses_exactly_misplaced_non_objects(body in values()) {
            let misplaced = |v: Option<&Value>| v.is_some_and(|v| !v.is_object() && !v.is_null());
            let expected = if misplaced(Some(&body)) {
                Some("the body".to_owned())
            } else if misplaced(body.get("admission")) {
                Some("admission".to_owned())
            } else {
                body.get("sections")
                    .and_then(Value::as_array)
                    .and_then(|items| items.iter().position(|item| misplaced(Some(item))))
                    .map(|i| format!("sections[{i}]"))
            };
            match check(body.clone()) {
                Ok(()) => prop_assert_eq!(expected, None, "{}", body),
                Err(message) => {
                    let at = expected.unwrap_or_else(|| panic!("refused {body}: {message}"));
                    prop_assert_eq!(message, format!("{at}: must be a JSON object"));
                }
            }
        }
    }
}
