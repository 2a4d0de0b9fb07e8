//! The one error type of the HTTP API; each variant is one of API.md's codes.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::domain::InvalidField;
use crate::ports::{BackendError, InsertEventError};
use crate::services::booking::BookingError;

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
    #[error("the queue token is malformed, forged or from another deployment")]
    InvalidToken,
    #[error("the admission pass is missing, forged, expired or for another event")]
    InvalidPass,
    #[error("some of the seats are not available; nothing was held")]
    SeatUnavailable(Vec<String>),
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
    Internal(String),
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
    message: String,
    /// The seats that were not free, for `seat_unavailable`.
    #[serde(skip_serializing_if = "Option::is_none")]
    seats: Option<&'a [String]>,
}

/// Seconds a client should wait before retrying after a 503.
const RETRY_AFTER_SECONDS: &str = "1";

impl ApiError {
    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::InvalidRequest(_) => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_request"),
            ApiError::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized"),
            ApiError::NotFound => (StatusCode::NOT_FOUND, "not_found"),
            ApiError::MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
            ApiError::EventExists => (StatusCode::CONFLICT, "event_exists"),
            ApiError::SoldOut => (StatusCode::GONE, "sold_out"),
            ApiError::InvalidToken => (StatusCode::UNAUTHORIZED, "invalid_token"),
            ApiError::InvalidPass => (StatusCode::UNAUTHORIZED, "invalid_pass"),
            ApiError::SeatUnavailable(_) => (StatusCode::CONFLICT, "seat_unavailable"),
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
        if let ApiError::Unavailable(cause) = &self {
            // Logged here, never sent: the client learns only that it may retry.
            tracing::warn!(error = %cause, "answering 503");
        }
        if let ApiError::Internal(cause) = &self {
            tracing::error!(cause = %cause, "answering 500");
        }
        let retry_after = match &self {
            ApiError::Unavailable(_) => Some(HeaderValue::from_static(RETRY_AFTER_SECONDS)),
            // Whole seconds, rounded up: never invite a retry that is refused again.
            ApiError::RateLimited { retry_after } => Some(HeaderValue::from(
                retry_after.as_secs_f64().ceil().max(1.0) as u64,
            )),
            _ => None,
        };
        let seats = match &self {
            ApiError::SeatUnavailable(seats) => Some(seats.as_slice()),
            _ => None,
        };
        let body = ErrorBody {
            error: code,
            message: self.to_string(),
            seats,
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
        ApiError::Unavailable(e)
    }
}

impl From<BookingError> for ApiError {
    fn from(e: BookingError) -> Self {
        match e {
            BookingError::InvalidPass => ApiError::InvalidPass,
            BookingError::Invalid(message) => ApiError::InvalidRequest(message),
            BookingError::SeatsUnavailable(seats) => ApiError::SeatUnavailable(seats),
            BookingError::LimitExceeded => ApiError::LimitExceeded,
            BookingError::NotFound => ApiError::NotFound,
            BookingError::Expired => ApiError::Expired,
            BookingError::AlreadyPaid => ApiError::AlreadyPaid,
            BookingError::Backend(b) => ApiError::Unavailable(b),
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
            InsertEventError::Backend(b) => ApiError::Unavailable(b),
        }
    }
}
