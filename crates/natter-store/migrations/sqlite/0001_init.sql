-- natter schema, SQLite dialect. Keep in step with ../postgres/0001_init.sql: the two differ only
-- in integer type names. Ids are TEXT, times are unix milliseconds, flags are 0/1 integers,
-- mentions and system events are JSON text.

CREATE TABLE users (
    id             TEXT PRIMARY KEY NOT NULL,
    username       TEXT NOT NULL,
    nickname       TEXT NOT NULL,
    -- Lower-cased in Rust so that case-insensitive search behaves the same on every database
    -- (SQLite's lower() only folds ASCII).
    nickname_lower TEXT NOT NULL,
    bio            TEXT NOT NULL,
    avatar         TEXT,
    role           TEXT NOT NULL,
    password_hash  TEXT NOT NULL,
    created_at     INTEGER NOT NULL,
    disabled       INTEGER NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX users_username_lower ON users (lower(username));

CREATE TABLE sessions (
    id           TEXT PRIMARY KEY NOT NULL,
    user_id      TEXT NOT NULL REFERENCES users (id),
    device_name  TEXT,
    created_at   INTEGER NOT NULL,
    last_used_at INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL,
    revoked      INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX sessions_user ON sessions (user_id, created_at);

-- Spent tokens stay: presenting one again is how theft is detected.
CREATE TABLE refresh_tokens (
    hash       TEXT PRIMARY KEY NOT NULL,
    session_id TEXT NOT NULL REFERENCES sessions (id),
    spent      INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL
);

CREATE TABLE conversations (
    id           TEXT PRIMARY KEY NOT NULL,
    kind         TEXT NOT NULL,
    name         TEXT NOT NULL,
    avatar       TEXT,
    owner_id     TEXT REFERENCES users (id),
    announcement TEXT,
    last_seq     INTEGER NOT NULL DEFAULT 0,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL,
    dissolved    INTEGER NOT NULL DEFAULT 0,
    -- For direct conversations: the pair, lower id first. NULL for groups.
    direct_low   TEXT REFERENCES users (id),
    direct_high  TEXT REFERENCES users (id)
);
CREATE UNIQUE INDEX conversations_direct_pair ON conversations (direct_low, direct_high);

CREATE TABLE members (
    conversation_id TEXT NOT NULL REFERENCES conversations (id),
    user_id         TEXT NOT NULL REFERENCES users (id),
    role            TEXT NOT NULL,
    joined_at       INTEGER NOT NULL,
    joined_seq      INTEGER NOT NULL,
    read_seq        INTEGER NOT NULL,
    muted           INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (conversation_id, user_id)
);
CREATE INDEX members_user ON members (user_id);

CREATE TABLE friend_requests (
    id         TEXT PRIMARY KEY NOT NULL,
    from_user  TEXT NOT NULL REFERENCES users (id),
    to_user    TEXT NOT NULL REFERENCES users (id),
    -- The pair, lower id first: at most one pending request per pair, whichever way.
    user_low   TEXT NOT NULL,
    user_high  TEXT NOT NULL,
    message    TEXT NOT NULL,
    status     TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE UNIQUE INDEX friend_requests_pending_pair ON friend_requests (user_low, user_high)
    WHERE status = 'pending';
CREATE INDEX friend_requests_to ON friend_requests (to_user, created_at);
CREATE INDEX friend_requests_from ON friend_requests (from_user, created_at);

-- Symmetric: one row each way, so a user's friends are one index range.
CREATE TABLE friendships (
    user_id         TEXT NOT NULL REFERENCES users (id),
    friend_id       TEXT NOT NULL REFERENCES users (id),
    since           INTEGER NOT NULL,
    conversation_id TEXT NOT NULL REFERENCES conversations (id),
    PRIMARY KEY (user_id, friend_id)
);

CREATE TABLE blocks (
    blocker_id TEXT NOT NULL REFERENCES users (id),
    blocked_id TEXT NOT NULL REFERENCES users (id),
    created_at INTEGER NOT NULL,
    PRIMARY KEY (blocker_id, blocked_id)
);

-- The log. text, file_id, edited_at and recalled hold the current state of the message (after
-- edits and recalls); the edit and recall entries themselves are in the log too.
CREATE TABLE messages (
    conversation_id TEXT NOT NULL REFERENCES conversations (id),
    seq             INTEGER NOT NULL,
    id              TEXT NOT NULL,
    sender_id       TEXT NOT NULL REFERENCES users (id),
    kind            TEXT NOT NULL,
    client_msg_id   TEXT,
    text            TEXT,
    file_id         TEXT,
    reply_to        INTEGER,
    mentions        TEXT,
    target_seq      INTEGER,
    emoji           TEXT,
    op              TEXT,
    system          TEXT,
    edited_at       INTEGER,
    recalled        INTEGER NOT NULL DEFAULT 0,
    created_at      INTEGER NOT NULL,
    PRIMARY KEY (conversation_id, seq)
);
CREATE UNIQUE INDEX messages_id ON messages (id);
CREATE UNIQUE INDEX messages_sender_client ON messages (sender_id, client_msg_id)
    WHERE client_msg_id IS NOT NULL;

-- Current reactions; added_seq (the seq of the reaction entry) orders them as they were added.
CREATE TABLE reactions (
    conversation_id TEXT NOT NULL,
    seq             INTEGER NOT NULL,
    emoji           TEXT NOT NULL,
    user_id         TEXT NOT NULL REFERENCES users (id),
    added_seq       INTEGER NOT NULL,
    created_at      INTEGER NOT NULL,
    PRIMARY KEY (conversation_id, seq, emoji, user_id),
    FOREIGN KEY (conversation_id, seq) REFERENCES messages (conversation_id, seq)
);
