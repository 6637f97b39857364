//! Callbacks on SQLite (schema version 7 adds their table): the SQL, on a
//! connection the caller provides (`backend` runs it).

use rusqlite::{Connection, OptionalExtension, Row, params};

use crate::store::StoreError;
use crate::store::callbacks::{COLUMNS, RawRow, StoredCallback, callback_from};

/// Schema version 7: one callback per agent; `url` and `secret` are sealed
/// (`v1:...`).
const SCHEMA: &str = "
CREATE TABLE callbacks (
    agent_id   TEXT PRIMARY KEY,
    url        TEXT NOT NULL,
    secret     TEXT NOT NULL,
    version    INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
";

fn raw(r: &Row) -> rusqlite::Result<RawRow> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
        r.get(6)?,
        r.get(7)?,
        r.get(8)?,
    ))
}

pub(super) fn upsert(
    c: &Connection,
    agent_id: &str,
    url: &str,
    secret: &str,
    now: i64,
) -> Result<i64, StoreError> {
    Ok(c.prepare_cached(
        "INSERT INTO callbacks (agent_id, url, secret, version, created_at, updated_at)
         VALUES (?1, ?2, ?3, 1, ?4, ?4)
         ON CONFLICT (agent_id) DO UPDATE SET url = excluded.url, secret = excluded.secret,
             version = callbacks.version + 1, updated_at = excluded.updated_at
         RETURNING version",
    )?
    .query_row(params![agent_id, url, secret, now], |r| r.get(0))?)
}

pub(super) fn delete(c: &Connection, agent_id: &str) -> Result<bool, StoreError> {
    Ok(
        c.prepare_cached("DELETE FROM callbacks WHERE agent_id = ?1")?
            .execute(params![agent_id])?
            > 0,
    )
}

pub(super) fn one(c: &Connection, agent_id: &str) -> Result<Option<StoredCallback>, StoreError> {
    Ok(c.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM callbacks c JOIN agents a ON a.agent_id = c.agent_id
         WHERE c.agent_id = ?1 AND a.revoked_at IS NULL"
    ))?
    .query_row(params![agent_id], raw)
    .optional()?
    .map(callback_from))
}

pub(super) fn all(c: &Connection) -> Result<Vec<StoredCallback>, StoreError> {
    let mut list = c.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM callbacks c JOIN agents a ON a.agent_id = c.agent_id
         WHERE a.revoked_at IS NULL ORDER BY c.agent_id"
    ))?;
    let rows = list
        .query_map([], raw)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows.into_iter().map(callback_from).collect())
}

/// Brings a database from schema version 6 to 7.
pub(super) fn migrate_to_7(conn: &Connection) -> Result<(), StoreError> {
    conn.execute_batch(SCHEMA)?;
    Ok(())
}
