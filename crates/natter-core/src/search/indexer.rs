//! Indexing after commit: a background task that follows the bus and keeps the index current.
//!
//! Every committed log entry is published on the bus (see `notify`). The indexer takes the
//! `message` frames among the events: a content entry with text is upserted from the frame
//! itself; an `edit` or `recall` entry makes it read its target's current state from the store
//! and upsert or remove that. Upserts are keyed by message id, so every process of a cluster may
//! index every event (PostgreSQL index) without duplicates, and replaying an event is harmless.
//!
//! Events that arrive while others are being applied are taken as one batch (up to
//! [`MAX_BATCH`]) and made visible with one `flush`, so indexing keeps up under load.
//!
//! There is no "last indexed position": the bus may lose events (a lagging subscriber, a NATS
//! outage), and the repair is `natter search reindex`, which rebuilds the index from the log.
//! Searches read every hit back from the store, so a lost recall never shows withdrawn text.

use std::collections::HashMap;
use std::sync::Arc;

use futures_util::stream::BoxStream;
use futures_util::{FutureExt, StreamExt};
use natter_proto::{MessageView, ServerFrame};

use super::{SearchDocument, SearchIndex};
use crate::bus::Event;
use crate::ids::{ConversationId, MessageId, UserId};
use crate::model::MessageKind;
use crate::store::{Store, StoreResult};

/// Most events applied (and flushed) together.
pub const MAX_BATCH: usize = 1024;

/// What the index should end up holding for one message.
#[derive(Debug, Clone, PartialEq)]
enum Change {
    Upsert(SearchDocument),
    Remove,
}

pub struct Indexer {
    store: Arc<dyn Store>,
    index: Arc<dyn SearchIndex>,
}

impl Indexer {
    pub fn new(store: Arc<dyn Store>, index: Arc<dyn SearchIndex>) -> Self {
        Self { store, index }
    }

    /// Follows `events` until the stream ends. Failures are logged; the task keeps going.
    pub async fn run(self, mut events: BoxStream<'static, Event>) {
        while let Some(event) = events.next().await {
            let mut batch = vec![event];
            while batch.len() < MAX_BATCH {
                match events.next().now_or_never() {
                    Some(Some(event)) => batch.push(event),
                    _ => break,
                }
            }
            if let Err(error) = self.apply(&batch).await {
                tracing::warn!(%error, index = self.index.name(), "search indexing failed; `natter search reindex` repairs");
            }
        }
        tracing::info!("search indexer stopped: the bus stream ended");
    }

    /// Applies a batch of bus events to the index and flushes it.
    pub async fn apply(&self, events: &[Event]) -> StoreResult<()> {
        // Last change per message wins, in event order.
        let mut changes: Vec<(MessageId, Change)> = Vec::new();
        let mut slot: HashMap<MessageId, usize> = HashMap::new();
        for event in events {
            if event.position.is_none() {
                continue;
            }
            let Ok(ServerFrame::Message { message }) = serde_json::from_slice::<ServerFrame>(&event.frame) else {
                continue;
            };
            if let Some((id, change)) = self.change_for(&message).await? {
                match slot.get(&id) {
                    Some(&at) => changes[at].1 = change,
                    None => {
                        slot.insert(id.clone(), changes.len());
                        changes.push((id, change));
                    }
                }
            }
        }
        if changes.is_empty() {
            return Ok(());
        }
        let mut upserts = Vec::new();
        let mut removals = Vec::new();
        for (id, change) in changes {
            match change {
                Change::Upsert(document) => upserts.push(document),
                Change::Remove => removals.push(id),
            }
        }
        if !removals.is_empty() {
            self.index.remove(removals).await?;
        }
        if !upserts.is_empty() {
            self.index.upsert(upserts).await?;
        }
        self.index.flush().await
    }

    async fn change_for(&self, entry: &MessageView) -> StoreResult<Option<(MessageId, Change)>> {
        let Some(kind) = MessageKind::parse(&entry.kind) else { return Ok(None) };
        if kind.is_content() {
            return Ok(
                document_from_view(entry).map(|document| (document.message_id.clone(), Change::Upsert(document)))
            );
        }
        if !matches!(kind, MessageKind::Edit | MessageKind::Recall) {
            return Ok(None);
        }
        let Some(target) = entry.target_seq else { return Ok(None) };
        let conversation = ConversationId(entry.conversation_id.clone());
        let Some(current) = self.store.message_at(&conversation, target).await? else { return Ok(None) };
        let change = match SearchDocument::of(&current) {
            Some(document) => Change::Upsert(document),
            None => Change::Remove,
        };
        Ok(Some((current.id, change)))
    }
}

fn document_from_view(view: &MessageView) -> Option<SearchDocument> {
    let text = view.text.as_deref().filter(|text| !text.trim().is_empty())?;
    if view.recalled {
        return None;
    }
    Some(SearchDocument {
        message_id: MessageId(view.id.clone()),
        conversation_id: ConversationId(view.conversation_id.clone()),
        seq: view.seq,
        sender_id: UserId(view.sender_id.clone()),
        created_at: view.created_at,
        text: text.to_owned(),
    })
}
