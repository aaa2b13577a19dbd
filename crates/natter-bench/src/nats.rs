//! The NATS baseline: a room is a subject on nats-server, each device a NATS client speaking the
//! text protocol over nats-server's WebSocket listener (as a browser client would), subscribed to
//! the room's subject and publishing to it. Pure fan-out with no auth, history or ordering
//! numbers: what a mature message broker does with the same bodies.
//!
//! nats-server sends binary frames, and a frame is not a protocol unit: one may hold several
//! operations, or part of one. [`Parser`] buffers the bytes and cuts complete operations out.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{Context, anyhow, bail};
use bytes::{Buf, Bytes, BytesMut};
use futures_util::StreamExt;
use futures_util::stream::SplitStream;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

use crate::payload;
use crate::services::Nats;
use crate::system::{Delivery, Device, IdleEndpoints, SendFn, System};
use crate::wsclient::{CONNECT_TIMEOUT, Socket, Writer, connect_within_timeout};

/// The client's `CONNECT`: no `+OK` after every operation, no headers.
const CONNECT: &str =
    "CONNECT {\"verbose\":false,\"pedantic\":false,\"protocol\":1,\"headers\":false,\"no_responders\":false}\r\n";
/// Longer than any control line nats-server sends (its own limit is 4 KiB): past it, the stream
/// cannot be NATS.
const MAX_CONTROL_LINE: usize = 64 * 1024;

/// nats-server (with a WebSocket listener) as a system under test.
pub struct NatsBaseline {
    nats: Nats,
    next_room: AtomicU64,
}

impl NatsBaseline {
    pub async fn start(work_dir: &Path) -> anyhow::Result<NatsBaseline> {
        let nats = Nats::start(work_dir, true).await?;
        Ok(NatsBaseline { nats, next_room: AtomicU64::new(1) })
    }

    fn ws_url(&self) -> anyhow::Result<&str> {
        self.nats.ws_url.as_deref().context("nats-server was started without a WebSocket listener")
    }
}

impl System for NatsBaseline {
    fn name(&self) -> String {
        "NATS (nats-server WebSocket)".to_owned()
    }

    fn server_pids(&self) -> Vec<u32> {
        vec![self.nats.process.pid()]
    }

    async fn room(&self, members: usize) -> anyhow::Result<Vec<Device>> {
        let subject = format!("room.{}", self.next_room.fetch_add(1, Ordering::Relaxed));
        connect_room(self.ws_url()?, &subject, members).await
    }

    async fn idle_endpoints(&self, _count: usize) -> anyhow::Result<Option<IdleEndpoints>> {
        Ok(Some(IdleEndpoints { urls: vec![self.ws_url()?.to_owned()], hello: Some(CONNECT.to_owned()) }))
    }
}

/// `members` devices subscribed to `subject`; every subscription is registered on return.
async fn connect_room(ws_url: &str, subject: &str, members: usize) -> anyhow::Result<Vec<Device>> {
    let members = (0..members).map(|member| u32::try_from(member).context("too many members"));
    let members = members.collect::<anyhow::Result<Vec<u32>>>()?;
    futures_util::future::try_join_all(members.into_iter().map(|member| connect_device(ws_url, subject, member))).await
}

async fn connect_device(ws_url: &str, subject: &str, member: u32) -> anyhow::Result<Device> {
    let (sink, stream) = connect_within_timeout(ws_url).await?.split();
    let writer = Writer::spawn(sink);
    let (deliveries_tx, deliveries) = mpsc::unbounded_channel();
    let mut connection = Connection {
        stream,
        parser: Parser::default(),
        writer: writer.clone(),
        subject: subject.to_owned(),
        deliveries: deliveries_tx,
    };
    let handshake = async {
        connection.read_until(|op| matches!(op, Op::Info)).await.context("no INFO from nats-server")?;
        // The PONG answers the PING only once the SUB before it is in place.
        writer.write(Message::binary(format!("{CONNECT}SUB {subject} 1\r\nPING\r\n"))).await?;
        connection.read_until(|op| matches!(op, Op::Pong)).await.context("no PONG after SUB")
    };
    tokio::time::timeout(CONNECT_TIMEOUT, handshake)
        .await
        .with_context(|| format!("the NATS handshake on {ws_url} took over {CONNECT_TIMEOUT:?}"))??;
    tokio::spawn(connection.run());

    let subject = subject.to_owned();
    let send: SendFn = Arc::new(move |body: String| {
        writer.write(Message::binary(format!("PUB {subject} {}\r\n{body}\r\n", body.len())))
    });
    Ok(Device { member, send, deliveries })
}

