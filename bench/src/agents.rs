//! `agents`: N idle agents held by P client processes (`fleet` children of
//! this binary): the time until all are ready, the relay's memory per
//! agent, its CPU while they idle, and after each relay restart the time
//! until all are connected again and receiving.
//!
//! "Receiving" is checked with probe webhooks, one to each of K agents
//! spread evenly over the N: once while idle, and once after each restart,
//! posted as soon as the new relay listens (while the agents reconnect).
//!
//! Layout: this file runs the phases; `probe` posts and times the probes;
//! `report` prints the table. The children are `crate::fleet` (parent side)
//! and `crate::swarm` (child side).

use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use futures_util::StreamExt as _;
use serde_json::{Value, json};

use self::probe::Probes;
use crate::fleet::{self as proc, Fleet};
use crate::relay::{Agent, Relay};
use crate::stats::{Outcome, Setup, ms};
use crate::swarm::{ClientArgs, STABLE, unix_ns};

mod probe;
mod report;

/// Sessions one client process may hold: its open-files limit is 20,000.
const PER_PROCESS_MAX: usize = 19_500;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RestartMode {
    /// SIGTERM: the relay closes sessions with 1012 and drains
    Term,
    /// SIGKILL: the relay vanishes, sockets are reset by the kernel
    Kill,
    /// No restart
    None,
}

#[derive(Debug, Clone, clap::Args)]
pub struct AgentsArgs {
    /// Idle agents to hold
    #[arg(long, default_value_t = 1000)]
    pub agents: usize,
    /// Client processes holding them [default: one per 8,000 agents]
    #[arg(long)]
    pub clients: Option<usize>,
    /// How long to watch the relay's CPU with all agents idle (the relay
    /// pings each session every 20 s)
    #[arg(long, default_value = "20s", value_parser = humantime::parse_duration)]
    pub idle: Duration,
    /// Probe webhooks per round, to this many agents spread evenly
    #[arg(long, default_value_t = 1000)]
    pub probes: usize,
    /// Restarts to measure, in order
    #[arg(long, value_enum, value_delimiter = ',', default_value = "term,kill")]
    pub restart: Vec<RestartMode>,
    /// Agents created concurrently through the admin API
    #[arg(long, default_value_t = 64)]
    pub create_concurrency: usize,
    /// Give up waiting for all agents to be ready after this long
    #[arg(long, default_value = "120s", value_parser = humantime::parse_duration)]
    pub connect_limit: Duration,
    /// Give up waiting for all agents to be back after a restart
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    pub reconnect_limit: Duration,
    #[command(flatten)]
    pub client: ClientArgs,
}

