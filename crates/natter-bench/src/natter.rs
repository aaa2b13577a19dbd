//! natter as a system under test: the real `natter` binary, started as one embedded process
//! (SQLite, in-process bus) or as several processes sharing PostgreSQL and NATS, driven through
//! its public HTTP API and WebSocket protocol.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, bail};
use futures_util::SinkExt;
use futures_util::stream::{self, StreamExt, TryStreamExt};
use natter_proto::{
    AcceptFriendResponse, AuthResponse, ConversationView, FriendRequestView, MessagePage, MessageView, ServerFrame,
};
use serde_json::json;
use tokio::process::Command;
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use crate::procs::Proc;
use crate::services::{Nats, Postgres, Redis, free_port};
use crate::system::{Delivery, Device, IdleEndpoints, SendFn, System};
use crate::{payload, wsclient};

/// How many HTTP set-up calls (registrations, friendships) run at once.
const SETUP_CONCURRENCY: usize = 32;

/// A running natter: one or more `natter serve` processes.
pub struct Natter {
    name: String,
    nodes: Vec<Node>,
    http: reqwest::Client,
    next_user: AtomicU64,
    /// Distinguishes this run's usernames from any earlier run on the same database.
    run_tag: String,
    /// PostgreSQL's processes, counted as part of the server in the cluster shape.
    database_pids: Option<Box<dyn Fn() -> Vec<u32> + Send + Sync>>,
    /// In the split topology: the chat and worker processes (clients talk to `nodes`, the
    /// gateways, only).
    backends: Vec<Node>,
}

struct Node {
    process: Proc,
    port: u16,
}

/// A registered account.
#[derive(Debug, Clone)]
pub struct Account {
    pub user_id: String,
    pub token: String,
}

impl Natter {
    /// One process on its embedded defaults (SQLite in `work_dir`, in-process bus).
    pub async fn start_embedded(binary: &Path, work_dir: &Path) -> anyhow::Result<Natter> {
        let node = start_node(binary, work_dir, "natter", &[]).await?;
        Ok(Natter::new("natter (SQLite, 1 process)".into(), vec![node], None))
    }

    /// As [`Natter::start_embedded`] with search indexing off (`search.backend = off`), to
    /// measure what indexing costs. Its name must not start like the embedded one's: the bars
    /// and ratios find systems by name prefix.
    pub async fn start_embedded_search_off(binary: &Path, work_dir: &Path) -> anyhow::Result<Natter> {
        let env = [("NATTER_SEARCH__BACKEND", "off".to_owned())];
        let node = start_node(binary, work_dir, "natter", &env).await?;
        Ok(Natter::new("natter (search off, SQLite, 1 process)".into(), vec![node], None))
    }

    /// `nodes` processes sharing one PostgreSQL database and one NATS server.
    pub async fn start_cluster(
        binary: &Path,
        work_dir: &Path,
        postgres: &Arc<Postgres>,
        nats: &Nats,
        nodes: usize,
    ) -> anyhow::Result<Natter> {
        let database = format!("natter_bench_{}", uuid::Uuid::new_v4().simple());
        postgres.create_database(&database)?;
        let secret = uuid::Uuid::new_v4().simple().to_string();
        let env = [
            ("NATTER_DATABASE__URL", postgres.url(&database)),
            ("NATTER_DATABASE__MAX_CONNECTIONS", "32".to_owned()),
            ("NATTER_BUS__KIND", "nats".to_owned()),
            ("NATTER_BUS__NATS_URL", nats.url.clone()),
            // One index for the cluster, as in the split topology (with the embedded index each
            // process would keep its own copy of every message).
            ("NATTER_SEARCH__BACKEND", "postgres".to_owned()),
            ("NATTER_AUTH__JWT_SECRET", secret),
        ];
        let mut started = Vec::new();
        for index in 0..nodes {
            started.push(start_node(binary, &work_dir.join(format!("node{index}")), "natter", &env).await?);
        }
        let postgres = postgres.clone();
        let name = format!("natter (PostgreSQL + NATS, {nodes} processes)");
        Ok(Natter::new(name, started, Some(Box::new(move || postgres.pids()))))
    }

