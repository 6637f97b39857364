//! Workspaces kept in the database: name, signature scheme, sealed secrets.
//!
//! The store keeps secrets exactly as it is given them (`v1:...` encrypted
//! or `plain:...`, see [`crate::crypto`]); sealing and opening happen above
//! it, so no backend ever sees a key. `default` is never stored: it comes
//! from the configuration.

use super::{Millis, Store, StoreError};
use futures_util::future::Either;

/// A stored workspace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredWorkspace {
    pub name: String,
    /// As spelled by `Scheme::as_str`.
    pub signature_scheme: String,
    /// Sealed secrets, in order (the order is part of each one's identity).
    pub secrets: Vec<String>,
    /// Bumped by every change of the secrets; caches compare it.
    pub version: i64,
    pub created_at: Millis,
}

/// The JSON text of a secret list, as both backends store it.
pub(super) fn secrets_json(secrets: &[String]) -> String {
    serde_json::to_string(secrets).expect("strings always serialize")
}

fn secrets_from(text: &str) -> Result<Vec<String>, StoreError> {
    serde_json::from_str(text)
        .map_err(|e| StoreError::Database(format!("a workspace's secret list is corrupt: {e}")))
}

/// A workspace row as both backends select it: name, scheme, secrets (JSON
/// text), version, created_at.
pub(super) type RawRow = (String, String, String, i64, i64);

/// A selected row as a workspace; fails only on a corrupt secret list.
pub(super) fn workspace_from(
    (name, signature_scheme, secrets, version, created_at): RawRow,
) -> Result<StoredWorkspace, StoreError> {
    Ok(StoredWorkspace {
        name,
        signature_scheme,
        secrets: secrets_from(&secrets)?,
        version,
        created_at,
    })
}

impl Store {
    /// Stores a new workspace; `false` if one of that name exists.
    pub fn create_workspace(
        &self,
        workspace: StoredWorkspace,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send + use<> {
        match self {
            Store::Sqlite(s) => Either::Left(s.create_workspace(workspace)),
            Store::Postgres(p) => Either::Right(p.create_workspace(workspace)),
        }
    }

    /// Replaces a workspace's secrets and bumps its version; returns the new
    /// version, `None` if there is no such workspace.
    pub fn replace_workspace_secrets(
        &self,
        name: &str,
        secrets: Vec<String>,
    ) -> impl Future<Output = Result<Option<i64>, StoreError>> + Send + use<> {
        match self {
            Store::Sqlite(s) => Either::Left(s.replace_workspace_secrets(name, secrets)),
            Store::Postgres(p) => Either::Right(p.replace_workspace_secrets(name, secrets)),
        }
    }

    pub async fn workspace(&self, name: &str) -> Result<Option<StoredWorkspace>, StoreError> {
        match self {
            Store::Sqlite(s) => s.workspace(name).await,
            Store::Postgres(p) => p.workspace(name).await,
        }
    }

    /// Only the version, for caches checking whether they are stale.
    pub async fn workspace_version(&self, name: &str) -> Result<Option<i64>, StoreError> {
        match self {
            Store::Sqlite(s) => s.workspace_version(name).await,
            Store::Postgres(p) => p.workspace_version(name).await,
        }
    }

    /// Every stored workspace, by name.
    pub async fn list_workspaces(&self) -> Result<Vec<StoredWorkspace>, StoreError> {
        match self {
            Store::Sqlite(s) => s.list_workspaces().await,
            Store::Postgres(p) => p.list_workspaces().await,
        }
    }
}
