//! The one error type of the HTTP API; each variant is one of API.md's codes.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::challenge::ChallengeBody;
use crate::domain::InvalidField;
use crate::ports::{BackendError, Bug, InsertEventError};
use crate::services::booking::{BookingError, NoBlock};

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    InvalidRequest(String),
    #[error("a valid admin bearer token is required")]
    Unauthorized,
    #[error("not found")]
    NotFound,
    #[error("this route does not take this method")]
    MethodNotAllowed,
    #[error("an event with this id already exists")]
    EventExists,
    #[error("no seats remain")]
    SoldOut,
    /// The event asks for a solved challenge and the join brought none that
    /// holds: `428`, with a fresh challenge at the event's current difficulty.
    #[error("{reason}; solve this fresh challenge and join with it")]
    ChallengeRequired {
        reason: String,
        fresh: Box<ChallengeBody>,
    },
    #[error("this challenge has already bought a place; fetch a new one to join again")]
    ChallengeUsed,
    #[error("this event is invitation-only: join with your invitation code")]
    CodeRequired,
    #[error("this invitation code is not one of this event's; check it and try again")]
    InvalidCode,
    /// The event's limit on new places per client address is reached.
    #[error("this address has taken as many places as the event allows for now; retry later")]
    TooManyPlaces { retry_after: std::time::Duration },
    #[error("the queue token is malformed, forged or from another deployment")]
    InvalidToken,
    #[error("the admission pass is missing, forged, expired or for another event")]
    InvalidPass,
    #[error("some of the seats are not available; nothing was held")]
    SeatUnavailable(Vec<String>),
    /// No block fits a best-available request: `seat_unavailable` with no seats,
    /// and what is available instead.
    #[error("{0}")]
    NoBlock(NoBlock),
    #[error("this pass would hold more seats than the event allows")]
    LimitExceeded,
    #[error("the hold has expired or was cancelled; its seats are free again")]
    Expired,
    #[error("the order is paid and cannot be cancelled")]
    AlreadyPaid,
    #[error("the request body is larger than 64 KiB")]
    PayloadTooLarge,
    #[error("too many requests from this client; retry shortly")]
    RateLimited { retry_after: std::time::Duration },
    #[error("a backend is unavailable; retry shortly")]
    Unavailable(#[source] BackendError),
    /// A bug of ours: `500`, its cause logged and never sent.
    #[error("something went wrong on our side; it has been logged")]
    Internal(#[source] Bug),
}

/// The body of every error response. `error` is one of the codes listed per route.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = Error)]
pub(super) struct ErrorBody<'a> {
    error: &'a str,
    /// Human text; for invalid_request it names the field
    message: String,
    /// seat_unavailable only: the seats that were not free ([] when no block of best_available seats exists)
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<crate::domain::SeatId>>)]
    seats: Option<&'a [String]>,
    /// What a refused best-available request can still have.
    #[serde(skip_serializing_if = "Option::is_none")]
    available: Option<Available>,
    /// challenge_required only: a fresh challenge to solve
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(min_length = 1)]
    challenge: Option<&'a str>,
    /// challenge_required only: the leading zero bits the event asks for now
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 32)]
    bits: Option<u8>,
}

/// When no block fits a best-available request: what it can still have where it looked.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = BestAvailableLeft)]
struct Available {
    /// The most adjacent seats free in one row where the request looked.
    largest_block: u32,
}

/// Seconds a client should wait before retrying after a 503.
const RETRY_AFTER_SECONDS: &str = "1";

impl ApiError {
    pub(super) fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::InvalidRequest(_) => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_request"),
            ApiError::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized"),
            ApiError::NotFound => (StatusCode::NOT_FOUND, "not_found"),
            ApiError::MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
            ApiError::EventExists => (StatusCode::CONFLICT, "event_exists"),
            ApiError::SoldOut => (StatusCode::GONE, "sold_out"),
            ApiError::ChallengeRequired { .. } => {
                (StatusCode::PRECONDITION_REQUIRED, "challenge_required")
            }
            ApiError::ChallengeUsed => (StatusCode::CONFLICT, "challenge_used"),
            ApiError::CodeRequired => (StatusCode::FORBIDDEN, "code_required"),
            ApiError::InvalidCode => (StatusCode::FORBIDDEN, "invalid_code"),
            ApiError::TooManyPlaces { .. } => (StatusCode::TOO_MANY_REQUESTS, "too_many_places"),
            ApiError::InvalidToken => (StatusCode::UNAUTHORIZED, "invalid_token"),
            ApiError::InvalidPass => (StatusCode::UNAUTHORIZED, "invalid_pass"),
            ApiError::SeatUnavailable(_) | ApiError::NoBlock(_) => {
                (StatusCode::CONFLICT, "seat_unavailable")
            }
            ApiError::LimitExceeded => (StatusCode::UNPROCESSABLE_ENTITY, "limit_exceeded"),
            ApiError::Expired => (StatusCode::GONE, "expired"),
            ApiError::AlreadyPaid => (StatusCode::CONFLICT, "already_paid"),
            ApiError::PayloadTooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            ApiError::RateLimited { .. } => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
            ApiError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            ApiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        // Causes are logged here, never sent: the client learns only whether it may retry.
        match &self {
            ApiError::Unavailable(cause) => tracing::warn!(error = %cause, "answering 503"),
            ApiError::Internal(bug) => tracing::error!(error = %bug, "answering 500"),
            _ => {}
        }
        let retry_after = match &self {
            ApiError::Unavailable(_) => Some(HeaderValue::from_static(RETRY_AFTER_SECONDS)),
            // Whole seconds, rounded up: never invite a retry that is refused again.
            ApiError::RateLimited { retry_after } | ApiError::TooManyPlaces { retry_after } => {
                Some(HeaderValue::from(
                    retry_after.as_secs_f64().ceil().max(1.0) as u64
                ))
            }
            _ => None,
        };
        let (seats, available) = match &self {
            ApiError::SeatUnavailable(seats) => (Some(seats.as_slice()), None),
            ApiError::NoBlock(refusal) => (
                Some(&[][..]),
                Some(Available {
                    largest_block: refusal.largest_block,
                }),
            ),
            _ => (None, None),
        };
        let (challenge, bits) = match &self {
            ApiError::ChallengeRequired { fresh, .. } => {
                (Some(fresh.challenge.as_str()), Some(fresh.bits))
            }
            _ => (None, None),
        };
        let body = ErrorBody {
            error: code,
            message: self.to_string(),
            seats,
            available,
            challenge,
            bits,
        };
        let mut response = (status, Json(body)).into_response();
        if let Some(value) = retry_after {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        response
    }
}

