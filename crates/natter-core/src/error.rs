//! The domain's error: one enum that every service returns, so that the gateway has exactly one
//! mapping to HTTP (and later gRPC). Variants name what went wrong, never how it is stored.

use std::time::Duration;

use crate::blob::BlobError;
use crate::bus::BusError;
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum DomainError {
    /// Input failed a rule; `code` is the stable machine-readable reason.
    #[error("{message}")]
    Invalid { code: &'static str, message: String },
    /// Unknown id, or something the caller may not know exists (a non-member's conversation).
    #[error("{what} not found")]
    NotFound { what: &'static str },
    /// Missing, malformed, expired or revoked credentials.
    #[error("{message}")]
    Unauthenticated { code: &'static str, message: String },
    /// The caller is known and may see the thing, but lacks the right to do this.
    #[error("{message}")]
    Forbidden { code: &'static str, message: String },
    /// The request clashes with the current state.
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    /// A size limit was exceeded.
    #[error("{message}")]
    TooLarge { code: &'static str, message: String },
    /// A part the request needs is not configured or is overloaded (HTTP 503).
    #[error("{message}")]
    Unavailable { code: &'static str, message: String },
    /// Too many attempts; try again after the given time.
    #[error("too many attempts")]
    RateLimited { retry_after: Duration },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Bus(#[from] BusError),
    /// The blob store failed (a missing blob for a file that has a record is one such failure).
    #[error(transparent)]
    Blob(#[from] BlobError),
}

pub type DomainResult<T> = Result<T, DomainError>;

impl DomainError {
    pub fn invalid(code: &'static str, message: impl Into<String>) -> Self {
        Self::Invalid { code, message: message.into() }
    }
    pub fn forbidden(code: &'static str, message: impl Into<String>) -> Self {
        Self::Forbidden { code, message: message.into() }
    }
    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Self::Conflict { code, message: message.into() }
    }
    pub fn unauthenticated(code: &'static str, message: impl Into<String>) -> Self {
        Self::Unauthenticated { code, message: message.into() }
    }
    pub fn unavailable(code: &'static str, message: impl Into<String>) -> Self {
        Self::Unavailable { code, message: message.into() }
    }
    pub fn not_found(what: &'static str) -> Self {
        Self::NotFound { what }
    }
    pub fn too_large(code: &'static str, message: impl Into<String>) -> Self {
        Self::TooLarge { code, message: message.into() }
    }
}
