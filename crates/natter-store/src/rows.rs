//! Row → domain conversions, and the column lists they read.
//!
//! Queries that join several tables select each table's columns under a prefix
//! (`c_id`, `m_role`, …); [`Cols`] reads a row under one prefix. Only i64, String and their
//! Options are read: the types the `Any` driver maps the same way on every database.

use natter_core::ids::{ConversationId, FileId, FriendRequestId, MessageId, Seq, SessionId, UserId};
use natter_core::model::{
    Conversation, ConversationKind, FileRecord, FriendRequest, FriendRequestStatus, Member, MemberRole, Message,
    MessageKind, Session, SystemEvent, User, UserRole,
};
use natter_core::store::{StoreError, StoreResult};
use sqlx::any::AnyRow;
use sqlx::{Any, Decode, Row, Type};

use crate::db::time_from_millis;

pub(crate) const USER: &[&str] = &["id", "username", "nickname", "bio", "avatar", "role", "created_at", "disabled"];
pub(crate) const SESSION: &[&str] =
    &["id", "user_id", "device_name", "created_at", "last_used_at", "expires_at", "revoked"];
pub(crate) const FRIEND_REQUEST: &[&str] =
    &["id", "from_user", "to_user", "message", "status", "created_at", "updated_at"];
pub(crate) const CONVERSATION: &[&str] =
    &["id", "kind", "name", "avatar", "owner_id", "announcement", "last_seq", "created_at", "updated_at", "dissolved"];
pub(crate) const MEMBER: &[&str] =
    &["conversation_id", "user_id", "role", "joined_at", "joined_seq", "read_seq", "muted"];
pub(crate) const MESSAGE: &[&str] = &[
    "id",
    "conversation_id",
    "seq",
    "sender_id",
    "kind",
    "client_msg_id",
    "text",
    "file_id",
    "reply_to",
    "mentions",
    "target_seq",
    "emoji",
    "op",
    "system",
    "edited_at",
    "recalled",
    "created_at",
    "transcript",
];

pub(crate) const FILE: &[&str] = &[
    "id",
    "owner_id",
    "name",
    "mime",
    "size",
    "sha256",
    "blob_key",
    "width",
    "height",
    "duration_ms",
    "thumbnail_id",
    "created_at",
];

/// `alias.col AS prefixcol, …` for a select list.
pub(crate) fn select_list(alias: &str, prefix: &str, columns: &[&str]) -> String {
    columns.iter().map(|c| format!("{alias}.{c} AS {prefix}{c}")).collect::<Vec<_>>().join(", ")
}

/// The columns of one table inside a row, under a prefix.
#[derive(Clone, Copy)]
pub(crate) struct Cols<'r> {
    row: &'r AnyRow,
    prefix: &'static str,
}

impl<'r> Cols<'r> {
    pub(crate) fn new(row: &'r AnyRow, prefix: &'static str) -> Self {
        Self { row, prefix }
    }

    pub(crate) fn get<T>(&self, column: &str) -> StoreResult<T>
    where
        T: Decode<'r, Any> + Type<Any>,
    {
        let result = if self.prefix.is_empty() {
            self.row.try_get(column)
        } else {
            self.row.try_get(format!("{}{column}", self.prefix).as_str())
        };
        result.map_err(|error| StoreError::Backend(format!("column {}{column}: {error}", self.prefix)))
    }

    fn string(&self, column: &str) -> StoreResult<String> {
        self.get(column)
    }

    fn optional(&self, column: &str) -> StoreResult<Option<String>> {
        self.get(column)
    }

    fn int(&self, column: &str) -> StoreResult<i64> {
        self.get(column)
    }

    fn seq(&self, column: &str) -> StoreResult<Seq> {
        self.int(column).map(Seq::new)
    }

    fn optional_seq(&self, column: &str) -> StoreResult<Option<Seq>> {
        Ok(self.get::<Option<i64>>(column)?.map(Seq::new))
    }

    fn flag(&self, column: &str) -> StoreResult<bool> {
        Ok(self.int(column)? != 0)
    }

    fn time(&self, column: &str) -> StoreResult<natter_core::model::Time> {
        time_from_millis(self.int(column)?)
    }

    fn parsed<T>(&self, column: &str, parse: impl Fn(&str) -> Option<T>) -> StoreResult<T> {
        let text = self.string(column)?;
        parse(&text).ok_or_else(|| StoreError::Backend(format!("unknown {column} {text:?}")))
    }
}

pub(crate) fn user(cols: Cols<'_>) -> StoreResult<User> {
    Ok(User {
        id: UserId(cols.string("id")?),
        username: cols.string("username")?,
        nickname: cols.string("nickname")?,
        bio: cols.string("bio")?,
        avatar: cols.optional("avatar")?,
        role: cols.parsed("role", UserRole::parse)?,
        created_at: cols.time("created_at")?,
        disabled: cols.flag("disabled")?,
    })
}

