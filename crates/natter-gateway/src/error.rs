//! The one mapping from errors to HTTP: status, stable snake_case code, human message.
//! 5xx bodies are opaque; their cause is logged here, once.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use natter_core::error::{DomainError, ErrorCode};
use natter_proto::ErrorBody;

/// What a handler can fail with.
#[derive(Debug)]
pub enum ApiError {
    Domain(DomainError),
    /// A request that could not be read (body, path, query), with its own status and code.
    Request {
        status: StatusCode,
        code: &'static str,
        message: String,
    },
}

impl ApiError {
    pub fn request(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self::Request { status, code, message: message.into() }
    }

    /// Status, code and message as the client sees them.
    pub fn parts(&self) -> (StatusCode, &'static str, String) {
        match self {
            Self::Request { status, code, message } => (*status, code, message.clone()),
            Self::Domain(error) => domain_parts(error),
        }
    }
}

impl From<DomainError> for ApiError {
    fn from(error: DomainError) -> Self {
        Self::Domain(error)
    }
}

fn domain_parts(error: &DomainError) -> (StatusCode, &'static str, String) {
    match error {
        DomainError::Invalid { code, message } => (StatusCode::BAD_REQUEST, code.as_str(), message.clone()),
        DomainError::NotFound { what } => (StatusCode::NOT_FOUND, "not_found", format!("{what} not found")),
        DomainError::Unauthenticated { code, message } => (StatusCode::UNAUTHORIZED, code.as_str(), message.clone()),
        DomainError::Forbidden { code, message } => (StatusCode::FORBIDDEN, code.as_str(), message.clone()),
        DomainError::Conflict { code, message } => (StatusCode::CONFLICT, code.as_str(), message.clone()),
        DomainError::TooLarge { code, message } => (StatusCode::PAYLOAD_TOO_LARGE, code.as_str(), message.clone()),
        DomainError::Unavailable { code, message } => (StatusCode::SERVICE_UNAVAILABLE, code.as_str(), message.clone()),
        DomainError::RateLimited { code, retry_after } => (
            StatusCode::TOO_MANY_REQUESTS,
            code.as_str(),
            format!("{}; retry in {} s", rate_limit_text(*code), retry_after.as_secs().max(1)),
        ),
        DomainError::Store(_) | DomainError::Bus(_) | DomainError::Blob(_) => {
            (StatusCode::INTERNAL_SERVER_ERROR, "internal", "internal server error".to_owned())
        }
    }
}

/// What a client is told it did too often.
fn rate_limit_text(code: ErrorCode) -> &'static str {
    match code {
        ErrorCode::TooManyMessages => "too many messages",
        ErrorCode::TooManyUploads => "too many uploads",
        ErrorCode::TooManyConnections => "too many connections from your address",
        _ => "too many attempts",
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code, message) = self.parts();
        if status.is_server_error() {
            tracing::error!(error = ?self, "request failed");
        }
        let mut response = (status, axum::Json(ErrorBody::new(code, message))).into_response();
        if let Self::Domain(DomainError::RateLimited { retry_after, .. }) = &self
            && let Ok(value) = HeaderValue::from_str(&retry_after.as_secs().max(1).to_string())
        {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use natter_core::error::{ErrorCode, Thing};
    use natter_core::store::StoreError;

    use super::*;

    #[test]
    fn statuses_and_codes() {
        let cases: Vec<(DomainError, StatusCode, &str)> = vec![
            (DomainError::invalid(ErrorCode::WeakPassword, "x"), StatusCode::BAD_REQUEST, "weak_password"),
            (DomainError::not_found(Thing::Conversation), StatusCode::NOT_FOUND, "not_found"),
            (DomainError::unauthenticated(ErrorCode::Unauthorized, "x"), StatusCode::UNAUTHORIZED, "unauthorized"),
            (DomainError::forbidden(ErrorCode::Forbidden, "x"), StatusCode::FORBIDDEN, "forbidden"),
            (DomainError::conflict(ErrorCode::UsernameTaken, "x"), StatusCode::CONFLICT, "username_taken"),
            (
                DomainError::unavailable(ErrorCode::SpeechUnavailable, "x"),
                StatusCode::SERVICE_UNAVAILABLE,
                "speech_unavailable",
            ),
            (
                DomainError::TooLarge { code: ErrorCode::TextTooLong, message: "x".into() },
                StatusCode::PAYLOAD_TOO_LARGE,
                "text_too_long",
            ),
            (
                DomainError::RateLimited { code: ErrorCode::TooManyAttempts, retry_after: Duration::from_secs(3) },
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_attempts",
            ),
            (
                DomainError::Store(StoreError::Backend("secret detail".into())),
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
            ),
            (
                DomainError::Blob(natter_core::blob::BlobError::Backend("secret bucket".into())),
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
            ),
            (DomainError::too_large(ErrorCode::QuotaExceeded, "x"), StatusCode::PAYLOAD_TOO_LARGE, "quota_exceeded"),
        ];
        for (error, status, code) in cases {
            let (got_status, got_code, message) = ApiError::from(error).parts();
            assert_eq!((got_status, got_code), (status, code));
            assert!(!message.contains("secret"), "5xx must not leak causes");
        }
    }
}
