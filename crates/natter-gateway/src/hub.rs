//! The local end of delivery: which sockets of which users this process holds, and the task that
//! moves bus events onto them.
//!
//! A session revocation (an event with `ends`) closes the matching sockets instead of writing to
//! them, on every gateway that holds one.
//!
//! Each socket has a bounded queue ([`SocketQueue`]). Delivery never waits: a socket whose queue is full is told to
//! close (its client will reconnect and sync), so one slow client cannot hold up anyone else.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use axum::extract::ws::Utf8Bytes;
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use natter_core::bus::{Event, SessionEnd};
use natter_core::ids::{SessionId, UserId};
use parking_lot::{Mutex, RwLock};
use std::time::Duration;
use tokio::time::{Instant, sleep_until};

use crate::metrics::Metrics;
use crate::sequencer::{Counts as SequencerCounts, Sequencer};
use crate::socket_queue::{Dropped, Full, SocketQueue};

/// One registered socket, as the hub sees it.
struct Socket {
    id: u64,
    session: SessionId,
    registered_at: Instant,
    queue: Arc<SocketQueue>,
}

/// How long a revocation is remembered for sockets that authenticated just before it and
/// register just after (see [`Hub::revoked_since`]). Far longer than an upgrade takes.
const REVOCATION_MEMORY: Duration = Duration::from_secs(60);

/// What a socket task gets back when it registers.
pub struct Registration {
    pub id: u64,
    pub queue: Arc<SocketQueue>,
}

pub struct Hub {
    sockets: RwLock<HashMap<UserId, Vec<Socket>>>,
    next_id: AtomicU64,
    queue_frames: usize,
    metrics: Arc<Metrics>,
    /// Set once by [`Hub::begin_shutdown`]; a socket registered after it is dropped at once.
    shutting_down: AtomicBool,
    /// When each user last had sessions revoked (pruned after [`REVOCATION_MEMORY`]).
    revocations: Mutex<HashMap<UserId, Instant>>,
}

impl Hub {
    pub fn new(queue_frames: usize, metrics: Arc<Metrics>) -> Self {
        Self {
            sockets: RwLock::default(),
            next_id: AtomicU64::new(1),
            queue_frames,
            metrics,
            shutting_down: AtomicBool::new(false),
            revocations: Mutex::default(),
        }
    }

