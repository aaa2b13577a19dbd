//! The WebSocket endpoint: one task per socket that reads client frames, writes queued server
//! frames, pings, and closes with a proper close frame on idleness, slowness, an oversized
//! frame, shutdown, the end of its session (logout, revocation, password change: on every
//! gateway, through the bus) or the expiry of the access token it was opened with.
//!
//! An open socket costs the server its WebSocket buffers plus its task and queue, so the task is
//! kept small: one timer (the next ping or the token's expiry, whichever is first), the hub's
//! queue that also carries the drop signal, and rare large futures (a request's service call,
//! presence updates) boxed while they run rather than reserved in every socket's task.

mod connection;
mod requests;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use axum::extract::State;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::http::StatusCode;
use axum::http::{HeaderMap, Uri};
use axum::response::Response;
use natter_core::error::ErrorCode;
use natter_core::ids::UserId;
use natter_core::service::accounts::AuthContext;
use natter_core::service::presence::PresenceService;
use natter_core::service::throttle;
use natter_proto::ServerFrame;

use self::connection::{Connection, Event, Request};
use self::requests::{FrameBudget, Handling, TypingGate};
use crate::client_addr::ClientIp;
use crate::error::ApiError;
use crate::extract::bearer_token;
use crate::socket_queue::{Dropped, SocketQueue};
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
              (status = 401, body = natter_proto::ErrorBody),
              (status = 429, body = natter_proto::ErrorBody, description = "`too_many_connections` from your address; see `Retry-After`")))]
pub async fn upgrade(
    State(state): State<AppState>,
    ClientIp(client): ClientIp,
    headers: HeaderMap,
    uri: Uri,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    // Before the token is checked: a flood of connections costs one counter each, not a lookup.
    if let Some(client) = client {
        let key = format!("ws:addr:{client}");
        let (throttle, limit) = (&*state.settings.throttle.0, state.settings.ws_connects);
        throttle::admit(throttle, key, limit, ErrorCode::TooManyConnections).await?;
    }
    let token = bearer_token(&headers).map(str::to_owned).or_else(|| query_token(uri.query()));
    let token =
        token.ok_or_else(|| ApiError::request(StatusCode::UNAUTHORIZED, "unauthorized", "missing access token"))?;
    let authenticated_at = Instant::now();
    let context = state.api.accounts.authenticate(&token).await?;
    let upgrade = upgrade.map_err(|rejection| {
        ApiError::request(StatusCode::BAD_REQUEST, "websocket_upgrade_required", rejection.body_text())
    })?;
    let max_frame_bytes = state.settings.ws_max_frame_bytes;
    let auth = Box::new(Authenticated { state, context, token, at: authenticated_at });
    Ok(upgrade
        .read_buffer_size(4096)
        .write_buffer_size(4096)
        .max_message_size(max_frame_bytes)
        .max_frame_size(max_frame_bytes)
        .on_upgrade(move |socket| run_socket(auth, socket)))
}

fn query_token(query: Option<&str>) -> Option<String> {
    query?.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=')?;
        (key == "token" && !value.is_empty()).then(|| value.to_owned())
    })
}

/// What the upgrade established: who, with which token, checked when. Boxed until the socket
/// opens, so that axum's upgrade task holds a pointer to it rather than a copy.
struct Authenticated {
    state: AppState,
    context: AuthContext,
    token: String,
    at: Instant,
}

/// One open socket: what its task holds for as long as the socket is open.
struct SocketTask {
    state: AppState,
    context: AuthContext,
    /// The hub's id for the socket, and its queue.
    id: u64,
    queue: Arc<SocketQueue>,
    connection: Connection,
}

/// Registers the socket and runs its task.
///
/// Not an `async fn`: an `async fn` keeps its arguments twice in its future, as passed and as
/// moved into its body; this future holds the one `SocketTask` and borrows it.
fn run_socket(auth: Box<Authenticated>, socket: WebSocket) -> impl Future<Output = ()> + Send {
    let Authenticated { state, context, token, at } = *auth;
    let registration = state.hub.register(&context.user_id, &context.session_id);
    let mut task = SocketTask {
        state,
        context,
        id: registration.id,
        queue: registration.queue,
        connection: Connection::new(socket),
    };
    async move { task.run(token, at).await }
}

impl SocketTask {
    async fn run(&mut self, token: String, authenticated_at: Instant) {
        let revoked = revoked_meanwhile(&self.state, &self.context.user_id, token, authenticated_at).await;
        // Boxed, each in a statement of its own so that no temporary outlives it: whatever a
        // future holds across an `.await` is reserved in it for as long as the socket is open.
        let device = self.device();
        let connecting = Box::pin(self.state.presence.connected(&self.context.user_id, &device));
        connecting.await;
        let close = if revoked {
            Some((CLOSE_SESSION_ENDED, "session ended; log in again".into()))
        } else {
            if let Some(hello) = self.hello() {
                self.connection.reply(hello);
            }
            serve(&self.state, &self.context, &mut self.connection, &self.queue).await
        };
        let closing = Box::pin(tokio::time::timeout(CLOSE_HANDSHAKE, self.connection.close(close)));
        let _ = closing.await;
        self.state.hub.unregister(&self.context.user_id, self.id);
        let disconnecting = Box::pin(self.state.presence.disconnected(&self.context.user_id, &device));
        disconnecting.await;
    }

