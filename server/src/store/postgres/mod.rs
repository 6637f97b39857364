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
//! Layout: `backend` (the [`Backend`] implementation), `pool`
//! (connections, time limits, errors), `migrate`, `queue` (the delivery
//! lifecycle), `events` (reads and retention), `agents`, `callbacks`,
//! `workspaces`, `dashboard`.

mod agents;
mod backend;
mod callbacks;
mod dashboard;
mod events;
mod migrate;
mod pool;
mod queue;
mod workspaces;

use std::time::Duration;

use deadpool_postgres::Pool;
use tokio_util::task::TaskTracker;

use super::*;
use agents::AgentKey;
use pool::{Limit, QUICK, statement, transaction};

/// Retention may touch many rows at once.
const SWEEP_LIMIT: Limit = Limit(Duration::from_secs(300));

/// The PostgreSQL store. Cheap to clone.
#[derive(Clone)]
pub struct PostgresStore {
    pool: Pool,
    writes: TaskTracker,
    retry: RetryPolicy,
    clock: Clock,
    /// This process among the instances sharing the database (presence).
    instance: String,
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
            instance: lobster_shared::ids::instance_id(),
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

    fn insert_event(
        &self,
        event: NewEvent,
    ) -> impl Future<Output = Result<Inserted, StoreError>> + Send + use<> {
        let clock = self.clock.clone();
        let pool = self.pool.clone();
        self.spawn(async move {
            let now = clock.now();
            statement!(&pool, QUICK, |c| queue::insert_event(c, &event, now))
        })
    }

    /// No insert takes a port's slots on this backend (its sessions
    /// claim), so taking them all for the claim's duration races with
    /// nothing but the session giving some back.
    fn claim(
        &self,
        mut req: ClaimRequest,
    ) -> impl Future<Output = Result<Claim, StoreError>> + Send + use<> {
        let clock = self.clock.clone();
        let port = req.port.take();
        if let Some(port) = &port {
            req.limit = port.take_all();
        }
        let limit = req.limit;
        let (pool, max_attempts) = (self.pool.clone(), self.retry.max_attempts);
        let claim = self.spawn(async move {
            let now = clock.now();
            transaction!(&pool, QUICK, |tx| queue::claim(tx, &req, max_attempts, now))
        });
        async move {
            let claim = claim.await;
            if let Some(port) = port {
                let leased = claim.as_ref().map_or(0, |c| c.deliveries.len());
                port.give_back(limit - leased);
            }
            claim
        }
    }

