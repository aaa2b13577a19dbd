//! The gateway's side: [`ChatClient`] implements every interface of `natter_core::api` by
//! calling chat nodes over gRPC.
//!
//! Chat nodes come from a live address list (discovery: etcd, DNS or a static list). Sends go to
//! their conversation's node (rendezvous hashing), so one node appends all of a conversation's
//! entries under its in-process lock instead of two nodes waiting on the conversation's row; other
//! calls are spread round-robin over the nodes. A node that fails at the transport level (refused, reset,
//! timed out) is set aside for [`SET_ASIDE`] and the call goes to the next one when that is safe:
//! always when the request never reached the node (the connection was refused), and for
//! idempotent methods also when it failed in flight (reads; sends, which are idempotent by
//! `client_msg_id`). An answer that carries a domain error is the answer: it is never retried.

use std::net::IpAddr;
use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt};
use natter_core::api::{
    AccountsApi, ChatHealth, ConversationsApi, FilesApi, FriendsApi, HealthApi, MessagesApi, SearchApi,
    SendBatchMetrics, SpeechApi, UsersApi,
};
use natter_core::blob::{BlobError, ByteStream};
use natter_core::error::{DomainError, DomainResult, ErrorCode};
use natter_core::ids::{ConversationId, FileId, FriendRequestId, Seq, SessionId, UserId};
use natter_core::model::{ConversationSummary, FileRecord, Friend, Member, MemberRole, Message, Session, User};
use natter_core::service::accounts::{AuthContext, Tokens};
use natter_core::service::conversations::{ConversationChange, NewGroup};
use natter_core::service::files::{FileLimits, Grant, Readable, Upload};
use natter_core::service::friends::FriendRequestDetail;
use natter_core::service::messages::{Page, SendInput, Sent};
use natter_core::service::search::{Found, SearchInput};
use natter_core::service::speech::Transcription;
use natter_core::service::users::ProfileChange;
use natter_core::store::RequestDirection;
use parking_lot::RwLock;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::{Semaphore, mpsc, oneshot, watch};
use tonic::transport::{Channel, Endpoint};
use tonic::{Request, Status};

use crate::codec::BytesCodec;
use crate::server::{MAX_MESSAGE_BYTES, MAX_SEND_BATCH, SERVICE};
use crate::wire::{self, WireError, decode, domain_error, encode};

/// How long a node that failed at the transport level is passed over.
pub const SET_ASIDE: Duration = Duration::from_secs(3);

/// Settings of the client.
#[derive(Debug, Clone)]
pub struct ClientSettings {
    /// Deadline of an ordinary call.
    pub timeout: Duration,
    /// Deadline of a transcription (the audio is decoded and transcribed during the call).
    pub transcribe_timeout: Duration,
    /// Upload limits (the gateway's body limit is sized from them before any node answers).
    pub file_limits: FileLimits,
    /// Largest audio a transcription takes.
    pub max_audio_bytes: usize,
}

impl Default for ClientSettings {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(30),
            transcribe_timeout: Duration::from_secs(300),
            file_limits: FileLimits::default(),
            max_audio_bytes: 25 * 1024 * 1024,
        }
    }
}

/// Whether a call may be sent again after it failed in flight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Retry {
    /// Reads, and writes that are idempotent (a send carries its `client_msg_id`).
    Idempotent,
    /// Only when the request never left (the connection was refused).
    IfNotSent,
}
use Retry::{Idempotent, IfNotSent};

struct Node {
    address: String,
    channel: Channel,
    set_aside_until: parking_lot::Mutex<Option<Instant>>,
}

impl Node {
    fn new(address: &str) -> Result<Self, tonic::transport::Error> {
        let uri = if address.contains("://") { address.to_owned() } else { format!("http://{address}") };
        let channel = Endpoint::from_shared(uri)?
            .connect_timeout(Duration::from_secs(1))
            .tcp_nodelay(true)
            // A node that vanishes without closing its connections (a dead host) is noticed by
            // the keepalive ping, not only by the next request's deadline.
            .http2_keep_alive_interval(Duration::from_secs(1))
            .keep_alive_timeout(Duration::from_secs(2))
            .keep_alive_while_idle(true)
            .connect_lazy();
        Ok(Self { address: address.to_owned(), channel, set_aside_until: parking_lot::Mutex::new(None) })
    }

