//! The `[speech]` configuration section and building the speech service from it (the composition
//! of natter-speech's adapters behind natter-core's ports).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::bail;
use natter_core::service::speech::{SpeechService, SpeechSettings};
use natter_core::speech::{SpeechError, Transcriber, Transcript};
use natter_speech::{OpenAiEngine, SymphoniaDecoder, WhisperEngine};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SpeechConfig {
    /// `auto` (whisper if the model is in the data dir, else none), `none`, `whisper`, `openai`,
    /// and `whisper-ctranslate2` in a build with the `ctranslate2` feature.
    pub engine: String,
    /// Model name under `<data_dir>/models/` (`natter models fetch NAME`).
    pub model: String,
    /// A model directory elsewhere; overrides `model` when set.
    pub model_dir: String,
    /// Threads per transcription (0: one per core).
    pub threads: usize,
    /// ISO 639-1 language hint for multilingual models; empty: detect.
    pub language: String,
    /// Transcriptions running at once.
    pub workers: usize,
    /// Transcriptions waiting; beyond it requests get 503 `speech_busy`.
    pub queue: usize,
    pub max_audio_bytes: usize,
    pub max_audio_secs: u64,
    pub openai_base_url: String,
    pub openai_model: String,
    pub openai_api_key: String,
    pub openai_timeout_secs: u64,
}

impl Default for SpeechConfig {
    fn default() -> Self {
        Self {
            engine: "auto".into(),
            model: "tiny.en".into(),
            model_dir: String::new(),
            threads: 0,
            language: String::new(),
            workers: 1,
            queue: 32,
            max_audio_bytes: 25 * 1024 * 1024,
            max_audio_secs: 600,
            openai_base_url: String::new(),
            openai_model: "whisper-1".into(),
            openai_api_key: String::new(),
            openai_timeout_secs: 60,
        }
    }
}

impl SpeechConfig {
    pub fn validate(&self) -> anyhow::Result<()> {
        if self.engine == "whisper-ctranslate2" && !cfg!(feature = "ctranslate2") {
            bail!("speech.engine = \"whisper-ctranslate2\" needs natter built with `--features ctranslate2`");
        }
        if !matches!(self.engine.as_str(), "auto" | "none" | "whisper" | "whisper-ctranslate2" | "openai") {
            bail!(
                "speech.engine must be `auto`, `none`, `whisper`, `whisper-ctranslate2` or `openai`, not `{}`",
                self.engine
            );
        }
        if self.engine == "openai" && self.openai_base_url.is_empty() {
            bail!("speech.engine = \"openai\" needs speech.openai_base_url");
        }
        if self.workers == 0 || self.queue == 0 || self.max_audio_bytes == 0 || self.max_audio_secs == 0 {
            bail!("speech.workers, queue, max_audio_bytes and max_audio_secs must be positive");
        }
        Ok(())
    }

    /// The Whisper model directory in force.
    pub fn model_path(&self, data_dir: &Path) -> PathBuf {
        if self.model_dir.is_empty() { models_dir(data_dir).join(&self.model) } else { PathBuf::from(&self.model_dir) }
    }

    fn settings(&self) -> SpeechSettings {
        SpeechSettings {
            max_audio_bytes: self.max_audio_bytes,
            max_audio_ms: self.max_audio_secs * 1000,
            workers: self.workers,
            queue: self.queue,
            language: (!self.language.is_empty()).then(|| self.language.clone()),
        }
    }
}

/// Where `natter models fetch` puts models.
pub fn models_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("models")
}

