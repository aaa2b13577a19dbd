//! The storage port. Storage is the source of truth: every acknowledged change is committed here
//! before anything is pushed.
//!
//! One trait with sections per area keeps `Arc<dyn Store>` simple. Every adapter runs the same
//! conformance suite (natter-store's tests).

use async_trait::async_trait;

use crate::ids::{ConversationId, FileId, FriendRequestId, Seq, SessionId, UserId};
use crate::model::{
    Conversation, ConversationKind, ConversationSummary, FileRecord, Friend, FriendRequest, FriendRequestStatus,
    Member, MemberRole, Message, MessageKind, Session, SystemEvent, Time, User,
};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A uniqueness rule was broken; the string names it (e.g. `username`).
    #[error("conflict on {0}")]
    Conflict(&'static str),
    /// The database failed or could not be reached. The text is for logs only.
    #[error("storage backend error: {0}")]
    Backend(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// A new account.
#[derive(Debug, Clone)]
pub struct NewUser {
    pub user: User,
    pub password_hash: String,
}

/// `None` leaves a field alone; `avatar: Some(None)` clears the avatar.
#[derive(Debug, Clone, Default)]
pub struct ProfileUpdate {
    pub nickname: Option<String>,
    pub bio: Option<String>,
    pub avatar: Option<Option<String>>,
}

/// Outcome of presenting a refresh token.
#[derive(Debug, Clone, PartialEq)]
pub enum RefreshOutcome {
    /// The token was current; it is now spent and `new_hash` is the session's current token.
    Rotated(Session),
    /// The token had already been spent: the session is now revoked.
    Reused(SessionId),
    /// Unknown token, or its session is revoked or expired.
    Invalid,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum RequestDirection {
    Incoming,
    Outgoing,
}

/// A log entry to append. The store assigns `seq` (last_seq + 1) inside the transaction that
/// stores it, applies `effect` in that same transaction, and moves the sender's `read_seq` to the
/// new `seq`.
#[derive(Debug, Clone)]
pub struct NewEntry {
    pub message: Message,
    pub effect: Effect,
}

/// A change applied atomically with the entry that records it.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    None,
    /// Insert these members (their `joined_seq` and `read_seq` are set to the new entry's seq).
    AddMembers(Vec<Member>),
    RemoveMember(UserId),
    SetRole(UserId, MemberRole),
    /// New owner gets `Owner`, previous owner `Admin`, and the conversation's `owner_id` changes.
    TransferOwnership {
        from: UserId,
        to: UserId,
    },
    /// Any field `Some` is set (`avatar: Some(None)` clears).
    UpdateConversation {
        name: Option<String>,
        announcement: Option<String>,
        avatar: Option<Option<String>>,
    },
    /// Marks the conversation dissolved and removes every member.
    Dissolve,
    /// Sets the target's current text and `edited_at` (the entry's created_at).
    Edit {
        target_seq: Seq,
        text: String,
    },
    /// Marks the target recalled and clears its text and file.
    Recall {
        target_seq: Seq,
    },
    /// Adds (idempotently) a reaction of the sender to the target.
    AddReaction {
        target_seq: Seq,
        emoji: String,
    },
    RemoveReaction {
        target_seq: Seq,
        emoji: String,
    },
    /// Sets the target's `transcript` (unless it was recalled).
    Transcript {
        target_seq: Seq,
        text: String,
    },
}

/// The other member of a direct conversation, as a send needs to know them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectPeer {
    pub user: UserId,
    /// `user` and the caller are friends.
    pub friends: bool,
    /// Either has blocked the other.
    pub blocked: bool,
}

/// Outcome of an append.
#[derive(Debug, Clone, PartialEq)]
pub enum AppendOutcome {
    Appended(Message),
    /// Same sender and `client_msg_id` as an earlier entry: that entry, nothing stored.
    Duplicate(Message),
    /// The conversation does not exist or is dissolved.
    ConversationGone,
}

/// Storage, by area: each role and service can hold the part it uses. [`Store`] is all of them
/// (one database, one adapter).
#[async_trait]
pub trait Store: AccountStore + SocialStore + ConversationStore + LogStore + FileStore {
    /// Whether the database answers (for `/readyz`).
    async fn ping(&self) -> StoreResult<()>;
}

/// Accounts and their sessions.
#[async_trait]
pub trait AccountStore: Send + Sync + 'static {
    // ---- users ----
    /// `Conflict("username")` when taken (case-insensitively).
    async fn create_user(&self, new: NewUser) -> StoreResult<User>;
    async fn user(&self, id: &UserId) -> StoreResult<Option<User>>;
    /// Case-insensitive; with the password hash.
    async fn user_by_username(&self, username: &str) -> StoreResult<Option<(User, String)>>;
    async fn users(&self, ids: &[UserId]) -> StoreResult<Vec<User>>;
    async fn password_hash(&self, id: &UserId) -> StoreResult<Option<String>>;
    async fn update_profile(&self, id: &UserId, update: ProfileUpdate) -> StoreResult<Option<User>>;
    async fn set_password_hash(&self, id: &UserId, hash: &str) -> StoreResult<()>;
    /// Users whose username or nickname contains `query` (case-insensitive), prefix matches of
    /// the username first, then by username; not disabled ones.
    async fn search_users(&self, query: &str, limit: u32) -> StoreResult<Vec<User>>;

    // ---- sessions ----
    async fn create_session(&self, session: &Session, refresh_hash: &str) -> StoreResult<()>;
    async fn session(&self, id: &SessionId) -> StoreResult<Option<Session>>;
    /// Live (not revoked, not expired at `now`) sessions of a user, newest first.
    async fn sessions_of(&self, user: &UserId, now: Time) -> StoreResult<Vec<Session>>;
    /// Spend `old_hash` and make `new_hash` current, atomically; see [`RefreshOutcome`].
    /// On `Rotated`, `last_used_at` becomes `now`.
    async fn rotate_refresh_token(&self, old_hash: &str, new_hash: &str, now: Time) -> StoreResult<RefreshOutcome>;
    /// Revokes one session of `user`; false when there is no such live session.
    async fn revoke_session(&self, user: &UserId, id: &SessionId) -> StoreResult<bool>;
    /// Revokes every session of `user` except `keep`.
    async fn revoke_other_sessions(&self, user: &UserId, keep: Option<&SessionId>) -> StoreResult<()>;
}

