//! PostgreSQL backend: several relay instances share one database.
//!
//! Same operations and semantics as the SQLite backend, with what sharing
//! needs: leases live in the database and are taken with `FOR UPDATE SKIP
//! LOCKED` (each event goes to one session of any instance); the dedup window
//! is a primary key, so concurrent duplicates store one event; and opening
//! the store does not release leases, because other instances may be alive
//! (leases of a dead instance expire by time instead).
//!
//! Each write is spawned when it is called, so it runs even if the caller
//! drops the future (as a queued SQLite job does), and `close` waits for
//! them. Writes run concurrently, each committed by PostgreSQL on its own
//! (durable when it returns with the server's default `synchronous_commit
//! = on`); callers that need an order await (see [`Backend`]).
//! TLS to PostgreSQL is not supported yet (`NoTls`).
//!
//! Layout: `backend` (the [`Backend`] implementation: how each operation
//! runs; the agent operations in `agent_ops`), `pool` (connections, time
//! limits, errors), `migrate`, and the SQL: `queue` (the delivery
//! lifecycle), `events` (reads and retention), `agents`, `callbacks`,
//! `workspaces`, `dashboard`.

mod agent_ops;
mod agents;
mod backend;
mod callbacks;
mod dashboard;
mod events;
mod migrate;
mod pool;
mod queue;
mod workspaces;

use deadpool_postgres::Pool;
use tokio_util::task::TaskTracker;

use super::*;

/// The PostgreSQL store. Cheap to clone.
#[derive(Clone)]
pub struct PostgresStore {
    pool: Pool,
    writes: TaskTracker,
    retry: RetryPolicy,
    clock: Clock,
    /// This process among the instances sharing the database (presence).
    instance: lobster_shared::ids::InstanceId,
}

impl PostgresStore {
    /// Connects and migrates. Leaves existing leases alone.
    pub async fn open(url: &str, retry: RetryPolicy, clock: Clock) -> Result<Self, StoreError> {
        let pool = pool::build(url)?;
        migrate::migrate(&pool).await?;
        Ok(PostgresStore {
            pool,
            writes: TaskTracker::new(),
            retry,
            clock,
            instance: lobster_shared::ids::InstanceId::generate(),
        })
    }

    /// Starts a write now; the returned future resolves with its outcome.
    fn spawn<T, F>(
        &self,
        write: F,
    ) -> impl Future<Output = Result<T, StoreError>> + Send + use<T, F>
    where
        T: Send + 'static,
        F: Future<Output = Result<T, StoreError>> + Send + 'static,
    {
        let task = (!self.writes.is_closed()).then(|| self.writes.spawn(write));
        async move {
            match task {
                None => Err(StoreError::Closed),
                Some(task) => task
                    .await
                    .map_err(|e| StoreError::Database(format!("store task failed: {e}")))?,
            }
        }
    }
}
