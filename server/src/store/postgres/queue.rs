//! The delivery lifecycle of an event: accepted, leased, acked or nacked,
//! released, replayed. Same semantics as the SQLite backend's queries; here
//! several instances run them at once, so leases are taken with
//! `FOR UPDATE SKIP LOCKED` and the dedup window is the `dedup` primary key.

use deadpool_postgres::GenericClient;
use lobster_shared::ids::EventId;
use tokio_postgres::Error;

use crate::retry::RetryPolicy;
use crate::store::*;

fn headers_json(headers: &[(String, String)]) -> String {
    serde_json::to_string(headers).expect("string pairs always serialize")
}

pub(super) fn headers_from(text: &str) -> Vec<(String, String)> {
    serde_json::from_str(text).unwrap_or_default()
}

/// Stores the event unless its dedup key is live. One statement: the dedup
/// row and the event commit together, and of concurrent inserts with one
/// key, the others wait on the key's row and then see it live.
const INSERT_EVENT: &str = "
    WITH d AS (
        INSERT INTO dedup (agent_id, key, event_id, expires_at)
        SELECT $2::text, $7::text, $1::text, $8::bigint WHERE $7::text IS NOT NULL
        ON CONFLICT (agent_id, key) DO UPDATE
            SET event_id = EXCLUDED.event_id, expires_at = EXCLUDED.expires_at
            WHERE dedup.expires_at <= $9::bigint
        RETURNING event_id)
    INSERT INTO events (id, agent_id, event_type, received_at, headers, body, status,
                        next_attempt_at, updated_at)
    SELECT $1::text, $2::text, $3::text, $4::bigint, $5::text, $6::bytea, 'pending',
           $4::bigint, $4::bigint
    WHERE $7::text IS NULL OR EXISTS (SELECT 1 FROM d)
    RETURNING id";

pub(super) async fn insert_event(
    c: &impl GenericClient,
    e: &NewEvent,
    now: Millis,
) -> Result<Inserted, Error> {
    let insert = c.prepare_cached(INSERT_EVENT).await?;
    let original = c
        .prepare_cached("SELECT event_id FROM dedup WHERE agent_id = $1 AND key = $2")
        .await?;
    let headers = headers_json(&e.headers);
    let expires_at = now + DEDUP_WINDOW_MS;
    // A key that is live when the insert looks but gone when we read it
    // (swept in between) is simply tried again.
    loop {
        let stored = c
            .query_opt(
                &insert,
                &[
                    &e.id.as_str(),
                    &e.agent_id.as_str(),
                    &e.event_type,
                    &e.received_at,
                    &headers,
                    &&e.body[..],
                    &e.dedup_key,
                    &expires_at,
                    &now,
                ],
            )
            .await?;
        if stored.is_some() {
            return Ok(Inserted::New(e.id.clone()));
        }
        let agent_id = e.agent_id.as_str();
        if let Some(row) = c.query_opt(&original, &[&agent_id, &e.dedup_key]).await? {
            return Ok(Inserted::Duplicate(EventId::from_stored(
                row.get::<_, String>(0),
            )));
        }
    }
}

/// Returns expired leases of one agent to the queue (or fails them when the
/// attempts are used up), recording a timeout attempt for each. Leases that
/// another instance is expiring or acking right now are left to it. As on
/// SQLite, `lease_session` stays on the requeued row so that the claim never
/// offers it again to the session that let it time out (it still holds it).
const EXPIRE_LEASES: &str = "
    WITH old AS (
        SELECT seq, lease_session FROM events
        WHERE agent_id = $1 AND status = 'delivering' AND lease_until <= $2
        ORDER BY seq
        FOR UPDATE SKIP LOCKED),
    expired AS (
        UPDATE events e
        SET status = CASE WHEN e.attempts - e.retry_base >= $3 THEN 'failed' ELSE 'pending' END,
            lease_until = NULL, next_attempt_at = $2, updated_at = $2,
            last_error = 'not acked within the ack timeout'
        FROM old WHERE e.seq = old.seq
        RETURNING e.seq, e.id, e.attempts, old.lease_session)
    INSERT INTO attempts (event_id, attempt, session_id, at, outcome, error)
    SELECT id, attempts, lease_session, $2, 'timeout', 'not acked within the ack timeout'
    FROM expired ORDER BY seq";

/// Puts the session's leases other than `$3` (the events it sent) back in the
/// queue, open to it again (see `ClaimRequest::requeue_except`).
const REQUEUE_UNSENT: &str = "
    WITH old AS (
        SELECT seq, status FROM events
        WHERE agent_id = $1 AND lease_session = $2
          AND status IN ('delivering', 'pending') AND NOT (id = ANY($3))
        FOR UPDATE),
    requeued AS (
        UPDATE events e
        SET status = 'pending', lease_session = NULL, lease_until = NULL, updated_at = $4
        FROM old WHERE e.seq = old.seq
        RETURNING e.seq, e.id, e.attempts, old.status AS was)
    INSERT INTO attempts (event_id, attempt, session_id, at, outcome, error)
    SELECT id, attempts, $2, $4, 'interrupted', 'lease outcome unknown after a storage error'
    FROM requeued WHERE was = 'delivering' ORDER BY seq";

