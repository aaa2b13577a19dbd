//! natter's storage adapter: [`SqlStore`], the [`Store`] port over SQLite and PostgreSQL.
//!
//! Owns the schema (per-dialect migrations under `migrations/`, compiled in), the SQL, and the
//! conversion of rows into domain types. sqlx lives only here: no other crate may depend on it,
//! and this crate depends on no natter crate but natter-core and natter-proto.
//!
//! One implementation serves both databases through sqlx's `Any` driver with `$N` placeholders
//! and portable SQL. Ids are TEXT, times BIGINT unix milliseconds, flags 0/1 integers. On SQLite
//! (WAL) every write goes through a single-connection pool and reads through a pool of their
//! own; on PostgreSQL one pool does both.
//!
//! Architecture invariant: a `seq` is taken with `UPDATE conversations SET last_seq = last_seq
//! + 1 … RETURNING last_seq` inside the transaction that inserts the entry under
//! `UNIQUE(conversation_id, seq)`, so seqs are gap-free and never visible before commit.

mod conversations;
mod db;
mod effects;
mod files;
mod friends;
mod group_commit;
mod log_scan;
mod member_cache;
mod messages;
mod rows;
pub mod search;
mod sessions;
mod summaries;
mod users;

use std::sync::Arc;

use async_trait::async_trait;
use natter_core::ids::{ConversationId, FileId, FriendRequestId, Seq, SessionId, UserId};
use natter_core::model::{
    Conversation, ConversationSummary, FileRecord, Friend, FriendRequest, FriendRequestStatus, Member, Message,
    Session, Time, User,
};
use natter_core::store::prelude::*;
use natter_core::store::{
    AccountStore, AppendOutcome, ConversationStore, DirectPeer, Effect, FileStore, LogStore, NewEntry, NewUser,
    ProfileUpdate, RefreshOutcome, RequestDirection, SocialStore, StoreError, StoreResult,
};

use crate::db::Db;
use crate::member_cache::{MemberCache, VersionedMembers};

/// The SQL store. Cheap to clone (pools are shared handles).
#[derive(Clone)]
pub struct SqlStore {
    db: Db,
    /// SQLite: member ids of recently used conversations (see `member_cache`).
    members: Option<Arc<MemberCache>>,
    /// PostgreSQL: the same, checked against each conversation's `members_version`.
    versioned_members: Option<Arc<VersionedMembers>>,
}

impl SqlStore {
    /// Opens `sqlite://PATH` (created when missing) or `postgres://…` and runs the migrations.
    /// `max_connections` sizes the pool (on SQLite: the readers; writes use one connection).
    pub async fn connect(url: &str, max_connections: u32) -> Result<SqlStore, StoreError> {
        let db = Db::connect(url, max_connections).await?;
        let members = db.sqlite.then(Arc::default);
        let versioned_members = (!db.sqlite).then(Arc::default);
        Ok(SqlStore { db, members, versioned_members })
    }

    /// Closes every connection, waiting for checked-out ones to come back.
    pub async fn close(&self) {
        self.db.close().await;
    }
}

impl std::fmt::Debug for SqlStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlStore").finish_non_exhaustive()
    }
}

#[async_trait]
impl Store for SqlStore {
    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1").execute(&self.db.read).await.map_err(db::backend)?;
        Ok(())
    }
}

#[async_trait]
impl AccountStore for SqlStore {
    async fn create_user(&self, new: NewUser) -> StoreResult<User> {
        users::create_user(&self.db, new).await
    }
    async fn user(&self, id: &UserId) -> StoreResult<Option<User>> {
        users::user(&self.db, id).await
    }
    async fn user_by_username(&self, username: &str) -> StoreResult<Option<(User, String)>> {
        users::user_by_username(&self.db, username).await
    }
    async fn users(&self, ids: &[UserId]) -> StoreResult<Vec<User>> {
        users::users(&self.db, ids).await
    }
    async fn password_hash(&self, id: &UserId) -> StoreResult<Option<String>> {
        users::password_hash(&self.db, id).await
    }
    async fn update_profile(&self, id: &UserId, update: ProfileUpdate) -> StoreResult<Option<User>> {
        users::update_profile(&self.db, id, update).await
    }
    async fn set_password_hash(&self, id: &UserId, hash: &str) -> StoreResult<()> {
        users::set_password_hash(&self.db, id, hash).await
    }
    async fn search_users(&self, query: &str, limit: u32) -> StoreResult<Vec<User>> {
        users::search_users(&self.db, query, limit).await
    }

