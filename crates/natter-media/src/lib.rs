//! natter's media adapter: implements [`natter_core::media::MediaInspector`].
//!
//! Owns decoding: images through the `image` crate (PNG, JPEG, GIF, WebP, BMP) within a pixel
//! limit and a limit on the decoded buffer's bytes, so a small file that claims to be a huge
//! image (a decompression bomb), or a deep-colour one that would take 8 bytes a pixel, is refused
//! before anything is allocated for it; thumbnails as JPEG; audio durations per format in
//! [`audio`] (WAV and Ogg/Opus from their containers; that module is where more formats plug in).

pub mod audio;
mod image_info;

use std::panic::{AssertUnwindSafe, catch_unwind};

use natter_core::media::{ImageInfo, MediaError, MediaInspector};

/// The inspector with its limits.
#[derive(Debug, Clone)]
pub struct Media {
    /// Largest width × height decoded.
    pub max_pixels: u64,
    /// Largest decoded image buffer (width × height × bytes per pixel of its colour type).
    pub max_decoded_bytes: u64,
    /// Thumbnails fit in a square of this many pixels.
    pub thumbnail_size: u32,
}

impl Media {
    /// An inspector for images of up to `max_pixels`, decoded at up to 4 bytes a pixel (8-bit
    /// RGBA): deeper images are held to the same memory, so they may have fewer pixels.
    pub fn with_max_pixels(max_pixels: u64) -> Self {
        Self { max_pixels, max_decoded_bytes: max_pixels.saturating_mul(4), ..Self::default() }
    }
}

impl Default for Media {
    fn default() -> Self {
        Self { max_pixels: 50_000_000, max_decoded_bytes: 200_000_000, thumbnail_size: 320 }
    }
}

impl MediaInspector for Media {
    fn inspect_image(&self, bytes: &[u8]) -> Result<ImageInfo, MediaError> {
        // The image crate's decoders are third-party parsers of untrusted bytes; a panic in one
        // must make the file "not an image", never take down the upload.
        catch_unwind(AssertUnwindSafe(|| image_info::inspect(bytes, self)))
            .unwrap_or_else(|_| Err(MediaError::Undecodable("the image decoder panicked".into())))
    }

    fn audio_duration_ms(&self, mime: &str, bytes: &[u8]) -> Option<u64> {
        audio::duration_ms(mime, bytes)
    }
}
