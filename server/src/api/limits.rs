//! Rate limits (GCRA, via governor): ingest per agent and for the relay,
//! and failed authentications/signatures per client IP.
//!
//! A client IP that fails too often (bad API key, bad admin token, bad
//! signature, unknown relay id) is refused with `429` and `Retry-After` on
//! those endpoints until its limiter has room again; other clients are not
//! affected. The client IP is the peer's, or, when the peer is a trusted
//! proxy, the right-most `X-Forwarded-For` entry that is not one.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::extract::ConnectInfo;
use axum::http::request::Parts;
use ipnet::IpNet;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, Quota, RateLimiter};
use lobster_shared::ids::AgentId;

use super::error::ApiError;
use crate::config::Rate;

/// The relay's ingest limiters. Keyed state is trimmed periodically so that
/// memory follows the agents active recently, not every agent ever seen.
pub struct Limits {
    per_agent: Option<DefaultKeyedRateLimiter<AgentId>>,
    global: Option<DefaultDirectRateLimiter>,
    /// Failures per client IP; `None` until configured.
    failures: Option<DefaultKeyedRateLimiter<IpAddr>>,
    /// Client IPs over their failure limit, and until when.
    blocked: Mutex<HashMap<IpAddr, Instant>>,
    trusted_proxies: Vec<IpNet>,
    clock: DefaultClock,
    /// Failed authentications are logged at most this often...
    failure_log: DefaultDirectRateLimiter,
    /// ...and the ones not logged are counted into the next line.
    failures_unlogged: AtomicU64,
}

/// Rate `count/per`, with a burst of twice the count (`docs/api-reference.md`, "Server configuration").
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
            failures: None,
            blocked: Mutex::new(HashMap::new()),
            trusted_proxies: Vec::new(),
            clock: DefaultClock::default(),
            failure_log: RateLimiter::direct(Quota::per_second(NonZeroU32::MIN)),
            failures_unlogged: AtomicU64::new(0),
        }
    }

    /// Limits failed authentications per client IP to `rate` (burst twice
    /// that); `X-Forwarded-For` is believed only from `trusted_proxies`.
    pub fn with_failure_limit(mut self, rate: Rate, trusted_proxies: Vec<IpNet>) -> Self {
        self.failures = Some(RateLimiter::keyed(quota(rate)));
        self.trusted_proxies = trusted_proxies;
        self
    }

    /// The client's address: the peer, or what a trusted proxy says.
    pub fn client_ip(&self, parts: &Parts) -> Option<IpAddr> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()?
            .0
            .ip()
            .to_canonical();
        Some(forwarded_client(
            peer,
            &parts.headers,
            &self.trusted_proxies,
        ))
    }

    /// Refuses a client IP that failed too often recently.
    pub fn check_ip(&self, ip: Option<IpAddr>) -> Result<(), ApiError> {
        let Some(ip) = ip.map(limit_key) else {
            return Ok(());
        };
        let blocked = self.blocked.lock().unwrap_or_else(|e| e.into_inner());
        match blocked.get(&ip) {
            Some(until) if *until > Instant::now() => {
                Err(too_many_failures(*until - Instant::now()))
            }
            _ => Ok(()),
        }
    }

    /// A failed authentication (`what`: "agent key", "admin token") from
    /// `ip`: logged (at most a line a second, with the client IP, never the
    /// credential) and counted. Returns the `429` to answer instead of
    /// `401` when the IP is, or now goes, over its limit.
    pub fn refuse(&self, ip: Option<IpAddr>, what: &'static str) -> Option<ApiError> {
        if self.failure_log.check().is_ok() {
            let suppressed = self.failures_unlogged.swap(0, Ordering::Relaxed);
            tracing::warn!(
                client_ip = ip.map(tracing::field::display),
                credential = what,
                suppressed,
                "authentication failed"
            );
        } else {
            self.failures_unlogged.fetch_add(1, Ordering::Relaxed);
        }
        if let Err(blocked) = self.check_ip(ip) {
            return Some(blocked);
        }
        self.record_failure(ip)
    }

    /// Counts a failure of `ip`; returns the `429` to answer instead when
    /// this one goes over the limit.
    pub fn record_failure(&self, ip: Option<IpAddr>) -> Option<ApiError> {
        let (ip, failures) = (limit_key(ip?), self.failures.as_ref()?);
        let not_until = failures.check_key(&ip).err()?;
        let wait = not_until.wait_time_from(self.clock.now());
        let until = Instant::now() + wait;
        self.blocked
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(ip, until);
        tracing::warn!(client_ip = %ip, retry_after_s = wait.as_secs(), "too many failed authentications; refusing this client for a while");
        Some(too_many_failures(wait))
    }

    /// Admits one webhook for `agent_id`, or says when to come back.
    pub fn check(&self, agent_id: &AgentId) -> Result<(), ApiError> {
        if let Some(global) = &self.global
            && let Err(not_until) = global.check()
        {
            return Err(limited(
                "the relay",
                not_until.wait_time_from(self.clock.now()),
            ));
        }
        if let Some(per_agent) = &self.per_agent
            && let Err(not_until) = per_agent.check_key(agent_id)
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
        if let Some(failures) = &self.failures {
            failures.retain_recent();
            failures.shrink_to_fit();
        }
        let now = Instant::now();
        self.blocked
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|_, until| *until > now);
    }
}

