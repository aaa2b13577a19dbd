//! Image size and thumbnail, with a guard against decompression bombs.

use std::io::Cursor;

use image::codecs::jpeg::JpegEncoder;
use image::{ImageReader, Limits};
use natter_core::media::{ImageInfo, MediaError, Thumbnail};

/// JPEG quality of thumbnails.
const THUMBNAIL_QUALITY: u8 = 80;

pub(crate) fn inspect(bytes: &[u8], max_pixels: u64, thumbnail_size: u32) -> Result<ImageInfo, MediaError> {
    let reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| MediaError::Undecodable(e.to_string()))?;
    // The header is read first: a bomb is refused by its declared size, before decoding.
    let (width, height) = reader.into_dimensions().map_err(|e| MediaError::Undecodable(e.to_string()))?;
    if u64::from(width) * u64::from(height) > max_pixels {
        return Err(MediaError::TooLarge(format!("{width}x{height} is more than {max_pixels} pixels")));
    }
    let mut reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| MediaError::Undecodable(e.to_string()))?;
    let mut limits = Limits::default();
    limits.max_image_width = Some(width);
    limits.max_image_height = Some(height);
    // RGBA at 16 bits per channel, plus room for the decoder's own buffers.
    limits.max_alloc = Some(max_pixels.saturating_mul(8).saturating_add(64 * 1024 * 1024));
    reader.limits(limits);
    let decoded = reader.decode().map_err(|e| match e {
        image::ImageError::Limits(limit) => MediaError::TooLarge(limit.to_string()),
        other => MediaError::Undecodable(other.to_string()),
    })?;
    let small = if width <= thumbnail_size && height <= thumbnail_size {
        decoded
    } else {
        decoded.thumbnail(thumbnail_size, thumbnail_size)
    };
    // JPEG has no alpha channel: flatten to RGB.
    let rgb = small.to_rgb8();
    let mut encoded = Vec::new();
    JpegEncoder::new_with_quality(&mut encoded, THUMBNAIL_QUALITY)
        .encode_image(&rgb)
        .map_err(|e| MediaError::Undecodable(e.to_string()))?;
    Ok(ImageInfo {
        width,
        height,
        thumbnail: Thumbnail { bytes: encoded, mime: "image/jpeg".into(), width: rgb.width(), height: rgb.height() },
    })
}

#[cfg(test)]
mod tests {
    use image::{ImageFormat, RgbaImage};

    use super::*;

    fn png(width: u32, height: u32) -> Vec<u8> {
        let mut out = Cursor::new(Vec::new());
        RgbaImage::from_pixel(width, height, image::Rgba([200, 10, 10, 128]))
            .write_to(&mut out, ImageFormat::Png)
            .expect("encode");
        out.into_inner()
    }

    /// PNG's CRC-32 (so the patched header is a valid one).
    fn crc32(bytes: &[u8]) -> u32 {
        let mut crc = 0xffff_ffffu32;
        for byte in bytes {
            crc ^= u32::from(*byte);
            for _ in 0..8 {
                crc = if crc & 1 == 1 { (crc >> 1) ^ 0xedb8_8320 } else { crc >> 1 };
            }
        }
        !crc
    }

    #[test]
    fn measures_and_thumbnails_keeping_the_aspect_ratio() {
        let info = inspect(&png(1000, 500), 50_000_000, 320).expect("inspects");
        assert_eq!((info.width, info.height), (1000, 500));
        assert_eq!((info.thumbnail.width, info.thumbnail.height), (320, 160));
        assert_eq!(&info.thumbnail.bytes[..3], &[0xff, 0xd8, 0xff], "a JPEG");
        let small = inspect(&png(40, 30), 50_000_000, 320).expect("inspects");
        assert_eq!((small.thumbnail.width, small.thumbnail.height), (40, 30), "never enlarged");
    }

    #[test]
    fn refuses_bombs_by_their_header_and_garbage() {
        // A valid PNG header declaring 100000 x 100000 pixels, with no data behind it.
        let mut bomb = png(1, 1);
        bomb[16..20].copy_from_slice(&100_000u32.to_be_bytes());
        bomb[20..24].copy_from_slice(&100_000u32.to_be_bytes());
        let crc = crc32(&bomb[12..29]);
        bomb[29..33].copy_from_slice(&crc.to_be_bytes());
        assert!(matches!(inspect(&bomb, 50_000_000, 320), Err(MediaError::TooLarge(_))));
        assert!(matches!(inspect(&png(100, 100), 5_000, 320), Err(MediaError::TooLarge(_))));
        assert!(matches!(inspect(b"not an image at all", 50_000_000, 320), Err(MediaError::Undecodable(_))));
    }
}
