//! Speech-to-text: transcribes audio on a bounded worker pool.
//!
//! A fixed number of workers take requests from a bounded queue. A request that finds the queue
//! full is answered at once with 503 `speech_busy` (the client may retry; a transcription job
//! retries later, see [`super::job_runner`]). Decoding runs on a blocking thread; engines move
//! their own CPU work off the runtime. With no engine configured every call answers 503
//! `speech_unavailable`.

use std::sync::Arc;

use tokio::sync::{Mutex, mpsc, oneshot};

use crate::error::{DomainError, DomainResult, ErrorCode};
use crate::speech::{AudioDecoder, SAMPLE_RATE, SpeechError, Transcriber, Transcript};

/// Limits and pool sizes.
#[derive(Debug, Clone)]
pub struct SpeechSettings {
    pub max_audio_bytes: usize,
    pub max_audio_ms: u64,
    pub workers: usize,
    pub queue: usize,
    /// Language hint for every job (`None`: the engine detects it).
    pub language: Option<String>,
}

impl Default for SpeechSettings {
    fn default() -> Self {
        Self { max_audio_bytes: 25 * 1024 * 1024, max_audio_ms: 10 * 60 * 1000, workers: 1, queue: 32, language: None }
    }
}

/// A finished transcription.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Transcription {
    pub text: String,
    pub language: Option<String>,
    pub duration_ms: u64,
}

struct Request {
    audio: Vec<u8>,
    reply: oneshot::Sender<DomainResult<Transcription>>,
}

struct Engine {
    decoder: Arc<dyn AudioDecoder>,
    transcriber: Arc<dyn Transcriber>,
    settings: SpeechSettings,
    jobs: mpsc::Sender<Request>,
}

/// The speech service; cheap to clone.
#[derive(Clone, Default)]
pub struct SpeechService {
    engine: Option<Arc<Engine>>,
}

impl SpeechService {
    /// No engine: every call answers `speech_unavailable`.
    pub fn unavailable() -> Self {
        Self::default()
    }

    /// Starts `settings.workers` workers on the current runtime.
    pub fn start(decoder: Arc<dyn AudioDecoder>, transcriber: Arc<dyn Transcriber>, settings: SpeechSettings) -> Self {
        let (jobs, receiver) = mpsc::channel(settings.queue.max(1));
        let engine = Arc::new(Engine { decoder, transcriber, settings, jobs });
        let receiver = Arc::new(Mutex::new(receiver));
        for _ in 0..engine.settings.workers.max(1) {
            tokio::spawn(worker(Arc::downgrade(&engine), receiver.clone()));
        }
        Self { engine: Some(engine) }
    }

    pub fn is_available(&self) -> bool {
        self.engine.is_some()
    }

    /// `speech_unavailable` (503) when no engine is configured.
    pub fn check_available(&self) -> DomainResult<()> {
        if self.is_available() { Ok(()) } else { Err(unavailable()) }
    }

    /// What runs the transcriptions, for logs; `None` when unavailable.
    pub fn describe(&self) -> Option<String> {
        self.engine.as_ref().map(|e| e.transcriber.describe())
    }

    pub fn max_audio_bytes(&self) -> usize {
        self.engine.as_ref().map_or(SpeechSettings::default().max_audio_bytes, |e| e.settings.max_audio_bytes)
    }

    /// Transcribes an audio file (WAV, Ogg/Opus, WebM/Opus, ...), waiting for a worker.
    pub async fn transcribe(&self, audio: Vec<u8>) -> DomainResult<Transcription> {
        let engine = self.engine.as_ref().ok_or_else(unavailable)?;
        check_size(&audio, engine.settings.max_audio_bytes)?;
        let (reply, answer) = oneshot::channel();
        engine.jobs.try_send(Request { audio, reply }).map_err(|_| {
            DomainError::unavailable(
                ErrorCode::SpeechBusy,
                "all speech workers are busy and the queue is full; retry later",
            )
        })?;
        answer.await.map_err(|_| DomainError::unavailable(ErrorCode::SpeechUnavailable, "the speech worker stopped"))?
    }
}

fn unavailable() -> DomainError {
    DomainError::unavailable(
        ErrorCode::SpeechUnavailable,
        "speech-to-text is not configured on this server (see `natter models fetch` and [speech] in the config)",
    )
}

fn check_size(audio: &[u8], max: usize) -> DomainResult<()> {
    if audio.len() > max {
        return Err(DomainError::TooLarge {
            code: ErrorCode::AudioTooLarge,
            message: format!("audio must be at most {max} bytes"),
        });
    }
    if audio.is_empty() {
        return Err(DomainError::invalid(ErrorCode::UnsupportedAudio, "the audio file is empty"));
    }
    Ok(())
}

async fn worker(engine: std::sync::Weak<Engine>, requests: Arc<Mutex<mpsc::Receiver<Request>>>) {
    loop {
        let Some(request) = requests.lock().await.recv().await else { return };
        let Some(engine) = engine.upgrade() else { return };
        let result = match check_size(&request.audio, engine.settings.max_audio_bytes) {
            Ok(()) => run(&engine, request.audio).await,
            Err(error) => Err(error),
        };
        // The caller may have gone away; its answer is then dropped.
        drop(request.reply.send(result));
    }
}

async fn run(engine: &Engine, audio: Vec<u8>) -> DomainResult<Transcription> {
    let decoder = engine.decoder.clone();
    let max_ms = engine.settings.max_audio_ms;
    let samples = tokio::task::spawn_blocking(move || decoder.decode(&audio, max_ms))
        .await
        .map_err(|e| speech_error(SpeechError::Engine(format!("decoding task failed: {e}"))))?
        .map_err(speech_error)?;
    let duration_ms = samples.len() as u64 * 1000 / u64::from(SAMPLE_RATE);
    let Transcript { text, language } =
        engine.transcriber.transcribe(samples, engine.settings.language.clone()).await.map_err(speech_error)?;
    Ok(Transcription { text, language, duration_ms })
}

fn speech_error(error: SpeechError) -> DomainError {
    match error {
        SpeechError::UnsupportedAudio(why) => DomainError::invalid(
            ErrorCode::UnsupportedAudio,
            format!("cannot decode the audio (WAV, Ogg/Opus or WebM/Opus): {why}"),
        ),
        SpeechError::TooLong { max_ms } => DomainError::TooLarge {
            code: ErrorCode::AudioTooLong,
            message: format!("audio must be at most {} s long", max_ms / 1000),
        },
        SpeechError::Engine(why) => {
            tracing::warn!(error = %why, "speech engine failed");
            DomainError::unavailable(ErrorCode::SpeechFailed, "the speech engine failed; retry later")
        }
    }
}
