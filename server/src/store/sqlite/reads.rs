//! The store's reads, on the pool of reader connections (WAL readers do
//! not wait for the writer).

use super::{SqliteStore, queries};
use crate::store::*;

impl SqliteStore {
    pub(super) async fn list_events(
        &self,
        query: EventQuery,
    ) -> Result<Vec<EventSummary>, StoreError> {
        self.read(move |c| queries::list_events(c, &query)).await
    }

    pub(super) async fn event_detail(
        &self,
        agent_id: &str,
        id: &str,
    ) -> Result<Option<EventDetail>, StoreError> {
        let (agent_id, id) = (agent_id.to_owned(), id.to_owned());
        self.read(move |c| queries::event_detail(c, &agent_id, &id))
            .await
    }

    pub(super) async fn list_agents(&self) -> Result<Vec<AgentStats>, StoreError> {
        self.read(queries::list_agents).await
    }

    pub(super) async fn agent_by_key_hash(
        &self,
        key_hash: &str,
    ) -> Result<Option<Agent>, StoreError> {
        let key_hash = key_hash.to_owned();
        self.read(move |c| queries::agent_where(c, "key_hash", &key_hash))
            .await
    }

    pub(super) async fn agent_by_relay_id(
        &self,
        relay_id: &str,
    ) -> Result<Option<Agent>, StoreError> {
        let relay_id = relay_id.to_owned();
        self.read(move |c| queries::agent_where(c, "relay_id", &relay_id))
            .await
    }

    pub(super) async fn pending_count(&self, agent_id: &str) -> Result<u64, StoreError> {
        let agent_id = agent_id.to_owned();
        self.read(move |c| queries::pending_count(c, &agent_id))
            .await
    }

    pub(super) async fn agent_count(&self) -> Result<u64, StoreError> {
        self.read(|c| {
            Ok(c.query_row("SELECT COUNT(*) FROM agents", [], |r| r.get::<_, i64>(0))? as u64)
        })
        .await
    }

    pub(super) async fn revoked_since(&self, since: Millis) -> Result<Vec<String>, StoreError> {
        self.read(move |c| queries::revoked_since(c, since)).await
    }
}