    fn available(&self, now: Instant) -> bool {
        self.set_aside_until.lock().is_none_or(|until| until <= now)
    }
}

/// The live chat nodes.
#[derive(Default)]
struct Pool {
    nodes: RwLock<Vec<Arc<Node>>>,
    next: AtomicUsize,
}

impl Pool {
    /// Replaces the node list, keeping the connections of nodes that stay.
    fn update(&self, addresses: &[String]) {
        let mut nodes = self.nodes.write();
        let mut kept = Vec::with_capacity(addresses.len());
        for address in addresses {
            if let Some(node) = nodes.iter().find(|n| &n.address == address) {
                kept.push(node.clone());
            } else {
                match Node::new(address) {
                    Ok(node) => kept.push(Arc::new(node)),
                    Err(error) => tracing::warn!(%address, %error, "ignoring a chat node with a bad address"),
                }
            }
        }
        if kept.iter().map(|n| &n.address).ne(nodes.iter().map(|n| &n.address)) {
            tracing::info!(nodes = ?kept.iter().map(|n| n.address.as_str()).collect::<Vec<_>>(), "chat nodes");
        }
        *nodes = kept;
    }

    /// The next node round-robin, preferring those not set aside; `skip` lists nodes already tried.
    fn pick(&self, skip: &[String]) -> Option<Arc<Node>> {
        let nodes = self.nodes.read();
        if nodes.is_empty() {
            return None;
        }
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let now = Instant::now();
        let candidates = (0..nodes.len()).map(|i| &nodes[(start + i) % nodes.len()]);
        let untried: Vec<&Arc<Node>> = candidates.filter(|n| !skip.contains(&n.address)).collect();
        untried.iter().find(|n| n.available(now)).or_else(|| untried.first()).map(|n| Arc::clone(n))
    }

    /// The node a conversation's sends go to while it is available (rendezvous hashing over the
    /// live nodes, so a node joining or leaving moves only its share of conversations); else the
    /// next node round-robin.
    fn pick_for(&self, conversation: &ConversationId) -> Option<Arc<Node>> {
        let now = Instant::now();
        let preferred = {
            let nodes = self.nodes.read();
            nodes
                .iter()
                .max_by_key(|node| {
                    let mut hasher = std::hash::DefaultHasher::new();
                    std::hash::Hash::hash(&(node.address.as_str(), conversation.as_str()), &mut hasher);
                    std::hash::Hasher::finish(&hasher)
                })
                .cloned()
        };
        preferred.filter(|node| node.available(now)).or_else(|| self.pick(&[]))
    }

    fn len(&self) -> usize {
        self.nodes.read().len()
    }
}

/// Calls chat nodes; see the module docs.
#[derive(Clone)]
pub struct ChatClient {
    pool: Arc<Pool>,
    settings: Arc<ClientSettings>,
    /// Where sends queue to go out in batches (`None` in the batching task's own copy).
    sends: Option<mpsc::Sender<QueuedSend>>,
    metrics: Arc<std::sync::OnceLock<Arc<dyn SendBatchMetrics>>>,
}

/// Batches of sends in flight at once; while all are out, sends queue and the next batch grows.
const SEND_BATCHES_IN_FLIGHT: usize = 8;

struct QueuedSend {
    me: UserId,
    conversation: ConversationId,
    input: SendInput,
    reply: oneshot::Sender<DomainResult<Sent>>,
}

