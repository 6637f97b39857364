//! The durable store: the source of truth for agents and events.
//!
//! Backends are variants of [`Store`], chosen by `DATABASE_URL`. SQLite is the
//! embedded default; a PostgreSQL variant implements the same operations with
//! leases in the database so that several relay instances can share it.

pub mod callbacks;
mod clock;
pub mod dashboard;
mod postgres;
pub mod push;
pub(crate) mod sqlite;
mod types;
pub mod workspaces;

#[cfg(test)]
mod tests;

use std::path::Path;
use std::time::Duration;

use futures_util::future::Either;

pub use clock::Clock;
pub use types::*;

use crate::retry::RetryPolicy;

/// Why a store operation failed. Every variant means "nothing was changed";
/// the HTTP edge answers 503 so that senders retry.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Database(String),
    #[error("the store is shutting down")]
    Closed,
}

impl From<rusqlite::Error> for StoreError {
    fn from(err: rusqlite::Error) -> Self {
        StoreError::Database(err.to_string())
    }
}

/// The store, one variant per backend.
///
/// Writes return a future that is already queued when the call returns:
/// writes of one caller are applied in call order even if the caller does
/// not await them (fire-and-forget acks rely on this).
#[derive(Clone)]
pub enum Store {
    Sqlite(sqlite::SqliteStore),
    Postgres(postgres::PostgresStore),
}

/// Calls the backend's method; for writes, wraps the two future types in
/// `Either` so that callers get one type that is queued on return.
macro_rules! delegate {
    ($self:ident . $method:ident ( $($arg:expr),* )) => {
        match $self {
            Store::Sqlite(s) => Either::Left(s.$method($($arg),*)),
            Store::Postgres(p) => Either::Right(p.$method($($arg),*)),
        }
    };
}

/// The same for reads, which are plain `async fn`s on both backends.
macro_rules! delegate_read {
    ($self:ident . $method:ident ( $($arg:expr),* )) => {
        match $self {
            Store::Sqlite(s) => s.$method($($arg),*).await,
            Store::Postgres(p) => p.$method($($arg),*).await,
        }
    };
}

/// A PostgreSQL claim into a port's free slots. No insert takes slots on
/// this backend, so taking them all for the claim's duration races with
/// nothing but the session giving some back.
fn claim_with_port(
    store: &postgres::PostgresStore,
    mut request: ClaimRequest,
) -> impl Future<Output = Result<Claim, StoreError>> + Send + use<> {
    let port = request.port.take();
    if let Some(port) = &port {
        request.limit = port.take_all();
    }
    let limit = request.limit;
    let claim = store.claim(request);
    async move {
        let claim = claim.await;
        if let Some(port) = port {
            let leased = claim.as_ref().map_or(0, |c| c.deliveries.len());
            port.give_back(limit - leased);
        }
        claim
    }
}

impl Store {
    /// Opens (creating and migrating) the SQLite database at `path`.
    pub fn open_sqlite(path: &Path, retry: RetryPolicy) -> Result<Store, StoreError> {
        Ok(Store::Sqlite(sqlite::SqliteStore::open(path, retry)?))
    }

    /// Connects to PostgreSQL at `url` and migrates the schema (under an
    /// advisory lock, so instances starting together do not race).
    pub async fn open_postgres(url: &str, retry: RetryPolicy) -> Result<Store, StoreError> {
        Ok(Store::Postgres(
            postgres::PostgresStore::open(url, retry).await?,
        ))
    }

    /// The same store, stamping and comparing times (leases, retries,
    /// retention) by `clock`: the tests' adjustable clock. The relay keeps
    /// the system clock.
    pub fn with_clock(mut self, clock: Clock) -> Store {
        match &mut self {
            Store::Sqlite(s) => s.set_clock(clock),
            Store::Postgres(s) => s.set_clock(clock),
        }
        self
    }

    /// The clock the store reads.
    pub fn clock(&self) -> &Clock {
        match self {
            Store::Sqlite(s) => s.clock(),
            Store::Postgres(s) => s.clock(),
        }
    }

    /// Whether several relay instances may share this store. Only then do
    /// leases of a dead process have to expire by time instead of being
    /// released at start-up, and only then are wake-ups incomplete.
    pub fn is_shared(&self) -> bool {
        matches!(self, Store::Postgres(_))
    }

    /// Agents revoked at or after `since`, for instances that did not see
    /// the revocation themselves.
    pub async fn revoked_since(&self, since: Millis) -> Result<Vec<String>, StoreError> {
        delegate_read!(self.revoked_since(since))
    }

    /// Stores a webhook, or finds the event it duplicates (same dedup key for
    /// the same agent within the dedup window). Resolves only after commit.
    pub fn insert_event(
        &self,
        event: NewEvent,
    ) -> impl Future<Output = Result<Inserted, StoreError>> + Send + use<> {
        delegate!(self.insert_event(event))
    }

