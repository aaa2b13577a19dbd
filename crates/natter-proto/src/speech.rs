//! Speech-to-text: `POST /speech/transcriptions`.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// JSON body of `POST /speech/transcriptions` for audio that was uploaded before (the
/// multipart form with a `file` field is the other way to call it).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TranscriptionRequest {
    pub file_id: String,
}

/// A transcription.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TranscriptionResponse {
    pub text: String,
    /// ISO 639-1 language of the text, when the engine says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    /// Length of the audio.
    pub duration_ms: u64,
}
