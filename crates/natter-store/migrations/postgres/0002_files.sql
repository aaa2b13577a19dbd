-- Uploaded files (and the thumbnails the server makes of images). The bytes live in the blob
-- store under blob_key; this is their metadata. Times are unix milliseconds.
CREATE TABLE files (
    id           TEXT PRIMARY KEY NOT NULL,
    owner_id     TEXT NOT NULL REFERENCES users (id),
    name         TEXT NOT NULL,
    mime         TEXT NOT NULL,
    size         BIGINT NOT NULL,
    sha256       TEXT NOT NULL,
    blob_key     TEXT NOT NULL,
    width        BIGINT,
    height       BIGINT,
    duration_ms  BIGINT,
    thumbnail_id TEXT REFERENCES files (id),
    created_at   BIGINT NOT NULL
);
-- The quota (sum of sizes per owner).
CREATE INDEX files_owner ON files (owner_id);
-- Reading a thumbnail asks who may read its image.
CREATE INDEX files_thumbnail ON files (thumbnail_id) WHERE thumbnail_id IS NOT NULL;
-- Access checks: which entries reference a file, and whose avatar it is.
CREATE INDEX messages_file ON messages (file_id) WHERE file_id IS NOT NULL;
CREATE INDEX users_avatar ON users (avatar) WHERE avatar IS NOT NULL;
CREATE INDEX conversations_avatar ON conversations (avatar) WHERE avatar IS NOT NULL;
