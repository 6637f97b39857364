//! `ingest`: how many webhooks a second the relay accepts (stores durably)
//! and how long each 202 takes.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::load::{self, Load};
use crate::relay::{Agent, Relay};
use crate::stats::{Latency, Outcome, Setup};

#[derive(Debug, Clone, clap::Args)]
pub struct IngestArgs {
    /// Concurrent senders in closed loop
    #[arg(long, default_value_t = 50)]
    pub senders: usize,
    /// How long to send
    #[arg(long, default_value = "10s", value_parser = load::parse_duration)]
    pub duration: Duration,
    /// Open loop at this many events a second (closed loop when absent)
    #[arg(long, value_parser = load::parse_rate)]
    pub rate: Option<f64>,
    /// Bytes per webhook body
    #[arg(long, default_value_t = 512)]
    pub body_size: usize,
    /// Spread the webhooks over this many agents
    #[arg(long, default_value_t = 1)]
    pub agents: usize,
    /// Open loop: at most this many requests in flight
    #[arg(long, default_value_t = 2048)]
    pub max_in_flight: usize,
}

/// Creates `count` agents named `{prefix}-{i}`.
pub async fn agents(relay: &Relay, prefix: &str, count: usize) -> anyhow::Result<Vec<Agent>> {
    let mut agents = Vec::with_capacity(count);
    for i in 0..count.max(1) {
        agents.push(relay.create_agent(&format!("{prefix}-{i}")).await?);
    }
    Ok(agents)
}

/// The load shared by `ingest` and `e2e`, aimed at `agents`.
pub fn load_for(
    relay: &Relay,
    agents: &[Agent],
    pool: usize,
    body_size: usize,
    clock: Instant,
) -> anyhow::Result<Arc<Load>> {
    Ok(Arc::new(Load {
        client: load::client(pool)?,
        targets: agents.iter().map(|a| a.webhook_url.clone()).collect(),
        key: relay.key.clone(),
        body_size,
        clock,
        run_id: rand::random(),
        ok: reqwest::StatusCode::ACCEPTED,
    }))
}

/// Notes the load's shape in `setup`.
pub fn describe_load(setup: &mut Setup, args: &IngestArgs) {
    match args.rate {
        Some(rate) => {
            setup.add("loop", "open (latency from scheduled send time)");
            setup.add("rate", format!("{rate}/s"));
            setup.add("max_in_flight", args.max_in_flight);
        }
        None => {
            setup.add("loop", "closed (latency from send)");
            setup.add("senders", args.senders);
        }
    }
    setup
        .add("duration", humantime::format_duration(args.duration))
        .add("body_size", format!("{} B", args.body_size))
        .add("agents", args.agents.max(1))
        .add(
            "http",
            "HTTP/1.1, one client, keep-alive pool, 10 s timeout",
        );
}

pub async fn run(relay: &Relay, args: &IngestArgs, mut setup: Setup) -> anyhow::Result<Outcome> {
    describe_load(&mut setup, args);
    let agents = agents(relay, "bench-ingest", args.agents).await?;
    let pool = args.rate.map_or(args.senders, |_| args.max_in_flight);
    let load = load_for(relay, &agents, pool, args.body_size, Instant::now())?;
    eprintln!(
        "ingest: sending for {}...",
        humantime::format_duration(args.duration)
    );
    let mut tally = match args.rate {
        Some(rate) => load::open_loop(load, rate, args.duration, args.max_in_flight).await,
        None => load::closed_loop(load, args.senders, args.duration).await,
    };
    let latency = tally.latency();
    let log = relay_log(relay);
    let mut results = tally.to_json();
    results["latency_202"] = Latency::to_json(latency);
    results["relay_log"] = log.0;
    let table = format!(
        "{}{}{}",
        tally.table(),
        Latency::table(latency, "202s"),
        log.1
    );
    Ok(Outcome {
        name: "ingest".into(),
        setup,
        results,
        table,
        worked: !tally.accepted.is_empty(),
    })
}

/// The relay's warnings and errors so far, as JSON and as text.
pub fn relay_log(relay: &Relay) -> (serde_json::Value, String) {
    let (lines, notable, samples) = relay.log.snapshot();
    let json = json!({"lines": lines, "warn_or_error": notable, "first": samples});
    let text = if notable == 0 {
        String::new()
    } else {
        format!(
            "relay log: {notable} WARN/ERROR lines of {lines}; first:\n  {}\n",
            samples.join("\n  ")
        )
    };
    (json, text)
}
