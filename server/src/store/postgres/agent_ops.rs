//! How the agent operations of [`Backend`](crate::store::Backend) run on
//! PostgreSQL: `backend` delegates each one here, so that it stays a
//! readable size. The SQL is in `agents`.

use lobster_shared::ids::{AgentId, RelayId};

use super::agents::AgentKey;
use super::pool::{QUICK, statement};
use super::{PostgresStore, agents};
use crate::store::*;

impl PostgresStore {
    pub(super) fn create_agent(&self, agent: NewAgent) -> Write<()> {
        let clock = self.clock.clone();
        let pool = self.pool.clone();
        Box::pin(self.spawn(async move {
            let now = clock.now();
            statement!(&pool, QUICK, |c| agents::create_agent(c, &agent, now))
        }))
    }

    pub(super) fn revoke_agent(&self, agent_id: &AgentId) -> Write<bool> {
        let clock = self.clock.clone();
        let pool = self.pool.clone();
        let agent_id = agent_id.to_string();
        Box::pin(self.spawn(async move {
            let now = clock.now();
            statement!(&pool, QUICK, |c| agents::revoke_agent(c, &agent_id, now))
        }))
    }

    pub(super) fn touch_agents(&self, seen: Vec<(AgentId, Millis)>) -> Write<()> {
        let pool = self.pool.clone();
        Box::pin(self.spawn(async move {
            let agent_ids: Vec<&str> = seen.iter().map(|(id, _)| id.as_str()).collect();
            let times: Vec<Millis> = seen.iter().map(|&(_, at)| at).collect();
            statement!(&pool, QUICK, |c| agents::touch_agents(
                c, &agent_ids, &times
            ))
        }))
    }

    pub(super) fn list_agents(&self) -> Read<'_, Vec<AgentStats>> {
        Box::pin(async move { statement!(&self.pool, QUICK, |c| agents::list_agents(c)) })
    }

    pub(super) fn agent_count(&self) -> Read<'_, u64> {
        Box::pin(async move { statement!(&self.pool, QUICK, |c| agents::agent_count(c)) })
    }

    pub(super) fn agent_by_key_hash<'a>(&'a self, key_hash: &'a str) -> Read<'a, Option<Agent>> {
        Box::pin(async move {
            statement!(&self.pool, QUICK, |c| agents::agent_where(
                c,
                AgentKey::KeyHash,
                key_hash
            ))
        })
    }

    pub(super) fn agent_by_relay_id<'a>(
        &'a self,
        relay_id: &'a RelayId,
    ) -> Read<'a, Option<Agent>> {
        Box::pin(async move {
            statement!(&self.pool, QUICK, |c| agents::agent_where(
                c,
                AgentKey::RelayId,
                relay_id.as_str()
            ))
        })
    }

    pub(super) fn live_agents(&self, limit: usize) -> Read<'_, Vec<(String, Agent)>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        Box::pin(async move { statement!(&self.pool, QUICK, |c| agents::live_agents(c, limit)) })
    }

    pub(super) fn revoked_since(&self, since: Millis) -> Read<'_, Vec<AgentId>> {
        Box::pin(async move { statement!(&self.pool, QUICK, |c| agents::revoked_since(c, since)) })
    }

    pub(super) fn mark_presence(
        &self,
        online: Vec<AgentId>,
        offline: Vec<AgentId>,
        until: Millis,
    ) -> Read<'_, ()> {
        Box::pin(async move {
            let now = self.clock.now();
            statement!(&self.pool, QUICK, |c| agents::mark_presence(
                c,
                self.instance.as_str(),
                &online,
                &offline,
                until,
                now
            ))
        })
    }

    pub(super) fn connected_elsewhere<'a>(&'a self, agent_id: &'a AgentId) -> Read<'a, bool> {
        Box::pin(async move {
            let now = self.clock.now();
            statement!(&self.pool, QUICK, |c| agents::connected_elsewhere(
                c,
                self.instance.as_str(),
                agent_id.as_str(),
                now
            ))
        })
    }
}
