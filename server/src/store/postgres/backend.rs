//! [`Backend`] on PostgreSQL: how each operation runs. Every write is a
//! task spawned by the call (`PostgresStore::spawn`), one statement or one
//! transaction on a pooled connection under a time limit (`pool`); reads
//! run on a pooled connection when polled. The agent operations run in
//! `agent_ops`. The SQL is in `queue`, `events`, `agents`, `callbacks`,
//! `workspaces` and `dashboard`.

use std::time::Duration;

use futures_util::future::BoxFuture;
use lobster_shared::ids::{AgentId, EventId, RelayId, SessionId, WorkspaceName};

use super::pool::{Limit, QUICK, statement, transaction};
use super::{PostgresStore, callbacks, dashboard, events, queue, workspaces};
use crate::store::callbacks::{StoredCallback, callback_from};
use crate::store::dashboard::{AdminEventQuery, AdminEventRow};
use crate::store::workspaces::{StoredWorkspace, secrets_json, workspace_from};
use crate::store::*;

/// Retention may touch many rows at once.
const SWEEP_LIMIT: Limit = Limit(Duration::from_secs(300));

impl Backend for PostgresStore {
    fn clock(&self) -> &Clock {
        &self.clock
    }

    fn is_shared(&self) -> bool {
        true
    }

    // The delivery lifecycle.

    fn insert_event(&self, event: NewEvent) -> Write<Inserted> {
        let clock = self.clock.clone();
        let pool = self.pool.clone();
        Box::pin(self.spawn(async move {
            let now = clock.now();
            statement!(&pool, QUICK, |c| queue::insert_event(c, &event, now))
        }))
    }

    /// No insert takes a port's slots on this backend (its sessions
    /// claim), so taking them all for the claim's duration races with
    /// nothing but the session giving some back.
    fn claim(&self, mut req: ClaimRequest) -> Write<Claim> {
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
        Box::pin(async move {
            let claim = claim.await;
            if let Some(port) = port {
                let leased = claim.as_ref().map_or(0, |c| c.deliveries.len());
                port.give_back(limit - leased);
            }
            claim
        })
    }

    fn ack(&self, agent_id: &AgentId, session_id: &SessionId, ids: Vec<EventId>) -> Write<()> {
        let clock = self.clock.clone();
        let pool = self.pool.clone();
        let (agent_id, session_id) = (agent_id.to_string(), session_id.to_string());
        let ids: Vec<String> = ids.into_iter().map(EventId::into_string).collect();
        Box::pin(self.spawn(async move {
            let now = clock.now();
            statement!(&pool, QUICK, |c| queue::ack(
                c,
                &agent_id,
                &session_id,
                &ids,
                now
            ))
        }))
    }

    fn nack(
        &self,
        agent_id: &AgentId,
        session_id: &SessionId,
        id: &EventId,
        reason: &str,
    ) -> Write<()> {
        let clock = self.clock.clone();
        let (pool, retry) = (self.pool.clone(), self.retry);
        let (agent_id, session_id) = (agent_id.to_string(), session_id.to_string());
        let (id, reason) = (id.to_string(), reason.to_owned());
        Box::pin(self.spawn(async move {
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
        }))
    }

    fn release(&self, agent_id: &AgentId, session_id: &SessionId) -> Write<()> {
        let clock = self.clock.clone();
        let pool = self.pool.clone();
        let (agent_id, session_id) = (agent_id.to_string(), session_id.to_string());
        Box::pin(self.spawn(async move {
            let now = clock.now();
            statement!(&pool, QUICK, |c| queue::release(
                c,
                &agent_id,
                &session_id,
                now
            ))
        }))
    }

    fn replay(&self, agent_id: &AgentId, id: &EventId) -> Write<ReplayOutcome> {
        let clock = self.clock.clone();
        let pool = self.pool.clone();
        let (agent_id, id) = (agent_id.to_string(), id.to_string());
        Box::pin(self.spawn(async move {
            let now = clock.now();
            transaction!(&pool, QUICK, |tx| queue::replay(tx, &agent_id, &id, now))
        }))
    }