    /// The split topology: `chat` chat nodes and one worker behind `gateways` gateways, which
    /// call the chat nodes over gRPC (listed statically), all on one PostgreSQL and one NATS.
    pub async fn start_split(
        binary: &Path,
        work_dir: &Path,
        postgres: &Arc<Postgres>,
        nats: &Nats,
        redis: &Redis,
        gateways: usize,
        chat: usize,
    ) -> anyhow::Result<Natter> {
        let database = format!("natter_bench_{}", uuid::Uuid::new_v4().simple());
        postgres.create_database(&database)?;
        let secret = uuid::Uuid::new_v4().simple().to_string();
        let grpc: Vec<String> =
            (0..chat).map(|_| free_port().map(|port| format!("127.0.0.1:{port}"))).collect::<Result<_, _>>()?;
        let common = [
            ("NATTER_DATABASE__URL", postgres.url(&database)),
            ("NATTER_DATABASE__MAX_CONNECTIONS", "32".to_owned()),
            ("NATTER_BUS__KIND", "nats".to_owned()),
            ("NATTER_BUS__NATS_URL", nats.url.clone()),
            ("NATTER_SEARCH__BACKEND", "postgres".to_owned()),
            ("NATTER_AUTH__JWT_SECRET", secret),
            ("NATTER_CLUSTER__CHAT_NODES", grpc.join(",")),
            ("NATTER_REDIS__URL", redis.url.clone()),
            // Creating the 10,000-member group pushes the new conversation to every member, one
            // summary read each, which takes longer than an ordinary call's 30 s on PostgreSQL.
            ("NATTER_CLUSTER__RPC_TIMEOUT_SECS", "180".to_owned()),
        ];
        let with = |extra: Vec<(&'static str, String)>| -> Vec<(&'static str, String)> {
            common.iter().cloned().chain(extra).collect()
        };
        let mut backends = Vec::new();
        for (index, address) in grpc.iter().enumerate() {
            let env = with(vec![("NATTER_ROLES", "chat".into()), ("NATTER_CLUSTER__GRPC_LISTEN", address.clone())]);
            backends.push(start_node(binary, &work_dir.join(format!("chat{index}")), "natter-chat", &env).await?);
        }
        let env = with(vec![("NATTER_ROLES", "worker".into())]);
        backends.push(start_node(binary, &work_dir.join("worker"), "natter-worker", &env).await?);
        let mut started = Vec::new();
        for index in 0..gateways {
            let env = with(vec![("NATTER_ROLES", "gateway".into())]);
            started.push(start_node(binary, &work_dir.join(format!("gateway{index}")), "natter-gateway", &env).await?);
        }
        let postgres = postgres.clone();
        let name = format!("natter (split: {gateways} gateways, {chat} chat, 1 worker; PostgreSQL + NATS + Redis)");
        let mut natter = Natter::new(name, started, Some(Box::new(move || postgres.pids())));
        natter.backends = backends;
        Ok(natter)
    }

    fn new(name: String, nodes: Vec<Node>, database_pids: Option<Box<dyn Fn() -> Vec<u32> + Send + Sync>>) -> Natter {
        let http = reqwest::Client::builder().pool_max_idle_per_host(64).build().expect("a default HTTP client builds");
        let run_tag = format!("{:x}", payload::now_us() % 0xffff_ffff);
        Natter { name, nodes, http, next_user: AtomicU64::new(0), run_tag, database_pids, backends: Vec::new() }
    }

    /// The chat and worker processes of the split topology (empty otherwise).
    pub fn backend_pids(&self) -> Vec<u32> {
        self.backends.iter().map(|node| node.process.pid()).collect()
    }

    fn base(&self, node: usize) -> String {
        format!("http://127.0.0.1:{}/api/v1", self.nodes[node % self.nodes.len()].port)
    }

    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    /// The natter processes alone (without PostgreSQL), e.g. for memory per connection.
    pub fn natter_pids(&self) -> Vec<u32> {
        self.nodes.iter().map(|node| node.process.pid()).collect()
    }