/// Sends from all of a gateway's sockets go to chat nodes in batches: one `SendMany` call carries
/// whatever queued while the earlier batches were out, so under load a send costs a share of
/// one round trip (and of the chat node's wake-ups) instead of a call of its own, and when idle a
/// send goes out at once, alone, as `Send`. Each socket still waits for its own send's answer
/// before its next frame, so one socket's sends never share a batch and keep their order.
async fn send_batches(client: ChatClient, mut queue: mpsc::Receiver<QueuedSend>) {
    let slots = Arc::new(Semaphore::new(SEND_BATCHES_IN_FLIGHT));
    loop {
        let Ok(slot) = slots.clone().acquire_owned().await else { return };
        let mut batch = Vec::with_capacity(MAX_SEND_BATCH);
        if queue.recv_many(&mut batch, MAX_SEND_BATCH).await == 0 {
            return;
        }
        let client = client.clone();
        tokio::spawn(async move {
            client.send_batch(batch).await;
            drop(slot);
        });
    }
}

impl ChatClient {
    /// A client over the addresses `nodes` lists now and later (`host:port` or a URL).
    pub fn new(mut nodes: watch::Receiver<Vec<String>>, settings: ClientSettings) -> Self {
        let pool = Arc::new(Pool::default());
        pool.update(&nodes.borrow_and_update());
        let weak = Arc::downgrade(&pool);
        tokio::spawn(async move {
            while nodes.changed().await.is_ok() {
                let Some(pool) = weak.upgrade() else { break };
                pool.update(&nodes.borrow_and_update());
            }
        });
        let client = Self { pool, settings: Arc::new(settings), sends: None, metrics: Arc::default() };
        let (sends, queue) = mpsc::channel(4 * SEND_BATCHES_IN_FLIGHT * MAX_SEND_BATCH);
        tokio::spawn(send_batches(client.clone(), queue));
        Self { sends: Some(sends), ..client }
    }

    /// Where the batching of sends is counted (once; later calls are ignored).
    pub fn report_to(&self, metrics: Arc<dyn SendBatchMetrics>) {
        let _ = self.metrics.set(metrics);
    }

    async fn send_one(&self, me: &UserId, conversation_id: &ConversationId, input: &SendInput) -> DomainResult<Sent> {
        // Idempotent by `client_msg_id`: a retried send answers the entry the first one stored.
        let node = self.pool.pick_for(conversation_id);
        self.call_on(node, "Send", Idempotent, &(me, conversation_id, input)).await
    }

    async fn call_on<A: Serialize + Sync, R: DeserializeOwned>(
        &self,
        node: Option<Arc<Node>>,
        method: &'static str,
        retry: Retry,
        args: &A,
    ) -> DomainResult<R> {
        let body = encode(args).map_err(|status| wire::unreachable(status.message()))?;
        let answer = self.unary_on(node, method, retry, body, self.settings.timeout).await?;
        decode(&answer).map_err(|status| wire::unreachable(status.message()))
    }

    /// Sends a batch as one `SendMany` per chat node its conversations go to.
    async fn send_batch(&self, batch: Vec<QueuedSend>) {
        let mut per_node: Vec<(Option<Arc<Node>>, Vec<QueuedSend>)> = Vec::new();
        for queued in batch {
            let node = self.pool.pick_for(&queued.conversation);
            let address = node.as_ref().map(|node| node.address.clone());
            match per_node.iter_mut().find(|(n, _)| n.as_ref().map(|n| &n.address) == address.as_ref()) {
                Some((_, sends)) => sends.push(queued),
                None => per_node.push((node, vec![queued])),
            }
        }
        futures_util::future::join_all(per_node.into_iter().map(|(node, sends)| self.send_batch_to(node, sends))).await;
    }

