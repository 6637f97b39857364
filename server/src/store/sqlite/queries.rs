//! The SQL of the SQLite backend. Each function runs on a connection the
//! caller provides: inside the writer's transaction for writes, on a pooled
//! read-only connection for reads.

use lobster_shared::ids::{AgentId, EventId, RelayId, SessionId, WorkspaceName};
use rusqlite::{Connection, OptionalExtension, params};

use super::schema::DONE;
use crate::store::*;

fn headers_json(headers: &[(String, String)]) -> String {
    serde_json::to_string(headers).expect("string pairs always serialize")
}

fn headers_from(text: &str) -> Vec<(String, String)> {
    serde_json::from_str(text).unwrap_or_default()
}

#[cfg(test)]
pub(super) fn insert_event(c: &Connection, e: &NewEvent) -> Result<Inserted, StoreError> {
    store_event(c, e, None, None)?;
    Ok(Inserted::New(e.id.clone()))
}

/// Stores a new event: `pending`, or with `lease` (session, lease end)
/// already leased to a session as its first attempt; `dedup` is its key's
/// hash and the end of its window (see `dedup.rs`). Returns its `seq`.
pub(super) fn store_event(
    c: &Connection,
    e: &NewEvent,
    lease: Option<(&str, Millis)>,
    dedup: Option<(u128, Millis)>,
) -> Result<i64, StoreError> {
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
        "INSERT INTO events (id, agent_id, event_type, received_at, status, attempts,
                             lease_session, lease_until, next_attempt_at, updated_at,
                             dedup_key, dedup_until)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?4, ?4, ?9, ?10)",
    )?
    .execute(params![
        e.id.as_str(),
        e.agent_id.as_str(),
        e.event_type,
        e.received_at,
        status,
        attempts,
        session_id,
        lease_until,
        dedup_key,
        dedup_until
    ])?;
    let seq = c.last_insert_rowid();
    c.prepare_cached("INSERT INTO event_bodies (seq, headers, body) VALUES (?1, ?2, ?3)")?
        .execute(params![seq, headers_json(&e.headers), &e.body[..]])?;
    Ok(seq)
}

