//! [`Backend`] on SQLite: where each operation runs. Every write is a job
//! queued on the writer thread by the call, with the durability it needs
//! (`writer::Durability`); every read runs on a pooled reader connection.
//! The SQL is in `queries`, `leases`, `callbacks`, `workspaces`,
//! `dashboard` and `agent_keys`; the hot path's writes (`insert_event`,
//! `claim`, `replay`, which also keep the push ports, `queued` and `dedup`
//! up to date) in `mod.rs`.

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use lobster_shared::ids::{AgentId, EventId, RelayId, SessionId, WorkspaceName};

use super::writer::Durability;
use super::{
    SCHEMA_VERSION, SqliteStore, agent_keys, callbacks, dashboard, leases, queries, workspaces,
};
use crate::store::callbacks::StoredCallback;
use crate::store::dashboard::{AdminEventQuery, AdminEventRow};
use crate::store::push::Ports;
use crate::store::workspaces::{StoredWorkspace, secrets_json};
use crate::store::*;

impl Backend for SqliteStore {
    fn clock(&self) -> &Clock {
        &self.clock
    }

    fn ports(&self) -> Option<&Arc<Ports>> {
        Some(&self.ports)
    }

    // The delivery lifecycle.

    fn insert_event(&self, event: NewEvent) -> Write<Inserted> {
        Box::pin(self.insert_event(event))
    }

    fn claim(&self, request: ClaimRequest) -> Write<Claim> {
        Box::pin(self.claim(request))
    }

    fn ack(&self, agent_id: &AgentId, session_id: &SessionId, ids: Vec<EventId>) -> Write<()> {
        let clock = self.clock.clone();
        let (agent_id, session_id) = (agent_id.to_string(), session_id.to_string());
        let ids: Vec<String> = ids.into_iter().map(EventId::into_string).collect();
        Box::pin(self.writer.submit_hot(Durability::Lazy, move |c| {
            leases::ack(c, &agent_id, &session_id, &ids, clock.now())
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
        let (agent_id, session_id, id, reason) = (
            agent_id.to_string(),
            session_id.to_string(),
            id.to_string(),
            reason.to_owned(),
        );
        let retry = self.retry;
        Box::pin(self.writer.submit(move |c| {
            leases::nack(c, &agent_id, &session_id, &id, &reason, &retry, clock.now())
        }))
    }

    fn release(&self, agent_id: &AgentId, session_id: &SessionId) -> Write<()> {
        let clock = self.clock.clone();
        let (agent_id, session_id) = (agent_id.to_string(), session_id.to_string());
        Box::pin(self.writer.submit_with(Durability::Relaxed, move |c| {
            leases::release(c, &agent_id, &session_id, clock.now())
        }))
    }

    fn replay(&self, agent_id: &AgentId, id: &EventId) -> Write<ReplayOutcome> {
        Box::pin(self.replay(agent_id.as_str(), id.as_str()))
    }

    fn sweep(&self, retention: Duration, failed_retention: Duration) -> Write<u64> {
        let clock = self.clock.clone();
        let retention_ms = retention.as_millis() as Millis;
        let failed_ms = failed_retention.as_millis() as Millis;
        Box::pin(
            self.writer
                .submit(move |c| queries::sweep(c, retention_ms, failed_ms, clock.now())),
        )
    }

    // Events, read.

    fn list_events(&self, query: EventQuery) -> Read<'_, Vec<EventSummary>> {
        Box::pin(self.read(move |c| queries::list_events(c, &query)))
    }

    fn event_detail<'a>(
        &'a self,
        agent_id: &'a AgentId,
        id: &'a EventId,
    ) -> Read<'a, Option<EventDetail>> {
        let (agent_id, id) = (agent_id.to_string(), id.to_string());
        Box::pin(self.read(move |c| queries::event_detail(c, &agent_id, &id)))
    }

    fn pending_count<'a>(&'a self, agent_id: &'a AgentId) -> Read<'a, u64> {
        let agent_id = agent_id.to_string();
        Box::pin(self.read(move |c| queries::pending_count(c, &agent_id)))
    }

    // Agents.

    fn create_agent(&self, agent: NewAgent) -> Write<()> {
        let clock = self.clock.clone();
        Box::pin(
            self.writer
                .submit(move |c| queries::create_agent(c, &agent, clock.now())),
        )
    }

    fn revoke_agent(&self, agent_id: &AgentId) -> Write<bool> {
        let clock = self.clock.clone();
        let agent_id = agent_id.to_string();
        Box::pin(
            self.writer
                .submit(move |c| queries::revoke_agent(c, &agent_id, clock.now())),
        )
    }

    fn touch_agents(&self, seen: Vec<(AgentId, Millis)>) -> Write<()> {
        let seen: Vec<(String, Millis)> = seen
            .into_iter()
            .map(|(agent, at)| (agent.into_string(), at))
            .collect();
        Box::pin(
            self.writer
                .submit_hot(Durability::Lazy, move |c| queries::touch_agents(c, &seen)),
        )
    }