/// Friend requests, friendships, blocks.
#[async_trait]
pub trait SocialStore: Send + Sync + 'static {
    // ---- friends ----
    /// `Conflict("friend_request")` if a pending request between the two exists (either way).
    async fn create_friend_request(&self, request: &FriendRequest) -> StoreResult<()>;
    async fn friend_request(&self, id: &FriendRequestId) -> StoreResult<Option<FriendRequest>>;
    /// The pending request between two users, in either direction.
    async fn pending_request_between(&self, a: &UserId, b: &UserId) -> StoreResult<Option<FriendRequest>>;
    /// Requests to (incoming) or from (outgoing) `user`, newest first, any status.
    async fn friend_requests_of(&self, user: &UserId, direction: RequestDirection) -> StoreResult<Vec<FriendRequest>>;
    /// Moves a pending request to `status`; `None` if it was not pending any more.
    async fn close_friend_request(
        &self,
        id: &FriendRequestId,
        status: FriendRequestStatus,
        now: Time,
    ) -> StoreResult<Option<FriendRequest>>;
    /// In one transaction: the pending request becomes accepted, the pair become friends, and
    /// their direct conversation is created as `new_conversation` (with both as members, role
    /// `member`, joined_seq 0) or, if the pair already has one, revived (both made members again).
    /// Returns the request and the conversation id; `None` if the request was not pending.
    async fn accept_friend_request(
        &self,
        id: &FriendRequestId,
        new_conversation: &Conversation,
        now: Time,
    ) -> StoreResult<Option<(FriendRequest, ConversationId)>>;
    async fn are_friends(&self, a: &UserId, b: &UserId) -> StoreResult<bool>;
    async fn friends_of(&self, user: &UserId) -> StoreResult<Vec<Friend>>;
    /// Ends the friendship both ways; false if they were not friends.
    async fn remove_friendship(&self, a: &UserId, b: &UserId) -> StoreResult<bool>;
    /// `blocker` blocks `blocked` (idempotent); also ends a friendship and cancels pending requests.
    async fn block_user(&self, blocker: &UserId, blocked: &UserId, now: Time) -> StoreResult<()>;
    async fn unblock_user(&self, blocker: &UserId, blocked: &UserId) -> StoreResult<bool>;
    /// True if either has blocked the other.
    async fn is_blocked_between(&self, a: &UserId, b: &UserId) -> StoreResult<bool>;
    async fn blocked_by(&self, blocker: &UserId) -> StoreResult<Vec<User>>;
}

