//! `agents`: N idle agents held by P client processes (`fleet` children of
//! this binary): the time until all are ready, the relay's memory per
//! agent, its CPU while they idle, and after each relay restart the time
//! until all are connected again and receiving.
//!
//! "Receiving" is checked with probe webhooks, one to each of K agents
//! spread evenly over the N: once while idle, and once after each restart,
//! posted as soon as the new relay listens (while the agents reconnect).

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use futures_util::StreamExt as _;
use lobster_shared::signature::{header, sign_standard};
use serde_json::{Value, json};

use crate::fleet::{self as proc, Fleet};
use crate::load;
use crate::relay::{Agent, Relay};
use crate::stats::{Latency, Outcome, Setup, ms, table};
use crate::swarm::{ClientArgs, STABLE, unix_ns};

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

    let targets: Vec<usize> = (0..probes).map(|i| i * n / probes.max(1)).collect();
    let http = load::client(64)?;
    eprintln!("agents: probing {probes} agents...");
    let baseline = probe_round(relay, &http, &agents, &targets, 0, &fleet, args).await;

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
        let r = restart_round(relay, &http, &agents, &targets, round, signal, &fleet, args).await?;
        restarts.push(r);
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
    let table = human(&results, n, created) + &log.1;
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
                "{k} webhooks per round, one to every {}th agent",
                n / k.max(1)
            ),
        )
        .add("restarts", format!("{:?}", args.restart).to_lowercase())
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

/// Posts one probe to each target agent; the sequence number carries the
/// round and the agent.
async fn post_probes(
    relay: &Relay,
    http: &reqwest::Client,
    agents: &[Agent],
    targets: &[usize],
    round: u64,
) -> (HashMap<u64, u64>, BTreeMap<String, u64>) {
    let run: u64 = rand::random();
    let posts = targets.iter().map(|&idx| {
        let seq = (round << 32) | idx as u64;
        let (http, key, url) = (
            http.clone(),
            relay.key.clone(),
            agents[idx].webhook_url.clone(),
        );
        async move {
            let body = serde_json::to_vec(&load::BenchBody {
                kind: "bench".into(),
                seq,
                sent_ns: 0,
                pad: String::new(),
            })
            .expect("bench bodies serialize");
            let id = format!("msg_agents_{run:016x}_{seq}");
            let ts = (unix_ns() / 1_000_000_000) as i64;
            let signature = sign_standard(&key, &id, ts, &body);
            let sent = unix_ns();
            let answer = http
                .post(url)
                .header(http::header::CONTENT_TYPE, "application/json")
                .header(header::WEBHOOK_ID, id)
                .header(header::WEBHOOK_TIMESTAMP, ts.to_string())
                .header(header::WEBHOOK_SIGNATURE, signature)
                .body(body)
                .send()
                .await;
            let outcome = match answer {
                Ok(r) if r.status() == reqwest::StatusCode::ACCEPTED => Ok(()),
                Ok(r) => Err(format!("http-{}", r.status().as_u16())),
                Err(e) if e.is_connect() => Err("connect".into()),
                Err(e) if e.is_timeout() => Err("timeout".into()),
                Err(_) => Err("other".into()),
            };
            (seq, sent, outcome)
        }
    });
    let answers: Vec<_> = futures_util::stream::iter(posts)
        .buffer_unordered(64)
        .collect()
        .await;
    let mut accepted = HashMap::new();
    let mut errors = BTreeMap::new();
    for (seq, sent, outcome) in answers {
        match outcome {
            Ok(()) => {
                accepted.insert(seq, sent);
            }
            Err(kind) => *errors.entry(kind).or_default() += 1,
        }
    }
    (accepted, errors)
}

/// Probes while idle: post to consumer per probe, and the span until the
/// last one arrived.
async fn probe_round(
    relay: &Relay,
    http: &reqwest::Client,
    agents: &[Agent],
    targets: &[usize],
    round: u64,
    fleet: &Fleet,
    args: &AgentsArgs,
) -> Value {
    let start = unix_ns();
    let (accepted, errors) = post_probes(relay, http, agents, targets, round).await;
    let seqs: Vec<u64> = accepted.keys().copied().collect();
    fleet
        .wait(args.reconnect_limit, |b| b.probes_seen(&seqs) == seqs.len())
        .await;
    probe_json(fleet, &accepted, errors, start, targets.len())
}

fn probe_json(
    fleet: &Fleet,
    accepted: &HashMap<u64, u64>,
    errors: BTreeMap<String, u64>,
    from: u64,
    posted: usize,
) -> Value {
    let arrivals = fleet.probe_arrivals(accepted.keys());
    let mut latencies: Vec<Duration> = arrivals
        .iter()
        .map(|(seq, at)| Duration::from_nanos(at.saturating_sub(accepted[seq])))
        .collect();
    let last = arrivals.iter().map(|(_, at)| *at).max();
    json!({
        "posted": posted, "accepted": accepted.len(), "post_errors": errors,
        "received": arrivals.len(),
        "all_received_ms": last.map(|l| ns_ms(l.saturating_sub(from))),
        "post_to_agent": Latency::to_json(Latency::of(&mut latencies)),
    })
}

