//! The service interfaces the gateway holds: what an HTTP handler or a WebSocket task may ask of
//! the chat services, and nothing else (no `Deps`, no store).
//!
//! Two implementations: [`Api::local`] calls the services in this process (`natter serve` with
//! the `chat` role beside the `gateway` role, no network hop), and natter-rpc's client calls a
//! chat node over gRPC. Method names and arguments follow the services', so a handler reads the
//! same either way.

use std::net::IpAddr;
use std::ops::Range;
use std::sync::Arc;

use async_trait::async_trait;

use crate::blob::ByteStream;
use crate::error::{DomainError, DomainResult, ErrorCode};
use crate::ids::{ConversationId, FileId, FriendRequestId, Seq, SessionId, UserId};
use crate::model::{ConversationSummary, FileRecord, Friend, Member, MemberRole, Message, Session, User};
use crate::service::Services;
use crate::service::accounts::{AuthContext, Tokens};
use crate::service::conversations::{ConversationChange, NewGroup};
use crate::service::files::{FileLimits, Readable, Upload};
use crate::service::friends::FriendRequestDetail;
use crate::service::messages::{Page, SendInput, Sent};
use crate::service::search::{Found, SearchInput};
use crate::service::speech::Transcription;
use crate::service::users::ProfileChange;
use crate::store::RequestDirection;

/// What a gateway's chat client reports to the process's metrics about the sends it batches
/// (the gateway crate's registry implements it; core keeps no metrics library).
pub trait SendBatchMetrics: Send + Sync + 'static {
    /// A `SendMany` call answered `sends` sends.
    fn batch_sent(&self, sends: usize);
    /// A `SendMany` call failed as a whole; its `sends` went one by one.
    fn batch_failed(&self, sends: usize);
}

#[async_trait]
pub trait AccountsApi: Send + Sync {
    async fn register(
        &self,
        username: &str,
        password: &str,
        nickname: Option<&str>,
        device_name: Option<&str>,
        client: Option<IpAddr>,
    ) -> DomainResult<Tokens>;
    async fn login(
        &self,
        username: &str,
        password: &str,
        device_name: Option<&str>,
        client: Option<IpAddr>,
    ) -> DomainResult<Tokens>;
    async fn refresh(&self, refresh_token: &str) -> DomainResult<Tokens>;
    /// The caller behind an access token of a live session.
    async fn authenticate(&self, access_token: &str) -> DomainResult<AuthContext>;
    async fn logout(&self, ctx: &AuthContext) -> DomainResult<()>;
    async fn sessions(&self, ctx: &AuthContext) -> DomainResult<Vec<Session>>;
    async fn revoke_session(&self, ctx: &AuthContext, id: &SessionId) -> DomainResult<()>;
    async fn change_password(&self, ctx: &AuthContext, old: &str, new: &str) -> DomainResult<()>;
}

#[async_trait]
pub trait UsersApi: Send + Sync {
    async fn get(&self, id: &UserId) -> DomainResult<User>;
    async fn update_profile(&self, id: &UserId, change: ProfileChange) -> DomainResult<User>;
    async fn search(&self, query: &str, limit: Option<u32>) -> DomainResult<Vec<User>>;
}

#[async_trait]
pub trait FriendsApi: Send + Sync {
    async fn send_request(&self, me: &UserId, to: &UserId, message: Option<&str>) -> DomainResult<FriendRequestDetail>;
    async fn requests(&self, me: &UserId, direction: RequestDirection) -> DomainResult<Vec<FriendRequestDetail>>;
    async fn accept(
        &self,
        me: &UserId,
        id: &FriendRequestId,
    ) -> DomainResult<(FriendRequestDetail, ConversationSummary)>;
    async fn reject(&self, me: &UserId, id: &FriendRequestId) -> DomainResult<FriendRequestDetail>;
    async fn cancel(&self, me: &UserId, id: &FriendRequestId) -> DomainResult<FriendRequestDetail>;
    async fn friends(&self, me: &UserId) -> DomainResult<Vec<Friend>>;
    async fn remove(&self, me: &UserId, other: &UserId) -> DomainResult<()>;
    async fn block(&self, me: &UserId, other: &UserId) -> DomainResult<()>;
    async fn unblock(&self, me: &UserId, other: &UserId) -> DomainResult<()>;
    async fn blocked(&self, me: &UserId) -> DomainResult<Vec<User>>;
}

