//! What must hold after every restart, and at the end.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::time::{Duration, Instant};

use natter_proto::{AuthResponse, ConversationView, MessagePage, MessageView};
use serde_json::json;

use crate::client::{Base, get};
use crate::load::{Acked, Unanswered, World, send};
use crate::server::Server;

/// Every entry of `conversation`, by `after_seq` pages.
pub(crate) async fn history(
    http: &reqwest::Client,
    server: &Server,
    user: &AuthResponse,
    conversation: &str,
) -> Vec<MessageView> {
    let mut entries: Vec<MessageView> = Vec::new();
    loop {
        let after = entries.last().map_or(0, |entry| entry.seq);
        let path = format!("/conversations/{conversation}/messages?after_seq={after}&limit=200");
        let page: MessagePage = get(http, server, user, &path).await;
        entries.extend(page.messages);
        if !page.has_more {
            return entries;
        }
    }
}

/// Sends every unanswered message again, with its `client_msg_id`: stored before the kill or not,
/// it now has exactly one entry, which is acknowledged like any other.
pub(crate) async fn resend(
    http: &reqwest::Client,
    server: &Server,
    world: &World,
    unanswered: Vec<Unanswered>,
) -> Vec<Acked> {
    let mut acked = Vec::new();
    for Unanswered { user, conversation, client_msg_id, text, token } in unanswered {
        let body = json!({ "client_msg_id": client_msg_id, "kind": "text", "text": text });
        let stored = send(http, server.base_url(), &world.users[user], &conversation, &body)
            .await
            .expect("the restarted server answers a resend");
        assert_eq!(stored.client_msg_id.as_deref(), Some(client_msg_id.as_str()));
        assert_eq!(stored.text.as_deref(), Some(text.as_str()), "a resend answers the entry it names");
        acked.push(Acked { conversation, seq: stored.seq, client_msg_id, text, token });
    }
    acked
}

/// Every acknowledged message is at its seq with its id and text; each conversation's log is
/// 1..=last_seq without a gap; no `client_msg_id` has two entries. Returns the entries read.
pub(crate) async fn check_log(http: &reqwest::Client, server: &Server, world: &World, acked: &[Acked]) -> usize {
    let mut expected: HashMap<&str, BTreeMap<i64, &Acked>> = HashMap::new();
    for entry in acked {
        let previous = expected.entry(entry.conversation.as_str()).or_default().insert(entry.seq, entry);
        assert!(previous.is_none(), "two acknowledgements named seq {} of {}", entry.seq, entry.conversation);
    }
    let reader = &world.users[0];
    let mut read = 0;
    for conversation in &world.conversations {
        let entries = history(http, server, reader, conversation).await;
        read += entries.len();
        let view: ConversationView = get(http, server, reader, &format!("/conversations/{conversation}")).await;
        let seqs: Vec<i64> = entries.iter().map(|entry| entry.seq).collect();
        let gap_free: Vec<i64> = (1..=view.last_seq).collect();
        assert!(
            seqs == gap_free,
            "{conversation}: seqs are not 1..={} without gaps: {}",
            view.last_seq,
            first_gap(&seqs)
        );
        let mut ids = HashSet::new();
        for entry in &entries {
            if let Some(id) = &entry.client_msg_id {
                assert!(ids.insert((entry.sender_id.as_str(), id.as_str())), "{conversation}: two entries of {id}");
            }
        }
        for (seq, acked) in expected.remove(conversation.as_str()).unwrap_or_default() {
            let Some(entry) = entries.get(usize::try_from(seq - 1).unwrap_or(usize::MAX)) else {
                panic!(
                    "{conversation}: acknowledged seq {seq} ({}) is missing (last_seq {})",
                    acked.client_msg_id, view.last_seq
                );
            };
            assert_eq!(entry.client_msg_id.as_deref(), Some(acked.client_msg_id.as_str()), "{conversation} seq {seq}");
            assert_eq!(entry.text.as_deref(), Some(acked.text.as_str()), "{conversation} seq {seq}");
        }
    }
    assert!(expected.is_empty(), "acknowledged in unknown conversations: {:?}", expected.keys());
    read
}

