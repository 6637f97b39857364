//! `e2e`: open-loop webhooks delivered through K agents, timed from the
//! scheduled send to the moment a consumer holds the body.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::agent::{AgentEnd, Listener, protocol_agent};
use crate::http_agent::{Transport, http_agent};
use crate::ingest::{self, relay_log};
use crate::load;
use crate::relay::{Agent, Relay, RelayArgs};
use crate::sink::{self, Sink};
use crate::stats::{Latency, Outcome, Recorder, Setup, table};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// In-process WebSocket agents that ack each event at once
    Protocol,
    /// Real `lobster-relay listen --forward` processes and a local HTTP sink
    Listen,
    /// In-process agents on a Server-Sent Events stream, acking by POST
    Sse,
    /// In-process long-polling agents, acking by POST
    Poll,
}

#[derive(Debug, Clone, clap::Args)]
pub struct E2eArgs {
    /// Events a second (open loop)
    #[arg(long, value_parser = load::parse_rate)]
    pub rate: f64,
    /// How long to send
    #[arg(long, default_value = "10s", value_parser = load::parse_duration)]
    pub duration: Duration,
    /// Agents the load is spread over, one consumer each
    #[arg(long, default_value_t = 1)]
    pub agents: usize,
    #[arg(long, value_enum, default_value_t = Mode::Protocol)]
    pub mode: Mode,
    /// Bytes per webhook body
    #[arg(long, default_value_t = 512)]
    pub body_size: usize,
    /// `--concurrency` of each `lobster-relay listen`
    #[arg(long, default_value_t = 50)]
    pub concurrency: usize,
    /// After the load, wait at most this long for the last deliveries
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    pub settle: Duration,
    /// At most this many webhook requests in flight
    #[arg(long, default_value_t = 2048)]
    pub max_in_flight: usize,
}

enum Consumers {
    Protocol(CancellationToken, Vec<JoinHandle<AgentEnd>>),
    Listen(Sink, Vec<Listener>),
}

impl Consumers {
    async fn start(
        relay: &Relay,
        bin: &RelayArgs,
        args: &E2eArgs,
        agents: &[Agent],
        recorder: &Arc<Recorder>,
        clock: Instant,
    ) -> anyhow::Result<Consumers> {
        if args.mode != Mode::Listen {
            let stop = CancellationToken::new();
            let mut handles = Vec::new();
            for agent in agents {
                let rec = recorder.clone();
                let s = stop.clone();
                let (url, key) = (&relay.url, &agent.api_key);
                handles.push(match args.mode {
                    Mode::Sse => http_agent(Transport::Sse, url, key, rec, clock, s).await?,
                    Mode::Poll => http_agent(Transport::Poll, url, key, rec, clock, s).await?,
                    _ => protocol_agent(url, key, rec, clock, s).await?,
                });
            }
            return Ok(Consumers::Protocol(stop, handles));
        }
        let bin = bin.bin()?;
        let sink = Sink::start(recorder.clone(), clock).await?;
        let forward = format!("{}{}", sink.addr, sink::PATH);
        let mut listeners = Vec::new();
        for agent in agents {
            let c = args.concurrency;
            listeners.push(Listener::start(&bin, &relay.url, &agent.api_key, &forward, c).await?);
        }
        Ok(Consumers::Listen(sink, listeners))
    }

    /// Process ids of the `listen` children (none in the in-process modes).
    fn pids(&self) -> Vec<u32> {
        match self {
            Consumers::Protocol(..) => Vec::new(),
            Consumers::Listen(_, listeners) => listeners.iter().filter_map(Listener::pid).collect(),
        }
    }

    /// Stops every consumer; returns what they reported, as JSON and text.
    async fn stop(self) -> (Value, String) {
        let mut notes = Vec::new();
        let json = match self {
            Consumers::Protocol(stop, handles) => {
                stop.cancel();
                let mut events = Vec::new();
                for (i, handle) in handles.into_iter().enumerate() {
                    let end = handle.await.unwrap_or_default();
                    notes.extend(end.problems.iter().map(|p| format!("agent {i}: {p}")));
                    events.push(end.events);
                }
                json!({"event_frames_per_agent": events, "problems": notes})
            }
            Consumers::Listen(sink, listeners) => {
                let mut exits = Vec::new();
                for (i, listener) in listeners.into_iter().enumerate() {
                    let (exit, (lines, other, first)) = listener.stop().await;
                    notes.push(format!(
                        "listen {i}: {exit}; stderr after Ready: {lines} lines, {other} not `200 OK`"
                    ));
                    notes.extend(first.iter().map(|l| format!("listen {i} stderr: {l}")));
                    exits.push(exit);
                }
                let stray = sink.stop().await;
                if stray > 0 {
                    notes.push(format!("sink: {stray} requests to a path other than /hook"));
                }
                json!({"listen_exits": exits, "sink_stray_requests": stray, "notes": notes})
            }
        };
        let text = notes.iter().map(|n| format!("  {n}\n")).collect();
        (json, text)
    }
}