/// `event_type` matches one of the session's patterns (`$n` is a `text[]`
/// of LIKE patterns; empty means all).
macro_rules! matches_patterns {
    ($n:literal) => {
        concat!(
            "(cardinality($",
            $n,
            "::text[]) = 0 OR event_type LIKE ANY ($",
            $n,
            "::text[]))"
        )
    };
}

/// Leases the oldest due events. Rows another instance is leasing right now
/// are skipped, not waited for: each event goes to one session.
const CLAIM: &str = concat!(
    "WITH picked AS (
        SELECT seq FROM events
        WHERE agent_id = $1 AND status = 'pending' AND next_attempt_at <= $4
          AND (lease_session IS NULL OR lease_session <> $2) AND ",
    matches_patterns!("6"),
    "
        ORDER BY seq LIMIT $5
        FOR UPDATE SKIP LOCKED)
    UPDATE events e
    SET status = 'delivering', lease_session = $2, lease_until = $3,
        attempts = e.attempts + 1, updated_at = $4
    FROM picked WHERE e.seq = picked.seq
    RETURNING e.seq, e.id, e.event_type, e.received_at, e.attempts, e.headers, e.body, e.replay"
);

const NEXT_DUE: &str = concat!(
    "SELECT LEAST(
        (SELECT MIN(next_attempt_at) FROM events
          WHERE agent_id = $1 AND status = 'pending' AND next_attempt_at > $2 AND ",
    matches_patterns!("3"),
    "),
        (SELECT MIN(lease_until) FROM events
          WHERE agent_id = $1 AND status = 'delivering' AND ",
    matches_patterns!("3"),
    "))"
);

/// A session's glob (only `*` and `?` are special) as a LIKE pattern.
pub(super) fn like_pattern(glob: &str) -> String {
    let mut like = String::with_capacity(glob.len() + 4);
    for ch in glob.chars() {
        match ch {
            '*' => like.push('%'),
            '?' => like.push('_'),
            '%' | '_' | '\\' => {
                like.push('\\');
                like.push(ch);
            }
            other => like.push(other),
        }
    }
    like
}

/// Runs in one transaction.
pub(super) async fn claim(
    c: &impl GenericClient,
    req: &ClaimRequest,
    max_attempts: u32,
    now: Millis,
) -> Result<Claim, Error> {
    let max_attempts = i32::try_from(max_attempts).unwrap_or(i32::MAX);
    let (agent_id, session_id) = (req.agent_id.as_str(), req.session_id.as_str());
    if let Some(sent) = &req.requeue_except {
        let sent: Vec<&str> = sent.iter().map(EventId::as_str).collect();
        let requeue = c.prepare_cached(REQUEUE_UNSENT).await?;
        c.execute(&requeue, &[&agent_id, &session_id, &sent, &now])
            .await?;
    }
    let expire = c.prepare_cached(EXPIRE_LEASES).await?;
    c.execute(&expire, &[&agent_id, &now, &max_attempts])
        .await?;
    let patterns: Vec<String> = req.patterns.iter().map(|p| like_pattern(p)).collect();
    let lease_until = now + req.lease_ms;
    let limit = i64::try_from(req.limit).unwrap_or(i64::MAX);
    let claim = c.prepare_cached(CLAIM).await?;
    let rows = c
        .query(
            &claim,
            &[
                &agent_id,
                &session_id,
                &lease_until,
                &now,
                &limit,
                &patterns,
            ],
        )
        .await?;
    let mut leased: Vec<(i64, Delivery)> = rows
        .iter()
        .map(|r| {
            let delivery = Delivery {
                id: EventId::from_stored(r.get::<_, String>(1)),
                event_type: r.get(2),
                received_at: r.get(3),
                attempt: r.get::<_, i32>(4) as u32,
                headers: headers_from(r.get(5)),
                body: r.get::<_, Vec<u8>>(6).into(),
                replay: r.get(7),
            };
            (r.get(0), delivery)
        })
        .collect();
    leased.sort_by_key(|(seq, _)| *seq);
    let next_due = c.prepare_cached(NEXT_DUE).await?;
    let next_due: Option<Millis> = c
        .query_one(&next_due, &[&agent_id, &now, &patterns])
        .await?
        .get(0);
    Ok(Claim {
        more: leased.len() == req.limit && req.limit > 0,
        deliveries: leased.into_iter().map(|(_, d)| d).collect(),
        next_due,
    })
}

const ACK: &str = "
    WITH done AS (
        UPDATE events SET status = 'delivered', lease_session = NULL, lease_until = NULL,
            last_error = NULL, replay = FALSE, updated_at = $3
        WHERE id = ANY ($1::text[]) AND agent_id = $2 AND status IN ('delivering', 'pending')
        RETURNING id, attempts)
    INSERT INTO attempts (event_id, attempt, session_id, at, outcome)
    SELECT id, attempts, $4, $3, 'delivered' FROM done";

pub(super) async fn ack(
    c: &impl GenericClient,
    agent_id: &str,
    session_id: &str,
    ids: &[String],
    now: Millis,
) -> Result<(), Error> {
    let ack = c.prepare_cached(ACK).await?;
    c.execute(&ack, &[&ids, &agent_id, &now, &session_id])
        .await?;
    Ok(())
}

/// Runs in one transaction.
pub(super) async fn nack(
    c: &impl GenericClient,
    agent_id: &str,
    session_id: &str,
    id: &str,
    reason: &str,
    retry: &RetryPolicy,
    now: Millis,
) -> Result<(), Error> {
    let leased = c
        .prepare_cached(
            "SELECT attempts, retry_base FROM events
             WHERE id = $1 AND agent_id = $2 AND status = 'delivering' AND lease_session = $3
             FOR UPDATE",
        )
        .await?;
    let Some(row) = c.query_opt(&leased, &[&id, &agent_id, &session_id]).await? else {
        return Ok(());
    };
    let attempts: i32 = row.get(0);
    let retry_base: i32 = row.get(1);
    // A replay gave the event a fresh budget: count from it.
    let (status, next) = match retry.next_delay(attempts.saturating_sub(retry_base).max(0) as u32) {
        Some(delay) => ("pending", now + delay.as_millis() as Millis),
        None => ("failed", now),
    };
    let reason: String = reason.chars().take(1000).collect();
    let update = c
        .prepare_cached(
            "UPDATE events SET status = $2, next_attempt_at = $3, lease_session = NULL,
                 lease_until = NULL, last_error = $4, updated_at = $5
             WHERE id = $1",
        )
        .await?;
    c.execute(&update, &[&id, &status, &next, &reason, &now])
        .await?;
    let record = c
        .prepare_cached(
            "INSERT INTO attempts (event_id, attempt, session_id, at, outcome, error)
             VALUES ($1, $2, $3, $4, 'nacked', $5)",
        )
        .await?;
    c.execute(&record, &[&id, &attempts, &session_id, &now, &reason])
        .await?;
    Ok(())
}

const RELEASE: &str = "
    WITH released AS (
        UPDATE events SET status = 'pending', lease_session = NULL, lease_until = NULL,
            updated_at = $3
        WHERE agent_id = $1 AND status = 'delivering' AND lease_session = $2
        RETURNING seq, id, attempts)
    INSERT INTO attempts (event_id, attempt, session_id, at, outcome, error)
    SELECT id, attempts, $2, $3, 'interrupted', 'session closed before the ack'
    FROM released ORDER BY seq";

pub(super) async fn release(
    c: &impl GenericClient,
    agent_id: &str,
    session_id: &str,
    now: Millis,
) -> Result<(), Error> {
    let release = c.prepare_cached(RELEASE).await?;
    c.execute(&release, &[&agent_id, &session_id, &now]).await?;
    Ok(())
}

/// Runs in one transaction.
pub(super) async fn replay(
    c: &impl GenericClient,
    agent_id: &str,
    id: &str,
    now: Millis,
) -> Result<ReplayOutcome, Error> {
    let status = c
        .prepare_cached("SELECT status FROM events WHERE id = $1 AND agent_id = $2 FOR UPDATE")
        .await?;
    let status: Option<String> = c
        .query_opt(&status, &[&id, &agent_id])
        .await?
        .map(|r| r.get(0));
    match status.as_deref() {
        None => Ok(ReplayOutcome::NotFound),
        Some("delivering") => Ok(ReplayOutcome::InFlight),
        Some(_) => {
            let queue = c
                .prepare_cached(
                    "UPDATE events SET status = 'pending', next_attempt_at = $2, updated_at = $2,
                         lease_session = NULL, replay = TRUE, retry_base = attempts
                     WHERE id = $1",
                )
                .await?;
            c.execute(&queue, &[&id, &now]).await?;
            Ok(ReplayOutcome::Queued)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::like_pattern;

    #[test]
    fn globs_become_like_patterns_with_like_wildcards_escaped() {
        assert_eq!(like_pattern("message.*"), "message.%");
        assert_eq!(like_pattern("a?c"), "a_c");
        assert_eq!(like_pattern("order_paid"), "order\\_paid");
        assert_eq!(like_pattern("100%"), "100\\%");
        assert_eq!(like_pattern("a\\b*"), "a\\\\b%");
        assert_eq!(like_pattern("*"), "%");
    }
}
