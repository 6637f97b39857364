//! [`AgentDirectory`]: how handlers find an agent.

use std::sync::Arc;

use lobster_shared::ids::RelayId;

use crate::hub::Hub;
use crate::store::{Agent, NewAgent, Store, StoreError};

/// Agent lookups for request handlers: the store, behind the cache that
/// the hub invalidates on every revocation.
#[derive(Clone)]
pub struct AgentDirectory {
    store: Store,
    hub: Arc<Hub>,
}

impl AgentDirectory {
    pub fn new(store: Store, hub: Arc<Hub>) -> Self {
        AgentDirectory { store, hub }
    }

    /// The live agent with this relay id (webhook URLs).
    pub async fn by_relay_id(&self, relay_id: &RelayId) -> Result<Option<Arc<Agent>>, StoreError> {
        self.hub.agents().by_relay_id(&self.store, relay_id).await
    }

    /// Stores a new agent, kept in the cache from the start.
    pub async fn create(&self, new: NewAgent) -> Result<(), StoreError> {
        self.hub.agents().create(&self.store, new).await
    }

    /// The live agent whose API key hashes to `key_hash` (agent requests).
    pub async fn by_key_hash(&self, key_hash: &str) -> Result<Option<Arc<Agent>>, StoreError> {
        self.hub.agents().by_key_hash(&self.store, key_hash).await
    }
}