    /// Leases due events of an agent to a session, oldest first: up to
    /// `limit`, or into the free slots of the request's port.
    pub fn claim(
        &self,
        request: ClaimRequest,
    ) -> impl Future<Output = Result<Claim, StoreError>> + Send + use<> {
        match self {
            Store::Sqlite(s) => Either::Left(s.claim(request)),
            Store::Postgres(p) => Either::Right(claim_with_port(p, request)),
        }
    }

    /// The ports of this instance's sessions, where new events can be
    /// pushed as they are stored; `None` where the backend does not push
    /// (PostgreSQL: its sessions claim).
    pub fn ports(&self) -> Option<&std::sync::Arc<push::Ports>> {
        match self {
            Store::Sqlite(s) => Some(s.ports()),
            Store::Postgres(_) => None,
        }
    }

    /// Marks events delivered. Ids of other agents or finished events are ignored.
    pub fn ack(
        &self,
        agent_id: &str,
        session_id: &str,
        ids: Vec<String>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send + use<> {
        delegate!(self.ack(agent_id, session_id, ids))
    }

    /// Schedules a retry by the policy, or marks the event failed.
    pub fn nack(
        &self,
        agent_id: &str,
        session_id: &str,
        id: &str,
        reason: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send + use<> {
        delegate!(self.nack(agent_id, session_id, id, reason))
    }

    /// Returns every event leased to a session to the queue (session closed).
    pub fn release(
        &self,
        agent_id: &str,
        session_id: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send + use<> {
        delegate!(self.release(agent_id, session_id))
    }

    /// Queues an event again (same id, attempt count continues).
    pub fn replay(
        &self,
        agent_id: &str,
        id: &str,
    ) -> impl Future<Output = Result<ReplayOutcome, StoreError>> + Send + use<> {
        delegate!(self.replay(agent_id, id))
    }

    pub async fn list_events(&self, query: EventQuery) -> Result<Vec<EventSummary>, StoreError> {
        delegate_read!(self.list_events(query))
    }

    pub async fn event_detail(
        &self,
        agent_id: &str,
        id: &str,
    ) -> Result<Option<EventDetail>, StoreError> {
        delegate_read!(self.event_detail(agent_id, id))
    }

    pub fn create_agent(
        &self,
        agent: NewAgent,
    ) -> impl Future<Output = Result<(), StoreError>> + Send + use<> {
        delegate!(self.create_agent(agent))
    }

    pub async fn list_agents(&self) -> Result<Vec<AgentStats>, StoreError> {
        delegate_read!(self.list_agents())
    }

    /// Revokes an agent; `false` if there is no such (unrevoked) agent.
    pub fn revoke_agent(
        &self,
        agent_id: &str,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send + use<> {
        delegate!(self.revoke_agent(agent_id))
    }

    /// An unrevoked agent by the SHA-256 hex of its API key.
    pub async fn agent_by_key_hash(&self, key_hash: &str) -> Result<Option<Agent>, StoreError> {
        delegate_read!(self.agent_by_key_hash(key_hash))
    }

    /// An unrevoked agent by its public relay id.
    pub async fn agent_by_relay_id(&self, relay_id: &str) -> Result<Option<Agent>, StoreError> {
        delegate_read!(self.agent_by_relay_id(relay_id))
    }

    /// Events of an agent not yet delivered (pending or being delivered).
    pub async fn pending_count(&self, agent_id: &str) -> Result<u64, StoreError> {
        delegate_read!(self.pending_count(agent_id))
    }

    /// Stores `last_seen` times, one batch (see [`crate::last_seen`]).
    pub fn touch_agents(
        &self,
        seen: Vec<(String, Millis)>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send + use<> {
        delegate!(self.touch_agents(seen))
    }

    /// Marks agents as having a session on this instance until `until`,
    /// and `offline` as no longer (see [`crate::presence`]). Only a shared
    /// store keeps it: on SQLite every session is on this instance.
    pub async fn mark_presence(
        &self,
        online: Vec<String>,
        offline: Vec<String>,
        until: Millis,
    ) -> Result<(), StoreError> {
        match self {
            Store::Sqlite(_) => Ok(()),
            Store::Postgres(s) => s.mark_presence(online, offline, until).await,
        }
    }

    /// Whether a session of the agent is connected to another instance, as
    /// the instances last marked it (always `false` on SQLite).
    pub async fn connected_elsewhere(&self, agent_id: &str) -> Result<bool, StoreError> {
        match self {
            Store::Sqlite(_) => Ok(false),
            Store::Postgres(s) => s.connected_elsewhere(agent_id).await,
        }
    }

    pub async fn agent_count(&self) -> Result<u64, StoreError> {
        delegate_read!(self.agent_count())
    }

    /// Expires, deletes and forgets what is past retention (`failed`
    /// events after `failed_retention`); returns rows changed.
    pub fn sweep(
        &self,
        retention: Duration,
        failed_retention: Duration,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send + use<> {
        delegate!(self.sweep(retention, failed_retention))
    }

    /// A cheap round trip through the database, for `/readyz`.
    pub async fn ping(&self) -> Result<(), StoreError> {
        delegate_read!(self.ping())
    }

    /// Finishes every queued write, then stops the writer.
    pub async fn close(&self) {
        delegate_read!(self.close())
    }
}