    pub fn register(&self, user: &UserId, session: &SessionId) -> Registration {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let queue = Arc::new(SocketQueue::new());
        let socket = Socket { id, session: session.clone(), registered_at: Instant::now(), queue: queue.clone() };
        {
            let mut sockets = self.sockets.write();
            sockets.entry(user.clone()).or_default().push(socket);
            // Under the lock that `begin_shutdown` takes after setting the flag: either it sees
            // this socket, or this sees the flag.
            if self.shutting_down.load(Ordering::SeqCst) {
                queue.drop_socket(Dropped::ShuttingDown);
            }
        }
        self.metrics.ws_connections.inc();
        Registration { id, queue }
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

    /// Whether `user` had sessions revoked at or after `since`. A socket authenticated before a
    /// revocation and registered after it missed the close; it checks this once registered.
    pub fn revoked_since(&self, user: &UserId, since: Instant) -> bool {
        self.revocations.lock().get(user).is_some_and(|at| *at >= since)
    }

    /// Closes the local sockets of `user` whose sessions `ends` covers; whether there were any.
    fn end_sessions(&self, user: &UserId, ends: &SessionEnd) -> bool {
        let now = Instant::now();
        {
            let mut revocations = self.revocations.lock();
            revocations.retain(|_, at| now.duration_since(*at) < REVOCATION_MEMORY);
            revocations.insert(user.clone(), now);
        }
        let ended: Vec<(u64, Arc<SocketQueue>)> = self
            .sockets
            .read()
            .get(user)
            .map(|list| list.iter().filter(|s| ends.covers(&s.session)).map(|s| (s.id, s.queue.clone())).collect())
            .unwrap_or_default();
        let any = !ended.is_empty();
        for (id, queue) in ended {
            tracing::info!(user = %user, socket = id, "closing a WebSocket whose session ended");
            queue.drop_socket(Dropped::SessionEnded);
            self.unregister(user, id);
        }
        any
    }

    /// Queues an event on every local socket of its recipients. Counts it as received, and as
    /// needed when at least one local socket is a recipient's (with targeted delivery the two
    /// should be nearly equal; with broadcast every node receives every event).
    pub fn deliver(&self, event: &Event) {
        self.metrics.bus_events_received.inc();
        if let Some(ends) = &event.ends {
            let mut any = false;
            for user in &event.recipients {
                any |= self.end_sessions(user, ends);
            }
            if any {
                self.metrics.bus_events_needed.inc();
            }
            return;
        }
        // Checked once per event, not once per socket: a socket writes it as a text frame.
        let Ok(frame) = Utf8Bytes::try_from(event.frame.clone()) else {
            tracing::error!("an event's frame is not UTF-8; dropped");
            return;
        };
        let mut too_slow = Vec::new();
        let mut needed = false;
        let mut delivered = 0;
        {
            let sockets = self.sockets.read();
            for user in &event.recipients {
                let Some(list) = sockets.get(user) else { continue };
                needed |= !list.is_empty();
                for socket in list {
                    match socket.queue.push(frame.clone(), self.queue_frames) {
                        Ok(()) => delivered += 1,
                        Err(Full) => too_slow.push((user.clone(), socket.id, socket.queue.clone())),
                    }
                }
            }
        }
        self.metrics.events_delivered.inc_by(delivered);
        if needed {
            self.metrics.bus_events_needed.inc();
        }
        for (user, id, queue) in too_slow {
            tracing::info!(user = %user, socket = id, "closing a WebSocket whose client fell behind");
            self.metrics.ws_slow_disconnects.inc();
            queue.drop_socket(Dropped::TooSlow);
            self.unregister(&user, id);
        }
    }

    fn count(&self, counts: SequencerCounts) {
        if counts != SequencerCounts::default() {
            self.metrics.sequencer_held.inc_by(counts.held);
            self.metrics.sequencer_given_up.inc_by(counts.given_up);
            self.metrics.sequencer_late.inc_by(counts.late);
        }
    }

    /// Since when the earliest local socket of `users` has been registered.
    fn followed_since(&self, users: &[UserId]) -> Option<Instant> {
        let sockets = self.sockets.read();
        users.iter().filter_map(|user| sockets.get(user)).flatten().map(|socket| socket.registered_at).min()
    }

    /// Runs until the bus stream ends: every event goes to the local sockets of its recipients,
    /// log entries in `seq` order per conversation (see [`Sequencer`]). The caller subscribes
    /// first, so that no event published after start-up is missed. `targeted`: the bus brings
    /// only events for this node's sockets, so a gap nobody here followed is not waited for.
    pub async fn run_dispatcher(self: Arc<Self>, mut events: BoxStream<'static, Event>, targeted: bool) {
        let mut sequencer = Sequencer::default();
        loop {
            let deadline = sequencer.next_deadline();
            tokio::select! {
                event = events.next() => {
                    let Some(event) = event else { break };
                    let now = Instant::now();
                    let ready = if targeted {
                        sequencer.accept_targeted(event, now, |event| self.followed_since(&event.recipients))
                    } else {
                        sequencer.accept(event, now)
                    };
                    for event in ready {
                        self.deliver(&event);
                    }
                    self.count(sequencer.take_counts());
                }
                () = sleep_until(deadline.unwrap_or_else(Instant::now)), if deadline.is_some() => {
                    for event in sequencer.expire(Instant::now()) {
                        self.deliver(&event);
                    }
                    self.count(sequencer.take_counts());
                }
            }
        }
        tracing::warn!("bus subscription ended");
    }

    /// Tells every socket task to close with a "going away" frame. The sockets stay registered
    /// until their tasks are done closing.
    pub fn begin_shutdown(&self) {
        self.shutting_down.store(true, Ordering::SeqCst);
        for socket in self.sockets.read().values().flatten() {
            socket.queue.drop_socket(Dropped::ShuttingDown);
        }
    }

    pub fn socket_count(&self) -> usize {
        self.sockets.read().values().map(Vec::len).sum()
    }
}