impl From<BackendError> for ApiError {
    fn from(e: BackendError) -> Self {
        match e {
            BackendError::Bug(bug) => ApiError::Internal(bug),
            // A lost line is being restored: as good as an outage to the client.
            BackendError::Unavailable(_) | BackendError::LineLost(_) => ApiError::Unavailable(e),
        }
    }
}

impl From<BookingError> for ApiError {
    fn from(e: BookingError) -> Self {
        match e {
            BookingError::InvalidPass => ApiError::InvalidPass,
            BookingError::Invalid(message) => ApiError::InvalidRequest(message),
            BookingError::SeatsUnavailable(seats) => ApiError::SeatUnavailable(seats),
            BookingError::NoBlock(refusal) => ApiError::NoBlock(refusal),
            BookingError::LimitExceeded => ApiError::LimitExceeded,
            BookingError::NotFound => ApiError::NotFound,
            BookingError::Expired => ApiError::Expired,
            BookingError::AlreadyPaid => ApiError::AlreadyPaid,
            BookingError::Backend(b) => b.into(),
        }
    }
}

impl From<InvalidField> for ApiError {
    fn from(e: InvalidField) -> Self {
        ApiError::InvalidRequest(e.to_string())
    }
}

impl From<InsertEventError> for ApiError {
    fn from(e: InsertEventError) -> Self {
        match e {
            InsertEventError::Exists => ApiError::EventExists,
            InsertEventError::Backend(b) => b.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use axum::body::to_bytes;

    use super::*;
    use crate::domain::EventId;
    use crate::ports::LineLost;

    async fn answer(e: BackendError) -> (StatusCode, Option<String>, String) {
        let response = ApiError::from(e).into_response();
        let status = response.status();
        let retry_after = response
            .headers()
            .get(header::RETRY_AFTER)
            .map(|v| v.to_str().unwrap().to_owned());
        let body = to_bytes(response.into_body(), 4096).await.unwrap();
        (
            status,
            retry_after,
            String::from_utf8(body.to_vec()).unwrap(),
        )
    }

    #[tokio::test]
    async fn an_outage_is_a_503_to_retry_and_its_cause_stays_inside() {
        let (status, retry_after, body) = answer(BackendError::unavailable(
            "redis",
            "connection refused by 10.0.0.7:6379",
        ))
        .await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(retry_after.as_deref(), Some(RETRY_AFTER_SECONDS));
        assert!(body.contains(r#""error":"unavailable""#), "{body}");
        assert!(!body.contains("10.0.0.7"), "{body}");
    }

    #[tokio::test]
    async fn a_bug_is_a_500_without_retry_after_and_its_cause_stays_inside() {
        let cause = std::io::Error::other("the seat map of 10.0.0.7 disagrees");
        let (status, retry_after, body) = answer(BackendError::bug_caused_by(
            "unexpected reply from hold.lua",
            cause,
        ))
        .await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(retry_after, None);
        assert!(body.contains(r#""error":"internal""#), "{body}");
        assert!(
            !body.contains("hold.lua") && !body.contains("10.0.0.7"),
            "{body}"
        );
    }

    #[tokio::test]
    async fn a_line_being_restored_is_an_outage_to_the_client() {
        let event = EventId::parse("stadium").unwrap();
        let (status, retry_after, _) = answer(LineLost { event }.into()).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(retry_after.is_some());
    }

    #[test]
    fn a_bug_is_logged_with_its_whole_cause_chain() {
        let inner = std::io::Error::other("disk full");
        let middle = WithSource("journal write failed", inner);
        let BackendError::Bug(bug) =
            BackendError::bug_caused_by("a hold was not journaled", middle)
        else {
            panic!("not a bug");
        };
        assert_eq!(
            bug.to_string(),
            "a hold was not journaled: journal write failed: disk full"
        );
    }

    #[derive(Debug)]
    struct WithSource(&'static str, std::io::Error);

    impl std::fmt::Display for WithSource {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(self.0)
        }
    }

    impl std::error::Error for WithSource {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.1)
        }
    }
}
