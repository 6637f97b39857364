//! Agents by relay id and by key hash, kept in memory.
//!
//! Every webhook looks its agent up by relay id, and every request of an
//! agent by key hash. An agent row never changes except by revocation, so a
//! found agent is kept until any agent is revoked: [`AgentCache::invalidate`]
//! drops everything and bumps a generation, and a lookup that read the
//! database before a revocation and finishes after it does not store its
//! stale answer. Misses are not kept, so guessing relay ids costs no memory.
//!
//! Revocation reaches the cache wherever it reaches the hub: at once on the
//! instance that revoked, over Redis on the others, and by the revocation
//! poll (2 s) when Redis drops the message.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use lobster_shared::ids::RelayId;

use crate::store::{Agent, Store, StoreError};

/// Most agents kept per map; past it the map starts over (agents are small,
/// so this bounds the cache near 100 MB even with long names).
const MAX_ENTRIES: usize = 200_000;

#[derive(Default)]
pub struct AgentCache {
    generation: AtomicU64,
    by_relay_id: Mutex<HashMap<RelayId, Agent>>,
    by_key_hash: Mutex<HashMap<String, Agent>>,
}

impl AgentCache {
    /// The live agent with this relay id.
    pub async fn by_relay_id(
        &self,
        store: &Store,
        relay_id: &RelayId,
    ) -> Result<Option<Agent>, StoreError> {
        self.lookup(
            &self.by_relay_id,
            relay_id,
            store.agent_by_relay_id(relay_id),
        )
        .await
    }

    /// The live agent whose API key hashes to `key_hash`.
    pub async fn by_key_hash(
        &self,
        store: &Store,
        key_hash: &str,
    ) -> Result<Option<Agent>, StoreError> {
        self.lookup(
            &self.by_key_hash,
            key_hash,
            store.agent_by_key_hash(key_hash),
        )
        .await
    }

    /// `map[key]`, else what `read` finds, kept unless a revocation came
    /// in between. `read` is lazy: it touches the store only when awaited.
    async fn lookup<K, Q>(
        &self,
        map: &Mutex<HashMap<K, Agent>>,
        key: &Q,
        read: impl Future<Output = Result<Option<Agent>, StoreError>>,
    ) -> Result<Option<Agent>, StoreError>
    where
        K: Borrow<Q> + Hash + Eq,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        if let Some(agent) = lock(map).get(key) {
            return Ok(Some(agent.clone()));
        }
        let generation = self.generation.load(Ordering::Acquire);
        let found = read.await?;
        if let Some(agent) = &found {
            self.keep(map, key, agent, generation);
        }
        Ok(found)
    }

    /// Forgets every agent: one was revoked.
    pub fn invalidate(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        lock(&self.by_relay_id).clear();
        lock(&self.by_key_hash).clear();
    }

    fn keep<K, Q>(&self, map: &Mutex<HashMap<K, Agent>>, key: &Q, agent: &Agent, generation: u64)
    where
        K: Borrow<Q> + Hash + Eq,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        let mut map = lock(map);
        // Checked under the map's lock: `invalidate` bumps the generation
        // before it clears, so a stale answer is either refused here or
        // cleared there.
        if self.generation.load(Ordering::Acquire) != generation {
            return;
        }
        if map.len() >= MAX_ENTRIES {
            map.clear();
        }
        map.insert(key.to_owned(), agent.clone());
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agent(id: &str) -> Agent {
        Agent {
            agent_id: lobster_shared::ids::AgentId::from_stored(id),
            name: "a".into(),
            workspace: lobster_shared::ids::WorkspaceName::default_workspace(),
            relay_id: RelayId::from_stored(format!("r_{id}")),
        }
    }

    #[test]
    fn an_answer_read_before_a_revocation_is_not_kept() {
        let cache = AgentCache::default();
        let before = cache.generation.load(Ordering::Acquire);
        cache.invalidate();
        cache.keep(
            &cache.by_relay_id,
            &RelayId::from_stored("r_1"),
            &agent("1"),
            before,
        );
        assert!(lock(&cache.by_relay_id).is_empty());
        let now = cache.generation.load(Ordering::Acquire);
        cache.keep(
            &cache.by_relay_id,
            &RelayId::from_stored("r_1"),
            &agent("1"),
            now,
        );
        assert_eq!(lock(&cache.by_relay_id).len(), 1);
        cache.invalidate();
        assert!(lock(&cache.by_relay_id).is_empty());
    }
}