/// Conversations and their members.
#[async_trait]
pub trait ConversationStore: Send + Sync + 'static {
    // ---- conversations ----
    /// In one transaction: the conversation, its members (joined_seq 0, read_seq 1), and `first`
    /// as the entry with seq 1 (`last_seq` becomes 1). Returns the stored entry.
    async fn create_group(
        &self,
        conversation: &Conversation,
        members: &[Member],
        first: &Message,
    ) -> StoreResult<Message>;
    async fn conversation(&self, id: &ConversationId) -> StoreResult<Option<Conversation>>;
    /// The direct conversation of a pair, if one exists.
    async fn direct_conversation(&self, a: &UserId, b: &UserId) -> StoreResult<Option<Conversation>>;
    async fn member(&self, conversation: &ConversationId, user: &UserId) -> StoreResult<Option<Member>>;
    /// The conversation and `user`'s membership of it, when `user` is a member (whether or not
    /// the conversation is dissolved). The same as [`ConversationStore::conversation`] plus [`ConversationStore::member`];
    /// adapters answer it in one query because every conversation-scoped request asks it.
    async fn membership(
        &self,
        conversation: &ConversationId,
        user: &UserId,
    ) -> StoreResult<Option<(Conversation, Member)>> {
        let Some(member) = self.member(conversation, user).await? else { return Ok(None) };
        Ok(self.conversation(conversation).await?.map(|found| (found, member)))
    }
    /// Members ordered by role (owner, admins, members) then joined_at.
    async fn members(&self, conversation: &ConversationId) -> StoreResult<Vec<Member>>;
    async fn member_ids(&self, conversation: &ConversationId) -> StoreResult<Vec<UserId>>;
    /// In a direct conversation, the member who is not `me`, with the friendship and blocks
    /// between them (`None` when `me` is alone in it). One query in the adapters: every direct
    /// send asks it.
    async fn direct_peer(&self, conversation: &ConversationId, me: &UserId) -> StoreResult<Option<DirectPeer>>;
    /// What a send checks: [`ConversationStore::membership`], and for a direct conversation
    /// [`ConversationStore::direct_peer`] too (`None` for a group). One query in the adapters:
    /// it is every send's read.
    async fn send_context(
        &self,
        conversation: &ConversationId,
        me: &UserId,
    ) -> StoreResult<Option<(Conversation, Member, Option<DirectPeer>)>> {
        let Some((found, member)) = self.membership(conversation, me).await? else { return Ok(None) };
        let peer = match found.kind {
            ConversationKind::Direct => self.direct_peer(conversation, me).await?,
            ConversationKind::Group => None,
        };
        Ok(Some((found, member, peer)))
    }
    async fn member_count(&self, conversation: &ConversationId) -> StoreResult<u64>;
    /// The caller's conversations (not dissolved), newest activity (`updated_at`) first, each
    /// with unread count (entries after read_seq with a content kind and another sender), last
    /// content-or-system entry, member count and, for direct ones, the peer.
    async fn conversations_of(&self, user: &UserId) -> StoreResult<Vec<ConversationSummary>>;
    async fn summary(&self, conversation: &ConversationId, user: &UserId) -> StoreResult<Option<ConversationSummary>>;
    async fn set_muted(&self, conversation: &ConversationId, user: &UserId, muted: bool) -> StoreResult<()>;
}

