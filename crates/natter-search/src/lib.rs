//! natter's embedded search index: [`TantivyIndex`], the `SearchIndex` port on tantivy, kept in
//! `<data_dir>/search`. The default index; one process owns it (tantivy's writer lock).
//!
//! One document per message: `id`, `conversation`, `seq`, `created_at` and `text`, the text
//! tokenized by natter's own rules ([`tokenizer`], the same as the PostgreSQL index) with
//! positions, so a CJK term is the phrase of its bigrams. The text is indexed, not stored: hits
//! are read back from the message store. Writes go to one `IndexWriter`; `flush` commits and
//! reloads the reader. A message indexed for the first time is added without a delete of an
//! older version (a delete is looked up in every segment at the commit), and the writer's
//! indexing and merge threads run at a lower priority than the server's.
//!
//! Checkpoints (how far each conversation's log is indexed) are documents of the same index, so
//! that they are committed atomically with the documents they cover: `id` = `@checkpoint:` +
//! conversation id, `conversation` = [`CHECKPOINTS`], `seq`. No search scope names that
//! conversation, so they never match; `count` leaves them out. (Tantivy's commit payload would
//! also be atomic, but it is one string rewritten whole at every commit: too big with many
//! conversations.)

mod query;
pub mod tokenizer;

use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use natter_core::ids::{ConversationId, MessageId, Seq};
use natter_core::search::{SearchDocument, SearchHit, SearchIndex, SearchOrder, SearchPage, SearchRequest};
use natter_core::store::{StoreError, StoreResult};
use parking_lot::Mutex;
use tantivy::collector::{Count, DocSetCollector, TopDocs};
use tantivy::directory::MmapDirectory;
use tantivy::query::TermQuery;
use tantivy::schema::{
    FAST, Field, INDEXED, IndexRecordOption, STORED, STRING, Schema, TantivyDocument, TextFieldIndexing, TextOptions,
    Value,
};
use tantivy::{DocAddress, Index, IndexReader, IndexWriter, Order, ReloadPolicy, Searcher, TantivyError, Term, doc};

use crate::tokenizer::{NatterTokenizer, TOKENIZER};

/// The `conversation` of checkpoint documents: no conversation id looks like it.
pub const CHECKPOINTS: &str = "@checkpoint";

/// Memory the writer may buffer before it writes a segment.
const WRITER_MEMORY: usize = 64 * 1024 * 1024;
/// The niceness of the index's own threads (tokenizing and writing segments, merging them): when
/// the CPU is busy, sending and delivery come first and the index falls behind, to catch up when
/// the load drops (about a tenth of a busy core against normal threads).
const INDEXING_NICENESS: i32 = 10;

#[derive(Clone, Copy)]
pub(crate) struct Fields {
    pub(crate) id: Field,
    pub(crate) conversation: Field,
    pub(crate) seq: Field,
    pub(crate) created_at: Field,
    pub(crate) text: Field,
}

fn schema() -> (Schema, Fields) {
    let mut builder = Schema::builder();
    let id = builder.add_text_field("id", STRING | STORED);
    let conversation = builder.add_text_field("conversation", STRING | STORED);
    let seq = builder.add_i64_field("seq", INDEXED | STORED | FAST);
    let created_at = builder.add_i64_field("created_at", INDEXED | FAST);
    let indexing = TextFieldIndexing::default()
        .set_tokenizer(TOKENIZER)
        .set_index_option(IndexRecordOption::WithFreqsAndPositions);
    let text = builder.add_text_field("text", TextOptions::default().set_indexing_options(indexing));
    (builder.build(), Fields { id, conversation, seq, created_at, text })
}

struct Inner {
    fields: Fields,
    writer: Mutex<IndexWriter>,
    reader: IndexReader,
}

/// The tantivy index. Cheap to clone.
#[derive(Clone)]
pub struct TantivyIndex {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for TantivyIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TantivyIndex").finish_non_exhaustive()
    }
}

fn backend(error: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(format!("search index: {error}"))
}

