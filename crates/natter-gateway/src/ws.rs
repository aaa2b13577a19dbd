//! The WebSocket endpoint: one task per socket that reads client frames, writes queued server
//! frames, pings, and closes with a proper close frame on idleness, slowness, an oversized
//! frame, shutdown, the end of its session (logout, revocation, password change: on every
//! gateway, through the bus) or the expiry of the access token it was opened with.

use std::time::Duration;

use tokio::time::Instant;

use axum::extract::State;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::http::StatusCode;
use axum::http::{HeaderMap, Uri};
use axum::response::Response;
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use natter_core::ids::{ConversationId, Seq, UserId};
use natter_core::service::accounts::AuthContext;
use natter_core::service::messages::SendInput;
use natter_core::service::presence::PresenceService;
use natter_proto::{ClientFrame, ServerFrame};
use tokio::sync::mpsc;

use crate::error::ApiError;
use crate::extract::bearer_token;
use crate::hub::Dropped;
use crate::state::AppState;

const CLOSE_GOING_AWAY: u16 = 1001;
const CLOSE_POLICY: u16 = 1008;
const CLOSE_TOO_BIG: u16 = 1009;
const CLOSE_TRY_AGAIN_LATER: u16 = 1013;
/// The socket's session was ended (logout, revoked, password changed): log in again.
const CLOSE_SESSION_ENDED: u16 = 4001;
/// The access token the socket was opened with expired: refresh it and reconnect.
const CLOSE_TOKEN_EXPIRED: u16 = 4002;
/// How long a closing socket waits for the client's close frame (the closing handshake) before
/// dropping the connection: a client still sending is not cut off with a reset.
const CLOSE_HANDSHAKE: Duration = Duration::from_secs(2);

/// `GET /api/v1/ws` — authenticate (header or `?token=`), then upgrade.
#[utoipa::path(get, path = "/api/v1/ws", tag = "realtime",
    params(("token" = Option<String>, Query, description = "access token, if not in the Authorization header")),
    responses((status = 101, description = "switching to the WebSocket protocol; see docs/API.md"),
              (status = 401, body = natter_proto::ErrorBody)))]
pub async fn upgrade(
    State(state): State<AppState>,
    headers: HeaderMap,
    uri: Uri,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    let token = bearer_token(&headers).map(str::to_owned).or_else(|| query_token(uri.query()));
    let token =
        token.ok_or_else(|| ApiError::request(StatusCode::UNAUTHORIZED, "unauthorized", "missing access token"))?;
    let authenticated_at = Instant::now();
    let context = state.api.accounts.authenticate(&token).await?;
    let upgrade = upgrade.map_err(|rejection| {
        ApiError::request(StatusCode::BAD_REQUEST, "websocket_upgrade_required", rejection.body_text())
    })?;
    let settings = &state.settings;
    Ok(upgrade
        .read_buffer_size(4096)
        .write_buffer_size(4096)
        .max_message_size(settings.ws_max_frame_bytes)
        .max_frame_size(settings.ws_max_frame_bytes)
        .on_upgrade(move |socket| run_socket(state, socket, Authenticated { context, token, at: authenticated_at })))
}

fn query_token(query: Option<&str>) -> Option<String> {
    query?.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=')?;
        (key == "token" && !value.is_empty()).then(|| value.to_owned())
    })
}

/// What the upgrade established: who, with which token, checked when.
struct Authenticated {
    context: AuthContext,
    token: String,
    at: Instant,
}