#[async_trait]
pub trait ConversationsApi: Send + Sync {
    async fn list(&self, me: &UserId) -> DomainResult<Vec<ConversationSummary>>;
    async fn get(&self, me: &UserId, id: &ConversationId) -> DomainResult<ConversationSummary>;
    async fn create_group(&self, me: &UserId, group: NewGroup) -> DomainResult<ConversationSummary>;
    async fn update(
        &self,
        me: &UserId,
        id: &ConversationId,
        change: ConversationChange,
    ) -> DomainResult<ConversationSummary>;
    async fn dissolve(&self, me: &UserId, id: &ConversationId) -> DomainResult<()>;
    async fn members(&self, me: &UserId, id: &ConversationId) -> DomainResult<Vec<(Member, User)>>;
    async fn add_members(
        &self,
        me: &UserId,
        id: &ConversationId,
        user_ids: Vec<UserId>,
    ) -> DomainResult<Vec<(Member, User)>>;
    async fn set_role(&self, me: &UserId, id: &ConversationId, target: &UserId, role: MemberRole) -> DomainResult<()>;
    async fn remove_member(&self, me: &UserId, id: &ConversationId, target: &UserId) -> DomainResult<()>;
}

#[async_trait]
pub trait MessagesApi: Send + Sync {
    /// Sends (see `Services::send_message`: a new voice message is queued for transcription).
    /// Idempotent by `input.client_msg_id`: a resend answers the original entry.
    async fn send(&self, me: &UserId, conversation_id: &ConversationId, input: SendInput) -> DomainResult<Sent>;
    async fn history(
        &self,
        me: &UserId,
        conversation_id: &ConversationId,
        page: Page,
        limit: Option<u32>,
    ) -> DomainResult<(Vec<Message>, bool)>;
    async fn mark_read(&self, me: &UserId, conversation_id: &ConversationId, seq: Seq) -> DomainResult<(Seq, i64)>;
    async fn edit(&self, me: &UserId, conversation_id: &ConversationId, seq: Seq, text: &str) -> DomainResult<Message>;
    async fn recall(&self, me: &UserId, conversation_id: &ConversationId, seq: Seq) -> DomainResult<Message>;
    async fn react(
        &self,
        me: &UserId,
        conversation_id: &ConversationId,
        seq: Seq,
        emoji: &str,
        add: bool,
    ) -> DomainResult<Message>;
    async fn typing(&self, me: &UserId, conversation_id: &ConversationId) -> DomainResult<()>;
}

#[async_trait]
pub trait FilesApi: Send + Sync {
    /// Upload limits (the gateway sizes its body limit from them).
    fn limits(&self) -> FileLimits;
    async fn upload(&self, me: &UserId, upload: Upload<'_>) -> DomainResult<FileRecord>;
    async fn readable(&self, me: &UserId, id: &FileId) -> DomainResult<Readable>;
    async fn thumbnail(&self, me: &UserId, id: &FileId) -> DomainResult<Readable>;
    async fn stream(&self, file: &Readable, range: Option<Range<u64>>) -> DomainResult<ByteStream<'static>>;
}

#[async_trait]
pub trait SearchApi: Send + Sync {
    async fn messages(&self, me: &UserId, input: SearchInput) -> DomainResult<Found>;
}

#[async_trait]
pub trait SpeechApi: Send + Sync {
    /// Largest audio a transcription accepts, in bytes.
    fn max_audio_bytes(&self) -> usize;
    /// `speech_unavailable` when no engine is configured.
    async fn check_available(&self) -> DomainResult<()>;
    async fn transcribe(&self, audio: Vec<u8>) -> DomainResult<Transcription>;
    /// Transcribes a file the caller may read (413 `audio_too_large` past the limit).
    async fn transcribe_file(&self, me: &UserId, file_id: &FileId) -> DomainResult<Transcription>;
}

/// What `/readyz` reports about the chat side.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ChatHealth {
    /// The database answers.
    pub database: bool,
}

#[async_trait]
pub trait HealthApi: Send + Sync {
    async fn health(&self) -> DomainResult<ChatHealth>;
}

/// Every interface, as the gateway holds them.
#[derive(Clone)]
pub struct Api {
    pub accounts: Arc<dyn AccountsApi>,
    pub users: Arc<dyn UsersApi>,
    pub friends: Arc<dyn FriendsApi>,
    pub conversations: Arc<dyn ConversationsApi>,
    pub messages: Arc<dyn MessagesApi>,
    pub files: Arc<dyn FilesApi>,
    pub search: Arc<dyn SearchApi>,
    pub speech: Arc<dyn SpeechApi>,
    pub health: Arc<dyn HealthApi>,
}

impl Api {
    /// The services of this process, called directly.
    pub fn local(services: Arc<Services>) -> Self {
        Self::from_one(Arc::new(Local(services)))
    }

    /// Every interface from one value that implements them all (a gRPC client does).
    pub fn from_one<T>(all: Arc<T>) -> Self
    where
        T: AccountsApi
            + UsersApi
            + FriendsApi
            + ConversationsApi
            + MessagesApi
            + FilesApi
            + SearchApi
            + SpeechApi
            + HealthApi
            + 'static,
    {
        Self {
            accounts: all.clone(),
            users: all.clone(),
            friends: all.clone(),
            conversations: all.clone(),
            messages: all.clone(),
            files: all.clone(),
            search: all.clone(),
            speech: all.clone(),
            health: all,
        }
    }
}

