//! Errors as the API and the pages show them: a status and one sentence, never a secret or a stack.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::store::{ErrorKind, StoreError};

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

impl ApiError {
    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
        }
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::NOT_FOUND,
            message: message.into(),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        let kind = e.kind();
        let (status, message) = match kind {
            ErrorKind::Unavailable => (
                StatusCode::SERVICE_UNAVAILABLE,
                "the database is not available right now; try again in a minute",
            ),
            ErrorKind::Full => (
                StatusCode::SERVICE_UNAVAILABLE,
                "the database cannot take writes: its disk is full",
            ),
            ErrorKind::Conflict => (
                StatusCode::CONFLICT,
                "this collides with what is stored; reload and try again",
            ),
            ErrorKind::Corrupt => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "the database could not be read; the daemon's log says why",
            ),
        };
        if kind.passes() {
            tracing::warn!(error = %e, "A web request could not reach the store.");
        } else {
            tracing::error!(error = %e, kind = kind.as_str(), "A web request failed in the store: {}.", kind.advice());
        }
        ApiError {
            status,
            message: message.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            Json(serde_json::json!({ "error": self.message })),
        )
            .into_response()
    }
}
