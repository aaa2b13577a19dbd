//! Pools, migrations, and the helpers every area shares (errors, times, placeholders).

use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;

use chrono::DateTime;
use natter_core::model::Time;
use natter_core::store::{StoreError, StoreResult};
use sqlx::Connection;
use sqlx::any::AnyPoolOptions;
use sqlx::error::BoxDynError;
use sqlx::migrate::{Migration, MigrationSource, MigrationType, Migrator};
use sqlx::postgres::PgPoolOptions;
use sqlx::{AnyPool, Executor};

/// Writer connections: WAL lets readers run while the one writer commits; NORMAL is durable
/// across application crashes (only an OS crash may lose the last commits), at a fraction of
/// FULL's fsyncs.
///
/// The writer leaves checkpoints (copying the WAL into the database, with its fsyncs) to a
/// connection of their own (see [`run_checkpoints`]), so that no append waits behind one; its own
/// automatic checkpoint is only a backstop for a WAL that grew past 10,000 pages (40 MB).
const SQLITE_WRITER_PRAGMAS: &str = "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
     PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 5000; PRAGMA wal_autocheckpoint = 10000;";
/// The checkpointing connection: writes only the database file, never the log's tables.
const SQLITE_CHECKPOINT_PRAGMAS: &str = "PRAGMA synchronous = NORMAL; PRAGMA busy_timeout = 5000;";
/// How often the checkpointing connection copies what the WAL gained into the database.
const CHECKPOINT_EVERY: std::time::Duration = std::time::Duration::from_millis(500);
/// Reader connections refuse writes, so a write that bypasses the single writer fails loudly
/// instead of racing it for the lock.
const SQLITE_READER_PRAGMAS: &str = "PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON; \
     PRAGMA busy_timeout = 5000; PRAGMA query_only = ON;";

const SQLITE_MIGRATIONS: &[(i64, &str, &str)] = &[
    (1, "init", include_str!("../migrations/sqlite/0001_init.sql")),
    (2, "append_trigger", include_str!("../migrations/sqlite/0002_append_trigger.sql")),
    (3, "files", include_str!("../migrations/sqlite/0003_files.sql")),
    (4, "transcripts", include_str!("../migrations/sqlite/0004_transcripts.sql")),
    (5, "untranscribed_voice", include_str!("../migrations/sqlite/0005_untranscribed_voice.sql")),
];
const POSTGRES_MIGRATIONS: &[(i64, &str, &str)] = &[
    (1, "init", include_str!("../migrations/postgres/0001_init.sql")),
    (2, "files", include_str!("../migrations/postgres/0002_files.sql")),
    (3, "transcripts", include_str!("../migrations/postgres/0003_transcripts.sql")),
    (4, "search", include_str!("../migrations/postgres/0004_search.sql")),
    (5, "search_checkpoints", include_str!("../migrations/postgres/0005_search_checkpoints.sql")),
    (6, "members_version", include_str!("../migrations/postgres/0006_members_version.sql")),
    (7, "untranscribed_voice", include_str!("../migrations/postgres/0007_untranscribed_voice.sql")),
];

/// A pooled PostgreSQL connection idle this long is pinged before it is used again: a busy node
/// reuses its connections far more often and pays no ping, and after a database restart a
/// lightly used node reconnects instead of failing its next requests (checked by hand with a
/// `pg_ctl restart -m fast` between sends: none failed; with 1 s, three did).
const PING_AFTER_IDLE: std::time::Duration = std::time::Duration::from_millis(100);