/// The read side of one client connection: answers the server's PINGs and turns every MSG on the
/// room's subject into a delivery.
struct Connection {
    stream: SplitStream<Socket>,
    parser: Parser,
    /// For the PONGs; it keeps the write half open as long as the connection reads.
    writer: Writer,
    subject: String,
    deliveries: mpsc::UnboundedSender<Delivery>,
}

impl Connection {
    /// Until the socket closes or the device's deliveries are dropped.
    async fn run(mut self) {
        // What came in the handshake's last frame after its PONG goes first.
        let mut received_us = payload::now_us();
        loop {
            if let Err(error) = self.handle_parsed(received_us, None) {
                tracing::debug!(%error, "NATS connection ends");
                return;
            }
            received_us = match self.read_frame().await {
                Ok(Some(received_us)) => received_us,
                Ok(None) => return,
                Err(error) => {
                    tracing::debug!(%error, "NATS connection ends");
                    return;
                }
            };
        }
    }

    /// Reads (handling everything on the way) until an operation `wanted` accepts.
    async fn read_until(&mut self, wanted: fn(&Op) -> bool) -> anyhow::Result<()> {
        // Operations left over from the previous frame come first.
        let mut received_us = payload::now_us();
        loop {
            if self.handle_parsed(received_us, Some(wanted))? {
                return Ok(());
            }
            received_us = self.read_frame().await?.context("nats-server closed the WebSocket")?;
        }
    }

    /// The next data frame into the parser; the time it came off the socket, or `None` at the end.
    async fn read_frame(&mut self) -> anyhow::Result<Option<u64>> {
        loop {
            let message = tokio::select! {
                message = self.stream.next() => message,
                () = self.deliveries.closed() => bail!("the device was dropped"),
            };
            let Some(message) = message else { return Ok(None) };
            let received_us = payload::now_us();
            match message.context("WebSocket read failed")? {
                Message::Binary(data) => self.parser.push(&data),
                Message::Text(text) => self.parser.push(text.as_bytes()),
                Message::Close(_) => return Ok(None),
                Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => continue,
            }
            return Ok(Some(received_us));
        }
    }

    /// Handles every complete operation in the parser; true once one that `wanted` accepts was
    /// seen (the operations after it stay in the parser). Fails on `-ERR` while waiting for
    /// something, on a broken stream, and once the device is gone.
    fn handle_parsed(&mut self, received_us: u64, wanted: Option<fn(&Op) -> bool>) -> anyhow::Result<bool> {
        while let Some(op) = self.parser.next_op()? {
            if wanted.is_some_and(|wanted| wanted(&op)) {
                return Ok(true);
            }
            match op {
                Op::Msg { subject, payload } => {
                    if subject != self.subject {
                        continue;
                    }
                    let Some(stamp) = std::str::from_utf8(&payload).ok().and_then(payload::parse) else { continue };
                    self.deliveries
                        .send(Delivery { stamp, received_us, seq: None })
                        .map_err(|_| anyhow!("the device was dropped"))?;
                }
                Op::Ping => {
                    if !self.writer.queue(Message::binary(&b"PONG\r\n"[..])) {
                        bail!("the WebSocket is closed");
                    }
                }
                Op::Err(error) if wanted.is_some() => bail!("nats-server said -ERR {error}"),
                Op::Err(error) => tracing::warn!(%error, "nats-server said -ERR"),
                Op::Info | Op::Pong | Op::Ok => {}
            }
        }
        Ok(false)
    }
}

/// One operation from the server.
#[derive(Debug, PartialEq, Eq)]
enum Op {
    Info,
    Msg { subject: String, payload: Bytes },
    Ping,
    Pong,
    Ok,
    Err(String),
}

/// Cuts server operations out of the byte stream, whatever the frame boundaries.
#[derive(Debug, Default)]
struct Parser {
    buffer: BytesMut,
}

impl Parser {
    fn push(&mut self, data: &[u8]) {
        self.buffer.extend_from_slice(data);
    }

