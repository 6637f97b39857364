//! The per-agent cap on stored, undelivered events (`--agent-max-pending`).
//!
//! An agent that never connects, or one key posting test events, must not
//! fill the disk for every other agent. Counting an agent's queue on every
//! webhook would cost a query each; the count is cached per agent for
//! `FRESH` instead, so the cap may be overshot by what one agent's rate
//! limit lets through in that time (2,000 at the default 1000/s).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use lobster_shared::ids::AgentId;

use super::error::ApiError;
use crate::store::{Store, StoreError};

/// How long a counted queue length is believed.
const FRESH: Duration = Duration::from_secs(1);

pub struct BacklogCap {
    max: u64,
    counted: Mutex<HashMap<String, Counted>>,
}

/// One agent's last count, and whether a request is counting again.
#[derive(Default)]
struct Counted {
    at: Option<Instant>,
    count: u64,
    /// One request counts at a time: the others go on with the last count.
    /// Without this, every webhook arriving while the count is stale ran a
    /// `COUNT(*)` over the agent's whole backlog (hundreds at once under
    /// load, each slower the longer the backlog).
    refreshing: bool,
}

impl BacklogCap {
    pub fn new(max: u64) -> Self {
        BacklogCap {
            max,
            counted: Mutex::new(HashMap::new()),
        }
    }

    /// `Ok` while the agent's queue is under the cap, else `429
    /// agent_queue_full`.
    pub async fn check(&self, store: &Store, agent_id: &AgentId) -> Result<(), ApiError> {
        let count = self
            .count(agent_id.as_str(), || store.pending_count(agent_id))
            .await?;
        if count >= self.max {
            let mut err = ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "agent_queue_full",
                format!(
                    "this agent already has {count} undelivered events (the limit is {}); connect a listener to drain them, then retry",
                    self.max
                ),
            );
            err.retry_after_secs = Some(10);
            return Err(err);
        }
        Ok(())
    }

    /// The agent's queue length: the cached one while fresh, or while
    /// another request is counting; else counted with `count_now`.
    async fn count<F, Fut>(&self, agent_id: &str, count_now: F) -> Result<u64, StoreError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<u64, StoreError>>,
    {
        {
            let mut counted = self.lock();
            let entry = counted.entry(agent_id.to_owned()).or_default();
            let fresh = entry.at.is_some_and(|at| at.elapsed() < FRESH);
            if fresh || entry.refreshing {
                return Ok(entry.count);
            }
            entry.refreshing = true;
        }
        // Clears `refreshing` however this ends, a dropped request included.
        let refresh = Refresh {
            cap: self,
            agent_id,
        };
        let count = count_now().await?;
        let mut counted = self.lock();
        let entry = counted.entry(agent_id.to_owned()).or_default();
        (entry.at, entry.count) = (Some(Instant::now()), count);
        drop(counted);
        drop(refresh);
        Ok(count)
    }

    /// Forgets counts that are no longer fresh (called with the limiters' trim).
    pub fn trim(&self) {
        self.lock()
            .retain(|_, c| c.refreshing || c.at.is_some_and(|at| at.elapsed() < FRESH));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Counted>> {
        self.counted.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Marks the end of one request's count.
struct Refresh<'a> {
    cap: &'a BacklogCap,
    agent_id: &'a str,
}

impl Drop for Refresh<'_> {
    fn drop(&mut self) {
        if let Some(entry) = self.cap.lock().get_mut(self.agent_id) {
            entry.refreshing = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};

    use super::*;

    #[tokio::test]
    async fn one_request_counts_while_the_others_use_the_last_count() {
        let cap = BacklogCap::new(10);
        let counts = AtomicU64::new(0);
        let gate = tokio::sync::Notify::new();
        let slow_count = || async {
            counts.fetch_add(1, Ordering::SeqCst);
            gate.notified().await;
            Ok(7)
        };
        // The first request starts counting and waits inside the count;
        // 100 more arrive meanwhile and must not count too.
        let first = cap.count("agt_a", slow_count);
        tokio::pin!(first);
        assert!(futures_util::poll!(first.as_mut()).is_pending());
        for _ in 0..100 {
            let seen = cap.count("agt_a", slow_count).await.unwrap();
            assert_eq!(seen, 0, "nothing counted yet");
        }
        gate.notify_one();
        assert_eq!(first.await.unwrap(), 7);
        assert_eq!(counts.load(Ordering::SeqCst), 1);
        // Fresh now: answered from the cache.
        assert_eq!(cap.count("agt_a", slow_count).await.unwrap(), 7);
        assert_eq!(counts.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_failed_or_dropped_count_lets_the_next_request_count() {
        let cap = BacklogCap::new(10);
        let failed = cap
            .count("agt_a", || async { Err(StoreError::Closed) })
            .await;
        assert!(failed.is_err());
        // A request dropped in the middle of its count.
        let mut dropped = Box::pin(cap.count("agt_a", std::future::pending));
        assert!(futures_util::poll!(dropped.as_mut()).is_pending());
        drop(dropped);
        assert_eq!(cap.count("agt_a", || async { Ok(3) }).await.unwrap(), 3);
    }
}
