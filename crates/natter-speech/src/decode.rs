//! Audio decoding in Rust: WAV (PCM), Ogg/Opus and WebM/Opus (what browsers' MediaRecorder
//! produces), plus Ogg/Vorbis and FLAC, through symphonia's demuxers and codecs, with
//! `opus.rs` (the pure-Rust `opus-decoder` crate) for Opus packets. Output is 16 kHz mono `f32`,
//! resampled with rubato.

use std::io::Cursor;
use std::panic::{AssertUnwindSafe, catch_unwind};

use natter_core::speech::{AudioDecoder, SAMPLE_RATE, SpeechError};
use rubato::{FftFixedIn, Resampler};
use symphonia::core::audio::SampleBuffer;
use symphonia::core::codecs::{CODEC_TYPE_NULL, CodecRegistry, DecoderOptions};
use symphonia::core::errors::Error as SymphoniaError;
use symphonia::core::formats::FormatOptions;
use symphonia::core::io::MediaSourceStream;
use symphonia::core::meta::MetadataOptions;
use symphonia::core::probe::Hint;

use crate::opus::OpusDecoder;

/// The decoder natter uses; stateless, cheap to share.
#[derive(Debug, Default, Clone, Copy)]
pub struct SymphoniaDecoder;

impl AudioDecoder for SymphoniaDecoder {
    fn decode(&self, bytes: &[u8], max_ms: u64) -> Result<Vec<f32>, SpeechError> {
        let (samples, rate) = decode_mono(bytes, Some(max_ms))?;
        resample(samples, rate)
    }

    fn duration_ms(&self, bytes: &[u8]) -> Result<u64, SpeechError> {
        audio_duration_ms(bytes)
    }
}

/// Duration of an audio file in milliseconds, from the decoded samples (containers recorded by
/// browsers often carry no duration).
pub fn audio_duration_ms(bytes: &[u8]) -> Result<u64, SpeechError> {
    let (samples, rate) = decode_mono(bytes, None)?;
    Ok(samples.len() as u64 * 1000 / u64::from(rate.max(1)))
}

fn unsupported(error: impl std::fmt::Display) -> SpeechError {
    SpeechError::UnsupportedAudio(error.to_string())
}

fn codecs() -> CodecRegistry {
    let mut registry = CodecRegistry::new();
    symphonia::default::register_enabled_codecs(&mut registry);
    registry.register_all::<OpusDecoder>();
    registry
}

/// Decodes the first audio track, downmixed to mono, at its own sample rate.
fn decode_mono(bytes: &[u8], max_ms: Option<u64>) -> Result<(Vec<f32>, u32), SpeechError> {
    crate::wav::check_header(bytes).map_err(unsupported)?;
    guarded_decode(bytes, max_ms)
}

/// [`symphonia_decode`], a panic in it an error.
fn guarded_decode(bytes: &[u8], max_ms: Option<u64>) -> Result<(Vec<f32>, u32), SpeechError> {
    // symphonia's demuxers and codecs parse untrusted bytes and some panic on absurd headers
    // (a zero sample rate in a WAV is `TimeBase::new(1, 0)`): a panic there means "not audio
    // we can read", and must not reach the upload or transcription request as a 500.
    catch_unwind(AssertUnwindSafe(|| symphonia_decode(bytes, max_ms)))
        .unwrap_or_else(|_| Err(unsupported("the audio decoder panicked on this file")))
}