/// An event's headers and body, kept apart from its row (`event_bodies`).
pub(super) struct Body {
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// The headers and body of the event `seq`.
pub(super) fn body_of(c: &Connection, seq: i64) -> Result<Body, StoreError> {
    Ok(
        c.prepare_cached("SELECT headers, body FROM event_bodies WHERE seq = ?1")?
            .query_row(params![seq], |r| {
                Ok(Body {
                    headers: headers_from(&r.get::<_, String>(0)?),
                    body: r.get(1)?,
                })
            })?,
    )
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
        Some(status) => {
            if status == "delivered" {
                // The delivery lived in the row (see `leases::ack`): it
                // becomes a row of the history before the row changes.
                c.prepare_cached(
                    "INSERT INTO attempts (event_id, attempt, session_id, at, outcome)
                     SELECT id, attempts, lease_session, updated_at, 'delivered' FROM events e
                     WHERE id = ?1 AND NOT EXISTS (
                         SELECT 1 FROM attempts a WHERE a.event_id = e.id
                           AND a.attempt = e.attempts AND a.outcome = 'delivered')",
                )?
                .execute(params![id])?;
            }
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
            "SELECT e.id, e.event_type, e.status, e.received_at, e.attempts, b.headers, b.body,
                    e.lease_session, e.updated_at
             FROM events e JOIN event_bodies b ON b.seq = e.seq
             WHERE e.id = ?1 AND e.agent_id = ?2",
        )?
        .query_row(params![id, agent_id], |r| {
            Ok((
                summary_from_row(r)?,
                r.get::<_, String>(5)?,
                r.get::<_, Vec<u8>>(6)?,
                r.get::<_, Option<String>>(7)?,
                r.get::<_, Millis>(8)?,
            ))
        })
        .optional()?;
    let Some((summary, headers, body, session, updated_at)) = row else {
        return Ok(None);
    };
    let mut history: Vec<AttemptRecord> = c
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
    // The delivery that ended it is kept in the event's row (see
    // `leases::ack`); a database from before schema 10 has it as a row.
    let recorded = history
        .last()
        .is_some_and(|last| last.outcome == "delivered" && last.attempt == summary.attempts);
    if summary.status == EventStatus::Delivered.as_str() && !recorded {
        history.push(AttemptRecord {
            attempt: summary.attempts,
            at: updated_at,
            session_id: session.map(SessionId::from_stored),
            outcome: "delivered".into(),
            error: None,
        });
    }
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
                (SELECT COUNT(*) FROM events e WHERE e.agent_id = a.agent_id AND e.status = 'pending')
                  + (SELECT COUNT(*) FROM events e WHERE e.agent_id = a.agent_id AND e.status = 'delivering')
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

/// Retention: expires undelivered events older than `retention`, then
/// deletes finished events (and their attempts) last changed before it, or
/// before `failed_retention` for failed ones.
pub(super) fn sweep(
    c: &Connection,
    retention_ms: Millis,
    failed_ms: Millis,
    now: Millis,
) -> Result<u64, StoreError> {
    let cutoff = now - retention_ms;
    let failed_cutoff = now - failed_ms;
    let mut changed = 0;
    // One statement per status, each written out: SQLite reads a partial
    // index only for a query that states its condition.
    for expire in [
        "UPDATE events SET status = 'expired', lease_session = NULL, lease_until = NULL, updated_at = ?2
         WHERE status = 'pending' AND received_at < ?1",
        "UPDATE events SET status = 'expired', lease_session = NULL, lease_until = NULL, updated_at = ?2
         WHERE status = 'delivering' AND received_at < ?1",
    ] {
        changed += c
            .prepare_cached(expire)?
            .execute(params![cutoff, now])?;
    }
    // Each a range of `events_done`: (status, updated_at before the cutoff).
    let old = format!("{DONE} AND status = ?1 AND updated_at < ?2");
    let done = [
        ("delivered", cutoff),
        ("skipped", cutoff),
        ("expired", cutoff),
        ("failed", failed_cutoff),
    ];
    for (status, before) in done {
        c.prepare_cached(&format!(
            "DELETE FROM attempts WHERE event_id IN (SELECT id FROM events WHERE {old})"
        ))?
        .execute(params![status, before])?;
        // An event deleted inside its dedup window (a retention under ten
        // minutes) leaves its key in the `dedup` table, for the next start.
        c.prepare_cached(&format!(
            "INSERT OR REPLACE INTO dedup (agent_id, key, event_id, expires_at)
             SELECT agent_id, 'h:' || lower(hex(dedup_key)), id, dedup_until FROM events
             WHERE {old} AND dedup_key IS NOT NULL AND dedup_until > ?3"
        ))?
        .execute(params![status, before, now])?;
        c.prepare_cached(&format!(
            "DELETE FROM event_bodies WHERE seq IN (SELECT seq FROM events WHERE {old})"
        ))?
        .execute(params![status, before])?;
        changed += c
            .prepare_cached(&format!("DELETE FROM events WHERE {old}"))?
            .execute(params![status, before])?;
    }
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

    /// A `push` event of agt_1 with the body `{}`.
    fn push_event(id: &str) -> NewEvent {
        NewEvent {
            id: EventId::from_stored(id),
            agent_id: AgentId::from_stored("agt_1"),
            event_type: "push".into(),
            received_at: 500,
            headers: Vec::new(),
            body: Bytes::from_static(b"{}"),
            dedup_key: None,
        }
    }

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
            insert_event(&c, &push_event(&format!("evt_{n}"))).unwrap();
        }
        assert_eq!(claim_with(&c, 1).deliveries.len(), 1);
        assert_eq!(claim_with(&c, 3).deliveries.len(), 3);
        assert_eq!(claim_with(&c, 7).deliveries.len(), 2);
        let stmt = c.prepare_cached(&claim_sql(&[])).unwrap();
        assert_eq!(stmt.get_status(StatementStatus::RePrepare), 0);
    }

