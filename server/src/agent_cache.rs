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
//!
//! The cache is filled ahead of use: at start-up [`AgentCache::warm`] loads
//! the live agents in one read, so that the storm of reconnects after a
//! restart reads none of them one by one, and an agent created here is kept
//! from its creation. Both maps share one `Arc` per agent.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use lobster_shared::ids::RelayId;

use crate::store::{Agent, NewAgent, Store, StoreError};

/// Most agents kept per map; past it the map starts over (agents are small,
/// so this bounds the cache near 100 MB even with long names).
const MAX_ENTRIES: usize = 200_000;

/// Most agents the start-up warm-up loads, the most recently seen first;
/// the others are read on first use, as without a warm-up. 50,000 agents
/// are one read of well under a second and about 20 MB, and the relay
/// serves while it runs.
pub const WARM_LIMIT: usize = 50_000;

#[derive(Default)]
pub struct AgentCache {
    generation: AtomicU64,
    by_relay_id: Mutex<HashMap<RelayId, Arc<Agent>>>,
    by_key_hash: Mutex<HashMap<String, Arc<Agent>>>,
}

impl AgentCache {
    /// The live agent with this relay id.
    pub async fn by_relay_id(
        &self,
        store: &Store,
        relay_id: &RelayId,
    ) -> Result<Option<Arc<Agent>>, StoreError> {
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
    ) -> Result<Option<Arc<Agent>>, StoreError> {
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
        map: &Mutex<HashMap<K, Arc<Agent>>>,
        key: &Q,
        read: impl Future<Output = Result<Option<Agent>, StoreError>>,
    ) -> Result<Option<Arc<Agent>>, StoreError>
    where
        K: Borrow<Q> + Hash + Eq,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        if let Some(agent) = lock(map).get(key) {
            return Ok(Some(agent.clone()));
        }
        let generation = self.generation.load(Ordering::Acquire);
        let found = read.await?.map(Arc::new);
        if let Some(agent) = &found {
            self.keep(map, [(key.to_owned(), agent.clone())], generation);
        }
        Ok(found)
    }

    /// Loads up to [`WARM_LIMIT`] live agents in one read (see the module
    /// doc); returns how many. Lookups meanwhile read the store as before;
    /// what they kept stays, and a revocation during the read discards it.
    pub async fn warm(&self, store: &Store) -> Result<usize, StoreError> {
        let generation = self.generation.load(Ordering::Acquire);
        let live = store.live_agents(WARM_LIMIT).await?;
        let loaded = live.len();
        let live: Vec<(String, Arc<Agent>)> = live
            .into_iter()
            .map(|(key_hash, agent)| (key_hash, Arc::new(agent)))
            .collect();
        let by_relay_id = live
            .iter()
            .map(|(_, agent)| (agent.relay_id.clone(), agent.clone()));
        self.keep(&self.by_relay_id, by_relay_id, generation);
        self.keep(&self.by_key_hash, live, generation);
        Ok(loaded)
    }

    /// Creates an agent in the store and keeps it: it is live until
    /// revoked, so its first connect and webhooks read nothing.
    pub async fn create(&self, store: &Store, new: NewAgent) -> Result<(), StoreError> {
        let generation = self.generation.load(Ordering::Acquire);
        let key_hash = new.key_hash.clone();
        let agent = Arc::new(new.agent.clone());
        store.create_agent(new).await?;
        let relay_id = agent.relay_id.clone();
        self.keep(&self.by_relay_id, [(relay_id, agent.clone())], generation);
        self.keep(&self.by_key_hash, [(key_hash, agent)], generation);
        Ok(())
    }

    /// Forgets every agent: one was revoked.
    pub fn invalidate(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        lock(&self.by_relay_id).clear();
        lock(&self.by_key_hash).clear();
    }

    /// Keeps `entries` read at `generation`, unless a revocation came
    /// since; an agent already kept stays as it is.
    fn keep<K>(
        &self,
        map: &Mutex<HashMap<K, Arc<Agent>>>,
        entries: impl IntoIterator<Item = (K, Arc<Agent>)>,
        generation: u64,
    ) where
        K: Hash + Eq,
    {
        let mut map = lock(map);
        // Checked under the map's lock: `invalidate` bumps the generation
        // before it clears, so a stale answer is either refused here or
        // cleared there.
        if self.generation.load(Ordering::Acquire) != generation {
            return;
        }
        for (key, agent) in entries {
            if map.len() >= MAX_ENTRIES {
                map.clear();
            }
            map.entry(key).or_insert(agent);
        }
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

    fn open(dir: &tempfile::TempDir) -> Store {
        let retry = crate::retry::RetryPolicy {
            initial: std::time::Duration::from_millis(1),
            max_delay: std::time::Duration::from_millis(1),
            max_attempts: 3,
        };
        Store::open_sqlite(&dir.path().join("relay.db"), retry).unwrap()
    }

    #[test]
    fn an_answer_read_before_a_revocation_is_not_kept() {
        let cache = AgentCache::default();
        let before = cache.generation.load(Ordering::Acquire);
        cache.invalidate();
        let entry = || [(RelayId::from_stored("r_1"), Arc::new(agent("1")))];
        cache.keep(&cache.by_relay_id, entry(), before);
        assert!(lock(&cache.by_relay_id).is_empty());
        let now = cache.generation.load(Ordering::Acquire);
        cache.keep(&cache.by_relay_id, entry(), now);
        assert_eq!(lock(&cache.by_relay_id).len(), 1);
        cache.invalidate();
        assert!(lock(&cache.by_relay_id).is_empty());
    }

    #[tokio::test]
    async fn a_warmed_cache_answers_without_reading_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(&dir);
        for n in 1..=3 {
            let new = NewAgent {
                agent: agent(&n.to_string()),
                key_hash: format!("h{n}"),
            };
            store.create_agent(new).await.unwrap();
        }
        assert!(store.revoke_agent(&agent("3").agent_id).await.unwrap());
        let cache = AgentCache::default();
        assert_eq!(cache.warm(&store).await.unwrap(), 2);
        // Revoked in the store only (the hub would also invalidate): what
        // the cache answers now can only come from memory.
        assert!(store.revoke_agent(&agent("1").agent_id).await.unwrap());
        assert!(store.revoke_agent(&agent("2").agent_id).await.unwrap());
        let found = cache.by_key_hash(&store, "h1").await.unwrap();
        assert_eq!(found.as_deref(), Some(&agent("1")));
        let relay_id = RelayId::from_stored("r_2");
        let found = cache.by_relay_id(&store, &relay_id).await.unwrap();
        assert_eq!(found.as_deref(), Some(&agent("2")));
        let revoked_before = cache.by_key_hash(&store, "h3").await.unwrap();
        assert_eq!(revoked_before, None, "not loaded, so read from the store");
    }

    #[tokio::test]
    async fn a_created_agent_is_kept_from_the_start() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(&dir);
        let cache = AgentCache::default();
        let new = NewAgent {
            agent: agent("1"),
            key_hash: "h1".into(),
        };
        cache.create(&store, new).await.unwrap();
        // Revoked in the store only: the answer comes from memory.
        assert!(store.revoke_agent(&agent("1").agent_id).await.unwrap());
        let found = cache.by_key_hash(&store, "h1").await.unwrap();
        assert_eq!(found.as_deref(), Some(&agent("1")));
        let relay_id = RelayId::from_stored("r_1");
        let found = cache.by_relay_id(&store, &relay_id).await.unwrap();
        assert_eq!(found.as_deref(), Some(&agent("1")));
        cache.invalidate();
        assert_eq!(cache.by_key_hash(&store, "h1").await.unwrap(), None);
    }
}
