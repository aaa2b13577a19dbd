//! A store on a fresh database per test, removed afterwards (also when the test fails).

use std::path::PathBuf;

use natter_store::SqlStore;
use natter_testkit::TestDatabase;

const POSTGRES_URL_VAR: &str = "NATTER_TEST_POSTGRES_URL";

pub(crate) struct TestDb {
    pub(crate) store: SqlStore,
    /// The URL the store was opened with, to open it again.
    pub(crate) url: String,
    _cleanup: Cleanup,
}

enum Cleanup {
    Directory(PathBuf),
    Database(#[allow(dead_code, reason = "held for its Drop, which drops the database")] TestDatabase),
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
        let admin_url = natter_testkit::service_url(POSTGRES_URL_VAR, &format!("postgres::{test}"))?;
        let database = TestDatabase::create(&admin_url, "natter_s").await;
        let url = database.url.clone();
        let store = SqlStore::connect(&url, 8).await.expect("open PostgreSQL");
        Some(TestDb { store, url, _cleanup: Cleanup::Database(database) })
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if let Cleanup::Directory(dir) = self {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}