    /// The plan's steps, joined; every parameter bound to 0.
    fn plan(c: &Connection, sql: &str) -> String {
        let mut stmt = c.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
        for i in 1..=stmt.parameter_count() {
            stmt.raw_bind_parameter(i, 0).unwrap();
        }
        let mut rows = stmt.raw_query();
        let mut steps = Vec::new();
        while let Some(row) = rows.next().unwrap() {
            steps.push(row.get::<_, String>(3).unwrap());
        }
        steps.join("; ")
    }

    /// Every read on the hot path and the sweep is a seek in the index made
    /// for it (schema 9), never a scan of the table or of another index.
    #[test]
    fn each_query_reads_the_index_made_for_it() {
        let mut c = Connection::open_in_memory().unwrap();
        super::super::tune(&mut c).unwrap();
        super::super::migrate(&mut c).unwrap();
        let cases = [
            (
                "SELECT MIN(next_attempt_at) FROM events
                  WHERE agent_id = ?1 AND status = 'pending' AND next_attempt_at > ?2",
                "SEARCH events USING COVERING INDEX events_pending (agent_id=?)",
            ),
            (
                "SELECT id FROM events
                  WHERE agent_id = ?1 AND status = 'delivering' AND lease_until <= ?2",
                "SEARCH events USING INDEX events_lease (agent_id=? AND lease_until<?)",
            ),
            (
                "SELECT id FROM events WHERE agent_id = ?1 AND seq < ?2
                  ORDER BY seq DESC LIMIT 10",
                "SEARCH events USING INDEX events_agent (agent_id=? AND rowid<?)",
            ),
            (
                &format!("SELECT id FROM events WHERE {DONE} AND status = ?1 AND updated_at < ?2"),
                "SEARCH events USING INDEX events_done (status=? AND updated_at<?)",
            ),
            (
                "SELECT COUNT(*) FROM events WHERE agent_id = ?1 AND status = 'pending'",
                "SEARCH events USING COVERING INDEX events_pending (agent_id=?)",
            ),
        ];
        for (sql, wanted) in cases {
            let got = plan(&c, sql);
            assert!(
                got.contains(wanted),
                "{sql}\n  plan: {got}\n  wanted: {wanted}"
            );
        }
        let claim = plan(&c, &claim_sql(&["push.*".into()]));
        assert!(
            claim.contains("USING INDEX events_pending (agent_id=?)"),
            "{claim}"
        );
        assert!(!claim.contains("SCAN"), "{claim}");
    }

    fn index_sql(c: &Connection, name: &str) -> String {
        c.query_row(
            "SELECT sql FROM sqlite_master WHERE type = 'index' AND name = ?1",
            [name],
            |r| r.get(0),
        )
        .unwrap()
    }

