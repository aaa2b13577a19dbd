//! A device that behaves like a real app: it connects through nginx (TLS, WebSocket), catches up
//! by `seq` on every (re)connect and whenever a push skips a `seq`, sends with a `client_msg_id`
//! and retries the same id after a timeout, an error or a lost connection, pings to notice a dead
//! connection, reconnects with backoff and jitter, and marks what it has read. Everything it
//! sends and sees goes to the [`Recorder`].

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use anyhow::{Context, bail};
use futures_util::{SinkExt, StreamExt};
use natter_proto::{MessagePage, ReadResponse, ServerFrame};
use serde_json::json;
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::{Instant, sleep_until};
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;

use super::Rng;
use super::history::{Event, Recorder};

/// How long a send waits for its `sent` before it is sent again (same `client_msg_id`).
const SEND_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a connection attempt (TCP, TLS, WebSocket, `hello`) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// A `pong` must come within this long of a `ping`, or the connection is taken for dead.
const PING_TIMEOUT: Duration = Duration::from_secs(5);
const PING_EVERY: Duration = Duration::from_secs(8);
/// HTTP calls (sync, read markers) give up after this long.
pub const HTTP_TIMEOUT: Duration = Duration::from_secs(8);
/// Error codes that retrying the same send cannot change: the device gives up on that send.
const FINAL_ERRORS: [&str; 10] = [
    "not_found",
    "forbidden",
    "blocked",
    "not_friends",
    "validation_failed",
    "invalid_client_msg_id",
    "client_msg_id_reused",
    "empty_text",
    "text_too_long",
    "invalid_frame",
];

/// What the run wants of its devices.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Send, read, mark read.
    Running,
    /// No new sends; finish the one under way, then sync everything once more and stop.
    Finishing,
}

/// How devices reach the cluster: nginx's address and the run's certificate authority.
pub struct Net {
    pub http: reqwest::Client,
    /// `https://127.0.0.1:PORT/api/v1`
    pub api: String,
    pub host_port: String,
    tls: TlsConnector,
}

impl Net {
    pub fn new(url: &str, ca_pem: &[u8]) -> anyhow::Result<Net> {
        use rustls::pki_types::CertificateDer;
        use rustls::pki_types::pem::PemObject;
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(ca_pem) {
            roots.add(cert.context("the run's CA certificate")?)?;
        }
        let config = rustls::ClientConfig::builder().with_root_certificates(roots).with_no_client_auth();
        let http = reqwest::Client::builder()
            .tls_certs_only([reqwest::Certificate::from_pem(ca_pem)?])
            .timeout(HTTP_TIMEOUT)
            .connect_timeout(Duration::from_secs(3))
            .pool_max_idle_per_host(64)
            .build()?;
        let host_port = url.trim_start_matches("https://").to_owned();
        Ok(Net { http, api: format!("{url}/api/v1"), host_port, tls: TlsConnector::from(Arc::new(config)) })
    }

    async fn connect(&self, token: &str) -> anyhow::Result<Socket> {
        let tcp = TcpStream::connect(&self.host_port).await?;
        tcp.set_nodelay(true)?;
        let name = rustls::pki_types::ServerName::try_from("127.0.0.1")?.to_owned();
        let tls = self.tls.connect(name, tcp).await.context("TLS handshake")?;
        let url = format!("wss://{}/api/v1/ws?token={token}", self.host_port);
        let (socket, _) = tokio_tungstenite::client_async_with_config(url, tls, Some(crate::wsclient::config()))
            .await
            .context("WebSocket handshake")?;
        Ok(socket)
    }
}

type Socket = WebSocketStream<TlsStream<TcpStream>>;

/// Each device's contiguous `seq` per conversation (its position in the device's list), read
/// by the convergence measurement.
pub type Progress = Arc<Vec<Vec<AtomicI64>>>;

/// A device's copy of one conversation.
#[derive(Default)]
struct View {
    /// The first entry this member can see (known after the first sync).
    first: Option<i64>,
    seen: BTreeMap<i64, String>,
    /// Every entry from `first` to this one is in `seen` (`first - 1` when none is).
    contiguous: i64,
    /// The highest `seq` seen or known to exist (a push beyond `contiguous + 1` means a gap).
    highest: i64,
    needs_sync: bool,
}

