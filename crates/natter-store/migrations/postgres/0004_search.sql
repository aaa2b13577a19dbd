-- The PostgreSQL search index (cluster mode: every process sees one index).
-- natter tokenizes the text itself (CJK bigrams; lowercased words with their prefixes; see
-- natter_core::search::tokens) and stores the tokens as a tsvector with positions; queries are
-- tsqueries of the same tokens (a CJK term is the phrase of its bigrams). No text search
-- configuration touches them, so matching is the same as the embedded (tantivy) index.
-- The text itself is not kept: hits are read back from `messages`.
CREATE TABLE search_documents (
    message_id      TEXT PRIMARY KEY,
    conversation_id TEXT NOT NULL,
    seq             BIGINT NOT NULL,
    sender_id       TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    tokens          TSVECTOR NOT NULL
);
CREATE INDEX search_documents_tokens ON search_documents USING GIN (tokens);
CREATE INDEX search_documents_scope ON search_documents (conversation_id, seq);