pub async fn run(
    relay: &mut Relay,
    args: &AgentsArgs,
    mut setup: Setup,
) -> anyhow::Result<Outcome> {
    let n = args.agents.max(1);
    let clients = args.clients.unwrap_or(n.div_ceil(8000)).clamp(1, n);
    if n.div_ceil(clients) > PER_PROCESS_MAX {
        bail!(
            "{} sessions per client process exceed its open-files limit: pass --clients {}",
            n.div_ceil(clients),
            n.div_ceil(PER_PROCESS_MAX)
        );
    }
    let probes = args.probes.min(n);
    describe(&mut setup, args, relay, n, clients, probes);

    eprintln!("agents: creating {n} agents...");
    let created = Instant::now();
    let agents = create(relay, n, args.create_concurrency).await?;
    let created = created.elapsed();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_before = relay.pid().and_then(proc::memory);

    eprintln!("agents: connecting {n} agents from {clients} client processes...");
    let start = unix_ns();
    let cpu_before = relay.pid().and_then(proc::cpu_time);
    let fleet = Fleet::start(&relay.url, &agents, clients, &args.client).await?;
    let all_ready = fleet
        .wait(args.connect_limit, |b| b.ready_since(0) == n)
        .await;
    let mut connect = fleet.phase(start, 0);
    connect["relay_cpu_ms"] = cpu_since(relay, cpu_before);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_connected = relay.pid().and_then(proc::memory);

    eprintln!(
        "agents: idle for {}...",
        humantime::format_duration(args.idle)
    );
    let idle = idle_window(relay, &fleet, args.idle).await;
    let rss_idle = relay.pid().and_then(proc::memory);

    eprintln!("agents: probing {probes} agents...");
    let probes = Probes::new(&agents, probes, args.reconnect_limit)?;
    let baseline = probes.idle_round(relay, &fleet).await;

    let mut restarts = Vec::new();
    for (round, mode) in args.restart.iter().enumerate() {
        let signal = match mode {
            RestartMode::Term => "TERM",
            RestartMode::Kill => "KILL",
            RestartMode::None => continue,
        };
        if relay.pid().is_none() {
            restarts.push(json!({"signal": signal, "skipped": "external relay (--relay-url)"}));
            continue;
        }
        fleet.wait_stable(STABLE).await;
        eprintln!("agents: restarting the relay with SIG{signal}...");
        let round = round as u64 + 1;
        restarts.push(restart_round(relay, &probes, round, signal, &fleet).await?);
    }
    let clients_rss_kb = fleet.rss_kb();
    let exits = fleet.stop().await;
    let log = crate::ingest::relay_log(relay);
    let memory = memory_json(n, rss_before, rss_connected, rss_idle);
    let results = json!({
        "created_s": created.as_secs_f64(),
        "connect": {"all_ready": all_ready, "phase": connect},
        "relay_memory": memory,
        "idle": idle,
        "probe_idle": baseline,
        "restarts": restarts,
        "clients": exits,
        "clients_rss_kb": clients_rss_kb,
        "relay_log": log.0,
    });
    let table = report::human(&results, n, created) + &log.1;
    Ok(Outcome {
        name: "agents".into(),
        setup,
        worked: all_ready,
        table,
        results,
    })
}

fn describe(setup: &mut Setup, args: &AgentsArgs, relay: &Relay, n: usize, p: usize, k: usize) {
    let c = &args.client;
    setup
        .add("agents", n)
        .add(
            "clients",
            format!("{p} processes, ≤{} sessions each", n.div_ceil(p)),
        )
        .add(
            "client",
            format!(
                "tokio-tungstenite, read buffer {} B, {} source addresses 127.0.P.x per process \
                 (IP_BIND_ADDRESS_NO_PORT), first connects ≤{} in flight per process",
                c.read_buffer, c.sources, c.connect_concurrency
            ),
        )
        .add("backoff", c.policy())
        .add("idle", humantime::format_duration(args.idle))
        .add(
            "probes",
            format!(
                "{k} webhooks per round, one each to agents spread evenly over the {n}, \
                 64 posts in flight; after a restart posted once the relay listens"
            ),
        )
        .add(
            "restarts",
            format!(
                "{}; each once every session has been up {} (the CLI then resets its backoff)",
                args.restart
                    .iter()
                    .map(|r| format!("{r:?}").to_lowercase())
                    .collect::<Vec<_>>()
                    .join(", "),
                humantime::format_duration(STABLE)
            ),
        )
        .add("kernel", proc::kernel_limits())
        .add(
            "host load",
            format!(
                "loadavg {} at start, {} cores shared with the client processes",
                proc::loadavg(),
                std::thread::available_parallelism().map_or(0, usize::from)
            ),
        )
        .add(
            "fd limits",
            format!(
                "relay {}, this process {}",
                relay
                    .pid()
                    .and_then(proc::open_files_limit)
                    .unwrap_or("unknown".into()),
                proc::open_files_limit(std::process::id()).unwrap_or("unknown".into())
            ),
        );
}