async fn run_socket(state: AppState, socket: WebSocket, auth: Authenticated) {
    let Authenticated { context, token, at: authenticated_at } = auth;
    let user = context.user_id.clone();
    let mut registration = state.hub.register(&user, &context.session_id);
    // A revocation that reached this gateway between the token check and the registration found
    // no socket to close: check again.
    let revoked =
        state.hub.revoked_since(&user, authenticated_at) && state.api.accounts.authenticate(&token).await.is_err();
    let expiry = token_expiry(&context);
    let device = PresenceService::device(&context.session_id, registration.id);
    state.presence.connected(&user, &device).await;
    let (mut sender, mut receiver) = socket.split();
    let hello = ServerFrame::Hello {
        user_id: user.0.clone(),
        session_id: context.session_id.0.clone(),
        heartbeat_secs: state.settings.ws_ping_interval.as_secs(),
    };
    let mut ping = tokio::time::interval(state.settings.ws_ping_interval);
    ping.tick().await;
    let mut last_heard = Instant::now();
    let mut shutdown = state.hub.shutdown_signal();
    let mut close: Option<(u16, String)> = None;
    let mut typing = TypingGate::default();
    if revoked {
        close = Some((CLOSE_SESSION_ENDED, "session ended; log in again".into()));
    } else if send_frame(&mut sender, &hello).await.is_ok() {
        let expired = tokio::time::sleep_until(expiry);
        tokio::pin!(expired);
        loop {
            tokio::select! {
                incoming = receiver.next() => {
                    let message = match incoming {
                        Some(Ok(message)) => message,
                        Some(Err(error)) => {
                            if is_too_big(error) {
                                let limit = state.settings.ws_max_frame_bytes;
                                close = Some((CLOSE_TOO_BIG, format!("frame larger than {limit} bytes")));
                            }
                            break;
                        }
                        None => break,
                    };
                    last_heard = Instant::now();
                    let reply = match message {
                        Message::Text(text) => {
                            // Frames queued for this socket keep flowing while its request runs
                            // (a send waits for its commit): a client's own pushes never pile up
                            // behind its requests.
                            let handling = handle_text(&state, &context, &mut typing, text.as_str());
                            tokio::pin!(handling);
                            let mut closed = false;
                            let reply = loop {
                                tokio::select! {
                                    reply = &mut handling => break reply,
                                    queued = registration.queue.recv(), if !closed => {
                                        let Some(frame) = queued else { closed = true; continue };
                                        if write_queued(&mut sender, frame, &mut registration.queue).await.is_err() {
                                            closed = true;
                                        }
                                    }
                                }
                            };
                            if closed {
                                close = registration.control.reason().map(dropped_close);
                                break;
                            }
                            reply
                        }
                        Message::Binary(_) => Some(error_frame(None, "unsupported_frame", "send JSON in text frames")),
                        Message::Close(_) => break,
                        Message::Ping(_) | Message::Pong(_) => None,
                    };
                    if let Some(reply) = reply
                        && send_frame(&mut sender, &reply).await.is_err()
                    {
                        break;
                    }
                }
                queued = registration.queue.recv() => {
                    // A closed queue means the hub dropped the socket.
                    let Some(frame) = queued else {
                        close = registration.control.reason().map(dropped_close);
                        break;
                    };
                    if write_queued(&mut sender, frame, &mut registration.queue).await.is_err() { break }
                }
                why = registration.control.dropped() => {
                    close = Some(dropped_close(why));
                    break;
                }
                () = &mut expired => {
                    close = Some((CLOSE_TOKEN_EXPIRED, "access token expired; refresh it and reconnect".into()));
                    break;
                }
                _ = ping.tick() => {
                    if last_heard.elapsed() > state.settings.ws_idle_timeout {
                        close = Some((CLOSE_POLICY, "idle timeout".into()));
                        break;
                    }
                    if sender.send(Message::Ping(Default::default())).await.is_err() { break }
                }
                _ = shutdown.changed() => {
                    close = Some((CLOSE_GOING_AWAY, "server shutting down".into()));
                    break;
                }
            }
        }
    }
    if let Some((code, reason)) = close {
        let frame = CloseFrame { code, reason: Utf8Bytes::from(reason) };
        if sender.send(Message::Close(Some(frame))).await.is_ok() {
            // Read until the client answers the close (or goes away) so that whatever it was
            // still sending is consumed rather than answered with a TCP reset.
            let _ = tokio::time::timeout(CLOSE_HANDSHAKE, async {
                while let Some(Ok(message)) = receiver.next().await {
                    if matches!(message, Message::Close(_)) {
                        break;
                    }
                }
            })
            .await;
        }
    }
    let _ = sender.close().await;
    state.hub.unregister(&user, registration.id);
    state.presence.disconnected(&user, &device).await;
}

fn dropped_close(why: Dropped) -> (u16, String) {
    match why {
        Dropped::TooSlow => (CLOSE_TRY_AGAIN_LATER, "client too slow; reconnect and sync".into()),
        Dropped::SessionEnded => (CLOSE_SESSION_ENDED, "session ended; log in again".into()),
    }
}

/// When the socket's access token expires (by this server's clock: no leeway for skew is needed).
fn token_expiry(context: &AuthContext) -> Instant {
    let left = (context.expires_at - chrono::Utc::now()).to_std().unwrap_or(Duration::ZERO);
    Instant::now() + left
}

/// Whether a read failed because the client's frame or message exceeded the size limit.
fn is_too_big(error: axum::Error) -> bool {
    error
        .into_inner()
        .downcast::<tungstenite::Error>()
        .is_ok_and(|error| matches!(*error, tungstenite::Error::Capacity(_)))
}

/// Most queued frames written before one flush.
const WRITE_BATCH: usize = 64;

