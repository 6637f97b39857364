//! Agents with their key hashes, read in one statement: the agent cache's
//! start-up warm-up (`Backend::live_agents`).

use lobster_shared::ids::{AgentId, RelayId, WorkspaceName};
use rusqlite::{Connection, params};

use crate::store::{Agent, StoreError};

/// Up to `limit` unrevoked agents with their key hashes, the most recently
/// seen first (then the newest). One pass over the table; the sort keeps
/// only `limit` rows.
pub(super) fn live_agents(
    c: &Connection,
    limit: usize,
) -> Result<Vec<(String, Agent)>, StoreError> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let mut stmt = c.prepare_cached(
        "SELECT agent_id, name, workspace, relay_id, key_hash FROM agents
         WHERE revoked_at IS NULL
         ORDER BY last_seen DESC NULLS LAST, created_at DESC LIMIT ?1",
    )?;
    let rows = stmt.query_map(params![limit], |r| {
        let agent = Agent {
            agent_id: AgentId::from_stored(r.get::<_, String>(0)?),
            name: r.get(1)?,
            workspace: WorkspaceName::from_stored(r.get::<_, String>(2)?),
            relay_id: RelayId::from_stored(r.get::<_, String>(3)?),
        };
        Ok((r.get::<_, String>(4)?, agent))
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}
