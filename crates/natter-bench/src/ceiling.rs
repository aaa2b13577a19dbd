//! The transport ceiling: a bare WebSocket broadcast server on the same library, runtime and
//! delivery path as natter's gateway (axum's `ws` on tokio; one task per socket; a bounded
//! per-socket queue of `Bytes` filled with `try_send`, the frame encoded once per event), with no
//! auth, no storage and no bus. What natter costs above this is the price of being a messenger.
//!
//! Also home of the small WebSocket client plumbing ([`Writer`]) that the NATS baseline shares.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use axum::Router;
use axum::extract::ws::{CloseFrame, Message as ServerMessage, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{Path as UrlPath, State};
use axum::response::Response;
use axum::routing::get;
use bytes::Bytes;
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use tokio::sync::{Notify, mpsc, oneshot};
use tokio_tungstenite::tungstenite::Message;

use crate::payload;
use crate::procs::Proc;
use crate::services::free_port;
use crate::system::{BoxFuture, Delivery, Device, IdleEndpoints, SendFn, System};
use crate::wsclient::{self, Socket};

/// natter's default `limits.ws_queue_frames`.
const QUEUE_FRAMES: usize = 1024;
/// Sent to a socket once it is in its room, so that a client knows broadcasts will reach it.
const READY: &str = "ready";
const CLOSE_TRY_AGAIN_LATER: u16 = 1013;
/// How long a client waits for a connection to open (and, here, for `ready`).
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------------------------------------
// The server.

/// Serves `GET /ws/{room}` on `listen` until the process is killed.
pub async fn serve(listen: SocketAddr) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(listen).await.with_context(|| format!("cannot listen on {listen}"))?;
    serve_on(listener).await
}

async fn serve_on(listener: tokio::net::TcpListener) -> anyhow::Result<()> {
    let router = Router::new().route("/ws/{room}", get(upgrade)).with_state(Arc::new(Rooms::default()));
    axum::serve(listener, router).await.context("the ceiling server failed")
}

/// The sockets of each room.
#[derive(Default)]
struct Rooms {
    rooms: RwLock<HashMap<String, Vec<Member>>>,
    next_id: AtomicU64,
}

struct Member {
    id: u64,
    queue: mpsc::Sender<Bytes>,
    too_slow: Arc<Notify>,
}

impl Rooms {
    fn join(&self, room: &str) -> (u64, mpsc::Receiver<Bytes>, Arc<Notify>) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (queue, receiver) = mpsc::channel(QUEUE_FRAMES);
        let too_slow = Arc::new(Notify::new());
        let member = Member { id, queue, too_slow: too_slow.clone() };
        self.rooms.write().unwrap_or_else(PoisonError::into_inner).entry(room.to_owned()).or_default().push(member);
        (id, receiver, too_slow)
    }

    fn leave(&self, room: &str, id: u64) {
        let mut rooms = self.rooms.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(members) = rooms.get_mut(room) {
            members.retain(|member| member.id != id);
            if members.is_empty() {
                rooms.remove(room);
            }
        }
    }

    /// Queues `frame` on every socket of `room` without waiting, like natter's hub: a socket whose
    /// queue is full is told to close.
    fn broadcast(&self, room: &str, frame: &Bytes) {
        let mut too_slow = Vec::new();
        {
            let rooms = self.rooms.read().unwrap_or_else(PoisonError::into_inner);
            let Some(members) = rooms.get(room) else { return };
            for member in members {
                if let Err(mpsc::error::TrySendError::Full(_)) = member.queue.try_send(frame.clone()) {
                    too_slow.push((member.id, member.too_slow.clone()));
                }
            }
        }
        for (id, notify) in too_slow {
            self.leave(room, id);
            notify.notify_one();
        }
    }
}

async fn upgrade(
    State(rooms): State<Arc<Rooms>>,
    UrlPath(room): UrlPath<String>,
    upgrade: WebSocketUpgrade,
) -> Response {
    upgrade.read_buffer_size(4096).write_buffer_size(4096).on_upgrade(move |socket| run_socket(rooms, room, socket))
}

async fn run_socket(rooms: Arc<Rooms>, room: String, socket: WebSocket) {
    let (id, mut queue, too_slow) = rooms.join(&room);
    let (mut sender, mut receiver) = socket.split();
    let mut close = None;
    if sender.send(ServerMessage::Text(Utf8Bytes::from(READY))).await.is_ok() {
        loop {
            tokio::select! {
                incoming = receiver.next() => {
                    let Some(Ok(message)) = incoming else { break };
                    match message {
                        ServerMessage::Text(text) => rooms.broadcast(&room, &Bytes::from(text)),
                        ServerMessage::Close(_) => break,
                        ServerMessage::Binary(_) | ServerMessage::Ping(_) | ServerMessage::Pong(_) => {}
                    }
                }
                queued = queue.recv() => {
                    let Some(frame) = queued else { break };
                    // As natter does: the queue holds bytes, checked back into text per socket.
                    let Ok(text) = Utf8Bytes::try_from(frame) else { continue };
                    if sender.send(ServerMessage::Text(text)).await.is_err() { break }
                }
                () = too_slow.notified() => {
                    close = Some(CloseFrame { code: CLOSE_TRY_AGAIN_LATER, reason: Utf8Bytes::from("client too slow") });
                    break;
                }
            }
        }
    }
    if let Some(frame) = close {
        let _ = sender.send(ServerMessage::Close(Some(frame))).await;
    }
    let _ = sender.close().await;
    rooms.leave(&room, id);
}

