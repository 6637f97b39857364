//! When each agent was last connected, kept in memory and written in one
//! batch a second.
//!
//! Every session records `last_seen` when it opens and when it closes. One
//! database write per record made a reconnect storm (10,000 agents back
//! after a restart) cost 20,000 writes on the store's writer, beside the
//! connects themselves; now it costs one batch a second. The price: a
//! relay killed with SIGKILL forgets at most the last second of it, and
//! `last_seen` is information for people, not a delivery promise. Readers
//! see the fresher in-memory time ([`LastSeen::overlay`]).

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use lobster_shared::ids::AgentId;
use tokio_util::sync::CancellationToken;

use crate::store::{AgentStats, Millis, Store, now_ms};

/// How often recorded times are written.
pub const FLUSH_EVERY: Duration = Duration::from_secs(1);

/// Times recorded since the last flush, by agent id.
#[derive(Debug, Default)]
pub struct LastSeen {
    pending: Mutex<HashMap<AgentId, Millis>>,
}

impl LastSeen {
    /// Notes that `agent_id` is connected now.
    pub fn record(&self, agent_id: &AgentId) {
        let now = now_ms();
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        match pending.get_mut(agent_id) {
            Some(at) => *at = (*at).max(now),
            None => {
                pending.insert(agent_id.clone(), now);
            }
        }
    }

    /// Gives listed agents the times recorded but not yet written.
    pub fn overlay(&self, agents: &mut [AgentStats]) {
        let pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        for stats in agents {
            if let Some(&at) = pending.get(&stats.agent.agent_id) {
                stats.last_seen = Some(stats.last_seen.map_or(at, |stored| stored.max(at)));
            }
        }
    }

    /// The recorded times; the map starts over empty, so a storm's
    /// allocation is given back rather than kept for the next one.
    fn take(&self) -> Vec<(AgentId, Millis)> {
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        std::mem::take(&mut *pending).into_iter().collect()
    }

    /// Writes what was recorded. A failed write is logged and its times are
    /// dropped: the next connection of each agent records them again.
    pub async fn flush(&self, store: &Store) {
        let seen = self.take();
        if seen.is_empty() {
            return;
        }
        let agents = seen.len();
        if let Err(err) = store.touch_agents(seen).await {
            tracing::warn!(error = %err, agents, "cannot store last seen times");
        }
    }

    /// Flushes every [`FLUSH_EVERY`] until `shutdown`; the caller flushes
    /// once more after the sessions closed.
    pub async fn run(&self, store: Store, shutdown: CancellationToken) {
        let mut every = tokio::time::interval(FLUSH_EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = every.tick() => self.flush(&store).await,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Agent;

    fn stats(agent_id: &str, last_seen: Option<Millis>) -> AgentStats {
        AgentStats {
            agent: Agent {
                agent_id: AgentId::from_stored(agent_id),
                name: "a".into(),
                workspace: lobster_shared::ids::WorkspaceName::default_workspace(),
                relay_id: lobster_shared::ids::RelayId::from_stored("rly_1"),
            },
            created_at: 0,
            last_seen,
            pending_events: 0,
        }
    }

    #[test]
    fn listings_show_the_fresher_of_stored_and_recorded_times() {
        let seen = LastSeen::default();
        seen.record(&AgentId::from_stored("agt_1"));
        let recorded = seen.pending.lock().unwrap()["agt_1"];
        let mut listed = [
            stats("agt_1", Some(5)),
            stats("agt_2", Some(7)),
            stats("agt_3", None),
        ];
        seen.overlay(&mut listed);
        assert_eq!(listed[0].last_seen, Some(recorded));
        assert_eq!(listed[1].last_seen, Some(7), "not recorded: unchanged");
        assert_eq!(listed[2].last_seen, None);
        let mut later = [stats("agt_1", Some(recorded + 10_000))];
        seen.overlay(&mut later);
        assert_eq!(later[0].last_seen, Some(recorded + 10_000));
    }

    #[test]
    fn one_entry_per_agent_until_taken() {
        let seen = LastSeen::default();
        for _ in 0..3 {
            seen.record(&AgentId::from_stored("agt_1"));
        }
        seen.record(&AgentId::from_stored("agt_2"));
        let mut taken = seen.take();
        taken.sort();
        assert_eq!(taken.len(), 2);
        assert_eq!(taken[0].0, "agt_1");
        assert!(seen.take().is_empty());
    }
}
