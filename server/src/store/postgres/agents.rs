//! Agents: creation, lookup for authentication and routing, revocation.

use deadpool_postgres::GenericClient;
use lobster_shared::ids::{AgentId, RelayId, WorkspaceName};
use tokio_postgres::{Error, Row};

use crate::store::*;

pub(super) async fn create_agent(
    c: &impl GenericClient,
    a: &NewAgent,
    now: Millis,
) -> Result<(), Error> {
    let insert = c
        .prepare_cached(
            "INSERT INTO agents (agent_id, name, workspace, relay_id, key_hash, created_at)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .await?;
    c.execute(
        &insert,
        &[
            &a.agent.agent_id.as_str(),
            &a.agent.name,
            &a.agent.workspace.as_str(),
            &a.agent.relay_id.as_str(),
            &a.key_hash,
            &now,
        ],
    )
    .await?;
    Ok(())
}

pub(super) async fn revoke_agent(
    c: &impl GenericClient,
    agent_id: &str,
    now: Millis,
) -> Result<bool, Error> {
    let revoke = c
        .prepare_cached(
            "UPDATE agents SET revoked_at = $2 WHERE agent_id = $1 AND revoked_at IS NULL",
        )
        .await?;
    Ok(c.execute(&revoke, &[&agent_id, &now]).await? > 0)
}

/// One statement for the whole batch.
pub(super) async fn touch_agents(
    c: &impl GenericClient,
    agent_ids: &[&str],
    times: &[Millis],
) -> Result<(), Error> {
    let touch = c
        .prepare_cached(
            "UPDATE agents SET last_seen = GREATEST(COALESCE(agents.last_seen, 0), seen.at)
               FROM UNNEST($1::text[], $2::bigint[]) AS seen(agent_id, at)
              WHERE agents.agent_id = seen.agent_id",
        )
        .await?;
    c.execute(&touch, &[&agent_ids, &times]).await?;
    Ok(())
}

/// `online` have a session on `instance` until `until`; `offline` no longer
/// do. Marks of instances gone for a minute are dropped.
pub(super) async fn mark_presence(
    c: &impl GenericClient,
    instance: &str,
    online: &[AgentId],
    offline: &[AgentId],
    until: Millis,
    now: Millis,
) -> Result<(), Error> {
    let online: Vec<&str> = online.iter().map(AgentId::as_str).collect();
    let offline: Vec<&str> = offline.iter().map(AgentId::as_str).collect();
    if !online.is_empty() {
        let mark = c
            .prepare_cached(
                "INSERT INTO presence (agent_id, instance_id, until)
                 SELECT agent_id, $2, $3 FROM UNNEST($1::text[]) AS marked(agent_id)
                 ON CONFLICT (agent_id, instance_id) DO UPDATE SET until = EXCLUDED.until",
            )
            .await?;
        c.execute(&mark, &[&online, &instance, &until]).await?;
    }
    let clear = c
        .prepare_cached(
            "DELETE FROM presence
              WHERE (instance_id = $2 AND agent_id = ANY($1)) OR until < $3",
        )
        .await?;
    c.execute(&clear, &[&offline, &instance, &(now - 60_000)])
        .await?;
    Ok(())
}

/// Whether an instance other than `instance` has a session of the agent.
pub(super) async fn connected_elsewhere(
    c: &impl GenericClient,
    instance: &str,
    agent_id: &str,
    now: Millis,
) -> Result<bool, Error> {
    let read = c
        .prepare_cached(
            "SELECT EXISTS (SELECT 1 FROM presence
                             WHERE agent_id = $1 AND instance_id <> $2 AND until > $3)",
        )
        .await?;
    Ok(c.query_one(&read, &[&agent_id, &instance, &now])
        .await?
        .get(0))
}

/// Which unique column identifies the agent.
#[derive(Debug, Clone, Copy)]
pub(super) enum AgentKey {
    KeyHash,
    RelayId,
}

/// An unrevoked agent by its key hash or relay id.
pub(super) async fn agent_where(
    c: &impl GenericClient,
    by: AgentKey,
    value: &str,
) -> Result<Option<Agent>, Error> {
    let sql = match by {
        AgentKey::KeyHash => {
            "SELECT agent_id, name, workspace, relay_id FROM agents
             WHERE key_hash = $1 AND revoked_at IS NULL"
        }
        AgentKey::RelayId => {
            "SELECT agent_id, name, workspace, relay_id FROM agents
             WHERE relay_id = $1 AND revoked_at IS NULL"
        }
    };
    let find = c.prepare_cached(sql).await?;
    Ok(c.query_opt(&find, &[&value])
        .await?
        .map(|r| agent_from_row(&r)))
}

fn agent_from_row(r: &Row) -> Agent {
    Agent {
        agent_id: AgentId::from_stored(r.get::<_, String>(0)),
        name: r.get(1),
        workspace: WorkspaceName::from_stored(r.get::<_, String>(2)),
        relay_id: RelayId::from_stored(r.get::<_, String>(3)),
    }
}

/// Up to `limit` unrevoked agents with their key hashes, the most recently
/// seen first (then the newest).
pub(super) async fn live_agents(
    c: &impl GenericClient,
    limit: i64,
) -> Result<Vec<(String, Agent)>, Error> {
    let live = c
        .prepare_cached(
            "SELECT agent_id, name, workspace, relay_id, key_hash FROM agents
             WHERE revoked_at IS NULL
             ORDER BY last_seen DESC NULLS LAST, created_at DESC LIMIT $1",
        )
        .await?;
    Ok(c.query(&live, &[&limit])
        .await?
        .iter()
        .map(|r| (r.get(4), agent_from_row(r)))
        .collect())
}

pub(super) async fn list_agents(c: &impl GenericClient) -> Result<Vec<AgentStats>, Error> {
    let list = c
        .prepare_cached(
            "SELECT a.agent_id, a.name, a.workspace, a.relay_id, a.created_at, a.last_seen,
                    (SELECT COUNT(*) FROM events e
                      WHERE e.agent_id = a.agent_id AND e.status IN ('pending', 'delivering'))
             FROM agents a WHERE a.revoked_at IS NULL ORDER BY a.created_at",
        )
        .await?;
    Ok(c.query(&list, &[])
        .await?
        .iter()
        .map(|r| AgentStats {
            agent: agent_from_row(r),
            created_at: r.get(4),
            last_seen: r.get(5),
            pending_events: r.get::<_, i64>(6) as u64,
        })
        .collect())
}

pub(super) async fn agent_count(c: &impl GenericClient) -> Result<u64, Error> {
    let count = c.prepare_cached("SELECT COUNT(*) FROM agents").await?;
    let n: i64 = c.query_one(&count, &[]).await?.get(0);
    Ok(n as u64)
}

pub(super) async fn revoked_since(
    c: &impl GenericClient,
    since: Millis,
) -> Result<Vec<AgentId>, Error> {
    let revoked = c
        .prepare_cached("SELECT agent_id FROM agents WHERE revoked_at >= $1")
        .await?;
    Ok(c.query(&revoked, &[&since])
        .await?
        .iter()
        .map(|r| AgentId::from_stored(r.get::<_, String>(0)))
        .collect())
}