/// Each conversation's log: appends (with their effects), reads by `seq`, read markers, and the
/// scans the search indexer rebuilds from.
#[async_trait]
pub trait LogStore: Send + Sync + 'static {
    // ---- messages ----
    /// See [`NewEntry`]. Bumps the conversation's `updated_at` to the entry's `created_at`.
    async fn append(&self, entry: NewEntry) -> StoreResult<AppendOutcome>;
    async fn message_by_client_id(&self, sender: &UserId, client_msg_id: &str) -> StoreResult<Option<Message>>;
    async fn message_at(&self, conversation: &ConversationId, seq: Seq) -> StoreResult<Option<Message>>;
    /// Entries with `seq > after` and `seq >= min_seq`, ascending, at most `limit`.
    async fn messages_after(
        &self,
        conversation: &ConversationId,
        after: Seq,
        min_seq: Seq,
        limit: u32,
    ) -> StoreResult<Vec<Message>>;
    /// Entries with `seq < before` and `seq >= min_seq`, newest first, at most `limit`.
    async fn messages_before(
        &self,
        conversation: &ConversationId,
        before: Seq,
        min_seq: Seq,
        limit: u32,
    ) -> StoreResult<Vec<Message>>;
    /// Moves the member's read marker forward to `seq` (never back, never past last_seq).
    /// Returns the marker in force and the unread count after the move.
    async fn mark_read(
        &self,
        conversation: &ConversationId,
        user: &UserId,
        seq: Seq,
    ) -> StoreResult<Option<(Seq, i64)>>;

    // ---- search (scopes and rebuilding the index) ----
    /// Every conversation `user` is a member of (not dissolved) with their `joined_seq`.
    async fn memberships_of(&self, user: &UserId) -> StoreResult<Vec<(ConversationId, Seq)>>;
    /// Log entries of every conversation in `(conversation_id, seq)` order, starting just after
    /// `after`, at most `limit`, in their current state (without reactions).
    async fn entries_page(&self, after: Option<(&ConversationId, Seq)>, limit: u32) -> StoreResult<Vec<Message>>;
    /// How many log entries exist, in every conversation.
    async fn entry_count(&self) -> StoreResult<u64>;
    /// Every conversation with at least one entry and its `last_seq`, in id order, starting just
    /// after `after`, at most `limit` (the search indexer compares them with its checkpoints).
    async fn conversation_heads(
        &self,
        after: Option<&ConversationId>,
        limit: u32,
    ) -> StoreResult<Vec<(ConversationId, Seq)>>;

    // ---- jobs ----
    /// Voice messages created at `since` or later that are neither transcribed nor recalled,
    /// oldest first, at most `limit` (without reactions): the transcriptions a crash may have
    /// taken with it.
    async fn untranscribed_voices(&self, since: Time, limit: u32) -> StoreResult<Vec<Message>>;
}

/// File records (the bytes are the blob store's).
#[async_trait]
pub trait FileStore: Send + Sync + 'static {
    // ---- files ----
    /// `Conflict("file")` when the id is taken.
    async fn create_file(&self, file: &FileRecord) -> StoreResult<()>;
    async fn file(&self, id: &FileId) -> StoreResult<Option<FileRecord>>;
    /// Bytes of every file `owner` uploaded (thumbnails the server made included).
    async fn storage_used(&self, owner: &UserId) -> StoreResult<i64>;
    /// Whether `user` may read file `id`: it (or the file it is the thumbnail of) was uploaded by
    /// `user`, is referenced by an entry `user` can see (member now, `seq >= joined_seq`), or is
    /// the avatar of a user or of a live conversation.
    async fn file_readable(&self, id: &FileId, user: &UserId) -> StoreResult<bool>;
    /// Removes the record; false when there was none. The blob is the caller's to delete.
    async fn delete_file(&self, id: &FileId) -> StoreResult<bool>;
}

/// Convenience for building entries: a message of `kind` with every optional part empty.
pub fn blank_message(
    conversation_id: ConversationId,
    sender_id: UserId,
    kind: MessageKind,
    created_at: Time,
) -> Message {
    Message {
        id: crate::ids::MessageId::generate(),
        conversation_id,
        seq: Seq::ZERO,
        sender_id,
        kind,
        client_msg_id: None,
        text: None,
        file_id: None,
        reply_to: None,
        mentions: Vec::new(),
        target_seq: None,
        emoji: None,
        op: None,
        system: None,
        edited_at: None,
        recalled: false,
        transcript: None,
        reactions: Vec::new(),
        file: None,
        created_at,
    }
}

/// A `system` entry.
pub fn system_message(conversation_id: ConversationId, event: SystemEvent, created_at: Time) -> Message {
    let sender = event.actor_id.clone();
    let mut message = blank_message(conversation_id, sender, MessageKind::System, created_at);
    message.system = Some(event);
    message
}

/// Every storage trait, for code that calls a concrete store's methods (`use store::prelude::*`).
pub mod prelude {
    pub use super::{AccountStore, ConversationStore, FileStore, LogStore, SocialStore, Store};
}
