//! The media port: what the server learns from an uploaded file's bytes (image size and
//! thumbnail, audio length). Implemented by `natter-media`; CPU-bound, so the file service calls
//! it on a blocking thread.
//!
//! Seam for more audio formats: [`MediaInspector::audio_duration_ms`] gets the sniffed MIME
//! type and the whole file; an adapter answers `None` for formats it cannot read and for files
//! it finds corrupt (natter-media reads WAV and Ogg/Opus; the binary adds natter-speech's
//! decoder for WebM/Opus). A voice message needs a duration, so `None` also means "not voice".

#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    /// Not an image this server decodes, or a corrupt one.
    #[error("cannot decode the image: {0}")]
    Undecodable(String),
    /// More pixels (or memory) than allowed: a decompression bomb, or just too big.
    #[error("the image is too large to process: {0}")]
    TooLarge(String),
}

/// A thumbnail the inspector made.
#[derive(Debug, Clone, PartialEq)]
pub struct Thumbnail {
    pub bytes: Vec<u8>,
    /// E.g. `image/jpeg`.
    pub mime: String,
    pub width: u32,
    pub height: u32,
}

/// What an image is.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageInfo {
    pub width: u32,
    pub height: u32,
    pub thumbnail: Thumbnail,
}

pub trait MediaInspector: Send + Sync + 'static {
    /// Decodes the image (within the adapter's pixel and memory limits), and makes a thumbnail
    /// that fits in a square of the adapter's size, never larger than the image.
    fn inspect_image(&self, bytes: &[u8]) -> Result<ImageInfo, MediaError>;
    /// The length of an audio file of type `mime`, or `None` when the format is not one the
    /// adapter reads (or the file is corrupt).
    fn audio_duration_ms(&self, mime: &str, bytes: &[u8]) -> Option<u64>;
}
