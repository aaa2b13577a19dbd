//! An uploaded image, inspected as the server does (dimensions, then a thumbnail): any bytes give
//! an answer or an error within the pixel and memory limits (a decompression bomb is refused
//! before it is decoded). The limits are small here so that the fuzzer's memory limit holds.
#![no_main]

use std::sync::Once;

use libfuzzer_sys::fuzz_target;
use natter_core::media::MediaInspector;
use natter_media::Media;

static QUIET_PANICS: Once = Once::new();

fuzz_target!(|data: &[u8]| {
    // The inspector turns a panic inside the image crate into "not an image" (as the server does);
    // only a panic that escapes it is a crash, and libFuzzer's harness still aborts on that one.
    QUIET_PANICS.call_once(|| std::panic::set_hook(Box::new(|_| {})));
    let media = Media { max_pixels: 4_000_000, max_decoded_bytes: 16_000_000, thumbnail_size: 64 };
    if let Ok(info) = media.inspect_image(data) {
        assert!(u64::from(info.width) * u64::from(info.height) <= media.max_pixels);
    }
});
