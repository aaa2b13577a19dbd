-- How far the PostgreSQL search index has indexed each conversation's log: every entry with
-- seq <= seq is in search_documents. The indexer resumes from here after a restart (entries
-- committed while no indexer saw them are caught up from `messages`). Written after the
-- documents it covers, and only ever moved forward (several processes share it).
CREATE TABLE search_checkpoints (
    conversation_id TEXT PRIMARY KEY,
    seq             BIGINT NOT NULL
);
