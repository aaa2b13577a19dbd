//! The transport ceiling: a bare WebSocket server on the same library, runtime and delivery
//! path as natter's gateway ([`server`]), with no auth, no storage and no bus, run as a child
//! process. Fan-out runs against its broadcast rooms; direct against its relay rooms, where each
//! send is pushed to the peer and acknowledged to the sender as natter does. What natter costs
//! above this is the price of being a messenger.

mod server;

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use anyhow::{Context, anyhow, bail};
use futures_util::StreamExt;
use futures_util::stream::SplitStream;
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::Message;

pub use self::server::serve;
use self::server::{READY, SENT};
use crate::payload;
use crate::procs::Proc;
use crate::services::free_port;
use crate::system::{Delivery, Device, IdleEndpoints, SendFn, System};
use crate::wsclient::{CONNECT_TIMEOUT, Socket, Writer, connect_within_timeout};

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
        "ceiling (bare WebSocket)".to_owned()
    }

    fn server_pids(&self) -> Vec<u32> {
        vec![self.process.pid()]
    }

    async fn room(&self, members: usize) -> anyhow::Result<Vec<Device>> {
        let room = format!("r{}", self.next_room.fetch_add(1, Ordering::Relaxed));
        connect_room(self.port, Kind::Broadcast, &room, members).await
    }

    async fn pair(&self) -> anyhow::Result<Vec<Device>> {
        let room = format!("p{}", self.next_room.fetch_add(1, Ordering::Relaxed));
        connect_room(self.port, Kind::Relay, &room, 2).await
    }

    async fn idle_endpoints(&self, _count: usize) -> anyhow::Result<Option<IdleEndpoints>> {
        Ok(Some(IdleEndpoints { urls: vec![format!("ws://127.0.0.1:{}/ws/idle", self.port)], hello: None }))
    }
}

/// Which kind of room a device joins (see [`server`]).
#[derive(Debug, Clone, Copy)]
enum Kind {
    Broadcast,
    Relay,
}

/// `members` devices in room `room` of the server on `port`, each registered there on return.
async fn connect_room(port: u16, kind: Kind, room: &str, members: usize) -> anyhow::Result<Vec<Device>> {
    let path = match kind {
        Kind::Broadcast => "ws",
        Kind::Relay => "relay",
    };
    let url = format!("ws://127.0.0.1:{port}/{path}/{room}");
    let members = (0..members).map(|member| u32::try_from(member).context("too many members"));
    let members = members.collect::<anyhow::Result<Vec<u32>>>()?;
    futures_util::future::try_join_all(members.into_iter().map(|member| connect_device(&url, kind, member))).await
}

async fn connect_device(url: &str, kind: Kind, member: u32) -> anyhow::Result<Device> {
    let (sink, mut stream) = connect_within_timeout(url).await?.split();
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
    let writer = Writer::spawn(sink);
    let send: SendFn = match kind {
        Kind::Broadcast => {
            tokio::spawn(read_frames(stream, deliveries_tx, None));
            Arc::new(move |body: String| writer.write(Message::text(body)))
        }
        Kind::Relay => {
            let pending = Pending::default();
            // Resolves once the send function is dropped: the reader stops taking acks only then.
            let (alive, sends_gone) = oneshot::channel::<()>();
            tokio::spawn(read_frames(stream, deliveries_tx, Some((pending.clone(), sends_gone))));
            relayed_send(writer, pending, alive)
        }
    };
    Ok(Device { member, send, deliveries })
}

/// Sends waiting for their `sent {id}`, by id; closed once the socket's reader ends.
#[derive(Clone, Default)]
struct Pending(Arc<Mutex<Waiting>>);

#[derive(Default)]
struct Waiting {
    acks: HashMap<u64, oneshot::Sender<anyhow::Result<()>>>,
    closed: bool,
}

impl Pending {
    fn lock(&self) -> std::sync::MutexGuard<'_, Waiting> {
        // A panic while holding this lock cannot leave the map inconsistent; keep going.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Waits for `id`'s acknowledgement; false once the reader has ended (none would come).
    fn wait_for(&self, id: u64, ack: oneshot::Sender<anyhow::Result<()>>) -> bool {
        let mut waiting = self.lock();
        if !waiting.closed {
            waiting.acks.insert(id, ack);
        }
        !waiting.closed
    }

    fn acknowledge(&self, id: &str) {
        let Ok(id) = id.parse::<u64>() else { return };
        if let Some(ack) = self.lock().acks.remove(&id) {
            let _ = ack.send(Ok(()));
        }
    }

    fn is_empty(&self) -> bool {
        self.lock().acks.is_empty()
    }

    /// The reader ended: every send still waiting fails, and so does every later one.
    fn close(&self) {
        let mut waiting = self.lock();
        waiting.closed = true;
        for (_, ack) in waiting.acks.drain() {
            let _ = ack.send(Err(anyhow!("the socket closed before the send was acknowledged")));
        }
    }
}

