//! Audio durations by format, read from the container without decoding. [`probe_duration_ms`]
//! dispatches on the sniffed MIME type; each format has its own reader. To add one, add a module
//! and a match arm here.
//!
//! A reader answers [`AudioError::Invalid`] for a file of its format that it cannot trust (a
//! header with a zero sample rate, an Ogg page cut off or failing its checksum, no audio at
//! all): such a file is not voice, and must not be handed to a decoder that may panic on it.

mod ogg;
mod wav;

/// Why there is no duration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AudioError {
    /// Not a format read here (another decoder may know it).
    #[error("not a format natter-media reads")]
    NotRead,
    /// A file of a format read here that is corrupt, truncated or absurd.
    #[error("invalid audio: {0}")]
    Invalid(String),
}

fn invalid(why: impl Into<String>) -> AudioError {
    AudioError::Invalid(why.into())
}

/// The length of `bytes` as audio of type `mime`.
pub fn probe_duration_ms(mime: &str, bytes: &[u8]) -> Result<u64, AudioError> {
    match mime {
        "audio/wav" | "audio/x-wav" | "audio/wave" | "audio/vnd.wave" => wav::duration_ms(bytes),
        "audio/ogg" | "audio/opus" | "application/ogg" => ogg::duration_ms(bytes),
        _ => Err(AudioError::NotRead),
    }
}

/// [`probe_duration_ms`], `None` for formats not read here and for corrupt files.
pub fn duration_ms(mime: &str, bytes: &[u8]) -> Option<u64> {
    probe_duration_ms(mime, bytes).ok()
}
