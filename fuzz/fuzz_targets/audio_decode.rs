//! A voice message or transcription upload, decoded as the speech service does (WAV header check,
//! symphonia's demuxers, the Opus decoder, resampling to 16 kHz): any bytes give samples or an
//! error, never a crash or a hang.
//!
//! The decoders are compiled in from natter-speech's own sources, so this target links only what
//! they use: depending on the crate would bring the Whisper engine (candle, tokenizers) into
//! every fuzz build for nothing.
#![no_main]

#[path = "../../crates/natter-speech/src/decode.rs"]
mod decode;
#[path = "../../crates/natter-speech/src/opus.rs"]
mod opus;
#[path = "../../crates/natter-speech/src/wav.rs"]
mod wav;

use std::sync::Once;

use libfuzzer_sys::fuzz_target;
use natter_core::speech::AudioDecoder;

static QUIET_PANICS: Once = Once::new();

fuzz_target!(|data: &[u8]| {
    // The decoder turns a panic inside symphonia into an error (as the server does); only a panic
    // that escapes it is a crash, and libFuzzer's harness still aborts on that one.
    QUIET_PANICS.call_once(|| std::panic::set_hook(Box::new(|_| {})));
    let _ = decode::SymphoniaDecoder.decode(data, 10_000);
    let _ = decode::audio_duration_ms(data);
});
