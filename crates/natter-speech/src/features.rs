//! Whisper's log-mel features, computed exactly as OpenAI's and Hugging Face's feature extractors
//! do: each 30 s chunk zero-padded, a centred STFT (400-point periodic Hann window, hop 160,
//! reflect padding), power spectrum through librosa's Slaney mel filters, `log10`, clamped to
//! 8 below the chunk's maximum, then `(x + 4) / 4`. (ct2rs's own extractor normalises per frame
//! and pads with zeros after normalisation, which derails the model on short clips.)

use std::sync::Arc;

use rustfft::num_complex::Complex;
use rustfft::{Fft, FftPlanner};

pub const N_FFT: usize = 400;
pub const HOP: usize = 160;
/// 30 s at 16 kHz: one chunk.
pub const CHUNK_SAMPLES: usize = 480_000;
pub const CHUNK_FRAMES: usize = CHUNK_SAMPLES / HOP;
const BINS: usize = N_FFT / 2 + 1;

pub struct FeatureExtractor {
    n_mels: usize,
    /// `n_mels` rows of `BINS` weights.
    filters: Vec<f32>,
    window: Vec<f32>,
    fft: Arc<dyn Fft<f32>>,
}

impl FeatureExtractor {
    pub fn new(n_mels: usize) -> Self {
        let window = (0..N_FFT).map(|n| 0.5 - 0.5 * (std::f32::consts::TAU * n as f32 / N_FFT as f32).cos()).collect();
        let fft = FftPlanner::new().plan_fft_forward(N_FFT);
        Self { n_mels, filters: mel_filters(16_000.0, n_mels), window, fft }
    }

    /// Features of `samples` (16 kHz mono) as `[chunks, n_mels, CHUNK_FRAMES]`, row-major, and the
    /// number of chunks.
    pub fn extract(&self, samples: &[f32]) -> (Vec<f32>, usize) {
        let chunks: Vec<&[f32]> = samples.chunks(CHUNK_SAMPLES).collect();
        let mut out = Vec::with_capacity(chunks.len() * self.n_mels * CHUNK_FRAMES);
        for chunk in &chunks {
            out.extend(self.chunk_features(chunk));
        }
        (out, chunks.len())
    }

    fn chunk_features(&self, chunk: &[f32]) -> Vec<f32> {
        let pad = N_FFT / 2;
        // Zero-padded to 30 s, then reflect-padded by half a window on each side.
        let mut padded = vec![0f32; CHUNK_SAMPLES + 2 * pad];
        padded[pad..pad + chunk.len()].copy_from_slice(chunk);
        for i in 0..pad {
            padded[pad - 1 - i] = padded[pad + 1 + i];
            padded[pad + CHUNK_SAMPLES + i] = padded[pad + CHUNK_SAMPLES - 2 - i];
        }
        let mut mel = vec![0f32; self.n_mels * CHUNK_FRAMES];
        let mut buffer = vec![Complex::new(0f32, 0f32); N_FFT];
        let mut scratch = vec![Complex::new(0f32, 0f32); self.fft.get_inplace_scratch_len()];
        let mut power = [0f32; BINS];
        for frame in 0..CHUNK_FRAMES {
            let start = frame * HOP;
            for (k, value) in buffer.iter_mut().enumerate() {
                *value = Complex::new(padded[start + k] * self.window[k], 0.0);
            }
            self.fft.process_with_scratch(&mut buffer, &mut scratch);
            for (bin, p) in power.iter_mut().enumerate() {
                *p = buffer[bin].norm_sqr();
            }
            for m in 0..self.n_mels {
                let weights = &self.filters[m * BINS..(m + 1) * BINS];
                let energy: f32 = weights.iter().zip(&power).map(|(w, p)| w * p).sum();
                mel[m * CHUNK_FRAMES + frame] = energy.max(1e-10).log10();
            }
        }
        let max = mel.iter().copied().fold(f32::MIN, f32::max);
        for value in &mut mel {
            *value = (value.max(max - 8.0) + 4.0) / 4.0;
        }
        mel
    }
}

/// librosa's `filters.mel(sr, n_fft=400, n_mels)` with its defaults (Slaney scale and norm).
fn mel_filters(rate: f64, n_mels: usize) -> Vec<f32> {
    let fft_freqs: Vec<f64> = (0..BINS).map(|i| i as f64 * rate / N_FFT as f64).collect();
    let (min_mel, max_mel) = (hz_to_mel(0.0), hz_to_mel(rate / 2.0));
    let mel_freqs: Vec<f64> =
        (0..n_mels + 2).map(|i| mel_to_hz(min_mel + (max_mel - min_mel) * i as f64 / (n_mels + 1) as f64)).collect();
    let mut weights = vec![0f32; n_mels * BINS];
    for m in 0..n_mels {
        let (low, centre, high) = (mel_freqs[m], mel_freqs[m + 1], mel_freqs[m + 2]);
        let norm = 2.0 / (high - low);
        for (bin, &f) in fft_freqs.iter().enumerate() {
            let rising = (f - low) / (centre - low);
            let falling = (high - f) / (high - centre);
            weights[m * BINS + bin] = (rising.min(falling).max(0.0) * norm) as f32;
        }
    }
    weights
}

const F_SP: f64 = 200.0 / 3.0;
const MIN_LOG_HZ: f64 = 1000.0;
const MIN_LOG_MEL: f64 = MIN_LOG_HZ / F_SP;

fn log_step() -> f64 {
    6.4f64.ln() / 27.0
}

fn hz_to_mel(hz: f64) -> f64 {
    if hz >= MIN_LOG_HZ { MIN_LOG_MEL + (hz / MIN_LOG_HZ).ln() / log_step() } else { hz / F_SP }
}

fn mel_to_hz(mel: f64) -> f64 {
    if mel >= MIN_LOG_MEL { MIN_LOG_HZ * (log_step() * (mel - MIN_LOG_MEL)).exp() } else { F_SP * mel }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mel_scale_round_trips_and_filters_match_librosa() {
        for hz in [0.0, 440.0, 1000.0, 4000.0, 8000.0] {
            assert!((mel_to_hz(hz_to_mel(hz)) - hz).abs() < 1e-6);
        }
        let filters = mel_filters(16_000.0, 80);
        // librosa.filters.mel(sr=16000, n_fft=400, n_mels=80)[0, 1] and [79, 195].
        assert!((filters[1] - 0.024_862_4).abs() < 1e-4, "{}", filters[1]);
        assert!(filters[79 * BINS + 195] > 0.0);
        assert_eq!(filters[79 * BINS + 100], 0.0);
    }

    #[test]
    fn features_have_whisper_shape_and_range() {
        let extractor = FeatureExtractor::new(80);
        let tone: Vec<f32> = (0..16_000).map(|i| (i as f32 * 440.0 * std::f32::consts::TAU / 16_000.0).sin()).collect();
        let (features, chunks) = extractor.extract(&tone);
        assert_eq!(chunks, 1);
        assert_eq!(features.len(), 80 * CHUNK_FRAMES);
        let max = features.iter().copied().fold(f32::MIN, f32::max);
        let min = features.iter().copied().fold(f32::MAX, f32::min);
        assert!((max - min - 2.0).abs() < 1e-4, "clamped to 8 below the max: {min}..{max}");
    }
}
