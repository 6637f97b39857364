//! Workspaces on SQLite (schema version 2 adds their table): the SQL, on a
//! connection the caller provides (`backend` runs it).

use rusqlite::{Connection, OptionalExtension, Row, params};

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

pub(super) fn insert(c: &Connection, w: &StoredWorkspace, now: i64) -> Result<bool, StoreError> {
    let rows = c
        .prepare_cached(
            "INSERT INTO workspaces (name, signature_scheme, secrets, version, created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (name) DO NOTHING",
        )?
        .execute(params![w.name.as_str(), w.signature_scheme, secrets_json(&w.secrets), w.version, w.created_at, now])?;
    Ok(rows > 0)
}

pub(super) fn replace(
    c: &Connection,
    name: &str,
    secrets: &str,
    now: i64,
) -> Result<Option<i64>, StoreError> {
    Ok(c.prepare_cached(
        "UPDATE workspaces SET secrets = ?2, version = version + 1, updated_at = ?3
         WHERE name = ?1 RETURNING version",
    )?
    .query_row(params![name, secrets, now], |r| r.get(0))
    .optional()?)
}

pub(super) fn one(c: &Connection, name: &str) -> Result<Option<StoredWorkspace>, StoreError> {
    c.prepare_cached(&format!("SELECT {COLUMNS} FROM workspaces WHERE name = ?1"))?
        .query_row(params![name], raw)
        .optional()?
        .map(workspace_from)
        .transpose()
}

pub(super) fn version(c: &Connection, name: &str) -> Result<Option<i64>, StoreError> {
    Ok(
        c.prepare_cached("SELECT version FROM workspaces WHERE name = ?1")?
            .query_row(params![name], |r| r.get(0))
            .optional()?,
    )
}

pub(super) fn all(c: &Connection) -> Result<Vec<StoredWorkspace>, StoreError> {
    let mut list = c.prepare_cached(&format!("SELECT {COLUMNS} FROM workspaces ORDER BY name"))?;
    let rows = list
        .query_map([], raw)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    rows.into_iter().map(workspace_from).collect()
}

/// Brings a database from schema version 1 to 2.
pub(super) fn migrate_to_2(conn: &Connection) -> Result<(), StoreError> {
    conn.execute_batch(SCHEMA)?;
    Ok(())
}
