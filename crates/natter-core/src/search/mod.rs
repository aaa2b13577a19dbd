//! The search-index port: full-text search over message texts.
//!
//! The index holds one document per message that has text (a `text` entry, or a caption), keyed
//! by message id: upserting a message again replaces its document, so indexing is idempotent and
//! may run in every process of a cluster. Storage stays the source of truth: the index is fed
//! after commit ([`indexer`]), records with each commit how far it has indexed each
//! conversation's log (checkpoints), catches up from the log from there ([`catch_up`]), can be
//! rebuilt from the log at any time ([`reindex`]), and every hit is read back from the store before
//! it is shown (a recalled or edited message shows its current state, whatever the index still
//! says).
//!
//! Tokenization ([`tokens`]) and highlighting ([`snippet`]) live here, shared by every adapter, so
//! that they all find the same messages: CJK by any substring of two or more characters, other
//! scripts by words and word prefixes, case-insensitively.

pub mod catch_up;
pub mod indexer;
pub mod reindex;
pub mod snippet;
pub mod tokens;

#[cfg(feature = "testkit")]
pub mod bench;
#[cfg(feature = "testkit")]
pub mod conformance;

use async_trait::async_trait;

use crate::ids::{ConversationId, MessageId, Seq, UserId};
use crate::model::{Message, Time};
use crate::store::StoreResult;
pub use tokens::{ParsedQuery, QueryTerm};

/// What the index stores about one message.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchDocument {
    pub message_id: MessageId,
    pub conversation_id: ConversationId,
    pub seq: Seq,
    pub sender_id: UserId,
    pub created_at: Time,
    pub text: String,
}

impl SearchDocument {
    /// The document of a message in its current state; `None` when it has nothing to search
    /// (no text, recalled, or not a content entry).
    pub fn of(message: &Message) -> Option<SearchDocument> {
        if !message.kind.is_content() || message.recalled {
            return None;
        }
        let text = message.text.as_deref().filter(|text| !text.trim().is_empty())?;
        Some(SearchDocument {
            message_id: message.id.clone(),
            conversation_id: message.conversation_id.clone(),
            seq: message.seq,
            sender_id: message.sender_id.clone(),
            created_at: message.created_at,
            text: text.to_owned(),
        })
    }
}

/// Part of the log the caller may search: entries of `conversation_id` with `seq >= min_seq`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    pub conversation_id: ConversationId,
    pub min_seq: Seq,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum SearchOrder {
    /// `created_at` descending (equal times in an order of the adapter's choosing).
    Newest,
    /// Score descending (each adapter scores its own way: BM25 or `ts_rank`).
    Relevance,
}

/// One search, as the service hands it to an adapter.
#[derive(Debug, Clone)]
pub struct SearchRequest {
    pub query: ParsedQuery,
    /// Only documents inside one of these scopes match. Empty: nothing matches.
    pub scopes: Vec<Scope>,
    pub order: SearchOrder,
    /// Skip this many hits (cursor paging).
    pub offset: u32,
    /// Return at most this many hits.
    pub limit: u32,
    /// Only documents with `created_at <= created_until` (keeps pages stable while new messages
    /// arrive).
    pub created_until: Option<Time>,
}

/// A document that matched.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchHit {
    pub message_id: MessageId,
    pub conversation_id: ConversationId,
    pub seq: Seq,
    pub score: f32,
}

/// One page of hits; `more` when hits beyond `offset + limit` exist.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SearchPage {
    pub hits: Vec<SearchHit>,
    pub more: bool,
}

/// A full-text index of messages. Every adapter passes the suite in `conformance`.
#[async_trait]
pub trait SearchIndex: Send + Sync + 'static {
    /// A short name for logs (`embedded`, `postgres`).
    fn name(&self) -> &'static str;
    /// Adds or replaces (by message id) these documents.
    async fn upsert(&self, documents: Vec<SearchDocument>) -> StoreResult<()>;
    /// Adds documents of messages the index has never held (each past its conversation's
    /// checkpoint, from its own log entry): an adapter may skip looking for an older version,
    /// which for tantivy is a delete applied to every segment at the next commit. By default an
    /// upsert.
    async fn insert(&self, documents: Vec<SearchDocument>) -> StoreResult<()> {
        self.upsert(documents).await
    }
    /// Removes these messages' documents (unknown ids are ignored).
    async fn remove(&self, messages: Vec<MessageId>) -> StoreResult<()>;
    /// Makes every upsert and removal so far durable and visible to searches.
    async fn flush(&self) -> StoreResult<()>;
    /// Removes every document and every checkpoint (before a rebuild).
    async fn clear(&self) -> StoreResult<()>;
    /// Records, per conversation, that every log entry up to this `seq` is in the index. Durable
    /// with the next `flush` at the latest, and never before the changes that preceded this call
    /// (embedded: part of the same commit; PostgreSQL: written after them). Where several
    /// processes share the index a checkpoint only moves forward (the greatest value wins).
    async fn set_checkpoints(&self, checkpoints: Vec<(ConversationId, Seq)>) -> StoreResult<()>;
    /// The checkpoints as of the last `flush`: where the indexer resumes after a restart.
    async fn checkpoints(&self) -> StoreResult<Vec<(ConversationId, Seq)>>;
    /// How many documents are searchable.
    async fn count(&self) -> StoreResult<u64>;
    /// Documents matching every term of the query, inside the scopes, in the requested order.
    async fn search(&self, request: &SearchRequest) -> StoreResult<SearchPage>;
}