fn symphonia_decode(bytes: &[u8], max_ms: Option<u64>) -> Result<(Vec<f32>, u32), SpeechError> {
    let source = MediaSourceStream::new(Box::new(Cursor::new(bytes.to_vec())), Default::default());
    let probed = symphonia::default::get_probe()
        .format(&Hint::new(), source, &FormatOptions::default(), &MetadataOptions::default())
        .map_err(unsupported)?;
    let mut format = probed.format;
    let track = format
        .tracks()
        .iter()
        .find(|t| t.codec_params.codec != CODEC_TYPE_NULL)
        .ok_or_else(|| unsupported("no audio track"))?;
    let track_id = track.id;
    let mut decoder = codecs().make(&track.codec_params, &DecoderOptions::default()).map_err(unsupported)?;
    let mut rate = track.codec_params.sample_rate.unwrap_or(0);
    let mut mono = Vec::new();
    let mut buffer: Option<SampleBuffer<f32>> = None;
    loop {
        let packet = match format.next_packet() {
            Ok(packet) => packet,
            Err(SymphoniaError::IoError(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
            Err(SymphoniaError::ResetRequired) => break,
            Err(e) => return Err(unsupported(e)),
        };
        if packet.track_id() != track_id {
            continue;
        }
        let decoded = match decoder.decode(&packet) {
            Ok(decoded) => decoded,
            // A corrupt packet is skipped, as players do; the rest still decodes.
            Err(SymphoniaError::DecodeError(_)) => continue,
            Err(e) => return Err(unsupported(e)),
        };
        let spec = *decoded.spec();
        rate = spec.rate;
        let channels = spec.channels.count().max(1);
        let needed = decoded.capacity() as u64;
        let buf = match &mut buffer {
            Some(buf) if buf.capacity() as u64 >= needed * channels as u64 => buf,
            _ => buffer.insert(SampleBuffer::new(needed, spec)),
        };
        buf.copy_interleaved_ref(decoded);
        mono.extend(buf.samples().chunks(channels).map(|frame| frame.iter().sum::<f32>() / channels as f32));
        if let Some(max_ms) = max_ms
            && rate > 0
            && mono.len() as u64 * 1000 / u64::from(rate) > max_ms
        {
            return Err(SpeechError::TooLong { max_ms });
        }
    }
    if rate == 0 {
        return Err(unsupported("unknown sample rate"));
    }
    if mono.is_empty() {
        return Err(unsupported("no audio decoded"));
    }
    Ok((mono, rate))
}

/// Resamples mono audio to [`SAMPLE_RATE`], compensating the resampler's delay.
fn resample(samples: Vec<f32>, rate: u32) -> Result<Vec<f32>, SpeechError> {
    if rate == SAMPLE_RATE {
        return Ok(samples);
    }
    let engine = |e: &dyn std::fmt::Display| SpeechError::Engine(format!("resampling failed: {e}"));
    let mut resampler =
        FftFixedIn::<f32>::new(rate as usize, SAMPLE_RATE as usize, 4800, 1, 1).map_err(|e| engine(&e))?;
    let expected = (samples.len() as u64 * u64::from(SAMPLE_RATE) / u64::from(rate)) as usize;
    let delay = resampler.output_delay();
    let mut out = Vec::with_capacity(expected + delay + resampler.output_frames_max());
    let mut position = 0;
    while samples.len() - position >= resampler.input_frames_next() {
        let next = resampler.input_frames_next();
        let chunk = resampler.process(&[&samples[position..position + next]], None).map_err(|e| engine(&e))?;
        out.extend_from_slice(&chunk[0]);
        position += next;
    }
    if position < samples.len() {
        let chunk = resampler.process_partial(Some(&[&samples[position..]]), None).map_err(|e| engine(&e))?;
        out.extend_from_slice(&chunk[0]);
    }
    while out.len() < expected + delay {
        let chunk = resampler.process_partial::<&[f32]>(None, None).map_err(|e| engine(&e))?;
        if chunk[0].is_empty() {
            break;
        }
        out.extend_from_slice(&chunk[0]);
    }
    out.drain(..delay.min(out.len()));
    out.truncate(expected);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wav(rate: u32, samples: &[i16]) -> Vec<u8> {
        crate::wav::encode_i16(rate, samples)
    }

    #[test]
    fn decodes_and_resamples_a_wav_tone() {
        let rate = 44_100;
        let samples: Vec<i16> = (0..rate)
            .map(|i| ((i as f32 * 440.0 * std::f32::consts::TAU / rate as f32).sin() * 8000.0) as i16)
            .collect();
        let bytes = wav(rate, &samples);
        let out = SymphoniaDecoder.decode(&bytes, 10_000).expect("decodes");
        assert_eq!(out.len(), SAMPLE_RATE as usize);
        let peak = out.iter().fold(0f32, |m, s| m.max(s.abs()));
        assert!((0.2..0.3).contains(&peak), "peak {peak}");
        assert_eq!(audio_duration_ms(&bytes).expect("duration"), 1000);
    }

    #[test]
    fn caps_the_length() {
        let bytes = wav(16_000, &vec![0i16; 32_000]);
        assert_eq!(SymphoniaDecoder.decode(&bytes, 1000), Err(SpeechError::TooLong { max_ms: 1000 }));
    }

    #[test]
    fn refuses_wav_headers_with_zero_fields_without_panicking() {
        // Offsets in the `fmt ` chunk of [`wav`]'s output: channels, sample rate, bits.
        for (at, value) in [(22, &[0u8, 0][..]), (24, &[0, 0, 0, 0][..]), (34, &[0, 0][..])] {
            let mut bytes = wav(16_000, &[0i16; 1600]);
            bytes[at..at + value.len()].copy_from_slice(value);
            let decoded = SymphoniaDecoder.decode(&bytes, 1000);
            assert!(matches!(decoded, Err(SpeechError::UnsupportedAudio(_))), "patch at {at}: {decoded:?}");
            assert!(matches!(audio_duration_ms(&bytes), Err(SpeechError::UnsupportedAudio(_))), "patch at {at}");
        }
    }

    #[test]
    fn a_panic_in_symphonia_is_unsupported_audio() {
        // Past the header check, symphonia itself panics on a zero sample rate...
        let mut bytes = wav(16_000, &[0i16; 1600]);
        bytes[24..28].copy_from_slice(&[0; 4]);
        assert!(catch_unwind(|| symphonia_decode(&bytes, None)).is_err(), "symphonia 0.5 panics here");
        // ...which the guard turns into an error.
        assert!(matches!(guarded_decode(&bytes, None), Err(SpeechError::UnsupportedAudio(_))));
    }

    #[test]
    fn rejects_what_is_not_audio() {
        let result = SymphoniaDecoder.decode(b"hello, this is text and not audio at all", 1000);
        assert!(matches!(result, Err(SpeechError::UnsupportedAudio(_))), "{result:?}");
    }
}
