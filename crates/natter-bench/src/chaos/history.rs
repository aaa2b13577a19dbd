//! What happened in a chaos run, as the clients and the fault schedule saw it: one event per line
//! of `history.jsonl`, and the server's log at the end in `log.json`. The checker reads only
//! these, so a saved run can be checked again (`natter-bench chaos-check DIR`).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::Context;
use serde::{Deserialize, Serialize};

/// One thing a device or the fault schedule did or saw; `t` is microseconds since the run began.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "e", rename_all = "snake_case")]
pub enum Event {
    /// A device's WebSocket opened (its `hello` arrived); `conn` numbers its connections.
    Connected { t: u64, device: u32, conn: u32 },
    /// A connection attempt failed or an open socket ended.
    Disconnected { t: u64, device: u32, conn: u32, reason: String },
    /// An entry came to a device: pushed on connection `conn`, or fetched by a sync (`conn` 0).
    Seen { t: u64, device: u32, conn: u32, conv: u32, seq: i64, id: String, cmid: Option<String> },
    /// A device's first sync of a conversation found its first visible entry at `first_seq`.
    FirstSeq { device: u32, conv: u32, first_seq: i64 },
    /// A send frame went out (`attempt` 0 is the first; later ones reuse `cmid`).
    Send { t: u64, device: u32, conv: u32, cmid: String, attempt: u32 },
    /// The server acknowledged `cmid` (`sent`) as entry `seq`, `id`.
    Ack { t: u64, device: u32, conv: u32, cmid: String, seq: i64, id: String },
    /// The server answered an attempt with an error frame.
    SendError { t: u64, device: u32, conv: u32, cmid: String, code: String },
    /// An attempt went unanswered within the timeout, or its socket closed first.
    SendTimeout { t: u64, device: u32, conv: u32, cmid: String },
    /// The device stopped trying `cmid` (a refusal that retrying cannot fix, or the run ended).
    SendAbandoned { t: u64, device: u32, conv: u32, cmid: String, why: String },
    /// `POST /conversations/{id}/read {seq}` was sent at `sent` and answered at `t` with `read_seq`.
    Read { sent: u64, t: u64, device: u32, conv: u32, asked: i64, read_seq: i64 },
    /// A fault began (`start`) and ended (`end`, when the faulty part was back).
    Fault { index: u32, kind: String, target: String, start: u64, end: u64 },
    /// Every device had every entry the log held when fault `index` ended, `after_ms` after its
    /// end (`None`: not within the limit).
    /// `behind` lists, when the bar passed with devices still behind, the first few of them:
    /// (device, conversation, the device's contiguous seq, the log's head at the fault's end).
    Converged {
        index: u32,
        after_ms: Option<u64>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        behind: Vec<(u32, u32, i64, i64)>,
    },
}

/// The conversations and devices of a run, so that events can name them by number.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Setup {
    pub seed: u64,
    /// Conversation ids; events name conversation `i` as `conv: i`.
    pub conversations: Vec<String>,
    /// Each conversation's kind (`direct`, `group`, `big`) and member count.
    pub kinds: Vec<(String, usize)>,
    /// Devices: (user id, the conversations the user is in).
    pub devices: Vec<(String, Vec<u32>)>,
    pub users: usize,
}

/// One entry of the server's log (`messages` in PostgreSQL) at the end of the run.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct LogEntry {
    pub seq: i64,
    pub id: String,
    pub sender: String,
    pub cmid: Option<String>,
}

/// The server's state at the end: each conversation's entries by `seq`, and each member's
/// `read_seq` (by user id).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct FinalLog {
    pub entries: Vec<Vec<LogEntry>>,
    pub read_seq: Vec<BTreeMap<String, i64>>,
}

/// Collects events from every task of the run.
#[derive(Clone)]
pub struct Recorder {
    started: Instant,
    events: Arc<Mutex<Vec<Event>>>,
}

impl Recorder {
    pub fn new(started: Instant) -> Recorder {
        Recorder { started, events: Arc::default() }
    }

    pub fn now(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_micros()).unwrap_or(u64::MAX)
    }

    pub fn record(&self, event: Event) {
        self.events.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(event);
    }

    pub fn events(&self) -> Vec<Event> {
        self.events.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }
}

/// Writes `setup.json`, `history.jsonl` and `log.json` into `dir`.
pub fn save(dir: &Path, setup: &Setup, events: &[Event], log: &FinalLog) -> anyhow::Result<()> {
    use std::io::Write;
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join("setup.json"), serde_json::to_vec(setup)?)?;
    let mut history = std::io::BufWriter::new(std::fs::File::create(dir.join("history.jsonl"))?);
    for event in events {
        serde_json::to_writer(&mut history, event)?;
        history.write_all(b"\n")?;
    }
    history.flush()?;
    std::fs::write(dir.join("log.json"), serde_json::to_vec(log)?)?;
    Ok(())
}

/// Reads what [`save`] wrote.
pub fn load(dir: &Path) -> anyhow::Result<(Setup, Vec<Event>, FinalLog)> {
    let read =
        |name: &str| std::fs::read(dir.join(name)).with_context(|| format!("cannot read {name} in {}", dir.display()));
    let setup = serde_json::from_slice(&read("setup.json")?)?;
    let history = read("history.jsonl")?;
    let events = history
        .split(|b| *b == b'\n')
        .filter(|line| !line.is_empty())
        .map(serde_json::from_slice)
        .collect::<Result<_, _>>()
        .context("history.jsonl")?;
    let log = serde_json::from_slice(&read("log.json")?)?;
    Ok((setup, events, log))
}
