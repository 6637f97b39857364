//! The retry policy: exponential backoff with jitter (`docs/api-reference.md`, "Events and delivery").

use std::time::Duration;

use rand::Rng as _;

/// When to try a failed event again, and when to give up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    pub initial: Duration,
    pub max_delay: Duration,
    pub max_attempts: u32,
}

impl RetryPolicy {
    /// Delay before the next attempt after `attempts` have failed, or `None`
    /// when the policy gives up. Jitter keeps 50-100% of the nominal delay so
    /// that a burst of failures does not come back as a burst.
    pub fn next_delay(&self, attempts: u32) -> Option<Duration> {
        if attempts >= self.max_attempts {
            return None;
        }
        let exponent = attempts.saturating_sub(1).min(32);
        let nominal = self
            .initial
            .saturating_mul(1u32 << exponent.min(31))
            .min(self.max_delay);
        let factor = rand::rng().random_range(0.5..=1.0);
        Some(nominal.mul_f64(factor))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: RetryPolicy = RetryPolicy {
        initial: Duration::from_secs(1),
        max_delay: Duration::from_secs(600),
        max_attempts: 20,
    };

    #[test]
    fn doubles_from_the_initial_delay_up_to_the_cap() {
        for (attempts, nominal) in [(1, 1), (2, 2), (3, 4), (10, 512), (11, 600), (19, 600)] {
            let delay = POLICY.next_delay(attempts).unwrap();
            let nominal = Duration::from_secs(nominal);
            assert!(
                delay <= nominal && delay >= nominal / 2,
                "attempt {attempts}: {delay:?}"
            );
        }
    }

    #[test]
    fn gives_up_after_max_attempts() {
        assert!(POLICY.next_delay(20).is_none());
        assert!(POLICY.next_delay(u32::MAX).is_none());
    }
}
