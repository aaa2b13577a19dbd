//! One WebSocket connection, speaking JSON text frames. Every frame received is checked against
//! the wire type `ServerFrame`, so a shape the contract does not allow fails the test.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use natter_proto::{MessageView, ServerFrame};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::TestUser;

/// How long to wait for a frame that should come.
pub(crate) const FRAME_TIMEOUT: Duration = Duration::from_secs(5);

pub(crate) struct WsClient {
    stream: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

impl WsClient {
    pub(crate) async fn connect<R>(request: R) -> WsClient
    where
        R: IntoClientRequest + Unpin,
    {
        match WsClient::try_connect(request).await {
            Ok(client) => client,
            Err(error) => panic!("WebSocket upgrade failed: {error}"),
        }
    }

    /// The upgrade's outcome; on an HTTP refusal the error carries the status.
    pub(crate) async fn try_connect<R>(request: R) -> Result<WsClient, tungstenite::Error>
    where
        R: IntoClientRequest + Unpin,
    {
        let connect = tokio_tungstenite::connect_async(request);
        let (stream, _) = tokio::time::timeout(FRAME_TIMEOUT, connect)
            .await
            .expect("the WebSocket upgrade answers within the timeout")?;
        Ok(WsClient { stream })
    }

    /// Reads the first frame and checks it is the `hello` of `user`'s session.
    pub(crate) async fn expect_hello(&mut self, user: &TestUser) {
        let hello = self.next_frame().await;
        assert_eq!(hello["type"], "hello", "the first server frame is hello, got {hello}");
        assert_eq!(hello["user_id"], user.id.as_str(), "hello names the user: {hello}");
        assert_eq!(hello["session_id"], user.session_id.as_str(), "hello names the session");
    }

    pub(crate) async fn send_json(&mut self, frame: Value) {
        self.send_text(&frame.to_string()).await;
    }

    pub(crate) async fn send_text(&mut self, text: &str) {
        self.stream.send(Message::text(text)).await.expect("send a WebSocket frame");
    }

    /// The next JSON frame, within [`FRAME_TIMEOUT`]. Control frames are skipped; a close or a
    /// timeout fails the test.
    pub(crate) async fn next_frame(&mut self) -> Value {
        loop {
            let message = tokio::time::timeout(FRAME_TIMEOUT, self.stream.next())
                .await
                .unwrap_or_else(|_| panic!("no WebSocket frame within {FRAME_TIMEOUT:?}"));
            let message = match message {
                Some(Ok(message)) => message,
                Some(Err(error)) => panic!("WebSocket read failed: {error}"),
                None => panic!("WebSocket closed while a frame was expected"),
            };
            match message {
                Message::Text(text) => return parse_frame(text.as_str()),
                Message::Binary(_) => panic!("the server sent a binary frame; frames are text"),
                Message::Close(frame) => panic!("WebSocket closed by the server: {frame:?}"),
                Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => continue,
            }
        }
    }

    /// The next frame of type `kind`, skipping others (presence, typing, …).
    pub(crate) async fn next_of_type(&mut self, kind: &str) -> Value {
        loop {
            let frame = self.next_frame().await;
            if frame["type"] == kind {
                return frame;
            }
        }
    }

    /// The next `message` frame's entry.
    pub(crate) async fn next_message(&mut self) -> MessageView {
        let frame = self.next_of_type("message").await;
        serde_json::from_value(frame["message"].clone()).expect("checked by parse_frame")
    }

    /// Reads frames until one satisfies `done`; returns every frame read, that one last.
    pub(crate) async fn frames_until(&mut self, mut done: impl FnMut(&Value) -> bool) -> Vec<Value> {
        let mut frames = Vec::new();
        loop {
            let frame = self.next_frame().await;
            let finished = done(&frame);
            frames.push(frame);
            if finished {
                return frames;
            }
        }
    }

