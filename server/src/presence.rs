//! Which agents have a session on this instance, told to the others through
//! a shared store (PostgreSQL), so that push delivery everywhere steps
//! aside while a session of the agent is connected anywhere
//! (`session::callback`; docs/api-reference.md, "Push delivery").
//!
//! Each instance marks its connected agents until [`HOLD`] from now,
//! renewed every [`EVERY`], at once when an agent's first session opens
//! here, and clears an agent's mark when its last one closes. A killed
//! instance's marks run out after [`HOLD`]. On SQLite there is one instance
//! and nothing to tell.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use lobster_shared::ids::AgentId;
use tokio_util::sync::CancellationToken;

use crate::hub::Hub;
use crate::store::{Millis, Store, now_ms};

/// How often marks are renewed, and how often a callback reads them.
pub const EVERY: Duration = Duration::from_secs(5);
/// How long a mark lasts unless renewed.
pub const HOLD: Duration = Duration::from_secs(15);

/// Marks this instance's connected agents until `shutdown`, then clears
/// them.
pub async fn run(hub: Arc<Hub>, store: Store, shutdown: CancellationToken) {
    let mut marked: HashSet<AgentId> = HashSet::new();
    let mut renew = tokio::time::interval(EVERY);
    renew.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let all = tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = renew.tick() => true,
            _ = hub.presence_changed.notified() => false,
        };
        let online: HashSet<AgentId> = hub.connected_agents().into_iter().collect();
        // A change writes only what changed; the renewal writes everyone.
        let mark: Vec<AgentId> = if all {
            online.iter().cloned().collect()
        } else {
            online.difference(&marked).cloned().collect()
        };
        let offline: Vec<AgentId> = marked.difference(&online).cloned().collect();
        let until = now_ms() + HOLD.as_millis() as Millis;
        match store.mark_presence(mark, offline, until).await {
            Ok(()) => marked = online,
            Err(err) => {
                tracing::warn!(error = %err, "cannot mark connected agents; push delivery on other instances may compete with their sessions")
            }
        }
    }
    let gone: Vec<AgentId> = marked.into_iter().collect();
    if !gone.is_empty()
        && let Err(err) = store.mark_presence(Vec::new(), gone, 0).await
    {
        tracing::warn!(error = %err, "cannot clear connected agents; their marks run out by themselves");
    }
}
