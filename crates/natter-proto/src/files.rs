//! Uploaded files as clients see them.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A stored file (the answer to `POST /files`, `GET /files/{id}/meta`, and the `file` of an
/// image, file or voice message).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct FileView {
    pub id: String,
    /// The uploader's file name, cleaned (no path, no control characters).
    pub name: String,
    /// Sniffed from the bytes, not taken from the client.
    pub mime: String,
    pub size: i64,
    /// Lowercase hex SHA-256 of the bytes; also the download's `ETag`.
    pub sha256: String,
    /// Images the server could decode: size in pixels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub width: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub height: Option<i64>,
    /// Audio whose length the server could read (WAV, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<i64>,
    /// Images: a JPEG at most 320 px on a side, itself a file (`GET /files/{thumbnail_id}` or
    /// `GET /files/{id}/thumbnail`), readable by whoever may read the image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thumbnail_id: Option<String>,
    pub created_at: DateTime<Utc>,
}
