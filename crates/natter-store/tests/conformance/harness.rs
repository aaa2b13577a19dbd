//! A store on a fresh database per test, removed afterwards (also when the test fails).

use std::path::PathBuf;

use natter_store::SqlStore;
use sqlx::{Connection, Executor, PgConnection};

const POSTGRES_URL_VAR: &str = "NATTER_TEST_POSTGRES_URL";

pub(crate) struct TestDb {
    pub(crate) store: SqlStore,
    /// The URL the store was opened with, to open it again.
    pub(crate) url: String,
    _cleanup: Cleanup,
}

enum Cleanup {
    Directory(PathBuf),
    Database { admin_url: String, name: String },
}

impl TestDb {
    pub(crate) async fn sqlite() -> TestDb {
        let dir = std::env::temp_dir().join(format!("natter-store-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("create the test directory");
        let cleanup = Cleanup::Directory(dir.clone());
        let url = format!("sqlite://{}", dir.join("natter.db").display());
        let store = SqlStore::connect(&url, 4).await.expect("open SQLite");
        TestDb { store, url, _cleanup: cleanup }
    }

    /// `None` (after a skip line) when no PostgreSQL is configured, except under CI.
    pub(crate) async fn postgres(test: &str) -> Option<TestDb> {
        let admin_url = match std::env::var(POSTGRES_URL_VAR) {
            Ok(url) if !url.is_empty() => url,
            _ if std::env::var_os("CI").is_some() => {
                panic!("{test}: {POSTGRES_URL_VAR} is not set, and CI requires the PostgreSQL tests")
            }
            _ => {
                eprintln!("skipping postgres::{test}: set {POSTGRES_URL_VAR} to run it");
                return None;
            }
        };
        let name = format!("natter_s_{}", uuid::Uuid::new_v4().simple());
        let mut admin = PgConnection::connect(&admin_url).await.expect("connect to the admin database");
        admin.execute(format!("CREATE DATABASE {name}").as_str()).await.expect("create the test database");
        let _ = admin.close().await;
        let cleanup = Cleanup::Database { admin_url: admin_url.clone(), name: name.clone() };
        let url = with_database(&admin_url, &name);
        let store = SqlStore::connect(&url, 8).await.expect("open PostgreSQL");
        Some(TestDb { store, url, _cleanup: cleanup })
    }
}

/// `admin_url` with its database path replaced by `name`.
fn with_database(admin_url: &str, name: &str) -> String {
    let (scheme, rest) = admin_url.split_once("://").expect("the admin URL has a scheme");
    let (authority, query) = match rest.split_once('/') {
        Some((authority, path)) => (authority, path.split_once('?').map(|(_, query)| query)),
        None => (rest.split_once('?').map_or(rest, |(authority, _)| authority), rest.split_once('?').map(|(_, q)| q)),
    };
    match query {
        Some(query) => format!("{scheme}://{authority}/{name}?{query}"),
        None => format!("{scheme}://{authority}/{name}"),
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        match self {
            Cleanup::Directory(dir) => {
                let _ = std::fs::remove_dir_all(dir);
            }
            Cleanup::Database { admin_url, name } => {
                // Drop runs inside the test's runtime, so the cleanup gets a runtime of its own;
                // FORCE ends the store's connections, which may still be closing.
                let admin_url = admin_url.clone();
                let statement = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
                let cleanup = std::thread::spawn(move || {
                    let Ok(runtime) = tokio::runtime::Builder::new_current_thread().enable_all().build() else {
                        return;
                    };
                    runtime.block_on(async move {
                        if let Ok(mut admin) = PgConnection::connect(&admin_url).await {
                            let _ = admin.execute(statement.as_str()).await;
                            let _ = admin.close().await;
                        }
                    });
                });
                let _ = cleanup.join();
            }
        }
    }
}

#[test]
fn database_is_swapped_in_the_admin_url() {
    assert_eq!(with_database("postgres://u@h:1/postgres", "x"), "postgres://u@h:1/x");
    assert_eq!(with_database("postgres://u@h:1/postgres?sslmode=disable", "x"), "postgres://u@h:1/x?sslmode=disable");
    assert_eq!(with_database("postgres://u@h:1", "x"), "postgres://u@h:1/x");
}
