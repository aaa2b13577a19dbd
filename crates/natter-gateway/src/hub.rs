//! The local end of delivery: which sockets of which users this process holds, and the task that
//! moves bus events onto them.
//!
//! A session revocation (an event with `ends`) closes the matching sockets instead of writing to
//! them, on every gateway that holds one.
//!
//! Each socket has a bounded queue. Delivery never waits: a socket whose queue is full is told to
//! close (its client will reconnect and sync), so one slow client cannot hold up anyone else.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use natter_core::bus::{Event, SessionEnd};
use natter_core::ids::{SessionId, UserId};
use parking_lot::{Mutex, RwLock};
use std::time::Duration;
use tokio::sync::{Notify, mpsc, watch};
use tokio::time::{Instant, sleep_until};

use crate::metrics::Metrics;
use crate::sequencer::{Counts as SequencerCounts, Sequencer};

/// One registered socket, as the hub sees it.
struct Socket {
    id: u64,
    session: SessionId,
    registered_at: Instant,
    queue: mpsc::Sender<Bytes>,
    control: Arc<SocketControl>,
}

/// Why the hub dropped a socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dropped {
    /// The client fell behind.
    TooSlow,
    /// The socket's session was revoked.
    SessionEnded,
}

/// Signals from the hub to one socket's task. The hub records why before it unregisters the
/// socket (which also closes its queue), so the task reads the same reason whichever of the two
/// it notices first.
#[derive(Default)]
pub struct SocketControl {
    dropped: Mutex<Option<Dropped>>,
    notify: Notify,
}

impl SocketControl {
    fn drop_socket(&self, why: Dropped) {
        self.dropped.lock().get_or_insert(why);
        self.notify.notify_one();
    }

    /// Waits until the hub drops the socket; returns why.
    pub async fn dropped(&self) -> Dropped {
        loop {
            if let Some(why) = self.reason() {
                return why;
            }
            self.notify.notified().await;
        }
    }

    /// Why the hub dropped the socket, if it did.
    pub fn reason(&self) -> Option<Dropped> {
        *self.dropped.lock()
    }
}

/// How long a revocation is remembered for sockets that authenticated just before it and
/// register just after (see [`Hub::revoked_since`]). Far longer than an upgrade takes.
const REVOCATION_MEMORY: Duration = Duration::from_secs(60);

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
            shutdown: watch::Sender::new(false),
            revocations: Mutex::default(),
        }
    }

    pub fn register(&self, user: &UserId, session: &SessionId) -> Registration {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (queue, receiver) = mpsc::channel(self.queue_frames);
        let control = Arc::new(SocketControl::default());
        let socket =
            Socket { id, session: session.clone(), registered_at: Instant::now(), queue, control: control.clone() };
        self.sockets.write().entry(user.clone()).or_default().push(socket);
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
        let ended: Vec<(u64, Arc<SocketControl>)> = self
            .sockets
            .read()
            .get(user)
            .map(|list| list.iter().filter(|s| ends.covers(&s.session)).map(|s| (s.id, s.control.clone())).collect())
            .unwrap_or_default();
        let any = !ended.is_empty();
        for (id, control) in ended {
            tracing::info!(user = %user, socket = id, "closing a WebSocket whose session ended");
            control.drop_socket(Dropped::SessionEnded);
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
        let mut too_slow = Vec::new();
        let mut needed = false;
        {
            let sockets = self.sockets.read();
            for user in &event.recipients {
                let Some(list) = sockets.get(user) else { continue };
                needed |= !list.is_empty();
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
        if needed {
            self.metrics.bus_events_needed.inc();
        }
        for (user, id, control) in too_slow {
            tracing::info!(user = %user, socket = id, "closing a WebSocket whose client fell behind");
            self.metrics.ws_slow_disconnects.inc();
            control.drop_socket(Dropped::TooSlow);
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
