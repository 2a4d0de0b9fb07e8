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
use super::limit::ClientAddr;

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
        let bytes: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
            b"{}"
        } else {
            &bytes
        };
        let json: Value = serde_json::from_slice(bytes).map_err(|e| {
            ApiError::InvalidRequest(format!(
                "the body is not valid JSON (line {}, column {})",
                e.line(),
                e.column()
            ))
        })?;
        for path in T::OBJECTS {
            objects_at(&json, path, String::new()).map_err(ApiError::InvalidRequest)?;
        }
        let value = serde_path_to_error::deserialize(json).map_err(|e| {
            ApiError::InvalidRequest(readable(&e.path().to_string(), &e.into_inner().to_string()))
        })?;
        Ok(JsonBody(value))
    }
}

/// A deserializer's complaint about the value at `path`, as a sentence an operator
/// can act on: the field first, then what it must be ("hold_seconds: must be a
/// whole number"), never the parser's type names ("invalid type: null, expected u32").
fn readable(path: &str, complaint: &str) -> String {
    let at = |field: &str| match (path, field) {
        (".", "") => "the body".to_owned(),
        (".", field) => field.to_owned(),
        (path, "") => path.to_owned(),
        (path, field) => format!("{path}.{field}"),
    };
    if let Some(field) = complaint
        .strip_prefix("missing field `")
        .and_then(|rest| rest.split('`').next())
    {
        return format!("{}: is required", at(field));
    }
    let expected = ["invalid type: ", "invalid value: ", "invalid length: "]
        .iter()
        .any(|kind| complaint.starts_with(kind))
        .then(|| {
            complaint
                .rsplit_once(", expected ")
                .map(|(_, expected)| expected)
        })
        .flatten();
    match expected {
        Some(expected) => format!("{}: must be {}", at(""), described(expected)),
        // Our own messages (a date that does not parse, a rule of the domain) already read well.
        None => format!("{}: {complaint}", at("")),
    }
}

/// What serde calls the type it wanted, in words.
fn described(expected: &str) -> &str {
    match expected {
        "u8" | "u16" | "u32" | "u64" | "usize" => "a whole number, 0 or more",
        "i8" | "i16" | "i32" | "i64" | "isize" => "a whole number",
        "f32" | "f64" => "a number",
        "a boolean" => "true or false",
        "a string" => "text",
        "a sequence" => "a list",
        other if other.starts_with("struct ") || other == "a map" => "an object",
        other => other,
    }
}

/// Checks that the values at `path` below `value` are objects (absent and null pass:
/// whether they may be missing is the deserializer's to say).
fn objects_at(value: &Value, path: &[&str], at: String) -> Result<(), String> {
    let described = |at: &str| {
        if at.is_empty() {
            "the body".to_owned()
        } else {
            at.to_owned()
        }
    };
    match (path.split_first(), value) {
        (_, Value::Null) => Ok(()),
        (None, Value::Object(_)) => Ok(()),
        (None, _) => Err(format!("{}: must be a JSON object", described(&at))),
        (Some((&"[]", rest)), Value::Array(items)) => items
            .iter()
            .enumerate()
            .try_for_each(|(i, item)| objects_at(item, rest, format!("{at}[{i}]"))),
        (Some((field, rest)), Value::Object(fields)) => match fields.get(*field) {
            Some(inner) => objects_at(
                inner,
                rest,
                if at.is_empty() {
                    (*field).to_owned()
                } else {
                    format!("{at}.{field}")
                },
            ),
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
        let Path(param) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|_| ApiError::NotFound)?;
        Ok(Self(param))
    }
}

/// Proof that the request carried the admin token (compared in constant time).
pub struct Admin;

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    /// A client that sent ten wrong tokens this minute waits for the next one
    /// (`429`), whatever it sends; a wrong token is logged with the client's
    /// address, never with the token tried.
    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let ClientAddr(client) = ClientAddr::from_request_parts(parts, state).await?;
        let presented = bearer(parts).ok_or(ApiError::Unauthorized)?;
        let now = state.clock.now();
        state
            .admin_door
            .attempt(client, now)
            .await
            .map_err(|retry_after| ApiError::RateLimited { retry_after })?;
        let expected = state.admin_token.expose().as_bytes();
        if bool::from(presented.as_bytes().ct_eq(expected)) {
            state.admin_door.succeeded(client, now).await;
            return Ok(Admin);
        }
        tracing::warn!(%client, "a wrong admin token");
        Err(ApiError::Unauthorized)
    }
}

pub fn bearer(parts: &Parts) -> Option<&str> {
    let value = parts
        .headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const SHAPE: &[&[&str]] = &[&[], &["admission"], &["sections", "[]"]];

    fn check(body: Value) -> Result<(), String> {
        SHAPE
            .iter()
            .try_for_each(|path| objects_at(&body, path, String::new()))
    }

    #[test]
    fn arrays_in_place_of_objects_are_refused_and_named() {
        assert_eq!(
            check(json!([1, 2])),
            Err("the body: must be a JSON object".into())
        );
        assert_eq!(
            check(json!({"admission": [null]})),
            Err("admission: must be a JSON object".into())
        );
        assert_eq!(
            check(json!({"sections": [{}, ["A"]]})),
            Err("sections[1]: must be a JSON object".into())
        );
    }

    #[test]
    fn deserializer_complaints_read_as_sentences_naming_the_field() {
        let cases = [
            (".", "missing field `name`", "name: is required"),
            (
                "admission",
                "missing field `max_active`",
                "admission.max_active: is required",
            ),
            (
                "hold_seconds",
                "invalid type: null, expected u32",
                "hold_seconds: must be a whole number, 0 or more",
            ),
            (
                "sections[0].price_cents",
                "invalid type: string \"9.90\", expected i64",
                "sections[0].price_cents: must be a whole number",
            ),
            (
                "sections[0].rows",
                "invalid value: integer `-1`, expected u32",
                "sections[0].rows: must be a whole number, 0 or more",
            ),
            (
                "admission.per_second",
                "invalid type: string \"x\", expected f64",
                "admission.per_second: must be a number",
            ),
            (
                "paused",
                "invalid type: string \"yes\", expected a boolean",
                "paused: must be true or false",
            ),
            (
                "sections",
                "invalid type: string \"A\", expected a sequence",
                "sections: must be a list",
            ),
            (
                "admission",
                "invalid type: integer `1`, expected struct CreateAdmission",
                "admission: must be an object",
            ),
            (
                "starts_at",
                "must be a date and time",
                "starts_at: must be a date and time",
            ),
        ];
        for (path, complaint, sentence) in cases {
            assert_eq!(readable(path, complaint), sentence);
        }
    }

    #[test]
    fn objects_and_absent_values_pass() {
        assert_eq!(check(json!({})), Ok(()));
        assert_eq!(
            check(json!({"admission": null, "sections": [{"id": "A"}]})),
            Ok(())
        );
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
            let name = prop_oneof![
                Just("admission".to_owned()),
                Just("sections".to_owned()),
                ".{0,6}"
            ];
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