/// The right-most `X-Forwarded-For` address that is not a trusted proxy,
/// when the peer is one; else the peer. Entries a client wrote itself sit
/// left of what the proxies appended, so they are never reached.
pub fn forwarded_client(
    peer: IpAddr,
    headers: &axum::http::HeaderMap,
    trusted: &[IpNet],
) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    let hops: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    let mut client = peer;
    for hop in hops.iter().rev() {
        match hop.parse::<IpAddr>() {
            Ok(ip) => {
                client = ip.to_canonical();
                if !is_trusted(&client) {
                    break;
                }
            }
            // Garbage where an address should be: trust nothing left of it.
            Err(_) => break,
        }
    }
    client
}

/// What failures are counted against: an IPv4 address, or the /64 an IPv6
/// address is in (one host usually holds a whole /64, and could otherwise
/// rotate through it to dodge the limit).
fn limit_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => {
            let prefix = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(prefix.into())
        }
    }
}

fn too_many_failures(wait: Duration) -> ApiError {
    let secs = wait.as_secs_f64().ceil().max(1.0) as u64;
    let mut err = ApiError::new(
        axum::http::StatusCode::TOO_MANY_REQUESTS,
        "too_many_failures",
        format!(
            "too many failed authentications or signatures from this address; retry after {secs} s"
        ),
    );
    err.retry_after_secs = Some(secs);
    err
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
            limits.check(&AgentId::from_stored("agt_a")).unwrap();
        }
        let err = limits.check(&AgentId::from_stored("agt_a")).unwrap_err();
        assert_eq!(err.status, axum::http::StatusCode::TOO_MANY_REQUESTS);
        assert!(err.retry_after_secs.unwrap() >= 1);
        limits
            .check(&AgentId::from_stored("agt_b"))
            .expect("agents are limited separately");
    }

    #[test]
    fn failures_block_one_ip_only_and_expire() {
        let limits = Limits::new(None, None).with_failure_limit(
            Rate {
                count: 2,
                per: Duration::from_secs(60),
            },
            Vec::new(),
        );
        let (a, b) = (
            Some("10.0.0.1".parse().unwrap()),
            Some("10.0.0.2".parse().unwrap()),
        );
        for _ in 0..4 {
            assert!(limits.record_failure(a).is_none());
        }
        let err = limits
            .record_failure(a)
            .expect("the fifth failure is over the burst");
        assert_eq!(err.status, axum::http::StatusCode::TOO_MANY_REQUESTS);
        assert!(err.retry_after_secs.unwrap() >= 1);
        assert!(limits.check_ip(a).is_err());
        assert!(limits.check_ip(b).is_ok());
        assert!(limits.check_ip(None).is_ok());
        limits.trim();
        assert!(limits.check_ip(a).is_err(), "still blocked after a trim");
    }

    #[test]
    fn ipv6_failures_count_per_64() {
        let limits = Limits::new(None, None).with_failure_limit(
            Rate {
                count: 1,
                per: Duration::from_secs(60),
            },
            Vec::new(),
        );
        for host in 1..=2 {
            let ip = format!("2001:db8:1:2::{host}").parse().ok();
            assert!(limits.record_failure(ip).is_none());
        }
        let same_64 = "2001:db8:1:2:ffff::9".parse().ok();
        assert!(limits.record_failure(same_64).is_some());
        assert!(limits.check_ip("2001:db8:1:2::77".parse().ok()).is_err());
        assert!(limits.check_ip("2001:db8:1:3::1".parse().ok()).is_ok());
    }

    #[test]
    fn forwarded_for_counts_only_from_trusted_proxies() {
        let trusted = crate::config::parse_cidrs("10.0.0.0/8").unwrap();
        let mut headers = axum::http::HeaderMap::new();
        headers.insert(
            "x-forwarded-for",
            "6.6.6.6, 1.2.3.4, 10.0.0.9".parse().unwrap(),
        );
        let proxy: IpAddr = "10.0.0.5".parse().unwrap();
        let stranger: IpAddr = "9.9.9.9".parse().unwrap();
        assert_eq!(
            forwarded_client(proxy, &headers, &trusted).to_string(),
            "1.2.3.4"
        );
        assert_eq!(forwarded_client(stranger, &headers, &trusted), stranger);
        assert_eq!(forwarded_client(proxy, &headers, &[]), proxy);
        headers.insert("x-forwarded-for", "1.2.3.4, junk".parse().unwrap());
        assert_eq!(forwarded_client(proxy, &headers, &trusted), proxy);
        headers.remove("x-forwarded-for");
        assert_eq!(forwarded_client(proxy, &headers, &trusted), proxy);
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
        limits.check(&AgentId::from_stored("agt_a")).unwrap();
        limits.check(&AgentId::from_stored("agt_b")).unwrap();
        assert!(limits.check(&AgentId::from_stored("agt_c")).is_err());
    }
}
