//! natter's media adapter: implements [`natter_core::media::MediaInspector`].
//!
//! Owns decoding: images through the `image` crate (PNG, JPEG, GIF, WebP, BMP) within a pixel
//! and memory limit, so a small file that claims to be a huge image (a decompression bomb) is
//! refused before anything is allocated for it; thumbnails as JPEG; audio durations per format
//! in [`audio`] (WAV here; that module is where more formats plug in).

pub mod audio;
mod image_info;

use natter_core::media::{ImageInfo, MediaError, MediaInspector};

/// The inspector with its limits.
#[derive(Debug, Clone)]
pub struct Media {
    /// Largest width × height decoded.
    pub max_pixels: u64,
    /// Thumbnails fit in a square of this many pixels.
    pub thumbnail_size: u32,
}

impl Default for Media {
    fn default() -> Self {
        Self { max_pixels: 50_000_000, thumbnail_size: 320 }
    }
}

impl MediaInspector for Media {
    fn inspect_image(&self, bytes: &[u8]) -> Result<ImageInfo, MediaError> {
        image_info::inspect(bytes, self.max_pixels, self.thumbnail_size)
    }

    fn audio_duration_ms(&self, mime: &str, bytes: &[u8]) -> Option<u64> {
        audio::duration_ms(mime, bytes)
    }
}