impl View {
    fn add(&mut self, seq: i64, id: &str) {
        self.seen.entry(seq).or_insert_with(|| id.to_owned());
        self.highest = self.highest.max(seq);
        self.advance();
    }

    fn advance(&mut self) {
        let Some(first) = self.first else { return };
        self.contiguous = self.contiguous.max(first - 1);
        while self.seen.contains_key(&(self.contiguous + 1)) {
            self.contiguous += 1;
        }
    }
}

/// A send under way: kept until acknowledged, sent again with the same `cmid`.
struct Outgoing {
    conv: usize,
    cmid: String,
    attempt: u32,
    /// Attempts on the current connection.
    on_this_connection: u32,
    /// When the current attempt times out (`None`: not sent on this connection yet, or waiting
    /// out an error's backoff until `retry_at`).
    deadline: Option<Instant>,
    retry_at: Instant,
}

pub struct Device {
    pub index: u32,
    pub token: String,
    /// The user's conversations: (number in the run, id).
    pub conversations: Vec<(u32, String)>,
    pub net: Arc<Net>,
    pub recorder: Recorder,
    pub rng: Rng,
    /// Mean time between two sends of this device.
    pub send_every: Duration,
    pub progress: Progress,
    pub phase: watch::Receiver<Phase>,
    views: Vec<View>,
    outbox: Option<Outgoing>,
    conn: u32,
    got_pong: bool,
    /// When this device first saw [`Phase::Finishing`].
    finishing_since: Option<Instant>,
}

impl Device {
    #[allow(clippy::too_many_arguments, reason = "a plain constructor of the device's parts")]
    pub fn new(
        index: u32,
        token: String,
        conversations: Vec<(u32, String)>,
        net: Arc<Net>,
        recorder: Recorder,
        rng: Rng,
        send_every: Duration,
        progress: Progress,
        phase: watch::Receiver<Phase>,
    ) -> Device {
        let views = conversations.iter().map(|_| View::default()).collect();
        Device {
            index,
            token,
            conversations,
            net,
            recorder,
            rng,
            send_every,
            progress,
            phase,
            views,
            outbox: None,
            conn: 0,
            got_pong: false,
            finishing_since: None,
        }
    }

    /// Runs until the run is finishing and this device has no send under way and has synced
    /// every conversation once more.
    pub async fn run(mut self) {
        let mut failures = 0_u32;
        loop {
            if self.finished() {
                break;
            }
            let connected = tokio::time::timeout(CONNECT_TIMEOUT, self.open()).await;
            let socket = match connected {
                Ok(Ok(socket)) => socket,
                Ok(Err(error)) => {
                    self.disconnected(format!("connect: {error:#}"));
                    failures += 1;
                    self.backoff(failures).await;
                    continue;
                }
                Err(_) => {
                    self.disconnected("connect: timed out".into());
                    failures += 1;
                    self.backoff(failures).await;
                    continue;
                }
            };
            failures = 0;
            let reason = self.session(socket).await;
            match reason {
                Ok(()) => break,
                Err(error) => {
                    self.disconnected(format!("{error:#}"));
                    failures += 1;
                    self.backoff(failures).await;
                }
            }
        }
        // The final sync: everything the log holds, after the last push.
        let deadline = Instant::now() + Duration::from_secs(60);
        for position in 0..self.views.len() {
            while let Err(error) = self.sync(position).await {
                if Instant::now() > deadline {
                    tracing::warn!(device = self.index, %error, "the final sync failed");
                    break;
                }
                sleep_until(Instant::now() + Duration::from_millis(500)).await;
            }
        }
    }

    /// True once the run is finishing and no send is under way; a send still unacknowledged
    /// 30 s into the finish is given up.
    fn finished(&mut self) -> bool {
        if *self.phase.borrow() != Phase::Finishing {
            return false;
        }
        let since = *self.finishing_since.get_or_insert_with(Instant::now);
        if since.elapsed() > Duration::from_secs(30)
            && let Some(outgoing) = self.outbox.take()
        {
            let t = self.recorder.now();
            let (device, conv) = (self.index, self.conversations[outgoing.conv].0);
            let why = "still unacknowledged 30 s after the run's end".to_owned();
            self.recorder.record(Event::SendAbandoned { t, device, conv, cmid: outgoing.cmid, why });
        }
        self.outbox.is_none()
    }

