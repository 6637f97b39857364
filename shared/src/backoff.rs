//! Reconnect delays: exponential with full jitter, reset after a stable
//! connection. The contract's policy for agents (`listen`, `wait`); the
//! benchmark's simulated agents use it too, with other limits if asked.
//!
//! The n-th retry (from 0) waits a uniformly random time in
//! `[0, min(CAP, FIRST * 2^n))`: the first within 250 ms, none above 10 s.
//! Full jitter spreads a crowd of listeners that all lost the same relay, so
//! they do not reconnect in lockstep when it comes back.
//!
//! When the relay closes the session saying it is restarting (close code
//! 1012), its successor usually listens within a second or two, and a
//! doubling backoff would leave most listeners waiting seconds after it
//! does. So the next [`RESTART_TRIES`] retries each wait within
//! [`RESTART_STEP`] instead, without growing the backoff; a refused
//! connect costs the relay's host next to nothing.
//!
//! A stable connection that drops without that word (the relay was killed,
//! its host rebooted, the network blinked) most often comes back as soon:
//! the next [`DROP_TRIES`] retries each wait within [`FIRST`], again
//! without growing, before the doubling starts.

use std::time::Duration;

/// Ceiling of the first retry's delay.
pub const FIRST: Duration = Duration::from_millis(250);
/// Ceiling of every delay.
pub const CAP: Duration = Duration::from_secs(10);
/// A connection that stayed up this long after `ready` resets the backoff.
pub const STABLE: Duration = Duration::from_secs(10);

/// Ceiling of each retry's delay after the relay said it is restarting.
pub const RESTART_STEP: Duration = Duration::from_millis(500);
/// Retries at [`RESTART_STEP`] after the relay said it is restarting: about
/// five seconds of them on average, then the usual backoff.
pub const RESTART_TRIES: u32 = 20;

/// Retries at [`FIRST`] after a stable connection dropped: about a second
/// and a half of them on average, then the doubling.
pub const DROP_TRIES: u32 = 12;

/// The retry counter behind the delays.
#[derive(Debug, Clone)]
pub struct Backoff {
    first: Duration,
    cap: Duration,
    retries: u32,
    /// Retries left that wait within `flat_step` and do not grow the
    /// backoff: after a restart announced by the relay, or a stable
    /// connection dropped.
    flat_tries: u32,
    flat_step: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self::with_limits(FIRST, CAP)
    }
}

impl Backoff {
    /// A backoff whose next delay is the first one.
    pub fn new() -> Self {
        Self::default()
    }

    /// Like [`Backoff::new`] with another first ceiling and cap (the
    /// benchmark's `--backoff-first` and `--backoff-cap`).
    pub fn with_limits(first: Duration, cap: Duration) -> Self {
        Backoff {
            first,
            cap,
            retries: 0,
            flat_tries: 0,
            flat_step: first,
        }
    }

    /// The ceiling of the next delay.
    pub fn ceiling(&self) -> Duration {
        if self.flat_tries > 0 {
            return self.flat_step.min(self.cap);
        }
        let factor = 1u32.checked_shl(self.retries.min(16)).unwrap_or(u32::MAX);
        self.first.saturating_mul(factor).min(self.cap)
    }

    /// The next delay, with `fraction` in `[0, 1)` as the jitter.
    pub fn next_with(&mut self, fraction: f64) -> Duration {
        let delay = self.ceiling().mul_f64(fraction.clamp(0.0, 1.0));
        if self.flat_tries > 0 {
            self.flat_tries -= 1;
        } else {
            self.retries = self.retries.saturating_add(1);
        }
        delay.min(self.cap)
    }

    /// The relay closed the session saying it is restarting: retry at short
    /// intervals for a while (see the module's documentation).
    pub fn relay_restarting(&mut self) {
        self.flat_tries = RESTART_TRIES;
        self.flat_step = RESTART_STEP;
    }

    /// The next delay, with random jitter.
    pub fn next_delay(&mut self) -> Duration {
        self.next_with(rand::random::<f64>())
    }

    /// Starts over from the first delay.
    pub fn reset(&mut self) {
        self.retries = 0;
        self.flat_tries = 0;
    }

    /// Accounts for a connection that stayed up `up_for` after `ready` and
    /// then dropped: long enough, and the backoff starts over with
    /// [`DROP_TRIES`] quick retries (see the module's documentation).
    pub fn connection_lasted(&mut self, up_for: Duration) {
        if up_for >= STABLE {
            self.reset();
            self.flat_tries = DROP_TRIES;
            self.flat_step = self.first;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ceilings_ms(backoff: &mut Backoff, n: usize) -> Vec<u128> {
        (0..n)
            .map(|_| {
                let ceiling = backoff.ceiling().as_millis();
                backoff.next_with(0.5);
                ceiling
            })
            .collect()
    }

    #[test]
    fn ceilings_double_from_a_quarter_second_up_to_ten() {
        let ceilings = ceilings_ms(&mut Backoff::new(), 9);
        assert_eq!(
            ceilings,
            [250, 500, 1_000, 2_000, 4_000, 8_000, 10_000, 10_000, 10_000]
        );
    }

    #[test]
    fn a_restart_announced_by_the_relay_retries_quickly_then_backs_off_as_before() {
        let mut backoff = Backoff::new();
        backoff.next_with(0.5);
        backoff.next_with(0.5);
        backoff.relay_restarting();
        let ceilings = ceilings_ms(&mut backoff, RESTART_TRIES as usize + 2);
        let (quick, after) = ceilings.split_at(RESTART_TRIES as usize);
        assert!(
            quick.iter().all(|c| *c == RESTART_STEP.as_millis()),
            "{ceilings:?}"
        );
        assert_eq!(
            after,
            [1_000, 2_000],
            "the quick retries did not grow the backoff"
        );
    }

    #[test]
    fn the_first_delay_is_within_a_quarter_second_and_none_above_ten() {
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
        for _ in 0..7 {
            backoff.next_delay();
        }
        backoff.connection_lasted(Duration::from_secs(3));
        assert_eq!(backoff.ceiling(), CAP);
        backoff.connection_lasted(STABLE);
        assert_eq!(backoff.ceiling(), FIRST);
    }

    #[test]
    fn a_dropped_stable_connection_retries_quickly_then_doubles_from_the_first() {
        let mut backoff = Backoff::new();
        for _ in 0..7 {
            backoff.next_delay();
        }
        backoff.connection_lasted(STABLE);
        let ceilings = ceilings_ms(&mut backoff, DROP_TRIES as usize + 3);
        let (quick, after) = ceilings.split_at(DROP_TRIES as usize);
        assert!(quick.iter().all(|c| *c == 250), "{ceilings:?}");
        assert_eq!(after, [250, 500, 1_000]);
        // A restart announced on that drop takes precedence.
        backoff.connection_lasted(STABLE);
        backoff.relay_restarting();
        assert_eq!(backoff.ceiling(), RESTART_STEP);
    }
}
