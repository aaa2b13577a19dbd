//! Embedded Whisper through CTranslate2 (`ct2rs`, built from source with cmake and linked
//! statically), behind the `ctranslate2` cargo feature; the default engine is [`crate::whisper`].
//! Loads a CTranslate2 Whisper model directory (`model.bin`, `config.json`, `tokenizer.json`, as
//! `natter models fetch` lays it out), computes the log-mel features itself ([`crate::features`])
//! and decodes greedily with the prompt the model was trained with (English-only models take no
//! language or task token).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use ct2rs::sys::{StorageView, Whisper};
use ct2rs::tokenizers::hf;
use ct2rs::{ComputeType, Config, Device, Tokenizer, WhisperOptions};
use natter_core::speech::{SpeechError, Transcriber, Transcript};

use crate::features::{CHUNK_FRAMES, FeatureExtractor};

struct Model {
    whisper: Whisper,
    tokenizer: hf::Tokenizer,
    features: FeatureExtractor,
}

/// A loaded model. `transcribe` runs on a blocking thread; CTranslate2 uses `threads`
/// intra-op threads for it.
pub struct Ct2WhisperEngine {
    model: Arc<Model>,
    dir: PathBuf,
}

impl Ct2WhisperEngine {
    /// Loads the model in `dir` on the CPU, weights quantised to int8 (the fastest on CPUs).
    /// `threads` 0: CTranslate2's default.
    pub fn load(dir: &Path, threads: usize) -> anyhow::Result<Self> {
        let config = Config { num_threads_per_replica: threads, compute_type: ComputeType::INT8, ..Config::default() };
        let context = |e: anyhow::Error| anyhow::anyhow!("cannot load the Whisper model in {}: {e}", dir.display());
        let whisper = Whisper::new(dir, config).map_err(context)?;
        let tokenizer = hf::Tokenizer::new(dir).map_err(context)?;
        let features = FeatureExtractor::new(whisper.n_mels());
        Ok(Self { model: Arc::new(Model { whisper, tokenizer, features }), dir: dir.to_path_buf() })
    }

    /// Transcribes on the calling thread (blocking).
    pub fn transcribe_blocking(&self, samples: &[f32], language: Option<&str>) -> Result<Transcript, SpeechError> {
        self.model.transcribe(samples, language)
    }
}

impl Model {
    fn transcribe(&self, samples: &[f32], language: Option<&str>) -> Result<Transcript, SpeechError> {
        let engine = |e: anyhow::Error| SpeechError::Engine(e.to_string());
        let (mut features, chunks) = self.features.extract(samples);
        if chunks == 0 {
            return Ok(Transcript { text: String::new(), language: None });
        }
        let shape = [chunks, self.whisper.n_mels(), CHUNK_FRAMES];
        let view = StorageView::new(&shape, &mut features, Device::CPU).map_err(engine)?;
        let (language, prompt) = if self.whisper.is_multilingual() {
            let language = match language {
                Some(language) => language.to_owned(),
                None => self.detect_language(&view)?,
            };
            let token = format!("<|{language}|>");
            (
                Some(language),
                vec!["<|startoftranscript|>".to_owned(), token, "<|transcribe|>".into(), "<|notimestamps|>".into()],
            )
        } else {
            (Some("en".to_owned()), vec!["<|startoftranscript|>".to_owned(), "<|notimestamps|>".into()])
        };
        let options = WhisperOptions { beam_size: 1, ..WhisperOptions::default() };
        let results = self.whisper.generate(&view, &vec![prompt; chunks], &options).map_err(engine)?;
        let mut parts = Vec::with_capacity(results.len());
        for result in results {
            let Some(tokens) = result.sequences.into_iter().next() else { continue };
            let tokens = tokens.into_iter().filter(|t| !(t.starts_with("<|") && t.ends_with("|>"))).collect();
            let text = self.tokenizer.decode(tokens).map_err(engine)?;
            if !text.trim().is_empty() {
                parts.push(text.trim().to_owned());
            }
        }
        Ok(Transcript { text: parts.join(" "), language })
    }

    /// The most likely language of the first chunk, e.g. `de`. ct2rs keeps the fields of its
    /// detection result private, so they are read from its `Debug` form.
    fn detect_language(&self, view: &StorageView) -> Result<String, SpeechError> {
        let results = self.whisper.detect_language(view).map_err(|e| SpeechError::Engine(e.to_string()))?;
        let best = results.first().and_then(|chunk| chunk.first()).map(|r| format!("{r:?}")).unwrap_or_default();
        best.split("<|")
            .nth(1)
            .and_then(|rest| rest.split("|>").next())
            .map(str::to_owned)
            .ok_or_else(|| SpeechError::Engine(format!("language detection gave {best:?}")))
    }
}

#[async_trait]
impl Transcriber for Ct2WhisperEngine {
    fn describe(&self) -> String {
        format!("whisper on CTranslate2 ({})", self.dir.display())
    }

    async fn transcribe(&self, samples: Vec<f32>, language: Option<String>) -> Result<Transcript, SpeechError> {
        let model = self.model.clone();
        tokio::task::spawn_blocking(move || model.transcribe(&samples, language.as_deref()))
            .await
            .map_err(|e| SpeechError::Engine(format!("transcription task failed: {e}")))?
    }
}
