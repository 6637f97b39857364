//! The SQL of the SQLite backend. Each function runs on a connection the
//! caller provides: inside the writer's transaction for writes, on a pooled
//! read-only connection for reads.

use lobster_shared::ids::{AgentId, EventId, RelayId, SessionId, WorkspaceName};
use rusqlite::{Connection, OptionalExtension, params};

use crate::store::*;

fn headers_json(headers: &[(String, String)]) -> String {
    serde_json::to_string(headers).expect("string pairs always serialize")
}

pub(super) fn headers_from(text: &str) -> Vec<(String, String)> {
    serde_json::from_str(text).unwrap_or_default()
}

#[cfg(test)]
fn insert_event(c: &Connection, e: &NewEvent) -> Result<Inserted, StoreError> {
    store_event(c, e, None, None)?;
    Ok(Inserted::New(e.id.clone()))
}

/// Stores a new event: `pending`, or with `lease` (session, lease end)
/// already leased to a session as its first attempt; `dedup` is its key's
/// hash and the end of its window (see `dedup.rs`).
pub(super) fn store_event(
    c: &Connection,
    e: &NewEvent,
    lease: Option<(&str, Millis)>,
    dedup: Option<(u128, Millis)>,
) -> Result<(), StoreError> {
    let headers = headers_json(&e.headers);
    let (dedup_key, dedup_until) = match dedup {
        Some((hash, until)) => (Some(hash.to_be_bytes()), Some(until)),
        None => (None, None),
    };
    // One statement for both: a pushed event is stored already leased, as
    // its first attempt.
    let (status, attempts, session_id, lease_until) = match lease {
        None => ("pending", 0, None, None),
        Some((session_id, until)) => ("delivering", 1, Some(session_id), Some(until)),
    };
    c.prepare_cached(
        "INSERT INTO events (id, agent_id, event_type, received_at, headers, body, status,
                             attempts, lease_session, lease_until, next_attempt_at, updated_at,
                             dedup_key, dedup_until)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?4, ?4, ?11, ?12)",
    )?
    .execute(params![
        e.id.as_str(),
        e.agent_id.as_str(),
        e.event_type,
        e.received_at,
        headers,
        &e.body[..],
        status,
        attempts,
        session_id,
        lease_until,
        dedup_key,
        dedup_until
    ])?;
    Ok(())
}

/// `event_type GLOB ?` clauses for the session's patterns. Patterns are
/// validated at the edge to hold no `[`, so GLOB sees only `*` and `?`.
pub(super) fn pattern_clause(patterns: &[String], first_param: usize) -> String {
    if patterns.is_empty() {
        return String::new();
    }
    let ors: Vec<String> = (0..patterns.len())
        .map(|i| format!("event_type GLOB ?{}", first_param + i))
        .collect();
    format!(" AND ({})", ors.join(" OR "))
}

pub(super) fn replay(
    c: &Connection,
    agent_id: &str,
    id: &str,
    now: Millis,
) -> Result<ReplayOutcome, StoreError> {
    let status: Option<String> = c
        .prepare_cached("SELECT status FROM events WHERE id = ?1 AND agent_id = ?2")?
        .query_row(params![id, agent_id], |r| r.get(0))
        .optional()?;
    match status.as_deref() {
        None => Ok(ReplayOutcome::NotFound),
        Some("delivering") => Ok(ReplayOutcome::InFlight),
        Some(_) => {
            c.prepare_cached(
                "UPDATE events SET status = 'pending', next_attempt_at = ?2, updated_at = ?2,
                     lease_session = NULL, replay = 1, retry_base = attempts
                 WHERE id = ?1",
            )?
            .execute(params![id, now])?;
            Ok(ReplayOutcome::Queued)
        }
    }
}

