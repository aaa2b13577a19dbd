//! Which database a test server runs on, and the throwaway PostgreSQL database per test.

const BACKEND_VAR: &str = "NATTER_TEST_BACKEND";
const POSTGRES_URL_VAR: &str = "NATTER_TEST_POSTGRES_URL";
const NATS_URL_VAR: &str = "NATTER_TEST_NATS_URL";

#[derive(Debug, Clone)]
pub(crate) enum Backend {
    /// SQLite in the test's data directory.
    Sqlite,
    /// A fresh database per test, created through this admin URL.
    Postgres { admin_url: String },
    /// The split topology in this process: a chat (+ worker) node on a fresh PostgreSQL
    /// database and a gateway calling it over gRPC, both on NATS.
    Split { admin_url: String, nats_url: String },
}

impl Backend {
    /// `NATTER_TEST_BACKEND`: `sqlite` (default), `postgres` or `split` (PostgreSQL and NATS).
    /// Asking for PostgreSQL without `NATTER_TEST_POSTGRES_URL` is a mistake, not a reason to skip.
    pub(crate) fn from_env() -> Backend {
        match std::env::var(BACKEND_VAR).as_deref() {
            Err(_) | Ok("") | Ok("sqlite") => Backend::Sqlite,
            Ok("postgres") => Backend::Postgres {
                admin_url: std::env::var(POSTGRES_URL_VAR)
                    .unwrap_or_else(|_| panic!("{BACKEND_VAR}=postgres needs {POSTGRES_URL_VAR} (an admin URL)")),
            },
            Ok("split") => Backend::Split {
                admin_url: std::env::var(POSTGRES_URL_VAR)
                    .unwrap_or_else(|_| panic!("{BACKEND_VAR}=split needs {POSTGRES_URL_VAR} (an admin URL)")),
                nats_url: std::env::var(NATS_URL_VAR)
                    .unwrap_or_else(|_| panic!("{BACKEND_VAR}=split needs {NATS_URL_VAR}")),
            },
            Ok(other) => panic!("{BACKEND_VAR} must be `sqlite`, `postgres` or `split`, not `{other}`"),
        }
    }

    /// PostgreSQL when `NATTER_TEST_POSTGRES_URL` is set. Otherwise `None` after printing a skip
    /// line, or a panic under CI, where a silently skipped backend would hide failures.
    /// Under `NATTER_TEST_BACKEND=split` the PostgreSQL variant runs on the split topology.
    pub(crate) fn postgres_or_skip(test: &str) -> Option<Backend> {
        if let split @ Backend::Split { .. } = Backend::from_env() {
            return Some(split);
        }
        let admin_url = natter_testkit::service_url(POSTGRES_URL_VAR, test)?;
        Some(Backend::Postgres { admin_url })
    }

    /// The database the server should use: `None` for SQLite (the server's default, inside the
    /// data directory), or a fresh PostgreSQL database.
    pub(crate) async fn create_database(&self) -> Option<TestDatabase> {
        match self {
            Backend::Sqlite => None,
            Backend::Postgres { admin_url } | Backend::Split { admin_url, .. } => {
                Some(TestDatabase::create(admin_url, "natter_t").await)
            }
        }
    }
}

/// A PostgreSQL database made for one test and dropped after it.
pub(crate) type TestDatabase = natter_testkit::TestDatabase;
