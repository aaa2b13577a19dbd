//! Decoding real recordings: WAV from espeak-ng, Ogg/Opus from opusenc (stereo and 5.1),
//! WebM/Opus from ffmpeg; Opus decoded as libopus's opusdec decodes it.

mod common;

use natter_core::speech::{AudioDecoder, SAMPLE_RATE};
use natter_speech::{SymphoniaDecoder, audio_duration_ms};

fn decode(bytes: &[u8]) -> Vec<f32> {
    SymphoniaDecoder.decode(bytes, 60_000).expect("decodes")
}

fn energy(samples: &[f32]) -> f32 {
    (samples.iter().map(|s| s * s).sum::<f32>() / samples.len().max(1) as f32).sqrt()
}

#[test]
fn wav_and_ogg_opus_decode_to_the_same_length_at_16_khz() {
    let dir = common::temp_dir();
    let wav = common::speech_wav(&dir, Some(5.0));
    let ogg = common::speech_ogg_opus(&dir, &wav);
    let wav_bytes = std::fs::read(&wav).expect("read wav");
    let ogg_bytes = std::fs::read(&ogg).expect("read ogg");
    let from_wav = decode(&wav_bytes);
    let from_ogg = decode(&ogg_bytes);
    assert_eq!(from_wav.len(), 5 * SAMPLE_RATE as usize);
    // Opus pre-skip and padding may move the end by a few ms.
    let diff = from_wav.len().abs_diff(from_ogg.len());
    assert!(diff < SAMPLE_RATE as usize / 20, "wav {} vs ogg {} samples", from_wav.len(), from_ogg.len());
    assert!(energy(&from_ogg) > 0.01, "decoded Opus is silent");
    assert!((energy(&from_wav) - energy(&from_ogg)).abs() < 0.5 * energy(&from_wav));
    assert!(audio_duration_ms(&ogg_bytes).expect("duration").abs_diff(5000) < 60);
    assert_eq!(audio_duration_ms(&wav_bytes).expect("duration"), 5000);
    let _ = std::fs::remove_dir_all(dir);
}

/// Signal-to-noise ratio of `ours` against `reference`, in dB, over their common length.
fn snr_db(ours: &[f32], reference: &[f32]) -> f64 {
    let (signal, noise) = ours.iter().zip(reference).fold((0f64, 0f64), |(signal, noise), (a, b)| {
        (signal + f64::from(*b).powi(2), noise + f64::from(a - b).powi(2))
    });
    10.0 * (signal / noise.max(f64::MIN_POSITIVE)).log10()
}

/// natter's Opus decoder against libopus: the same file decoded by both (opusdec writes a WAV),
/// then downmixed and resampled by the same code, agrees far below audibility, sample for
/// sample (a pre-skip or channel-mapping mistake would bring the ratio near 0 dB).
#[test]
fn ogg_opus_decodes_as_libopus_does() {
    let dir = common::temp_dir();
    let wav = common::speech_wav(&dir, Some(5.0));
    for ogg in [common::speech_ogg_opus(&dir, &wav), common::speech_surround_ogg_opus(&dir, &wav)] {
        let ours = decode(&std::fs::read(&ogg).expect("read ogg"));
        let libopus = decode(&std::fs::read(common::opusdec(&dir, &ogg)).expect("read opusdec's wav"));
        let snr = snr_db(&ours, &libopus);
        eprintln!("{}: {} samples, libopus {}, SNR {snr:.1} dB", ogg.display(), ours.len(), libopus.len());
        assert!(snr > 60.0, "{}: SNR {snr:.1} dB against libopus", ogg.display());
        // opusdec also cuts the end padding (by the last granule position), which symphonia's
        // demuxer leaves: at most one packet longer.
        assert!(ours.len() >= libopus.len() && ours.len() - libopus.len() < SAMPLE_RATE as usize / 20);
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn webm_opus_decodes() {
    let bytes = std::fs::read(common::webm_fixture()).expect("read the WebM fixture");
    let samples = decode(&bytes);
    let seconds = samples.len() as f32 / SAMPLE_RATE as f32;
    assert!((2.0..6.0).contains(&seconds), "{seconds} s");
    assert!(energy(&samples) > 0.01, "decoded WebM is silent");
    assert!(audio_duration_ms(&bytes).expect("duration") > 2000);
}

#[test]
fn truncated_and_foreign_files_are_unsupported() {
    let bytes = std::fs::read(common::webm_fixture()).expect("read the WebM fixture");
    assert!(SymphoniaDecoder.decode(&bytes[..40], 60_000).is_err());
    assert!(SymphoniaDecoder.decode(b"%PDF-1.4 not audio", 60_000).is_err());
    assert!(SymphoniaDecoder.decode(&[0u8; 4096], 60_000).is_err());
}