    async fn backoff(&mut self, failures: u32) {
        // 250 ms, doubling, at most 4 s; full jitter on the upper half.
        let ceiling = 250_u64 << failures.min(4);
        let wait = ceiling / 2 + self.rng.below(ceiling / 2 + 1);
        tokio::time::sleep(Duration::from_millis(wait)).await;
    }

    fn disconnected(&mut self, reason: String) {
        let t = self.recorder.now();
        self.recorder.record(Event::Disconnected { t, device: self.index, conn: self.conn, reason });
        if let Some(outgoing) = &mut self.outbox
            && outgoing.deadline.take().is_some()
        {
            let t = self.recorder.now();
            let (conv, cmid) = (self.conversations[outgoing.conv].0, outgoing.cmid.clone());
            self.recorder.record(Event::SendTimeout { t, device: self.index, conv, cmid });
        }
    }

    /// Connects and waits for `hello`.
    async fn open(&mut self) -> anyhow::Result<Socket> {
        let mut socket = self.net.connect(&self.token).await?;
        loop {
            match socket.next().await {
                Some(Ok(Message::Text(text))) if text.contains("\"hello\"") => break,
                Some(Ok(Message::Text(_) | Message::Ping(_) | Message::Pong(_))) => {}
                other => bail!("expected hello, got {other:?}"),
            }
        }
        self.conn += 1;
        let t = self.recorder.now();
        self.recorder.record(Event::Connected { t, device: self.index, conn: self.conn });
        Ok(socket)
    }

