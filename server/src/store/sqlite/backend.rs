//! [`Backend`] on SQLite: each operation is the method of the same name
//! (`mod.rs` for writes, `reads`, `callbacks`, `workspaces`, `dashboard`),
//! boxed. Every write is a job queued on the writer thread by the call.

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;

use super::SqliteStore;
use crate::store::callbacks::StoredCallback;
use crate::store::dashboard::{AdminEventQuery, AdminEventRow};
use crate::store::push::Ports;
use crate::store::workspaces::StoredWorkspace;
use crate::store::*;

impl Backend for SqliteStore {
    fn clock(&self) -> &Clock {
        &self.clock
    }

    fn ports(&self) -> Option<&Arc<Ports>> {
        Some(&self.ports)
    }

    fn insert_event(&self, event: NewEvent) -> Write<Inserted> {
        Box::pin(self.insert_event(event))
    }

    fn claim(&self, request: ClaimRequest) -> Write<Claim> {
        Box::pin(self.claim(request))
    }

    fn ack(&self, agent_id: &str, session_id: &str, ids: Vec<String>) -> Write<()> {
        Box::pin(self.ack(agent_id, session_id, ids))
    }

    fn nack(&self, agent_id: &str, session_id: &str, id: &str, reason: &str) -> Write<()> {
        Box::pin(self.nack(agent_id, session_id, id, reason))
    }

    fn release(&self, agent_id: &str, session_id: &str) -> Write<()> {
        Box::pin(self.release(agent_id, session_id))
    }

    fn replay(&self, agent_id: &str, id: &str) -> Write<ReplayOutcome> {
        Box::pin(self.replay(agent_id, id))
    }

    fn sweep(&self, retention: Duration, failed_retention: Duration) -> Write<u64> {
        Box::pin(self.sweep(retention, failed_retention))
    }

    fn list_events(&self, query: EventQuery) -> Read<'_, Vec<EventSummary>> {
        Box::pin(self.list_events(query))
    }

    fn event_detail<'a>(&'a self, agent_id: &'a str, id: &'a str) -> Read<'a, Option<EventDetail>> {
        Box::pin(self.event_detail(agent_id, id))
    }

    fn pending_count<'a>(&'a self, agent_id: &'a str) -> Read<'a, u64> {
        Box::pin(self.pending_count(agent_id))
    }

    fn create_agent(&self, agent: NewAgent) -> Write<()> {
        Box::pin(self.create_agent(agent))
    }

    fn revoke_agent(&self, agent_id: &str) -> Write<bool> {
        Box::pin(self.revoke_agent(agent_id))
    }

    fn touch_agents(&self, seen: Vec<(String, Millis)>) -> Write<()> {
        Box::pin(self.touch_agents(seen))
    }

    fn list_agents(&self) -> Read<'_, Vec<AgentStats>> {
        Box::pin(self.list_agents())
    }

    fn agent_count(&self) -> Read<'_, u64> {
        Box::pin(self.agent_count())
    }

    fn agent_by_key_hash<'a>(&'a self, key_hash: &'a str) -> Read<'a, Option<Agent>> {
        Box::pin(self.agent_by_key_hash(key_hash))
    }

    fn agent_by_relay_id<'a>(&'a self, relay_id: &'a str) -> Read<'a, Option<Agent>> {
        Box::pin(self.agent_by_relay_id(relay_id))
    }

    fn revoked_since(&self, since: Millis) -> Read<'_, Vec<String>> {
        Box::pin(self.revoked_since(since))
    }

    fn set_callback(&self, agent_id: &str, url: String, secret: String) -> Write<i64> {
        Box::pin(self.set_callback(agent_id, url, secret))
    }

    fn clear_callback(&self, agent_id: &str) -> Write<bool> {
        Box::pin(self.clear_callback(agent_id))
    }

    fn callback<'a>(&'a self, agent_id: &'a str) -> Read<'a, Option<StoredCallback>> {
        Box::pin(self.callback(agent_id))
    }

    fn list_callbacks(&self) -> Read<'_, Vec<StoredCallback>> {
        Box::pin(self.list_callbacks())
    }

    fn create_workspace(&self, workspace: StoredWorkspace) -> Write<bool> {
        Box::pin(self.create_workspace(workspace))
    }

    fn replace_workspace_secrets(&self, name: &str, secrets: Vec<String>) -> Write<Option<i64>> {
        Box::pin(self.replace_workspace_secrets(name, secrets))
    }

    fn workspace<'a>(&'a self, name: &'a str) -> Read<'a, Option<StoredWorkspace>> {
        Box::pin(self.workspace(name))
    }

    fn workspace_version<'a>(&'a self, name: &'a str) -> Read<'a, Option<i64>> {
        Box::pin(self.workspace_version(name))
    }

    fn list_workspaces(&self) -> Read<'_, Vec<StoredWorkspace>> {
        Box::pin(self.list_workspaces())
    }

    fn admin_events(&self, query: AdminEventQuery) -> Read<'_, Vec<AdminEventRow>> {
        Box::pin(self.admin_events(query))
    }

    fn event_agent<'a>(&'a self, id: &'a str) -> Read<'a, Option<String>> {
        Box::pin(self.event_agent(id))
    }

    fn failed_by_agent(&self) -> Read<'_, Vec<(String, u64)>> {
        Box::pin(self.failed_by_agent())
    }

    fn queue_depth(&self) -> Read<'_, u64> {
        Box::pin(self.queue_depth())
    }

    fn failed_since(&self, since: Millis) -> Read<'_, u64> {
        Box::pin(self.failed_since(since))
    }

    fn ping(&self) -> Read<'_, ()> {
        Box::pin(self.ping())
    }

    fn close(&self) -> BoxFuture<'_, ()> {
        Box::pin(self.close())
    }
}
