//! [`AppState`]: what every handler and session can reach.

use std::sync::Arc;

use lobster_shared::Secret;
use lobster_shared::ids::RelayId;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::agent_directory::AgentDirectory;
use crate::api::backlog::BacklogCap;
use crate::api::limits::Limits;
use crate::bus::Bus;
use crate::config::Config;
use crate::last_seen::LastSeen;
use crate::session::registry::HttpSessions;
use crate::store::Store;
use crate::workspaces::Workspaces;

/// What every handler can reach: one `Arc`, so a clone (every request
/// takes one, and every session keeps one for its whole life) is a count
/// and eight bytes, not a copy of each field.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

/// The fields of [`AppState`], which dereferences to them.
pub struct Shared {
    pub store: Store,
    /// Agents by relay id and key hash, cached.
    pub agents: Arc<AgentDirectory>,
    /// Wake-ups and revocations, local and (with Redis) across instances.
    pub bus: Bus,
    pub config: Arc<Config>,
    pub public_url: Arc<str>,
    pub admin_token: Secret,
    pub limits: Arc<Limits>,
    /// `--agent-max-pending`: stored, undelivered events per agent.
    pub backlog: Arc<BacklogCap>,
    /// Workspace verifiers, cached; `default` from the configuration.
    pub workspaces: Arc<Workspaces>,
    /// Cancelled when the relay drains; sessions close with 1012.
    pub shutdown: CancellationToken,
    /// Live sessions, awaited on shutdown.
    pub sessions: TaskTracker,
    /// This instance's SSE and long-poll sessions, by id.
    pub http_sessions: Arc<HttpSessions>,
    /// `last_seen` times not yet written.
    pub last_seen: Arc<LastSeen>,
    /// Push delivery to agents' callback URLs.
    pub callbacks: Arc<crate::session::Callbacks>,
}

impl AppState {
    pub fn new(shared: Shared) -> Self {
        AppState(Arc::new(shared))
    }

    pub fn webhook_url(&self, relay_id: &RelayId) -> String {
        format!("{}/api/v1/webhook/{relay_id}", self.public_url)
    }
}

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}
