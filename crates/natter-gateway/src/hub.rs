//! The local end of delivery: which sockets of which users this process holds, and the task that
//! moves bus events onto them.
//!
//! Each socket has a bounded queue. Delivery never waits: a socket whose queue is full is told to
//! close (its client will reconnect and sync), so one slow client cannot hold up anyone else.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use natter_core::bus::Event;
use natter_core::ids::UserId;
use parking_lot::RwLock;
use tokio::sync::{Notify, mpsc, watch};
use tokio::time::{Instant, sleep_until};

use crate::metrics::Metrics;
use crate::sequencer::Sequencer;

/// One registered socket, as the hub sees it.
struct Socket {
    id: u64,
    queue: mpsc::Sender<Bytes>,
    control: Arc<SocketControl>,
}

/// Signals from the hub to one socket's task.
#[derive(Default)]
pub struct SocketControl {
    /// Set when the client fell behind; the socket should close.
    pub too_slow: Notify,
}

/// What a socket task gets back when it registers.
pub struct Registration {
    pub id: u64,
    pub queue: mpsc::Receiver<Bytes>,
    pub control: Arc<SocketControl>,
}

pub struct Hub {
    sockets: RwLock<HashMap<UserId, Vec<Socket>>>,
    next_id: AtomicU64,
    queue_frames: usize,
    metrics: Arc<Metrics>,
    shutdown: watch::Sender<bool>,
}

impl Hub {
    pub fn new(queue_frames: usize, metrics: Arc<Metrics>) -> Self {
        Self {
            sockets: RwLock::default(),
            next_id: AtomicU64::new(1),
            queue_frames,
            metrics,
            shutdown: watch::Sender::new(false),
        }
    }

    pub fn register(&self, user: &UserId) -> Registration {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (queue, receiver) = mpsc::channel(self.queue_frames);
        let control = Arc::new(SocketControl::default());
        self.sockets.write().entry(user.clone()).or_default().push(Socket { id, queue, control: control.clone() });
        self.metrics.ws_connections.inc();
        Registration { id, queue: receiver, control }
    }

    pub fn unregister(&self, user: &UserId, id: u64) {
        let mut sockets = self.sockets.write();
        if let Some(list) = sockets.get_mut(user) {
            let before = list.len();
            list.retain(|s| s.id != id);
            if list.len() < before {
                self.metrics.ws_connections.dec();
            }
            if list.is_empty() {
                sockets.remove(user);
            }
        }
    }

    /// Queues an event on every local socket of its recipients.
    pub fn deliver(&self, event: &Event) {
        let mut too_slow = Vec::new();
        {
            let sockets = self.sockets.read();
            for user in &event.recipients {
                let Some(list) = sockets.get(user) else { continue };
                for socket in list {
                    match socket.queue.try_send(event.frame.clone()) {
                        Ok(()) => {
                            self.metrics.events_delivered.inc();
                        }
                        Err(mpsc::error::TrySendError::Full(_)) => {
                            too_slow.push((user.clone(), socket.id, socket.control.clone()))
                        }
                        // The socket is closing; its task unregisters it.
                        Err(mpsc::error::TrySendError::Closed(_)) => {}
                    }
                }
            }
        }
        for (user, id, control) in too_slow {
            tracing::info!(user = %user, socket = id, "closing a WebSocket whose client fell behind");
            self.metrics.ws_slow_disconnects.inc();
            self.unregister(&user, id);
            control.too_slow.notify_one();
        }
    }

    /// Runs until the bus stream ends: every event goes to the local sockets of its recipients,
    /// log entries in `seq` order per conversation (see [`Sequencer`]). The caller subscribes
    /// first, so that no event published after start-up is missed.
    pub async fn run_dispatcher(self: Arc<Self>, mut events: BoxStream<'static, Event>) {
        let mut sequencer = Sequencer::default();
        loop {
            let deadline = sequencer.next_deadline();
            tokio::select! {
                event = events.next() => {
                    let Some(event) = event else { break };
                    for event in sequencer.accept(event, Instant::now()) {
                        self.deliver(&event);
                    }
                }
                () = sleep_until(deadline.unwrap_or_else(Instant::now)), if deadline.is_some() => {
                    for event in sequencer.expire(Instant::now()) {
                        self.deliver(&event);
                    }
                }
            }
        }
        tracing::warn!("bus subscription ended");
    }

    /// Tells every socket task to close with a "going away" frame.
    pub fn begin_shutdown(&self) {
        self.shutdown.send_replace(true);
    }

    pub fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.shutdown.subscribe()
    }

    pub fn socket_count(&self) -> usize {
        self.sockets.read().values().map(Vec::len).sum()
    }
}