    async fn send_batch_to(&self, node: Option<Arc<Node>>, batch: Vec<QueuedSend>) {
        if let [one] = batch.as_slice() {
            let answer = self.send_one(&one.me, &one.conversation, &one.input).await;
            if let Some(one) = batch.into_iter().next() {
                let _ = one.reply.send(answer);
            }
            return;
        }
        let sends: Vec<(&UserId, &ConversationId, &SendInput)> =
            batch.iter().map(|queued| (&queued.me, &queued.conversation, &queued.input)).collect();
        match self.call_on::<_, Vec<Result<Sent, WireError>>>(node, "SendMany", Idempotent, &(sends,)).await {
            Ok(answers) if answers.len() == batch.len() => {
                if let Some(metrics) = self.metrics.get() {
                    metrics.batch_sent(batch.len());
                }
                for (queued, answer) in batch.into_iter().zip(answers) {
                    let _ = queued.reply.send(answer.map_err(DomainError::from));
                }
            }
            // No node took the batch (or one answered it wrongly, e.g. a node from before
            // `SendMany`): each send goes alone, with its own retries; sends are idempotent.
            outcome => {
                if let Err(error) = &outcome {
                    tracing::warn!(%error, sends = batch.len(), "a batch of sends failed; sending them one by one");
                }
                if let Some(metrics) = self.metrics.get() {
                    metrics.batch_failed(batch.len());
                }
                futures_util::future::join_all(batch.into_iter().map(|queued| async move {
                    let answer = self.send_one(&queued.me, &queued.conversation, &queued.input).await;
                    let _ = queued.reply.send(answer);
                }))
                .await;
            }
        }
    }

    /// A client over a fixed list of addresses.
    pub fn fixed(nodes: Vec<String>, settings: ClientSettings) -> Self {
        let (sender, receiver) = watch::channel(nodes);
        // No updates will come: with the sender gone, the task `new` starts ends at once, and the
        // pool keeps the list it was given.
        drop(sender);
        Self::new(receiver, settings)
    }

    async fn call<A: Serialize + Sync, R: DeserializeOwned>(
        &self,
        method: &'static str,
        retry: Retry,
        args: &A,
    ) -> DomainResult<R> {
        self.call_on(None, method, retry, args).await
    }

    async fn unary(&self, method: &'static str, retry: Retry, body: Bytes, timeout: Duration) -> DomainResult<Bytes> {
        self.unary_on(None, method, retry, body, timeout).await
    }

    /// [`Self::unary`], trying `first` before the others.
    async fn unary_on(
        &self,
        mut first: Option<Arc<Node>>,
        method: &'static str,
        retry: Retry,
        body: Bytes,
        timeout: Duration,
    ) -> DomainResult<Bytes> {
        let path: http::uri::PathAndQuery =
            format!("/{SERVICE}/{method}").parse().map_err(|_| wire::unreachable("bad method path"))?;
        let mut tried: Vec<String> = Vec::new();
        let mut last_failure = String::from("no chat node is known");
        let attempts = self.pool.len().max(1) + 1;
        for _ in 0..attempts {
            let Some(node) = first.take().or_else(|| self.pool.pick(&tried)) else { break };
            let mut grpc = tonic::client::Grpc::new(node.channel.clone())
                .max_decoding_message_size(MAX_MESSAGE_BYTES)
                .max_encoding_message_size(MAX_MESSAGE_BYTES);
            let mut request = Request::new(body.clone());
            request.set_timeout(timeout);
            let result = match grpc.ready().await {
                Ok(()) => grpc.unary(request, path.clone(), BytesCodec).await,
                Err(error) => Err(Status::unavailable(format!("not ready: {error}"))),
            };
            match result {
                Ok(response) => return Ok(response.into_inner()),
                Err(status) => {
                    if let Some(error) = domain_error(&status) {
                        return Err(error);
                    }
                    if refused(&status) {
                        // The node took the call and refused it as malformed (a version the node
                        // does not speak): it is up, and another node would answer the same.
                        tracing::warn!(node = %node.address, method, code = ?status.code(), message = status.message(), "chat call refused");
                        return Err(wire::unreachable(format!("{}: {}", node.address, status.message())));
                    }
                    let not_sent = never_sent(&status);
                    tracing::warn!(node = %node.address, method, code = ?status.code(), message = status.message(), not_sent, "chat call failed");
                    *node.set_aside_until.lock() = Some(Instant::now() + SET_ASIDE);
                    last_failure = format!("{}: {}", node.address, status.message());
                    if !(not_sent || retry == Idempotent) {
                        return Err(wire::unreachable(last_failure));
                    }
                    tried.push(node.address.clone());
                }
            }
        }
        Err(wire::unreachable(last_failure))
    }

