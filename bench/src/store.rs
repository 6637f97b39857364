//! `store`: the SQLite store alone, in this process, without HTTP or
//! WebSocket: what the relay's storage costs per delivered event.
//!
//! `--senders` tasks insert events for one agent as the webhook handler
//! does (each awaits its fsynced commit before the next), while one session
//! with a window of `--window` slots takes the events pushed to it, acks
//! them (stored in the background, as the relay's sessions do) and leases
//! what queued while its window was full. Reported per event: the writer
//! thread's CPU, the whole process's CPU and the bytes written, read from
//! `/proc` around the run. The figures leave out everything but the store,
//! so they move only with it: the way to compare two builds of the storage
//! layer on a shared, noisy host.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use bytes::Bytes;
use lobster_server::retry::RetryPolicy;
use lobster_server::store::push::Port;
use lobster_server::store::{Agent, ClaimRequest, NewAgent, NewEvent, Store, now_ms};
use lobster_shared::ids::{AgentId, EventId, RelayId, SessionId, WorkspaceName};
use serde_json::json;
use tokio::task::JoinSet;

use crate::fleet;
use crate::stats::{Outcome, Setup};

#[derive(Debug, clap::Args)]
pub struct StoreArgs {
    /// Events to store and deliver
    #[arg(long, default_value_t = 50_000)]
    events: usize,
    /// Webhooks stored at once (concurrent inserts)
    #[arg(long, default_value_t = 64)]
    senders: usize,
    /// The session's window: events leased and not yet acked
    #[arg(long, default_value_t = 100)]
    window: usize,
    /// Bytes of each event's body
    #[arg(long, default_value_t = 1000)]
    body_bytes: usize,
}

/// `/proc` figures of this process at one moment.
struct Sample {
    at: Instant,
    writer: Duration,
    process: Duration,
    written: u64,
}

impl Sample {
    fn now() -> anyhow::Result<Sample> {
        let pid = std::process::id();
        Ok(Sample {
            at: Instant::now(),
            writer: fleet::thread_cpu_time(pid, "sqlite-writer")
                .context("no sqlite-writer thread in this process")?,
            process: fleet::cpu_time(pid).context("cannot read /proc/self/stat")?,
            written: fleet::bytes_written(pid).context("cannot read /proc/self/io")?,
        })
    }
}

pub async fn run(args: &StoreArgs, setup: Setup) -> anyhow::Result<Outcome> {
    let dir = tempfile::tempdir()?;
    let retry = RetryPolicy {
        initial: Duration::from_secs(1),
        max_delay: Duration::from_secs(60),
        max_attempts: 10,
    };
    let store = Store::open_sqlite(&dir.path().join("relay.db"), retry)?;
    let agent = AgentId::generate();
    store
        .create_agent(NewAgent {
            agent: Agent {
                agent_id: agent.clone(),
                name: "bench".into(),
                workspace: WorkspaceName::default_workspace(),
                relay_id: RelayId::generate(),
            },
            key_hash: "bench".into(),
        })
        .await?;
    let session = SessionId::generate();
    let port = Port::new(&session, false, 60_000, args.window);
    let ports = store
        .ports()
        .context("this store pushes to no session")?
        .clone();
    ports.attach(&agent, port.clone());

    let before = Sample::now()?;
    let delivered = tokio::spawn(consume(
        store.clone(),
        agent.clone(),
        session,
        port.clone(),
        args.events,
    ));
    let next = Arc::new(AtomicUsize::new(0));
    // `{"type":"bench","pad":""}` is 25 bytes; the padding makes the rest.
    let body = Bytes::from(format!(
        "{{\"type\":\"bench\",\"pad\":\"{}\"}}",
        "x".repeat(args.body_bytes.saturating_sub(25))
    ));
    let mut senders = JoinSet::new();
    for _ in 0..args.senders {
        let (store, agent, next, body) = (store.clone(), agent.clone(), next.clone(), body.clone());
        let total = args.events;
        senders.spawn(async move {
            while next.fetch_add(1, Ordering::Relaxed) < total {
                let id = EventId::generate();
                store
                    .insert_event(NewEvent {
                        dedup_key: Some(id.to_string()),
                        id,
                        agent_id: agent.clone(),
                        event_type: "bench".into(),
                        received_at: now_ms(),
                        headers: vec![("content-type".into(), "application/json".into())],
                        body: body.clone(),
                    })
                    .await?;
            }
            anyhow::Ok(())
        });
    }
    while let Some(sent) = senders.join_next().await {
        sent??;
    }
    let stored = Sample::now()?;
    // Every ack is awaited there: all of them are committed.
    delivered.await??;
    let after = Sample::now()?;
    ports.detach(&agent, port.session_id());
    store.close().await;

    let n = args.events as f64;
    let per_event = |d: Duration| d.as_secs_f64() * 1e6 / n;
    let wall = after.at - before.at;
    let rows = [
        ("events/s stored", n / (stored.at - before.at).as_secs_f64()),
        ("events/s delivered and acked", n / wall.as_secs_f64()),
        ("writer µs/event", per_event(after.writer - before.writer)),
        (
            "process µs/event",
            per_event(after.process - before.process),
        ),
        (
            "bytes written/event",
            (after.written - before.written) as f64 / n,
        ),
    ];
    let table: String = rows
        .iter()
        .map(|(name, value)| format!("{name:<30} {value:>10.1}\n"))
        .collect();
    let results: serde_json::Map<String, serde_json::Value> = rows
        .into_iter()
        .map(|(name, value)| (name.to_owned(), json!(value)))
        .collect();
    let mut setup = setup;
    setup
        .add("events", args.events)
        .add("senders", args.senders)
        .add("window", args.window)
        .add("body bytes", args.body_bytes);
    Ok(Outcome {
        name: "store".into(),
        setup,
        results: results.into(),
        table,
        worked: true,
    })
}

/// The session: takes what is pushed, acks it, and leases what queued
/// while the window was full, until `total` events are acked.
async fn consume(
    store: Store,
    agent: AgentId,
    session: SessionId,
    port: Arc<Port>,
    total: usize,
) -> anyhow::Result<()> {
    let mut acked = 0;
    let mut acks = JoinSet::new();
    while acked < total {
        let mut batch = port.take_pushed(256);
        if batch.is_empty() && port.is_caught_up() {
            // What comes next is pushed; the timeout covers a window that
            // filled meanwhile (the session is then no longer caught up).
            batch = tokio::select! {
                batch = port.pushed(256) => batch,
                () = tokio::time::sleep(Duration::from_millis(5)) => Vec::new(),
            };
        }
        if !port.is_caught_up() {
            let claim = store
                .claim(ClaimRequest {
                    agent_id: agent.clone(),
                    session_id: session.clone(),
                    limit: 0,
                    lease_ms: 60_000,
                    patterns: Vec::new(),
                    port: Some(port.clone()),
                    requeue_except: None,
                })
                .await?;
            batch.extend(claim.deliveries);
        }
        if batch.is_empty() {
            continue;
        }
        acked += batch.len();
        port.give_back(batch.len());
        let ids = batch.into_iter().map(|d| d.id).collect();
        acks.spawn(store.ack(&agent, &session, ids));
        while let Some(done) = acks.try_join_next() {
            done??;
        }
    }
    while let Some(done) = acks.join_next().await {
        done??;
    }
    Ok(())
}
