//! The search-index conformance suite (natter-core's `search::conformance`) on the embedded
//! tantivy index, one fresh index directory per case.

use std::sync::Arc;

use natter_core::ids::{ConversationId, Seq};
use natter_core::search::SearchIndex;
use natter_search::TantivyIndex;

async fn open() -> Option<(Arc<dyn SearchIndex>, tempfile::TempDir)> {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let index = TantivyIndex::open(dir.path(), 1).expect("open the index");
    Some((Arc::new(index), dir))
}

natter_core::search_conformance!(open);

#[tokio::test]
async fn a_second_writer_is_refused_with_a_clear_error() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let _first = TantivyIndex::open(dir.path(), 1).expect("open the index");
    let error = TantivyIndex::open(dir.path(), 1).expect_err("the index is locked");
    assert!(error.to_string().contains("in use by another process"), "{error}");
}

#[tokio::test]
async fn documents_and_checkpoints_survive_reopening_and_only_what_was_committed() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let c = ConversationId("c".into());
    {
        let index = TantivyIndex::open(dir.path(), 1).expect("open the index");
        let document = natter_core::search::conformance::document("c", 1, "persisted 文档");
        index.upsert(vec![document]).await.expect("upsert");
        index.set_checkpoints(vec![(c.clone(), Seq::new(1))]).await.expect("set a checkpoint");
        index.flush().await.expect("flush");
        // Staged but never committed (the process dies): neither the document nor the checkpoint.
        let document = natter_core::search::conformance::document("c", 2, "lost");
        index.upsert(vec![document]).await.expect("upsert");
        index.set_checkpoints(vec![(c.clone(), Seq::new(2))]).await.expect("set a checkpoint");
    }
    let index = TantivyIndex::open(dir.path(), 1).expect("reopen the index");
    assert_eq!(index.count().await.expect("count"), 1);
    assert_eq!(index.checkpoints().await.expect("checkpoints"), [(c, Seq::new(1))]);
}