    /// A node to stream with (no retry: a stream cannot be replayed).
    fn node(&self) -> DomainResult<Arc<Node>> {
        self.pool.pick(&[]).ok_or_else(|| wire::unreachable("no chat node is known"))
    }

    fn grpc(node: &Node) -> tonic::client::Grpc<Channel> {
        tonic::client::Grpc::new(node.channel.clone())
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES)
    }

    fn failed(node: &Node, status: &Status) -> DomainError {
        if let Some(error) = domain_error(status) {
            return error;
        }
        *node.set_aside_until.lock() = Some(Instant::now() + SET_ASIDE);
        wire::unreachable(format!("{}: {}", node.address, status.message()))
    }
}

/// Whether a status without a domain error is the node's answer to a call it could not take (its
/// arguments did not decode, or it has no such method), not a failure to reach it.
fn refused(status: &Status) -> bool {
    matches!(status.code(), tonic::Code::InvalidArgument | tonic::Code::Unimplemented)
}

/// Whether a failed call certainly never reached the node: its connection could not be made.
fn never_sent(status: &Status) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(status);
    while let Some(error) = source {
        if let Some(io) = error.downcast_ref::<std::io::Error>()
            && matches!(
                io.kind(),
                std::io::ErrorKind::ConnectionRefused
                    | std::io::ErrorKind::HostUnreachable
                    | std::io::ErrorKind::NetworkUnreachable
                    | std::io::ErrorKind::AddrNotAvailable
            )
        {
            return true;
        }
        let text = error.to_string();
        if text.contains("tcp connect error") || text.contains("error trying to connect") {
            return true;
        }
        source = error.source();
    }
    status.message().contains("tcp connect error")
}

#[async_trait]
impl AccountsApi for ChatClient {
    async fn register(
        &self,
        username: &str,
        password: &str,
        nickname: Option<&str>,
        device_name: Option<&str>,
        client: Option<IpAddr>,
    ) -> DomainResult<Tokens> {
        self.call("Register", IfNotSent, &(username, password, nickname, device_name, client)).await
    }
    async fn login(
        &self,
        username: &str,
        password: &str,
        device_name: Option<&str>,
        client: Option<IpAddr>,
    ) -> DomainResult<Tokens> {
        self.call("Login", IfNotSent, &(username, password, device_name, client)).await
    }
    async fn refresh(&self, refresh_token: &str) -> DomainResult<Tokens> {
        // Not idempotent: a refresh token is spent by its first use.
        self.call("Refresh", IfNotSent, &(refresh_token,)).await
    }
    async fn authenticate(&self, access_token: &str) -> DomainResult<AuthContext> {
        self.call("Authenticate", Idempotent, &(access_token,)).await
    }
    async fn logout(&self, ctx: &AuthContext) -> DomainResult<()> {
        self.call("Logout", Idempotent, &(ctx,)).await
    }
    async fn sessions(&self, ctx: &AuthContext) -> DomainResult<Vec<Session>> {
        self.call("Sessions", Idempotent, &(ctx,)).await
    }
    async fn revoke_session(&self, ctx: &AuthContext, id: &SessionId) -> DomainResult<()> {
        self.call("RevokeSession", IfNotSent, &(ctx, id)).await
    }
    async fn change_password(&self, ctx: &AuthContext, old: &str, new: &str) -> DomainResult<()> {
        self.call("ChangePassword", IfNotSent, &(ctx, old, new)).await
    }
}