    pub async fn stop(self) {
        for node in self.nodes.into_iter().chain(self.backends) {
            node.process.stop(Duration::from_secs(10)).await;
        }
    }

    /// Registers `count` fresh accounts.
    pub async fn register(&self, count: usize) -> anyhow::Result<Vec<Account>> {
        stream::iter(0..count)
            .map(|i| async move {
                let n = self.next_user.fetch_add(1, Ordering::Relaxed);
                let username = format!("b{}u{n}", self.run_tag);
                let body = json!({ "username": username, "password": "bench-password" });
                let auth: AuthResponse = self.post(i, "/auth/register", None, &body).await?;
                Ok::<_, anyhow::Error>(Account { user_id: auth.user.id, token: auth.access_token })
            })
            .buffered(SETUP_CONCURRENCY)
            .try_collect()
            .await
    }

    /// Makes `a` and `b` friends; returns their direct conversation.
    pub async fn befriend(&self, a: &Account, b: &Account) -> anyhow::Result<String> {
        let request: FriendRequestView =
            self.post(0, "/friend-requests", Some(&a.token), &json!({ "user_id": b.user_id })).await?;
        let accepted: AcceptFriendResponse =
            self.post(0, &format!("/friend-requests/{}/accept", request.id), Some(&b.token), &json!({})).await?;
        Ok(accepted.conversation.id)
    }

    /// A group owned by `owner` with `others` as members.
    pub async fn group(&self, owner: &Account, others: &[Account]) -> anyhow::Result<String> {
        let member_ids: Vec<&str> = others.iter().map(|a| a.user_id.as_str()).collect();
        let body = json!({ "kind": "group", "name": "bench", "member_ids": member_ids });
        let conversation: ConversationView = self.post(0, "/conversations", Some(&owner.token), &body).await?;
        Ok(conversation.id)
    }

    /// One page of history after `after_seq`.
    pub async fn history_after(
        &self,
        account: &Account,
        conversation: &str,
        after_seq: i64,
        limit: u32,
    ) -> anyhow::Result<MessagePage> {
        let url = format!("{}/conversations/{conversation}/messages?after_seq={after_seq}&limit={limit}", self.base(0));
        let response = self.http.get(url).bearer_auth(&account.token).send().await?;
        decode(response).await
    }