pub async fn run(
    relay: &Relay,
    relay_args: &RelayArgs,
    args: &E2eArgs,
    mut setup: Setup,
) -> anyhow::Result<Outcome> {
    let mode = match args.mode {
        Mode::Protocol => "protocol (in-process WebSocket agents, ack at once)".to_owned(),
        Mode::Sse => "sse (in-process Server-Sent Events agents, acks batched by POST)".to_owned(),
        Mode::Poll => "poll (in-process long-poll agents, acks batched by POST)".to_owned(),
        Mode::Listen => format!(
            "listen (lobster-relay listen --concurrency {})",
            args.concurrency
        ),
    };
    setup
        .add("mode", mode)
        .add("loop", "open (latency from scheduled send time)")
        .add("rate", format!("{}/s", args.rate))
        .add("duration", humantime::format_duration(args.duration))
        .add("agents", args.agents.max(1))
        .add("body_size", format!("{} B", args.body_size))
        .add("settle", humantime::format_duration(args.settle))
        .add("max_in_flight", args.max_in_flight);
    let agents = ingest::agents(relay, "bench-e2e", args.agents).await?;
    let clock = Instant::now();
    let recorder = Arc::new(Recorder::default());
    let consumers = Consumers::start(relay, relay_args, args, &agents, &recorder, clock).await?;
    let load = ingest::load_for(relay, &agents, args.max_in_flight, args.body_size, clock)?;
    let load_start = clock.elapsed();
    let relay_pids: Vec<u32> = relay.pid().into_iter().collect();
    let listen_pids = consumers.pids();
    let cpu_before = (cpu_of(&relay_pids), cpu_of(&listen_pids));
    eprintln!(
        "e2e: sending for {}...",
        humantime::format_duration(args.duration)
    );
    let mut tally = load::open_loop(load, args.rate, args.duration, args.max_in_flight).await;
    let waited = recorder.settle(&tally.accepted, args.settle).await;
    let cpu = CpuPerEvent {
        relay: cpu_of(&relay_pids).saturating_sub(cpu_before.0),
        listen: cpu_of(&listen_pids).saturating_sub(cpu_before.1),
        relay_measured: !relay_pids.is_empty(),
        listen_measured: !listen_pids.is_empty(),
    };
    let (consumer_json, consumer_text) = consumers.stop().await;
    let seen = recorder.take();

    let accepted = tally.accepted.len();
    let delivered = tally
        .accepted
        .iter()
        .filter(|s| seen.first.contains_key(s))
        .count();
    let last = seen
        .first
        .values()
        .map(|(_, at)| *at)
        .max()
        .unwrap_or(load_start);
    let span = last.saturating_sub(load_start).as_secs_f64().max(1e-9);
    let per_sec = seen.first.len() as f64 / span;
    let mut latencies: Vec<Duration> = seen.first.values().map(|(l, _)| *l).collect();
    let latency = Latency::of(&mut latencies);
    let ingest_latency = tally.latency();
    let log = relay_log(relay);

    let row = vec![
        accepted.to_string(),
        delivered.to_string(),
        (accepted - delivered).to_string(),
        seen.duplicates.to_string(),
        seen.foreign.to_string(),
        format!("{per_sec:.1}"),
        format!("{:.2}s", waited.as_secs_f64()),
    ];
    let headers = [
        "accepted",
        "delivered",
        "undelivered",
        "dups",
        "foreign",
        "delivered/s",
        "settle",
    ];
    let table = format!(
        "ingest side:\n{}{}delivery (delivered/s = unique deliveries / first send to last arrival):\n{}{}{}{}{}",
        tally.table(),
        Latency::table(ingest_latency, "202s"),
        table(&headers, &[row]),
        Latency::table(latency, "POST to consumer"),
        cpu.table(delivered),
        if consumer_text.is_empty() {
            String::new()
        } else {
            format!("consumers:\n{consumer_text}")
        },
        log.1,
    );
    let results = json!({
        "ingest": tally.to_json(),
        "latency_202": Latency::to_json(ingest_latency),
        "accepted": accepted, "delivered_of_accepted": delivered, "undelivered": accepted - delivered,
        "duplicates": seen.duplicates, "foreign": seen.foreign,
        "delivered_per_s": per_sec, "settle_waited_s": waited.as_secs_f64(),
        "latency_e2e": Latency::to_json(latency),
        "consumers": consumer_json, "relay_log": log.0,
        "cpu_us_per_delivered_event": cpu.to_json(delivered),
    });
    Ok(Outcome {
        name: format!(
            "e2e {}",
            if args.mode == Mode::Protocol {
                "protocol"
            } else {
                "listen"
            }
        ),
        setup,
        results,
        table,
        worked: accepted > 0 && delivered > 0,
    })
}

/// CPU time of processes, user plus system.
fn cpu_of(pids: &[u32]) -> Duration {
    pids.iter()
        .filter_map(|pid| crate::fleet::cpu_time(*pid))
        .sum()
}

/// CPU the relay and the `listen` processes spent from the first send until
/// the last delivery settled. Per delivered event, it is the figure to
/// compare between builds: unlike a saturated rate it barely moves with
/// what else runs on the host.
struct CpuPerEvent {
    relay: Duration,
    listen: Duration,
    /// False with `--relay-url` (not our child) and for in-process agents.
    relay_measured: bool,
    listen_measured: bool,
}

impl CpuPerEvent {
    fn per_event(cpu: Duration, measured: bool, events: usize) -> Option<f64> {
        (measured && events > 0).then(|| cpu.as_secs_f64() * 1e6 / events as f64)
    }

    fn table(&self, events: usize) -> String {
        let show = |v: Option<f64>| v.map_or("-".to_owned(), |us| format!("{us:.0}"));
        format!(
            "cpu per delivered event (\u{b5}s, user+system, first send to settled):\n{}",
            table(
                &["relay", "listen"],
                &[vec![
                    show(Self::per_event(self.relay, self.relay_measured, events)),
                    show(Self::per_event(self.listen, self.listen_measured, events)),
                ]],
            )
        )
    }

    fn to_json(&self, events: usize) -> Value {
        json!({
            "relay": Self::per_event(self.relay, self.relay_measured, events),
            "listen": Self::per_event(self.listen, self.listen_measured, events),
        })
    }
}