#[async_trait]
impl UsersApi for ChatClient {
    async fn get(&self, id: &UserId) -> DomainResult<User> {
        self.call("GetUser", Idempotent, &(id,)).await
    }
    async fn update_profile(&self, id: &UserId, change: ProfileChange) -> DomainResult<User> {
        self.call("UpdateProfile", Idempotent, &(id, change)).await
    }
    async fn search(&self, query: &str, limit: Option<u32>) -> DomainResult<Vec<User>> {
        self.call("SearchUsers", Idempotent, &(query, limit)).await
    }
}

#[async_trait]
impl FriendsApi for ChatClient {
    async fn send_request(&self, me: &UserId, to: &UserId, message: Option<&str>) -> DomainResult<FriendRequestDetail> {
        self.call("SendFriendRequest", IfNotSent, &(me, to, message)).await
    }
    async fn requests(&self, me: &UserId, direction: RequestDirection) -> DomainResult<Vec<FriendRequestDetail>> {
        self.call("FriendRequests", Idempotent, &(me, direction)).await
    }
    async fn accept(
        &self,
        me: &UserId,
        id: &FriendRequestId,
    ) -> DomainResult<(FriendRequestDetail, ConversationSummary)> {
        self.call("AcceptFriendRequest", IfNotSent, &(me, id)).await
    }
    async fn reject(&self, me: &UserId, id: &FriendRequestId) -> DomainResult<FriendRequestDetail> {
        self.call("RejectFriendRequest", IfNotSent, &(me, id)).await
    }
    async fn cancel(&self, me: &UserId, id: &FriendRequestId) -> DomainResult<FriendRequestDetail> {
        self.call("CancelFriendRequest", IfNotSent, &(me, id)).await
    }
    async fn friends(&self, me: &UserId) -> DomainResult<Vec<Friend>> {
        self.call("Friends", Idempotent, &(me,)).await
    }
    async fn remove(&self, me: &UserId, other: &UserId) -> DomainResult<()> {
        self.call("RemoveFriend", IfNotSent, &(me, other)).await
    }
    async fn block(&self, me: &UserId, other: &UserId) -> DomainResult<()> {
        self.call("Block", IfNotSent, &(me, other)).await
    }
    async fn unblock(&self, me: &UserId, other: &UserId) -> DomainResult<()> {
        self.call("Unblock", IfNotSent, &(me, other)).await
    }
    async fn blocked(&self, me: &UserId) -> DomainResult<Vec<User>> {
        self.call("Blocked", Idempotent, &(me,)).await
    }
}

#[async_trait]
impl ConversationsApi for ChatClient {
    async fn list(&self, me: &UserId) -> DomainResult<Vec<ConversationSummary>> {
        self.call("ListConversations", Idempotent, &(me,)).await
    }
    async fn get(&self, me: &UserId, id: &ConversationId) -> DomainResult<ConversationSummary> {
        self.call("GetConversation", Idempotent, &(me, id)).await
    }
    async fn create_group(&self, me: &UserId, group: NewGroup) -> DomainResult<ConversationSummary> {
        self.call("CreateGroup", IfNotSent, &(me, group)).await
    }
    async fn update(
        &self,
        me: &UserId,
        id: &ConversationId,
        change: ConversationChange,
    ) -> DomainResult<ConversationSummary> {
        self.call("UpdateConversation", IfNotSent, &(me, id, change)).await
    }
    async fn dissolve(&self, me: &UserId, id: &ConversationId) -> DomainResult<()> {
        self.call("DissolveConversation", IfNotSent, &(me, id)).await
    }
    async fn members(&self, me: &UserId, id: &ConversationId) -> DomainResult<Vec<(Member, User)>> {
        self.call("Members", Idempotent, &(me, id)).await
    }
    async fn add_members(
        &self,
        me: &UserId,
        id: &ConversationId,
        user_ids: Vec<UserId>,
    ) -> DomainResult<Vec<(Member, User)>> {
        self.call("AddMembers", IfNotSent, &(me, id, user_ids)).await
    }
    async fn set_role(&self, me: &UserId, id: &ConversationId, target: &UserId, role: MemberRole) -> DomainResult<()> {
        self.call("SetRole", IfNotSent, &(me, id, target, role)).await
    }
    async fn remove_member(&self, me: &UserId, id: &ConversationId, target: &UserId) -> DomainResult<()> {
        self.call("RemoveMember", IfNotSent, &(me, id, target)).await
    }
}

