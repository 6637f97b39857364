//! Reading events back (listing, detail, counts) and retention.

use deadpool_postgres::GenericClient;
use lobster_shared::ids::{EventId, SessionId};
use tokio_postgres::{Error, Row};

use super::queue::headers_from;
use crate::store::*;

pub(super) async fn list_events(
    c: &impl GenericClient,
    q: &EventQuery,
) -> Result<Vec<EventSummary>, Error> {
    let before: i64 = match &q.before {
        None => i64::MAX,
        Some(id) => {
            let seq = c
                .prepare_cached("SELECT seq FROM events WHERE id = $1 AND agent_id = $2")
                .await?;
            c.query_opt(&seq, &[&id.as_str(), &q.agent_id.as_str()])
                .await?
                .map_or(i64::MAX, |r| r.get(0))
        }
    };
    let status = q.status.map(EventStatus::as_str);
    let limit = i64::try_from(q.limit).unwrap_or(i64::MAX);
    let list = c
        .prepare_cached(
            "SELECT id, event_type, status, received_at, attempts FROM events
             WHERE agent_id = $1 AND seq < $2 AND ($3::text IS NULL OR status = $3::text)
             ORDER BY seq DESC LIMIT $4",
        )
        .await?;
    let rows = c
        .query(&list, &[&q.agent_id.as_str(), &before, &status, &limit])
        .await?;
    Ok(rows.iter().map(summary_from_row).collect())
}

fn summary_from_row(r: &Row) -> EventSummary {
    EventSummary {
        id: EventId::from_stored(r.get::<_, String>(0)),
        event_type: r.get(1),
        status: r.get(2),
        received_at: r.get(3),
        attempts: r.get::<_, i32>(4) as u32,
    }
}

pub(super) async fn event_detail(
    c: &impl GenericClient,
    agent_id: &str,
    id: &str,
) -> Result<Option<EventDetail>, Error> {
    let event = c
        .prepare_cached(
            "SELECT id, event_type, status, received_at, attempts, headers, body
             FROM events WHERE id = $1 AND agent_id = $2",
        )
        .await?;
    let Some(row) = c.query_opt(&event, &[&id, &agent_id]).await? else {
        return Ok(None);
    };
    let history = c
        .prepare_cached(
            "SELECT attempt, at, session_id, outcome, error FROM attempts
             WHERE event_id = $1 ORDER BY seq",
        )
        .await?;
    let history = c
        .query(&history, &[&id])
        .await?
        .iter()
        .map(|r| AttemptRecord {
            attempt: r.get::<_, i32>(0) as u32,
            at: r.get(1),
            session_id: r.get::<_, Option<String>>(2).map(SessionId::from_stored),
            outcome: r.get(3),
            error: r.get(4),
        })
        .collect();
    Ok(Some(EventDetail {
        summary: summary_from_row(&row),
        headers: headers_from(row.get(5)),
        body: row.get(6),
        history,
    }))
}

pub(super) async fn pending_count(c: &impl GenericClient, agent_id: &str) -> Result<u64, Error> {
    let count = c
        .prepare_cached(
            "SELECT COUNT(*) FROM events
             WHERE agent_id = $1 AND status IN ('pending', 'delivering')",
        )
        .await?;
    let n: i64 = c.query_one(&count, &[&agent_id]).await?.get(0);
    Ok(n as u64)
}

/// Runs in one transaction.
pub(super) async fn sweep(
    c: &impl GenericClient,
    retention_ms: Millis,
    failed_ms: Millis,
    now: Millis,
) -> Result<u64, Error> {
    let cutoff = now - retention_ms;
    let failed_cutoff = now - failed_ms;
    let mut changed = c
        .execute(
            "UPDATE events SET status = 'expired', lease_session = NULL, lease_until = NULL,
                 updated_at = $2
             WHERE status IN ('pending', 'delivering') AND received_at < $1",
            &[&cutoff, &now],
        )
        .await?;
    c.execute(
        "DELETE FROM attempts WHERE event_id IN (SELECT id FROM events
                 WHERE (status IN ('delivered', 'expired', 'skipped') AND updated_at < $1)
                    OR (status = 'failed' AND updated_at < $2))",
        &[&cutoff, &failed_cutoff],
    )
    .await?;
    changed += c
        .execute(
            "DELETE FROM events
             WHERE (status IN ('delivered', 'expired', 'skipped') AND updated_at < $1)
                OR (status = 'failed' AND updated_at < $2)",
            &[&cutoff, &failed_cutoff],
        )
        .await?;
    changed += c
        .execute("DELETE FROM dedup WHERE expires_at <= $1", &[&now])
        .await?;
    Ok(changed)
}