    fn sweep(&self, retention: Duration, failed_retention: Duration) -> Write<u64> {
        let clock = self.clock.clone();
        let pool = self.pool.clone();
        let retention_ms = retention.as_millis() as Millis;
        let failed_ms = failed_retention.as_millis() as Millis;
        Box::pin(self.spawn(async move {
            let now = clock.now();
            transaction!(&pool, SWEEP_LIMIT, |tx| events::sweep(
                tx,
                retention_ms,
                failed_ms,
                now
            ))
        }))
    }

    // Events, read.

    fn list_events(&self, query: EventQuery) -> Read<'_, Vec<EventSummary>> {
        Box::pin(async move { statement!(&self.pool, QUICK, |c| events::list_events(c, &query)) })
    }

    fn event_detail<'a>(
        &'a self,
        agent_id: &'a AgentId,
        id: &'a EventId,
    ) -> Read<'a, Option<EventDetail>> {
        let (agent_id, id) = (agent_id.as_str(), id.as_str());
        Box::pin(
            async move { statement!(&self.pool, QUICK, |c| events::event_detail(c, agent_id, id)) },
        )
    }

    fn pending_count<'a>(&'a self, agent_id: &'a AgentId) -> Read<'a, u64> {
        let agent_id = agent_id.as_str();
        Box::pin(
            async move { statement!(&self.pool, QUICK, |c| events::pending_count(c, agent_id)) },
        )
    }

    // Agents (run in `agent_ops`).

    fn create_agent(&self, agent: NewAgent) -> Write<()> {
        self.create_agent(agent)
    }

    fn revoke_agent(&self, agent_id: &AgentId) -> Write<bool> {
        self.revoke_agent(agent_id)
    }

    fn touch_agents(&self, seen: Vec<(AgentId, Millis)>) -> Write<()> {
        self.touch_agents(seen)
    }

    fn list_agents(&self) -> Read<'_, Vec<AgentStats>> {
        self.list_agents()
    }

    fn agent_count(&self) -> Read<'_, u64> {
        self.agent_count()
    }

    fn agent_by_key_hash<'a>(&'a self, key_hash: &'a str) -> Read<'a, Option<Agent>> {
        self.agent_by_key_hash(key_hash)
    }

    fn agent_by_relay_id<'a>(&'a self, relay_id: &'a RelayId) -> Read<'a, Option<Agent>> {
        self.agent_by_relay_id(relay_id)
    }

    fn live_agents(&self, limit: usize) -> Read<'_, Vec<(String, Agent)>> {
        self.live_agents(limit)
    }

    fn revoked_since(&self, since: Millis) -> Read<'_, Vec<AgentId>> {
        self.revoked_since(since)
    }

    fn mark_presence(
        &self,
        online: Vec<AgentId>,
        offline: Vec<AgentId>,
        until: Millis,
    ) -> Read<'_, ()> {
        self.mark_presence(online, offline, until)
    }

    fn connected_elsewhere<'a>(&'a self, agent_id: &'a AgentId) -> Read<'a, bool> {
        self.connected_elsewhere(agent_id)
    }

    // Push delivery's callbacks.

    fn set_callback(&self, agent_id: &AgentId, url: String, secret: String) -> Write<i64> {
        let clock = self.clock.clone();
        let pool = self.pool.clone();
        let agent_id = agent_id.to_string();
        Box::pin(self.spawn(async move {
            let now = clock.now();
            statement!(&pool, QUICK, |c| callbacks::upsert(
                c, &agent_id, &url, &secret, now
            ))
        }))
    }

    fn clear_callback(&self, agent_id: &AgentId) -> Write<bool> {
        let pool = self.pool.clone();
        let agent_id = agent_id.to_string();
        Box::pin(
            self.spawn(
                async move { statement!(&pool, QUICK, |c| callbacks::delete(c, &agent_id)) },
            ),
        )
    }

    fn callback<'a>(&'a self, agent_id: &'a AgentId) -> Read<'a, Option<StoredCallback>> {
        Box::pin(async move {
            let raw = statement!(&self.pool, QUICK, |c| callbacks::one(c, agent_id.as_str()))?;
            Ok(raw.map(callback_from))
        })
    }

    fn list_callbacks(&self) -> Read<'_, Vec<StoredCallback>> {
        Box::pin(async move {
            let raw = statement!(&self.pool, QUICK, |c| callbacks::all(c))?;
            Ok(raw.into_iter().map(callback_from).collect())
        })
    }

    // Workspaces.

    fn create_workspace(&self, workspace: StoredWorkspace) -> Write<bool> {
        let clock = self.clock.clone();
        let pool = self.pool.clone();
        Box::pin(self.spawn(async move {
            let now = clock.now();
            statement!(&pool, QUICK, |c| workspaces::insert(c, &workspace, now))
        }))
    }

    fn replace_workspace_secrets(
        &self,
        name: &WorkspaceName,
        secrets: Vec<String>,
    ) -> Write<Option<i64>> {
        let clock = self.clock.clone();
        let pool = self.pool.clone();
        let (name, secrets) = (name.to_string(), secrets_json(&secrets));
        Box::pin(self.spawn(async move {
            let now = clock.now();
            statement!(&pool, QUICK, |c| workspaces::replace(
                c, &name, &secrets, now
            ))
        }))
    }

    fn workspace<'a>(&'a self, name: &'a WorkspaceName) -> Read<'a, Option<StoredWorkspace>> {
        Box::pin(async move {
            let raw = statement!(&self.pool, QUICK, |c| workspaces::one(c, name.as_str()))?;
            raw.map(workspace_from).transpose()
        })
    }

    fn workspace_version<'a>(&'a self, name: &'a WorkspaceName) -> Read<'a, Option<i64>> {
        let name = name.as_str();
        Box::pin(async move { statement!(&self.pool, QUICK, |c| workspaces::version(c, name)) })
    }

    fn list_workspaces(&self) -> Read<'_, Vec<StoredWorkspace>> {
        Box::pin(async move {
            let raw = statement!(&self.pool, QUICK, |c| workspaces::all(c))?;
            raw.into_iter().map(workspace_from).collect()
        })
    }

    // The admin dashboard's reads across agents.

    fn admin_events(&self, query: AdminEventQuery) -> Read<'_, Vec<AdminEventRow>> {
        Box::pin(
            async move { statement!(&self.pool, QUICK, |c| dashboard::admin_events(c, &query)) },
        )
    }

    fn event_agent<'a>(&'a self, id: &'a EventId) -> Read<'a, Option<AgentId>> {
        let id = id.as_str();
        Box::pin(async move { statement!(&self.pool, QUICK, |c| dashboard::event_agent(c, id)) })
    }

    fn failed_by_agent(&self) -> Read<'_, Vec<(AgentId, u64)>> {
        Box::pin(async move { statement!(&self.pool, QUICK, |c| dashboard::failed_by_agent(c)) })
    }

    fn queue_depth(&self) -> Read<'_, u64> {
        Box::pin(async move { statement!(&self.pool, QUICK, |c| dashboard::queue_depth(c)) })
    }

    fn failed_since(&self, since: Millis) -> Read<'_, u64> {
        Box::pin(
            async move { statement!(&self.pool, QUICK, |c| dashboard::failed_since(c, since)) },
        )
    }

    // The store itself.

    fn ping(&self) -> Read<'_, ()> {
        Box::pin(async move {
            statement!(&self.pool, QUICK, |c| async {
                c.simple_query("SELECT 1").await.map(drop)
            })
        })
    }

    /// Lets every started write finish, then closes the connections. Later
    /// calls fail with [`StoreError::Closed`].
    fn close(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            self.writes.close();
            self.writes.wait().await;
            self.pool.close();
        })
    }
}
