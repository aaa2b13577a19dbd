//! Message search over HTTP: Chinese substrings, English words and prefixes, edits and recalls,
//! membership filtering, paging and input checks — on SQLite with the embedded (tantivy) index
//! and on PostgreSQL with the PostgreSQL index.
//!
//! Indexing runs after commit, off the request path, so a test waits until a hit shows up. To
//! show that something is *not* found, it first waits for a message sent later to be found: one
//! indexer applies one process's events in order.

use std::time::{Duration, Instant};

use natter_proto::{MessageView, SearchResults};
use serde_json::json;

use crate::common::{Backend, Resp, TestApp, TestUser, on_both_backends, spawn_app_on, unknown_id};

async fn search(app: &TestApp, user: &TestUser, params: &[(&str, &str)]) -> Resp {
    app.get_query(user, "/search/messages", params).await
}

async fn found(app: &TestApp, user: &TestUser, q: &str) -> SearchResults {
    search(app, user, &[("q", q)]).await.expect(200)
}

/// Seqs of the hits for `q` in `conversation`, newest first.
async fn seqs(app: &TestApp, user: &TestUser, conversation: &str, q: &str) -> Vec<i64> {
    let results: SearchResults = search(app, user, &[("q", q), ("conversation_id", conversation)]).await.expect(200);
    results.hits.iter().map(|hit| hit.seq).collect()
}

