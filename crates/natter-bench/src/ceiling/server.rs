//! The ceiling's server: rooms of sockets on axum's `ws`, one task per socket, a bounded
//! per-socket queue of `Bytes` filled with `try_send` (as natter's hub does), the frame encoded
//! once per event.
//!
//! Two kinds of room, each at its own path:
//!
//! * `GET /ws/{room}` broadcasts every text frame to every socket of the room, the sender's
//!   included (fan-out).
//! * `GET /relay/{room}` takes requests `"{id} {body}"`, queues `"sent {id}"` on the sender's
//!   socket and `body` on every socket of the room, the sender's included: the three frames of a
//!   natter direct send (`sent`, and `message` to every device of both members). Nothing is
//!   stored.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

use anyhow::Context;
use axum::Router;
use axum::extract::ws::{CloseFrame, Message as ServerMessage, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{Path as UrlPath, State};
use axum::response::Response;
use axum::routing::get;
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use tokio::sync::{Notify, mpsc};

/// natter's default `limits.ws_queue_frames`.
const QUEUE_FRAMES: usize = 1024;
/// Sent to a socket once it is in its room, so that a client knows broadcasts will reach it.
pub(super) const READY: &str = "ready";
/// Starts the acknowledgement of a relayed request: `"sent {id}"`.
pub(super) const SENT: &str = "sent ";
const CLOSE_TRY_AGAIN_LATER: u16 = 1013;

/// Serves `GET /ws/{room}` and `GET /relay/{room}` on `listen` until the process is killed.
pub async fn serve(listen: SocketAddr) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(listen).await.with_context(|| format!("cannot listen on {listen}"))?;
    serve_on(listener).await
}

pub(super) async fn serve_on(listener: tokio::net::TcpListener) -> anyhow::Result<()> {
    let router = Router::new()
        .route("/ws/{room}", get(upgrade_broadcast))
        .route("/relay/{room}", get(upgrade_relay))
        .with_state(Arc::new(Rooms::default()));
    axum::serve(listener, router).await.context("the ceiling server failed")
}

/// What a room does with a text frame from one of its sockets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Broadcast,
    Relay,
}

/// The sockets of each room. Broadcast and relay rooms never share a name: the relay's are
/// kept under a prefix no broadcast room name can have (`/` cannot occur in a path segment).
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

/// One socket's place in its room.
struct Joined {
    id: u64,
    queue: mpsc::Receiver<Bytes>,
    too_slow: Arc<Notify>,
}

impl Rooms {
    fn join(&self, room: &str) -> Joined {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (sender, queue) = mpsc::channel(QUEUE_FRAMES);
        let too_slow = Arc::new(Notify::new());
        let member = Member { id, queue: sender, too_slow: too_slow.clone() };
        self.rooms.write().unwrap_or_else(PoisonError::into_inner).entry(room.to_owned()).or_default().push(member);
        Joined { id, queue, too_slow }
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

    /// Queues `frame` on each socket of `room`, after `ack` on the socket it names, without
    /// waiting, like natter's hub: a socket whose queue is full is told to close.
    fn queue_each(&self, room: &str, frame: &Bytes, ack: Option<(u64, Bytes)>) {
        let mut too_slow = Vec::new();
        {
            let rooms = self.rooms.read().unwrap_or_else(PoisonError::into_inner);
            let Some(members) = rooms.get(room) else { return };
            for member in members {
                let ack = ack.as_ref().filter(|(to, _)| *to == member.id).map(|(_, ack)| ack.clone());
                let queued = ack.into_iter().chain([frame.clone()]).try_for_each(|f| member.queue.try_send(f));
                if let Err(mpsc::error::TrySendError::Full(_)) = queued {
                    too_slow.push((member.id, member.too_slow.clone()));
                }
            }
        }
        for (id, notify) in too_slow {
            self.leave(room, id);
            notify.notify_one();
        }
    }

    /// A text frame from socket `from` of `room`.
    fn handle(&self, mode: Mode, room: &str, from: u64, frame: Bytes) {
        match mode {
            Mode::Broadcast => self.queue_each(room, &frame, None),
            Mode::Relay => {
                let Some((id, body)) = split_request(&frame) else { return };
                let mut ack = Vec::with_capacity(SENT.len() + id.len());
                ack.extend_from_slice(SENT.as_bytes());
                ack.extend_from_slice(&id);
                self.queue_each(room, &body, Some((from, Bytes::from(ack))));
            }
        }
    }
}

/// `"{id} {body}"` → (`id`, `body`), both slices of `frame` (no copy of the body).
fn split_request(frame: &Bytes) -> Option<(Bytes, Bytes)> {
    let space = frame.iter().position(|byte| *byte == b' ')?;
    Some((frame.slice(..space), frame.slice(space + 1..)))
}

async fn upgrade_broadcast(
    State(rooms): State<Arc<Rooms>>,
    UrlPath(room): UrlPath<String>,
    upgrade: WebSocketUpgrade,
) -> Response {
    upgrade_into(rooms, Mode::Broadcast, room, upgrade)
}

async fn upgrade_relay(
    State(rooms): State<Arc<Rooms>>,
    UrlPath(room): UrlPath<String>,
    upgrade: WebSocketUpgrade,
) -> Response {
    upgrade_into(rooms, Mode::Relay, format!("relay/{room}"), upgrade)
}

fn upgrade_into(rooms: Arc<Rooms>, mode: Mode, room: String, upgrade: WebSocketUpgrade) -> Response {
    upgrade
        .read_buffer_size(4096)
        .write_buffer_size(4096)
        .on_upgrade(move |socket| run_socket(rooms, mode, room, socket))
}

async fn run_socket(rooms: Arc<Rooms>, mode: Mode, room: String, socket: WebSocket) {
    let Joined { id, mut queue, too_slow } = rooms.join(&room);
    let (mut sender, mut receiver) = socket.split();
    let mut close = None;
    if sender.send(ServerMessage::Text(Utf8Bytes::from(READY))).await.is_ok() {
        loop {
            tokio::select! {
                incoming = receiver.next() => {
                    let Some(Ok(message)) = incoming else { break };
                    match message {
                        ServerMessage::Text(text) => rooms.handle(mode, &room, id, Bytes::from(text)),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_splits_at_its_first_space() {
        let frame = Bytes::from_static(b"17 12:0:3: with spaces");
        let (id, body) = split_request(&frame).expect("a request");
        assert_eq!((&id[..], &body[..]), (&b"17"[..], &b"12:0:3: with spaces"[..]));
        assert!(split_request(&Bytes::from_static(b"no-space")).is_none());
    }

    #[tokio::test]
    async fn a_relay_acknowledges_the_sender_and_queues_the_body_on_every_socket() {
        let rooms = Rooms::default();
        let mut a = rooms.join("relay/r");
        let mut b = rooms.join("relay/r");
        rooms.handle(Mode::Relay, "relay/r", a.id, Bytes::from_static(b"5 hello"));
        assert_eq!(a.queue.recv().await.as_deref(), Some(&b"sent 5"[..]));
        assert_eq!(a.queue.recv().await.as_deref(), Some(&b"hello"[..]), "the sender's copy, as natter's");
        assert_eq!(b.queue.recv().await.as_deref(), Some(&b"hello"[..]));
        assert!(a.queue.try_recv().is_err() && b.queue.try_recv().is_err(), "nothing more");
    }
}
