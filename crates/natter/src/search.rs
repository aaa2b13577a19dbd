//! Composition of message search: which index adapter the configuration names, the background
//! indexer (follows the bus, catches up from the log past the index's checkpoints), and `natter
//! search reindex`.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use natter_core::bus::Bus;
use natter_core::search::SearchIndex;
use natter_core::search::indexer::Indexer;
use natter_core::search::reindex::{ReindexStats, reindex};
use natter_core::store::{LogStore, Store};
use natter_search::TantivyIndex;
use natter_store::search::PgSearchIndex;

use crate::config::{Config, SearchConfig};

/// Opens the index named by `[search]` (`None` when search is off). `threads`: indexing threads
/// of the embedded index.
pub async fn open_index(config: &Config, threads: usize) -> anyhow::Result<Option<Arc<dyn SearchIndex>>> {
    Ok(Some(match config.search.backend {
        crate::config::SearchBackend::Off => return Ok(None),
        crate::config::SearchBackend::Postgres => {
            let url = config.search_postgres_url();
            Arc::new(
                PgSearchIndex::connect(&url, config.database.max_connections)
                    .await
                    .context("cannot open the postgres search index")?,
            )
        }
        crate::config::SearchBackend::Embedded => {
            let path = config.search_path();
            let index = tokio::task::spawn_blocking(move || TantivyIndex::open(&path, threads))
                .await
                .context("the search index task failed")?
                .context("cannot open the embedded search index")?;
            Arc::new(index)
        }
    }))
}

/// Starts the indexer: subscribed before this returns, so no entry committed later is missed;
/// what was committed before (and never indexed) it catches up from the log in the background.
/// `targeted`: delivery sends events only to the nodes of their recipients, so the indexer
/// follows the log subject, which carries every entry once.
pub async fn start_indexer(
    store: Arc<dyn Store>,
    index: Arc<dyn SearchIndex>,
    bus: &Arc<dyn Bus>,
    config: &SearchConfig,
    targeted: bool,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let events = if targeted { bus.subscribe_log().await } else { bus.subscribe().await };
    let events = events.context("the search indexer cannot subscribe to the bus")?;
    let commit_interval = Duration::from_millis(config.commit_interval_ms);
    Ok(tokio::spawn(Indexer::new(store, index, commit_interval).run(events)))
}

/// `natter search reindex`: rebuilds the index from the message log with a progress bar.
pub async fn reindex_command(config: &Config) -> anyhow::Result<ReindexStats> {
    let store = natter_store::SqlStore::connect(&config.database_url(), config.database.max_connections)
        .await
        .context("cannot open the database")?;
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(4);
    let index = open_index(config, threads).await?.context("search.backend is off: there is no index to rebuild")?;
    let total = store.entry_count().await.context("cannot count the log entries")?;
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} entries ({per_sec}) {msg}")
            .context("progress bar template")?,
    );
    bar.enable_steady_tick(Duration::from_millis(200));
    let started = std::time::Instant::now();
    let stats = reindex(&store, index.as_ref(), |stats| {
        bar.set_position(stats.entries);
        bar.set_message(format!("{} indexed", stats.documents));
    })
    .await
    .context("reindex failed")?;
    bar.finish_and_clear();
    println!(
        "reindexed {} messages from {} log entries into the {} index in {:.1} s",
        stats.documents,
        stats.entries,
        index.name(),
        started.elapsed().as_secs_f64()
    );
    store.close().await;
    Ok(stats)
}
