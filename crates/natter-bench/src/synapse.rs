//! The Synapse baseline: the Matrix reference homeserver from PyPI, on PostgreSQL as deployed in
//! production, driven through the client-server API as a Matrix client does it: sends with
//! `PUT /rooms/{room}/send`, deliveries through a `/sync` long-poll loop per device.
//!
//! Synapse is installed on first use into a virtualenv under the cargo target directory and
//! reused by later runs. Its rate limits are lifted and it logs at warning level, like natter in
//! the benchmark, so that what is measured is the server's own cost, not throttling or logging.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures_util::stream::{self, StreamExt, TryStreamExt};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::process::Command;
use tokio::sync::{mpsc, oneshot};

use crate::payload;
use crate::procs::{Proc, process_tree};
use crate::services::{Postgres, free_port};
use crate::system::{Delivery, Device, IdleEndpoints, SendFn, System};

mod setup;

use setup::{ensure_venv, log_tail, run, wait_for_background_updates, write_config};

/// The Synapse release this baseline was written and checked against.
pub const SYNAPSE_VERSION: &str = "1.163.2";
/// How many set-up calls (registrations, joins, initial syncs) run at once.
const SETUP_CONCURRENCY: usize = 8;
/// Events a sync may return per room before it says `limited` and leaves a gap.
const TIMELINE_LIMIT: u32 = 1000;
const SYNC_TIMEOUT_MS: u64 = 30_000;
/// A first start creates the schema (a few seconds here; generous for a loaded machine).
const START_TIMEOUT: Duration = Duration::from_secs(300);

/// A running Synapse homeserver.
pub struct Synapse {
    process: Proc,
    base: String,
    http: reqwest::Client,
    /// PostgreSQL's postmaster: Synapse's cost includes its database.
    postmaster: Option<u32>,
    next_user: AtomicU64,
    /// Syncs that came back `limited` (a gap, fetched through `/messages`): should stay 0.
    limited_syncs: Arc<AtomicU64>,
    /// Distinguishes this run's usernames from any earlier run's.
    run_tag: String,
}

/// A registered account.
#[derive(Debug, Clone)]
struct Account {
    user_id: String,
    token: String,
}

impl Synapse {
    /// Installs Synapse if needed, creates its database on `postgres` and starts it with its
    /// files in `work_dir`; returns once it answers `/health`.
    pub async fn start(work_dir: &Path, postgres: &Postgres) -> anyhow::Result<Synapse> {
        std::fs::create_dir_all(work_dir)?;
        let python = ensure_venv(work_dir).await?;
        postgres.create_database("synapse")?;
        let port = free_port()?;
        let config = write_config(work_dir, port, postgres.port)?;
        run(Command::new(&python).args(["-m", "synapse.app.homeserver", "--generate-keys", "-c"]).arg(&config))
            .await
            .context("cannot generate Synapse's signing key")?;
        let mut command = Command::new(&python);
        command.args(["-m", "synapse.app.homeserver", "-c"]).arg(&config).current_dir(work_dir);
        let log = work_dir.join("synapse.log");
        let process = Proc::spawn("synapse", command, &log)?;
        let http = reqwest::Client::builder().pool_max_idle_per_host(256).build()?;
        let mut synapse = Synapse {
            process,
            base: format!("http://127.0.0.1:{port}"),
            http,
            postmaster: postgres.pids().first().copied(),
            next_user: AtomicU64::new(0),
            limited_syncs: Arc::default(),
            run_tag: uuid::Uuid::new_v4().simple().to_string()[..8].to_owned(),
        };
        synapse.wait_healthy(&log).await?;
        wait_for_background_updates(postgres.port).await;
        Ok(synapse)
    }

    /// How many syncs so far returned a truncated (`limited`) timeline, whose gap was then
    /// fetched through `/messages`: a sign that a device fell more than the sync limit behind.
    pub fn limited_syncs(&self) -> u64 {
        self.limited_syncs.load(Ordering::Relaxed)
    }

    pub async fn stop(self) {
        self.process.stop(Duration::from_secs(10)).await;
    }

