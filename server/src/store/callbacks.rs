//! Agents' callback URLs for push delivery (`crate::callback`).
//!
//! The store keeps the URL and the signing secret exactly as it is given
//! them, sealed (`v1:...`, see [`crate::crypto`]); sealing and opening
//! happen above it. One callback per agent; a revoked agent's callback is
//! never listed.

use lobster_shared::ids::{AgentId, RelayId, WorkspaceName};

use super::{Agent, Millis};

/// A stored callback and the (unrevoked) agent it belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredCallback {
    pub agent: Agent,
    /// The sealed URL.
    pub url: String,
    /// The sealed `whsec_` signing secret.
    pub secret: String,
    /// Bumped by every `set_callback`; running deliveries compare it.
    pub version: i64,
    pub created_at: Millis,
    pub updated_at: Millis,
}

/// A callback row joined with its agent, as both backends select it:
/// agent_id, name, workspace, relay_id, url, secret, version, created_at,
/// updated_at.
pub(super) type RawRow = (
    String,
    String,
    String,
    String,
    String,
    String,
    i64,
    i64,
    i64,
);

/// The columns of [`RawRow`], for `callbacks c JOIN agents a`.
pub(super) const COLUMNS: &str = "a.agent_id, a.name, a.workspace, a.relay_id, c.url, c.secret, c.version, c.created_at, c.updated_at";

pub(super) fn callback_from(
    (agent_id, name, workspace, relay_id, url, secret, version, created_at, updated_at): RawRow,
) -> StoredCallback {
    StoredCallback {
        agent: Agent {
            agent_id: AgentId::from_stored(agent_id),
            name,
            workspace: WorkspaceName::from_stored(workspace),
            relay_id: RelayId::from_stored(relay_id),
        },
        url,
        secret,
        version,
        created_at,
        updated_at,
    }
}