/// Writes `first` and whatever else is already queued (up to [`WRITE_BATCH`]) with one flush:
/// a socket that fell a few frames behind catches up in one write instead of one per frame.
async fn write_queued<S>(sender: &mut S, first: Bytes, queue: &mut mpsc::Receiver<Bytes>) -> Result<(), ()>
where
    S: SinkExt<Message> + Unpin,
{
    let mut next = Some(first);
    let mut written = 0;
    while let Some(frame) = next.take() {
        if let Ok(text) = Utf8Bytes::try_from(frame) {
            sender.feed(Message::Text(text)).await.map_err(|_| ())?;
        }
        written += 1;
        if written < WRITE_BATCH {
            next = queue.try_recv().ok();
        }
    }
    sender.flush().await.map_err(|_| ())
}

async fn send_frame<S>(sender: &mut S, frame: &ServerFrame) -> Result<(), ()>
where
    S: SinkExt<Message> + Unpin,
{
    let text = serde_json::to_string(frame).map_err(|_| ())?;
    sender.send(Message::Text(Utf8Bytes::from(text))).await.map_err(|_| ())
}

/// Which `typing` frames of one socket go on to the chat services: at most one per conversation
/// per [`TypingGate::EVERY`]. The service relays at most one per 2 s anyway; dropping the rest
/// here keeps a flood of typing frames from turning into a flood of calls to a chat node.
#[derive(Default)]
struct TypingGate {
    forwarded: std::collections::HashMap<String, Instant>,
}

impl TypingGate {
    const EVERY: Duration = Duration::from_secs(1);

    fn admit(&mut self, conversation: &str) -> bool {
        let now = Instant::now();
        if self.forwarded.len() > 256 {
            self.forwarded.retain(|_, at| now.duration_since(*at) < Self::EVERY);
        }
        match self.forwarded.get(conversation) {
            Some(at) if now.duration_since(*at) < Self::EVERY => false,
            _ => {
                self.forwarded.insert(conversation.to_owned(), now);
                true
            }
        }
    }
}

/// Handles one client frame; returns the direct reply, if any.
async fn handle_text(
    state: &AppState,
    context: &AuthContext,
    typing: &mut TypingGate,
    text: &str,
) -> Option<ServerFrame> {
    let frame: ClientFrame = match serde_json::from_str(text) {
        Ok(frame) => frame,
        Err(error) => {
            let id = serde_json::from_str::<serde_json::Value>(text)
                .ok()
                .and_then(|v| v.get("id").and_then(|id| id.as_str().map(str::to_owned)));
            return Some(error_frame(id, "invalid_frame", &format!("unreadable frame: {error}")));
        }
    };
    let me = &context.user_id;
    match frame {
        ClientFrame::Send { id, conversation_id, message } => {
            let started = Instant::now();
            let input = SendInput {
                client_msg_id: message.client_msg_id,
                kind: message.kind,
                text: message.text,
                file_id: message.file_id,
                reply_to: message.reply_to.map(Seq::new),
                mentions: message.mentions.into_iter().map(UserId).collect(),
            };
            match state.api.messages.send(me, &ConversationId(conversation_id), input).await {
                Ok(sent) => {
                    if sent.created {
                        state.metrics.messages_sent.inc();
                        state.metrics.send_latency.observe(started.elapsed().as_secs_f64());
                    }
                    Some(ServerFrame::Sent { id, message: natter_core::wire::message_view(&sent.message) })
                }
                Err(error) => Some(api_error_frame(Some(id), error.into())),
            }
        }
        ClientFrame::Read { id, conversation_id, seq } => {
            match state.api.messages.mark_read(me, &ConversationId(conversation_id), Seq::new(seq)).await {
                Ok(_) => None,
                Err(error) => Some(api_error_frame(id, error.into())),
            }
        }
        ClientFrame::Typing { conversation_id } => {
            if !typing.admit(&conversation_id) {
                return None;
            }
            match state.api.messages.typing(me, &ConversationId(conversation_id)).await {
                Ok(()) => None,
                Err(error) => Some(api_error_frame(None, error.into())),
            }
        }
        ClientFrame::Ping { id } => Some(ServerFrame::Pong { id }),
    }
}

fn api_error_frame(id: Option<String>, error: ApiError) -> ServerFrame {
    let (status, code, message) = error.parts();
    if status.is_server_error() {
        tracing::error!(?error, "WebSocket request failed");
    }
    error_frame(id, code, &message)
}

fn error_frame(id: Option<String>, code: &str, message: &str) -> ServerFrame {
    ServerFrame::Error { id, code: code.to_owned(), message: message.to_owned() }
}
