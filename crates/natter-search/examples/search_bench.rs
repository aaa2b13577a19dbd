//! The search benchmark on the embedded (tantivy) index; the workload and flags are in
//! `natter_core::search::bench`.
//!
//! ```text
//! cargo run --release -p natter-search --example search_bench -- [--messages 1000000]
//!     [--queries 3000] [--conversations 10000] [--threads 2] [--dir PATH] [--seed 7]
//! ```

use natter_core::search::bench;
use natter_search::TantivyIndex;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args = bench::args(std::env::args().skip(1));
    let temp = tempfile::tempdir().expect("a temporary directory");
    let dir = args.dir.clone().unwrap_or_else(|| temp.path().join("search"));
    let index = TantivyIndex::open(&dir, args.threads).expect("open the index");
    println!("embedded index in {} with {} indexing thread(s)", dir.display(), args.threads);
    bench::run(&index, &args).await;
    let size: u64 = std::fs::read_dir(&dir)
        .map(|entries| entries.filter_map(Result::ok).filter_map(|e| e.metadata().ok()).map(|m| m.len()).sum())
        .unwrap_or(0);
    println!("index size: {:.0} MB", size as f64 / 1e6);
}
