//! The dashboard's reads across agents (`crate::store::dashboard`), on a
//! reader connection (`backend` runs them).

use lobster_shared::ids::{AgentId, EventId};
use rusqlite::{Connection, OptionalExtension as _, params};

use super::schema::DONE;
use crate::store::dashboard::{AdminEventQuery, AdminEventRow};
use crate::store::{EventStatus, EventSummary, Millis, StoreError};

pub(super) fn admin_events(
    c: &Connection,
    q: &AdminEventQuery,
) -> Result<Vec<AdminEventRow>, StoreError> {
    let order = if q.after_seq.is_some() { "ASC" } else { "DESC" };
    let sql = format!(
        "SELECT seq, agent_id, id, event_type, status, received_at, attempts FROM events
         WHERE (?1 IS NULL OR agent_id = ?1) AND (?2 IS NULL OR status = ?2)
           AND (?3 IS NULL OR event_type GLOB ?3) AND (?4 IS NULL OR received_at >= ?4)
           AND (?5 IS NULL OR received_at < ?5) AND (?6 IS NULL OR id = ?6)
           AND seq > ?7 AND (?9 IS NULL OR seq < ?9)
         ORDER BY seq {order} LIMIT ?8"
    );
    let mut stmt = c.prepare_cached(&sql)?;
    let rows = stmt
        .query_map(
            params![
                q.agent_id.as_ref().map(AgentId::as_str),
                q.status.map(EventStatus::as_str),
                q.type_glob,
                q.since,
                q.until,
                q.id.as_ref().map(EventId::as_str),
                q.after_seq.unwrap_or(0),
                q.limit as i64,
                q.before_seq
            ],
            |r| {
                Ok(AdminEventRow {
                    seq: r.get(0)?,
                    agent_id: AgentId::from_stored(r.get::<_, String>(1)?),
                    summary: EventSummary {
                        id: EventId::from_stored(r.get::<_, String>(2)?),
                        event_type: r.get(3)?,
                        status: r.get(4)?,
                        received_at: r.get(5)?,
                        attempts: r.get(6)?,
                    },
                })
            },
        )?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}

pub(super) fn event_agent(c: &Connection, id: &str) -> Result<Option<String>, StoreError> {
    Ok(
        c.prepare_cached("SELECT agent_id FROM events WHERE id = ?1")?
            .query_row(params![id], |r| r.get(0))
            .optional()?,
    )
}

pub(super) fn failed_by_agent(c: &Connection) -> Result<Vec<(String, u64)>, StoreError> {
    let mut stmt = c.prepare_cached(&format!(
        "SELECT agent_id, COUNT(*) FROM events WHERE {DONE} AND status = 'failed' GROUP BY agent_id"
    ))?;
    let rows = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get::<_, i64>(1)? as u64)))?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}

pub(super) fn failed_since(c: &Connection, since: Millis) -> Result<u64, StoreError> {
    Ok(c.prepare_cached(&format!(
        "SELECT COUNT(*) FROM events WHERE {DONE} AND status = 'failed' AND updated_at >= ?1"
    ))?
    .query_row(params![since], |r| r.get::<_, i64>(0))? as u64)
}

pub(super) fn queue_depth(c: &Connection) -> Result<u64, StoreError> {
    Ok(
        // Each count reads its status's partial index only.
        c.prepare_cached(
            "SELECT (SELECT COUNT(*) FROM events WHERE status = 'pending')
                  + (SELECT COUNT(*) FROM events WHERE status = 'delivering')",
        )?
        .query_row([], |r| r.get::<_, i64>(0))? as u64,
    )
}
