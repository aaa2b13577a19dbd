//! Attaching speech-to-text transcripts to voice messages: a `transcript` entry is appended to
//! the log (so it is pushed to members as a `message` frame and caught up by sync), and its
//! effect sets the voice message's `transcript` in the same transaction.
//!
//! Attaching is idempotent: a transcription job may run twice (its worker died after the append
//! but before the acknowledgement, or two workers raced), and the voice message must still get
//! exactly one `transcript` entry. The entry carries a `client_msg_id` derived from the voice
//! message ([`transcript_key`]); the store's unique (sender, `client_msg_id`) index turns a second
//! append into [`AppendOutcome::Duplicate`], which is not pushed again.

use super::Deps;
use super::log::Recipients;
use crate::error::DomainResult;
use crate::ids::{ConversationId, MessageId, Seq};
use crate::model::{Message, MessageKind};
use crate::store::{AppendOutcome, Effect, NewEntry, blank_message};

/// What became of an attach.
#[derive(Debug, Clone, PartialEq)]
pub enum Attached {
    /// The `transcript` entry, appended now.
    Appended(Box<Message>),
    /// The voice message has its transcript already (an earlier run of the same job).
    Already,
    /// Nothing to attach to any more: recalled, gone, or not a voice message.
    Nothing,
}

/// The `client_msg_id` of the transcript of `voice`: one per voice message. It contains a space,
/// which clients' ids may not ([`super::rules::check_client_msg_id`]), so no client can take it.
pub fn transcript_key(voice: &MessageId) -> String {
    format!("transcript of {voice}")
}

/// Whether the voice message `voice` already has its transcript: its effect landed, or its entry
/// exists. Jobs check this before the (costly) transcription.
pub async fn has_transcript(deps: &Deps, voice: &Message) -> DomainResult<bool> {
    if voice.transcript.is_some() {
        return Ok(true);
    }
    Ok(deps.store.message_by_client_id(&voice.sender_id, &transcript_key(&voice.id)).await?.is_some())
}

/// Appends the transcript of the voice message at `target_seq`, on behalf of its sender, at most
/// once per voice message.
pub async fn attach(
    deps: &Deps,
    conversation_id: &ConversationId,
    target_seq: Seq,
    text: &str,
) -> DomainResult<Attached> {
    let Some(target) = deps.store.message_at(conversation_id, target_seq).await? else { return Ok(Attached::Nothing) };
    if target.kind != MessageKind::Voice || target.recalled {
        return Ok(Attached::Nothing);
    }
    if target.transcript.is_some() {
        return Ok(Attached::Already);
    }
    let text = truncate(text.trim(), deps.limits.max_text_bytes).to_owned();
    let mut entry =
        blank_message(conversation_id.clone(), target.sender_id.clone(), MessageKind::Transcript, deps.clock.now());
    entry.target_seq = Some(target_seq);
    entry.client_msg_id = Some(transcript_key(&target.id));
    entry.text = Some(text.clone());
    let new = NewEntry { message: entry, effect: Effect::Transcript { target_seq, text } };
    match deps.log.append(new, Recipients::Members).await? {
        AppendOutcome::Appended(message) => Ok(Attached::Appended(Box::new(message))),
        AppendOutcome::Duplicate(_) => Ok(Attached::Already),
        AppendOutcome::ConversationGone => Ok(Attached::Nothing),
    }
}

/// The longest prefix of `text` within `max` bytes, cut at a character boundary.
fn truncate(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    #[test]
    fn truncates_at_a_character_boundary() {
        assert_eq!(super::truncate("héllo", 2), "h");
        assert_eq!(super::truncate("héllo", 3), "hé");
        assert_eq!(super::truncate("hello", 10), "hello");
    }
}
