//! Embedded Whisper in pure Rust: Whisper's transformer on candle ([`crate::model`]), on the CPU,
//! fed the weights of the
//! CTranslate2 model directory `natter models fetch` lays out (converted to safetensors at fetch
//! time, or in memory at load when a directory predates that; see [`crate::convert`]).
//!
//! The features are Whisper's exact log-mel ([`crate::features`]); decoding is greedy with the
//! prompt the model was trained with (English-only models take no language or task token), the
//! model's `suppress_ids` suppressed at every step and a blank or end at the first, as
//! CTranslate2 and OpenAI's reference decode with `beam_size = 1`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use async_trait::async_trait;
use candle_core::{Device, Tensor};
use natter_core::speech::{SpeechError, Transcriber, Transcript};
use serde::Deserialize;

use crate::features::{CHUNK_FRAMES, CHUNK_SAMPLES, FeatureExtractor};
use crate::model::Whisper;
use crate::vocabulary::Vocabulary;

/// The token lists of CTranslate2's `config.json`.
#[derive(Deserialize)]
struct TokenConfig {
    #[serde(default)]
    suppress_ids: Vec<u32>,
    #[serde(default)]
    suppress_ids_begin: Vec<u32>,
    #[serde(default)]
    lang_ids: Vec<u32>,
}

struct Tokens {
    start: u32,
    end: u32,
    transcribe: Option<u32>,
    no_timestamps: u32,
    languages: Vec<u32>,
    /// Never generated: the model's list plus every special token but the end.
    suppress: Vec<u32>,
    /// Not generated first either.
    suppress_begin: Vec<u32>,
}

struct Model {
    whisper: Whisper,
    vocabulary: Vocabulary,
    tokens: Tokens,
    features: FeatureExtractor,
    multilingual: bool,
    pool: rayon::ThreadPool,
}

/// A loaded model. `transcribe` runs on a blocking thread, the maths on the engine's own pool of
/// `threads` threads.
pub struct WhisperEngine {
    model: Arc<Model>,
    dir: PathBuf,
}

impl WhisperEngine {
    /// Loads the model in `dir` (f32 on the CPU). `threads` 0: one per core.
    pub fn load(dir: &Path, threads: usize) -> anyhow::Result<Self> {
        let context = |e: anyhow::Error| anyhow::anyhow!("cannot load the Whisper model in {}: {e:#}", dir.display());
        Self::try_load(dir, threads).map_err(context)
    }

    fn try_load(dir: &Path, threads: usize) -> anyhow::Result<Self> {
        let (weights, dims) = crate::convert::load_weights(dir)?;
        let whisper = Whisper::load(&weights, dims.clone())?;
        drop(weights);
        let vocabulary = Vocabulary::load(&dir.join("tokenizer.json"))?;
        let config: TokenConfig = serde_json::from_slice(&std::fs::read(dir.join("config.json"))?)
            .context("config.json lacks Whisper's token lists")?;
        let multilingual = dims.vocab_size >= 51_865;
        let end = vocabulary.special("<|endoftext|>")?;
        let first_special = vocabulary.first_special()?;
        let mut suppress: Vec<u32> =
            config.suppress_ids.into_iter().chain(first_special..dims.vocab_size as u32).collect();
        suppress.retain(|&id| id != end && (id as usize) < dims.vocab_size);
        let tokens = Tokens {
            start: vocabulary.special("<|startoftranscript|>")?,
            end,
            transcribe: vocabulary.special("<|transcribe|>").ok(),
            no_timestamps: vocabulary.special("<|notimestamps|>")?,
            languages: config.lang_ids,
            suppress,
            suppress_begin: config.suppress_ids_begin,
        };
        let threads = if threads == 0 { std::thread::available_parallelism().map_or(1, |n| n.get()) } else { threads };
        let pool =
            rayon::ThreadPoolBuilder::new().num_threads(threads).thread_name(|i| format!("whisper-{i}")).build()?;
        let features = FeatureExtractor::new(dims.num_mel_bins);
        let model = Model { whisper, vocabulary, tokens, features, multilingual, pool };
        Ok(Self { model: Arc::new(model), dir: dir.to_path_buf() })
    }

    /// Transcribes on the calling thread (blocking).
    pub fn transcribe_blocking(&self, samples: &[f32], language: Option<&str>) -> Result<Transcript, SpeechError> {
        self.model.transcribe(samples, language)
    }
}

fn engine_error(error: impl std::fmt::Display) -> SpeechError {
    SpeechError::Engine(error.to_string())
}