    async fn create_session(&self, session: &Session, refresh_hash: &str) -> StoreResult<()> {
        sessions::create_session(&self.db, session, refresh_hash).await
    }
    async fn session(&self, id: &SessionId) -> StoreResult<Option<Session>> {
        sessions::session(&self.db, id).await
    }
    async fn sessions_of(&self, user: &UserId, now: Time) -> StoreResult<Vec<Session>> {
        sessions::sessions_of(&self.db, user, now).await
    }
    async fn rotate_refresh_token(&self, old_hash: &str, new_hash: &str, now: Time) -> StoreResult<RefreshOutcome> {
        sessions::rotate_refresh_token(&self.db, old_hash, new_hash, now).await
    }
    async fn revoke_session(&self, user: &UserId, id: &SessionId) -> StoreResult<bool> {
        sessions::revoke_session(&self.db, user, id).await
    }
    async fn revoke_other_sessions(&self, user: &UserId, keep: Option<&SessionId>) -> StoreResult<()> {
        sessions::revoke_other_sessions(&self.db, user, keep).await
    }
}

#[async_trait]
impl SocialStore for SqlStore {
    async fn create_friend_request(&self, request: &FriendRequest) -> StoreResult<()> {
        friends::create_friend_request(&self.db, request).await
    }
    async fn friend_request(&self, id: &FriendRequestId) -> StoreResult<Option<FriendRequest>> {
        friends::friend_request(&self.db, id).await
    }
    async fn pending_request_between(&self, a: &UserId, b: &UserId) -> StoreResult<Option<FriendRequest>> {
        friends::pending_request_between(&self.db, a, b).await
    }
    async fn friend_requests_of(&self, user: &UserId, direction: RequestDirection) -> StoreResult<Vec<FriendRequest>> {
        friends::friend_requests_of(&self.db, user, direction).await
    }
    async fn close_friend_request(
        &self,
        id: &FriendRequestId,
        status: FriendRequestStatus,
        now: Time,
    ) -> StoreResult<Option<FriendRequest>> {
        friends::close_friend_request(&self.db, id, status, now).await
    }
    async fn accept_friend_request(
        &self,
        id: &FriendRequestId,
        new_conversation: &Conversation,
        now: Time,
    ) -> StoreResult<Option<(FriendRequest, ConversationId)>> {
        let accepted = friends::accept_friend_request(&self.db, id, new_conversation, now).await?;
        if let (Some(cache), Some((_, conversation))) = (&self.members, &accepted) {
            cache.invalidate(conversation);
        }
        Ok(accepted)
    }
    async fn are_friends(&self, a: &UserId, b: &UserId) -> StoreResult<bool> {
        friends::are_friends(&self.db, a, b).await
    }
    async fn friends_of(&self, user: &UserId) -> StoreResult<Vec<Friend>> {
        friends::friends_of(&self.db, user).await
    }
    async fn remove_friendship(&self, a: &UserId, b: &UserId) -> StoreResult<bool> {
        friends::remove_friendship(&self.db, a, b).await
    }
    async fn block_user(&self, blocker: &UserId, blocked: &UserId, now: Time) -> StoreResult<()> {
        friends::block_user(&self.db, blocker, blocked, now).await
    }
    async fn unblock_user(&self, blocker: &UserId, blocked: &UserId) -> StoreResult<bool> {
        friends::unblock_user(&self.db, blocker, blocked).await
    }
    async fn is_blocked_between(&self, a: &UserId, b: &UserId) -> StoreResult<bool> {
        friends::is_blocked_between(&self.db, a, b).await
    }
    async fn blocked_by(&self, blocker: &UserId) -> StoreResult<Vec<User>> {
        friends::blocked_by(&self.db, blocker).await
    }
}

#[async_trait]
impl ConversationStore for SqlStore {
    async fn create_group(
        &self,
        conversation: &Conversation,
        members: &[Member],
        first: &Message,
    ) -> StoreResult<Message> {
        conversations::create_group(&self.db, conversation, members, first).await
    }
    async fn conversation(&self, id: &ConversationId) -> StoreResult<Option<Conversation>> {
        conversations::conversation(&self.db, id).await
    }
    async fn direct_conversation(&self, a: &UserId, b: &UserId) -> StoreResult<Option<Conversation>> {
        conversations::direct_conversation(&self.db, a, b).await
    }
    async fn member(&self, conversation: &ConversationId, user: &UserId) -> StoreResult<Option<Member>> {
        conversations::member(&self.db, conversation, user).await
    }
    async fn membership(
        &self,
        conversation: &ConversationId,
        user: &UserId,
    ) -> StoreResult<Option<(Conversation, Member)>> {
        conversations::membership(&self.db, conversation, user).await
    }
    async fn members(&self, conversation: &ConversationId) -> StoreResult<Vec<Member>> {
        conversations::members(&self.db, conversation).await
    }
    async fn member_ids(&self, conversation: &ConversationId) -> StoreResult<Vec<UserId>> {
        if let Some(cache) = &self.versioned_members {
            let Some(version) = conversations::members_version(&self.db, conversation).await? else {
                return Ok(Vec::new());
            };
            if let Some(members) = cache.get(conversation, version) {
                return Ok(members);
            }
            let members = conversations::member_ids(&self.db, conversation).await?;
            cache.insert(conversation, version, &members);
            return Ok(members);
        }
        let Some(cache) = &self.members else { return conversations::member_ids(&self.db, conversation).await };
        if let Some(members) = cache.get(conversation) {
            return Ok(members);
        }
        let generation = cache.generation();
        let members = conversations::member_ids(&self.db, conversation).await?;
        cache.insert(conversation, &members, generation);
        Ok(members)
    }
    async fn direct_peer(&self, conversation: &ConversationId, me: &UserId) -> StoreResult<Option<DirectPeer>> {
        conversations::direct_peer(&self.db, conversation, me).await
    }
    async fn send_context(
        &self,
        conversation: &ConversationId,
        me: &UserId,
    ) -> StoreResult<Option<(Conversation, Member, Option<DirectPeer>)>> {
        conversations::send_context(&self.db, conversation, me).await
    }
    async fn member_count(&self, conversation: &ConversationId) -> StoreResult<u64> {
        conversations::member_count(&self.db, conversation).await
    }
    async fn conversations_of(&self, user: &UserId) -> StoreResult<Vec<ConversationSummary>> {
        summaries::conversations_of(&self.db, user).await
    }
    async fn summary(&self, conversation: &ConversationId, user: &UserId) -> StoreResult<Option<ConversationSummary>> {
        summaries::summary(&self.db, conversation, user).await
    }
    async fn set_muted(&self, conversation: &ConversationId, user: &UserId, muted: bool) -> StoreResult<()> {
        conversations::set_muted(&self.db, conversation, user, muted).await
    }
}

