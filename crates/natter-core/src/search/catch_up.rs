//! Catching the index up from the message log: what the bus did not bring (entries acknowledged
//! just before a crash, events lost by a lagging subscriber or a NATS outage).
//!
//! Each conversation's log is gap-free and ordered by `seq` (a seq is assigned in the transaction
//! that stores the entry), so "every entry up to seq N is indexed" is an exact position to resume
//! from, kept per conversation in the index (checkpoints). A sweep pages through every
//! conversation's `last_seq` and reads, from the log, the entries past the checkpoint, in their
//! current state: a content entry is upserted (or removed when recalled or without text), and an
//! edit or recall re-reads its target, so edits and recalls made while nobody indexed are caught
//! up too. Replaying an entry is harmless: documents are keyed by message id.

use super::SearchDocument;
use super::indexer::{Change, Changes, Indexer};
use crate::ids::{ConversationId, MessageId, Seq};
use crate::model::{Message, MessageKind};
use crate::store::StoreResult;

/// Conversations read per page of a sweep, and entries per page of a catch-up.
pub const PAGE: u32 = 1_000;
/// During a long catch-up (a new or lost index), flush after this many changes, so that the
/// embedded index's memory stays bounded and progress survives a crash.
const FLUSH_EVERY: usize = 50_000;

impl Indexer {
    /// Catches up every conversation whose `last_seq` is past its checkpoint.
    pub async fn sweep(&mut self) -> StoreResult<()> {
        let mut after: Option<ConversationId> = None;
        loop {
            let heads = self.store.conversation_heads(after.as_ref(), PAGE).await?;
            let Some((last, _)) = heads.last() else { break };
            after = Some(last.clone());
            for (conversation, last_seq) in &heads {
                if self.applied.get(conversation).copied().unwrap_or(Seq::ZERO) < *last_seq {
                    self.catch_up(conversation, *last_seq).await?;
                }
                if self.unflushed_changes >= FLUSH_EVERY {
                    self.flush().await?;
                }
            }
            if heads.len() < PAGE as usize {
                break;
            }
        }
        Ok(())
    }

    /// Applies, from the log, the entries of `conversation` after its checkpoint, at least up to
    /// `until` (not flushed).
    pub async fn catch_up(&mut self, conversation: &ConversationId, until: Seq) -> StoreResult<()> {
        let mut at = self.applied.get(conversation).copied().unwrap_or(Seq::ZERO);
        while at < until {
            let page = self.store.messages_after(conversation, at, Seq::ZERO, PAGE).await?;
            let Some(last) = page.last() else { break };
            let last = last.seq;
            let mut changes = Changes::default();
            for entry in &page {
                if let Some((id, change)) = self.change_for_entry(entry).await? {
                    changes.add(id, change);
                }
            }
            self.stage(changes).await?;
            at = last;
            self.applied.insert(conversation.clone(), at);
            self.unflushed.insert(conversation.clone(), at);
            if page.len() < PAGE as usize {
                break;
            }
        }
        Ok(())
    }

    /// The change an entry read from the log makes, from its current state.
    pub(super) async fn change_for_entry(&self, entry: &Message) -> StoreResult<Option<(MessageId, Change)>> {
        if entry.kind.is_content() {
            let change = SearchDocument::of(entry).map_or(Change::Remove, Change::Upsert);
            return Ok(Some((entry.id.clone(), change)));
        }
        self.change_of_target(entry.kind, &entry.conversation_id, entry.target_seq).await
    }

    /// For an `edit` or `recall`: its target's current state (upserted, or removed when recalled).
    pub(super) async fn change_of_target(
        &self,
        kind: MessageKind,
        conversation: &ConversationId,
        target: Option<Seq>,
    ) -> StoreResult<Option<(MessageId, Change)>> {
        if !matches!(kind, MessageKind::Edit | MessageKind::Recall) {
            return Ok(None);
        }
        let Some(target) = target else { return Ok(None) };
        let Some(current) = self.store.message_at(conversation, target).await? else { return Ok(None) };
        let change = match SearchDocument::of(&current) {
            Some(document) => Change::Upsert(document),
            None => Change::Remove,
        };
        Ok(Some((current.id, change)))
    }
}
