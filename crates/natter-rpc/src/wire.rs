//! What crosses the wire: arguments and answers as JSON, and a [`DomainError`] as a gRPC status
//! whose details carry the whole error, so that the gateway answers a client exactly as a
//! single process would (same HTTP status, code and message).

use std::time::Duration;

use bytes::Bytes;
use natter_core::blob::BlobError;
use natter_core::error::{DomainError, ErrorCode, Thing};
use natter_core::store::StoreError;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tonic::{Code, Status};

/// A domain error as it travels: the variant, its code or subject, its message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum WireError {
    Invalid {
        code: ErrorCode,
        message: String,
    },
    NotFound {
        what: Thing,
    },
    Unauthenticated {
        code: ErrorCode,
        message: String,
    },
    Forbidden {
        code: ErrorCode,
        message: String,
    },
    Conflict {
        code: ErrorCode,
        message: String,
    },
    TooLarge {
        code: ErrorCode,
        message: String,
    },
    Unavailable {
        code: ErrorCode,
        message: String,
    },
    RateLimited {
        /// Absent from a node that predates per-limit codes: the login limits' code.
        #[serde(default = "too_many_attempts")]
        code: ErrorCode,
        retry_after_ms: u64,
    },
    /// A failure of the chat node's storage, bus or blob store: a 500 for the client, whose
    /// cause is logged on the chat node, not sent.
    Internal,
}

fn too_many_attempts() -> ErrorCode {
    ErrorCode::TooManyAttempts
}

impl From<&DomainError> for WireError {
    fn from(error: &DomainError) -> Self {
        match error {
            DomainError::Invalid { code, message } => Self::Invalid { code: *code, message: message.clone() },
            DomainError::NotFound { what } => Self::NotFound { what: *what },
            DomainError::Unauthenticated { code, message } => {
                Self::Unauthenticated { code: *code, message: message.clone() }
            }
            DomainError::Forbidden { code, message } => Self::Forbidden { code: *code, message: message.clone() },
            DomainError::Conflict { code, message } => Self::Conflict { code: *code, message: message.clone() },
            DomainError::TooLarge { code, message } => Self::TooLarge { code: *code, message: message.clone() },
            DomainError::Unavailable { code, message } => Self::Unavailable { code: *code, message: message.clone() },
            DomainError::RateLimited { code, retry_after } => Self::RateLimited {
                code: *code,
                retry_after_ms: u64::try_from(retry_after.as_millis()).unwrap_or(u64::MAX),
            },
            DomainError::Store(_) | DomainError::Bus(_) | DomainError::Blob(_) => Self::Internal,
        }
    }
}

impl From<WireError> for DomainError {
    fn from(error: WireError) -> Self {
        match error {
            WireError::Invalid { code, message } => Self::Invalid { code, message },
            WireError::NotFound { what } => Self::NotFound { what },
            WireError::Unauthenticated { code, message } => Self::Unauthenticated { code, message },
            WireError::Forbidden { code, message } => Self::Forbidden { code, message },
            WireError::Conflict { code, message } => Self::Conflict { code, message },
            WireError::TooLarge { code, message } => Self::TooLarge { code, message },
            WireError::Unavailable { code, message } => Self::Unavailable { code, message },
            WireError::RateLimited { code, retry_after_ms } => {
                Self::RateLimited { code, retry_after: Duration::from_millis(retry_after_ms) }
            }
            WireError::Internal => Self::Store(StoreError::Backend("the chat node failed (see its log)".into())),
        }
    }
}

/// A domain error as one item of a batch answer carries it (a storage failure is logged here,
/// as [`status_of`] does).
pub fn carried(error: &DomainError) -> WireError {
    if matches!(error, DomainError::Store(_) | DomainError::Bus(_) | DomainError::Blob(_)) {
        tracing::error!(%error, "a chat request failed");
    }
    WireError::from(error)
}

