//! natter-core's `Indexer` on a real store and the PostgreSQL index: an entry whose bus event was
//! lost is read from the log when a later event shows the gap, a lost tail (edit, recall) is
//! caught up by a sweep, late or repeated events change nothing, and a restarted indexer resumes
//! from the checkpoints.

use std::sync::Arc;
use std::time::Duration;

use natter_core::bus::Event;
use natter_core::ids::{ConversationId, Seq};
use natter_core::model::{Message, MessageKind};
use natter_core::search::indexer::Indexer;
use natter_core::search::{ParsedQuery, Scope, SearchIndex, SearchOrder, SearchRequest};
use natter_core::store::Effect;
use natter_core::store::prelude::*;
use natter_core::wire;
use natter_proto::ServerFrame;
use natter_store::SqlStore;
use natter_store::search::PgSearchIndex;

use crate::fixtures::{at, event, group, send, user};
use crate::harness::TestDb;

fn bus_event(message: &Message) -> Event {
    let frame = ServerFrame::Message { message: wire::message_view(message) };
    Event {
        recipients: vec![message.sender_id.clone()],
        frame: serde_json::to_vec(&frame).expect("encode a frame").into(),
        position: Some(wire::position(message)),
        ends: None,
        entry: Some(std::sync::Arc::new(message.clone())),
    }
}

async fn found(index: &dyn SearchIndex, conversation: &ConversationId, query: &str) -> Vec<Seq> {
    let request = SearchRequest {
        query: ParsedQuery::parse(query).expect("a query"),
        scopes: vec![Scope { conversation_id: conversation.clone(), min_seq: Seq::ZERO }],
        order: SearchOrder::Newest,
        offset: 0,
        limit: 100,
        created_until: None,
    };
    let mut seqs: Vec<Seq> =
        index.search(&request).await.expect("search").hits.into_iter().map(|hit| hit.seq).collect();
    seqs.sort_unstable();
    seqs
}

async fn checkpoint(index: &dyn SearchIndex, conversation: &ConversationId) -> Option<Seq> {
    let checkpoints = index.checkpoints().await.expect("checkpoints");
    checkpoints.into_iter().find(|(c, _)| c == conversation).map(|(_, seq)| seq)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_indexer_reads_what_the_bus_lost_from_the_log() {
    let Some(db) = TestDb::postgres("search indexer").await else { return };
    let store: Arc<dyn Store> = Arc::new(SqlStore::connect(&db.url, 4).await.expect("open the store"));
    let index: Arc<dyn SearchIndex> = Arc::new(PgSearchIndex::connect(&db.url, 4).await.expect("open the index"));
    let ann = user(store.as_ref(), "ann", "Ann").await;
    let (g, _) = group(store.as_ref(), "g", &ann, &[], at(1)).await;
    let alpha = send(store.as_ref(), &g.id, &ann, "alpha one", at(2)).await;

    let mut indexer = Indexer::new(store.clone(), index.clone(), Duration::ZERO);
    indexer.resume().await.expect("resume");
    // The group's first entry (seq 1) never came: alpha's event shows the gap.
    indexer.apply(&[bus_event(&alpha)]).await.expect("apply");
    indexer.flush().await.expect("flush");
    assert_eq!(found(index.as_ref(), &g.id, "alpha").await, [alpha.seq]);
    assert_eq!(checkpoint(index.as_ref(), &g.id).await, Some(alpha.seq));

    let bravo = send(store.as_ref(), &g.id, &ann, "bravo two", at(3)).await;
    let charlie = send(store.as_ref(), &g.id, &ann, "charlie three", at(4)).await;
    // Bravo's event is lost; charlie's shows the gap, and bravo is read from the log.
    indexer.apply(&[bus_event(&charlie)]).await.expect("apply");
    indexer.flush().await.expect("flush");
    assert_eq!(found(index.as_ref(), &g.id, "bravo").await, [bravo.seq]);
    assert_eq!(found(index.as_ref(), &g.id, "charlie").await, [charlie.seq]);
    assert_eq!(checkpoint(index.as_ref(), &g.id).await, Some(charlie.seq));

    // A late or repeated event changes nothing.
    indexer.apply(&[bus_event(&bravo), bus_event(&alpha)]).await.expect("apply");
    indexer.flush().await.expect("flush");
    assert_eq!(index.count().await.expect("count"), 3, "one document per message");

    // An edit and a recall whose events are all lost: the sweep finds them past the checkpoint.
    let edit = Effect::Edit { target_seq: bravo.seq, text: "bravo rewritten".into() };
    event(store.as_ref(), &g.id, &ann, MessageKind::Edit, Some(bravo.seq), edit, at(5)).await;
    let recall = Effect::Recall { target_seq: alpha.seq };
    let last = event(store.as_ref(), &g.id, &ann, MessageKind::Recall, Some(alpha.seq), recall, at(6)).await;
    indexer.sweep().await.expect("sweep");
    indexer.flush().await.expect("flush");
    assert!(found(index.as_ref(), &g.id, "alpha").await.is_empty(), "the recall was caught up");
    assert!(found(index.as_ref(), &g.id, "two").await.is_empty(), "the edit was caught up");
    assert_eq!(found(index.as_ref(), &g.id, "rewritten").await, [bravo.seq]);
    assert_eq!(checkpoint(index.as_ref(), &g.id).await, Some(last.seq));

    // A new indexer (a restart) resumes from the checkpoints: a message sent meanwhile, with no
    // event, is caught up by the start-up sweep.
    let delta = send(store.as_ref(), &g.id, &ann, "delta four", at(7)).await;
    let mut restarted = Indexer::new(store.clone(), index.clone(), Duration::ZERO);
    restarted.resume().await.expect("resume");
    restarted.sweep().await.expect("sweep");
    restarted.flush().await.expect("flush");
    assert_eq!(found(index.as_ref(), &g.id, "delta").await, [delta.seq]);
    assert_eq!(index.count().await.expect("count"), 3);
    assert_eq!(checkpoint(index.as_ref(), &g.id).await, Some(delta.seq));
}