impl TantivyIndex {
    /// Opens the index in `dir` (created when missing). `threads` indexing threads (1 is plenty
    /// for live indexing; a rebuild or benchmark may use more). Fails if another process holds
    /// the index (e.g. `natter search reindex` while the server runs).
    pub fn open(dir: &Path, threads: usize) -> StoreResult<TantivyIndex> {
        // The index holds message text: readable by natter's user only (0700), whatever the umask.
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder.create(dir).map_err(|error| backend(format!("cannot create {}: {error}", dir.display())))?;
        let (schema, fields) = schema();
        let directory = MmapDirectory::open(dir).map_err(backend)?;
        let index = Index::open_or_create(directory, schema).map_err(backend)?;
        index.tokenizers().register(TOKENIZER, NatterTokenizer::default());
        let threads = threads.max(1);
        // tantivy starts its indexing and merge threads when the writer is made, and a thread
        // inherits its creator's niceness: made on a thread of lower priority, they all run at it.
        let made = std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    lower_priority();
                    index.writer_with_num_threads(threads, WRITER_MEMORY * threads)
                })
                .join()
        });
        let writer =
            made.map_err(|_| backend("the search index writer could not be made"))?.map_err(|error| match error {
                TantivyError::LockFailure(..) => backend(format!(
                    "{} is in use by another process (stop the server before `natter search reindex`)",
                    dir.display()
                )),
                other => backend(other),
            })?;
        let reader = index.reader_builder().reload_policy(ReloadPolicy::Manual).try_into().map_err(backend)?;
        Ok(TantivyIndex { inner: Arc::new(Inner { fields, writer: Mutex::new(writer), reader }) })
    }

    /// Runs blocking index work off the async runtime.
    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Inner) -> StoreResult<T> + Send + 'static,
    ) -> StoreResult<T> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || work(&inner)).await.map_err(backend)?
    }
}

/// Lowers the calling thread's priority to [`INDEXING_NICENESS`] (Linux sets niceness per thread).
fn lower_priority() {
    #[cfg(target_os = "linux")]
    if let Err(error) = rustix::process::setpriority_process(Some(rustix::thread::gettid()), INDEXING_NICENESS) {
        tracing::debug!(%error, "cannot lower the search index threads' priority");
    }
}

fn add(writer: &IndexWriter, f: Fields, document: SearchDocument) -> StoreResult<()> {
    writer
        .add_document(doc!(
            f.id => document.message_id.0,
            f.conversation => document.conversation_id.0,
            f.seq => document.seq.get(),
            f.created_at => document.created_at.timestamp_millis(),
            f.text => document.text,
        ))
        .map(drop)
        .map_err(backend)
}

fn id_term(fields: &Fields, id: &MessageId) -> Term {
    Term::from_field_text(fields.id, id.as_str())
}

fn checkpoint_id(conversation: &ConversationId) -> String {
    format!("{CHECKPOINTS}:{}", conversation.as_str())
}

fn checkpoint_query(fields: &Fields) -> TermQuery {
    TermQuery::new(Term::from_field_text(fields.conversation, CHECKPOINTS), IndexRecordOption::Basic)
}

fn hit(searcher: &Searcher, fields: &Fields, address: DocAddress, score: f32) -> StoreResult<SearchHit> {
    let document: TantivyDocument = searcher.doc(address).map_err(backend)?;
    let text = |field| document.get_first(field).and_then(|v| v.as_str()).map(str::to_owned);
    let (Some(id), Some(conversation), Some(seq)) =
        (text(fields.id), text(fields.conversation), document.get_first(fields.seq).and_then(|v| v.as_i64()))
    else {
        return Err(backend("a document lacks a stored field"));
    };
    Ok(SearchHit {
        message_id: MessageId(id),
        conversation_id: ConversationId(conversation),
        seq: Seq::new(seq),
        score,
    })
}