/// The gRPC status for a domain error; the details carry the [`WireError`].
pub fn status_of(error: &DomainError) -> Status {
    let code = match error {
        DomainError::Invalid { .. } | DomainError::TooLarge { .. } => Code::InvalidArgument,
        DomainError::NotFound { .. } => Code::NotFound,
        DomainError::Unauthenticated { .. } => Code::Unauthenticated,
        DomainError::Forbidden { .. } => Code::PermissionDenied,
        DomainError::Conflict { .. } => Code::FailedPrecondition,
        DomainError::Unavailable { .. } | DomainError::RateLimited { .. } => Code::ResourceExhausted,
        DomainError::Store(_) | DomainError::Bus(_) | DomainError::Blob(_) => {
            tracing::error!(%error, "a chat request failed");
            Code::Internal
        }
    };
    let wire = WireError::from(error);
    let message = if wire == WireError::Internal { "internal error".to_owned() } else { error.to_string() };
    let details = serde_json::to_vec(&wire).unwrap_or_default();
    Status::with_details(code, message, Bytes::from(details))
}

/// The domain error a status carries, or `None` when it carries none (a transport failure, or a
/// status that did not come from a natter service).
pub fn domain_error(status: &Status) -> Option<DomainError> {
    if status.details().is_empty() {
        return None;
    }
    serde_json::from_slice::<WireError>(status.details()).ok().map(DomainError::from)
}

/// A failure to reach any chat node, as the client sees it: 503 `service_unavailable`.
pub fn unreachable(detail: impl std::fmt::Display) -> DomainError {
    DomainError::Unavailable {
        code: ErrorCode::ServiceUnavailable,
        message: format!("no chat node answered: {detail}"),
    }
}

pub fn encode<T: Serialize>(value: &T) -> Result<Bytes, Status> {
    serde_json::to_vec(value).map(Bytes::from).map_err(|error| Status::internal(format!("cannot encode: {error}")))
}

pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Status> {
    serde_json::from_slice(bytes).map_err(|error| Status::invalid_argument(format!("cannot decode: {error}")))
}

/// An error of the bytes of a file, as a stream carries it.
pub fn blob_error(status: &Status) -> BlobError {
    BlobError::Backend(format!("reading from the chat node failed: {}", status.message()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_domain_error_survives_the_trip() {
        let mut errors = vec![
            DomainError::not_found(Thing::Conversation),
            DomainError::RateLimited { code: ErrorCode::TooManyMessages, retry_after: Duration::from_millis(1500) },
        ];
        for code in ErrorCode::ALL {
            errors.push(DomainError::invalid(*code, "m"));
            errors.push(DomainError::unauthenticated(*code, "m"));
            errors.push(DomainError::forbidden(*code, "m"));
            errors.push(DomainError::conflict(*code, "m"));
            errors.push(DomainError::too_large(*code, "m"));
            errors.push(DomainError::unavailable(*code, "m"));
        }
        for thing in Thing::ALL {
            errors.push(DomainError::not_found(*thing));
        }
        for error in errors {
            let back = domain_error(&status_of(&error)).expect("a domain status carries its error");
            assert_eq!(WireError::from(&back), WireError::from(&error), "{error:?}");
            assert_eq!(back.to_string(), error.to_string());
        }
    }

    #[test]
    fn internal_errors_keep_their_cause_on_the_node() {
        let error = DomainError::Store(StoreError::Backend("password=hunter2".into()));
        let status = status_of(&error);
        assert_eq!(status.code(), Code::Internal);
        let back = domain_error(&status).expect("carried");
        assert!(matches!(back, DomainError::Store(_)));
        assert!(!String::from_utf8_lossy(status.details()).contains("hunter2"));
        assert!(!status.message().contains("hunter2"));
    }

    #[test]
    fn a_status_without_details_is_not_a_domain_error() {
        assert!(domain_error(&Status::unavailable("connection refused")).is_none());
    }
}