/// Creates `n` agents, `concurrency` requests at a time.
async fn create(relay: &Relay, n: usize, concurrency: usize) -> anyhow::Result<Vec<Agent>> {
    let made: Vec<anyhow::Result<Agent>> = futures_util::stream::iter(
        (0..n).map(|i| async move { relay.create_agent(&format!("bench-idle-{i}")).await }),
    )
    .buffered(concurrency.max(1))
    .collect()
    .await;
    made.into_iter().collect()
}

/// Relay and client CPU over `window` with every agent idle.
async fn idle_window(relay: &Relay, fleet: &Fleet, window: Duration) -> Value {
    let pid = relay.pid();
    let relay0 = pid.and_then(proc::cpu_time);
    let clients0 = fleet.cpu_time();
    let drops0 = fleet.drops();
    let started = Instant::now();
    tokio::time::sleep(window).await;
    let secs = started.elapsed().as_secs_f64();
    let relay1 = pid.and_then(proc::cpu_time);
    let share = |a: Option<Duration>, b: Option<Duration>| {
        Some((b?.saturating_sub(a?)).as_secs_f64() / secs * 100.0)
    };
    json!({
        "window_s": secs,
        "relay_cpu_pct": share(relay0, relay1),
        "clients_cpu_pct": share(Some(clients0), Some(fleet.cpu_time())),
        "sessions_dropped": fleet.drops() - drops0,
    })
}

/// Restarts the relay with `signal`, posts the round's probes once it
/// listens, and waits until every agent is back and every probe arrived.
async fn restart_round(
    relay: &mut Relay,
    probes: &Probes<'_>,
    round: u64,
    signal: &str,
    fleet: &Fleet,
) -> anyhow::Result<Value> {
    let n = fleet.agents();
    fleet.take_failures();
    let signalled = unix_ns();
    let restart = relay
        .restart(signal)
        .await
        .context("restarting the relay")?;
    let posted = probes.post(relay, round).await;
    let seqs = posted.seqs();
    let back = fleet
        .wait(probes.limit, |b| {
            b.ready_since(signalled) == n && b.probes_seen(&seqs) == seqs.len()
        })
        .await;
    // The new process's CPU from its start: start-up plus the reconnects.
    let mut phase = fleet.phase(signalled, signalled);
    phase["relay_cpu_ms"] = cpu_since(relay, Some(Duration::ZERO));
    let probes = posted.to_json(fleet, signalled);
    tokio::time::sleep(Duration::from_secs(1)).await;
    Ok(json!({
        "signal": signal,
        "all_back_and_receiving": back,
        "relay_exited_ms": ms(restart.exited),
        "relay_listening_ms": ms(restart.listening),
        "relay_exit": restart.exit,
        "reconnect": phase,
        "probes": probes,
        "relay_rss_kb_after": relay.pid().and_then(proc::memory).map(|m| m.rss_kb),
    }))
}

fn memory_json(
    n: usize,
    before: Option<proc::Memory>,
    connected: Option<proc::Memory>,
    idle: Option<proc::Memory>,
) -> Value {
    let (Some(b), Some(c), Some(i)) = (before, connected, idle) else {
        return json!({"unavailable": "the relay's pid is unknown (--relay-url): no RSS figures"});
    };
    let per = |after: u64, before: u64| (after as f64 - before as f64) * 1024.0 / n as f64;
    json!({
        "rss_kb_before": b.rss_kb, "rss_kb_connected": c.rss_kb, "rss_kb_after_idle": i.rss_kb,
        "anon_kb_before": b.anon_kb, "anon_kb_after_idle": i.anon_kb,
        "rss_bytes_per_agent": per(i.rss_kb, b.rss_kb),
        "anon_bytes_per_agent": per(i.anon_kb, b.anon_kb),
    })
}

/// The relay's CPU time since it stood at `before`, in ms.
fn cpu_since(relay: &Relay, before: Option<Duration>) -> Value {
    let now = relay.pid().and_then(proc::cpu_time);
    json!(
        now.zip(before)
            .map(|(now, before)| ms(now.saturating_sub(before)))
    )
}
