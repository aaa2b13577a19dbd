//! The search side of natter-store: the search-index conformance suite (natter-core's
//! `search::conformance`) on [`PgSearchIndex`], one fresh PostgreSQL database per case through
//! `NATTER_TEST_POSTGRES_URL` (skipped without it, failing under `CI`), and the log scan that
//! rebuilds an index, on SQLite and PostgreSQL.

#[path = "../conformance/fixtures.rs"]
#[allow(dead_code)]
mod fixtures;
#[path = "../conformance/harness.rs"]
#[allow(dead_code)]
mod harness;

use std::sync::Arc;

use natter_core::search::SearchIndex;
use natter_store::search::PgSearchIndex;

use crate::harness::TestDb;

async fn open_pg() -> Option<(Arc<dyn SearchIndex>, TestDb)> {
    let db = TestDb::postgres("search conformance").await?;
    let index = PgSearchIndex::connect(&db.url, 4).await.expect("open the postgres search index");
    Some((Arc::new(index), db))
}

mod postgres {
    natter_core::search_conformance!(super::open_pg);
}

mod indexer;
mod log_scan;
