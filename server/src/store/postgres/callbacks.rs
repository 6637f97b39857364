//! Callbacks on PostgreSQL (migration 6 adds their table): the SQL, on a
//! client the caller provides (`backend` runs it).

use deadpool_postgres::GenericClient;
use tokio_postgres::{Error, Row};

use crate::store::callbacks::{COLUMNS, RawRow};

/// Migration 6: one callback per agent; `url` and `secret` are sealed
/// (`v1:...`).
pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS callbacks (
    agent_id   TEXT PRIMARY KEY,
    url        TEXT NOT NULL,
    secret     TEXT NOT NULL,
    version    BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
";

fn raw(r: &Row) -> RawRow {
    (
        r.get(0),
        r.get(1),
        r.get(2),
        r.get(3),
        r.get(4),
        r.get(5),
        r.get(6),
        r.get(7),
        r.get(8),
    )
}

pub(super) async fn upsert(
    c: &impl GenericClient,
    agent_id: &str,
    url: &str,
    secret: &str,
    now: i64,
) -> Result<i64, Error> {
    let upsert = c
        .prepare_cached(
            "INSERT INTO callbacks (agent_id, url, secret, version, created_at, updated_at)
             VALUES ($1, $2, $3, 1, $4, $4)
             ON CONFLICT (agent_id) DO UPDATE SET url = excluded.url, secret = excluded.secret,
                 version = callbacks.version + 1, updated_at = excluded.updated_at
             RETURNING version",
        )
        .await?;
    Ok(c.query_one(&upsert, &[&agent_id, &url, &secret, &now])
        .await?
        .get(0))
}

pub(super) async fn delete(c: &impl GenericClient, agent_id: &str) -> Result<bool, Error> {
    let delete = c
        .prepare_cached("DELETE FROM callbacks WHERE agent_id = $1")
        .await?;
    Ok(c.execute(&delete, &[&agent_id]).await? > 0)
}

pub(super) async fn one(c: &impl GenericClient, agent_id: &str) -> Result<Option<RawRow>, Error> {
    let find = c
        .prepare_cached(&format!(
            "SELECT {COLUMNS} FROM callbacks c JOIN agents a ON a.agent_id = c.agent_id
             WHERE c.agent_id = $1 AND a.revoked_at IS NULL"
        ))
        .await?;
    Ok(c.query_opt(&find, &[&agent_id]).await?.map(|r| raw(&r)))
}

pub(super) async fn all(c: &impl GenericClient) -> Result<Vec<RawRow>, Error> {
    let list = c
        .prepare_cached(&format!(
            "SELECT {COLUMNS} FROM callbacks c JOIN agents a ON a.agent_id = c.agent_id
             WHERE a.revoked_at IS NULL ORDER BY c.agent_id"
        ))
        .await?;
    Ok(c.query(&list, &[]).await?.iter().map(raw).collect())
}