// ---------------------------------------------------------------------------------------------
// The system under test.

/// The ceiling server, running as a child process (`natter-bench ceiling --listen …`).
pub struct Ceiling {
    process: Proc,
    port: u16,
    next_room: AtomicU64,
}

impl Ceiling {
    pub async fn start(work_dir: &Path) -> anyhow::Result<Ceiling> {
        std::fs::create_dir_all(work_dir)?;
        let port = free_port()?;
        let exe = std::env::current_exe().context("cannot find natter-bench's own executable")?;
        let mut command = tokio::process::Command::new(exe);
        command.arg("ceiling").arg("--listen").arg(format!("127.0.0.1:{port}"));
        let mut process = Proc::spawn("ceiling", command, &work_dir.join("ceiling.log"))?;
        process.wait_for_port(port, CONNECT_TIMEOUT).await?;
        Ok(Ceiling { process, port, next_room: AtomicU64::new(1) })
    }
}

impl System for Ceiling {
    fn name(&self) -> String {
        "ceiling (bare WebSocket broadcast)".to_owned()
    }

    fn server_pids(&self) -> Vec<u32> {
        vec![self.process.pid()]
    }

    async fn room(&self, members: usize) -> anyhow::Result<Vec<Device>> {
        let room = format!("r{}", self.next_room.fetch_add(1, Ordering::Relaxed));
        connect_room(self.port, &room, members).await
    }

    async fn idle_endpoints(&self, _count: usize) -> anyhow::Result<Option<IdleEndpoints>> {
        Ok(Some(IdleEndpoints { urls: vec![format!("ws://127.0.0.1:{}/ws/idle", self.port)], hello: None }))
    }
}

/// `members` devices in room `room` of the server on `port`, each registered there on return.
async fn connect_room(port: u16, room: &str, members: usize) -> anyhow::Result<Vec<Device>> {
    let url = format!("ws://127.0.0.1:{port}/ws/{room}");
    let members = (0..members).map(|member| u32::try_from(member).context("too many members"));
    let members = members.collect::<anyhow::Result<Vec<u32>>>()?;
    futures_util::future::try_join_all(members.into_iter().map(|member| connect_device(&url, member))).await
}

async fn connect_device(url: &str, member: u32) -> anyhow::Result<Device> {
    let (sink, mut stream) = connect(url).await?.split();
    loop {
        let message = tokio::time::timeout(CONNECT_TIMEOUT, stream.next())
            .await
            .with_context(|| format!("{url} did not say it was ready within {CONNECT_TIMEOUT:?}"))?;
        match message {
            Some(Ok(Message::Text(text))) if text.as_str() == READY => break,
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
            Some(Ok(other)) => bail!("{url} sent {other:?} before it was ready"),
            Some(Err(error)) => return Err(error).with_context(|| format!("reading from {url}")),
            None => bail!("{url} closed before it was ready"),
        }
    }
    let (deliveries_tx, deliveries) = mpsc::unbounded_channel();
    tokio::spawn(read_deliveries(stream, deliveries_tx));
    let writer = Writer::spawn(sink);
    let send: SendFn = Arc::new(move |body: String| writer.write(Message::text(body)));
    Ok(Device { member, send, deliveries })
}