    fn list_agents(&self) -> Read<'_, Vec<AgentStats>> {
        Box::pin(self.read(queries::list_agents))
    }

    fn agent_count(&self) -> Read<'_, u64> {
        Box::pin(self.read(|c| {
            Ok(c.query_row("SELECT COUNT(*) FROM agents", [], |r| r.get::<_, i64>(0))? as u64)
        }))
    }

    fn agent_by_key_hash<'a>(&'a self, key_hash: &'a str) -> Read<'a, Option<Agent>> {
        let key_hash = key_hash.to_owned();
        Box::pin(self.read(move |c| queries::agent_where(c, "key_hash", &key_hash)))
    }

    fn agent_by_relay_id<'a>(&'a self, relay_id: &'a RelayId) -> Read<'a, Option<Agent>> {
        let relay_id = relay_id.to_string();
        Box::pin(self.read(move |c| queries::agent_where(c, "relay_id", &relay_id)))
    }

    fn live_agents(&self, limit: usize) -> Read<'_, Vec<(String, Agent)>> {
        Box::pin(self.read(move |c| agent_keys::live_agents(c, limit)))
    }

    fn revoked_since(&self, since: Millis) -> Read<'_, Vec<AgentId>> {
        Box::pin(async move {
            let ids = self.read(move |c| queries::revoked_since(c, since)).await?;
            Ok(ids.into_iter().map(AgentId::from_stored).collect())
        })
    }

    // Push delivery's callbacks.

    fn set_callback(&self, agent_id: &AgentId, url: String, secret: String) -> Write<i64> {
        let clock = self.clock.clone();
        let agent_id = agent_id.to_string();
        Box::pin(
            self.writer
                .submit(move |c| callbacks::upsert(c, &agent_id, &url, &secret, clock.now())),
        )
    }

    fn clear_callback(&self, agent_id: &AgentId) -> Write<bool> {
        let agent_id = agent_id.to_string();
        Box::pin(self.writer.submit(move |c| callbacks::delete(c, &agent_id)))
    }

    fn callback<'a>(&'a self, agent_id: &'a AgentId) -> Read<'a, Option<StoredCallback>> {
        let agent_id = agent_id.to_string();
        Box::pin(self.read(move |c| callbacks::one(c, &agent_id)))
    }

    fn list_callbacks(&self) -> Read<'_, Vec<StoredCallback>> {
        Box::pin(self.read(callbacks::all))
    }

    // Workspaces.

    fn create_workspace(&self, workspace: StoredWorkspace) -> Write<bool> {
        let clock = self.clock.clone();
        Box::pin(
            self.writer
                .submit(move |c| workspaces::insert(c, &workspace, clock.now())),
        )
    }

    fn replace_workspace_secrets(
        &self,
        name: &WorkspaceName,
        secrets: Vec<String>,
    ) -> Write<Option<i64>> {
        let clock = self.clock.clone();
        let (name, secrets) = (name.to_string(), secrets_json(&secrets));
        Box::pin(
            self.writer
                .submit(move |c| workspaces::replace(c, &name, &secrets, clock.now())),
        )
    }

    fn workspace<'a>(&'a self, name: &'a WorkspaceName) -> Read<'a, Option<StoredWorkspace>> {
        let name = name.to_string();
        Box::pin(self.read(move |c| workspaces::one(c, &name)))
    }

    fn workspace_version<'a>(&'a self, name: &'a WorkspaceName) -> Read<'a, Option<i64>> {
        let name = name.to_string();
        Box::pin(self.read(move |c| workspaces::version(c, &name)))
    }

    fn list_workspaces(&self) -> Read<'_, Vec<StoredWorkspace>> {
        Box::pin(self.read(workspaces::all))
    }

    // The admin dashboard's reads across agents.

    fn admin_events(&self, query: AdminEventQuery) -> Read<'_, Vec<AdminEventRow>> {
        Box::pin(self.read(move |c| dashboard::admin_events(c, &query)))
    }

    fn event_agent<'a>(&'a self, id: &'a EventId) -> Read<'a, Option<AgentId>> {
        let id = id.to_string();
        Box::pin(async move {
            let agent = self.read(move |c| dashboard::event_agent(c, &id)).await?;
            Ok(agent.map(AgentId::from_stored))
        })
    }

    fn failed_by_agent(&self) -> Read<'_, Vec<(AgentId, u64)>> {
        Box::pin(async move {
            let counts = self.read(dashboard::failed_by_agent).await?;
            Ok(counts
                .into_iter()
                .map(|(agent, failed)| (AgentId::from_stored(agent), failed))
                .collect())
        })
    }

    fn queue_depth(&self) -> Read<'_, u64> {
        Box::pin(self.read(dashboard::queue_depth))
    }

    fn failed_since(&self, since: Millis) -> Read<'_, u64> {
        Box::pin(self.read(move |c| dashboard::failed_since(c, since)))
    }

    // The store itself.

    /// Readable, and writable: after a failed commit (a full disk) a probe
    /// that must write a page (the schema version, unchanged) is committed,
    /// so `/readyz` reports the failure until space returns, and clears as
    /// soon as a write would succeed again.
    fn ping(&self) -> Read<'_, ()> {
        Box::pin(async move {
            if self.writer.failing() {
                self.writer
                    .submit(|c| {
                        c.execute_batch(&format!("PRAGMA user_version = {SCHEMA_VERSION}"))?;
                        Ok(())
                    })
                    .await?;
            }
            self.read(|c| Ok(c.query_row("SELECT 1", [], |_| Ok(()))?))
                .await
        })
    }

    fn close(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            self.writer.close().await;
            // The writer is gone: another relay may have the database now.
            self.lock.lock().unwrap_or_else(|e| e.into_inner()).take();
        })
    }
}