    /// The next complete operation, `None` until more bytes come, or an error if the stream is
    /// not the NATS protocol.
    fn next_op(&mut self) -> anyhow::Result<Option<Op>> {
        let Some(line_len) = self.buffer.windows(2).position(|pair| pair == b"\r\n") else {
            if self.buffer.len() > MAX_CONTROL_LINE {
                bail!("no end of line in {} bytes from nats-server", self.buffer.len());
            }
            return Ok(None);
        };
        let line = std::str::from_utf8(&self.buffer[..line_len]).context("a control line that is not UTF-8")?;
        let (name, args) = line.split_once([' ', '\t']).unwrap_or((line, ""));
        let args = args.trim();
        let op = if name.eq_ignore_ascii_case("MSG") {
            // MSG <subject> <sid> [reply-to] <#bytes>: the sid is always ours, the reply-to unused.
            let words: Vec<&str> = args.split_ascii_whitespace().collect();
            let (subject, size) = match words[..] {
                [subject, _, size] | [subject, _, _, size] => (subject.to_owned(), size),
                _ => bail!("a malformed MSG line: {line:?}"),
            };
            let size: usize = size.parse().with_context(|| format!("a malformed MSG size: {line:?}"))?;
            let total = line_len + 2 + size + 2;
            if self.buffer.len() < total {
                return Ok(None);
            }
            if &self.buffer[total - 2..total] != b"\r\n" {
                bail!("a MSG payload not followed by CRLF: {line:?}");
            }
            let mut whole = self.buffer.split_to(total);
            whole.advance(line_len + 2);
            whole.truncate(size);
            return Ok(Some(Op::Msg { subject, payload: whole.freeze() }));
        } else if name.eq_ignore_ascii_case("PING") {
            Op::Ping
        } else if name.eq_ignore_ascii_case("PONG") {
            Op::Pong
        } else if name.eq_ignore_ascii_case("INFO") {
            Op::Info
        } else if name.eq_ignore_ascii_case("+OK") {
            Op::Ok
        } else if name.eq_ignore_ascii_case("-ERR") {
            Op::Err(args.trim_matches('\'').to_owned())
        } else {
            bail!("an unknown operation from nats-server: {line:?}");
        };
        self.buffer.advance(line_len + 2);
        Ok(Some(op))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

    fn msg(subject: &str, payload: &str) -> Op {
        Op::Msg { subject: subject.to_owned(), payload: Bytes::copy_from_slice(payload.as_bytes()) }
    }

    fn drain(parser: &mut Parser) -> Vec<Op> {
        std::iter::from_fn(|| parser.next_op().expect("well-formed")).collect()
    }

    #[test]
    fn parses_several_operations_in_one_frame() {
        let mut parser = Parser::default();
        parser.push(b"INFO {\"server_id\":\"x\",\"max_payload\":1048576}\r\nPING\r\nMSG room.1 1 3\r\nabc\r\n");
        parser.push(b"MSG room.1 1 _INBOX.x 2\r\nxy\r\n+OK\r\n-ERR 'Unknown Protocol Operation'\r\npong\r\n");
        assert_eq!(
            drain(&mut parser),
            [
                Op::Info,
                Op::Ping,
                msg("room.1", "abc"),
                msg("room.1", "xy"),
                Op::Ok,
                Op::Err("Unknown Protocol Operation".to_owned()),
                Op::Pong,
            ]
        );
        assert!(parser.buffer.is_empty());
    }

    #[test]
    fn waits_for_the_rest_of_a_split_operation() {
        let stream = b"PING\r\nMSG room.7 1 12\r\n0:1:2:x\r\nyyy\r\nMSG room.7 1 0\r\n\r\nPONG\r\n";
        let expected = [Op::Ping, msg("room.7", "0:1:2:x\r\nyyy"), msg("room.7", ""), Op::Pong];
        for chunk in [1, 2, 3, 7, 16, stream.len()] {
            let mut parser = Parser::default();
            let mut ops = Vec::new();
            for piece in stream.chunks(chunk) {
                parser.push(piece);
                ops.extend(drain(&mut parser));
            }
            assert_eq!(ops, expected, "in pieces of {chunk} bytes");
        }
        let mut parser = Parser::default();
        parser.push(b"MSG room.1 1 5\r\nhel");
        assert_eq!(parser.next_op().expect("so far so good"), None, "the payload is incomplete");
        parser.push(b"lo\r");
        assert_eq!(parser.next_op().expect("so far so good"), None, "the final CRLF is incomplete");
        parser.push(b"\n");
        assert_eq!(parser.next_op().expect("complete"), Some(msg("room.1", "hello")));
    }

    #[test]
    fn rejects_what_is_not_nats() {
        for stream in [&b"HELLO\r\n"[..], b"MSG room.1 1 3\r\nabcd\r\n", b"MSG room.1\r\n", b"MSG a 1 x\r\n"] {
            let mut parser = Parser::default();
            parser.push(stream);
            assert!(parser.next_op().is_err(), "{:?} is not NATS", String::from_utf8_lossy(stream));
        }
        let mut parser = Parser::default();
        parser.push(&vec![b'x'; MAX_CONTROL_LINE + 1]);
        assert!(parser.next_op().is_err(), "a control line cannot be that long");
    }

    async fn next_text(socket: &mut tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>) -> String {
        loop {
            match socket.next().await.expect("a frame").expect("readable") {
                Message::Binary(data) => return String::from_utf8(data.to_vec()).expect("UTF-8"),
                Message::Text(text) => return text.as_str().to_owned(),
                _ => {}
            }
        }
    }

    /// A stand-in server that sends what nats-server may: several operations per frame, an
    /// operation cut across frames, text and binary frames, and its own PING.
    #[tokio::test]
    async fn a_client_answers_pings_and_reassembles_frames() {
        use futures_util::SinkExt;

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("ws://{}", listener.local_addr().expect("local address"));
        let server = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.expect("accept");
            let mut socket = tokio_tungstenite::accept_async(tcp).await.expect("WebSocket handshake");
            socket.send(Message::binary(&b"INFO {\"max_payload\":1048576}\r\n"[..])).await.expect("send INFO");
            assert_eq!(next_text(&mut socket).await, format!("{CONNECT}SUB room.1 1\r\nPING\r\n"));
            socket.send(Message::binary(&b"PONG\r\nPING\r\n"[..])).await.expect("send PONG and PING");
            assert_eq!(next_text(&mut socket).await, "PONG\r\n", "the client answers the server's PING");
            let body = payload::make(3, 0, 40);
            let whole = format!("MSG room.1 1 {}\r\n{body}\r\nMSG room.2 1 {}\r\n{body}\r\n", body.len(), body.len());
            let (first, second) = whole.split_at(20);
            socket.send(Message::binary(first.as_bytes().to_vec())).await.expect("send the first part");
            socket.send(Message::text(second)).await.expect("send the rest");
            body
        });

