//! Shared helpers: synthesized speech (espeak-ng, sox, opusenc) and the cached test model.

#![allow(dead_code, unreachable_pub)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// What the synthesized clips say, and words of it a transcript must contain.
pub const SENTENCE: &str = "Hello world. The weather is sunny today.";
pub const KEY_WORDS: &[&str] = &["hello", "world", "weather", "sunny", "today"];

/// The Whisper model directory from `NATTER_TEST_WHISPER_MODEL` (`scripts/test.sh` fetches and
/// caches tiny.en). Unset: `None` (the test is skipped), or a panic under `CI`.
pub fn model_or_skip(test: &str) -> Option<PathBuf> {
    match std::env::var("NATTER_TEST_WHISPER_MODEL") {
        Ok(dir) if !dir.is_empty() => Some(PathBuf::from(dir)),
        _ if std::env::var_os("CI").is_some() => {
            panic!("{test}: NATTER_TEST_WHISPER_MODEL is not set, and CI requires it")
        }
        _ => {
            eprintln!(
                "skipping {test}: set NATTER_TEST_WHISPER_MODEL to a Whisper model dir (natter models fetch tiny.en)"
            );
            None
        }
    }
}

/// How many of the key words the transcript has (case-insensitive).
pub fn key_words_found(text: &str) -> usize {
    let text = text.to_lowercase();
    KEY_WORDS.iter().filter(|w| text.contains(*w)).count()
}

pub fn temp_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("natter-speech-test-{}-{}", std::process::id(), rand_suffix()));
    std::fs::create_dir_all(&dir).expect("create a temp dir");
    dir
}

fn rand_suffix() -> u128 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or_default()
}

fn run(program: &str, args: &[&str]) {
    let status = Command::new(program)
        .args(args)
        .status()
        .unwrap_or_else(|e| panic!("cannot run {program} (scripts/test.sh installs espeak-ng, sox, opus-tools): {e}"));
    assert!(status.success(), "{program} {args:?} failed: {status}");
}

/// `SENTENCE` spoken by espeak-ng (22.05 kHz mono WAV), padded with silence to `seconds` when
/// given (sox).
pub fn speech_wav(dir: &Path, seconds: Option<f32>) -> PathBuf {
    let raw = dir.join("speech-raw.wav");
    run("espeak-ng", &["-v", "en-us+m3", "-s", "140", "-g", "5", "-w", path(&raw), SENTENCE]);
    let Some(seconds) = seconds else { return raw };
    let padded = dir.join("speech.wav");
    let length = format!("{seconds}");
    run("sox", &["-R", path(&raw), path(&padded), "pad", "0", &length, "trim", "0", &length]);
    padded
}

/// The WAV at 48 kHz stereo (sox), as a browser would capture it, encoded as Ogg/Opus (opusenc).
pub fn speech_ogg_opus(dir: &Path, wav: &Path) -> PathBuf {
    let stereo = dir.join("speech-48k-stereo.wav");
    // `-D`: sox dithers with random noise when it resamples, so every run made a slightly
    // different file and tiny.en heard the last words differently from run to run; undithered,
    // the file (and the transcript) is the same every time.
    run("sox", &["-D", path(wav), "-r", "48000", "-c", "2", path(&stereo)]);
    let ogg = dir.join("speech.ogg");
    run("opusenc", &["--quiet", "--bitrate", "32", path(&stereo), path(&ogg)]);
    ogg
}

/// The WAV at 48 kHz in six identical channels, encoded as 5.1 Ogg/Opus (opusenc: channel
/// mapping family 1, four streams, two of them coupled).
pub fn speech_surround_ogg_opus(dir: &Path, wav: &Path) -> PathBuf {
    let surround = dir.join("speech-48k-5.1.wav");
    run("sox", &["-D", path(wav), "-r", "48000", "-c", "6", path(&surround)]);
    let ogg = dir.join("speech-5.1.ogg");
    run("opusenc", &["--quiet", "--bitrate", "96", path(&surround), path(&ogg)]);
    ogg
}

/// The Ogg/Opus file decoded by libopus (opusdec, opus-tools) at 48 kHz, as a float WAV.
pub fn opusdec(dir: &Path, ogg: &Path) -> PathBuf {
    let wav = dir.join(format!("{}-opusdec.wav", ogg.file_stem().and_then(|s| s.to_str()).unwrap_or("audio")));
    run("opusdec", &["--quiet", "--rate", "48000", "--float", path(ogg), path(&wav)]);
    wav
}

/// A committed WebM/Opus recording of `SENTENCE` (see `tests/fixtures/README.md`).
pub fn webm_fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/speech.webm")
}

fn path(p: &Path) -> &str {
    p.to_str().expect("UTF-8 temp path")
}
