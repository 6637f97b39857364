//! The store's contract: every operation once, implemented by each backend.
//!
//! Writes return a [`Write`]: the write is under way when the call returns
//! and finishes even if its future is dropped (so a caller may fire it off),
//! and [`Backend::close`] waits for it. Nothing orders unawaited writes:
//! two writes in flight at once may apply in either order, and a caller
//! whose writes must apply in order awaits the first before calling the
//! second (a session does: `session::writes`). Reads return a [`Read`]
//! that runs when polled.

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use lobster_shared::ids::{AgentId, EventId, RelayId, SessionId, WorkspaceName};

use super::callbacks::StoredCallback;
use super::dashboard::{AdminEventQuery, AdminEventRow};
use super::push::Ports;
use super::workspaces::StoredWorkspace;
use super::*;

/// A write, started when it was called; resolves once it is stored (as
/// durably as the operation says).
pub type Write<T> = BoxFuture<'static, Result<T, StoreError>>;

/// A read (or an awaited bookkeeping write), run when polled.
pub type Read<'a, T> = BoxFuture<'a, Result<T, StoreError>>;

/// A durable store of agents and events. Object safe: the relay holds one
/// as [`Store`] (`Arc<dyn Backend>`), chosen by `DATABASE_URL`.
pub trait Backend: Send + Sync + 'static {
    /// The clock the store stamps and compares times by (leases, retries,
    /// retention): the system clock, or the tests' adjustable one.
    fn clock(&self) -> &Clock;

    /// Whether several relay instances may share this store. Only then do
    /// leases of a dead process have to expire by time instead of being
    /// released at start-up, and only then are wake-ups incomplete.
    fn is_shared(&self) -> bool {
        false
    }

    /// The ports of this instance's sessions, where new events are pushed
    /// as they are stored ([`super::push`]); `None` where the backend does
    /// not push (its sessions claim).
    fn ports(&self) -> Option<&Arc<Ports>> {
        None
    }

    // The delivery lifecycle.

    /// Stores a webhook, or finds the event it duplicates (same dedup key
    /// for the same agent within the dedup window). Resolves only after
    /// commit, durably: a `202` is never answered for less.
    fn insert_event(&self, event: NewEvent) -> Write<Inserted>;

    /// Leases due events of an agent to a session, oldest first: up to
    /// `limit`, or into the free slots of the request's port (giving back
    /// what it did not fill).
    fn claim(&self, request: ClaimRequest) -> Write<Claim>;

    /// Marks events delivered. Ids of other agents or finished events are
    /// ignored. May be less durable than other writes: a lost ack means a
    /// redelivery, never a loss.
    fn ack(&self, agent_id: &AgentId, session_id: &SessionId, ids: Vec<EventId>) -> Write<()>;

    /// Schedules a retry of an event leased to the session, by the retry
    /// policy, or marks it failed after the last attempt.
    fn nack(
        &self,
        agent_id: &AgentId,
        session_id: &SessionId,
        id: &EventId,
        reason: &str,
    ) -> Write<()>;

    /// Returns every event leased to a session to the queue (the session
    /// closed). An ack of the session still under way may apply after it,
    /// when another session may have the event already: await acks first.
    fn release(&self, agent_id: &AgentId, session_id: &SessionId) -> Write<()>;

    /// Queues an event again (same id, attempt count continues).
    fn replay(&self, agent_id: &AgentId, id: &EventId) -> Write<ReplayOutcome>;

    /// Expires, deletes and forgets what is past retention (`failed`
    /// events after `failed_retention`); returns how many events it
    /// expired or deleted and replay keys it forgot (not the history rows
    /// deleted with them, which the backends keep differently).
    fn sweep(&self, retention: Duration, failed_retention: Duration) -> Write<u64>;

    // Events, read.

    /// A page of an agent's events, newest first.
    fn list_events(&self, query: EventQuery) -> Read<'_, Vec<EventSummary>>;

    /// One event of an agent with its headers, body and history.
    fn event_detail<'a>(
        &'a self,
        agent_id: &'a AgentId,
        id: &'a EventId,
    ) -> Read<'a, Option<EventDetail>>;

    /// Events of an agent not yet delivered (pending or being delivered).
    fn pending_count<'a>(&'a self, agent_id: &'a AgentId) -> Read<'a, u64>;

    // Agents.

    fn create_agent(&self, agent: NewAgent) -> Write<()>;

    /// Revokes an agent; `false` if there is no such (unrevoked) agent.
    fn revoke_agent(&self, agent_id: &AgentId) -> Write<bool>;

    /// Stores `last_seen` times, one batch (see [`crate::last_seen`]); as
    /// little durable as acks.
    fn touch_agents(&self, seen: Vec<(AgentId, Millis)>) -> Write<()>;

    fn list_agents(&self) -> Read<'_, Vec<AgentStats>>;

    fn agent_count(&self) -> Read<'_, u64>;

    /// An unrevoked agent by the SHA-256 hex of its API key.
    fn agent_by_key_hash<'a>(&'a self, key_hash: &'a str) -> Read<'a, Option<Agent>>;

    /// An unrevoked agent by its public relay id.
    fn agent_by_relay_id<'a>(&'a self, relay_id: &'a RelayId) -> Read<'a, Option<Agent>>;

    /// Up to `limit` unrevoked agents, each with the SHA-256 hex of its API
    /// key, the most recently seen first: what the agent cache loads at
    /// start-up ([`crate::agent_cache::AgentCache::warm`]).
    fn live_agents(&self, limit: usize) -> Read<'_, Vec<(String, Agent)>>;

    /// Agents revoked at or after `since`, for instances that did not see
    /// the revocation themselves.
    fn revoked_since(&self, since: Millis) -> Read<'_, Vec<AgentId>>;

    /// Marks agents as having a session on this instance until `until`,
    /// and `offline` as no longer (see [`crate::presence`]). Only a shared
    /// store keeps it; by default every session is on this instance.
    fn mark_presence(
        &self,
        online: Vec<AgentId>,
        offline: Vec<AgentId>,
        until: Millis,
    ) -> Read<'_, ()> {
        let _ = (online, offline, until);
        Box::pin(std::future::ready(Ok(())))
    }

    /// Whether a session of the agent is connected to another instance, as
    /// the instances last marked it (by default never).
    fn connected_elsewhere<'a>(&'a self, agent_id: &'a AgentId) -> Read<'a, bool> {
        let _ = agent_id;
        Box::pin(std::future::ready(Ok(false)))
    }

    // Push delivery's callbacks (sealed above the store, see `callbacks`).

    /// Stores (or replaces) an agent's callback; returns its new version.
    fn set_callback(&self, agent_id: &AgentId, url: String, secret: String) -> Write<i64>;

    /// Removes an agent's callback; `false` if it had none.
    fn clear_callback(&self, agent_id: &AgentId) -> Write<bool>;

    /// An unrevoked agent's callback.
    fn callback<'a>(&'a self, agent_id: &'a AgentId) -> Read<'a, Option<StoredCallback>>;

    /// Every unrevoked agent's callback, by agent id.
    fn list_callbacks(&self) -> Read<'_, Vec<StoredCallback>>;

    // Workspaces (sealed above the store, see `workspaces`).

    /// Stores a new workspace; `false` if one of that name exists.
    fn create_workspace(&self, workspace: StoredWorkspace) -> Write<bool>;

    /// Replaces a workspace's secrets and bumps its version; returns the new
    /// version, `None` if there is no such workspace.
    fn replace_workspace_secrets(
        &self,
        name: &WorkspaceName,
        secrets: Vec<String>,
    ) -> Write<Option<i64>>;

    fn workspace<'a>(&'a self, name: &'a WorkspaceName) -> Read<'a, Option<StoredWorkspace>>;

    /// Only the version, for caches checking whether they are stale.
    fn workspace_version<'a>(&'a self, name: &'a WorkspaceName) -> Read<'a, Option<i64>>;

    /// Every stored workspace, by name.
    fn list_workspaces(&self) -> Read<'_, Vec<StoredWorkspace>>;

    // The admin dashboard's reads across agents.

    /// Events of any agent matching `query`.
    fn admin_events(&self, query: AdminEventQuery) -> Read<'_, Vec<AdminEventRow>>;

    /// The agent an event belongs to, if the event exists.
    fn event_agent<'a>(&'a self, id: &'a EventId) -> Read<'a, Option<AgentId>>;

    /// Failed events per agent id.
    fn failed_by_agent(&self) -> Read<'_, Vec<(AgentId, u64)>>;

    /// Events not yet delivered (pending or being delivered), all agents.
    fn queue_depth(&self) -> Read<'_, u64>;

    /// Events that became `failed` at or after `since`.
    fn failed_since(&self, since: Millis) -> Read<'_, u64>;

    // The store itself.

    /// A cheap round trip through the database, for `/readyz`.
    fn ping(&self) -> Read<'_, ()>;

    /// Finishes every write under way, then closes; later writes fail with
    /// [`StoreError::Closed`].
    fn close(&self) -> BoxFuture<'_, ()>;
}