/// A pool's `before_acquire` hook: pings a connection that sat idle for [`PING_AFTER_IDLE`].
fn ping_if_idle<C: Connection>(
    connection: &mut C,
    meta: sqlx::pool::PoolConnectionMetadata,
) -> Pin<Box<dyn Future<Output = Result<bool, sqlx::Error>> + Send + '_>> {
    Box::pin(async move {
        if meta.idle_for >= PING_AFTER_IDLE {
            connection.ping().await?;
        }
        Ok(true)
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dialect {
    Sqlite,
    Postgres,
}

/// The pools. On SQLite every write transaction goes through `write`, a pool of one connection:
/// SQLite has one writer anyway, and queueing in the pool avoids `SQLITE_BUSY` when a deferred
/// transaction upgrades its lock. On PostgreSQL both are the same pool.
#[derive(Clone)]
pub(crate) struct Db {
    pub(crate) read: AnyPool,
    pub(crate) write: AnyPool,
    /// SQLite (else PostgreSQL): where the two need different SQL.
    pub(crate) sqlite: bool,
    /// Plain appends go through group commit (see `group_commit`).
    pub(crate) appends: Option<crate::group_commit::AppendQueue>,
    /// SQLite: the connection that checkpoints the WAL (see [`run_checkpoints`]).
    pub(crate) checkpoints: Option<AnyPool>,
}

impl Db {
    pub(crate) async fn connect(url: &str, max_connections: u32) -> StoreResult<Db> {
        sqlx::any::install_default_drivers();
        let max_connections = max_connections.max(1);
        let db = match dialect_of(url)? {
            Dialect::Sqlite => {
                create_private_db_file(url)?;
                let url = sqlite_url(url);
                // The writer connects first so the database is created and in WAL mode before
                // any reader opens it.
                // No liveness ping before each use: a local file does not drop connections, and
                // the ping is a round trip to the connection's thread on every query.
                let write = AnyPoolOptions::new()
                    .test_before_acquire(false)
                    .max_connections(1)
                    .min_connections(1)
                    .idle_timeout(None)
                    .max_lifetime(None)
                    .after_connect(|connection, _| {
                        Box::pin(async move { connection.execute(SQLITE_WRITER_PRAGMAS).await.map(drop) })
                    })
                    .connect(&url)
                    .await
                    .map_err(backend)?;
                migrate(&write, SQLITE_MIGRATIONS).await?;
                let read = AnyPoolOptions::new()
                    .test_before_acquire(false)
                    .max_connections(max_connections)
                    .after_connect(|connection, _| {
                        Box::pin(async move { connection.execute(SQLITE_READER_PRAGMAS).await.map(drop) })
                    })
                    .connect(&url)
                    .await
                    .map_err(backend)?;
                let checkpoints = AnyPoolOptions::new()
                    .test_before_acquire(false)
                    .max_connections(1)
                    .idle_timeout(None)
                    .max_lifetime(None)
                    .after_connect(|connection, _| {
                        Box::pin(async move { connection.execute(SQLITE_CHECKPOINT_PRAGMAS).await.map(drop) })
                    })
                    .connect(&url)
                    .await
                    .map_err(backend)?;
                tokio::spawn(run_checkpoints(checkpoints.clone()));
                let pools = Db { read, write, sqlite: true, appends: None, checkpoints: Some(checkpoints) };
                let appends = crate::group_commit::AppendQueue::start(pools.clone());
                Db { appends: Some(appends), ..pools }
            }
            Dialect::Postgres => {
                // A connection is pinged before use only after it sat idle (see
                // `PING_AFTER_IDLE`): a ping is a round trip, and one before every statement
                // doubled a send's round trips. A connection that broke while in use is dropped by
                // sqlx on its error.
                let pool = AnyPoolOptions::new()
                    .max_connections(max_connections)
                    .test_before_acquire(false)
                    .before_acquire(ping_if_idle)
                    .connect(url)
                    .await
                    .map_err(backend)?;
                migrate(&pool, POSTGRES_MIGRATIONS).await?;
                // Batched appends bind arrays, which only the native driver does.
                let batches = PgPoolOptions::new()
                    .max_connections(crate::group_commit::PG_IN_FLIGHT as u32)
                    .test_before_acquire(false)
                    .before_acquire(ping_if_idle)
                    .connect(url)
                    .await
                    .map_err(backend)?;
                let pools = Db { read: pool.clone(), write: pool, sqlite: false, appends: None, checkpoints: None };
                let appends = crate::group_commit::AppendQueue::start_pg(pools.clone(), batches);
                Db { appends: Some(appends), ..pools }
            }
        };
        Ok(db)
    }

    pub(crate) async fn close(&self) {
        if let Some(checkpoints) = &self.checkpoints {
            checkpoints.close().await;
        }
        self.write.close().await;
        self.read.close().await;
    }
}

/// SQLite: every [`CHECKPOINT_EVERY`], a PASSIVE checkpoint on a connection of its own. It runs
/// beside the writer (WAL lets it), so the checkpoint's writes and fsyncs no longer stall appends
/// behind them (fsyncs were 5 % of the server's samples in a profile of the direct scenario, each
/// one stalling every send), and it keeps the WAL short. Ends when the pool is closed.
async fn run_checkpoints(pool: AnyPool) {
    let mut tick = tokio::time::interval(CHECKPOINT_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        match sqlx::query("PRAGMA wal_checkpoint(PASSIVE)").execute(&pool).await {
            Ok(_) => {}
            Err(sqlx::Error::PoolClosed) => return,
            Err(error) => tracing::warn!(%error, "SQLite WAL checkpoint failed; the next one retries"),
        }
    }
}

fn dialect_of(url: &str) -> StoreResult<Dialect> {
    if url.starts_with("sqlite:") {
        Ok(Dialect::Sqlite)
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Dialect::Postgres)
    } else {
        Err(StoreError::Backend("database URL must start with sqlite: or postgres://".into()))
    }
}

/// Creates a missing SQLite database file with mode 0600 before SQLite does (it would use 0644
/// less the umask): it holds password hashes and every message. SQLite gives the `-wal` and
/// `-shm` files the database file's mode. An existing file is left as it is.
fn create_private_db_file(url: &str) -> StoreResult<()> {
    let rest = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:")).unwrap_or(url);
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    if path.is_empty() || path == ":memory:" || query.contains("mode=memory") || query.contains("mode=ro") {
        return Ok(());
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(_) => Ok(()),
        // A missing directory is SQLite's to report, as it always was.
        Err(error) if matches!(error.kind(), std::io::ErrorKind::AlreadyExists | std::io::ErrorKind::NotFound) => {
            Ok(())
        }
        Err(error) => Err(StoreError::Backend(format!("cannot create the database file {path}: {error}"))),
    }
}

/// `sqlite://PATH` (or `sqlite:PATH`), opened read-write and created when missing.
fn sqlite_url(url: &str) -> String {
    if url.contains("mode=") {
        url.to_owned()
    } else if url.contains('?') {
        format!("{url}&mode=rwc")
    } else {
        format!("{url}?mode=rwc")
    }
}

/// Migrations are compiled in, so the binary needs no files next to it. PostgreSQL's migrator
/// takes an advisory lock, so several processes may start at once.
async fn migrate(pool: &AnyPool, migrations: &'static [(i64, &'static str, &'static str)]) -> StoreResult<()> {
    let migrator = Migrator::new(Embedded(migrations)).await.map_err(|error| StoreError::Backend(error.to_string()))?;
    migrator.run(pool).await.map_err(|error| StoreError::Backend(format!("migration failed: {error}")))
}

#[derive(Debug)]
struct Embedded(&'static [(i64, &'static str, &'static str)]);

impl<'s> MigrationSource<'s> for Embedded {
    fn resolve(self) -> Pin<Box<dyn Future<Output = Result<Vec<Migration>, BoxDynError>> + Send + 's>> {
        let migrations = self
            .0
            .iter()
            .map(|&(version, description, sql)| {
                Migration::new(version, Cow::Borrowed(description), MigrationType::Simple, Cow::Borrowed(sql), false)
            })
            .collect();
        Box::pin(async move { Ok(migrations) })
    }
}

pub(crate) fn backend(error: sqlx::Error) -> StoreError {
    StoreError::Backend(error.to_string())
}

pub(crate) fn is_unique_violation(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(database) if database.is_unique_violation())
}

