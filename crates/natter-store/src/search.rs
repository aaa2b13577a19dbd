//! [`PgSearchIndex`]: the search-index port on PostgreSQL, for cluster mode (every process sees
//! one index). Table `search_documents` (migration 0004): one row per message, its tokens as a
//! `tsvector` with positions under a GIN index.
//!
//! Tokens come from `natter_core::search::tokens`, the same as the embedded index: the tsvector
//! and tsquery are written as literals (no text search configuration re-tokenizes them). A word
//! term is one lexeme (the indexed prefixes make it a prefix match); a CJK term is the phrase
//! (`<->`) of its bigrams, so it matches exactly the texts containing it. Relevance is
//! `ts_rank`. Checkpoints (how far each conversation's log is indexed) are rows of
//! `search_checkpoints` (migration 0005), moved only forward. Uses a typed PostgreSQL pool (arrays for batches and scopes), not the `Any` pool.

use std::collections::{BTreeMap, HashMap};

use async_trait::async_trait;
use natter_core::ids::{ConversationId, MessageId, Seq};
use natter_core::search::tokens::index_tokens;
use natter_core::search::{
    ParsedQuery, QueryTerm, SearchDocument, SearchHit, SearchIndex, SearchOrder, SearchPage, SearchRequest,
};
use natter_core::store::{StoreError, StoreResult};
use sqlx::Row;
use sqlx::postgres::{PgPool, PgPoolOptions};

use crate::db::{Db, backend, millis};

/// Highest position a tsvector holds.
const MAX_POSITION: u32 = 16_383;

/// The PostgreSQL search index. Cheap to clone.
#[derive(Clone, Debug)]
pub struct PgSearchIndex {
    pool: PgPool,
}

const UPSERT: &str = "INSERT INTO search_documents (message_id, conversation_id, seq, sender_id, created_at, tokens) \
     SELECT * FROM UNNEST($1::text[], $2::text[], $3::bigint[], $4::text[], $5::bigint[], $6::text[]::tsvector[]) \
     ON CONFLICT (message_id) DO UPDATE SET conversation_id = EXCLUDED.conversation_id, seq = EXCLUDED.seq, \
     sender_id = EXCLUDED.sender_id, created_at = EXCLUDED.created_at, tokens = EXCLUDED.tokens";
const SET_CHECKPOINTS: &str = "INSERT INTO search_checkpoints (conversation_id, seq) \
     SELECT * FROM UNNEST($1::text[], $2::bigint[]) \
     ON CONFLICT (conversation_id) DO UPDATE SET seq = GREATEST(search_checkpoints.seq, EXCLUDED.seq)";
const SEARCH: &str = "SELECT d.message_id, d.conversation_id, d.seq, ts_rank(d.tokens, q.query)::float4 AS score \
     FROM search_documents d \
     JOIN UNNEST($2::text[], $3::bigint[]) AS s(conversation_id, min_seq) \
       ON s.conversation_id = d.conversation_id AND d.seq >= s.min_seq \
     CROSS JOIN (SELECT $1::tsquery AS query) q \
     WHERE d.tokens @@ q.query AND ($4::bigint IS NULL OR d.created_at <= $4) ";
const NEWEST: &str = "ORDER BY d.created_at DESC, d.message_id DESC OFFSET $5 LIMIT $6";
const RELEVANCE: &str = "ORDER BY score DESC, d.created_at DESC, d.message_id DESC OFFSET $5 LIMIT $6";

impl PgSearchIndex {
    /// Connects to `postgres://…` and brings the schema up to date (the store's migrations,
    /// which include `search_documents`).
    pub async fn connect(url: &str, max_connections: u32) -> StoreResult<PgSearchIndex> {
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return Err(StoreError::Backend("the postgres search index needs a postgres:// URL".into()));
        }
        let migrations = Db::connect(url, 1).await?;
        migrations.close().await;
        let pool = PgPoolOptions::new().max_connections(max_connections.max(1)).connect(url).await.map_err(backend)?;
        Ok(PgSearchIndex { pool })
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// `text`'s tokens as a tsvector literal: `'token':1,3 'other':2`.
pub fn tsvector_literal(text: &str) -> String {
    let mut positions: BTreeMap<String, Vec<u32>> = BTreeMap::new();
    index_tokens(text, |token| {
        let list = positions.entry(token.text).or_default();
        let position = (token.position + 1).min(MAX_POSITION);
        if list.last() != Some(&position) {
            list.push(position);
        }
    });
    let mut literal = String::with_capacity(text.len() * 4);
    for (lexeme, list) in positions {
        if !literal.is_empty() {
            literal.push(' ');
        }
        push_lexeme(&mut literal, &lexeme);
        literal.push(':');
        let list: Vec<String> = list.iter().map(u32::to_string).collect();
        literal.push_str(&list.join(","));
    }
    literal
}

/// The query as a tsquery literal: terms joined by `&`, a CJK term as `'ab' <-> 'bc'`.
pub fn tsquery_literal(query: &ParsedQuery) -> String {
    let mut terms = Vec::with_capacity(query.terms.len());
    for term in &query.terms {
        let mut literal = String::new();
        match term {
            QueryTerm::Word(word) => push_lexeme(&mut literal, word),
            QueryTerm::Cjk { bigrams, .. } => {
                literal.push('(');
                for (index, bigram) in bigrams.iter().enumerate() {
                    if index > 0 {
                        literal.push_str(" <-> ");
                    }
                    push_lexeme(&mut literal, bigram);
                }
                literal.push(')');
            }
        }
        terms.push(literal);
    }
    terms.join(" & ")
}

fn push_lexeme(out: &mut String, lexeme: &str) {
    out.push('\'');
    for c in lexeme.chars() {
        match c {
            '\'' => out.push_str("''"),
            '\\' => out.push_str("\\\\"),
            _ => out.push(c),
        }
    }
    out.push('\'');
}

#[async_trait]
impl SearchIndex for PgSearchIndex {
    fn name(&self) -> &'static str {
        "postgres"
    }