/// Every text frame that holds a stamp becomes a delivery; anything else is ignored. Ends (and
/// lets go of the socket's read half) when the socket ends or the device's deliveries are dropped.
async fn read_deliveries(mut stream: SplitStream<Socket>, deliveries: mpsc::UnboundedSender<Delivery>) {
    loop {
        let message = tokio::select! {
            message = stream.next() => message,
            () = deliveries.closed() => break,
        };
        let Some(Ok(message)) = message else { break };
        let received_us = payload::now_us();
        let text = match &message {
            Message::Text(text) => text.as_str(),
            Message::Close(_) => break,
            _ => continue,
        };
        let Some(stamp) = payload::parse(text) else { continue };
        if deliveries.send(Delivery { stamp, received_us, seq: None }).is_err() {
            break;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// WebSocket client plumbing, shared with the NATS baseline.

/// Opens a WebSocket to `url` the way every client of the benchmark does ([`wsclient::connect`]),
/// within [`CONNECT_TIMEOUT`].
pub(crate) async fn connect(url: &str) -> anyhow::Result<Socket> {
    tokio::time::timeout(CONNECT_TIMEOUT, wsclient::connect(url, None))
        .await
        .with_context(|| format!("{url} did not open within {CONNECT_TIMEOUT:?}"))?
}

/// One frame for the writer task; `done` hears once it is written and flushed.
struct Write {
    message: Message,
    done: Option<oneshot::Sender<Result<(), String>>>,
}

/// The write half of a socket, owned by a task, so that any number of senders can share it.
/// Frames queued while a write is under way go out together with one flush. The task ends when
/// every `Writer` is dropped, without closing the socket: its read half may still be in use (a
/// device that only receives), and the socket closes once both halves are gone.
#[derive(Clone)]
pub(crate) struct Writer {
    queue: mpsc::UnboundedSender<Write>,
}

impl Writer {
    /// Frames written in one go before a flush, at most.
    const BATCH: usize = 64;

    pub(crate) fn spawn(sink: SplitSink<Socket, Message>) -> Writer {
        let (queue, receiver) = mpsc::unbounded_channel();
        tokio::spawn(run_writer(sink, receiver));
        Writer { queue }
    }

    /// Queues `message` at once, so that frames leave in call order however the returned futures
    /// are awaited; the future resolves once the frame is written and flushed.
    pub(crate) fn write(&self, message: Message) -> BoxFuture<anyhow::Result<()>> {
        let (done, written) = oneshot::channel();
        let queued = self.queue.send(Write { message, done: Some(done) });
        Box::pin(async move {
            queued.map_err(|_| anyhow!("the WebSocket is closed"))?;
            written.await.map_err(|_| anyhow!("the WebSocket is closed"))?.map_err(|error| anyhow!(error))
        })
    }

    /// Queues `message` without waiting for it to be written; false if the socket is gone.
    pub(crate) fn queue(&self, message: Message) -> bool {
        self.queue.send(Write { message, done: None }).is_ok()
    }
}

async fn run_writer(mut sink: SplitSink<Socket, Message>, mut queue: mpsc::UnboundedReceiver<Write>) {
    let mut done = Vec::with_capacity(Writer::BATCH);
    while let Some(first) = queue.recv().await {
        let mut result = sink.feed(first.message).await;
        done.extend(first.done);
        let mut written = 1;
        while result.is_ok() && written < Writer::BATCH {
            let Ok(next) = queue.try_recv() else { break };
            result = sink.feed(next.message).await;
            done.extend(next.done);
            written += 1;
        }
        if result.is_ok() {
            result = sink.flush().await;
        }
        let result = result.map_err(|error| format!("WebSocket write failed: {error}"));
        for done in done.drain(..) {
            let _ = done.send(result.clone());
        }
        if result.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The indices of the first `expected` bodies of `sender` in `deliveries`.
    async fn receive_from(deliveries: &mut mpsc::UnboundedReceiver<Delivery>, sender: u32, expected: u64) -> Vec<u64> {
        let mut indices = Vec::new();
        while (indices.len() as u64) < expected {
            let delivery = tokio::time::timeout(Duration::from_secs(10), deliveries.recv())
                .await
                .expect("a delivery within 10 s")
                .expect("the device's reader is running");
            assert!(delivery.received_us >= delivery.stamp.sent_us, "received after sent");
            if delivery.stamp.sender == sender {
                indices.push(delivery.stamp.index);
            }
        }
        indices
    }

    #[tokio::test]
    async fn a_room_broadcasts_every_body_in_order() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("local address").port();
        let server = tokio::spawn(serve_on(listener));

        let mut devices = connect_room(port, "r1", 3).await.expect("a room of 3");
        assert_eq!(devices.iter().map(|d| d.member).collect::<Vec<_>>(), [0, 1, 2]);
        let mut publisher = devices.remove(0);
        // The receivers keep only their deliveries, as the scenarios do: their sockets stay open.
        let mut receivers: Vec<_> = devices.into_iter().map(|device| device.deliveries).collect();
        for index in 0..20 {
            (publisher.send)(payload::make(0, index, 64)).await.expect("send");
        }
        for deliveries in &mut receivers {
            assert_eq!(receive_from(deliveries, 0, 20).await, (0..20).collect::<Vec<_>>());
        }
        // The sender hears its own bodies too (the scenarios skip them).
        assert_eq!(receive_from(&mut publisher.deliveries, 0, 20).await, (0..20).collect::<Vec<_>>());
        server.abort();
    }

    #[tokio::test]
    async fn concurrent_sends_leave_in_call_order() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("local address").port();
        let server = tokio::spawn(serve_on(listener));
        let mut devices = connect_room(port, "shared", 2).await.expect("a room of 2");
        let sends: Vec<_> = (0..50).map(|index| (devices[0].send)(payload::make(0, index, 32))).collect();
        // Awaited last first: the frames still leave in the order `send` was called.
        futures_util::future::try_join_all(sends.into_iter().rev()).await.expect("every send acknowledged");
        assert_eq!(receive_from(&mut devices[1].deliveries, 0, 50).await, (0..50).collect::<Vec<_>>());
        server.abort();
    }
}
