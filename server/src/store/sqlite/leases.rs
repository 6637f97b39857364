//! The lease life cycle in SQL: claims (with expiry of old leases), acks,
//! nacks and releases. Run on the writer thread (`super::writer`).

use bytes::Bytes;
use lobster_shared::ids::EventId;
use rusqlite::{Connection, OptionalExtension, params};

use super::queries::{Body, body_of, pattern_clause};
use crate::retry::RetryPolicy;
use crate::store::*;

/// Returns expired leases of one agent to the queue (or fails them when the
/// attempts are used up), recording a timeout attempt for each.
///
/// `lease_session` is kept on the requeued row: the session that let the
/// lease time out is still holding the event (a paused laptop, a stopped
/// process) and would get it twice, so the claim offers it only to other
/// sessions; the same listener gets it again once it has reconnected (a new
/// session id). A late ack from the holder still marks it delivered.
fn expire_leases(
    c: &Connection,
    agent_id: &str,
    max_attempts: u32,
    now: Millis,
) -> Result<(), StoreError> {
    c.prepare_cached(
        "INSERT INTO attempts (event_id, attempt, session_id, at, outcome, error)
         SELECT id, attempts, lease_session, ?2, 'timeout', 'not acked within the ack timeout'
         FROM events WHERE agent_id = ?1 AND status = 'delivering' AND lease_until <= ?2",
    )?
    .execute(params![agent_id, now])?;
    c.prepare_cached(
        "UPDATE events SET status = CASE WHEN attempts - retry_base >= ?3 THEN 'failed' ELSE 'pending' END,
             lease_until = NULL, next_attempt_at = ?2, updated_at = ?2,
             last_error = 'not acked within the ack timeout'
         WHERE agent_id = ?1 AND status = 'delivering' AND lease_until <= ?2",
    )?
    .execute(params![agent_id, now, max_attempts])?;
    Ok(())
}

pub(super) fn claim(
    c: &Connection,
    req: &ClaimRequest,
    max_attempts: u32,
    now: Millis,
) -> Result<Claim, StoreError> {
    claim_up_to(c, req, req.limit, max_attempts, now)
}

/// Leases up to `limit` due events of the agent to the session.
pub(super) fn claim_up_to(
    c: &Connection,
    req: &ClaimRequest,
    limit: usize,
    max_attempts: u32,
    now: Millis,
) -> Result<Claim, StoreError> {
    if let Some(sent) = &req.requeue_except {
        requeue_unsent(c, req, sent, now)?;
    }
    expire_leases(c, req.agent_id.as_str(), max_attempts, now)?;
    let mut stmt = c.prepare_cached(&claim_sql(&req.patterns))?;
    let lease_until = now + req.lease_ms;
    let window = limit as i64;
    let (agent_id, session_id) = (req.agent_id.as_str(), req.session_id.as_str());
    let mut values: Vec<&dyn rusqlite::ToSql> =
        vec![&agent_id, &session_id, &lease_until, &now, &window];
    for pattern in &req.patterns {
        values.push(pattern);
    }
    let mut rows: Vec<(i64, Delivery)> = stmt
        .query_map(values.as_slice(), |r| {
            Ok((
                r.get(0)?,
                Delivery {
                    id: EventId::from_stored(r.get::<_, String>(1)?),
                    event_type: r.get(2)?,
                    received_at: r.get(3)?,
                    attempt: r.get(4)?,
                    headers: Vec::new(),
                    body: Bytes::new(),
                    replay: r.get(5)?,
                },
            ))
        })?
        .collect::<Result<_, _>>()?;
    for (seq, delivery) in &mut rows {
        let Body { headers, body } = body_of(c, *seq)?;
        (delivery.headers, delivery.body) = (headers, body.into());
    }
    rows.sort_by_key(|(seq, _)| *seq);
    let more = rows.len() == limit && limit > 0;
    // A full claim is followed by another as soon as slots free up, so the
    // next due time (a read of every pending entry of the agent) is only
    // worth knowing once the due ones are all out.
    let next_due = if more { None } else { next_due(c, req, now)? };
    Ok(Claim {
        more,
        deliveries: rows.into_iter().map(|(_, d)| d).collect(),
        next_due,
    })
}

/// Puts the session's leases other than `sent` back in the queue, open to
/// it again (see [`ClaimRequest::requeue_except`]).
fn requeue_unsent(
    c: &Connection,
    req: &ClaimRequest,
    sent: &[EventId],
    now: Millis,
) -> Result<(), StoreError> {
    let sent = serde_json::to_string(sent).map_err(|e| StoreError::Database(e.to_string()))?;
    let params = params![req.agent_id.as_str(), req.session_id.as_str(), sent, now];
    c.prepare_cached(
        "INSERT INTO attempts (event_id, attempt, session_id, at, outcome, error)
         SELECT id, attempts, lease_session, ?4, 'interrupted', 'lease outcome unknown after a storage error'
         FROM events WHERE agent_id = ?1 AND lease_session = ?2 AND status = 'delivering'
           AND id NOT IN (SELECT value FROM json_each(?3))",
    )?
    .execute(params)?;
    // One statement per status, each read through its partial index.
    for requeue in [
        "UPDATE events SET status = 'pending', lease_session = NULL, lease_until = NULL, updated_at = ?4
         WHERE agent_id = ?1 AND lease_session = ?2 AND status = 'delivering'
           AND id NOT IN (SELECT value FROM json_each(?3))",
        "UPDATE events SET lease_session = NULL, updated_at = ?4
         WHERE agent_id = ?1 AND lease_session = ?2 AND status = 'pending'
           AND id NOT IN (SELECT value FROM json_each(?3))",
    ] {
        c.prepare_cached(requeue)?.execute(params)?;
    }
    Ok(())
}