pub(crate) fn session(cols: Cols<'_>) -> StoreResult<Session> {
    Ok(Session {
        id: SessionId(cols.string("id")?),
        user_id: UserId(cols.string("user_id")?),
        device_name: cols.optional("device_name")?,
        created_at: cols.time("created_at")?,
        last_used_at: cols.time("last_used_at")?,
        expires_at: cols.time("expires_at")?,
        revoked: cols.flag("revoked")?,
    })
}

pub(crate) fn friend_request(cols: Cols<'_>) -> StoreResult<FriendRequest> {
    Ok(FriendRequest {
        id: FriendRequestId(cols.string("id")?),
        from_user: UserId(cols.string("from_user")?),
        to_user: UserId(cols.string("to_user")?),
        message: cols.string("message")?,
        status: cols.parsed("status", FriendRequestStatus::parse)?,
        created_at: cols.time("created_at")?,
        updated_at: cols.time("updated_at")?,
    })
}

pub(crate) fn conversation(cols: Cols<'_>) -> StoreResult<Conversation> {
    Ok(Conversation {
        id: ConversationId(cols.string("id")?),
        kind: cols.parsed("kind", ConversationKind::parse)?,
        name: cols.string("name")?,
        avatar: cols.optional("avatar")?,
        owner_id: cols.optional("owner_id")?.map(UserId),
        announcement: cols.optional("announcement")?,
        last_seq: cols.seq("last_seq")?,
        created_at: cols.time("created_at")?,
        updated_at: cols.time("updated_at")?,
        dissolved: cols.flag("dissolved")?,
    })
}

pub(crate) fn member(cols: Cols<'_>) -> StoreResult<Member> {
    Ok(Member {
        conversation_id: ConversationId(cols.string("conversation_id")?),
        user_id: UserId(cols.string("user_id")?),
        role: cols.parsed("role", MemberRole::parse)?,
        joined_at: cols.time("joined_at")?,
        joined_seq: cols.seq("joined_seq")?,
        read_seq: cols.seq("read_seq")?,
        muted: cols.flag("muted")?,
    })
}

/// A log entry with its current state; `reactions` is left empty for the caller to fill.
pub(crate) fn message(cols: Cols<'_>) -> StoreResult<Message> {
    let mentions = match cols.optional("mentions")? {
        Some(json) => serde_json::from_str(&json).map_err(|e| StoreError::Backend(format!("mentions: {e}")))?,
        None => Vec::new(),
    };
    let system = match cols.optional("system")? {
        Some(json) => {
            Some(serde_json::from_str::<SystemEvent>(&json).map_err(|e| StoreError::Backend(format!("system: {e}")))?)
        }
        None => None,
    };
    Ok(Message {
        id: MessageId(cols.string("id")?),
        conversation_id: ConversationId(cols.string("conversation_id")?),
        seq: cols.seq("seq")?,
        sender_id: UserId(cols.string("sender_id")?),
        kind: cols.parsed("kind", MessageKind::parse)?,
        client_msg_id: cols.optional("client_msg_id")?,
        text: cols.optional("text")?,
        file_id: cols.optional("file_id")?,
        reply_to: cols.optional_seq("reply_to")?,
        mentions,
        target_seq: cols.optional_seq("target_seq")?,
        emoji: cols.optional("emoji")?,
        op: cols.optional("op")?,
        system,
        edited_at: cols.get::<Option<i64>>("edited_at")?.map(time_from_millis).transpose()?,
        recalled: cols.flag("recalled")?,
        transcript: cols.optional("transcript")?,
        reactions: Vec::new(),
        file: None,
        created_at: cols.time("created_at")?,
    })
}

pub(crate) fn file(cols: Cols<'_>) -> StoreResult<FileRecord> {
    Ok(FileRecord {
        id: FileId(cols.string("id")?),
        owner_id: UserId(cols.string("owner_id")?),
        name: cols.string("name")?,
        mime: cols.string("mime")?,
        size: cols.int("size")?,
        sha256: cols.string("sha256")?,
        blob_key: cols.string("blob_key")?,
        width: cols.get("width")?,
        height: cols.get("height")?,
        duration_ms: cols.get("duration_ms")?,
        thumbnail_id: cols.optional("thumbnail_id")?.map(FileId),
        created_at: cols.time("created_at")?,
    })
}

/// Mentions as stored: `NULL` when there are none.
pub(crate) fn mentions_json(mentions: &[UserId]) -> Result<Option<String>, serde_json::Error> {
    if mentions.is_empty() { Ok(None) } else { serde_json::to_string(mentions).map(Some) }
}

pub(crate) fn system_json(system: Option<&SystemEvent>) -> Result<Option<String>, serde_json::Error> {
    system.map(serde_json::to_string).transpose()
}
