//! Workspaces on SQLite (schema version 2 adds their table).

use rusqlite::{Connection, OptionalExtension, Row, params};

use super::SqliteStore;
use crate::store::StoreError;
use crate::store::workspaces::{RawRow, StoredWorkspace, secrets_json, workspace_from};

/// Schema version 2: stored workspaces. `secrets` is the JSON text of the
/// sealed secrets (`v1:...` or `plain:...`); `version` goes up with each
/// rotation.
pub(super) const SCHEMA: &str = "
CREATE TABLE workspaces (
    name             TEXT PRIMARY KEY,
    signature_scheme TEXT NOT NULL,
    secrets          TEXT NOT NULL,
    version          INTEGER NOT NULL,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL
);
";

const COLUMNS: &str = "name, signature_scheme, secrets, version, created_at";

fn raw(r: &Row) -> rusqlite::Result<RawRow> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
}

fn insert(c: &Connection, w: &StoredWorkspace, now: i64) -> Result<bool, StoreError> {
    let rows = c
        .prepare_cached(
            "INSERT INTO workspaces (name, signature_scheme, secrets, version, created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (name) DO NOTHING",
        )?
        .execute(params![w.name, w.signature_scheme, secrets_json(&w.secrets), w.version, w.created_at, now])?;
    Ok(rows > 0)
}

fn replace(c: &Connection, name: &str, secrets: &str, now: i64) -> Result<Option<i64>, StoreError> {
    Ok(c.prepare_cached(
        "UPDATE workspaces SET secrets = ?2, version = version + 1, updated_at = ?3
         WHERE name = ?1 RETURNING version",
    )?
    .query_row(params![name, secrets, now], |r| r.get(0))
    .optional()?)
}

impl SqliteStore {
    pub(super) fn create_workspace(
        &self,
        workspace: StoredWorkspace,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send + use<> {
        let clock = self.clock.clone();
        self.writer
            .submit(move |c| insert(c, &workspace, clock.now()))
    }

    pub(super) fn replace_workspace_secrets(
        &self,
        name: &str,
        secrets: Vec<String>,
    ) -> impl Future<Output = Result<Option<i64>, StoreError>> + Send + use<> {
        let clock = self.clock.clone();
        let (name, secrets) = (name.to_owned(), secrets_json(&secrets));
        self.writer
            .submit(move |c| replace(c, &name, &secrets, clock.now()))
    }

    pub(super) async fn workspace(
        &self,
        name: &str,
    ) -> Result<Option<StoredWorkspace>, StoreError> {
        let name = name.to_owned();
        self.read(move |c| {
            c.prepare_cached(&format!("SELECT {COLUMNS} FROM workspaces WHERE name = ?1"))?
                .query_row(params![name], raw)
                .optional()?
                .map(workspace_from)
                .transpose()
        })
        .await
    }

    pub(super) async fn workspace_version(&self, name: &str) -> Result<Option<i64>, StoreError> {
        let name = name.to_owned();
        self.read(move |c| {
            Ok(
                c.prepare_cached("SELECT version FROM workspaces WHERE name = ?1")?
                    .query_row(params![name], |r| r.get(0))
                    .optional()?,
            )
        })
        .await
    }

    pub(super) async fn list_workspaces(&self) -> Result<Vec<StoredWorkspace>, StoreError> {
        self.read(|c| {
            let mut list =
                c.prepare_cached(&format!("SELECT {COLUMNS} FROM workspaces ORDER BY name"))?;
            let rows = list
                .query_map([], raw)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            rows.into_iter().map(workspace_from).collect()
        })
        .await
    }
}

/// Brings a database from schema version 1 to 2.
pub(super) fn migrate_to_2(conn: &Connection) -> Result<(), StoreError> {
    conn.execute_batch(SCHEMA)?;
    Ok(())
}