/// Builds the speech service the configuration asks for. A Whisper model loads in the
/// background ([`LoadedLater`]): it takes a second or more, and a server restarted after a crash
/// should take messages meanwhile.
pub fn build(config: &SpeechConfig, data_dir: &Path) -> anyhow::Result<SpeechService> {
    let decoder = Arc::new(SymphoniaDecoder);
    let model = config.model_path(data_dir);
    let engine = match config.engine.as_str() {
        "auto" if natter_speech::models::is_model_dir(&model) => "whisper",
        "auto" => "none",
        other => other,
    };
    let service = match engine {
        "whisper" => {
            if !model.is_dir() {
                bail!("speech.engine = whisper: no usable model in {} (no such directory)", model.display());
            }
            let (dir, threads) = (model.clone(), config.threads);
            let whisper = LoadedLater::start(format!("whisper ({})", model.display()), move || {
                Ok(Arc::new(WhisperEngine::load(&dir, threads)?) as Arc<dyn Transcriber>)
            });
            SpeechService::start(decoder, Arc::new(whisper), config.settings())
        }
        #[cfg(feature = "ctranslate2")]
        "whisper-ctranslate2" => {
            use anyhow::Context;
            let whisper = natter_speech::Ct2WhisperEngine::load(&model, config.threads).with_context(|| {
                format!("speech.engine = whisper-ctranslate2: no usable model in {}", model.display())
            })?;
            SpeechService::start(decoder, Arc::new(whisper), config.settings())
        }
        "openai" => {
            let key = (!config.openai_api_key.is_empty()).then(|| config.openai_api_key.clone());
            let timeout = Duration::from_secs(config.openai_timeout_secs);
            let engine = OpenAiEngine::new(&config.openai_base_url, &config.openai_model, key, timeout)?;
            SpeechService::start(decoder, Arc::new(engine), config.settings())
        }
        _ => SpeechService::unavailable(),
    };
    match service.describe() {
        Some(engine) => tracing::info!(%engine, "speech-to-text is on"),
        None => {
            tracing::info!(model = %model.display(), "speech-to-text is off (no model; `natter models fetch tiny.en`)")
        }
    }
    Ok(service)
}

/// What a model that loads in the background becomes: the engine, or why it did not load.
type Loaded = Option<Result<Arc<dyn Transcriber>, String>>;

/// A transcriber that loads on a blocking thread while the server starts serving; transcriptions
/// asked for before it is ready wait for it. A model that fails to load is logged as an error,
/// and every transcription then fails with that error.
struct LoadedLater {
    description: String,
    loaded: tokio::sync::watch::Receiver<Loaded>,
}

impl LoadedLater {
    fn start(
        description: String,
        load: impl FnOnce() -> anyhow::Result<Arc<dyn Transcriber>> + Send + 'static,
    ) -> Self {
        let (sender, loaded) = tokio::sync::watch::channel(None);
        let model = description.clone();
        tokio::task::spawn_blocking(move || {
            let started = std::time::Instant::now();
            let result = load().map_err(|error| format!("{error:#}"));
            match &result {
                Ok(_) => tracing::info!(%model, took = ?started.elapsed(), "speech model loaded"),
                Err(error) => tracing::error!(%model, %error, "the speech model did not load: no transcriptions"),
            }
            let _ = sender.send(Some(result));
        });
        Self { description, loaded }
    }
}

#[async_trait::async_trait]
impl Transcriber for LoadedLater {
    fn describe(&self) -> String {
        self.description.clone()
    }

    async fn transcribe(&self, samples: Vec<f32>, language: Option<String>) -> Result<Transcript, SpeechError> {
        let mut loaded = self.loaded.clone();
        let engine = match loaded.wait_for(Option::is_some).await.map(|loaded| loaded.clone()) {
            Ok(Some(Ok(engine))) => engine,
            Ok(Some(Err(error))) => return Err(SpeechError::Engine(error)),
            Ok(None) | Err(_) => return Err(SpeechError::Engine("the speech model never loaded".into())),
        };
        engine.transcribe(samples, language).await
    }
}

/// natter-media's inspector with natter-speech's decoder for the audio formats natter-media
/// does not read itself (WebM/Opus, Ogg/Vorbis, FLAC ...), so every voice message gets a
/// duration. A file natter-media reads and finds invalid (a WAV with a zero sample rate, an Ogg
/// cut off mid-page) is not handed on: it has no duration, so it cannot be sent as voice.
pub struct MediaWithAudio(pub natter_media::Media);

impl natter_core::media::MediaInspector for MediaWithAudio {
    fn inspect_image(&self, bytes: &[u8]) -> Result<natter_core::media::ImageInfo, natter_core::media::MediaError> {
        self.0.inspect_image(bytes)
    }

    fn audio_duration_ms(&self, mime: &str, bytes: &[u8]) -> Option<u64> {
        match natter_media::audio::probe_duration_ms(mime, bytes) {
            Ok(ms) => Some(ms),
            Err(natter_media::audio::AudioError::Invalid(_)) => None,
            Err(natter_media::audio::AudioError::NotRead) => natter_speech::audio_duration_ms(bytes).ok(),
        }
    }
}