#[async_trait]
impl MessagesApi for ChatClient {
    async fn send(&self, me: &UserId, conversation_id: &ConversationId, input: SendInput) -> DomainResult<Sent> {
        let Some(sends) = &self.sends else { return self.send_one(me, conversation_id, &input).await };
        let (reply, answer) = oneshot::channel();
        let queued = QueuedSend { me: me.clone(), conversation: conversation_id.clone(), input, reply };
        if sends.send(queued).await.is_err() {
            return Err(wire::unreachable("the send queue has stopped"));
        }
        answer.await.map_err(|_| wire::unreachable("the send queue dropped a send"))?
    }
    async fn history(
        &self,
        me: &UserId,
        conversation_id: &ConversationId,
        page: Page,
        limit: Option<u32>,
    ) -> DomainResult<(Vec<Message>, bool)> {
        self.call("History", Idempotent, &(me, conversation_id, page, limit)).await
    }
    async fn mark_read(&self, me: &UserId, conversation_id: &ConversationId, seq: Seq) -> DomainResult<(Seq, i64)> {
        self.call("MarkRead", Idempotent, &(me, conversation_id, seq)).await
    }
    async fn edit(&self, me: &UserId, conversation_id: &ConversationId, seq: Seq, text: &str) -> DomainResult<Message> {
        self.call("Edit", IfNotSent, &(me, conversation_id, seq, text)).await
    }
    async fn recall(&self, me: &UserId, conversation_id: &ConversationId, seq: Seq) -> DomainResult<Message> {
        self.call("Recall", IfNotSent, &(me, conversation_id, seq)).await
    }
    async fn react(
        &self,
        me: &UserId,
        conversation_id: &ConversationId,
        seq: Seq,
        emoji: &str,
        add: bool,
    ) -> DomainResult<Message> {
        self.call("React", IfNotSent, &(me, conversation_id, seq, emoji, add)).await
    }
    async fn typing(&self, me: &UserId, conversation_id: &ConversationId) -> DomainResult<()> {
        self.call("Typing", Idempotent, &(me, conversation_id)).await
    }
}

#[async_trait]
impl FilesApi for ChatClient {
    fn limits(&self) -> FileLimits {
        self.settings.file_limits.clone()
    }

    async fn upload(&self, me: &UserId, upload: Upload<'_>) -> DomainResult<FileRecord> {
        let Upload { name, claimed_mime, mut data } = upload;
        let header = encode(&(me, &name, &claimed_mime)).map_err(|status| wire::unreachable(status.message()))?;
        let (sender, receiver) = tokio::sync::mpsc::channel::<Bytes>(4);
        // The header goes first; the channel has room for it.
        let _ = sender.try_send(header);
        let node = self.node()?;
        let mut grpc = Self::grpc(&node);
        let path: http::uri::PathAndQuery =
            format!("/{SERVICE}/Upload").parse().map_err(|_| wire::unreachable("bad method path"))?;
        let call = async move {
            grpc.ready().await.map_err(|error| Status::unavailable(format!("not ready: {error}")))?;
            let stream = tokio_stream::wrappers::ReceiverStream::new(receiver);
            grpc.client_streaming(Request::new(stream), path, BytesCodec).await
        };
        let mut call = Box::pin(call);
        // The upload's body is read here, in this task, and handed over as it comes. The sender
        // is handed back with the outcome: the request stream must not end (which the chat node
        // would take for a complete file) while the call is still alive.
        let pump = async move {
            while let Some(chunk) = data.next().await {
                match chunk {
                    Ok(chunk) => {
                        if sender.send(chunk).await.is_err() {
                            break;
                        }
                    }
                    Err(error) => return Err((error, sender)),
                }
            }
            Ok(())
        };
        let answer = tokio::select! {
            answer = &mut call => answer,
            pumped = pump => match pumped {
                Ok(()) => call.await,
                Err((error, sender)) => {
                    // The body failed on this side (the client went away, or sent more than
                    // the gateway accepts). The chat node may have refused the upload already
                    // (413 file_too_large): that answer wins, as it would in one process.
                    let verdict = tokio::time::timeout(Duration::from_secs(2), &mut call).await;
                    // Cancel the call (a reset stream: the chat node stores nothing) before the
                    // request stream can end.
                    drop(call);
                    drop(sender);
                    match verdict {
                        Ok(Err(status)) if domain_error(&status).is_some() => Err(status),
                        _ => {
                            let reason = match error {
                                BlobError::Aborted(reason) => reason,
                                other => other.to_string(),
                            };
                            let message = format!("the upload did not complete: {reason}");
                            return Err(DomainError::invalid(ErrorCode::UploadFailed, message));
                        }
                    }
                }
            },
        };
        let answer = answer.map_err(|status| Self::failed(&node, &status))?;
        decode(answer.get_ref()).map_err(|status| wire::unreachable(status.message()))
    }