/// Searches until `done` holds for the results (10 s at most).
async fn eventually(
    app: &TestApp,
    user: &TestUser,
    params: &[(&str, &str)],
    done: impl Fn(&SearchResults) -> bool,
) -> SearchResults {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let results: SearchResults = search(app, user, params).await.expect(200);
        if done(&results) {
            return results;
        }
        assert!(Instant::now() < deadline, "search {params:?} never got there; last results: {results:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until `message` is found by `q` for `user`.
async fn indexed(app: &TestApp, user: &TestUser, q: &str, message: &MessageView) -> SearchResults {
    eventually(app, user, &[("q", q)], |r| r.hits.iter().any(|hit| hit.message.id == message.id)).await
}

on_both_backends!(
    chinese_is_found_by_any_substring,
    english_by_words_and_prefixes_in_any_case,
    edits_are_reindexed_and_recalls_disappear,
    only_members_find_and_only_from_when_they_joined,
    results_page_with_a_cursor_in_either_order,
);

async fn chinese_is_found_by_any_substring(backend: Backend) {
    let app = spawn_app_on(backend).await;
    let (li, wang) = (app.register("lin").await, app.register("wang").await);
    let direct = app.make_friends(&li, &wang).await;
    let meeting = app.send_text(&li, &direct, "我们明天去北京开会").await;
    let other = app.send_text(&wang, &direct, "東京でラーメンを食べた, 안녕하세요 친구").await;
    let results = indexed(&app, &wang, "北京", &meeting).await;
    assert_eq!(results.hits.len(), 1);
    let hit = &results.hits[0];
    assert_eq!((hit.conversation_id.as_str(), hit.seq), (direct.as_str(), meeting.seq));
    assert_eq!(hit.message.text.as_deref(), Some("我们明天去北京开会"));
    assert_eq!(hit.snippet, "我们明天去<mark>北京</mark>开会");
    assert_eq!(hit.score, None, "no score in newest order");
    indexed(&app, &li, "ラーメン", &other).await;
    for needle in ["明天去", "京开", "我们明天去北京开会", "们明"] {
        assert_eq!(seqs(&app, &li, &direct, needle).await, [meeting.seq], "{needle}");
    }
    assert_eq!(seqs(&app, &li, &direct, "안녕").await, [other.seq]);
    assert_eq!(seqs(&app, &li, &direct, "京で").await, [other.seq]);
    for absent in ["上海", "北开", "开会了"] {
        assert!(seqs(&app, &li, &direct, absent).await.is_empty(), "{absent}");
    }
    search(&app, &li, &[("q", "北")]).await.expect_error(400, "query_too_short");
}

async fn english_by_words_and_prefixes_in_any_case(backend: Backend) {
    let app = spawn_app_on(backend).await;
    let (ann, bob) = (app.register("ann").await, app.register("bob").await);
    let group = app.create_group(&ann, "Reading", &[&bob]).await;
    let fox = app.send_text(&ann, &group.id, "The Quick Brown Fox jumps over <the> lazy dog").await;
    let quiet = app.send_text(&bob, &group.id, "a quiet evening").await;
    let results = indexed(&app, &bob, "fox", &fox).await;
    assert_eq!(results.hits[0].snippet, "The Quick Brown <mark>Fox</mark> jumps over &lt;the&gt; lazy dog");
    indexed(&app, &bob, "quiet", &quiet).await;
    let id = group.id.as_str();
    assert_eq!(seqs(&app, &bob, id, "QUICK").await, [fox.seq]);
    assert_eq!(seqs(&app, &bob, id, "brown fox").await, [fox.seq]);
    assert_eq!(seqs(&app, &bob, id, "bro FO").await, [fox.seq]);
    assert_eq!(seqs(&app, &bob, id, "qui").await, [quiet.seq, fox.seq], "a prefix finds both, newest first");
    assert!(seqs(&app, &bob, id, "uick").await.is_empty(), "not an infix");
    assert!(seqs(&app, &bob, id, "fox cat").await.is_empty(), "every term must match");
    let marked: SearchResults = search(&app, &bob, &[("q", "qui"), ("conversation_id", id)]).await.expect(200);
    assert_eq!(marked.hits[1].snippet, "The <mark>Quick</mark> Brown Fox jumps over &lt;the&gt; lazy dog");
}

async fn edits_are_reindexed_and_recalls_disappear(backend: Backend) {
    let app = spawn_app_on(backend).await;
    let (ann, bob) = (app.register("ann").await, app.register("bob").await);
    let direct = app.make_friends(&ann, &bob).await;
    let plan = app.send_text(&ann, &direct, "original plan 原来的计划").await;
    indexed(&app, &bob, "original", &plan).await;
    let path = format!("/conversations/{direct}/messages/{}", plan.seq);
    app.patch(&ann, &path, json!({ "text": "revised plan 新的计划" })).await.expect_success();
    let results = indexed(&app, &bob, "revised", &plan).await;
    assert_eq!(results.hits[0].message.text.as_deref(), Some("revised plan 新的计划"));
    assert!(results.hits[0].message.edited_at.is_some());
    assert!(found(&app, &bob, "original").await.hits.is_empty(), "the old text is no longer indexed");
    assert!(found(&app, &bob, "原来").await.hits.is_empty());
    assert_eq!(found(&app, &bob, "新的").await.hits.len(), 1);

    app.delete(&ann, &path).await.expect_success();
    assert!(found(&app, &bob, "revised").await.hits.is_empty(), "a recalled message is never shown");
    let later = app.send_text(&bob, &direct, "later plan").await;
    let results = indexed(&app, &ann, "plan", &later).await;
    assert_eq!(results.hits.len(), 1, "the recalled message is gone from the index: {results:?}");
}

async fn only_members_find_and_only_from_when_they_joined(backend: Backend) {
    let app = spawn_app_on(backend).await;
    let (ann, bob, eve) = (app.register("ann").await, app.register("bob").await, app.register("eve").await);
    let group = app.create_group(&ann, "Secret", &[&bob]).await;
    let before = app.send_text(&bob, &group.id, "机密计划 alpha").await;
    indexed(&app, &ann, "机密", &before).await;
    assert!(found(&app, &eve, "机密").await.hits.is_empty(), "a non-member finds nothing");
    assert!(found(&app, &eve, "alpha").await.hits.is_empty());
    for conversation in [group.id.clone(), unknown_id()] {
        search(&app, &eve, &[("q", "机密"), ("conversation_id", &conversation)])
            .await
            .expect_error_in(404, &["not_found", "conversation_not_found"]);
    }

    app.add_members(&ann, &group.id, &[&eve]).await.expect_success();
    let after = app.send_text(&ann, &group.id, "新的机密 beta").await;
    let results = indexed(&app, &eve, "机密", &after).await;
    let seen: Vec<i64> = results.hits.iter().map(|hit| hit.seq).collect();
    assert_eq!(seen, [after.seq], "entries from before eve joined stay hidden");
    assert!(found(&app, &eve, "alpha").await.hits.is_empty());
    assert_eq!(seqs(&app, &bob, &group.id, "机密").await, [after.seq, before.seq]);

    app.remove_member(&ann, &group.id, &eve).await.expect_success();
    assert!(found(&app, &eve, "机密").await.hits.is_empty(), "a member who left finds nothing");
    search(&app, &eve, &[("q", "beta"), ("conversation_id", &group.id)])
        .await
        .expect_error_in(404, &["not_found", "conversation_not_found"]);
}

async fn results_page_with_a_cursor_in_either_order(backend: Backend) {
    let app = spawn_app_on(backend).await;
    let (ann, bob) = (app.register("ann").await, app.register("bob").await);
    let direct = app.make_friends(&ann, &bob).await;
    let mut sent = Vec::new();
    for n in 0..5 {
        sent.push(app.send_text(&ann, &direct, &format!("report number {n} 报告")).await);
    }
    let strong = app.send_text(&ann, &direct, "report report report, report 报告报告").await;
    indexed(&app, &bob, "report", &strong).await;
    let mut pages = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut params = vec![("q", "报告"), ("limit", "2")];
        if let Some(cursor) = &cursor {
            params.push(("cursor", cursor));
        }
        let page: SearchResults = search(&app, &bob, &params).await.expect(200);
        assert!(page.hits.len() <= 2);
        pages.extend(page.hits.iter().map(|hit| (hit.seq, hit.message.created_at)));
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    assert!(pages.windows(2).all(|pair| pair[0].1 >= pair[1].1), "newest first: {pages:?}");
    let mut paged: Vec<i64> = pages.iter().map(|(seq, _)| *seq).collect();
    paged.sort_unstable();
    let all: Vec<i64> = sent.iter().chain([&strong]).map(|m| m.seq).collect();
    assert_eq!(paged, all, "every hit exactly once across the pages");

    let ranked: SearchResults = search(&app, &bob, &[("q", "report"), ("order", "relevance")]).await.expect(200);
    assert_eq!(ranked.hits.len(), 6);
    assert_eq!(ranked.hits[0].seq, strong.seq, "the message with most matches ranks first");
    let scores: Vec<f32> = ranked.hits.iter().map(|hit| hit.score.expect("a score in relevance order")).collect();
    assert!(scores.windows(2).all(|pair| pair[0] >= pair[1]), "{scores:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_with_specific_codes() {
    let app = crate::common::spawn_app().await;
    let ann = app.register("ann").await;
    let long = "q".repeat(201);
    for (params, code) in [
        (vec![("q", "")], "invalid_query"),
        (vec![("q", "  ,;! ")], "invalid_query"),
        (vec![("q", long.as_str())], "query_too_long"),
        (vec![("q", "北")], "query_too_short"),
        (vec![("q", "x"), ("limit", "0")], "invalid_limit"),
        (vec![("q", "x"), ("limit", "101")], "invalid_limit"),
        (vec![("q", "x"), ("limit", "ten")], "invalid_limit"),
        (vec![("q", "x"), ("cursor", "not-a-cursor")], "invalid_cursor"),
        (vec![("q", "x"), ("order", "oldest")], "invalid_order"),
    ] {
        search(&app, &ann, &params).await.expect_error(400, code);
    }
    let ok: SearchResults = search(&app, &ann, &[("q", "x"), ("limit", "100")]).await.expect(200);
    assert!(ok.hits.is_empty() && ok.next_cursor.is_none());
    app.send(app.api(reqwest::Method::GET, "/search/messages").query(&[("q", "x")]))
        .await
        .expect_error(401, "unauthorized");
}