    async fn post<T: serde::de::DeserializeOwned>(
        &self,
        node: usize,
        path: &str,
        token: Option<&str>,
        body: &serde_json::Value,
    ) -> anyhow::Result<T> {
        let mut request = self.http.post(format!("{}{path}", self.base(node))).json(body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        decode(request.send().await.with_context(|| format!("POST {path}"))?).await
    }

    /// Connects one device of `account` to node `node`, following `conversation`.
    pub async fn connect(
        &self,
        account: &Account,
        node: usize,
        conversation: &str,
        member: u32,
    ) -> anyhow::Result<Device> {
        let port = self.nodes[node % self.nodes.len()].port;
        let url = format!("ws://127.0.0.1:{port}/api/v1/ws?token={}", account.token);
        let socket = wsclient::connect(&url, None).await?;
        let (mut sink, mut source) = socket.split();
        // The server says hello once the socket is registered for delivery.
        match tokio::time::timeout(Duration::from_secs(30), source.next()).await {
            Ok(Some(Ok(Message::Text(text)))) if text.contains("\"hello\"") => {}
            other => bail!("expected a hello frame, got {other:?}"),
        }
        let pending: Pending = Arc::default();
        let (deliveries_tx, deliveries) = mpsc::unbounded_channel();
        let (outgoing, mut outgoing_rx) = mpsc::unbounded_channel::<String>();
        let (still_read, writer_pending) = (deliveries_tx.clone(), pending.clone());
        tokio::spawn(async move {
            while let Some(text) = outgoing_rx.recv().await {
                if let Err(error) = sink.send(Message::Text(text.into())).await {
                    tracing::warn!(%error, "a natter socket failed while sending");
                    for (_, ack) in lock(&writer_pending).drain() {
                        let _ = ack.send(Err(anyhow::anyhow!("the socket failed: {error}")));
                    }
                    return;
                }
            }
            // Nothing more to send: keep the socket while its deliveries are still read, then
            // close it properly, so that finished scenarios leave no sockets behind.
            still_read.closed().await;
            let _ = sink.close().await;
        });
        tokio::spawn(read_frames(source, conversation.to_owned(), deliveries_tx, pending.clone()));
        let next_id = AtomicU64::new(0);
        let conversation = conversation.to_owned();
        // The frame is queued when `send` is called, not when its future is first polled, so
        // that frames leave in call order however the futures are awaited.
        let send: SendFn = Arc::new(move |body: String| {
            let id = next_id.fetch_add(1, Ordering::Relaxed);
            let (ack, acked) = oneshot::channel();
            lock(&pending).insert(id, ack);
            let frame = json!({
                "type": "send", "id": id.to_string(), "conversation_id": conversation,
                "client_msg_id": uuid::Uuid::new_v4().simple().to_string(), "kind": "text", "text": body,
            });
            let queued = outgoing.send(frame.to_string());
            Box::pin(async move {
                queued.map_err(|_| anyhow::anyhow!("the socket is closed"))?;
                acked.await.context("the socket closed before the send was acknowledged")?
            })
        });
        Ok(Device { member, send, deliveries })
    }
}

/// Turns server frames into deliveries (text entries of `conversation`) and acknowledgements.
async fn read_frames<S>(
    mut source: S,
    conversation: String,
    deliveries: mpsc::UnboundedSender<Delivery>,
    pending: Pending,
) where
    S: futures_util::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    while let Some(Ok(frame)) = source.next().await {
        let received_us = payload::now_us();
        let text = match frame {
            Message::Text(text) => text,
            Message::Close(Some(close)) if close.code != CloseCode::Normal => {
                tracing::warn!(code = %close.code, reason = %close.reason, "natter closed a socket");
                break;
            }
            _ => continue,
        };
        match serde_json::from_str::<ServerFrame>(&text) {
            Ok(ServerFrame::Message { message }) if message.conversation_id == conversation => {
                if let Some(delivery) = delivery(&message, received_us) {
                    let _ = deliveries.send(delivery);
                }
            }
            Ok(ServerFrame::Sent { id, .. }) => acknowledge(&pending, &id, Ok(())),
            Ok(ServerFrame::Error { id: Some(id), code, message }) => {
                acknowledge(&pending, &id, Err(anyhow::anyhow!("send refused: {code}: {message}")))
            }
            _ => {}
        }
    }
    // The socket closed: every send still waiting fails.
    for (_, ack) in lock(&pending).drain() {
        let _ = ack.send(Err(anyhow::anyhow!("the socket closed")));
    }
}

fn delivery(message: &MessageView, received_us: u64) -> Option<Delivery> {
    let stamp = payload::parse(message.text.as_deref()?)?;
    Some(Delivery { stamp, received_us, seq: u64::try_from(message.seq).ok() })
}

/// Sends waiting for their `sent` (or `error`), by request id.
type Pending = Arc<Mutex<HashMap<u64, oneshot::Sender<anyhow::Result<()>>>>>;

fn lock(pending: &Pending) -> std::sync::MutexGuard<'_, HashMap<u64, oneshot::Sender<anyhow::Result<()>>>> {
    // A panic while holding this lock cannot leave the map inconsistent; keep going.
    pending.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn acknowledge(pending: &Pending, id: &str, outcome: anyhow::Result<()>) {
    let Ok(id) = id.parse::<u64>() else { return };
    if let Some(ack) = lock(pending).remove(&id) {
        let _ = ack.send(outcome);
    }
}

async fn decode<T: serde::de::DeserializeOwned>(response: reqwest::Response) -> anyhow::Result<T> {
    let status = response.status();
    let body = response.text().await?;
    if !status.is_success() {
        bail!("{status}: {body}");
    }
    serde_json::from_str(&body).with_context(|| format!("unexpected response body: {body}"))
}

