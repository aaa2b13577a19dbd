//! The search benchmark on the PostgreSQL index; the workload and flags are in
//! `natter_core::search::bench`. Uses (and empties) `search_documents` in the given database.
//!
//! ```text
//! cargo run --release -p natter-store --example search_bench_pg -- --postgres-url postgres://… \
//!     [--messages 1000000] [--queries 3000] [--conversations 10000] [--seed 7]
//! ```

use natter_core::search::bench;
use natter_store::search::PgSearchIndex;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args = bench::args(std::env::args().skip(1));
    let url = args.postgres_url.clone().expect("--postgres-url is required");
    let index = PgSearchIndex::connect(&url, 4).await.expect("open the postgres search index");
    bench::run(&index, &args).await;
    index.close().await;
}