#[async_trait]
impl SearchIndex for TantivyIndex {
    fn name(&self) -> &'static str {
        "embedded"
    }

    async fn upsert(&self, documents: Vec<SearchDocument>) -> StoreResult<()> {
        self.blocking(move |inner| {
            let f = inner.fields;
            let writer = inner.writer.lock();
            for document in documents {
                writer.delete_term(id_term(&f, &document.message_id));
                add(&writer, f, document)?;
            }
            Ok(())
        })
        .await
    }

    async fn insert(&self, documents: Vec<SearchDocument>) -> StoreResult<()> {
        self.blocking(move |inner| {
            let f = inner.fields;
            let writer = inner.writer.lock();
            for document in documents {
                add(&writer, f, document)?;
            }
            Ok(())
        })
        .await
    }

    async fn remove(&self, messages: Vec<MessageId>) -> StoreResult<()> {
        self.blocking(move |inner| {
            let writer = inner.writer.lock();
            for id in &messages {
                writer.delete_term(id_term(&inner.fields, id));
            }
            Ok(())
        })
        .await
    }

    async fn flush(&self) -> StoreResult<()> {
        self.blocking(|inner| {
            inner.writer.lock().commit().map_err(backend)?;
            inner.reader.reload().map_err(backend)
        })
        .await
    }

    async fn clear(&self) -> StoreResult<()> {
        self.blocking(|inner| inner.writer.lock().delete_all_documents().map(drop).map_err(backend)).await
    }

    async fn set_checkpoints(&self, checkpoints: Vec<(ConversationId, Seq)>) -> StoreResult<()> {
        // One writer (one process, one indexer) moves them, and only forward: a plain replace.
        self.blocking(move |inner| {
            let f = inner.fields;
            let writer = inner.writer.lock();
            for (conversation, seq) in checkpoints {
                let id = checkpoint_id(&conversation);
                writer.delete_term(Term::from_field_text(f.id, &id));
                writer
                    .add_document(doc!(f.id => id, f.conversation => CHECKPOINTS, f.seq => seq.get()))
                    .map_err(backend)?;
            }
            Ok(())
        })
        .await
    }

    async fn checkpoints(&self) -> StoreResult<Vec<(ConversationId, Seq)>> {
        self.blocking(|inner| {
            let f = inner.fields;
            let searcher = inner.reader.searcher();
            let addresses = searcher.search(&checkpoint_query(&f), &DocSetCollector).map_err(backend)?;
            let prefix = format!("{CHECKPOINTS}:");
            addresses
                .into_iter()
                .map(|address| {
                    let document: TantivyDocument = searcher.doc(address).map_err(backend)?;
                    let id = document.get_first(f.id).and_then(|v| v.as_str()).and_then(|id| id.strip_prefix(&prefix));
                    let seq = document.get_first(f.seq).and_then(|v| v.as_i64());
                    match (id, seq) {
                        (Some(id), Some(seq)) => Ok((ConversationId(id.to_owned()), Seq::new(seq))),
                        _ => Err(backend("a checkpoint document lacks a stored field")),
                    }
                })
                .collect()
        })
        .await
    }

    async fn count(&self) -> StoreResult<u64> {
        self.blocking(|inner| {
            let searcher = inner.reader.searcher();
            let checkpoints = searcher.search(&checkpoint_query(&inner.fields), &Count).map_err(backend)?;
            Ok(searcher.num_docs().saturating_sub(checkpoints as u64))
        })
        .await
    }

    async fn search(&self, request: &SearchRequest) -> StoreResult<SearchPage> {
        if request.scopes.is_empty() || request.limit == 0 {
            return Ok(SearchPage::default());
        }
        let request = request.clone();
        self.blocking(move |inner| {
            let f = inner.fields;
            let query = query::build(&f, &request);
            let searcher = inner.reader.searcher();
            let wanted = request.limit as usize + 1;
            let top = TopDocs::with_limit(wanted).and_offset(request.offset as usize);
            let mut hits = match request.order {
                SearchOrder::Newest => searcher
                    .search(&query, &top.order_by_fast_field::<i64>("created_at", Order::Desc))
                    .map_err(backend)?
                    .into_iter()
                    .map(|(_, address)| hit(&searcher, &f, address, 0.0))
                    .collect::<StoreResult<Vec<_>>>()?,
                SearchOrder::Relevance => searcher
                    .search(&query, &top.order_by_score())
                    .map_err(backend)?
                    .into_iter()
                    .map(|(score, address)| hit(&searcher, &f, address, score))
                    .collect::<StoreResult<Vec<_>>>()?,
            };
            let more = hits.len() > request.limit as usize;
            hits.truncate(request.limit as usize);
            Ok(SearchPage { hits, more })
        })
        .await
    }
}
