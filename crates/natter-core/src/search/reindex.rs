//! Rebuilding the index from the message log (`natter search reindex`).
//!
//! Clears the index, then pages through every log entry in `(conversation_id, seq)` order and
//! upserts the current state of each message that has text, with a checkpoint for each
//! conversation read (so a server started afterwards catches up only what came later). Searches
//! during a rebuild see a partial index. The indexer repairs lost events and a lost index by
//! itself (see `catch_up`); run this when the index is suspect, or to rebuild it offline.

use super::{SearchDocument, SearchIndex};
use crate::ids::{ConversationId, Seq};
use crate::store::{Store, StoreResult};

/// Entries read per page (and documents upserted per call).
pub const PAGE: u32 = 5_000;
/// Flush after this many documents, so memory stays bounded on the embedded index.
const FLUSH_EVERY: u64 = 100_000;

/// What a rebuild did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReindexStats {
    /// Log entries read.
    pub entries: u64,
    /// Documents written to the index.
    pub documents: u64,
}

/// Rebuilds `index` from `store`; `progress` is called after every page with the running totals.
pub async fn reindex(
    store: &dyn Store,
    index: &dyn SearchIndex,
    mut progress: impl FnMut(ReindexStats),
) -> StoreResult<ReindexStats> {
    index.clear().await?;
    index.flush().await?;
    let mut stats = ReindexStats::default();
    let mut after: Option<(ConversationId, Seq)> = None;
    let mut unflushed = 0u64;
    loop {
        let page = store.entries_page(after.as_ref().map(|(c, s)| (c, *s)), PAGE).await?;
        let Some(last) = page.last() else { break };
        after = Some((last.conversation_id.clone(), last.seq));
        stats.entries += page.len() as u64;
        let documents: Vec<SearchDocument> = page.iter().filter_map(SearchDocument::of).collect();
        stats.documents += documents.len() as u64;
        unflushed += documents.len() as u64;
        if !documents.is_empty() {
            index.upsert(documents).await?;
        }
        // Pages are in (conversation, seq) order: every entry of a conversation up to the last one
        // of it in this page has been read.
        let mut checkpoints: Vec<(ConversationId, Seq)> = Vec::new();
        for entry in &page {
            match checkpoints.last_mut() {
                Some((conversation, seq)) if *conversation == entry.conversation_id => *seq = entry.seq,
                _ => checkpoints.push((entry.conversation_id.clone(), entry.seq)),
            }
        }
        index.set_checkpoints(checkpoints).await?;
        if unflushed >= FLUSH_EVERY {
            index.flush().await?;
            unflushed = 0;
        }
        progress(stats);
        if page.len() < PAGE as usize {
            break;
        }
    }
    index.flush().await?;
    Ok(stats)
}