#[async_trait]
impl LogStore for SqlStore {
    async fn append(&self, entry: NewEntry) -> StoreResult<AppendOutcome> {
        let changes_members =
            matches!(entry.effect, Effect::AddMembers(_) | Effect::RemoveMember(_) | Effect::Dissolve);
        let conversation = entry.message.conversation_id.clone();
        let outcome = messages::append(&self.db, entry).await;
        if let (true, Some(cache)) = (changes_members, &self.members) {
            // Also after a failure: whether it committed is not known.
            cache.invalidate(&conversation);
        }
        outcome
    }
    async fn message_by_client_id(&self, sender: &UserId, client_msg_id: &str) -> StoreResult<Option<Message>> {
        messages::message_by_client_id(&self.db, sender, client_msg_id).await
    }
    async fn message_at(&self, conversation: &ConversationId, seq: Seq) -> StoreResult<Option<Message>> {
        messages::message_at(&self.db, conversation, seq).await
    }
    async fn messages_after(
        &self,
        conversation: &ConversationId,
        after: Seq,
        min_seq: Seq,
        limit: u32,
    ) -> StoreResult<Vec<Message>> {
        messages::messages_after(&self.db, conversation, after, min_seq, limit).await
    }
    async fn messages_before(
        &self,
        conversation: &ConversationId,
        before: Seq,
        min_seq: Seq,
        limit: u32,
    ) -> StoreResult<Vec<Message>> {
        messages::messages_before(&self.db, conversation, before, min_seq, limit).await
    }
    async fn mark_read(
        &self,
        conversation: &ConversationId,
        user: &UserId,
        seq: Seq,
    ) -> StoreResult<Option<(Seq, i64)>> {
        messages::mark_read(&self.db, conversation, user, seq).await
    }

    async fn memberships_of(&self, user: &UserId) -> StoreResult<Vec<(ConversationId, Seq)>> {
        log_scan::memberships_of(&self.db, user).await
    }
    async fn entries_page(&self, after: Option<(&ConversationId, Seq)>, limit: u32) -> StoreResult<Vec<Message>> {
        log_scan::entries_page(&self.db, after, limit).await
    }
    async fn entry_count(&self) -> StoreResult<u64> {
        log_scan::entry_count(&self.db).await
    }
    async fn conversation_heads(
        &self,
        after: Option<&ConversationId>,
        limit: u32,
    ) -> StoreResult<Vec<(ConversationId, Seq)>> {
        log_scan::conversation_heads(&self.db, after, limit).await
    }
    async fn untranscribed_voices(&self, since: Time, limit: u32) -> StoreResult<Vec<Message>> {
        log_scan::untranscribed_voices(&self.db, since, limit).await
    }
}

#[async_trait]
impl FileStore for SqlStore {
    async fn create_file(&self, file: &FileRecord) -> StoreResult<()> {
        files::create_file(&self.db, file).await
    }
    async fn file(&self, id: &FileId) -> StoreResult<Option<FileRecord>> {
        files::file(&self.db, id).await
    }
    async fn storage_used(&self, owner: &UserId) -> StoreResult<i64> {
        files::storage_used(&self.db, owner).await
    }
    async fn file_readable(&self, id: &FileId, user: &UserId) -> StoreResult<bool> {
        files::file_readable(&self.db, id, user).await
    }
    async fn delete_file(&self, id: &FileId) -> StoreResult<bool> {
        files::delete_file(&self.db, id).await
    }
}
