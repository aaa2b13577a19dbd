//! natter's speech-to-text adapters, behind natter-core's [`natter_core::speech`] ports:
//!
//! * [`decode`]: WAV, Ogg/Opus and WebM/Opus decoding and resampling to 16 kHz mono, in Rust;
//! * [`whisper`]: embedded Whisper in pure Rust (candle), the default engine;
//! * `ct2` (cargo feature `ctranslate2`): embedded Whisper through CTranslate2 (C++, cmake);
//! * [`openai`]: an OpenAI-compatible HTTP transcription engine;
//! * [`models`]: the Whisper models natter can fetch from PyPI, and fetching them;
//! * [`convert`]: CTranslate2's model format read and converted to safetensors.

pub mod convert;
#[cfg(feature = "ctranslate2")]
pub mod ct2;
pub mod decode;
pub mod features;
pub mod model;
pub mod models;
pub mod openai;
mod opus;
pub mod vocabulary;
pub mod wav;
pub mod whisper;

#[cfg(feature = "ctranslate2")]
pub use ct2::Ct2WhisperEngine;
pub use decode::{SymphoniaDecoder, audio_duration_ms};
pub use openai::OpenAiEngine;
pub use whisper::WhisperEngine;