    /// The first frame a client gets (a function of its own: the frame is large, and a local
    /// would be reserved in the task's future).
    fn hello(&self) -> Option<Utf8Bytes> {
        requests::encode(&ServerFrame::Hello {
            user_id: self.context.user_id.0.clone(),
            session_id: self.context.session_id.0.clone(),
            heartbeat_secs: self.state.settings.ws_ping_interval.as_secs(),
        })
    }

    /// The socket's name in the route table.
    fn device(&self) -> String {
        PresenceService::device(&self.context.session_id, self.id)
    }
}

/// Whether the socket's session was revoked after its token was checked (at `authenticated_at`)
/// but before it registered: the revocation found no socket to close.
async fn revoked_meanwhile(state: &AppState, user: &UserId, token: String, authenticated_at: Instant) -> bool {
    state.hub.revoked_since(user, authenticated_at) && state.api.accounts.authenticate(&token).await.is_err()
}

/// Serves the socket until it is to close; returns the close frame's code and reason, if one is
/// to be sent (not when the client closed or went away).
async fn serve(
    state: &AppState,
    context: &AuthContext,
    connection: &mut Connection,
    queue: &SocketQueue,
) -> Option<(u16, String)> {
    let settings = &state.settings;
    let expiry = token_expiry(context);
    let mut next_ping = Instant::now() + settings.ws_ping_interval;
    let timer = tokio::time::sleep_until(next_ping.min(expiry));
    tokio::pin!(timer);
    let mut last_heard = Instant::now();
    let (frames_per_sec, frames_burst) = (settings.ws_frames_per_sec, settings.ws_frames_burst);
    let mut budget = FrameBudget::new(frames_burst, last_heard);
    // Reading is paused until then (the client is past its frame budget).
    let mut resume_at: Option<Instant> = None;
    let mut typing = TypingGate::default();
    let mut request: Option<Request<'_>> = None;
    loop {
        match connection.next_event(queue, timer.as_mut(), request.as_mut()).await {
            Event::Received(Some(Ok(message))) => {
                last_heard = Instant::now();
                if let Some(at) = budget.take(last_heard, frames_per_sec, frames_burst) {
                    resume_at = Some(at);
                    connection.pause_reading(true);
                    timer.as_mut().reset(next_ping.min(expiry).min(at));
                }
                match message {
                    Message::Text(text) => match requests::accept(text.as_str(), &mut typing) {
                        Handling::Done(reply) => {
                            if let Some(reply) = reply {
                                connection.reply(reply);
                            }
                        }
                        Handling::Call(frame) => request = Some(Box::pin(requests::call(state, context, frame))),
                    },
                    Message::Binary(_) => {
                        let error = requests::error_frame(None, "unsupported_frame", "send JSON in text frames");
                        if let Some(error) = requests::encode(&error) {
                            connection.reply(error);
                        }
                    }
                    Message::Close(_) => return None,
                    Message::Ping(_) | Message::Pong(_) => {}
                }
            }
            Event::Received(Some(Err(error))) => {
                let limit = settings.ws_max_frame_bytes;
                return is_too_big(error).then(|| (CLOSE_TOO_BIG, format!("frame larger than {limit} bytes")));
            }
            Event::Received(None) | Event::WriteFailed => return None,
            Event::Answered(reply) => {
                request = None;
                if let Some(reply) = reply {
                    connection.reply(reply);
                }
            }
            Event::Dropped(why) => return Some(dropped_close(why)),
            Event::Timer => {
                let now = Instant::now();
                if resume_at.is_some_and(|at| now >= at) {
                    resume_at = None;
                    connection.pause_reading(false);
                }
                if now >= expiry {
                    return Some((CLOSE_TOKEN_EXPIRED, "access token expired; refresh it and reconnect".into()));
                }
                if now >= next_ping {
                    if now.duration_since(last_heard) > settings.ws_idle_timeout {
                        return Some((CLOSE_POLICY, "idle timeout".into()));
                    }
                    connection.ping();
                    next_ping = now + settings.ws_ping_interval;
                }
                timer.as_mut().reset(resume_at.map_or(next_ping.min(expiry), |at| at.min(next_ping).min(expiry)));
            }
        }
    }
}

fn dropped_close(why: Dropped) -> (u16, String) {
    match why {
        Dropped::TooSlow => (CLOSE_TRY_AGAIN_LATER, "client too slow; reconnect and sync".into()),
        Dropped::SessionEnded => (CLOSE_SESSION_ENDED, "session ended; log in again".into()),
        Dropped::ShuttingDown => (CLOSE_GOING_AWAY, "server shutting down".into()),
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The size of the future `f` returns, without calling it.
    fn future_size<A, B, F: Future>(_: impl FnOnce(A, B) -> F) -> usize {
        std::mem::size_of::<F>()
    }

    /// Every open socket holds its task's future: it must stay small (it was 7.5 KB, more than
    /// the WebSocket's buffers, when request and presence futures were kept inline).
    #[test]
    fn a_socket_task_is_small() {
        let size = future_size(run_socket);
        println!("run_socket's future: {size} bytes");
        assert!(size <= 1280, "run_socket's future is {size} bytes");
    }
}
