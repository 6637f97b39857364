//! Ingest rate limits (GCRA, via governor): per agent and for the relay.

use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, Quota, RateLimiter};

use super::ApiError;
use crate::config::Rate;

/// The relay's ingest limiters. Keyed state is trimmed periodically so that
/// memory follows the agents active recently, not every agent ever seen.
pub struct Limits {
    per_agent: Option<DefaultKeyedRateLimiter<String>>,
    global: Option<DefaultDirectRateLimiter>,
    clock: DefaultClock,
}

/// Rate `count/per`, with a burst of twice the count (contract section 8).
fn quota(rate: Rate) -> Quota {
    let count = NonZeroU32::new(rate.count).unwrap_or(NonZeroU32::MIN);
    let burst = NonZeroU32::new(rate.count.saturating_mul(2)).unwrap_or(count);
    let period = (rate.per / count.get()).max(Duration::from_nanos(1));
    Quota::with_period(period)
        .expect("period is positive")
        .allow_burst(burst)
}

impl Limits {
    pub fn new(per_agent: Option<Rate>, global: Option<Rate>) -> Self {
        Limits {
            per_agent: per_agent.map(|r| RateLimiter::keyed(quota(r))),
            global: global.map(|r| RateLimiter::direct(quota(r))),
            clock: DefaultClock::default(),
        }
    }

    /// Admits one webhook for `agent_id`, or says when to come back.
    pub fn check(&self, agent_id: &str) -> Result<(), ApiError> {
        if let Some(global) = &self.global
            && let Err(not_until) = global.check()
        {
            return Err(limited(
                "the relay",
                not_until.wait_time_from(self.clock.now()),
            ));
        }
        if let Some(per_agent) = &self.per_agent
            && let Err(not_until) = per_agent.check_key(&agent_id.to_owned())
        {
            return Err(limited(
                "this agent",
                not_until.wait_time_from(self.clock.now()),
            ));
        }
        Ok(())
    }

    /// Forgets keys whose limiters are back at rest.
    pub fn trim(&self) {
        if let Some(per_agent) = &self.per_agent {
            per_agent.retain_recent();
            per_agent.shrink_to_fit();
        }
    }
}

fn limited(who: &str, wait: Duration) -> ApiError {
    let secs = wait.as_secs_f64().ceil().max(1.0) as u64;
    let mut err = ApiError::new(
        axum::http::StatusCode::TOO_MANY_REQUESTS,
        "rate_limited",
        format!("too many webhooks for {who}; retry after {secs} s"),
    );
    err.retry_after_secs = Some(secs);
    err
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_of_twice_the_rate_passes_then_429_with_retry_after() {
        let limits = Limits::new(
            Some(Rate {
                count: 5,
                per: Duration::from_secs(60),
            }),
            None,
        );
        for _ in 0..10 {
            limits.check("agt_a").unwrap();
        }
        let err = limits.check("agt_a").unwrap_err();
        assert_eq!(err.status, axum::http::StatusCode::TOO_MANY_REQUESTS);
        assert!(err.retry_after_secs.unwrap() >= 1);
        limits
            .check("agt_b")
            .expect("agents are limited separately");
    }

    #[test]
    fn the_global_limit_covers_all_agents() {
        let limits = Limits::new(
            None,
            Some(Rate {
                count: 1,
                per: Duration::from_secs(60),
            }),
        );
        limits.check("agt_a").unwrap();
        limits.check("agt_b").unwrap();
        assert!(limits.check("agt_c").is_err());
    }
}
