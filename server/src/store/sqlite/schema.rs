//! The SQLite schema and its migrations (`PRAGMA user_version`).

use rusqlite::{Connection, OptionalExtension as _};

use super::{callbacks, workspaces};
use crate::store::StoreError;

/// 1: agents, events, attempts, dedup; 2: workspaces; 3: due-time indexes;
/// 4: the same as partial indexes; 5: replay flag; 6: retry base;
/// 7: callbacks; 8: each event's dedup key in its row; 9: bodies in a
/// table of their own, and indexes that a lease and an ack do not touch;
/// 10: the delivery that ends an event is kept in its row, not in
/// `attempts` (no change to the tables: a relay before 10 would show such
/// events without it, so it must not open the database).
pub(super) const SCHEMA_VERSION: i32 = 10;

pub(super) fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    migrate_to(conn, SCHEMA_VERSION)
}

/// Applies the migrations up to `target` (an older one in tests: a
/// database as an earlier release left it).
pub(super) fn migrate_to(conn: &mut Connection, target: i32) -> Result<(), StoreError> {
    let version: i32 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if version > SCHEMA_VERSION {
        return Err(StoreError::Database(format!(
            "the database was written by a newer lobster-relay (schema {version}, this build knows {SCHEMA_VERSION}): upgrade lobster-relay"
        )));
    }
    if version < target {
        let step = |k: i32| version < k && k <= target;
        let tx = conn.transaction()?;
        if step(1) {
            tx.execute_batch(include_str!("schema.sql"))?;
        }
        if step(2) {
            workspaces::migrate_to_2(&tx)?;
        }
        if step(4) {
            // An agent's next retry or lease expiry is an index seek, not a
            // scan of everything it has pending (claims ask on every lease).
            // Partial indexes (schema 4; 3 had full ones): each holds only
            // the events in its status, so an insert, a lease and an ack
            // each touch fewer B-trees.
            tx.execute_batch(
                "DROP INDEX IF EXISTS events_due;
                 DROP INDEX IF EXISTS events_lease;
                 CREATE INDEX events_due ON events (agent_id, next_attempt_at)
                     WHERE status = 'pending';
                 CREATE INDEX events_lease ON events (agent_id, lease_until)
                     WHERE status = 'delivering';",
            )?;
        }
        if step(5) {
            // Schema 5: an event queued again by an explicit replay says so
            // in its next event frame (`"replay": true`) until it is acked.
            tx.execute_batch("ALTER TABLE events ADD COLUMN replay INTEGER NOT NULL DEFAULT 0;")?;
        }
        if step(6) {
            // Schema 6: a replay gives the event a fresh retry budget; the
            // attempts before it (`retry_base`) no longer count against it,
            // while the attempt number itself goes on.
            tx.execute_batch(
                "ALTER TABLE events ADD COLUMN retry_base INTEGER NOT NULL DEFAULT 0;",
            )?;
        }
        if step(7) {
            // Schema 7: agents' callback URLs for push delivery.
            callbacks::migrate_to_7(&tx)?;
        }
        if step(8) {
            // Schema 8: an event's dedup key (its 128-bit hash) and the end
            // of its window live in its row, written with it; the `dedup`
            // table keeps only keys of events deleted inside their window
            // (see `dedup.rs`). Its rows from before stay and are read.
            // The partial index is what start-up reads them from: appended
            // in window order, and covering, so the bodies are not read.
            tx.execute_batch(
                "ALTER TABLE events ADD COLUMN dedup_key BLOB;
                 ALTER TABLE events ADD COLUMN dedup_until INTEGER;
                 CREATE INDEX events_dedup ON events (dedup_until, dedup_key)
                     WHERE dedup_key IS NOT NULL;",
            )?;
        }
        if step(9) {
            migrate_to_9(&tx)?;
        }
        tx.execute_batch(&format!("PRAGMA user_version = {target}"))?;
        tx.commit()?;
    }
    Ok(())
}

