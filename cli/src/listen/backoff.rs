//! Reconnect delays: exponential with full jitter, reset after a stable connection.
//!
//! The n-th retry (from 0) waits a uniformly random time in
//! `[0, min(CAP, FIRST * 2^n))`: the first within 1 s, none above 10 s.
//! Full jitter spreads a crowd of listeners that all lost the same relay, so
//! they do not reconnect in lockstep when it comes back.

use std::time::Duration;

/// Ceiling of the first retry's delay.
pub const FIRST: Duration = Duration::from_secs(1);
/// Ceiling of every delay.
pub const CAP: Duration = Duration::from_secs(10);
/// A connection that stayed up this long after `ready` resets the backoff.
pub const STABLE: Duration = Duration::from_secs(10);

/// The retry counter behind the delays.
#[derive(Debug, Clone, Default)]
pub struct Backoff {
    retries: u32,
}

impl Backoff {
    /// A backoff whose next delay is the first one.
    pub fn new() -> Self {
        Self::default()
    }

    /// The ceiling of the next delay.
    pub fn ceiling(&self) -> Duration {
        let factor = 1u32.checked_shl(self.retries.min(16)).unwrap_or(u32::MAX);
        FIRST.saturating_mul(factor).min(CAP)
    }

    /// The next delay, with `fraction` in `[0, 1)` as the jitter.
    pub fn next_with(&mut self, fraction: f64) -> Duration {
        let delay = self.ceiling().mul_f64(fraction.clamp(0.0, 1.0));
        self.retries = self.retries.saturating_add(1);
        delay.min(CAP)
    }

    /// The next delay, with random jitter.
    pub fn next_delay(&mut self) -> Duration {
        self.next_with(rand::random::<f64>())
    }

    /// Starts over from the first delay.
    pub fn reset(&mut self) {
        self.retries = 0;
    }

    /// Accounts for a connection that stayed up `up_for` after `ready`:
    /// long enough, and the next drop is treated as the first.
    pub fn connection_lasted(&mut self, up_for: Duration) {
        if up_for >= STABLE {
            self.reset();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ceilings_double_from_one_second_up_to_ten() {
        let mut backoff = Backoff::new();
        let ceilings: Vec<u64> = (0..8)
            .map(|_| {
                let ceiling = backoff.ceiling().as_secs();
                backoff.next_with(0.5);
                ceiling
            })
            .collect();
        assert_eq!(ceilings, [1, 2, 4, 8, 10, 10, 10, 10]);
    }

    #[test]
    fn the_first_delay_is_within_a_second_and_none_above_ten() {
        for fraction in [0.0, 0.3, 0.999_999, 1.0, 7.0] {
            let mut backoff = Backoff::new();
            assert!(backoff.next_with(fraction) <= FIRST);
            for _ in 0..100 {
                assert!(backoff.next_with(fraction) <= CAP);
            }
        }
        let mut backoff = Backoff::new();
        for _ in 0..1_000 {
            assert!(backoff.next_delay() <= CAP);
        }
    }

    #[test]
    fn a_stable_connection_resets_and_a_short_one_does_not() {
        let mut backoff = Backoff::new();
        for _ in 0..5 {
            backoff.next_delay();
        }
        backoff.connection_lasted(Duration::from_secs(3));
        assert_eq!(backoff.ceiling(), CAP);
        backoff.connection_lasted(STABLE);
        assert_eq!(backoff.ceiling(), FIRST);
    }
}
