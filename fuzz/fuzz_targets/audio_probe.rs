//! A voice message's duration, read from its WAV or Ogg container (`natter_media::audio`): any
//! bytes give a duration or an error, never a panic or a hang.
#![no_main]

use libfuzzer_sys::fuzz_target;
use natter_media::audio::probe_duration_ms;

fuzz_target!(|data: &[u8]| {
    for mime in ["audio/wav", "audio/ogg"] {
        let _ = probe_duration_ms(mime, data);
    }
});
