//! Indexing after commit: a background task that keeps the index current, from bus events, and
//! from the log itself wherever events were missed.
//!
//! Every committed log entry is published on the bus (see `notify`) with its position. The
//! indexer takes the `message` frames among the events: a content entry with text is upserted
//! from the frame itself; an `edit` or `recall` entry makes it read its target's current state
//! from the store and upsert or remove that. Upserts are keyed by message id, so every process of
//! a cluster may index every event (PostgreSQL index) without duplicates, and replaying an entry
//! is harmless.
//!
//! The bus may lose events (a process killed before it indexed what it had acknowledged, a
//! lagging subscriber, a NATS outage), so the index keeps a checkpoint per conversation: every
//! entry up to that seq is in the index. Checkpoints are written with the changes they cover and
//! made durable by the same `flush` (see [`SearchIndex::set_checkpoints`]). An event is applied
//! from its frame only when it is the next entry after the conversation's checkpoint; otherwise
//! the gap is read from the log ([`super::catch_up`]). At start-up, and every
//! [`SWEEP_INTERVAL`] (for a conversation whose last events were lost and that has been quiet
//! since), the indexer compares every conversation's `last_seq` with its checkpoint and catches
//! up from the log.
//!
//! Events that arrive while others are being applied are taken as one batch (up to
//! [`MAX_BATCH`]). Changes are flushed at most every `commit_interval` (zero: after every batch).
//! Searches read every hit back from the store, so a lagging index never shows withdrawn text.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use futures_util::stream::BoxStream;
use futures_util::{FutureExt, StreamExt};
use natter_proto::{MessageView, ServerFrame};
use tokio::time::Instant;

use super::{SearchDocument, SearchIndex};
use crate::bus::Event;
use crate::ids::{ConversationId, MessageId, Seq, UserId};
use crate::model::MessageKind;
use crate::store::{Store, StoreResult};

/// Most events applied together.
pub const MAX_BATCH: usize = 1024;
/// How often every conversation's `last_seq` is compared with the checkpoints.
pub const SWEEP_INTERVAL: Duration = Duration::from_secs(60);

/// What the index should end up holding for one message.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Change {
    /// The first version of a message the index sees (see [`SearchIndex::insert`]).
    Insert(SearchDocument),
    Upsert(SearchDocument),
    Remove,
}

/// Changes to write together: the last change per message wins, in the order they were added.
#[derive(Debug, Default)]
pub(super) struct Changes {
    list: Vec<(MessageId, Change)>,
    slot: HashMap<MessageId, usize>,
}

impl Changes {
    pub(super) fn add(&mut self, id: MessageId, change: Change) {
        match self.slot.get(&id) {
            Some(&at) => self.list[at].1 = change,
            None => {
                self.slot.insert(id.clone(), self.list.len());
                self.list.push((id, change));
            }
        }
    }

    /// Writes them (not flushed); returns how many.
    pub(super) async fn write(self, index: &dyn SearchIndex) -> StoreResult<usize> {
        let written = self.list.len();
        let mut inserts = Vec::new();
        let mut upserts = Vec::new();
        let mut removals = Vec::new();
        for (id, change) in self.list {
            match change {
                Change::Insert(document) => inserts.push(document),
                Change::Upsert(document) => upserts.push(document),
                Change::Remove => removals.push(id),
            }
        }
        if !removals.is_empty() {
            index.remove(removals).await?;
        }
        if !upserts.is_empty() {
            index.upsert(upserts).await?;
        }
        if !inserts.is_empty() {
            index.insert(inserts).await?;
        }
        Ok(written)
    }
}

pub struct Indexer {
    pub(super) store: Arc<dyn Store>,
    pub(super) index: Arc<dyn SearchIndex>,
    commit_interval: Duration,
    /// Per conversation: every entry up to this seq is written to the index (maybe not flushed).
    pub(super) applied: HashMap<ConversationId, Seq>,
    /// Per conversation: what the index's checkpoints say (as of the last flush).
    committed: HashMap<ConversationId, Seq>,
    /// Checkpoints moved since the last flush.
    pub(super) unflushed: HashMap<ConversationId, Seq>,
    /// Changes written since the last flush.
    pub(super) unflushed_changes: usize,
}

