//! Agents' callback URLs for push delivery (`crate::callback`).
//!
//! The store keeps the URL and the signing secret exactly as it is given
//! them, sealed (`v1:...`, see [`crate::crypto`]); sealing and opening
//! happen above it. One callback per agent; a revoked agent's callback is
//! never listed.

use futures_util::future::Either;

use super::{Agent, Millis, Store, StoreError};

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
            agent_id,
            name,
            workspace,
            relay_id,
        },
        url,
        secret,
        version,
        created_at,
        updated_at,
    }
}

impl Store {
    /// Stores (or replaces) an agent's callback; returns its new version.
    pub fn set_callback(
        &self,
        agent_id: &str,
        url: String,
        secret: String,
    ) -> impl Future<Output = Result<i64, StoreError>> + Send + use<> {
        match self {
            Store::Sqlite(s) => Either::Left(s.set_callback(agent_id, url, secret)),
            Store::Postgres(p) => Either::Right(p.set_callback(agent_id, url, secret)),
        }
    }

    /// Removes an agent's callback; `false` if it had none.
    pub fn clear_callback(
        &self,
        agent_id: &str,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send + use<> {
        match self {
            Store::Sqlite(s) => Either::Left(s.clear_callback(agent_id)),
            Store::Postgres(p) => Either::Right(p.clear_callback(agent_id)),
        }
    }

    /// An unrevoked agent's callback.
    pub async fn callback(&self, agent_id: &str) -> Result<Option<StoredCallback>, StoreError> {
        match self {
            Store::Sqlite(s) => s.callback(agent_id).await,
            Store::Postgres(p) => p.callback(agent_id).await,
        }
    }

    /// Every unrevoked agent's callback, by agent id.
    pub async fn list_callbacks(&self) -> Result<Vec<StoredCallback>, StoreError> {
        match self {
            Store::Sqlite(s) => s.list_callbacks().await,
            Store::Postgres(p) => p.list_callbacks().await,
        }
    }
}
