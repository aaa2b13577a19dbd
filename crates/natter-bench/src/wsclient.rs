//! WebSocket client connections as the load generator opens them: small buffers (thousands
//! live in one process) and, for the connections scenario, a chosen loopback source address;
//! and [`Writer`], the shared write half the ceiling's and NATS's devices send through.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use anyhow::{Context, anyhow};
use futures_util::SinkExt;
use futures_util::stream::SplitSink;
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use crate::system::BoxFuture;

pub type Socket = WebSocketStream<TcpStream>;

/// How long a client waits for a connection to open (and for a server's first frame).
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// 4 KiB read buffers, as the servers under test use: the client's memory is not what is measured,
/// but 10,000 sockets at tungstenite's default 128 KiB would need over a gigabyte.
pub fn config() -> WebSocketConfig {
    WebSocketConfig::default().read_buffer_size(4096)
}

/// Opens `url` (`ws://127.0.0.1:PORT/...`), from `source` when given.
pub async fn connect(url: &str, source: Option<IpAddr>) -> anyhow::Result<Socket> {
    let parsed = reqwest::Url::parse(url).with_context(|| format!("bad URL {url}"))?;
    let host = parsed.host_str().context("the URL has no host")?;
    let port = parsed.port_or_known_default().context("the URL has no port")?;
    let address: SocketAddr =
        format!("{host}:{port}").parse().with_context(|| format!("{host} is not an IP address"))?;
    let socket = TcpSocket::new_v4()?;
    if let Some(source) = source {
        socket.bind(SocketAddr::new(source, 0)).with_context(|| format!("cannot bind to {source}"))?;
    }
    let stream = socket.connect(address).await.with_context(|| format!("cannot connect to {address}"))?;
    stream.set_nodelay(true)?;
    let (socket, _) = tokio_tungstenite::client_async_with_config(url, stream, Some(config()))
        .await
        .with_context(|| format!("WebSocket handshake with {url} failed"))?;
    Ok(socket)
}

/// Opens a WebSocket to `url` the way every client of the benchmark does ([`connect`]),
/// within [`CONNECT_TIMEOUT`].
pub(crate) async fn connect_within_timeout(url: &str) -> anyhow::Result<Socket> {
    tokio::time::timeout(CONNECT_TIMEOUT, connect(url, None))
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
