//! Image size and thumbnail, with a guard against decompression bombs.

use std::io::Cursor;

use image::codecs::jpeg::JpegEncoder;
use image::{DynamicImage, ImageDecoder, ImageReader, Limits};
use natter_core::media::{ImageInfo, MediaError, Thumbnail};

use crate::Media;

/// JPEG quality of thumbnails.
const THUMBNAIL_QUALITY: u8 = 80;

/// Room for a decoder's own buffers (rows, palettes, LZW tables) beside the image it decodes.
const DECODER_SLACK_BYTES: u64 = 64 * 1024 * 1024;

pub(crate) fn inspect(bytes: &[u8], limits: &Media) -> Result<ImageInfo, MediaError> {
    let undecodable = |e: image::ImageError| match e {
        image::ImageError::Limits(limit) => MediaError::TooLarge(limit.to_string()),
        other => MediaError::Undecodable(other.to_string()),
    };
    let mut reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| MediaError::Undecodable(e.to_string()))?;
    let mut allocations = Limits::default();
    allocations.max_alloc = Some(limits.max_decoded_bytes.saturating_add(DECODER_SLACK_BYTES));
    reader.limits(allocations);
    // Only the header is read here: a bomb is refused by its declared size, before decoding.
    let decoder = reader.into_decoder().map_err(undecodable)?;
    let (width, height) = decoder.dimensions();
    if u64::from(width) * u64::from(height) > limits.max_pixels {
        return Err(MediaError::TooLarge(format!("{width}x{height} is more than {} pixels", limits.max_pixels)));
    }
    // Pixels alone do not bound memory: 16-bit RGBA takes 8 bytes a pixel, so a 49 MP image
    // within the pixel limit would decode to 392 MB. The decoded buffer is what is allocated.
    let decoded_bytes = decoder.total_bytes();
    if decoded_bytes > limits.max_decoded_bytes {
        return Err(MediaError::TooLarge(format!(
            "{width}x{height} {:?} decodes to {decoded_bytes} bytes, more than {}",
            decoder.color_type(),
            limits.max_decoded_bytes
        )));
    }
    let decoded = DynamicImage::from_decoder(decoder).map_err(undecodable)?;
    let thumbnail_size = limits.thumbnail_size;
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
    use image::{ImageBuffer, ImageFormat, Rgba, RgbaImage};

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

    fn limits(max_pixels: u64) -> Media {
        Media::with_max_pixels(max_pixels)
    }

    #[test]
    fn measures_and_thumbnails_keeping_the_aspect_ratio() {
        let info = inspect(&png(1000, 500), &limits(50_000_000)).expect("inspects");
        assert_eq!((info.width, info.height), (1000, 500));
        assert_eq!((info.thumbnail.width, info.thumbnail.height), (320, 160));
        assert_eq!(&info.thumbnail.bytes[..3], &[0xff, 0xd8, 0xff], "a JPEG");
        let small = inspect(&png(40, 30), &limits(50_000_000)).expect("inspects");
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
        assert!(matches!(inspect(&bomb, &limits(50_000_000)), Err(MediaError::TooLarge(_))));
        assert!(matches!(inspect(&png(100, 100), &limits(5_000)), Err(MediaError::TooLarge(_))));
        assert!(matches!(inspect(b"not an image at all", &limits(50_000_000)), Err(MediaError::Undecodable(_))));
    }

    #[test]
    fn refuses_deep_colour_images_by_their_decoded_bytes() {
        // A PNG header declaring 7000 x 7000 at 16 bits per RGBA channel: 49 MP, within the
        // 50 MP pixel limit, but 392 MB decoded. Refused from the header, before decoding.
        let mut deep = png(1, 1);
        deep[16..20].copy_from_slice(&7000u32.to_be_bytes());
        deep[20..24].copy_from_slice(&7000u32.to_be_bytes());
        deep[24] = 16;
        let crc = crc32(&deep[12..29]);
        deep[29..33].copy_from_slice(&crc.to_be_bytes());
        let refused = inspect(&deep, &limits(50_000_000));
        assert!(matches!(&refused, Err(MediaError::TooLarge(why)) if why.contains("392000000")), "{refused:?}");

        // Decoded for real: 30 x 30 is within 1000 pixels, and takes 3600 bytes at 8 bits per
        // channel (within 4 x 1000) but 7200 at 16.
        let mut out = Cursor::new(Vec::new());
        ImageBuffer::<Rgba<u16>, _>::from_pixel(30, 30, Rgba([40_000, 1, 2, 65_535]))
            .write_to(&mut out, ImageFormat::Png)
            .expect("encode");
        assert!(matches!(inspect(&out.into_inner(), &limits(1000)), Err(MediaError::TooLarge(_))));
        let info = inspect(&png(30, 30), &limits(1000)).expect("8 bits per channel fits");
        assert_eq!((info.width, info.height), (30, 30));
    }
}