    async fn wait_healthy(&mut self, log: &Path) -> anyhow::Result<()> {
        let started = Instant::now();
        loop {
            if let Err(error) = self.process.check_running() {
                bail!("{error}; the end of {}:\n{}", log.display(), log_tail(log));
            }
            let health = self.http.get(format!("{}/health", self.base)).timeout(Duration::from_secs(5)).send().await;
            if health.is_ok_and(|response| response.status().is_success()) {
                tracing::info!("Synapse is up after {:.1} s", started.elapsed().as_secs_f64());
                return Ok(());
            }
            if started.elapsed() > START_TIMEOUT {
                bail!("Synapse did not answer /health within {START_TIMEOUT:?}; see {}", log.display());
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// A client-server API call; fails unless the answer is a 2xx with a JSON body.
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> anyhow::Result<Value> {
        let mut request = self.http.request(method.clone(), format!("{}/_matrix/client/v3{path}", self.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.with_context(|| format!("{method} {path}"))?;
        decode(response).await.with_context(|| format!("{method} {path}"))
    }

    async fn register(&self) -> anyhow::Result<Account> {
        let n = self.next_user.fetch_add(1, Ordering::Relaxed);
        let body = json!({
            "username": format!("b{}u{n}", self.run_tag),
            "password": "bench-password",
            "auth": { "type": "m.login.dummy" },
            "initial_device_display_name": "natter-bench",
        });
        let answer = self.call(reqwest::Method::POST, "/register", None, Some(&body)).await?;
        Ok(Account { user_id: string_field(&answer, "user_id")?, token: string_field(&answer, "access_token")? })
    }

    async fn create_room(&self, owner: &Account) -> anyhow::Result<String> {
        let body = json!({ "preset": "public_chat", "name": "bench" });
        let answer = self.call(reqwest::Method::POST, "/createRoom", Some(&owner.token), Some(&body)).await?;
        string_field(&answer, "room_id")
    }

    async fn join(&self, account: &Account, room_id: &str) -> anyhow::Result<()> {
        let path = format!("/join/{}", encode(room_id));
        self.call(reqwest::Method::POST, &path, Some(&account.token), Some(&json!({}))).await?;
        Ok(())
    }

    /// Starts the device of `account`: its sync loop has done its initial sync when this returns.
    async fn connect(&self, account: &Account, room_id: &str, member: u32) -> anyhow::Result<Device> {
        let filter = json!({
            "room": {
                "rooms": [room_id],
                "timeline": { "limit": TIMELINE_LIMIT, "types": ["m.room.message"] },
                "state": { "types": [] },
                "ephemeral": { "types": [] },
                "account_data": { "types": [] },
            },
            "presence": { "types": [] },
            "account_data": { "types": [] },
        });
        let path = format!("/user/{}/filter", encode(&account.user_id));
        let answer = self.call(reqwest::Method::POST, &path, Some(&account.token), Some(&filter)).await?;
        let filter_id = string_field(&answer, "filter_id")?;
        let path = format!("/sync?filter={filter_id}&timeout=0");
        let initial = self.call(reqwest::Method::GET, &path, Some(&account.token), None).await?;
        let initial: SyncResponse = serde_json::from_value(initial).context("initial sync")?;
        let (deliveries_tx, deliveries) = mpsc::unbounded_channel();
        let sync = SyncLoop {
            http: self.http.clone(),
            client_api: format!("{}/_matrix/client/v3", self.base),
            token: account.token.clone(),
            room_id: room_id.to_owned(),
            filter_id,
            deliveries: deliveries_tx,
            limited_syncs: self.limited_syncs.clone(),
        };
        tokio::spawn(sync.run(initial.next_batch));
        Ok(Device { member, send: self.send_fn(account, room_id), deliveries })
    }

    /// A device's sends go out one at a time, in call order, as a Matrix client sends into a
    /// room (concurrent PUTs could be stored in any order). A send is queued when called (the
    /// [`SendFn`] contract); its future waits for the server's 200.
    fn send_fn(&self, account: &Account, room_id: &str) -> SendFn {
        let url = format!("{}/_matrix/client/v3/rooms/{}/send/m.room.message", self.base, encode(room_id));
        let (http, token) = (self.http.clone(), account.token.clone());
        let (queue, mut queued) = mpsc::unbounded_channel::<(String, oneshot::Sender<anyhow::Result<()>>)>();
        tokio::spawn(async move {
            // Transaction ids are scoped to the access token, so a counter per device is unique.
            let mut txn = 0_u64;
            while let Some((body, ack)) = queued.recv().await {
                txn += 1;
                let request = http
                    .put(format!("{url}/t{txn}"))
                    .bearer_auth(&token)
                    .json(&json!({ "msgtype": "m.text", "body": body }));
                let outcome = async { decode(request.send().await.context("send")?).await.context("send").map(drop) };
                let _ = ack.send(outcome.await);
            }
        });
        Arc::new(move |body: String| {
            let (ack, acked) = oneshot::channel();
            let queued = queue.send((body, ack));
            Box::pin(async move {
                queued.map_err(|_| anyhow::anyhow!("the device's sender has stopped"))?;
                acked.await.context("the device's sender dropped a send")?
            })
        })
    }
}

impl System for Synapse {
    fn name(&self) -> String {
        "Synapse (PostgreSQL)".to_owned()
    }

    fn server_pids(&self) -> Vec<u32> {
        let mut pids = process_tree(self.process.pid());
        if let Some(postmaster) = self.postmaster {
            pids.extend(process_tree(postmaster));
        }
        pids
    }

    /// A public room created by member 0, which the others join.
    async fn room(&self, members: usize) -> anyhow::Result<Vec<Device>> {
        let accounts: Vec<Account> =
            stream::iter(0..members).map(|_| self.register()).buffered(SETUP_CONCURRENCY).try_collect().await?;
        let Some(owner) = accounts.first() else { bail!("a room needs members") };
        let room_id = self.create_room(owner).await?;
        let (accounts, room_id) = (&accounts, room_id.as_str());
        // Indices rather than references go through the streams: a closure taking a reference
        // would make the future's `Send` bound higher-ranked, which the compiler cannot prove.
        stream::iter(1..members)
            .map(|i| self.join(&accounts[i], room_id))
            .buffer_unordered(SETUP_CONCURRENCY)
            .try_collect::<Vec<()>>()
            .await?;
        stream::iter(0..members)
            .map(|i| self.connect(&accounts[i], room_id, i as u32))
            .buffered(SETUP_CONCURRENCY)
            .try_collect()
            .await
    }

    /// Matrix clients have no WebSocket API to hold idle connections on.
    async fn idle_endpoints(&self, _count: usize) -> anyhow::Result<Option<IdleEndpoints>> {
        Ok(None)
    }
}

#[derive(Debug, Deserialize)]
struct SyncResponse {
    next_batch: String,
    #[serde(default)]
    rooms: SyncRooms,
}

#[derive(Debug, Default, Deserialize)]
struct SyncRooms {
    #[serde(default)]
    join: HashMap<String, JoinedRoom>,
}

#[derive(Debug, Default, Deserialize)]
struct JoinedRoom {
    #[serde(default)]
    timeline: Timeline,
}

#[derive(Debug, Default, Deserialize)]
struct Timeline {
    #[serde(default)]
    events: Vec<Event>,
    #[serde(default)]
    limited: bool,
    prev_batch: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Event {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    content: Value,
}

#[derive(Debug, Deserialize)]
struct MessagesPage {
    #[serde(default)]
    chunk: Vec<Event>,
    end: Option<String>,
}

/// One device's `/sync` long-poll loop, feeding its deliveries until the device is dropped.
struct SyncLoop {
    http: reqwest::Client,
    client_api: String,
    token: String,
    room_id: String,
    filter_id: String,
    deliveries: mpsc::UnboundedSender<Delivery>,
    limited_syncs: Arc<AtomicU64>,
}

impl SyncLoop {
    /// Consecutive failed syncs after which the loop gives up (the server is gone).
    const MAX_FAILURES: u32 = 30;

    async fn run(self, mut since: String) {
        let mut failures = 0;
        loop {
            let outcome = tokio::select! {
                _ = self.deliveries.closed() => return,
                outcome = self.sync_once(&since) => outcome,
            };
            match outcome {
                Ok(next_batch) => {
                    since = next_batch;
                    failures = 0;
                }
                Err(error) => {
                    failures += 1;
                    if failures >= Self::MAX_FAILURES {
                        tracing::warn!("Synapse sync loop gives up after {failures} failures: {error:#}");
                        return;
                    }
                    tracing::warn!("Synapse sync failed, retrying: {error:#}");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        }
    }

    /// One long poll: delivers the room's new messages in timeline order, returns `next_batch`.
    async fn sync_once(&self, since: &str) -> anyhow::Result<String> {
        let url = format!(
            "{}/sync?since={}&timeout={SYNC_TIMEOUT_MS}&filter={}",
            self.client_api,
            encode(since),
            self.filter_id
        );
        let request = self.http.get(url).bearer_auth(&self.token).timeout(Duration::from_millis(SYNC_TIMEOUT_MS * 3));
        let response = request.send().await?;
        let status = response.status();
        let body = response.bytes().await?;
        let received_us = payload::now_us();
        if !status.is_success() {
            bail!("sync answered {status}: {}", String::from_utf8_lossy(&body));
        }
        let mut sync: SyncResponse = serde_json::from_slice(&body).context("unexpected sync body")?;
        if let Some(room) = sync.rooms.join.remove(&self.room_id) {
            let timeline = room.timeline;
            if timeline.limited {
                self.limited_syncs.fetch_add(1, Ordering::Relaxed);
                let prev_batch = timeline.prev_batch.as_deref().context("a limited timeline without prev_batch")?;
                tracing::warn!(
                    "Synapse sync truncated the timeline of {} (more than {TIMELINE_LIMIT} new events); \
                     fetching the gap through /messages",
                    self.room_id
                );
                for event in self.fetch_gap(prev_batch, since).await? {
                    self.deliver(&event, received_us);
                }
            }
            for event in &timeline.events {
                self.deliver(event, received_us);
            }
        }
        Ok(sync.next_batch)
    }

    /// The room's messages between `since` and `prev_batch`, oldest first.
    async fn fetch_gap(&self, prev_batch: &str, since: &str) -> anyhow::Result<Vec<Event>> {
        let filter = encode(&json!({ "types": ["m.room.message"] }).to_string());
        let mut from = prev_batch.to_owned();
        let mut events = Vec::new();
        loop {
            let url = format!(
                "{}/rooms/{}/messages?dir=b&from={}&to={}&limit={TIMELINE_LIMIT}&filter={filter}",
                self.client_api,
                encode(&self.room_id),
                encode(&from),
                encode(since)
            );
            let response = self.http.get(url).bearer_auth(&self.token).send().await?;
            let page: MessagesPage = serde_json::from_value(decode(response).await?).context("/messages")?;
            let done = page.chunk.is_empty();
            events.extend(page.chunk);
            match page.end {
                Some(end) if !done => from = end,
                _ => break,
            }
        }
        events.reverse();
        Ok(events)
    }

    fn deliver(&self, event: &Event, received_us: u64) {
        if event.kind != "m.room.message" {
            return;
        }
        if let Some(stamp) = event.content.get("body").and_then(Value::as_str).and_then(payload::parse) {
            let _ = self.deliveries.send(Delivery { stamp, received_us, seq: None });
        }
    }
}

async fn decode(response: reqwest::Response) -> anyhow::Result<Value> {
    let status = response.status();
    let body = response.text().await?;
    if !status.is_success() {
        bail!("{status}: {body}");
    }
    serde_json::from_str(&body).with_context(|| format!("unexpected response body: {body}"))
}

fn string_field(value: &Value, key: &str) -> anyhow::Result<String> {
    value.get(key).and_then(Value::as_str).map(str::to_owned).with_context(|| format!("no {key} in {value}"))
}

/// Percent-encodes a path segment or query value (Matrix ids hold `!`, `@`, `:`; tokens `~`).
fn encode(text: &str) -> String {
    let mut encoded = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            encoded.push(char::from(byte));
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}
