//! The per-agent cap on stored, undelivered events (`--agent-max-pending`).
//!
//! An agent that never connects, or one key posting test events, must not
//! fill the disk for every other agent. Counting an agent's queue on every
//! webhook would cost a query each; the count is cached per agent for
//! [`FRESH`] instead, so the cap may be overshot by what one agent's rate
//! limit lets through in that time (2,000 at the default 1000/s).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::http::StatusCode;

use super::ApiError;
use crate::store::Store;

/// How long a counted queue length is believed.
const FRESH: Duration = Duration::from_secs(1);

pub struct BacklogCap {
    max: u64,
    counted: Mutex<HashMap<String, (Instant, u64)>>,
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
    pub async fn check(&self, store: &Store, agent_id: &str) -> Result<(), ApiError> {
        let cached = self
            .lock()
            .get(agent_id)
            .filter(|(at, _)| at.elapsed() < FRESH)
            .map(|(_, count)| *count);
        let count = match cached {
            Some(count) => count,
            None => {
                let count = store.pending_count(agent_id).await?;
                self.lock()
                    .insert(agent_id.to_owned(), (Instant::now(), count));
                count
            }
        };
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

    /// Forgets counts that are no longer fresh (called with the limiters' trim).
    pub fn trim(&self) {
        self.lock().retain(|_, (at, _)| at.elapsed() < FRESH);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Instant, u64)>> {
        self.counted.lock().unwrap_or_else(|e| e.into_inner())
    }
}
