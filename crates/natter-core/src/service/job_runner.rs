//! What a worker process does with each durable job (see [`crate::jobs`]).
//!
//! Every job is idempotent by what it names. A transcription names the voice message's
//! conversation and `seq`: the runner first looks whether that message still wants a transcript
//! (not recalled, not transcribed by an earlier run), then reads the audio itself through
//! [`FileService`] as the sender (who uploaded it, so may read it), transcribes, and appends the
//! `transcript` entry, which [`transcripts::attach`] makes idempotent too (a racing second run
//! gets the store's duplicate answer, not a second entry). The adapter acknowledges the job only
//! after `run` returns, so a worker killed mid-transcription leaves the job to another.

use async_trait::async_trait;

use super::Deps;
use super::files::FileService;
use super::speech::SpeechService;
use super::transcripts::{self, Attached};
use crate::error::DomainError;
use crate::jobs::{Job, JobHandler, JobOutcome, TranscribeVoice};
use crate::model::MessageKind;

/// Runs every kind of [`Job`] against the services of this process.
#[derive(Clone)]
pub struct JobRunner {
    deps: Deps,
    files: FileService,
    speech: SpeechService,
}

impl JobRunner {
    pub fn new(deps: Deps, files: FileService, speech: SpeechService) -> Self {
        Self { deps, files, speech }
    }

    async fn transcribe_voice(&self, job: &TranscribeVoice) -> Result<JobOutcome, DomainError> {
        let Some(voice) = self.deps.store.message_at(&job.conversation_id, job.seq).await? else {
            return Ok(JobOutcome::Done);
        };
        let same_file = voice.file_id.as_deref() == Some(job.file_id.as_str());
        if voice.kind != MessageKind::Voice || voice.recalled || !same_file {
            tracing::info!(conversation = %job.conversation_id, seq = job.seq.get(), "voice message recalled or gone: not transcribed");
            return Ok(JobOutcome::Done);
        }
        if transcripts::has_transcript(&self.deps, &voice).await? {
            tracing::info!(conversation = %job.conversation_id, seq = job.seq.get(), "voice message has its transcript already");
            return Ok(JobOutcome::Done);
        }
        let max_bytes = self.speech.max_audio_bytes() as u64;
        let file = self.files.readable(&voice.sender_id, &job.file_id).await?;
        let audio = self.files.read_all(&file, max_bytes).await?.to_vec();
        let transcription = self.speech.transcribe(audio).await?;
        if transcription.text.trim().is_empty() {
            return Ok(JobOutcome::Done);
        }
        let attached = transcripts::attach(&self.deps, &job.conversation_id, job.seq, &transcription.text).await?;
        match attached {
            Attached::Appended(entry) => {
                tracing::info!(conversation = %job.conversation_id, seq = job.seq.get(), transcript_seq = entry.seq.get(), "voice message transcribed")
            }
            Attached::Already | Attached::Nothing => {
                tracing::info!(conversation = %job.conversation_id, seq = job.seq.get(), "transcript not appended: done by another run, or recalled meanwhile")
            }
        }
        Ok(JobOutcome::Done)
    }
}

#[async_trait]
impl JobHandler for JobRunner {
    async fn run(&self, job: Job) -> JobOutcome {
        let result = match &job {
            Job::TranscribeVoice(transcribe) => self.transcribe_voice(transcribe).await,
            // Fan-out jobs have their own consumers and runner (`fan_out::FanOutRunner`).
            Job::FanOut(_) => return JobOutcome::Failed(format!("{} is not a transcription", job.key())),
        };
        result.unwrap_or_else(outcome_of)
    }
}

/// Whether a failure may pass (retry) or never will.
fn outcome_of(error: DomainError) -> JobOutcome {
    match error {
        // The file went away, or the audio is not speech natter can read: retrying cannot help.
        DomainError::NotFound { .. } | DomainError::Invalid { .. } | DomainError::TooLarge { .. } => {
            JobOutcome::Failed(error.to_string())
        }
        // Busy or unreachable parts (speech queue full, database, blob store): later.
        other => JobOutcome::Retry(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{ErrorCode, Thing};

    #[test]
    fn busy_parts_are_retried_and_bad_input_is_not() {
        let busy = DomainError::unavailable(ErrorCode::SpeechBusy, "busy");
        assert!(matches!(outcome_of(busy), JobOutcome::Retry(_)));
        let bad = DomainError::invalid(ErrorCode::UnsupportedAudio, "noise");
        assert!(matches!(outcome_of(bad), JobOutcome::Failed(_)));
        assert!(matches!(outcome_of(DomainError::not_found(Thing::File)), JobOutcome::Failed(_)));
    }
}