    async fn readable(&self, me: &UserId, id: &FileId) -> DomainResult<Readable> {
        let (record, grant): (FileRecord, Grant) = self.call("Readable", Idempotent, &(me, id)).await?;
        Ok(Readable::granted_remotely(record, grant))
    }

    async fn thumbnail(&self, me: &UserId, id: &FileId) -> DomainResult<Readable> {
        let (record, grant): (FileRecord, Grant) = self.call("Thumbnail", Idempotent, &(me, id)).await?;
        Ok(Readable::granted_remotely(record, grant))
    }

    async fn stream(&self, file: &Readable, range: Option<Range<u64>>) -> DomainResult<ByteStream<'static>> {
        let body = encode(&(file.grant(), range)).map_err(|status| wire::unreachable(status.message()))?;
        let node = self.node()?;
        let mut grpc = Self::grpc(&node);
        let path: http::uri::PathAndQuery =
            format!("/{SERVICE}/ReadFile").parse().map_err(|_| wire::unreachable("bad method path"))?;
        grpc.ready().await.map_err(|error| wire::unreachable(format!("{}: {error}", node.address)))?;
        let response = grpc.server_streaming(Request::new(body), path, BytesCodec).await;
        let stream = response.map_err(|status| Self::failed(&node, &status))?.into_inner();
        Ok(stream.map_err(|status| wire::blob_error(&status)).boxed())
    }
}

#[async_trait]
impl SearchApi for ChatClient {
    async fn messages(&self, me: &UserId, input: SearchInput) -> DomainResult<Found> {
        self.call("SearchMessages", Idempotent, &(me, input)).await
    }
}

#[async_trait]
impl SpeechApi for ChatClient {
    fn max_audio_bytes(&self) -> usize {
        self.settings.max_audio_bytes
    }
    async fn check_available(&self) -> DomainResult<()> {
        self.call("CheckSpeech", Idempotent, &()).await
    }
    async fn transcribe(&self, audio: Vec<u8>) -> DomainResult<Transcription> {
        let answer = self.unary("Transcribe", Idempotent, Bytes::from(audio), self.settings.transcribe_timeout).await?;
        decode(&answer).map_err(|status| wire::unreachable(status.message()))
    }
    async fn transcribe_file(&self, me: &UserId, file_id: &FileId) -> DomainResult<Transcription> {
        let body = encode(&(me, file_id)).map_err(|status| wire::unreachable(status.message()))?;
        let answer = self.unary("TranscribeFile", Idempotent, body, self.settings.transcribe_timeout).await?;
        decode(&answer).map_err(|status| wire::unreachable(status.message()))
    }
}

#[async_trait]
impl HealthApi for ChatClient {
    async fn health(&self) -> DomainResult<ChatHealth> {
        self.call("Health", Idempotent, &()).await
    }
}
