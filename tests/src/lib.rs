//! End-to-end harness: the real `lobster-relay` binary, real HTTP and
//! WebSocket on loopback.
//!
//! Every test gets its own relay process, data dir and sink, binds port 0,
//! and waits on conditions under timeouts, never on sleeps. Child processes
//! are killed when their handle drops, so a failed test leaves nothing behind.
//!
//! Layout:
//! - [`browser`]: headless Chromium over the DevTools protocol.
//! - [`binary`]: finds the binary, building it once per test process.
//! - [`output`]: a child's stdout/stderr drained into a searchable log.
//! - [`process`]: spawning the binary with a clean environment; signals.
//! - [`relay`]: `lobster-relay server` on a loopback port; kill, SIGTERM,
//!   restart on the same port and data dir.
//! - [`api`]: admin and agent HTTP APIs ([`Agent`], [`Answer`]).
//! - [`sender`]: a Standard Webhooks sender, signing on its own.
//! - [`sink`]: the local app a listener forwards to, recording requests.
//! - [`listener`]: `lobster-relay listen` as a child process.
//! - [`http_agent`]: an agent session over SSE or long-poll, by hand.
//! - [`cli`]: the other agent commands run to completion, per user
//!   ([`CliUser`]: own config dir, OS keyring off or unreachable).
//! - [`services`]: PostgreSQL and Redis; `LOBSTER_E2E_BACKEND=postgres`
//!   runs every relay of the suite on PostgreSQL.
//! - [`balancer`]: a TCP proxy in front of several relays.
//! - [`pki`]: a throw-away CA and server certificates for TLS tests.
//! - [`proxies`]: real `tinyproxy`, `squid` and `nginx` on loopback, and their logs.

pub mod api;
pub mod balancer;
pub mod binary;
pub mod browser;
pub mod cli;
pub mod http_agent;
pub mod listener;
pub mod output;
pub mod pki;
pub mod process;
pub mod proxies;
pub mod relay;
pub mod sender;
pub mod services;
pub mod sink;

use std::future::Future;
use std::time::Duration;

pub use api::{Agent, Answer, attempts_of};
pub use cli::{CliUser, Run};
pub use listener::Listener;
pub use relay::{ADMIN_TOKEN, Relay, RelayOpts, TlsOpts, webhook_secret};
pub use sender::{Sender, new_message_id, now_unix, post_signed};
pub use sink::{Sink, SinkRequest};

/// Upper bound for anything a test waits on; normally far faster.
pub const WAIT: Duration = Duration::from_secs(30);

/// How often [`eventually`] polls.
const POLL_EVERY: Duration = Duration::from_millis(25);

/// Polls `check` until it returns `Ok`, for at most `timeout`; on timeout the
/// error names `what` and the last failure. For state only visible by asking
/// (an HTTP endpoint, a file); use the sink's or a log's waits where they fit.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<T>>,
{
    let mut ticks = tokio::time::interval(POLL_EVERY);
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        ticks.tick().await;
        match check().await {
            Ok(value) => return Ok(value),
            Err(err) if tokio::time::Instant::now() >= deadline => {
                anyhow::bail!("waited {timeout:?} for {what}; last: {err:#}")
            }
            Err(_) => {}
        }
    }
}

/// A fresh relay started with `opts` and one agent named `name` on it.
pub async fn relay_with_agent(opts: RelayOpts, name: &str) -> anyhow::Result<(Relay, Agent)> {
    let relay = Relay::start(opts).await?;
    let agent = relay.create_agent(name).await?;
    Ok((relay, agent))
}

/// The `id` of a webhook's `202 {"id", "duplicate": false}`; panics on any other answer.
#[track_caller]
pub fn accepted_id(answer: &Answer) -> String {
    assert_eq!(
        answer.status, 202,
        "expected 202 Accepted, got {}: {}",
        answer.status, answer.text
    );
    assert_eq!(
        answer.json["duplicate"], false,
        "a first delivery is not a duplicate: {}",
        answer.text
    );
    let id = answer.json["id"]
        .as_str()
        .unwrap_or_else(|| panic!("202 without an id: {}", answer.text));
    id.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn eventually_returns_the_first_success_and_times_out_with_the_last_error() {
        let mut calls = 0;
        let got = eventually("three calls", Duration::from_secs(5), || {
            calls += 1;
            let n = calls;
            async move {
                if n >= 3 {
                    Ok(n)
                } else {
                    anyhow::bail!("only {n}")
                }
            }
        })
        .await
        .unwrap();
        assert_eq!(got, 3);
        let never: anyhow::Result<()> = eventually("never", Duration::from_millis(60), || async {
            anyhow::bail!("nope")
        })
        .await;
        let err = never.unwrap_err();
        assert!(format!("{err:#}").contains("nope"), "{err:#}");
    }
}