    /// A schema 3 database (full due/lease indexes) gets today's partial ones.
    #[test]
    fn a_schema_3_database_gets_todays_indexes() {
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
        assert!(index_sql(&c, "events_pending").ends_with("WHERE status = 'pending'"));
        assert!(index_sql(&c, "events_lease").ends_with("WHERE status = 'delivering'"));
        assert!(index_sql(&c, "events_done").ends_with(&format!("WHERE {DONE}")));
        // Schema 9 dropped the indexes every lease and ack moved entries in.
        let gone: i64 = c
            .query_row(
                "SELECT COUNT(*) FROM sqlite_master
                 WHERE name IN ('events_queue', 'events_age', 'events_due')",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(gone, 0);
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

    /// A schema 8 database with events in several states: the upgrade
    /// moves the bodies out and builds the new indexes over them, and the
    /// queue, the listing, the details and the sweep see the same events.
    #[test]
    fn a_schema_8_database_keeps_its_events_through_the_upgrade() {
        let mut c = Connection::open_in_memory().unwrap();
        super::super::tune(&mut c).unwrap();
        super::super::schema::migrate_to(&mut c, 8).unwrap();
        for (n, status) in ["delivered", "pending", "failed", "pending"]
            .iter()
            .enumerate()
        {
            c.execute(
                "INSERT INTO events (id, agent_id, event_type, received_at, headers, body, status,
                                     next_attempt_at, updated_at)
                 VALUES (?1, 'agt_1', 'push', 500, '[[\"x-n\",\"1\"]]', ?2, ?3, 500, 500)",
                params![format!("evt_{n}"), format!("body {n}").into_bytes(), status],
            )
            .unwrap();
        }
        // The newest event was deleted: its seq is never handed out again.
        c.execute("DELETE FROM events WHERE id = 'evt_3'", [])
            .unwrap();
        super::super::migrate(&mut c).unwrap();
        let detail = event_detail(&c, "agt_1", "evt_2").unwrap().unwrap();
        assert_eq!(detail.body, b"body 2");
        assert_eq!(detail.headers, [("x-n".to_owned(), "1".to_owned())]);
        let next = push_event("evt_4");
        assert_eq!(store_event(&c, &next, None, None).unwrap(), 5);
        let claimed: Vec<_> = claim_with(&c, 10)
            .deliveries
            .into_iter()
            .map(|d| d.id)
            .collect();
        assert_eq!(claimed, ["evt_1", "evt_4"]);
        let query = EventQuery {
            agent_id: AgentId::from_stored("agt_1"),
            status: None,
            before: None,
            limit: 10,
        };
        assert_eq!(list_events(&c, &query).unwrap().len(), 4);
        // A day later the delivered event goes; the failed one stays for
        // its own, longer retention; the leased ones expire.
        let bodies = |c: &Connection| -> i64 {
            c.query_row("SELECT COUNT(*) FROM event_bodies", [], |r| r.get(0))
                .unwrap()
        };
        assert_eq!(bodies(&c), 4);
        let changed = sweep(&c, 1_000, 100_000_000, 86_400_000).unwrap();
        assert_eq!(changed, 3);
        assert_eq!(bodies(&c), 3, "the deleted event's body went with it");
        let left: Vec<String> = c
            .prepare("SELECT status FROM events ORDER BY seq")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(left, ["expired", "failed", "expired"]);
    }

    /// An event delivered before schema 10 has its delivery as a row of
    /// `attempts`: its history shows it once, and a replay does not write
    /// it a second time.
    #[test]
    fn a_delivery_recorded_before_schema_10_is_shown_once() {
        let mut c = Connection::open_in_memory().unwrap();
        super::super::tune(&mut c).unwrap();
        super::super::schema::migrate_to(&mut c, 9).unwrap();
        store_event(&c, &push_event("evt_1"), Some(("ses_1", 9_000)), None).unwrap();
        // What `ack` did up to schema 9.
        c.execute_batch(
            "UPDATE events SET status = 'delivered', lease_session = NULL, lease_until = NULL,
                 updated_at = 700 WHERE id = 'evt_1';
             INSERT INTO attempts (event_id, attempt, session_id, at, outcome)
                 VALUES ('evt_1', 1, 'ses_1', 700, 'delivered');",
        )
        .unwrap();
        super::super::migrate(&mut c).unwrap();
        let outcomes = |c: &Connection| -> Vec<(u32, String)> {
            event_detail(c, "agt_1", "evt_1")
                .unwrap()
                .unwrap()
                .history
                .into_iter()
                .map(|a| (a.attempt, a.outcome))
                .collect()
        };
        assert_eq!(outcomes(&c), [(1, "delivered".to_owned())]);
        assert_eq!(
            replay(&c, "agt_1", "evt_1", 800).unwrap(),
            ReplayOutcome::Queued
        );
        assert_eq!(outcomes(&c), [(1, "delivered".to_owned())]);
    }
}
