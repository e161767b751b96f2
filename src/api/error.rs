//! The one error type of the API: a status, a stable code and a message for people, rendered
//! as the contract's `{"error": {"code", "message"}}`.

use axum::response::{IntoResponse, Response};
use http::{header, HeaderValue, StatusCode};
use serde_json::json;

/// An API error: status, stable code, message for people.
#[derive(Debug)]
pub struct ApiError {
    pub(super) status: StatusCode,
    pub(super) code: &'static str,
    pub(super) message: String,
    pub(super) retry_after: Option<u64>,
}

impl ApiError {
    pub(super) fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    pub(super) fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    pub(super) fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    pub(super) fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }

    /// A refusal the client may retry after `secs` seconds (429, 503).
    pub(super) fn retry_after(mut self, secs: u64) -> ApiError {
        self.retry_after = Some(secs);
        self
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({"error": {"code": self.code, "message": self.message}});
        let mut resp = super::json_response(self.status, &body);
        if let Some(secs) = self.retry_after {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        // A 401 names how to authenticate (RFC 9110): the API's bearer token.
        if self.status == StatusCode::UNAUTHORIZED {
            resp.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        resp
    }
}

/// A store that cannot be reached is 503 (try again: a shared database restarting); one that
/// fails otherwise is the server's fault, 500. Either way the message is for the operator.
impl From<crate::store::StoreError> for ApiError {
    fn from(e: crate::store::StoreError) -> ApiError {
        match e {
            crate::store::StoreError::Unavailable(_) => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "store_unavailable",
                e.to_string(),
            )
            .retry_after(1),
            e => ApiError::internal(e.to_string()),
        }
    }
}

/// The watcher's refusals are the client's (400); its store failing is ours.
impl From<crate::watch::WatchError> for ApiError {
    fn from(e: crate::watch::WatchError) -> ApiError {
        use crate::watch::WatchError;
        match e {
            WatchError::Url(_)
            | WatchError::TooOften { .. }
            | WatchError::TooRare
            | WatchError::Visitor(_)
            | WatchError::TooManyVisitors(_) => ApiError::bad_request(e.to_string()),
            WatchError::Store(e) => e.into(),
        }
    }
}