    fn ack(
        &self,
        agent_id: &str,
        session_id: &str,
        ids: Vec<String>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send + use<> {
        let clock = self.clock.clone();
        let pool = self.pool.clone();
        let (agent_id, session_id) = (agent_id.to_owned(), session_id.to_owned());
        self.spawn(async move {
            let now = clock.now();
            statement!(&pool, QUICK, |c| queue::ack(
                c,
                &agent_id,
                &session_id,
                &ids,
                now
            ))
        })
    }

    fn nack(
        &self,
        agent_id: &str,
        session_id: &str,
        id: &str,
        reason: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send + use<> {
        let clock = self.clock.clone();
        let (pool, retry) = (self.pool.clone(), self.retry);
        let (agent_id, session_id, id, reason) = (
            agent_id.to_owned(),
            session_id.to_owned(),
            id.to_owned(),
            reason.to_owned(),
        );
        self.spawn(async move {
            let now = clock.now();
            transaction!(&pool, QUICK, |tx| queue::nack(
                tx,
                &agent_id,
                &session_id,
                &id,
                &reason,
                &retry,
                now
            ))
        })
    }

    fn release(
        &self,
        agent_id: &str,
        session_id: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send + use<> {
        let clock = self.clock.clone();
        let pool = self.pool.clone();
        let (agent_id, session_id) = (agent_id.to_owned(), session_id.to_owned());
        self.spawn(async move {
            let now = clock.now();
            statement!(&pool, QUICK, |c| queue::release(
                c,
                &agent_id,
                &session_id,
                now
            ))
        })
    }

    fn replay(
        &self,
        agent_id: &str,
        id: &str,
    ) -> impl Future<Output = Result<ReplayOutcome, StoreError>> + Send + use<> {
        let clock = self.clock.clone();
        let pool = self.pool.clone();
        let (agent_id, id) = (agent_id.to_owned(), id.to_owned());
        self.spawn(async move {
            let now = clock.now();
            transaction!(&pool, QUICK, |tx| queue::replay(tx, &agent_id, &id, now))
        })
    }

    fn create_agent(
        &self,
        agent: NewAgent,
    ) -> impl Future<Output = Result<(), StoreError>> + Send + use<> {
        let clock = self.clock.clone();
        let pool = self.pool.clone();
        self.spawn(async move {
            let now = clock.now();
            statement!(&pool, QUICK, |c| agents::create_agent(c, &agent, now))
        })
    }

    fn revoke_agent(
        &self,
        agent_id: &str,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send + use<> {
        let clock = self.clock.clone();
        let pool = self.pool.clone();
        let agent_id = agent_id.to_owned();
        self.spawn(async move {
            let now = clock.now();
            statement!(&pool, QUICK, |c| agents::revoke_agent(c, &agent_id, now))
        })
    }

    async fn mark_presence(
        &self,
        online: Vec<String>,
        offline: Vec<String>,
        until: Millis,
    ) -> Result<(), StoreError> {
        let now = self.clock.now();
        statement!(&self.pool, QUICK, |c| agents::mark_presence(
            c,
            &self.instance,
            &online,
            &offline,
            until,
            now
        ))
    }

    async fn connected_elsewhere(&self, agent_id: &str) -> Result<bool, StoreError> {
        let now = self.clock.now();
        statement!(&self.pool, QUICK, |c| agents::connected_elsewhere(
            c,
            &self.instance,
            agent_id,
            now
        ))
    }

    fn touch_agents(
        &self,
        seen: Vec<(String, Millis)>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send + use<> {
        let pool = self.pool.clone();
        self.spawn(async move {
            let agent_ids: Vec<&str> = seen.iter().map(|(id, _)| id.as_str()).collect();
            let times: Vec<Millis> = seen.iter().map(|&(_, at)| at).collect();
            statement!(&pool, QUICK, |c| agents::touch_agents(
                c, &agent_ids, &times
            ))
        })
    }

    fn sweep(
        &self,
        retention: Duration,
        failed_retention: Duration,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send + use<> {
        let clock = self.clock.clone();
        let pool = self.pool.clone();
        let retention_ms = retention.as_millis() as Millis;
        let failed_ms = failed_retention.as_millis() as Millis;
        self.spawn(async move {
            let now = clock.now();
            transaction!(&pool, SWEEP_LIMIT, |tx| events::sweep(
                tx,
                retention_ms,
                failed_ms,
                now
            ))
        })
    }

    async fn list_events(&self, query: EventQuery) -> Result<Vec<EventSummary>, StoreError> {
        statement!(&self.pool, QUICK, |c| events::list_events(c, &query))
    }

    async fn event_detail(
        &self,
        agent_id: &str,
        id: &str,
    ) -> Result<Option<EventDetail>, StoreError> {
        statement!(&self.pool, QUICK, |c| events::event_detail(c, agent_id, id))
    }

    async fn list_agents(&self) -> Result<Vec<AgentStats>, StoreError> {
        statement!(&self.pool, QUICK, |c| agents::list_agents(c))
    }

    async fn agent_by_key_hash(&self, key_hash: &str) -> Result<Option<Agent>, StoreError> {
        statement!(&self.pool, QUICK, |c| agents::agent_where(
            c,
            AgentKey::KeyHash,
            key_hash
        ))
    }

    async fn agent_by_relay_id(&self, relay_id: &str) -> Result<Option<Agent>, StoreError> {
        statement!(&self.pool, QUICK, |c| agents::agent_where(
            c,
            AgentKey::RelayId,
            relay_id
        ))
    }

    async fn pending_count(&self, agent_id: &str) -> Result<u64, StoreError> {
        statement!(&self.pool, QUICK, |c| events::pending_count(c, agent_id))
    }

    async fn agent_count(&self) -> Result<u64, StoreError> {
        statement!(&self.pool, QUICK, |c| agents::agent_count(c))
    }

    async fn revoked_since(&self, since: Millis) -> Result<Vec<String>, StoreError> {
        statement!(&self.pool, QUICK, |c| agents::revoked_since(c, since))
    }

    async fn ping(&self) -> Result<(), StoreError> {
        statement!(&self.pool, QUICK, |c| async {
            c.simple_query("SELECT 1").await.map(drop)
        })
    }

    /// Lets every started write finish, then closes the connections. Later
    /// calls fail with [`StoreError::Closed`].
    async fn close(&self) {
        self.writes.close();
        self.writes.wait().await;
        self.pool.close();
    }
}