/// The in-process implementation: each method is the service's own.
pub struct Local(pub Arc<Services>);

#[async_trait]
impl AccountsApi for Local {
    async fn register(
        &self,
        username: &str,
        password: &str,
        nickname: Option<&str>,
        device_name: Option<&str>,
        client: Option<IpAddr>,
    ) -> DomainResult<Tokens> {
        self.0.accounts.register(username, password, nickname, device_name, client).await
    }
    async fn login(
        &self,
        username: &str,
        password: &str,
        device_name: Option<&str>,
        client: Option<IpAddr>,
    ) -> DomainResult<Tokens> {
        self.0.accounts.login(username, password, device_name, client).await
    }
    async fn refresh(&self, refresh_token: &str) -> DomainResult<Tokens> {
        self.0.accounts.refresh(refresh_token).await
    }
    async fn authenticate(&self, access_token: &str) -> DomainResult<AuthContext> {
        self.0.accounts.authenticate(access_token).await
    }
    async fn logout(&self, ctx: &AuthContext) -> DomainResult<()> {
        self.0.accounts.logout(ctx).await
    }
    async fn sessions(&self, ctx: &AuthContext) -> DomainResult<Vec<Session>> {
        self.0.accounts.sessions(ctx).await
    }
    async fn revoke_session(&self, ctx: &AuthContext, id: &SessionId) -> DomainResult<()> {
        self.0.accounts.revoke_session(ctx, id).await
    }
    async fn change_password(&self, ctx: &AuthContext, old: &str, new: &str) -> DomainResult<()> {
        self.0.accounts.change_password(ctx, old, new).await
    }
}

#[async_trait]
impl UsersApi for Local {
    async fn get(&self, id: &UserId) -> DomainResult<User> {
        self.0.users.get(id).await
    }
    async fn update_profile(&self, id: &UserId, change: ProfileChange) -> DomainResult<User> {
        self.0.users.update_profile(id, change).await
    }
    async fn search(&self, query: &str, limit: Option<u32>) -> DomainResult<Vec<User>> {
        self.0.users.search(query, limit).await
    }
}

#[async_trait]
impl FriendsApi for Local {
    async fn send_request(&self, me: &UserId, to: &UserId, message: Option<&str>) -> DomainResult<FriendRequestDetail> {
        self.0.friends.send_request(me, to, message).await
    }
    async fn requests(&self, me: &UserId, direction: RequestDirection) -> DomainResult<Vec<FriendRequestDetail>> {
        self.0.friends.requests(me, direction).await
    }
    async fn accept(
        &self,
        me: &UserId,
        id: &FriendRequestId,
    ) -> DomainResult<(FriendRequestDetail, ConversationSummary)> {
        self.0.friends.accept(me, id).await
    }
    async fn reject(&self, me: &UserId, id: &FriendRequestId) -> DomainResult<FriendRequestDetail> {
        self.0.friends.reject(me, id).await
    }
    async fn cancel(&self, me: &UserId, id: &FriendRequestId) -> DomainResult<FriendRequestDetail> {
        self.0.friends.cancel(me, id).await
    }
    async fn friends(&self, me: &UserId) -> DomainResult<Vec<Friend>> {
        self.0.friends.friends(me).await
    }
    async fn remove(&self, me: &UserId, other: &UserId) -> DomainResult<()> {
        self.0.friends.remove(me, other).await
    }
    async fn block(&self, me: &UserId, other: &UserId) -> DomainResult<()> {
        self.0.friends.block(me, other).await
    }
    async fn unblock(&self, me: &UserId, other: &UserId) -> DomainResult<()> {
        self.0.friends.unblock(me, other).await
    }
    async fn blocked(&self, me: &UserId) -> DomainResult<Vec<User>> {
        self.0.friends.blocked(me).await
    }
}

