//! Speech-to-text ports: an audio decoder (container/codec bytes to 16 kHz mono samples) and a
//! transcriber (samples to text). Adapters live in `natter-speech`; the service that queues work
//! on a bounded pool is [`crate::service::speech`].

use async_trait::async_trait;

/// The sample rate every transcriber takes: 16 kHz, mono, `f32` in `[-1, 1]`.
pub const SAMPLE_RATE: u32 = 16_000;

/// Why audio could not be turned into text.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SpeechError {
    /// Not a container/codec we decode (WAV, Ogg/Opus, WebM/Opus, ...), or corrupt.
    #[error("unsupported audio: {0}")]
    UnsupportedAudio(String),
    /// Longer than the configured cap.
    #[error("audio longer than {max_ms} ms")]
    TooLong { max_ms: u64 },
    /// The engine failed (model error, HTTP engine down, ...).
    #[error("speech engine failed: {0}")]
    Engine(String),
}

/// A transcription result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transcript {
    pub text: String,
    /// Language the engine detected or was told, when it says.
    pub language: Option<String>,
}

/// Decodes audio files. Blocking and CPU-bound: call it from a blocking thread.
pub trait AudioDecoder: Send + Sync + 'static {
    /// Decodes and resamples to 16 kHz mono; fails with `TooLong` past `max_ms` of audio.
    fn decode(&self, bytes: &[u8], max_ms: u64) -> Result<Vec<f32>, SpeechError>;
    /// Duration of the audio in milliseconds (decodes if the container does not say).
    fn duration_ms(&self, bytes: &[u8]) -> Result<u64, SpeechError>;
}

/// Turns 16 kHz mono samples into text. Implementations move CPU-heavy work off the async
/// runtime themselves (a blocking thread), so callers may await them on a runtime worker.
#[async_trait]
pub trait Transcriber: Send + Sync + 'static {
    /// A short description for logs and `/healthz` (engine and model).
    fn describe(&self) -> String;
    /// `language`: an ISO 639-1 hint (`en`), or `None` to let the engine detect it.
    async fn transcribe(&self, samples: Vec<f32>, language: Option<String>) -> Result<Transcript, SpeechError>;
}
