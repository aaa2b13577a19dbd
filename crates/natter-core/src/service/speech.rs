//! Speech-to-text: transcribes uploaded audio on a bounded worker pool.
//!
//! A fixed number of workers take jobs from a bounded queue. A request that finds the queue full
//! is answered at once with 503 `speech_busy` (the client may retry); automatic jobs (voice
//! messages) that find it full are dropped and logged, never waited for, so a burst of voice
//! messages cannot hold up sends or delivery. Decoding runs on a blocking thread; engines move
//! their own CPU work off the runtime. With no engine configured every call answers 503
//! `speech_unavailable`.

use std::sync::Arc;

use futures_util::future::BoxFuture;
use tokio::sync::{Mutex, mpsc, oneshot};

use super::{Deps, transcripts};
use crate::error::{DomainError, DomainResult, ErrorCode};
use crate::ids::{ConversationId, Seq};
use crate::model::Message;
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

/// Reads a voice message's audio when a worker gets to it (not while the sender waits).
pub type AudioLoader = BoxFuture<'static, DomainResult<Vec<u8>>>;

enum Audio {
    Bytes(Vec<u8>),
    Load(AudioLoader),
}

/// What to do with the result.
enum Done {
    Reply(oneshot::Sender<DomainResult<Transcription>>),
    Attach { deps: Deps, conversation_id: ConversationId, seq: Seq },
}

struct Job {
    audio: Audio,
    done: Done,
}

struct Engine {
    decoder: Arc<dyn AudioDecoder>,
    transcriber: Arc<dyn Transcriber>,
    settings: SpeechSettings,
    jobs: mpsc::Sender<Job>,
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
        engine.jobs.try_send(Job { audio: Audio::Bytes(audio), done: Done::Reply(reply) }).map_err(|_| {
            DomainError::unavailable(
                ErrorCode::SpeechBusy,
                "all speech workers are busy and the queue is full; retry later",
            )
        })?;
        answer.await.map_err(|_| DomainError::unavailable(ErrorCode::SpeechUnavailable, "the speech worker stopped"))?
    }

    /// Queues a stored voice message for transcription; its transcript is appended to the log
    /// when done. Never waits: with no engine, or with the queue full (the job is dropped and
    /// logged), it returns `false` at once.
    pub fn queue_voice(&self, deps: &Deps, voice: &Message, load: AudioLoader) -> bool {
        let Some(engine) = &self.engine else { return false };
        let done = Done::Attach { deps: deps.clone(), conversation_id: voice.conversation_id.clone(), seq: voice.seq };
        match engine.jobs.try_send(Job { audio: Audio::Load(load), done }) {
            Ok(()) => true,
            Err(_) => {
                tracing::warn!(conversation = %voice.conversation_id.0, seq = voice.seq,
                    "speech queue full: voice message left without a transcript");
                false
            }
        }
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

async fn worker(engine: std::sync::Weak<Engine>, jobs: Arc<Mutex<mpsc::Receiver<Job>>>) {
    loop {
        let Some(job) = jobs.lock().await.recv().await else { return };
        let Some(engine) = engine.upgrade() else { return };
        let audio = match job.audio {
            Audio::Bytes(bytes) => Ok(bytes),
            Audio::Load(load) => load.await,
        };
        let result = match audio {
            Ok(audio) => match check_size(&audio, engine.settings.max_audio_bytes) {
                Ok(()) => run(&engine, audio).await,
                Err(error) => Err(error),
            },
            Err(error) => Err(error),
        };
        match job.done {
            // The caller may have gone away; its answer is then dropped.
            Done::Reply(reply) => drop(reply.send(result)),
            Done::Attach { deps, conversation_id, seq } => attach(&deps, &conversation_id, seq, result).await,
        }
    }
}

async fn attach(deps: &Deps, conversation_id: &ConversationId, seq: Seq, result: DomainResult<Transcription>) {
    let outcome = match result {
        Ok(transcription) if transcription.text.trim().is_empty() => return,
        Ok(transcription) => transcripts::attach(deps, conversation_id, seq, &transcription.text).await,
        Err(error) => Err(error),
    };
    if let Err(error) = outcome {
        tracing::warn!(conversation = %conversation_id.0, seq, %error, "voice message not transcribed");
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
