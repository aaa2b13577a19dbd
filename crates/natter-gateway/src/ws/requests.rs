//! What a client frame asks for: answered at once (`ping`, a frame it cannot read, a gated
//! `typing`), or a call to the chat services that the socket's task runs as its request.

use std::time::Duration;

use axum::extract::ws::Utf8Bytes;
use natter_core::ids::{ConversationId, Seq, UserId};
use natter_core::service::accounts::AuthContext;
use natter_core::service::messages::SendInput;
use natter_proto::{ClientFrame, ServerFrame};
use tokio::time::Instant;

use crate::error::ApiError;
use crate::state::AppState;

/// What to do with one client text frame.
pub(super) enum Handling {
    /// Nothing more: reply with this (encoded), if anything.
    Done(Option<Utf8Bytes>),
    /// Call the services (see [`call`]).
    Call(ClientFrame),
}

/// Reads one client text frame; what can be answered without a call is answered here.
pub(super) fn accept(text: &str, typing: &mut TypingGate) -> Handling {
    let frame: ClientFrame = match serde_json::from_str(text) {
        Ok(frame) => frame,
        Err(error) => {
            let id = serde_json::from_str::<serde_json::Value>(text)
                .ok()
                .and_then(|v| v.get("id").and_then(|id| id.as_str().map(str::to_owned)));
            return Handling::Done(encode(&error_frame(id, "invalid_frame", &format!("unreadable frame: {error}"))));
        }
    };
    match frame {
        ClientFrame::Ping { id } => Handling::Done(encode(&ServerFrame::Pong { id })),
        ClientFrame::Typing { conversation_id } if !typing.admit(&conversation_id, Instant::now()) => {
            Handling::Done(None)
        }
        frame => Handling::Call(frame),
    }
}

/// Runs the service call `frame` asks for; returns the direct reply (encoded), if any.
pub(super) async fn call(state: &AppState, context: &AuthContext, frame: ClientFrame) -> Option<Utf8Bytes> {
    answer(state, context, frame).await.as_ref().and_then(encode)
}

async fn answer(state: &AppState, context: &AuthContext, frame: ClientFrame) -> Option<ServerFrame> {
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
            match state.api.messages.typing(me, &ConversationId(conversation_id)).await {
                Ok(()) => None,
                Err(error) => Some(api_error_frame(None, error.into())),
            }
        }
        ClientFrame::Ping { id } => Some(ServerFrame::Pong { id }),
    }
}

/// Which `typing` frames of one socket go on to the chat services: at most one per conversation
/// per [`TypingGate::EVERY`]. The service relays at most one per 2 s anyway; dropping the rest
/// here keeps a flood of typing frames from turning into a flood of calls to a chat node.
///
/// A list, not a map: it holds the conversations typed in during the last second (a handful),
/// and an empty one costs a socket no more than a pointer and two lengths.
#[derive(Default)]
pub(super) struct TypingGate {
    forwarded: Vec<(Box<str>, Instant)>,
}

impl TypingGate {
    const EVERY: Duration = Duration::from_secs(1);

    pub(super) fn admit(&mut self, conversation: &str, now: Instant) -> bool {
        self.forwarded.retain(|(_, at)| now.duration_since(*at) < Self::EVERY);
        if self.forwarded.iter().any(|(forwarded, _)| **forwarded == *conversation) {
            return false;
        }
        if self.forwarded.is_empty() && self.forwarded.capacity() > 4 {
            // Give back what a burst of conversations grew it to.
            self.forwarded = Vec::new();
        }
        self.forwarded.push((conversation.into(), now));
        true
    }
}

/// A socket's frames from its client, as a token bucket: `per_sec` refill, `burst` at most (the
/// rates live in the settings, not in every socket's task). Past it the socket's task stops
/// reading until a token is back, so TCP holds the flooding client back: its frames cost the
/// server nothing meanwhile, and a client within the rate never notices.
pub(super) struct FrameBudget {
    tokens: f32,
    at: Instant,
}

impl FrameBudget {
    pub(super) fn new(burst: u32, now: Instant) -> Self {
        Self { tokens: burst as f32, at: now }
    }

    /// Takes one frame's token; `Some(when)` when the bucket is now empty: read nothing more
    /// until then. A `per_sec` of 0 is no limit.
    pub(super) fn take(&mut self, now: Instant, per_sec: u32, burst: u32) -> Option<Instant> {
        if per_sec == 0 {
            return None;
        }
        let per_sec = per_sec as f32;
        self.tokens = (self.tokens + now.duration_since(self.at).as_secs_f32() * per_sec).min(burst.max(1) as f32);
        self.at = now;
        self.tokens -= 1.0;
        (self.tokens < 1.0).then(|| now + Duration::from_secs_f32((1.0 - self.tokens) / per_sec))
    }
}

/// The JSON text of `frame`.
pub(super) fn encode(frame: &ServerFrame) -> Option<Utf8Bytes> {
    match serde_json::to_string(frame) {
        Ok(text) => Some(text.into()),
        Err(error) => {
            tracing::error!(%error, "could not encode a WebSocket frame");
            None
        }
    }
}

fn api_error_frame(id: Option<String>, error: ApiError) -> ServerFrame {
    let (status, code, message) = error.parts();
    if status.is_server_error() {
        tracing::error!(?error, "WebSocket request failed");
    }
    error_frame(id, code, &message)
}

pub(super) fn error_frame(id: Option<String>, code: &str, message: &str) -> ServerFrame {
    ServerFrame::Error { id, code: code.to_owned(), message: message.to_owned() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typing_is_forwarded_once_a_second_per_conversation() {
        let mut gate = TypingGate::default();
        let start = Instant::now();
        assert!(gate.admit("c1", start));
        assert!(!gate.admit("c1", start + Duration::from_millis(999)), "again within a second");
        assert!(gate.admit("c2", start + Duration::from_millis(999)), "another conversation");
        assert!(gate.admit("c1", start + TypingGate::EVERY), "a second later");
        assert!(!gate.admit("c1", start + TypingGate::EVERY));
        assert_eq!(gate.forwarded.len(), 2, "what is a second old is forgotten");
    }

    #[test]
    fn ping_and_unreadable_frames_are_answered_at_once() {
        let mut gate = TypingGate::default();
        let reply = |text: &str, gate: &mut TypingGate| match accept(text, gate) {
            Handling::Done(Some(reply)) => serde_json::from_str::<serde_json::Value>(reply.as_str()).expect("JSON"),
            Handling::Done(None) | Handling::Call(_) => panic!("{text} is answered at once"),
        };
        let pong = reply(r#"{"type":"ping","id":"p1"}"#, &mut gate);
        assert_eq!((pong["type"].as_str(), pong["id"].as_str()), (Some("pong"), Some("p1")));
        let error = reply(r#"{"id":"x","type":"nope"}"#, &mut gate);
        assert_eq!((error["id"].as_str(), error["code"].as_str()), (Some("x"), Some("invalid_frame")));
    }
}