impl Model {
    fn transcribe(&self, samples: &[f32], language: Option<&str>) -> Result<Transcript, SpeechError> {
        self.pool.install(|| self.run(samples, language))
    }

    fn run(&self, samples: &[f32], language: Option<&str>) -> Result<Transcript, SpeechError> {
        let (features, chunks) = self.features.extract(samples);
        if chunks == 0 {
            return Ok(Transcript { text: String::new(), language: None });
        }
        let n_mels = self.whisper.dims.num_mel_bins;
        let mut language = language.map(str::to_owned);
        let mut parts = Vec::with_capacity(chunks);
        for (chunk, mel) in features.chunks(n_mels * CHUNK_FRAMES).enumerate() {
            let mel = Tensor::from_slice(mel, (1, n_mels, CHUNK_FRAMES), &Device::Cpu).map_err(engine_error)?;
            let audio = self.whisper.encode(&mel).map_err(engine_error)?;
            let mut prompt = vec![self.tokens.start];
            if self.multilingual {
                if language.is_none() && chunk == 0 {
                    language = Some(self.detect_language(&audio)?);
                }
                let code = language.as_deref().unwrap_or("en");
                let token = self
                    .vocabulary
                    .special(&format!("<|{code}|>"))
                    .map_err(|_| SpeechError::Engine(format!("the model does not know the language {code:?}")))?;
                prompt.push(token);
                prompt.extend(self.tokens.transcribe);
            }
            prompt.push(self.tokens.no_timestamps);
            // Speech runs at up to ~5 tokens a second; the cap stops a decoding loop on noise
            // early instead of at the end of the model's context.
            let seconds = samples.len().saturating_sub(chunk * CHUNK_SAMPLES).min(CHUNK_SAMPLES) / 16_000 + 1;
            let room = self.whisper.dims.max_target_positions - prompt.len();
            let ids = self.greedy(&audio, &prompt, (16 + seconds * 8).min(room))?;
            let text = self.vocabulary.decode(&ids).map_err(engine_error)?;
            if !text.trim().is_empty() {
                parts.push(text.trim().to_owned());
            }
        }
        if !self.multilingual {
            language = Some("en".to_owned());
        }
        Ok(Transcript { text: parts.join(" "), language })
    }

    fn greedy(&self, audio: &Tensor, prompt: &[u32], max_tokens: usize) -> Result<Vec<u32>, SpeechError> {
        let mut state = self.whisper.start(audio).map_err(engine_error)?;
        let mut generated = Vec::new();
        let mut input = prompt.to_vec();
        for step in 0..max_tokens {
            let mut logits = self.whisper.step(&mut state, &input).map_err(engine_error)?;
            let suppressed =
                self.tokens.suppress.iter().chain(if step == 0 { &self.tokens.suppress_begin[..] } else { &[] });
            for &id in suppressed {
                if let Some(logit) = logits.get_mut(id as usize) {
                    *logit = f32::NEG_INFINITY;
                }
            }
            let next = argmax(&logits).ok_or_else(|| SpeechError::Engine("the model gave no logits".into()))?;
            if next == self.tokens.end {
                break;
            }
            generated.push(next);
            input = vec![next];
        }
        Ok(generated)
    }

    /// The most likely language of the audio, e.g. `de`.
    fn detect_language(&self, audio: &Tensor) -> Result<String, SpeechError> {
        let mut state = self.whisper.start(audio).map_err(engine_error)?;
        let logits = self.whisper.step(&mut state, &[self.tokens.start]).map_err(engine_error)?;
        let best = self
            .tokens
            .languages
            .iter()
            .filter_map(|&id| logits.get(id as usize).map(|&logit| (id, logit)))
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .map(|(id, _)| id);
        best.and_then(|id| self.vocabulary.special_text(id))
            .and_then(|token| Some(token.strip_prefix("<|")?.strip_suffix("|>")?.to_owned()))
            .ok_or_else(|| SpeechError::Engine("the model has no language tokens".into()))
    }
}

fn argmax(values: &[f32]) -> Option<u32> {
    values.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).map(|(i, _)| i as u32)
}

#[async_trait]
impl Transcriber for WhisperEngine {
    fn describe(&self) -> String {
        format!("whisper ({})", self.dir.display())
    }

    async fn transcribe(&self, samples: Vec<f32>, language: Option<String>) -> Result<Transcript, SpeechError> {
        let model = self.model.clone();
        tokio::task::spawn_blocking(move || model.transcribe(&samples, language.as_deref()))
            .await
            .map_err(|e| SpeechError::Engine(format!("transcription task failed: {e}")))?
    }
}