        // Kept for its deliveries only: the PONG must go out all the same.
        let Device { mut deliveries, .. } = connect_device(&url, "room.1", 0).await.expect("connected and subscribed");
        let body = tokio::time::timeout(TIMEOUT, server).await.expect("the stand-in server is done within 10 s");
        let body = body.expect("the stand-in server's checks");
        let delivery = tokio::time::timeout(TIMEOUT, deliveries.recv())
            .await
            .expect("a delivery within 10 s")
            .expect("the reader is running");
        assert_eq!(Some(delivery.stamp), payload::parse(&body));
        let after = tokio::time::timeout(TIMEOUT, deliveries.recv()).await.expect("the socket ends within 10 s");
        assert!(after.is_none(), "room.2's message is not delivered; then the socket ends");
    }

    #[tokio::test]
    async fn a_room_on_nats_server_delivers_every_body_in_order() {
        let dir = std::env::temp_dir().join(format!("natter-bench-nats-test-{}", std::process::id()));
        let system = NatsBaseline::start(&dir).await.expect("nats-server starts");
        assert!(system.server_pids()[0] > 0);
        let mut devices = system.room(3).await.expect("a room of 3");
        let publisher = devices.remove(0);
        // The receivers keep only their deliveries, as the scenarios do.
        let mut receivers: Vec<_> = devices.into_iter().map(|device| (device.member, device.deliveries)).collect();
        receivers.push((publisher.member, publisher.deliveries));
        for index in 0..20 {
            (publisher.send)(payload::make(0, index, 64)).await.expect("publish");
        }
        for (member, deliveries) in &mut receivers {
            let mut indices = Vec::new();
            while indices.len() < 20 {
                let delivery = tokio::time::timeout(TIMEOUT, deliveries.recv())
                    .await
                    .expect("a delivery within 10 s")
                    .expect("the reader is running");
                assert_eq!(delivery.stamp.sender, 0);
                indices.push(delivery.stamp.index);
            }
            assert_eq!(indices, (0..20).collect::<Vec<_>>(), "member {member} got every body in order");
        }
        let idle = system.idle_endpoints(1).await.expect("idle endpoints").expect("NATS takes part");
        assert_eq!(idle.hello.as_deref(), Some(CONNECT));
        drop(system);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
