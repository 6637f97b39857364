//! The dashboard's reads across agents (`crate::store::dashboard`), on a
//! client the caller provides (`backend` runs them).

use deadpool_postgres::GenericClient;
use lobster_shared::ids::{AgentId, EventId};
use tokio_postgres::Error;

use crate::store::dashboard::{AdminEventQuery, AdminEventRow, glob_to_like};
use crate::store::{EventStatus, EventSummary, Millis};

pub(super) async fn admin_events(
    c: &impl GenericClient,
    q: &AdminEventQuery,
) -> Result<Vec<AdminEventRow>, Error> {
    let order = if q.after_seq.is_some() { "ASC" } else { "DESC" };
    let sql = format!(
        "SELECT seq, agent_id, id, event_type, status, received_at, attempts FROM events
         WHERE ($1::text IS NULL OR agent_id = $1::text) AND ($2::text IS NULL OR status = $2::text)
           AND ($3::text IS NULL OR event_type LIKE $3::text) AND ($4::bigint IS NULL OR received_at >= $4::bigint)
           AND ($5::bigint IS NULL OR received_at < $5::bigint) AND ($6::text IS NULL OR id = $6::text)
           AND seq > $7 AND ($9::bigint IS NULL OR seq < $9::bigint)
         ORDER BY seq {order} LIMIT $8"
    );
    let status = q.status.map(EventStatus::as_str);
    let like = q.type_glob.as_deref().map(glob_to_like);
    let after = q.after_seq.unwrap_or(0);
    let limit = i64::try_from(q.limit).unwrap_or(i64::MAX);
    let stmt = c.prepare_cached(&sql).await?;
    let rows = c
        .query(
            &stmt,
            &[
                &q.agent_id.as_ref().map(AgentId::as_str),
                &status,
                &like,
                &q.since,
                &q.until,
                &q.id.as_ref().map(EventId::as_str),
                &after,
                &limit,
                &q.before_seq,
            ],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| AdminEventRow {
            seq: r.get(0),
            agent_id: AgentId::from_stored(r.get::<_, String>(1)),
            summary: EventSummary {
                id: EventId::from_stored(r.get::<_, String>(2)),
                event_type: r.get(3),
                status: r.get(4),
                received_at: r.get(5),
                attempts: r.get::<_, i32>(6) as u32,
            },
        })
        .collect())
}

pub(super) async fn event_agent(
    c: &impl GenericClient,
    id: &str,
) -> Result<Option<AgentId>, Error> {
    let stmt = c
        .prepare_cached("SELECT agent_id FROM events WHERE id = $1")
        .await?;
    Ok(c.query_opt(&stmt, &[&id])
        .await?
        .map(|r| AgentId::from_stored(r.get::<_, String>(0))))
}

pub(super) async fn failed_by_agent(c: &impl GenericClient) -> Result<Vec<(AgentId, u64)>, Error> {
    let stmt = c
        .prepare_cached(
            "SELECT agent_id, COUNT(*) FROM events WHERE status = 'failed' GROUP BY agent_id",
        )
        .await?;
    Ok(c.query(&stmt, &[])
        .await?
        .iter()
        .map(|r| {
            (
                AgentId::from_stored(r.get::<_, String>(0)),
                r.get::<_, i64>(1) as u64,
            )
        })
        .collect())
}

pub(super) async fn failed_since(c: &impl GenericClient, since: Millis) -> Result<u64, Error> {
    let stmt = c
        .prepare_cached("SELECT COUNT(*) FROM events WHERE status = 'failed' AND updated_at >= $1")
        .await?;
    Ok(c.query_one(&stmt, &[&since]).await?.get::<_, i64>(0) as u64)
}

pub(super) async fn queue_depth(c: &impl GenericClient) -> Result<u64, Error> {
    let stmt = c
        .prepare_cached("SELECT COUNT(*) FROM events WHERE status IN ('pending', 'delivering')")
        .await?;
    Ok(c.query_one(&stmt, &[]).await?.get::<_, i64>(0) as u64)
}