#[allow(clippy::too_many_arguments)]
async fn restart_round(
    relay: &mut Relay,
    http: &reqwest::Client,
    agents: &[Agent],
    targets: &[usize],
    round: u64,
    signal: &str,
    fleet: &Fleet,
    args: &AgentsArgs,
) -> anyhow::Result<Value> {
    let n = agents.len();
    fleet.take_failures();
    let signalled = unix_ns();
    let restart = relay
        .restart(signal)
        .await
        .context("restarting the relay")?;
    let (accepted, errors) = post_probes(relay, http, agents, targets, round).await;
    let seqs: Vec<u64> = accepted.keys().copied().collect();
    let back = fleet
        .wait(args.reconnect_limit, |b| {
            b.ready_since(signalled) == n && b.probes_seen(&seqs) == seqs.len()
        })
        .await;
    // The new process's CPU from its start: start-up plus the reconnects.
    let mut phase = fleet.phase(signalled, signalled);
    phase["relay_cpu_ms"] = cpu_since(relay, Some(Duration::ZERO));
    let probes = probe_json(fleet, &accepted, errors, signalled, targets.len());
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

fn ns_ms(ns: u64) -> f64 {
    ns as f64 / 1e6
}

/// The human form of `results`.
fn human(r: &Value, n: usize, created: Duration) -> String {
    let f = |v: &Value| match v {
        Value::Null => "-".to_owned(),
        Value::Number(x) => match x.as_f64() {
            Some(x) if x.fract() != 0.0 => format!("{x:.1}"),
            _ => x.to_string(),
        },
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let kinds = |v: &Value| match v.as_object() {
        Some(m) if !m.is_empty() => m
            .iter()
            .map(|(k, c)| format!("{k}x{c}"))
            .collect::<Vec<_>>()
            .join(" "),
        _ => "-".into(),
    };
    let mut out = format!(
        "created {n} agents in {:.2}s ({:.0}/s)\n",
        created.as_secs_f64(),
        n as f64 / created.as_secs_f64().max(1e-9)
    );
    let c = &r["connect"]["phase"];
    out += "connect (ms from starting the client processes until each agent's first `ready`):\n";
    out += &table(
        &[
            "ready",
            "all ready",
            "p50",
            "p99",
            "max",
            "relay cpu ms",
            "failed attempts",
        ],
        &[vec![
            f(&c["ready"]),
            f(&c["all_ms"]),
            f(&c["ready_ms"]["p50_ms"]),
            f(&c["ready_ms"]["p99_ms"]),
            f(&c["ready_ms"]["max_ms"]),
            f(&c["relay_cpu_ms"]),
            kinds(&c["failed_attempts"]),
        ]],
    );
    let m = &r["relay_memory"];
    if m["unavailable"].is_null() {
        out += "relay memory (kB; per agent = after idle minus before, over N):\n";
        out += &table(
            &[
                "rss before",
                "connected",
                "after idle",
                "rss/agent B",
                "anon/agent B",
            ],
            &[vec![
                f(&m["rss_kb_before"]),
                f(&m["rss_kb_connected"]),
                f(&m["rss_kb_after_idle"]),
                f(&m["rss_bytes_per_agent"]),
                f(&m["anon_bytes_per_agent"]),
            ]],
        );
    } else {
        out += &format!("relay memory: {}\n", f(&m["unavailable"]));
    }
    let i = &r["idle"];
    out += "idle (CPU % of one core):\n";
    out += &table(
        &["window s", "relay", "clients", "dropped"],
        &[vec![
            f(&i["window_s"]),
            f(&i["relay_cpu_pct"]),
            f(&i["clients_cpu_pct"]),
            f(&i["sessions_dropped"]),
        ]],
    );
    let probe_row = |name: String, p: &Value| {
        vec![
            name,
            f(&p["accepted"]),
            f(&p["received"]),
            f(&p["all_received_ms"]),
            f(&p["post_to_agent"]["p50_ms"]),
            f(&p["post_to_agent"]["p99_ms"]),
            kinds(&p["post_errors"]),
        ]
    };
    out += "probes (all received: ms from the first post, or from the restart signal):\n";
    let mut rows = vec![probe_row("idle".into(), &r["probe_idle"])];
    for x in r["restarts"].as_array().into_iter().flatten() {
        rows.push(probe_row(
            format!("after SIG{}", f(&x["signal"])),
            &x["probes"],
        ));
    }
    out += &table(
        &[
            "round",
            "202",
            "received",
            "all received",
            "p50",
            "p99",
            "errors",
        ],
        &rows,
    );
    let restarts = r["restarts"].as_array().cloned().unwrap_or_default();
    if !restarts.is_empty() {
        out += "restart (ms from the signal; reconnect = the agent's next `ready`):\n";
        let rows: Vec<Vec<String>> = restarts
            .iter()
            .map(|x| {
                let p = &x["reconnect"];
                vec![
                    format!("SIG{}", f(&x["signal"])),
                    f(&x["relay_exited_ms"]),
                    f(&x["relay_listening_ms"]),
                    f(&p["ready"]),
                    f(&p["all_ms"]),
                    f(&p["ready_ms"]["p50_ms"]),
                    f(&p["ready_ms"]["p99_ms"]),
                    f(&x["probes"]["all_received_ms"]),
                    f(&p["relay_cpu_ms"]),
                    kinds(&p["failed_attempts"]),
                ]
            })
            .collect();
        out += &table(
            &[
                "signal",
                "exited",
                "listening",
                "back",
                "all back",
                "p50",
                "p99",
                "probes in",
                "relay cpu ms",
                "failed attempts",
            ],
            &rows,
        );
    }
    out
}