pub(super) fn list_events(c: &Connection, q: &EventQuery) -> Result<Vec<EventSummary>, StoreError> {
    let before: i64 = match &q.before {
        None => i64::MAX,
        Some(id) => c
            .prepare_cached("SELECT seq FROM events WHERE id = ?1 AND agent_id = ?2")?
            .query_row(params![id.as_str(), q.agent_id.as_str()], |r| r.get(0))
            .optional()?
            .unwrap_or(i64::MAX),
    };
    let status = q.status.map(EventStatus::as_str);
    let mut stmt = c.prepare_cached(
        "SELECT id, event_type, status, received_at, attempts FROM events
         WHERE agent_id = ?1 AND seq < ?2 AND (?3 IS NULL OR status = ?3)
         ORDER BY seq DESC LIMIT ?4",
    )?;
    let rows = stmt
        .query_map(
            params![q.agent_id.as_str(), before, status, q.limit as i64],
            summary_from_row,
        )?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}

fn summary_from_row(r: &rusqlite::Row) -> rusqlite::Result<EventSummary> {
    Ok(EventSummary {
        id: EventId::from_stored(r.get::<_, String>(0)?),
        event_type: r.get(1)?,
        status: r.get(2)?,
        received_at: r.get(3)?,
        attempts: r.get(4)?,
    })
}

pub(super) fn event_detail(
    c: &Connection,
    agent_id: &str,
    id: &str,
) -> Result<Option<EventDetail>, StoreError> {
    let row = c
        .prepare_cached(
            "SELECT id, event_type, status, received_at, attempts, headers, body
             FROM events WHERE id = ?1 AND agent_id = ?2",
        )?
        .query_row(params![id, agent_id], |r| {
            Ok((
                summary_from_row(r)?,
                r.get::<_, String>(5)?,
                r.get::<_, Vec<u8>>(6)?,
            ))
        })
        .optional()?;
    let Some((summary, headers, body)) = row else {
        return Ok(None);
    };
    let history = c
        .prepare_cached(
            "SELECT attempt, at, session_id, outcome, error FROM attempts WHERE event_id = ?1 ORDER BY rowid",
        )?
        .query_map(params![id], |r| {
            Ok(AttemptRecord {
                attempt: r.get(0)?,
                at: r.get(1)?,
                session_id: r.get::<_, Option<String>>(2)?.map(SessionId::from_stored),
                outcome: r.get(3)?,
                error: r.get(4)?,
            })
        })?
        .collect::<Result<_, _>>()?;
    Ok(Some(EventDetail {
        summary,
        headers: headers_from(&headers),
        body,
        history,
    }))
}

