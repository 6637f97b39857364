//! The store's time. The relay reads the system clock; the store tests use
//! an adjustable one and move it past a deadline instead of sleeping.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use super::types::{Millis, now_ms};

/// Milliseconds since the Unix epoch, as the store stamps and compares
/// them (leases, retries, retention). Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Clock {
    /// `None`: the system clock. Else added to it, moved by
    /// [`Clock::advance`].
    offset: Option<Arc<AtomicI64>>,
}

impl Clock {
    /// The system clock.
    pub fn system() -> Self {
        Clock::default()
    }

    /// The system clock plus an offset that [`Clock::advance`] moves.
    pub fn adjustable() -> Self {
        Clock {
            offset: Some(Arc::new(AtomicI64::new(0))),
        }
    }

    pub fn now(&self) -> Millis {
        let offset = self
            .offset
            .as_ref()
            .map_or(0, |offset| offset.load(Ordering::Relaxed));
        now_ms() + offset
    }

    /// Moves an adjustable clock forward (and every clone of it).
    ///
    /// # Panics
    /// On the system clock, which no one may move.
    pub fn advance(&self, by: Duration) {
        let offset = self
            .offset
            .as_ref()
            .expect("only an adjustable clock moves (Clock::adjustable)");
        offset.fetch_add(by.as_millis() as Millis, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_adjustable_clock_moves_for_every_clone() {
        let clock = Clock::adjustable();
        let copy = clock.clone();
        let before = copy.now();
        clock.advance(Duration::from_secs(60));
        assert!(copy.now() >= before + 60_000);
        let system = Clock::system();
        assert!((system.now() - now_ms()).abs() < 1_000);
    }
}