/// A unique violation becomes `Conflict(what)`, anything else `Backend`.
pub(crate) fn conflict_on(what: &'static str) -> impl Fn(sqlx::Error) -> StoreError {
    move |error| if is_unique_violation(&error) { StoreError::Conflict(what) } else { backend(error) }
}

/// Times are stored as unix milliseconds.
pub(crate) fn millis(time: Time) -> i64 {
    time.timestamp_millis()
}

pub(crate) fn time_from_millis(millis: i64) -> StoreResult<Time> {
    DateTime::from_timestamp_millis(millis).ok_or_else(|| StoreError::Backend(format!("bad timestamp {millis}")))
}

/// `time` as it reads back after storing (millisecond precision), so that what a write returns
/// equals what a later read returns.
pub(crate) fn stored_time(time: Time) -> StoreResult<Time> {
    time_from_millis(millis(time))
}

pub(crate) fn flag(value: bool) -> i64 {
    i64::from(value)
}

/// `$first, $first+1, …` for `count` values: for `IN (…)` lists built at run time.
pub(crate) fn placeholders(first: usize, count: usize) -> String {
    (first..first + count).map(|n| format!("${n}")).collect::<Vec<_>>().join(", ")
}

/// The pair `(a, b)` with the lower id first: how pairs are keyed.
pub(crate) fn ordered_pair<'a>(a: &'a str, b: &'a str) -> (&'a str, &'a str) {
    if a <= b { (a, b) } else { (b, a) }
}