pub(super) fn create_agent(c: &Connection, a: &NewAgent, now: Millis) -> Result<(), StoreError> {
    c.prepare_cached(
        "INSERT INTO agents (agent_id, name, workspace, relay_id, key_hash, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![a.agent.agent_id.as_str(), a.agent.name, a.agent.workspace.as_str(), a.agent.relay_id.as_str(), a.key_hash, now])?;
    Ok(())
}

pub(super) fn revoke_agent(
    c: &Connection,
    agent_id: &str,
    now: Millis,
) -> Result<bool, StoreError> {
    let changed = c
        .prepare_cached(
            "UPDATE agents SET revoked_at = ?2 WHERE agent_id = ?1 AND revoked_at IS NULL",
        )?
        .execute(params![agent_id, now])?;
    Ok(changed > 0)
}

pub(super) fn touch_agents(c: &Connection, seen: &[(String, Millis)]) -> Result<(), StoreError> {
    let mut touch = c.prepare_cached("UPDATE agents SET last_seen = ?2 WHERE agent_id = ?1")?;
    for (agent_id, at) in seen {
        touch.execute(params![agent_id, at])?;
    }
    Ok(())
}

/// `column` is one of our own column names, never user input.
pub(super) fn agent_where(
    c: &Connection,
    column: &'static str,
    value: &str,
) -> Result<Option<Agent>, StoreError> {
    let sql = format!(
        "SELECT agent_id, name, workspace, relay_id FROM agents WHERE {column} = ?1 AND revoked_at IS NULL"
    );
    Ok(c.prepare_cached(&sql)?
        .query_row(params![value], agent_from_row)
        .optional()?)
}

fn agent_from_row(r: &rusqlite::Row) -> rusqlite::Result<Agent> {
    Ok(Agent {
        agent_id: AgentId::from_stored(r.get::<_, String>(0)?),
        name: r.get(1)?,
        workspace: WorkspaceName::from_stored(r.get::<_, String>(2)?),
        relay_id: RelayId::from_stored(r.get::<_, String>(3)?),
    })
}

pub(super) fn list_agents(c: &Connection) -> Result<Vec<AgentStats>, StoreError> {
    let mut stmt = c.prepare_cached(
        "SELECT a.agent_id, a.name, a.workspace, a.relay_id, a.created_at, a.last_seen,
                (SELECT COUNT(*) FROM events e WHERE e.agent_id = a.agent_id AND e.status IN ('pending', 'delivering'))
         FROM agents a WHERE a.revoked_at IS NULL ORDER BY a.created_at",
    )?;
    let rows = stmt
        .query_map([], |r| {
            Ok(AgentStats {
                agent: agent_from_row(r)?,
                created_at: r.get(4)?,
                last_seen: r.get(5)?,
                pending_events: r.get::<_, i64>(6)? as u64,
            })
        })?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}

pub(super) fn pending_count(c: &Connection, agent_id: &str) -> Result<u64, StoreError> {
    let n: i64 = c
        .prepare_cached(
            "SELECT (SELECT COUNT(*) FROM events WHERE agent_id = ?1 AND status = 'pending')
                  + (SELECT COUNT(*) FROM events WHERE agent_id = ?1 AND status = 'delivering')",
        )?
        .query_row(params![agent_id], |r| r.get(0))?;
    Ok(n as u64)
}

pub(super) fn sweep(
    c: &Connection,
    retention_ms: Millis,
    failed_ms: Millis,
    now: Millis,
) -> Result<u64, StoreError> {
    let cutoff = now - retention_ms;
    let failed_cutoff = now - failed_ms;
    let mut changed = c.execute(
        "UPDATE events SET status = 'expired', lease_session = NULL, lease_until = NULL, updated_at = ?2
         WHERE status IN ('pending', 'delivering') AND received_at < ?1",
        params![cutoff, now],
    )?;
    changed += c.execute(
        "DELETE FROM attempts WHERE event_id IN (SELECT id FROM events
             WHERE (status IN ('delivered', 'expired', 'skipped') AND updated_at < ?1)
                OR (status = 'failed' AND updated_at < ?2))",
        params![cutoff, failed_cutoff],
    )?;
    // An event deleted inside its dedup window (a retention under ten
    // minutes) leaves its key in the `dedup` table, for the next start.
    c.execute(
        "INSERT OR REPLACE INTO dedup (agent_id, key, event_id, expires_at)
         SELECT agent_id, 'h:' || lower(hex(dedup_key)), id, dedup_until FROM events
         WHERE dedup_key IS NOT NULL AND dedup_until > ?3
           AND ((status IN ('delivered', 'expired', 'skipped') AND updated_at < ?1)
             OR (status = 'failed' AND updated_at < ?2))",
        params![cutoff, failed_cutoff, now],
    )?;
    changed += c.execute(
        "DELETE FROM events
         WHERE (status IN ('delivered', 'expired', 'skipped') AND updated_at < ?1)
            OR (status = 'failed' AND updated_at < ?2)",
        params![cutoff, failed_cutoff],
    )?;
    changed += c.execute("DELETE FROM dedup WHERE expires_at <= ?1", params![now])?;
    Ok(changed as u64)
}

