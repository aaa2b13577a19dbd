//! Audio durations by format. [`duration_ms`] dispatches on the sniffed MIME type; each format
//! has its own reader. To add one (Ogg/Opus, WebM/Opus), add a module and a match arm here.

mod wav;

/// The length of `bytes` as audio of type `mime`, `None` for formats not read here (or corrupt
/// files).
pub fn duration_ms(mime: &str, bytes: &[u8]) -> Option<u64> {
    match mime {
        "audio/wav" | "audio/x-wav" | "audio/wave" | "audio/vnd.wave" => wav::duration_ms(bytes),
        _ => None,
    }
}
