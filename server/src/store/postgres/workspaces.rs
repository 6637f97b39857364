//! Workspaces on PostgreSQL (migration 2 adds their table): the SQL, on a
//! client the caller provides (`backend` runs it).

use deadpool_postgres::GenericClient;
use tokio_postgres::{Error, Row};

use crate::store::workspaces::{RawRow, StoredWorkspace, secrets_json};

/// Migration 2: stored workspaces. `secrets` is the JSON text of the sealed
/// secrets (`v1:...` or `plain:...`); `version` goes up with each rotation,
/// so instances can tell their cached verifiers are stale.
pub(super) const SCHEMA: &str = "
CREATE TABLE workspaces (
    name             TEXT PRIMARY KEY,
    signature_scheme TEXT NOT NULL,
    secrets          TEXT NOT NULL,
    version          BIGINT NOT NULL,
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL
);
";

const COLUMNS: &str = "name, signature_scheme, secrets, version, created_at";

fn raw(r: &Row) -> RawRow {
    (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4))
}

pub(super) async fn insert(
    c: &impl GenericClient,
    w: &StoredWorkspace,
    now: i64,
) -> Result<bool, Error> {
    let insert = c
        .prepare_cached(
            "INSERT INTO workspaces (name, signature_scheme, secrets, version, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (name) DO NOTHING",
        )
        .await?;
    let secrets = secrets_json(&w.secrets);
    let rows = c
        .execute(
            &insert,
            &[
                &w.name.as_str(),
                &w.signature_scheme,
                &secrets,
                &w.version,
                &w.created_at,
                &now,
            ],
        )
        .await?;
    Ok(rows > 0)
}

pub(super) async fn replace(
    c: &impl GenericClient,
    name: &str,
    secrets: &str,
    now: i64,
) -> Result<Option<i64>, Error> {
    let update = c
        .prepare_cached(
            "UPDATE workspaces SET secrets = $2, version = version + 1, updated_at = $3
             WHERE name = $1 RETURNING version",
        )
        .await?;
    Ok(c.query_opt(&update, &[&name, &secrets, &now])
        .await?
        .map(|r| r.get(0)))
}

pub(super) async fn one(c: &impl GenericClient, name: &str) -> Result<Option<RawRow>, Error> {
    let find = c
        .prepare_cached(&format!("SELECT {COLUMNS} FROM workspaces WHERE name = $1"))
        .await?;
    Ok(c.query_opt(&find, &[&name]).await?.map(|r| raw(&r)))
}

pub(super) async fn version(c: &impl GenericClient, name: &str) -> Result<Option<i64>, Error> {
    let find = c
        .prepare_cached("SELECT version FROM workspaces WHERE name = $1")
        .await?;
    Ok(c.query_opt(&find, &[&name]).await?.map(|r| r.get(0)))
}

pub(super) async fn all(c: &impl GenericClient) -> Result<Vec<RawRow>, Error> {
    let list = c
        .prepare_cached(&format!("SELECT {COLUMNS} FROM workspaces ORDER BY name"))
        .await?;
    Ok(c.query(&list, &[]).await?.iter().map(raw).collect())
}