/// Sends as `"{id} {body}"` and resolves on the server's `sent {id}`, as natter's `send`/`sent`.
/// `alive` is held until the function is dropped, which tells the reader.
fn relayed_send(writer: Writer, pending: Pending, alive: oneshot::Sender<()>) -> SendFn {
    let next_id = AtomicU64::new(0);
    Arc::new(move |body: String| {
        // Captures `alive`, so that it lives exactly as long as this function.
        let _ = &alive;
        let id = next_id.fetch_add(1, Ordering::Relaxed);
        let (ack, acked) = oneshot::channel();
        let queued = pending.wait_for(id, ack) && writer.queue(Message::text(format!("{id} {body}")));
        Box::pin(async move {
            anyhow::ensure!(queued, "the WebSocket is closed");
            acked.await.map_err(|_| anyhow!("the socket closed before the send was acknowledged"))?
        })
    })
}

/// Every text frame that holds a stamp becomes a delivery; with `relay` (the pending sends and
/// a signal that the send function is gone), `sent {id}` frames acknowledge a send. Anything
/// else is ignored. Ends (and lets go of the socket's read half) when the socket ends, or once
/// nobody needs it: the deliveries are dropped and, for a relay device, the send function too,
/// with no acknowledgement outstanding.
async fn read_frames(
    mut stream: SplitStream<Socket>,
    deliveries: mpsc::UnboundedSender<Delivery>,
    relay: Option<(Pending, oneshot::Receiver<()>)>,
) {
    let (pending, mut sends_gone) = match relay {
        Some((pending, sends_gone)) => (Some(pending), Some(sends_gone)),
        None => (None, None),
    };
    let mut reading_for_deliveries = true;
    loop {
        let unneeded = !reading_for_deliveries && sends_gone.is_none();
        if unneeded && pending.as_ref().is_none_or(Pending::is_empty) {
            break;
        }
        let message = tokio::select! {
            message = stream.next() => message,
            () = deliveries.closed(), if reading_for_deliveries => {
                reading_for_deliveries = false;
                continue;
            }
            _ = async { sends_gone.as_mut()?.await.ok() }, if sends_gone.is_some() => {
                sends_gone = None;
                continue;
            }
        };
        let Some(Ok(message)) = message else { break };
        let received_us = payload::now_us();
        let text = match &message {
            Message::Text(text) => text.as_str(),
            Message::Close(_) => break,
            _ => continue,
        };
        if let (Some(pending), Some(id)) = (&pending, text.strip_prefix(SENT)) {
            pending.acknowledge(id);
            continue;
        }
        let Some(stamp) = payload::parse(text) else { continue };
        // Once nobody reads the deliveries, the frames are dropped here.
        let _ = deliveries.send(Delivery { stamp, received_us, seq: None });
    }
    if let Some(pending) = pending {
        pending.close();
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

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
        let server = tokio::spawn(server::serve_on(listener));

        let mut devices = connect_room(port, Kind::Broadcast, "r1", 3).await.expect("a room of 3");
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
        let server = tokio::spawn(server::serve_on(listener));
        let mut devices = connect_room(port, Kind::Broadcast, "shared", 2).await.expect("a room of 2");
        let sends: Vec<_> = (0..50).map(|index| (devices[0].send)(payload::make(0, index, 32))).collect();
        // Awaited last first: the frames still leave in the order `send` was called.
        futures_util::future::try_join_all(sends.into_iter().rev()).await.expect("every send acknowledged");
        assert_eq!(receive_from(&mut devices[1].deliveries, 0, 50).await, (0..50).collect::<Vec<_>>());
        server.abort();
    }

    #[tokio::test]
    async fn a_relay_pair_delivers_to_both_and_acknowledges_every_send() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("local address").port();
        let server = tokio::spawn(server::serve_on(listener));
        let mut devices = connect_room(port, Kind::Relay, "p1", 2).await.expect("a pair");
        let sends: Vec<_> = (0..30).map(|index| (devices[0].send)(payload::make(0, index, 128))).collect();
        futures_util::future::try_join_all(sends).await.expect("every send acknowledged");
        (devices[1].send)(payload::make(1, 0, 128)).await.expect("the peer's send acknowledged");
        assert_eq!(receive_from(&mut devices[1].deliveries, 0, 30).await, (0..30).collect::<Vec<_>>());
        // Each side also gets its own bodies back, as a natter device gets `message` for its sends.
        assert_eq!(receive_from(&mut devices[0].deliveries, 0, 30).await, (0..30).collect::<Vec<_>>());
        assert_eq!(receive_from(&mut devices[0].deliveries, 1, 1).await, [0]);
        server.abort();
    }

    #[tokio::test]
    async fn a_relay_device_still_takes_acks_once_its_deliveries_are_dropped() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("local address").port();
        let server = tokio::spawn(server::serve_on(listener));
        let mut devices = connect_room(port, Kind::Relay, "p3", 2).await.expect("a pair");
        let Device { send, deliveries, .. } = devices.remove(0);
        // As the direct scenario does once a device has all its peer's bodies.
        drop(deliveries);
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        let sends: Vec<_> = (0..20).map(|index| send(payload::make(0, index, 64))).collect();
        futures_util::future::try_join_all(sends).await.expect("every send still acknowledged");
        assert_eq!(receive_from(&mut devices[0].deliveries, 0, 20).await, (0..20).collect::<Vec<_>>());
        server.abort();
    }
}