    /// One connection's life: catch up, then push, send, ping and mark read until it fails
    /// (`Err`, reconnect) or the run is over (`Ok`).
    async fn session(&mut self, socket: Socket) -> anyhow::Result<()> {
        let (mut sink, mut source) = socket.split();
        for view in &mut self.views {
            view.needs_sync = true;
        }
        let now = Instant::now();
        let mut next_send = now + self.interval(self.send_every);
        let mut next_read = now + self.interval(Duration::from_secs(6));
        let mut next_ping = now + PING_EVERY;
        let mut pong_due: Option<Instant> = None;
        let mut next_sync_try = now;
        if let Some(outgoing) = &mut self.outbox {
            outgoing.on_this_connection = 0;
            outgoing.deadline = None;
        }
        let mut ping_id = 0_u64;
        loop {
            // Catch up what the views lack (on connect, and after a gap or a failed sync).
            if Instant::now() >= next_sync_try {
                let mut failed = false;
                for position in 0..self.views.len() {
                    if self.views[position].needs_sync && self.sync(position).await.is_err() {
                        failed = true;
                    }
                }
                next_sync_try =
                    Instant::now() + if failed { Duration::from_secs(1) } else { Duration::from_millis(50) };
            }
            if self.finished() {
                let _ = sink.close().await;
                return Ok(());
            }
            // A send that is due (new, or again after an error's backoff).
            if let Some(outgoing) = &mut self.outbox
                && outgoing.deadline.is_none()
                && Instant::now() >= outgoing.retry_at
            {
                outgoing.deadline = Some(Instant::now() + SEND_TIMEOUT);
                outgoing.on_this_connection += 1;
                let (conv, id) = &self.conversations[outgoing.conv];
                let frame = json!({
                    "type": "send", "id": outgoing.cmid, "conversation_id": id,
                    "client_msg_id": outgoing.cmid, "kind": "text",
                    "text": format!("chaos device {} {}", self.index, outgoing.cmid),
                });
                let t = self.recorder.now();
                let event = Event::Send {
                    t,
                    device: self.index,
                    conv: *conv,
                    cmid: outgoing.cmid.clone(),
                    attempt: outgoing.attempt,
                };
                outgoing.attempt += 1;
                self.recorder.record(event);
                sink.send(Message::Text(frame.to_string().into())).await.context("send")?;
            }
            let send_deadline = self.outbox.as_ref().and_then(|o| o.deadline.or(Some(o.retry_at)));
            let far = Instant::now() + Duration::from_secs(3600);
            let finishing = *self.phase.borrow() == Phase::Finishing;
            tokio::select! {
                frame = source.next() => {
                    match frame {
                        Some(Ok(Message::Text(text))) => self.frame(&text)?,
                        Some(Ok(Message::Close(close))) => bail!("closed by the server: {close:?}"),
                        Some(Ok(_)) => {}
                        Some(Err(error)) => bail!("read: {error}"),
                        None => bail!("the connection ended"),
                    }
                }
                () = sleep_until(send_deadline.unwrap_or(far)), if send_deadline.is_some() => {
                    let t = self.recorder.now();
                    let device = self.index;
                    if let Some(outgoing) = &mut self.outbox
                        && outgoing.deadline.is_some_and(|d| Instant::now() >= d)
                    {
                        outgoing.deadline = None;
                        let (conv, cmid) = (self.conversations[outgoing.conv].0, outgoing.cmid.clone());
                        self.recorder.record(Event::SendTimeout { t, device, conv, cmid });
                        if outgoing.on_this_connection >= 2 {
                            bail!("two sends went unanswered");
                        }
                    }
                }
                () = sleep_until(next_send), if self.outbox.is_none() && !finishing => {
                    let conv = self.pick_conversation();
                    let cmid = format!("{:016x}{:016x}", self.rng.next_u64(), self.rng.next_u64());
                    let now = Instant::now();
                    self.outbox =
                        Some(Outgoing { conv, cmid, attempt: 0, on_this_connection: 0, deadline: None, retry_at: now });
                    next_send = now + self.interval(self.send_every);
                }
                () = sleep_until(next_read), if !finishing => {
                    self.mark_read().await;
                    next_read = Instant::now() + self.interval(Duration::from_secs(6));
                }
                () = sleep_until(next_ping) => {
                    ping_id += 1;
                    let frame = json!({"type": "ping", "id": format!("ping{ping_id}")});
                    sink.send(Message::Text(frame.to_string().into())).await.context("ping")?;
                    pong_due = Some(Instant::now() + PING_TIMEOUT);
                    next_ping = Instant::now() + PING_EVERY;
                }
                () = sleep_until(pong_due.unwrap_or(far)), if pong_due.is_some() => {
                    bail!("no pong within {PING_TIMEOUT:?}");
                }
                () = sleep_until(next_sync_try), if self.views.iter().any(|v| v.needs_sync) => {}
                _ = self.phase.changed() => {}
            }
            if std::mem::take(&mut self.got_pong) {
                pong_due = None;
            }
        }
    }

    fn frame(&mut self, text: &str) -> anyhow::Result<()> {
        let Ok(frame) = serde_json::from_str::<ServerFrame>(text) else { return Ok(()) };
        match frame {
            ServerFrame::Message { message } => {
                let Some(position) = self.position(&message.conversation_id) else { return Ok(()) };
                self.seen(position, self.conn, message.seq, &message.id, message.client_msg_id.clone());
                let view = &mut self.views[position];
                if view.first.is_none() || message.seq > view.contiguous + 1 {
                    view.needs_sync = true;
                }
            }
            ServerFrame::Sent { id, message } => {
                let Some(outgoing) = &self.outbox else { return Ok(()) };
                if id != outgoing.cmid {
                    return Ok(());
                }
                let t = self.recorder.now();
                let conv = self.conversations[outgoing.conv].0;
                self.recorder.record(Event::Ack {
                    t,
                    device: self.index,
                    conv,
                    cmid: outgoing.cmid.clone(),
                    seq: message.seq,
                    id: message.id.clone(),
                });
                let position = outgoing.conv;
                self.outbox = None;
                // The sender knows its entry's seq: anything before it that it lacks, it syncs.
                let view = &mut self.views[position];
                view.highest = view.highest.max(message.seq);
                if message.seq > view.contiguous {
                    view.needs_sync = true;
                }
            }
            ServerFrame::Error { id: Some(id), code, .. } => {
                let Some(outgoing) = &mut self.outbox else { return Ok(()) };
                if id != outgoing.cmid {
                    return Ok(());
                }
                let t = self.recorder.now();
                let (conv, cmid) = (self.conversations[outgoing.conv].0, outgoing.cmid.clone());
                self.recorder.record(Event::SendError {
                    t,
                    device: self.index,
                    conv,
                    cmid: cmid.clone(),
                    code: code.clone(),
                });
                if FINAL_ERRORS.contains(&code.as_str()) {
                    self.recorder.record(Event::SendAbandoned { t, device: self.index, conv, cmid, why: code });
                    self.outbox = None;
                } else {
                    outgoing.deadline = None;
                    let wait = 200 + self.rng.below(800);
                    outgoing.retry_at = Instant::now() + Duration::from_millis(wait);
                }
            }
            ServerFrame::Pong { .. } => self.got_pong = true,
            _ => {}
        }
        Ok(())
    }
}