    async fn upsert(&self, documents: Vec<SearchDocument>) -> StoreResult<()> {
        // One statement may not touch a row twice: the last document of a message wins.
        let mut last: HashMap<MessageId, SearchDocument> = HashMap::with_capacity(documents.len());
        for document in documents {
            last.insert(document.message_id.clone(), document);
        }
        // In id order, so that processes upserting overlapping batches lock rows in one order
        // (no deadlocks between the nodes of a cluster indexing the same events).
        let mut documents: Vec<SearchDocument> = last.into_values().collect();
        documents.sort_by(|a, b| a.message_id.cmp(&b.message_id));
        for chunk in documents.chunks(2_000) {
            sqlx::query(UPSERT)
                .bind(chunk.iter().map(|d| d.message_id.0.clone()).collect::<Vec<_>>())
                .bind(chunk.iter().map(|d| d.conversation_id.0.clone()).collect::<Vec<_>>())
                .bind(chunk.iter().map(|d| d.seq.get()).collect::<Vec<_>>())
                .bind(chunk.iter().map(|d| d.sender_id.0.clone()).collect::<Vec<_>>())
                .bind(chunk.iter().map(|d| millis(d.created_at)).collect::<Vec<_>>())
                .bind(chunk.iter().map(|d| tsvector_literal(&d.text)).collect::<Vec<_>>())
                .execute(&self.pool)
                .await
                .map_err(backend)?;
        }
        Ok(())
    }

    async fn remove(&self, messages: Vec<MessageId>) -> StoreResult<()> {
        let mut ids: Vec<String> = messages.into_iter().map(|id| id.0).collect();
        ids.sort();
        sqlx::query("DELETE FROM search_documents WHERE message_id = ANY($1)")
            .bind(ids)
            .execute(&self.pool)
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn flush(&self) -> StoreResult<()> {
        // Every statement above commits on its own.
        Ok(())
    }

    async fn clear(&self) -> StoreResult<()> {
        sqlx::query("TRUNCATE search_documents, search_checkpoints").execute(&self.pool).await.map_err(backend)?;
        Ok(())
    }

    async fn set_checkpoints(&self, checkpoints: Vec<(ConversationId, Seq)>) -> StoreResult<()> {
        let mut last: BTreeMap<ConversationId, Seq> = BTreeMap::new();
        for (conversation, seq) in checkpoints {
            let slot = last.entry(conversation).or_insert(seq);
            *slot = (*slot).max(seq);
        }
        // In id order (the BTreeMap's), like upserts: no deadlocks between processes.
        let (conversations, seqs): (Vec<String>, Vec<i64>) = last.into_iter().map(|(c, s)| (c.0, s.get())).unzip();
        for (conversations, seqs) in conversations.chunks(2_000).zip(seqs.chunks(2_000)) {
            sqlx::query(SET_CHECKPOINTS)
                .bind(conversations.to_vec())
                .bind(seqs.to_vec())
                .execute(&self.pool)
                .await
                .map_err(backend)?;
        }
        Ok(())
    }

    async fn checkpoints(&self) -> StoreResult<Vec<(ConversationId, Seq)>> {
        let rows = sqlx::query("SELECT conversation_id, seq FROM search_checkpoints")
            .fetch_all(&self.pool)
            .await
            .map_err(backend)?;
        rows.iter()
            .map(|row| {
                let conversation: String = row.try_get(0).map_err(backend)?;
                let seq: i64 = row.try_get(1).map_err(backend)?;
                Ok((ConversationId(conversation), Seq::new(seq)))
            })
            .collect()
    }

    async fn count(&self) -> StoreResult<u64> {
        let row = sqlx::query("SELECT COUNT(*) FROM search_documents").fetch_one(&self.pool).await.map_err(backend)?;
        let count: i64 = row.try_get(0).map_err(backend)?;
        Ok(u64::try_from(count).unwrap_or(0))
    }

    async fn search(&self, request: &SearchRequest) -> StoreResult<SearchPage> {
        if request.scopes.is_empty() || request.limit == 0 {
            return Ok(SearchPage::default());
        }
        let order = match request.order {
            SearchOrder::Newest => NEWEST,
            SearchOrder::Relevance => RELEVANCE,
        };
        let sql = format!("{SEARCH}{order}");
        let rows = sqlx::query(&sql)
            .bind(tsquery_literal(&request.query))
            .bind(request.scopes.iter().map(|s| s.conversation_id.0.clone()).collect::<Vec<_>>())
            .bind(request.scopes.iter().map(|s| s.min_seq.get()).collect::<Vec<_>>())
            .bind(request.created_until.map(millis))
            .bind(i64::from(request.offset))
            .bind(i64::from(request.limit) + 1)
            .fetch_all(&self.pool)
            .await
            .map_err(backend)?;
        let mut hits = rows
            .iter()
            .map(|row| {
                Ok(SearchHit {
                    message_id: MessageId(row.try_get(0).map_err(backend)?),
                    conversation_id: ConversationId(row.try_get(1).map_err(backend)?),
                    seq: Seq::new(row.try_get(2).map_err(backend)?),
                    score: row.try_get(3).map_err(backend)?,
                })
            })
            .collect::<StoreResult<Vec<_>>>()?;
        let more = hits.len() > request.limit as usize;
        hits.truncate(request.limit as usize);
        Ok(SearchPage { hits, more })
    }
}
