//! Workspaces kept in the database: name, signature scheme, sealed secrets.
//!
//! The store keeps secrets exactly as it is given them (`v1:...` encrypted
//! or `plain:...`, see [`crate::crypto`]); sealing and opening happen above
//! it, so no backend ever sees a key. `default` is never stored: it comes
//! from the configuration.

use lobster_shared::ids::WorkspaceName;

use super::{Millis, StoreError};

/// A stored workspace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredWorkspace {
    pub name: WorkspaceName,
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
        name: WorkspaceName::from_stored(name),
        signature_scheme,
        secrets: secrets_from(&secrets)?,
        version,
        created_at,
    })
}