pub(super) fn revoked_since(c: &Connection, since: Millis) -> Result<Vec<String>, StoreError> {
    let mut stmt = c.prepare_cached("SELECT agent_id FROM agents WHERE revoked_at >= ?1")?;
    let ids = stmt
        .query_map(params![since], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use rusqlite::StatementStatus;

    use super::super::leases::{claim, claim_sql};
    use super::*;

    fn claim_with(c: &Connection, limit: usize) -> Claim {
        let req = ClaimRequest {
            agent_id: AgentId::from_stored("agt_1"),
            session_id: SessionId::from_stored("ses_1"),
            limit,
            lease_ms: 30_000,
            patterns: Vec::new(),
            port: None,
            requeue_except: None,
        };
        claim(c, &req, 5, 1_000).unwrap()
    }

    /// A lease with a different window (and the cache clearing the bindings
    /// in between) must reuse the planned statement: re-preparing it on every
    /// lease cost a fifth of the relay's CPU in a reconnect storm.
    #[test]
    fn leases_with_different_limits_reuse_the_prepared_statement() {
        let mut c = Connection::open_in_memory().unwrap();
        super::super::tune(&mut c).unwrap();
        super::super::migrate(&mut c).unwrap();
        for n in 0..6 {
            let event = NewEvent {
                id: EventId::from_stored(format!("evt_{n}")),
                agent_id: AgentId::from_stored("agt_1"),
                event_type: "push".into(),
                received_at: 500,
                headers: Vec::new(),
                body: Bytes::from_static(b"{}"),
                dedup_key: None,
            };
            insert_event(&c, &event).unwrap();
        }
        assert_eq!(claim_with(&c, 1).deliveries.len(), 1);
        assert_eq!(claim_with(&c, 3).deliveries.len(), 3);
        assert_eq!(claim_with(&c, 7).deliveries.len(), 2);
        let stmt = c.prepare_cached(&claim_sql(&[])).unwrap();
        assert_eq!(stmt.get_status(StatementStatus::RePrepare), 0);
    }

    fn plan(c: &Connection, sql: &str) -> String {
        let mut stmt = c.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
        let rows = stmt
            .query_map(params!["agt_1", 1_000, 0], |r| r.get::<_, String>(3))
            .unwrap();
        rows.collect::<Result<Vec<_>, _>>().unwrap().join("; ")
    }

    /// The retry and lease-expiry lookups each lease makes are seeks in the
    /// partial indexes, not scans of the agent's events.
    #[test]
    fn due_times_and_expired_leases_are_found_through_the_partial_indexes() {
        let mut c = Connection::open_in_memory().unwrap();
        super::super::tune(&mut c).unwrap();
        super::super::migrate(&mut c).unwrap();
        let due = plan(
            &c,
            "SELECT MIN(next_attempt_at) FROM events
              WHERE agent_id = ?1 AND status = 'pending' AND next_attempt_at > ?2 AND ?3 = 0",
        );
        assert!(due.contains("USING COVERING INDEX events_due"), "{due}");
        let expired = plan(
            &c,
            "SELECT id FROM events
              WHERE agent_id = ?1 AND status = 'delivering' AND lease_until <= ?2 AND ?3 = 0",
        );
        assert!(expired.contains("USING INDEX events_lease"), "{expired}");
    }

    fn index_sql(c: &Connection, name: &str) -> String {
        c.query_row(
            "SELECT sql FROM sqlite_master WHERE type = 'index' AND name = ?1",
            [name],
            |r| r.get(0),
        )
        .unwrap()
    }

    /// A schema 3 database (full due/lease indexes) gets the partial ones.
    #[test]
    fn a_schema_3_database_gets_the_partial_indexes() {
        let mut c = Connection::open_in_memory().unwrap();
        c.execute_batch(include_str!("schema.sql")).unwrap();
        super::super::workspaces::migrate_to_2(&c).unwrap();
        c.execute_batch(
            "CREATE INDEX events_due ON events (agent_id, status, next_attempt_at);
             CREATE INDEX events_lease ON events (agent_id, status, lease_until);
             PRAGMA user_version = 3;",
        )
        .unwrap();
        super::super::migrate(&mut c).unwrap();
        assert!(index_sql(&c, "events_due").ends_with("WHERE status = 'pending'"));
        assert!(index_sql(&c, "events_lease").ends_with("WHERE status = 'delivering'"));
        let version: i32 = c
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(version, super::super::SCHEMA_VERSION);
        // Schema 7's callbacks table arrived with the upgrade.
        let callbacks: i64 = c
            .query_row(
                "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'callbacks'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(callbacks, 1);
        // Schema 5's replay column arrived with the upgrade.
        let replay: i64 = c
            .query_row(
                "SELECT COUNT(*) FROM pragma_table_info('events') WHERE name = 'replay'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(replay, 1);
    }
}
