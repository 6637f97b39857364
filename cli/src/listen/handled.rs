//! The ids this listener handled successfully, remembered for a while.
//!
//! At-least-once delivery means an event can come again after it was
//! handled: its ack was lost with a dropped connection, or the relay timed
//! the lease out while the laptop slept. A redelivery of an id handled here
//! within [`REMEMBER`] is acked without being forwarded again, so the local
//! app sees each event once. An explicit replay (`"replay": true`, from
//! `events replay`) is always handled: the user asked for it.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a handled id is remembered; the relay's replay window is as long.
pub const REMEMBER: Duration = Duration::from_secs(10 * 60);
/// At most this many ids are remembered (about 10 MB); the oldest go first.
const CAPACITY: usize = 100_000;

/// Ids handled successfully, with when.
#[derive(Debug, Default)]
pub struct Handled {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    at: HashMap<Arc<str>, Instant>,
    /// Ids in the order they were remembered, for expiry: the same copy of
    /// each id as in `at`.
    order: VecDeque<(Instant, Arc<str>)>,
}

impl Handled {
    /// Remembers that `id` was handled successfully now.
    pub fn remember(&self, id: &str) {
        self.remember_at(id, Instant::now());
    }

    /// True when `id` was handled successfully within [`REMEMBER`].
    pub fn contains(&self, id: &str) -> bool {
        self.contains_at(id, Instant::now())
    }

    fn remember_at(&self, id: &str, now: Instant) {
        let mut inner = self.lock();
        inner.forget_before(now);
        let id: Arc<str> = Arc::from(id);
        inner.at.insert(id.clone(), now);
        inner.order.push_back((now, id));
        while inner.at.len() > CAPACITY {
            let Some((at, oldest)) = inner.order.pop_front() else {
                break;
            };
            inner.remove_if_still(&oldest, at);
        }
    }

    fn contains_at(&self, id: &str, now: Instant) -> bool {
        let inner = self.lock();
        inner
            .at
            .get(id)
            .is_some_and(|at| now.saturating_duration_since(*at) < REMEMBER)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic elsewhere cannot leave the map half-written in a way
        // that matters: at worst an event is forwarded twice.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Inner {
    fn forget_before(&mut self, now: Instant) {
        while let Some((at, _)) = self.order.front() {
            if now.saturating_duration_since(*at) < REMEMBER {
                break;
            }
            if let Some((at, id)) = self.order.pop_front() {
                self.remove_if_still(&id, at);
            }
        }
    }

    /// Forgets `id` unless it was remembered again after `at` (then a
    /// later entry in `order` stands for it).
    fn remove_if_still(&mut self, id: &str, at: Instant) {
        if self.at.get(id) == Some(&at) {
            self.at.remove(id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handled_ids_are_remembered_for_ten_minutes_then_forgotten() {
        let handled = Handled::default();
        let start = Instant::now();
        assert!(!handled.contains_at("evt_1", start));
        handled.remember_at("evt_1", start);
        assert!(handled.contains_at("evt_1", start + Duration::from_secs(9 * 60)));
        assert!(!handled.contains_at("evt_1", start + REMEMBER));
        // Expired entries leave the map when something new is remembered.
        handled.remember_at("evt_2", start + REMEMBER);
        assert_eq!(handled.lock().at.len(), 1);
        assert!(!handled.contains_at("evt_3", start));
    }

    #[test]
    fn memory_is_bounded_oldest_first() {
        let handled = Handled::default();
        let now = Instant::now();
        for n in 0..CAPACITY + 10 {
            handled.remember_at(&format!("evt_{n}"), now);
        }
        assert_eq!(handled.lock().at.len(), CAPACITY);
        assert!(!handled.contains_at("evt_0", now));
        assert!(handled.contains_at(&format!("evt_{}", CAPACITY + 9), now));
    }
}