impl Indexer {
    /// `commit_interval`: flush at most this often (zero: after every batch of events).
    pub fn new(store: Arc<dyn Store>, index: Arc<dyn SearchIndex>, commit_interval: Duration) -> Self {
        Self {
            store,
            index,
            commit_interval,
            applied: HashMap::new(),
            committed: HashMap::new(),
            unflushed: HashMap::new(),
            unflushed_changes: 0,
        }
    }

    /// Catches up from the index's checkpoints, then follows `events` until the stream ends
    /// (sweeping every [`SWEEP_INTERVAL`]). Failures are logged; the task keeps going.
    pub async fn run(mut self, mut events: BoxStream<'static, Event>) {
        if let Err(error) = self.resume().await {
            tracing::warn!(%error, index = self.index.name(), "cannot read the search checkpoints; catching up from the start");
        }
        self.sweep_logged().await;
        let mut last_flush = Instant::now();
        if self.dirty() {
            self.flush_logged().await;
        }
        let mut sweep = tokio::time::interval_at(Instant::now() + SWEEP_INTERVAL, SWEEP_INTERVAL);
        sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let flush_due = last_flush + self.commit_interval;
            tokio::select! {
                event = events.next() => {
                    let Some(event) = event else { break };
                    let mut batch = vec![event];
                    while batch.len() < MAX_BATCH {
                        match events.next().now_or_never() {
                            Some(Some(event)) => batch.push(event),
                            _ => break,
                        }
                    }
                    if let Err(error) = self.apply(&batch).await {
                        tracing::warn!(%error, index = self.index.name(), "search indexing failed; the next sweep catches up");
                    }
                }
                _ = sweep.tick() => self.sweep_logged().await,
                () = tokio::time::sleep_until(flush_due), if self.dirty() => {}
            }
            if self.dirty() && Instant::now() >= last_flush + self.commit_interval {
                self.flush_logged().await;
                last_flush = Instant::now();
            }
        }
        if self.dirty() {
            self.flush_logged().await;
        }
        tracing::info!("search indexer stopped: the bus stream ended");
    }

    fn dirty(&self) -> bool {
        !self.unflushed.is_empty() || self.unflushed_changes > 0
    }

    /// Reads the checkpoints the index committed: where indexing resumes.
    pub async fn resume(&mut self) -> StoreResult<()> {
        self.committed = self.index.checkpoints().await?.into_iter().collect();
        self.applied = self.committed.clone();
        Ok(())
    }

    async fn sweep_logged(&mut self) {
        if let Err(error) = self.sweep().await {
            tracing::warn!(%error, index = self.index.name(), "search catch-up failed; the next sweep retries");
        }
    }

    async fn flush_logged(&mut self) {
        if let Err(error) = self.flush().await {
            tracing::warn!(%error, index = self.index.name(), "search index flush failed; indexing resumes from the last checkpoints");
        }
    }

    /// Records the moved checkpoints and makes everything written so far durable and visible.
    /// On failure, what is applied falls back to the last committed checkpoints, so that the
    /// next event or sweep reads the rest from the log again.
    pub async fn flush(&mut self) -> StoreResult<()> {
        let moved: Vec<(ConversationId, Seq)> = self.unflushed.drain().collect();
        self.unflushed_changes = 0;
        let result = async {
            if !moved.is_empty() {
                self.index.set_checkpoints(moved.clone()).await?;
            }
            self.index.flush().await
        }
        .await;
        if result.is_ok() {
            self.committed.extend(moved);
        } else {
            self.applied = self.committed.clone();
        }
        result
    }

    /// Applies a batch of bus events to the index (not flushed). An entry that is not the next
    /// one after its conversation's checkpoint makes the indexer read the gap from the log.
    pub async fn apply(&mut self, events: &[Event]) -> StoreResult<()> {
        let mut by_conversation: BTreeMap<ConversationId, Vec<(Seq, Option<Indexed>)>> = BTreeMap::new();
        for event in events {
            let Some(position) = &event.position else { continue };
            // The typed entry; from a node that sends none, the `message` frame read back.
            let entry = match &event.entry {
                Some(entry) => Some(Indexed::Entry(entry.clone())),
                None => match serde_json::from_slice::<ServerFrame>(&event.frame) {
                    Ok(ServerFrame::Message { message }) => Some(Indexed::View(Box::new(message))),
                    _ => None,
                },
            };
            by_conversation.entry(position.conversation.clone()).or_default().push((position.seq, entry));
        }
        let mut changes = Changes::default();
        let mut moved: Vec<(ConversationId, Seq)> = Vec::new();
        let mut gaps: Vec<(ConversationId, Seq)> = Vec::new();
        for (conversation, mut entries) in by_conversation {
            entries.sort_by_key(|(seq, _)| *seq);
            let start = self.applied.get(&conversation).copied().unwrap_or(Seq::ZERO);
            let mut at = start;
            for (seq, view) in &entries {
                match view {
                    _ if *seq <= at => {}
                    Some(entry) if *seq == at.next() => {
                        let change = match entry {
                            Indexed::Entry(entry) => self.change_for_new_entry(entry).await?,
                            Indexed::View(view) => self.change_for_view(view).await?,
                        };
                        if let Some((id, change)) = change {
                            changes.add(id, change);
                        }
                        at = *seq;
                    }
                    _ => {
                        let last = entries.last().map_or(*seq, |(seq, _)| *seq);
                        gaps.push((conversation.clone(), last));
                        break;
                    }
                }
            }
            if at > start {
                moved.push((conversation, at));
            }
        }
        // Frames first: a gap read from the log afterwards carries the newer state.
        self.unflushed_changes += changes.write(self.index.as_ref()).await?;
        for (conversation, seq) in moved {
            self.applied.insert(conversation.clone(), seq);
            self.unflushed.insert(conversation, seq);
        }
        for (conversation, until) in gaps {
            self.catch_up(&conversation, until).await?;
        }
        Ok(())
    }

    /// The change an entry published at its append makes. A content entry is new to the index
    /// (the entry after the checkpoint was never indexed: checkpoints commit with their
    /// documents), so it is inserted, and one with nothing to search changes nothing.
    async fn change_for_new_entry(&self, entry: &crate::model::Message) -> StoreResult<Option<(MessageId, Change)>> {
        if entry.kind.is_content() {
            return Ok(SearchDocument::of(entry).map(|document| (entry.id.clone(), Change::Insert(document))));
        }
        self.change_of_target(entry.kind, &entry.conversation_id, entry.target_seq).await
    }

    async fn change_for_view(&self, entry: &MessageView) -> StoreResult<Option<(MessageId, Change)>> {
        let Some(kind) = MessageKind::parse(&entry.kind) else { return Ok(None) };
        if kind.is_content() {
            return Ok(
                document_from_view(entry).map(|document| (document.message_id.clone(), Change::Insert(document)))
            );
        }
        self.change_of_target(kind, &ConversationId(entry.conversation_id.clone()), entry.target_seq.map(Seq::new))
            .await
    }
}

/// What an event gives the indexer about its entry.
enum Indexed {
    /// The entry itself (what this version publishes).
    Entry(std::sync::Arc<crate::model::Message>),
    /// Its client frame, from a node that published no typed entry.
    View(Box<MessageView>),
}

fn document_from_view(view: &MessageView) -> Option<SearchDocument> {
    let text = view.text.as_deref().filter(|text| !text.trim().is_empty())?;
    if view.recalled {
        return None;
    }
    Some(SearchDocument {
        message_id: MessageId(view.id.clone()),
        conversation_id: ConversationId(view.conversation_id.clone()),
        seq: Seq::new(view.seq),
        sender_id: UserId(view.sender_id.clone()),
        created_at: view.created_at,
        text: text.to_owned(),
    })
}
