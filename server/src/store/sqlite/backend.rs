//! [`Backend`] on SQLite: where each operation runs. Every write is a job
//! queued on the writer thread by the call, with the durability it needs
//! (`writer::Durability`); every read runs on a pooled reader connection.
//! The SQL is in `queries`, `leases`, `callbacks`, `workspaces` and
//! `dashboard`; the hot path's writes (`insert_event`, `claim`, `replay`,
//! which also keep the push ports, `queued` and `dedup` up to date) in
//! `mod.rs`.

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;

use super::writer::Durability;
use super::{SCHEMA_VERSION, SqliteStore, callbacks, dashboard, leases, queries, workspaces};
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

    fn ack(&self, agent_id: &str, session_id: &str, ids: Vec<String>) -> Write<()> {
        let clock = self.clock.clone();
        let (agent_id, session_id) = (agent_id.to_owned(), session_id.to_owned());
        Box::pin(self.writer.submit_hot(Durability::Lazy, move |c| {
            leases::ack(c, &agent_id, &session_id, &ids, clock.now())
        }))
    }

    fn nack(&self, agent_id: &str, session_id: &str, id: &str, reason: &str) -> Write<()> {
        let clock = self.clock.clone();
        let (agent_id, session_id, id, reason) = (
            agent_id.to_owned(),
            session_id.to_owned(),
            id.to_owned(),
            reason.to_owned(),
        );
        let retry = self.retry;
        Box::pin(self.writer.submit(move |c| {
            leases::nack(c, &agent_id, &session_id, &id, &reason, &retry, clock.now())
        }))
    }

    fn release(&self, agent_id: &str, session_id: &str) -> Write<()> {
        let clock = self.clock.clone();
        let (agent_id, session_id) = (agent_id.to_owned(), session_id.to_owned());
        Box::pin(self.writer.submit_with(Durability::Relaxed, move |c| {
            leases::release(c, &agent_id, &session_id, clock.now())
        }))
    }

    fn replay(&self, agent_id: &str, id: &str) -> Write<ReplayOutcome> {
        Box::pin(self.replay(agent_id, id))
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

    fn event_detail<'a>(&'a self, agent_id: &'a str, id: &'a str) -> Read<'a, Option<EventDetail>> {
        let (agent_id, id) = (agent_id.to_owned(), id.to_owned());
        Box::pin(self.read(move |c| queries::event_detail(c, &agent_id, &id)))
    }

    fn pending_count<'a>(&'a self, agent_id: &'a str) -> Read<'a, u64> {
        let agent_id = agent_id.to_owned();
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

    fn revoke_agent(&self, agent_id: &str) -> Write<bool> {
        let clock = self.clock.clone();
        let agent_id = agent_id.to_owned();
        Box::pin(
            self.writer
                .submit(move |c| queries::revoke_agent(c, &agent_id, clock.now())),
        )
    }

    fn touch_agents(&self, seen: Vec<(String, Millis)>) -> Write<()> {
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

    fn agent_by_relay_id<'a>(&'a self, relay_id: &'a str) -> Read<'a, Option<Agent>> {
        let relay_id = relay_id.to_owned();
        Box::pin(self.read(move |c| queries::agent_where(c, "relay_id", &relay_id)))
    }

    fn revoked_since(&self, since: Millis) -> Read<'_, Vec<String>> {
        Box::pin(self.read(move |c| queries::revoked_since(c, since)))
    }

    // Push delivery's callbacks.

    fn set_callback(&self, agent_id: &str, url: String, secret: String) -> Write<i64> {
        let clock = self.clock.clone();
        let agent_id = agent_id.to_owned();
        Box::pin(
            self.writer
                .submit(move |c| callbacks::upsert(c, &agent_id, &url, &secret, clock.now())),
        )
    }

    fn clear_callback(&self, agent_id: &str) -> Write<bool> {
        let agent_id = agent_id.to_owned();
        Box::pin(self.writer.submit(move |c| callbacks::delete(c, &agent_id)))
    }

    fn callback<'a>(&'a self, agent_id: &'a str) -> Read<'a, Option<StoredCallback>> {
        let agent_id = agent_id.to_owned();
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

    fn replace_workspace_secrets(&self, name: &str, secrets: Vec<String>) -> Write<Option<i64>> {
        let clock = self.clock.clone();
        let (name, secrets) = (name.to_owned(), secrets_json(&secrets));
        Box::pin(
            self.writer
                .submit(move |c| workspaces::replace(c, &name, &secrets, clock.now())),
        )
    }

    fn workspace<'a>(&'a self, name: &'a str) -> Read<'a, Option<StoredWorkspace>> {
        let name = name.to_owned();
        Box::pin(self.read(move |c| workspaces::one(c, &name)))
    }

    fn workspace_version<'a>(&'a self, name: &'a str) -> Read<'a, Option<i64>> {
        let name = name.to_owned();
        Box::pin(self.read(move |c| workspaces::version(c, &name)))
    }

    fn list_workspaces(&self) -> Read<'_, Vec<StoredWorkspace>> {
        Box::pin(self.read(workspaces::all))
    }

    // The admin dashboard's reads across agents.

    fn admin_events(&self, query: AdminEventQuery) -> Read<'_, Vec<AdminEventRow>> {
        Box::pin(self.read(move |c| dashboard::admin_events(c, &query)))
    }

    fn event_agent<'a>(&'a self, id: &'a str) -> Read<'a, Option<String>> {
        let id = id.to_owned();
        Box::pin(self.read(move |c| dashboard::event_agent(c, &id)))
    }

    fn failed_by_agent(&self) -> Read<'_, Vec<(String, u64)>> {
        Box::pin(self.read(dashboard::failed_by_agent))
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
