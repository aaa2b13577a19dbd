//! What natter's test suites share, so that each does not spell it out again:
//!
//! * [`service_url`]: the URL of a throwaway service `scripts/test.sh` started
//!   (`NATTER_TEST_POSTGRES_URL`, `NATTER_TEST_NATS_URL`, `NATTER_TEST_ETCD_URL`, …), or a skip
//!   — except under `CI`, where a missing service fails the test instead of hiding it;
//! * [`TestDatabase`]: a fresh PostgreSQL database per test, dropped afterwards;
//! * [`free_port`].
//!
//! A dev-dependency only: nothing here ships.

use std::net::TcpListener;

use sqlx::{Connection, Executor, PgConnection};

/// The value of `var` (a service `scripts/test.sh` started), or `None` after a skip line naming
/// `test`. Under `CI` a missing service is a failure: a silently skipped test would hide one.
pub fn service_url(var: &str, test: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(value) if !value.is_empty() => Some(value),
        _ if std::env::var_os("CI").is_some() => {
            panic!("{test}: {var} is not set, and CI runs every test (scripts/test.sh sets it)")
        }
        _ => {
            eprintln!("skipping {test}: set {var} (scripts/test.sh --services-only prints it)");
            None
        }
    }
}

/// A PostgreSQL database made for one test, dropped (with `FORCE`) when this is dropped.
#[derive(Debug)]
pub struct TestDatabase {
    /// The URL of the new database.
    pub url: String,
    admin_url: String,
    name: String,
}

impl TestDatabase {
    /// Creates `<prefix>_<random>` through `admin_url` (a URL of any database on the server).
    pub async fn create(admin_url: &str, prefix: &str) -> TestDatabase {
        let name = format!("{prefix}_{}", uuid::Uuid::new_v4().simple());
        let mut admin = PgConnection::connect(admin_url)
            .await
            .unwrap_or_else(|error| panic!("connect to the PostgreSQL admin URL {admin_url}: {error}"));
        admin.execute(format!("CREATE DATABASE {name}").as_str()).await.expect("create the test database");
        let _ = admin.close().await;
        TestDatabase { url: with_database(admin_url, &name), admin_url: admin_url.to_owned(), name }
    }

    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        // Drop may run inside the test's runtime, so the cleanup gets a runtime of its own; FORCE
        // ends connections that are still closing. Best effort: the server is throwaway.
        let admin_url = self.admin_url.clone();
        let statement = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
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

/// `admin_url` with its database path replaced by `name` (the query string kept).
pub fn with_database(admin_url: &str, name: &str) -> String {
    let (scheme, rest) = admin_url.split_once("://").unwrap_or(("postgres", admin_url));
    let (authority, query) = match rest.split_once('/') {
        Some((authority, path)) => (authority, path.split_once('?').map(|(_, query)| query)),
        None => match rest.split_once('?') {
            Some((authority, query)) => (authority, Some(query)),
            None => (rest, None),
        },
    };
    match query {
        Some(query) => format!("{scheme}://{authority}/{name}?{query}"),
        None => format!("{scheme}://{authority}/{name}"),
    }
}

/// A port free right now. Another process could take it before it is bound; on loopback in a
/// test run that is rare, and the readiness wait then fails loudly.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local address").port()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_database_is_swapped_in_the_admin_url() {
        assert_eq!(with_database("postgres://u@h:1/postgres", "x"), "postgres://u@h:1/x");
        assert_eq!(
            with_database("postgres://u@h:1/postgres?sslmode=disable", "x"),
            "postgres://u@h:1/x?sslmode=disable"
        );
        assert_eq!(with_database("postgres://u@h:1", "x"), "postgres://u@h:1/x");
        assert_eq!(with_database("postgres://u@h:1?sslmode=disable", "x"), "postgres://u@h:1/x?sslmode=disable");
    }
}
