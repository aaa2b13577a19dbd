//! Attaching speech-to-text transcripts to voice messages: a `transcript` entry is appended to
//! the log (so it is pushed to members as a `message` frame and caught up by sync), and its
//! effect sets the voice message's `transcript` in the same transaction.

use super::Deps;
use super::log::Recipients;
use crate::error::DomainResult;
use crate::ids::{ConversationId, Seq};
use crate::model::{Message, MessageKind};
use crate::store::{AppendOutcome, Effect, NewEntry, blank_message};

/// Appends the transcript of the voice message at `target_seq`, on behalf of its sender. `None`
/// when there is nothing to attach to any more (recalled, gone, not a voice message).
pub async fn attach(
    deps: &Deps,
    conversation_id: &ConversationId,
    target_seq: Seq,
    text: &str,
) -> DomainResult<Option<Message>> {
    let Some(target) = deps.store.message_at(conversation_id, target_seq).await? else { return Ok(None) };
    if target.kind != MessageKind::Voice || target.recalled {
        return Ok(None);
    }
    let text = truncate(text.trim(), deps.limits.max_text_bytes).to_owned();
    let mut entry =
        blank_message(conversation_id.clone(), target.sender_id.clone(), MessageKind::Transcript, deps.clock.now());
    entry.target_seq = Some(target_seq);
    entry.text = Some(text.clone());
    let new = NewEntry { message: entry, effect: Effect::Transcript { target_seq, text } };
    match deps.log.append(new, Recipients::Members).await? {
        AppendOutcome::Appended(message) => Ok(Some(message)),
        AppendOutcome::Duplicate(_) | AppendOutcome::ConversationGone => Ok(None),
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
