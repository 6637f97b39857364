//! Schema migrations. Instances starting together take turns on an advisory
//! lock, so each migration runs once; a schema newer than this build is
//! refused rather than misread.

use std::time::Duration;

use deadpool_postgres::{Pool, Transaction};

use super::pool::{Limit, transaction};
use crate::store::{StoreError, now_ms};

/// Each migration brings the schema to its version; applied in order.
const MIGRATIONS: &[(i32, &str)] = &[
    (1, include_str!("schema.sql")),
    (2, super::workspaces::SCHEMA),
    (3, DUE_INDEX),
    (4, REPLAY_FLAG),
    (5, RETRY_BASE),
    (6, super::callbacks::SCHEMA),
    (7, PRESENCE),
];

/// Version 3: finding an agent's next retry or lease expiry is an index seek,
/// not a scan of everything it has pending.
const DUE_INDEX: &str =
    "CREATE INDEX IF NOT EXISTS events_due ON events (agent_id, status, next_attempt_at);
     CREATE INDEX IF NOT EXISTS events_lease ON events (agent_id, status, lease_until);";

/// Version 4: an event queued again by an explicit replay says so in its
/// next event frame (`"replay": true`) until it is acked.
const REPLAY_FLAG: &str =
    "ALTER TABLE events ADD COLUMN IF NOT EXISTS replay BOOLEAN NOT NULL DEFAULT FALSE;";

/// Version 5: a replay gives the event a fresh retry budget; the attempts
/// before it (`retry_base`) no longer count against it.
const RETRY_BASE: &str =
    "ALTER TABLE events ADD COLUMN IF NOT EXISTS retry_base INTEGER NOT NULL DEFAULT 0;";

/// Version 7: which instances have a session of which agent, until when
/// (renewed while it lasts), so that push delivery on the other instances
/// steps aside (`crate::presence`).
const PRESENCE: &str = "CREATE TABLE IF NOT EXISTS presence (
    agent_id TEXT NOT NULL,
    instance_id TEXT NOT NULL,
    until BIGINT NOT NULL,
    PRIMARY KEY (agent_id, instance_id)
);";

/// This build's schema version: the last migration's.
const SCHEMA_VERSION: i32 = MIGRATIONS[MIGRATIONS.len() - 1].0;

/// Names lobster-relay's migration lock among the database's advisory locks
/// ("lobster" in ASCII).
const MIGRATION_LOCK: i64 = 0x006c_6f62_7374_6572;

/// Waiting for another instance's migration counts against this.
const MIGRATION_LIMIT: Limit = Limit(Duration::from_secs(120));

pub(super) async fn migrate(pool: &Pool) -> Result<(), StoreError> {
    let found = transaction!(pool, MIGRATION_LIMIT, |tx| apply(tx))?;
    if found > SCHEMA_VERSION {
        return Err(StoreError::Database(format!(
            "the database was written by a newer lobster-relay (schema {found}, this build knows {SCHEMA_VERSION}): upgrade lobster-relay"
        )));
    }
    Ok(())
}

/// Applies what is missing, holding the migration lock until commit;
/// returns the version found.
async fn apply(tx: &Transaction<'_>) -> Result<i32, tokio_postgres::Error> {
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS schema_version (
             version    INTEGER PRIMARY KEY,
             applied_at BIGINT NOT NULL
         )",
    )
    .await?;
    let version: Option<i32> = tx
        .query_one("SELECT MAX(version) FROM schema_version", &[])
        .await?
        .get(0);
    let version = version.unwrap_or(0);
    for (to, sql) in MIGRATIONS.iter().filter(|(to, _)| *to > version) {
        tx.batch_execute(sql).await?;
        tx.execute(
            "INSERT INTO schema_version (version, applied_at) VALUES ($1, $2)",
            &[to, &now_ms()],
        )
        .await?;
        tracing::info!(version = to, "migrated the PostgreSQL schema");
    }
    Ok(version)
}
