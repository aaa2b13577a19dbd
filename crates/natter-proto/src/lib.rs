//! Wire types of natter's client API: request and response bodies, WebSocket frames and error codes.
//!
//! This crate owns the JSON shapes that clients see and nothing else: it depends only on serde,
//! chrono and utoipa (for the OpenAPI document). Ids are plain strings on the wire; the domain's
//! newtype ids live in `natter-core`. Timestamps are RFC 3339 UTC.

pub mod auth;
pub mod conversations;
pub mod error;
pub mod files;
pub mod friends;
pub mod messages;
pub mod search;
pub mod speech;
pub mod users;
pub mod ws;

pub use auth::*;
pub use conversations::*;
pub use error::*;
pub use files::*;
pub use friends::*;
pub use messages::*;
pub use search::*;
pub use speech::*;
pub use users::*;
pub use ws::*;

/// Timestamps on the wire.
pub type Timestamp = chrono::DateTime<chrono::Utc>;

/// A string schema limited to `values`, for fields kept as strings so the server can answer an
/// unknown value with its own error code (`invalid_kind`) rather than a parse error.
pub(crate) fn string_enum(values: &[&str]) -> utoipa::openapi::Object {
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .enum_values(Some(values.iter().copied()))
        .build()
}