impl Device {
    /// Uniformly between half and one and a half times `mean`.
    fn interval(&mut self, mean: Duration) -> Duration {
        let millis = u64::try_from(mean.as_millis()).unwrap_or(u64::MAX).max(2);
        Duration::from_millis(millis / 2 + self.rng.below(millis + 1))
    }

    /// Where the next message goes: the big group (listed last) one time in twenty, else any
    /// of the user's direct chats and small groups.
    fn pick_conversation(&mut self) -> usize {
        let count = self.conversations.len() as u64;
        if count == 1 || self.rng.below(20) == 0 {
            return (count - 1) as usize;
        }
        self.rng.below(count - 1) as usize
    }

    fn position(&self, conversation_id: &str) -> Option<usize> {
        self.conversations.iter().position(|(_, id)| id == conversation_id)
    }

    fn seen(&mut self, position: usize, conn: u32, seq: i64, id: &str, cmid: Option<String>) {
        let t = self.recorder.now();
        let conv = self.conversations[position].0;
        self.recorder.record(Event::Seen { t, device: self.index, conn, conv, seq, id: id.to_owned(), cmid });
        let view = &mut self.views[position];
        view.add(seq, id);
        self.progress[self.index as usize][position].store(view.contiguous, Ordering::Relaxed);
    }

    /// Fetches the conversation's entries after the contiguous part of the view, page by page.
    async fn sync(&mut self, position: usize) -> anyhow::Result<()> {
        let conversation_id = self.conversations[position].1.clone();
        loop {
            let view = &self.views[position];
            let after = if view.first.is_some() { view.contiguous } else { 0 };
            let url = format!("{}/conversations/{conversation_id}/messages?after_seq={after}&limit=200", self.net.api);
            let response = self.net.http.get(url).bearer_auth(&self.token).send().await?;
            let status = response.status();
            if !status.is_success() {
                bail!("sync: {status}");
            }
            let page: MessagePage = response.json().await?;
            let view = &mut self.views[position];
            if view.first.is_none() {
                let first_seq = page.messages.first().map_or(1, |m| m.seq);
                view.first = Some(first_seq);
                view.advance();
                let conv = self.conversations[position].0;
                self.recorder.record(Event::FirstSeq { device: self.index, conv, first_seq });
            }
            for message in &page.messages {
                self.seen(position, 0, message.seq, &message.id, message.client_msg_id.clone());
            }
            let view = &mut self.views[position];
            if !page.has_more || page.messages.is_empty() {
                view.needs_sync = view.contiguous < view.highest;
                self.progress[self.index as usize][position].store(view.contiguous, Ordering::Relaxed);
                return Ok(());
            }
        }
    }

    /// Marks a random conversation read up to what this device has, over HTTP.
    async fn mark_read(&mut self) {
        let position = self.rng.below(self.views.len() as u64) as usize;
        let asked = self.views[position].contiguous;
        if asked < 1 {
            return;
        }
        let (conv, id) = self.conversations[position].clone();
        let url = format!("{}/conversations/{id}/read", self.net.api);
        let sent = self.recorder.now();
        let response = self.net.http.post(url).bearer_auth(&self.token).json(&json!({ "seq": asked })).send().await;
        let Ok(response) = response else { return };
        if !response.status().is_success() {
            return;
        }
        if let Ok(answer) = response.json::<ReadResponse>().await {
            let t = self.recorder.now();
            let read_seq = answer.read_seq;
            self.recorder.record(Event::Read { sent, t, device: self.index, conv, asked, read_seq });
        }
    }
}
