//! A fresh database per test, of either backend.

use std::time::Duration;

use tokio_postgres::NoTls;

use crate::retry::RetryPolicy;
use crate::store::postgres::PostgresStore;
use crate::store::sqlite::SqliteStore;
use crate::store::{Clock, Store};

/// Fast retries so that tests need not wait; three attempts in all.
pub const POLICY: RetryPolicy = RetryPolicy {
    initial: Duration::from_millis(1),
    max_delay: Duration::from_millis(1),
    max_attempts: 3,
};

const POSTGRES_URL_VAR: &str = "LOBSTER_TEST_POSTGRES_URL";

/// A database that lives as long as the test.
pub enum TestDb {
    Sqlite(tempfile::TempDir),
    Postgres(PgDatabase),
}

impl TestDb {
    pub async fn sqlite() -> TestDb {
        TestDb::Sqlite(tempfile::tempdir().unwrap())
    }

    pub async fn postgres() -> TestDb {
        TestDb::Postgres(PgDatabase::create().await)
    }

    /// Opens the store: the first time, or again after a restart, or as
    /// another instance (PostgreSQL). Its clock is adjustable: a test moves
    /// it past a deadline (`store.clock().advance(..)`) instead of sleeping.
    pub async fn open(&self) -> Store {
        let clock = Clock::adjustable();
        match self {
            TestDb::Sqlite(dir) => {
                Store::new(SqliteStore::open(&dir.path().join("relay.db"), POLICY, clock).unwrap())
            }
            TestDb::Postgres(db) => {
                Store::new(PostgresStore::open(&db.url, POLICY, clock).await.unwrap())
            }
        }
    }

    pub fn postgres_url(&self) -> &str {
        match self {
            TestDb::Postgres(db) => &db.url,
            TestDb::Sqlite(_) => panic!("not a PostgreSQL test"),
        }
    }
}

/// A database of its own on the test server, so tests run in parallel;
/// dropped (with whatever connections remain) when the test ends.
pub struct PgDatabase {
    admin_url: String,
    name: String,
    pub url: String,
}

impl PgDatabase {
    pub async fn create() -> PgDatabase {
        let admin_url = std::env::var(POSTGRES_URL_VAR).unwrap_or_else(|_| {
            panic!(
                "{POSTGRES_URL_VAR} is not set, and the PostgreSQL store tests need a server. \
                 Run scripts/test.sh (it starts a private one), or start one with \
                 `source scripts/services.sh && start_postgres $(mktemp -d)`, which exports \
                 {POSTGRES_URL_VAR}, then run cargo test again"
            )
        });
        let name = format!("lobster_test_{:016x}", rand::random::<u64>());
        let admin = connect(&admin_url).await;
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap_or_else(|e| panic!("cannot create a test database on {admin_url}: {e:?}"));
        let url = with_database(&admin_url, &name);
        PgDatabase {
            admin_url,
            name,
            url,
        }
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        let (admin_url, name) = (self.admin_url.clone(), self.name.clone());
        // Drop runs inside the test's runtime, which must not block on
        // itself: use a runtime of our own on another thread.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                connect(&admin_url)
                    .await
                    .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .await
            })
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!("could not drop the test database {}", self.name);
        }
    }
}

/// A plain connection, for setting up what the store cannot.
pub async fn connect(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to PostgreSQL at {url}: {e:?}"));
    tokio::spawn(connection);
    client
}

/// `url` naming database `name` instead (query parameters kept).
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    let host_start = base.find("://").map_or(0, |i| i + 3);
    let path_start = base[host_start..]
        .find('/')
        .map_or(base.len(), |i| host_start + i);
    let mut out = format!("{}/{name}", &base[..path_start]);
    if !query.is_empty() {
        out.push('?');
        out.push_str(query);
    }
    out
}

#[test]
fn database_names_replace_the_path_only() {
    assert_eq!(
        with_database("postgres://u@h:5/postgres?sslmode=disable", "t"),
        "postgres://u@h:5/t?sslmode=disable"
    );
    assert_eq!(
        with_database("postgresql://u:p@h", "t"),
        "postgresql://u:p@h/t"
    );
}