/// Schema 9 (issue 13): what a lease and an ack rewrite is small.
///
/// - **The body and headers move to `event_bodies`**, keyed by the event's
///   `seq` and written once. SQLite rewrites a whole row to change one
///   column, so every lease and ack copied the body (about 1 KB) and
///   dirtied a page holding three events; the `events` row is now about
///   150 bytes, and a page holds thirty.
/// - **Each index holds only the rows its queries read**, and a status
///   change touches only the partial indexes of the two statuses (every
///   index an event's life touches costs a page per commit):
///   - `events_agent (agent_id)` (its entries end in `seq`, the rowid): an
///     agent's events newest first, for `events list`; written once;
///   - `events_pending (agent_id, seq, next_attempt_at)`, pending only: a
///     claim takes the oldest due ones in order, and the next due time is
///     read from the same entries, without the rows;
///   - `events_lease`, delivering only, and `events_dedup`: as before;
///   - `events_done (status, updated_at)`, finished events only: the
///     retention sweep and the dashboard's failure counts. Queries name
///     its condition verbatim ([`DONE`]): SQLite uses a partial index
///     only then.
///
///   They replace `events_queue (agent_id, status, seq)` and `events_age
///   (status, updated_at)`, which held every event and moved it at every
///   lease and ack, and `events_due`.
///
/// The table is rebuilt (SQLite cannot drop columns in place): a large
/// database takes a while to upgrade once, at the first start.
fn migrate_to_9(tx: &Connection) -> Result<(), StoreError> {
    // The rebuilt table keeps the old one's AUTOINCREMENT high-water mark,
    // so no seq is ever handed out twice.
    let high: Option<i64> = tx
        .query_row(
            "SELECT seq FROM sqlite_sequence WHERE name = 'events'",
            [],
            |r| r.get(0),
        )
        .optional()?;
    tx.execute_batch(&format!(
        "CREATE TABLE events_v9 (
             seq             INTEGER PRIMARY KEY AUTOINCREMENT,
             id              TEXT NOT NULL UNIQUE,
             agent_id        TEXT NOT NULL,
             event_type      TEXT NOT NULL,
             received_at     INTEGER NOT NULL,
             status          TEXT NOT NULL,
             attempts        INTEGER NOT NULL DEFAULT 0,
             next_attempt_at INTEGER NOT NULL,
             lease_session   TEXT,
             lease_until     INTEGER,
             last_error      TEXT,
             updated_at      INTEGER NOT NULL,
             replay          INTEGER NOT NULL DEFAULT 0,
             retry_base      INTEGER NOT NULL DEFAULT 0,
             dedup_key       BLOB,
             dedup_until     INTEGER
         );
         CREATE TABLE event_bodies (
             seq     INTEGER PRIMARY KEY,
             headers TEXT NOT NULL,
             body    BLOB NOT NULL
         );
         INSERT INTO events_v9 (seq, id, agent_id, event_type, received_at, status, attempts,
                                next_attempt_at, lease_session, lease_until, last_error,
                                updated_at, replay, retry_base, dedup_key, dedup_until)
             SELECT seq, id, agent_id, event_type, received_at, status, attempts,
                    next_attempt_at, lease_session, lease_until, last_error,
                    updated_at, replay, retry_base, dedup_key, dedup_until
             FROM events ORDER BY seq;
         INSERT INTO event_bodies (seq, headers, body)
             SELECT seq, headers, body FROM events ORDER BY seq;
         DROP TABLE events;
         ALTER TABLE events_v9 RENAME TO events;
         CREATE INDEX events_agent ON events (agent_id);
         CREATE INDEX events_pending ON events (agent_id, seq, next_attempt_at)
             WHERE status = 'pending';
         CREATE INDEX events_lease ON events (agent_id, lease_until)
             WHERE status = 'delivering';
         CREATE INDEX events_done ON events (status, updated_at) WHERE {DONE};
         CREATE INDEX events_dedup ON events (dedup_until, dedup_key)
             WHERE dedup_key IS NOT NULL;"
    ))?;
    if let Some(high) = high {
        tx.execute(
            "UPDATE sqlite_sequence SET seq = MAX(seq, ?1) WHERE name = 'events'",
            [high],
        )?;
        tx.execute(
            "INSERT INTO sqlite_sequence (name, seq)
             SELECT 'events', ?1 WHERE NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = 'events')",
            [high],
        )?;
    }
    Ok(())
}

/// The condition of the partial index `events_done`: an event that is
/// delivered, skipped, expired or failed. A query that reads the index
/// must hold this term as written.
pub(super) const DONE: &str = "status IN ('delivered', 'skipped', 'expired', 'failed')";
