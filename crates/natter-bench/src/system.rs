//! The one interface every system under test implements, so that natter and each baseline are
//! driven by the same scenario code, with the same payloads, measured the same way.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use tokio::sync::mpsc;

use crate::payload::Stamp;

pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// A body as one device received it.
#[derive(Debug, Clone, Copy)]
pub struct Delivery {
    /// Parsed out of the body the sender wrote (see [`crate::payload`]).
    pub stamp: Stamp,
    /// [`crate::payload::now_us`] when the frame came off the socket, before any queueing in
    /// the load generator.
    pub received_us: u64,
    /// The system's own order number for the room, where it has one (natter's `seq`).
    pub seq: Option<u64>,
}

/// Sends one body into the device's room; resolves once the system acknowledged it (natter:
/// `sent`; Synapse: the send request's 200; the relaying ceiling: its `sent` frame; NATS and the
/// broadcasting ceiling: the frame is written).
///
/// Contract: the body is queued for the wire when `send` is called, not when the returned
/// future is first polled, so that one device's bodies leave in call order however the
/// scenario awaits the futures (it keeps several in flight).
pub type SendFn = Arc<dyn Fn(String) -> BoxFuture<anyhow::Result<()>> + Send + Sync>;

/// One connected client device, member of one room.
pub struct Device {
    /// Which member of the room this is (0-based); bodies it sends carry this as `sender`.
    pub member: u32,
    pub send: SendFn,
    /// Every body delivered to this device, its own sends included where the system echoes
    /// them (the scenarios skip a device's own bodies). The transport's reader task feeds it.
    pub deliveries: mpsc::UnboundedReceiver<Delivery>,
}

/// A system under test, already running.
pub trait System: Send + Sync {
    /// Name in the report, e.g. `natter (SQLite)`.
    fn name(&self) -> String;

    /// The server processes to account CPU and memory to (empty: none measured).
    fn server_pids(&self) -> Vec<u32>;

    /// The processes that hold the connections, for memory per connection (natter's cluster
    /// shape leaves its database out: its shared buffers are counted once per backend).
    fn gateway_pids(&self) -> Vec<u32> {
        self.server_pids()
    }

    /// Sets up a room of `members` members (users, subscriptions…), each with one connected
    /// device, and returns the devices, member 0 first. Everything the system needs before the
    /// first send (accounts, friendship, group, subscriptions) is done before this returns.
    fn room(&self, members: usize) -> impl Future<Output = anyhow::Result<Vec<Device>>> + Send;

    /// Two devices that talk to each other, for the direct scenario: each body one sends reaches
    /// the other, and the send resolves once the system acknowledged it. By default a room of two
    /// (natter makes that a direct conversation); the ceiling relays instead of broadcasting.
    fn pair(&self) -> impl Future<Output = anyhow::Result<Vec<Device>>> + Send {
        self.room(2)
    }

    /// WebSocket URLs (and the first text frame to send after connecting, if the protocol needs
    /// one) for `count` idle authenticated connections, for the connections scenario. `None`:
    /// the system does not take part in that scenario.
    fn idle_endpoints(&self, count: usize) -> impl Future<Output = anyhow::Result<Option<IdleEndpoints>>> + Send;
}

/// Where idle connections go.
#[derive(Debug, Clone)]
pub struct IdleEndpoints {
    /// Connection `i` goes to `urls[i % urls.len()]`.
    pub urls: Vec<String>,
    /// Sent once right after the WebSocket opens (e.g. NATS's `CONNECT {...}\r\n`).
    pub hello: Option<String>,
}