/// The lease statement for a session with these patterns.
///
/// `INDEXED BY`: `events_pending` holds the agent's pending events in
/// acceptance order with their due times, so the oldest due few are read
/// off its front without touching the rows of events not yet due.
pub(super) fn claim_sql(patterns: &[String]) -> String {
    format!(
        "UPDATE events SET status = 'delivering', lease_session = ?2, lease_until = ?3,
             attempts = attempts + 1, updated_at = ?4
         WHERE seq IN (SELECT seq FROM events INDEXED BY events_pending
                       WHERE agent_id = ?1 AND status = 'pending' AND next_attempt_at <= ?4
                         AND (lease_session IS NULL OR lease_session <> ?2){}
                       ORDER BY seq LIMIT ?5)
         RETURNING seq, id, event_type, received_at, attempts, replay",
        pattern_clause(patterns, 6)
    )
}

fn next_due(c: &Connection, req: &ClaimRequest, now: Millis) -> Result<Option<Millis>, StoreError> {
    let sql = format!(
        "SELECT MIN(due) FROM (
             SELECT MIN(next_attempt_at) AS due FROM events
              WHERE agent_id = ?1 AND status = 'pending' AND next_attempt_at > ?2{0}
             UNION ALL
             SELECT MIN(lease_until) FROM events
              WHERE agent_id = ?1 AND status = 'delivering'{0})",
        pattern_clause(&req.patterns, 3)
    );
    let agent_id = req.agent_id.as_str();
    let mut values: Vec<&dyn rusqlite::ToSql> = vec![&agent_id, &now];
    for pattern in &req.patterns {
        values.push(pattern);
    }
    Ok(c.prepare_cached(&sql)?
        .query_row(values.as_slice(), |r| r.get(0))?)
}

/// Marks the events delivered, one statement each. The delivery is kept
/// in the event's row, not as a row of `attempts`: the acking session in
/// `lease_session`, the time in `updated_at`, the attempt in `attempts`
/// (`queries::event_detail` shows it last in the history, and a replay
/// writes it out before the row changes). Two B-tree inserts fewer per
/// event than an `attempts` row and its index.
pub(super) fn ack(
    c: &Connection,
    agent_id: &str,
    session_id: &str,
    ids: &[String],
    now: Millis,
) -> Result<(), StoreError> {
    let mut update = c.prepare_cached(
        "UPDATE events SET status = 'delivered', lease_session = ?3, lease_until = NULL,
             last_error = NULL, replay = 0, updated_at = ?4
         WHERE id = ?1 AND agent_id = ?2 AND status IN ('delivering', 'pending')",
    )?;
    for id in ids {
        update.execute(params![id, agent_id, session_id, now])?;
    }
    Ok(())
}

pub(super) fn nack(
    c: &Connection,
    agent_id: &str,
    session_id: &str,
    id: &str,
    reason: &str,
    retry: &RetryPolicy,
    now: Millis,
) -> Result<(), StoreError> {
    let attempts: Option<(u32, u32)> = c
        .prepare_cached(
            "SELECT attempts, retry_base FROM events
             WHERE id = ?1 AND agent_id = ?2 AND status = 'delivering' AND lease_session = ?3",
        )?
        .query_row(params![id, agent_id, session_id], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .optional()?;
    let Some((attempts, retry_base)) = attempts else {
        return Ok(());
    };
    // A replay gave the event a fresh budget: count from it.
    let (status, next) = match retry.next_delay(attempts.saturating_sub(retry_base)) {
        Some(delay) => ("pending", now + delay.as_millis() as Millis),
        None => ("failed", now),
    };
    let reason: String = reason.chars().take(1000).collect();
    c.prepare_cached(
        "UPDATE events SET status = ?2, next_attempt_at = ?3, lease_session = NULL, lease_until = NULL,
             last_error = ?4, updated_at = ?5
         WHERE id = ?1",
    )?
    .execute(params![id, status, next, reason, now])?;
    c.prepare_cached(
        "INSERT INTO attempts (event_id, attempt, session_id, at, outcome, error) VALUES (?1, ?2, ?3, ?4, 'nacked', ?5)",
    )?
    .execute(params![id, attempts, session_id, now, reason])?;
    Ok(())
}

pub(super) fn release(
    c: &Connection,
    agent_id: &str,
    session_id: &str,
    now: Millis,
) -> Result<(), StoreError> {
    c.prepare_cached(
        "INSERT INTO attempts (event_id, attempt, session_id, at, outcome, error)
         SELECT id, attempts, lease_session, ?3, 'interrupted', 'session closed before the ack'
         FROM events WHERE agent_id = ?1 AND status = 'delivering' AND lease_session = ?2",
    )?
    .execute(params![agent_id, session_id, now])?;
    c.prepare_cached(
        "UPDATE events SET status = 'pending', lease_session = NULL, lease_until = NULL, updated_at = ?3
         WHERE agent_id = ?1 AND status = 'delivering' AND lease_session = ?2",
    )?
    .execute(params![agent_id, session_id, now])?;
    Ok(())
}

/// At start-up no session exists yet, so no lease can be live.
pub(super) fn release_all_leases(c: &Connection, now: Millis) -> Result<(), StoreError> {
    c.execute(
        "INSERT INTO attempts (event_id, attempt, session_id, at, outcome, error)
         SELECT id, attempts, lease_session, ?1, 'interrupted', 'relay restarted before the ack'
         FROM events WHERE status = 'delivering'",
        params![now],
    )?;
    c.execute(
        "UPDATE events SET status = 'pending', lease_session = NULL, lease_until = NULL, updated_at = ?1
         WHERE status = 'delivering'",
        params![now],
    )?;
    Ok(())
}