    /// Reads frames until each of `kinds` has been seen; returns the first frame of each kind, in
    /// the order of `kinds`.
    pub(crate) async fn expect_types(&mut self, kinds: &[&str]) -> Vec<Value> {
        let mut found: Vec<Option<Value>> = vec![None; kinds.len()];
        while found.iter().any(Option::is_none) {
            let frame = self.next_frame().await;
            if let Some(index) = kinds.iter().position(|kind| frame["type"] == *kind) {
                found[index].get_or_insert(frame);
            }
        }
        found.into_iter().flatten().collect()
    }

    /// Reads frames until each matcher has matched one, in any order; returns the first match of
    /// each, in the order of `matchers`.
    pub(crate) async fn expect_all(&mut self, matchers: &[&dyn Fn(&Value) -> bool]) -> Vec<Value> {
        let mut found: Vec<Option<Value>> = vec![None; matchers.len()];
        while found.iter().any(Option::is_none) {
            let frame = self.next_frame().await;
            for (slot, matches) in found.iter_mut().zip(matchers) {
                if slot.is_none() && matches(&frame) {
                    *slot = Some(frame.clone());
                }
            }
        }
        found.into_iter().flatten().collect()
    }

    /// Sends a `send` frame for a text and returns the `sent` or `error` frame with its id.
    pub(crate) async fn send_message(&mut self, conversation: &str, client_msg_id: &str, text: &str) -> Value {
        let id = super::client_msg_id();
        self.send_json(json!({
            "type": "send",
            "id": id,
            "conversation_id": conversation,
            "client_msg_id": client_msg_id,
            "kind": "text",
            "text": text,
        }))
        .await;
        self.reply_to(&id).await
    }

    /// The `sent` or `error` frame answering request `id`, skipping unrelated frames.
    pub(crate) async fn reply_to(&mut self, id: &str) -> Value {
        loop {
            let frame = self.next_frame().await;
            let is_reply = matches!(frame["type"].as_str(), Some("sent" | "error" | "pong"));
            if is_reply && frame["id"] == id {
                return frame;
            }
        }
    }

    /// A ping answered by a pong carrying the same id.
    pub(crate) async fn ping(&mut self, id: &str) {
        self.send_json(json!({ "type": "ping", "id": id })).await;
        let pong = self.reply_to(id).await;
        assert_eq!(pong["type"], "pong", "ping is answered by pong: {pong}");
    }

    /// Reads until the server closes the socket (skipping frames) within `within`; returns the
    /// close code and reason. A reset or a close without a code fails the test.
    pub(crate) async fn expect_close(&mut self, within: Duration) -> (u16, String) {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let message = tokio::time::timeout_at(deadline, self.stream.next())
                .await
                .unwrap_or_else(|_| panic!("the server did not close the socket within {within:?}"));
            match message {
                Some(Ok(Message::Close(Some(frame)))) => return (frame.code.into(), frame.reason.to_string()),
                Some(Ok(Message::Close(None))) => panic!("the server closed the socket without a code"),
                Some(Ok(_)) => continue,
                Some(Err(error)) => panic!("the socket failed instead of closing cleanly: {error}"),
                None => panic!("the socket ended without a close frame"),
            }
        }
    }

    /// Writes many text frames with one flush (a flood, as a hostile client sends it).
    pub(crate) async fn flood(&mut self, frames: impl IntoIterator<Item = String>) {
        for frame in frames {
            self.stream.feed(Message::text(frame)).await.expect("queue a WebSocket frame");
        }
        self.stream.flush().await.expect("flush the flood");
    }

    /// [`WsClient::flood`] that reports a socket the server closed instead of failing the test.
    pub(crate) async fn try_flood(
        &mut self,
        frames: impl IntoIterator<Item = String>,
    ) -> Result<(), tungstenite::Error> {
        for frame in frames {
            self.stream.feed(Message::text(frame)).await?;
        }
        self.stream.flush().await
    }

    pub(crate) async fn close(mut self) {
        let _ = self.stream.close(None).await;
    }
}

fn parse_frame(text: &str) -> Value {
    let value: Value =
        serde_json::from_str(text).unwrap_or_else(|error| panic!("a server frame is not JSON ({error}): {text}"));
    if let Err(error) = serde_json::from_value::<ServerFrame>(value.clone()) {
        panic!("a server frame does not match the protocol ({error}): {text}");
    }
    value
}