impl System for Natter {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn gateway_pids(&self) -> Vec<u32> {
        self.natter_pids()
    }

    fn server_pids(&self) -> Vec<u32> {
        let mut pids = self.natter_pids();
        pids.extend(self.backend_pids());
        if let Some(database) = &self.database_pids {
            pids.extend(database());
        }
        pids
    }

    /// Two members: a direct conversation between friends. More: a group owned by member 0.
    /// Devices are spread over the processes round-robin.
    async fn room(&self, members: usize) -> anyhow::Result<Vec<Device>> {
        let accounts = self.register(members).await?;
        let conversation = match accounts.as_slice() {
            [a, b] => self.befriend(a, b).await?,
            [owner, others @ ..] => self.group(owner, others).await?,
            [] => bail!("a room needs members"),
        };
        stream::iter(accounts.into_iter().enumerate())
            .map(|(i, account)| {
                let conversation = conversation.clone();
                async move { self.connect(&account, i, &conversation, i as u32).await }
            })
            .buffered(SETUP_CONCURRENCY)
            .try_collect()
            .await
    }

    async fn idle_endpoints(&self, count: usize) -> anyhow::Result<Option<IdleEndpoints>> {
        // One account per hundred connections: many devices per user, as in real use.
        let accounts = self.register(count.div_ceil(100).max(1)).await?;
        let urls = (0..self.nodes.len().max(accounts.len()))
            .map(|i| {
                let port = self.nodes[i % self.nodes.len()].port;
                format!("ws://127.0.0.1:{port}/api/v1/ws?token={}", accounts[i % accounts.len()].token)
            })
            .collect();
        Ok(Some(IdleEndpoints { urls, hello: None }))
    }
}

/// Starts `natter serve` with its data in `dir` and settings fit for load: cheap password
/// hashing (registration is set-up, not what is measured), groups and bodies large enough for
/// the 10,000-member scenario, and warn-level logs.
async fn start_node(binary: &Path, dir: &Path, name: &str, env: &[(&str, String)]) -> anyhow::Result<Node> {
    std::fs::create_dir_all(dir)?;
    let port = free_port()?;
    let mut command = Command::new(binary);
    // natter refuses NATTER_ variables it does not know (e.g. the test script's
    // NATTER_TEST_POSTGRES_URL), and the bench must not inherit a user's settings anyway.
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("NATTER_") {
            command.env_remove(key);
        }
    }
    command
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .arg("--data-dir")
        .arg(dir.join("data"))
        .env("NATTER_AUTH__ARGON2_MEMORY_KIB", "64")
        .env("NATTER_AUTH__ARGON2_ITERATIONS", "1")
        .env("NATTER_AUTH__ACCESS_TOKEN_TTL_SECS", "86400")
        // Every simulated user registers from 127.0.0.1.
        .env("NATTER_AUTH__REGISTER_MAX_PER_ADDRESS", "0")
        // The load is the point: a bench user sends, and every socket opens from 127.0.0.1,
        // faster than the rate limits allow a person.
        .env("NATTER_LIMITS__MESSAGES_PER_USER", "0")
        .env("NATTER_LIMITS__UPLOADS_PER_USER", "0")
        .env("NATTER_LIMITS__WS_CONNECTS_PER_ADDRESS", "0")
        .env("NATTER_LIMITS__WS_FRAMES_PER_SEC", "0")
        .env("NATTER_LIMITS__MAX_GROUP_MEMBERS", "20000")
        .env("NATTER_LIMITS__MAX_BODY_BYTES", "4194304")
        // Warnings, and the gateway's notes on sockets it closes (slow clients).
        .env("NATTER_LOG__LEVEL", "warn,natter_gateway=info");
    for (key, value) in env {
        command.env(key, value);
    }
    let mut process = Proc::spawn(name, command, &dir.join("natter.log"))?;
    process.wait_for_port(port, Duration::from_secs(60)).await?;
    Ok(Node { process, port })
}

/// The `natter` binary beside this one (cargo puts both in the same target directory).
pub fn default_binary() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.join("natter")))
        .unwrap_or_else(|| PathBuf::from("natter"))
}