fn first_gap(seqs: &[i64]) -> String {
    match (1..).zip(seqs).find(|(want, seq)| *want != **seq) {
        Some((want, seq)) => format!("expected {want}, found {seq}"),
        None => format!("{} entries", seqs.len()),
    }
}

/// Every acknowledged upload downloads whole, byte for byte.
pub(crate) async fn check_files(
    http: &reqwest::Client,
    server: &Server,
    owner_of: &[(usize, String, Vec<u8>)],
    world: &World,
) {
    for (user, id, bytes) in owner_of {
        let url = format!("{}/api/v1/files/{id}", server.base_url());
        let response = http.get(&url).bearer_auth(&world.users[*user].access_token).send().await.expect("download");
        assert!(response.status().is_success(), "{url}: {}", response.status());
        let body = response.bytes().await.expect("the file's bytes");
        assert!(
            body.as_ref() == bytes.as_slice(),
            "{url}: {} bytes differ from the {} uploaded",
            body.len(),
            bytes.len()
        );
    }
}

/// What `<data_dir>/files/.tmp` holds: unfinished writes (any file below it but the locks), and
/// the processes' locks (`<id>.lock`, one per process that may still write there).
pub(crate) fn temp_files(data_dir: &Path) -> (Vec<String>, usize) {
    fn walk(dir: &Path, top: bool, found: &mut Vec<String>, locks: &mut usize) {
        let Ok(entries) = std::fs::read_dir(dir) else { return };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, false, found, locks);
            } else if top && path.extension().is_some_and(|extension| extension == "lock") {
                *locks += 1;
            } else {
                found.push(path.display().to_string());
            }
        }
    }
    let (mut found, mut locks) = (Vec::new(), 0);
    walk(&data_dir.join("files/.tmp"), true, &mut found, &mut locks);
    (found, locks)
}

/// Polls search until `acked`'s token finds exactly its message, within `deadline`. Whether the
/// first look found it (else the index caught up meanwhile).
pub(crate) async fn check_found(
    http: &reqwest::Client,
    server: &Server,
    user: &AuthResponse,
    acked: &Acked,
    deadline: Instant,
) -> bool {
    let path = format!("/search/messages?q={}&conversation_id={}", acked.token, acked.conversation);
    for look in 0.. {
        let results: serde_json::Value = get(http, server, user, &path).await;
        let seqs: Vec<i64> =
            results["hits"].as_array().expect("hits").iter().filter_map(|hit| hit["seq"].as_i64()).collect();
        if seqs == [acked.seq] {
            return look == 0;
        }
        assert!(seqs.is_empty(), "{}: search found {seqs:?}, not [{}]", acked.token, acked.seq);
        assert!(
            Instant::now() < deadline,
            "search did not find {} (seq {}) in time: the index did not catch up",
            acked.token,
            acked.seq
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    unreachable!("the loop returns or panics")
}

/// Waits (until `deadline`) for every voice message to have its transcript entry.
pub(crate) async fn check_transcripts(
    http: &reqwest::Client,
    server: &Server,
    world: &World,
    voices: &[(String, i64)],
    deadline: Instant,
) {
    let mut missing: Vec<(String, i64)> = voices.to_vec();
    while !missing.is_empty() {
        let mut still = Vec::new();
        for (conversation, seq) in missing {
            let entries = history(http, server, &world.users[0], &conversation).await;
            let voice = &entries[usize::try_from(seq - 1).expect("a seq")];
            assert_eq!(voice.kind, "voice", "{conversation} seq {seq}");
            let transcripts =
                entries.iter().filter(|entry| entry.kind == "transcript" && entry.target_seq == Some(seq)).count();
            assert!(transcripts <= 1, "{conversation} seq {seq}: {transcripts} transcripts");
            if transcripts == 0 {
                still.push((conversation, seq));
            }
        }
        missing = still;
        if !missing.is_empty() {
            assert!(Instant::now() < deadline, "voice messages without a transcript: {missing:?}");
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}