#[async_trait]
impl ConversationsApi for Local {
    async fn list(&self, me: &UserId) -> DomainResult<Vec<ConversationSummary>> {
        self.0.conversations.list(me).await
    }
    async fn get(&self, me: &UserId, id: &ConversationId) -> DomainResult<ConversationSummary> {
        self.0.conversations.get(me, id).await
    }
    async fn create_group(&self, me: &UserId, group: NewGroup) -> DomainResult<ConversationSummary> {
        self.0.conversations.create_group(me, group).await
    }
    async fn update(
        &self,
        me: &UserId,
        id: &ConversationId,
        change: ConversationChange,
    ) -> DomainResult<ConversationSummary> {
        self.0.conversations.update(me, id, change).await
    }
    async fn dissolve(&self, me: &UserId, id: &ConversationId) -> DomainResult<()> {
        self.0.conversations.dissolve(me, id).await
    }
    async fn members(&self, me: &UserId, id: &ConversationId) -> DomainResult<Vec<(Member, User)>> {
        self.0.conversations.members(me, id).await
    }
    async fn add_members(
        &self,
        me: &UserId,
        id: &ConversationId,
        user_ids: Vec<UserId>,
    ) -> DomainResult<Vec<(Member, User)>> {
        self.0.conversations.add_members(me, id, user_ids).await
    }
    async fn set_role(&self, me: &UserId, id: &ConversationId, target: &UserId, role: MemberRole) -> DomainResult<()> {
        self.0.conversations.set_role(me, id, target, role).await
    }
    async fn remove_member(&self, me: &UserId, id: &ConversationId, target: &UserId) -> DomainResult<()> {
        self.0.conversations.remove_member(me, id, target).await
    }
}

#[async_trait]
impl MessagesApi for Local {
    async fn send(&self, me: &UserId, conversation_id: &ConversationId, input: SendInput) -> DomainResult<Sent> {
        self.0.send_message(me, conversation_id, input).await
    }
    async fn history(
        &self,
        me: &UserId,
        conversation_id: &ConversationId,
        page: Page,
        limit: Option<u32>,
    ) -> DomainResult<(Vec<Message>, bool)> {
        self.0.messages.history(me, conversation_id, page, limit).await
    }
    async fn mark_read(&self, me: &UserId, conversation_id: &ConversationId, seq: Seq) -> DomainResult<(Seq, i64)> {
        self.0.messages.mark_read(me, conversation_id, seq).await
    }
    async fn edit(&self, me: &UserId, conversation_id: &ConversationId, seq: Seq, text: &str) -> DomainResult<Message> {
        self.0.messages.edit(me, conversation_id, seq, text).await
    }
    async fn recall(&self, me: &UserId, conversation_id: &ConversationId, seq: Seq) -> DomainResult<Message> {
        self.0.messages.recall(me, conversation_id, seq).await
    }
    async fn react(
        &self,
        me: &UserId,
        conversation_id: &ConversationId,
        seq: Seq,
        emoji: &str,
        add: bool,
    ) -> DomainResult<Message> {
        self.0.messages.react(me, conversation_id, seq, emoji, add).await
    }
    async fn typing(&self, me: &UserId, conversation_id: &ConversationId) -> DomainResult<()> {
        self.0.messages.typing(me, conversation_id).await
    }
}

#[async_trait]
impl FilesApi for Local {
    fn limits(&self) -> FileLimits {
        self.0.files.limits().clone()
    }
    async fn upload(&self, me: &UserId, upload: Upload<'_>) -> DomainResult<FileRecord> {
        self.0.files.upload(me, upload).await
    }
    async fn readable(&self, me: &UserId, id: &FileId) -> DomainResult<Readable> {
        self.0.files.readable(me, id).await
    }
    async fn thumbnail(&self, me: &UserId, id: &FileId) -> DomainResult<Readable> {
        self.0.files.thumbnail(me, id).await
    }
    async fn stream(&self, file: &Readable, range: Option<Range<u64>>) -> DomainResult<ByteStream<'static>> {
        self.0.files.stream(file, range).await
    }
}

#[async_trait]
impl SearchApi for Local {
    async fn messages(&self, me: &UserId, input: SearchInput) -> DomainResult<Found> {
        self.0.search.messages(me, input).await
    }
}

#[async_trait]
impl SpeechApi for Local {
    fn max_audio_bytes(&self) -> usize {
        self.0.speech.max_audio_bytes()
    }
    async fn check_available(&self) -> DomainResult<()> {
        self.0.speech.check_available()
    }
    async fn transcribe(&self, audio: Vec<u8>) -> DomainResult<Transcription> {
        self.0.speech.transcribe(audio).await
    }
    async fn transcribe_file(&self, me: &UserId, file_id: &FileId) -> DomainResult<Transcription> {
        let speech = &self.0.speech;
        // No engine: say so before reading the file for nothing.
        speech.check_available()?;
        let files = &self.0.files;
        let file = files.readable(me, file_id).await?;
        let max = speech.max_audio_bytes();
        if file.record().size > max as i64 {
            return Err(DomainError::too_large(ErrorCode::AudioTooLarge, format!("audio must be at most {max} bytes")));
        }
        let audio = files.read_all(&file, max as u64).await?;
        speech.transcribe(audio.to_vec()).await
    }
}

#[async_trait]
impl HealthApi for Local {
    async fn health(&self) -> DomainResult<ChatHealth> {
        Ok(ChatHealth { database: self.0.deps.store.ping().await.is_ok() })
    }
}
