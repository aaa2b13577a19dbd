//! The index catches up from the message log by itself: messages acknowledged just before the
//! server was killed (SIGKILL), before its indexer committed them, become searchable after a
//! restart over the same data, with no `natter search reindex`; so do the edits and recalls made
//! in that window. On SQLite with the embedded index and on PostgreSQL with the PostgreSQL index.

use serde_json::json;
use sqlx::{Connection, PgConnection};

use super::search_reindex::{Server, natter};
use crate::common::{Backend, on_both_backends};

/// Sent before the crash; each text holds `crashword` and its own number.
const SENT: usize = 40;

on_both_backends!(messages_acknowledged_before_a_crash_become_searchable_after_restart);

async fn messages_acknowledged_before_a_crash_become_searchable_after_restart(backend: Backend) {
    let data_dir = std::env::temp_dir().join(format!("natter-catch-up-{}", uuid::Uuid::new_v4().simple()));
    let database = backend.create_database().await;
    let url = database.as_ref().map(|database| database.url.clone());

    // The first run holds indexing commits back for an hour, so that nothing below is committed
    // to the index when the process dies. On PostgreSQL, whose index writes commit at once, the
    // first run indexes into a throwaway embedded index instead: the PostgreSQL index misses
    // every event, as it would if the only process died before indexing them.
    let mut command = natter(&data_dir, url.as_deref());
    command.env("NATTER_SEARCH__COMMIT_INTERVAL_MS", "3600000");
    if url.is_some() {
        command.env("NATTER_SEARCH__BACKEND", "embedded");
    }
    let server = Server::spawn(command);
    let post = reqwest::Method::POST;
    let ann = server
        .call(post.clone(), "/auth/register", None, Some(json!({"username": "ann", "password": "correct-horse-9"})))
        .await;
    let token = ann["access_token"].as_str().expect("a token").to_owned();
    let group =
        server.call(post.clone(), "/conversations", Some(&token), Some(json!({"kind": "group", "name": "g"}))).await;
    let messages = format!("/conversations/{}/messages", group["id"].as_str().expect("an id"));
    let mut acknowledged = Vec::new();
    for n in 0..SENT {
        let body = json!({"client_msg_id": format!("m{n}"), "kind": "text", "text": format!("crashword number{n}")});
        let sent = server.call(post.clone(), &messages, Some(&token), Some(body)).await;
        acknowledged.push(sent["seq"].as_i64().expect("an acknowledged seq"));
    }
    let (edited, recalled) = (acknowledged[0], acknowledged[1]);
    let edit = json!({"text": "crashword rewritten"});
    server.call(reqwest::Method::PATCH, &format!("{messages}/{edited}"), Some(&token), Some(edit)).await;
    server.call(reqwest::Method::DELETE, &format!("{messages}/{recalled}"), Some(&token), None).await;
    drop(server); // SIGKILL, right after the last acknowledgement

    let server = Server::start(&data_dir, url.as_deref());
    let expected: Vec<i64> = acknowledged.iter().copied().filter(|seq| *seq != recalled).collect();
    // Sorted: messages sent within one millisecond come in either order.
    let sorted = |seqs: &[i64]| {
        let mut seqs = seqs.to_vec();
        seqs.sort_unstable();
        seqs
    };
    let found = server.search_until(&token, "crashword", |seqs| sorted(seqs) == expected).await;
    assert_eq!(sorted(&found), expected, "every acknowledged message is searchable, once, the recalled one not");
    assert_eq!(server.search_until(&token, "rewritten", |seqs| !seqs.is_empty()).await, [edited]);
    assert!(server.search_until(&token, "number0", |_| true).await.is_empty(), "the edit replaced the text");
    assert_eq!(server.search_until(&token, "number39", |_| true).await, [acknowledged[SENT - 1]]);

    if let Some(url) = &url {
        let mut connection = PgConnection::connect(url).await.expect("connect");
        let (documents,): (i64,) =
            sqlx::query_as("SELECT COUNT(*) FROM search_documents").fetch_one(&mut connection).await.expect("count");
        assert_eq!(documents, expected.len() as i64, "one document per message");
        // Written after the documents it covers: poll for it too.
        let last = acknowledged[SENT - 1] + 2; // the edit and the recall came last
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let checkpoint: Option<(i64,)> =
                sqlx::query_as("SELECT seq FROM search_checkpoints WHERE conversation_id = $1")
                    .bind(group["id"].as_str().expect("an id"))
                    .fetch_optional(&mut connection)
                    .await
                    .expect("read the checkpoint");
            if checkpoint == Some((last,)) || std::time::Instant::now() > deadline {
                assert_eq!(checkpoint, Some((last,)), "indexed up to the last entry");
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        let _ = connection.close().await;
    }
    drop(server);
    let _ = std::fs::remove_dir_all(&data_dir);
}
