//! The delivery guarantee: after a `202`, no relay crash or restart loses the
//! event. Senders keep posting while the relay dies and comes back; every id
//! it accepted must reach the local app.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use lobster_e2e::{
    Listener, RelayOpts, Sender, Sink, WAIT, new_message_id, now_unix, relay_with_agent,
};
use tokio::sync::{Mutex, watch};

/// Concurrent senders, as many webhook sources would be.
const SENDERS: usize = 8;
/// How often one event is posted before the sender gives up on it.
const TRIES: usize = 4;
/// Upper bound for the backlog to drain after the restart.
const DRAIN: Duration = Duration::from_secs(60);

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Stop {
    /// SIGKILL: a crash.
    Kill,
    /// SIGTERM: a graceful drain; the relay must exit 0.
    Term,
}

/// What the senders saw, shared between them and the test.
struct Traffic {
    /// Ids the relay answered `202` (or `200` duplicate) for.
    accepted: Mutex<HashSet<String>>,
    accepted_count: watch::Sender<usize>,
    accepted_after_restart: AtomicUsize,
    not_accepted: AtomicUsize,
    /// `(run, up)`: which relay run is current and whether it is up.
    relay: watch::Sender<(u32, bool)>,
}

/// Posts its share of `total` events. A failed post is retried with the
/// same `webhook-id` once the relay is back, as a real sender would.
async fn send(traffic: Arc<Traffic>, url: String, sender: Sender, first: usize, total: usize) {
    for n in (first..total).step_by(SENDERS) {
        let body = format!(r#"{{"type":"durable","n":{n}}}"#);
        let msg_id = new_message_id();
        for _ in 0..TRIES {
            let mut relay = traffic.relay.subscribe();
            let Ok(state) = relay.wait_for(|(_, up)| *up).await.map(|s| *s) else {
                return;
            };
            let answer = sender
                .post_as(&url, body.as_bytes(), &msg_id, now_unix(), &[])
                .await;
            let id = match &answer {
                Ok(a) if a.status == 202 || (a.status == 200 && a.json["duplicate"] == true) => {
                    a.json["id"].as_str().map(str::to_owned)
                }
                _ => None,
            };
            if let Some(id) = id {
                if state.0 > 0 {
                    traffic
                        .accepted_after_restart
                        .fetch_add(1, Ordering::Relaxed);
                }
                traffic.accepted.lock().await.insert(id);
                traffic.accepted_count.send_modify(|count| *count += 1);
                break;
            }
            traffic.not_accepted.fetch_add(1, Ordering::Relaxed);
            if *relay.borrow() == state {
                break; // The relay did not go away: this event is refused.
            }
        }
    }
}

async fn survive(stop: Stop, total: usize) -> anyhow::Result<()> {
    let opts = RelayOpts::default().args(["--ack-timeout", "5s", "--retry-initial", "100ms"]);
    let (mut relay, agent) = relay_with_agent(opts, "durable").await?;
    let sink = Sink::start().await?;
    let _listener =
        Listener::ready(&relay.url(), &agent.api_key, &["--forward", &sink.url("/")]).await?;

    let traffic = Arc::new(Traffic {
        accepted: Mutex::new(HashSet::new()),
        accepted_count: watch::Sender::new(0),
        accepted_after_restart: AtomicUsize::new(0),
        not_accepted: AtomicUsize::new(0),
        relay: watch::Sender::new((0, true)),
    });
    let sender = Sender::default();
    let senders: Vec<_> = (0..SENDERS)
        .map(|first| {
            tokio::spawn(send(
                traffic.clone(),
                agent.webhook_url.clone(),
                sender.clone(),
                first,
                total,
            ))
        })
        .collect();

    let mut count = traffic.accepted_count.subscribe();
    tokio::time::timeout(WAIT, count.wait_for(|n| *n >= total / 2))
        .await
        .map_err(|_| anyhow::anyhow!("half of {total} events not accepted within {WAIT:?}"))??;
    traffic.relay.send_modify(|(_, up)| *up = false);
    let stopped = Instant::now();
    match stop {
        Stop::Kill => relay.kill9().await?,
        Stop::Term => {
            relay.terminate()?;
            let status = relay.wait_exit(WAIT).await?;
            assert_eq!(status.code(), Some(0), "SIGTERM drains and exits 0");
        }
    }
    relay.restart().await?;
    traffic
        .relay
        .send_modify(|(run, up)| (*run, *up) = (*run + 1, true));
    eprintln!("{stop:?}: relay back after {:?}", stopped.elapsed());
    for task in senders {
        task.await?;
    }

    let accepted = traffic.accepted.lock().await.clone();
    let drained = Instant::now();
    let waited = sink
        .wait_until("every accepted event", DRAIN, {
            let (mut seen, mut missing) = (0, accepted.clone());
            move |reqs| {
                for req in &reqs[seen..] {
                    missing.remove(req.event_id().unwrap_or_default());
                }
                seen = reqs.len();
                missing.is_empty()
            }
        })
        .await;
    let reqs = sink.requests();
    let delivered: HashSet<_> = reqs.iter().filter_map(|r| r.event_id()).collect();
    eprintln!(
        "{stop:?}: {total} posted, {} accepted ({} after the restart), {} posts not accepted, \
         {} delivered unique, {} duplicate deliveries, drained in {:?}",
        accepted.len(),
        traffic.accepted_after_restart.load(Ordering::Relaxed),
        traffic.not_accepted.load(Ordering::Relaxed),
        delivered.len(),
        reqs.len() - delivered.len(),
        drained.elapsed(),
    );
    let lost: Vec<_> = accepted
        .iter()
        .filter(|id| !delivered.contains(id.as_str()))
        .take(10)
        .collect();
    assert!(
        lost.is_empty(),
        "accepted events never delivered (first 10): {lost:?}"
    );
    waited?;
    assert!(
        traffic.accepted_after_restart.load(Ordering::Relaxed) > 0,
        "the restarted relay accepted nothing"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_accepted_event_is_lost_when_the_relay_is_killed() -> anyhow::Result<()> {
    survive(Stop::Kill, 1500).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_accepted_event_is_lost_across_a_graceful_restart() -> anyhow::Result<()> {
    survive(Stop::Term, 600).await
}
