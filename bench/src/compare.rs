//! `compare`: one load, alternated in one run, against the paths a webhook
//! can take to a local app: a direct POST to the sink (the baseline), our
//! relay with `lobster-relay listen --forward` (once per `--relay-bin`, so a
//! before and an after binary meet the same load), and rathole, a tunnel
//! that stores nothing, when a binary is found.
//!
//! Each round runs every measure against every path in the same order, so a
//! host that gets busier mid-run weighs on all of them alike. Throughput is
//! wrk's closed loop counted where it matters, at the sink; latency is the
//! harness's open loop at fixed rates, from the scheduled send to the sink.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use lobster_shared::signature::SigningKey;
use reqwest::StatusCode;
use serde_json::json;

use crate::agent::Listener;
use crate::comparison::{BASELINE, Comparison, LatencyRun, ThroughputRun};
use crate::ingest::relay_log;
use crate::load::{self, Load};
use crate::rathole::{self, Rathole};
use crate::relay::{Launch, Relay, RelayArgs};
use crate::sink::{self, Sink};
use crate::stats::{Latency, Outcome, Recorder, Setup};
use crate::wrk::Wrk;

#[derive(Debug, Clone, clap::Args)]
pub struct CompareArgs {
    /// Rounds; each runs every measure against every path once
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    /// How long each wrk (throughput) run sends, in whole seconds
    #[arg(long, default_value = "10s", value_parser = parse_whole_seconds)]
    pub duration: Duration,
    /// wrk connections
    #[arg(long, default_value_t = 64)]
    pub connections: usize,
    /// wrk threads
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
    /// Bytes per JSON body
    #[arg(long, default_value_t = 1024)]
    pub body_size: usize,
    /// Fixed rates of the latency runs, events a second, comma-separated
    #[arg(long, value_delimiter = ',', default_value = "1000,5000", value_parser = load::parse_rate)]
    pub rates: Vec<f64>,
    /// How long each latency run sends
    #[arg(long, default_value = "10s", value_parser = load::parse_duration)]
    pub latency_duration: Duration,
    /// Latency runs: at most this many requests in flight
    #[arg(long, default_value_t = 2048)]
    pub max_in_flight: usize,
    /// `--concurrency` of each `lobster-relay listen`
    #[arg(long, default_value_t = 50)]
    pub concurrency: usize,
    /// After each run, wait at most this long for the last events to reach the sink
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    pub settle: Duration,
    /// The rathole binary [default: `rathole` on PATH; skipped with a note when there is none]
    #[arg(long, value_name = "PATH")]
    pub rathole_bin: Option<PathBuf>,
    /// Leave rathole out even when one is found
    #[arg(long, conflicts_with = "rathole_bin")]
    pub no_rathole: bool,
    /// The wrk binary
    #[arg(long, value_name = "PATH", default_value = "wrk")]
    pub wrk_bin: PathBuf,
    /// Skip the wrk throughput runs
    #[arg(long)]
    pub no_throughput: bool,
    /// Skip the fixed-rate latency runs
    #[arg(long)]
    pub no_latency: bool,
    /// Also write the summary as Markdown to this file
    #[arg(long, value_name = "FILE")]
    pub markdown: Option<PathBuf>,
}

impl CompareArgs {
    /// `smoke`'s short run: one round, one second each, one rate, no rathole.
    pub fn smoke() -> CompareArgs {
        CompareArgs {
            rounds: 1,
            duration: Duration::from_secs(1),
            connections: 16,
            threads: 1,
            body_size: 1024,
            rates: vec![200.0],
            latency_duration: Duration::from_secs(1),
            max_in_flight: 256,
            concurrency: 50,
            settle: Duration::from_secs(20),
            rathole_bin: None,
            no_rathole: true,
            wrk_bin: PathBuf::from("wrk"),
            no_throughput: false,
            no_latency: false,
            markdown: None,
        }
    }

    /// How wrk is run.
    pub fn wrk(&self) -> Wrk {
        Wrk {
            bin: self.wrk_bin.clone(),
            threads: self.threads,
            connections: self.connections,
            duration: self.duration,
            body_size: self.body_size,
        }
    }
}

/// `--duration` for wrk, which counts whole seconds.
fn parse_whole_seconds(text: &str) -> Result<Duration, String> {
    let d = load::parse_duration(text)?;
    if d.subsec_nanos() != 0 {
        return Err("wrk runs whole seconds: give e.g. 3s or 1m".into());
    }
    Ok(d)
}

/// One path a webhook can take to the sink.
struct Target {
    label: String,
    /// Where the load POSTs.
    url: String,
    /// The status that means "taken": 202 from the relay, 200 from the sink.
    ok: StatusCode,
    key: SigningKey,
    kind: Kind,
}

enum Kind {
    Direct,
    Relay(Relay, Listener),
    Rathole(Rathole),
}

impl Target {
    /// Stops what the path runs; returns notes worth printing.
    async fn stop(self) -> Vec<String> {
        let label = self.label;
        match self.kind {
            Kind::Direct => Vec::new(),
            Kind::Relay(relay, listener) => {
                let mut notes = Vec::new();
                let (exit, (_, notable, first)) = listener.stop().await;
                notes.push(format!(
                    "{label}: listen {exit}, {notable} stderr lines other than a 200 answer"
                ));
                notes.extend(first.iter().map(|l| format!("{label}: listen said: {l}")));
                let (_, text) = relay_log(&relay);
                notes.extend(text.lines().map(|l| format!("{label}: {}", l.trim())));
                if let Err(err) = relay.stop().await {
                    notes.push(format!("{label}: stopping the relay: {err:#}"));
                }
                notes
            }
            Kind::Rathole(rathole) => rathole.stop().await,
        }
    }
}

pub async fn run(
    relay_args: &RelayArgs,
    args: &CompareArgs,
    mut setup: Setup,
) -> anyhow::Result<Outcome> {
    if relay_args.relay_url.is_some() {
        bail!(
            "compare starts its own relays from --relay-bin; --relay-url is for the other subcommands"
        );
    }
    if args.rounds == 0 || args.connections == 0 || args.threads == 0 {
        bail!("--rounds, --connections and --threads must be at least 1");
    }
    if args.connections < args.threads {
        bail!(
            "wrk needs at least one connection per thread: --connections {} < --threads {}",
            args.connections,
            args.threads
        );
    }
    if args.no_throughput && args.no_latency {
        bail!("--no-throughput and --no-latency together leave nothing to measure");
    }
    let mut bins = relay_args.labelled_bins()?;
    for (label, _) in &mut bins {
        if label == BASELINE || label == "rathole" {
            label.insert_str(0, "relay ");
        }
    }
    let wrk = args.wrk();
    if !args.no_throughput {
        wrk.check().await?;
    }
    let mut notes = Vec::new();
    let rathole_bin = if args.no_rathole {
        notes.push("rathole: left out (--no-rathole)".to_owned());
        None
    } else {
        match rathole::find(args.rathole_bin.as_deref()) {
            Ok(bin) => Some(bin),
            Err(why) if args.rathole_bin.is_some() => bail!(why),
            Err(why) => {
                notes.push(format!("rathole: skipped, {why}"));
                None
            }
        }
    };

    let clock = Instant::now();
    let recorder = Arc::new(Recorder::default());
    let sink = Sink::start(recorder.clone(), clock).await?;
    let forward = format!("{}{}", sink.addr, sink::PATH);
    let any_key = SigningKey::parse(&Launch::fresh().secret)?;
    let mut targets = vec![Target {
        label: "direct".into(),
        url: format!("http://{forward}"),
        ok: StatusCode::OK,
        key: any_key.clone(),
        kind: Kind::Direct,
    }];
    for (label, bin) in &bins {
        eprintln!("compare: starting relay {label} ({})...", bin.display());
        // wrk cannot sign, so the relays verify nothing; every body is
        // distinct, so replay protection keeps none back.
        let mut launch = Launch::fresh();
        launch.extra = vec!["--signature-scheme".into(), "none".into()];
        let relay = Relay::spawn(bin, launch).await?;
        let agent = relay
            .create_agent(&format!("bench-compare-{label}"))
            .await?;
        let listener =
            Listener::start(bin, &relay.url, &agent.api_key, &forward, args.concurrency).await?;
        setup.add(
            &format!("relay {label}"),
            format!("{} ({})", bin.display(), version(bin).await),
        );
        targets.push(Target {
            label: label.clone(),
            url: agent.webhook_url.clone(),
            ok: StatusCode::ACCEPTED,
            key: relay.key.clone(),
            kind: Kind::Relay(relay, listener),
        });
    }
    if let Some(bin) = rathole_bin {
        eprintln!("compare: starting rathole ({})...", bin.display());
        let tunnel = Rathole::start(&bin, &sink.addr.to_string(), sink::HEALTH_PATH).await?;
        setup.add("rathole", bin.display());
        targets.push(Target {
            label: "rathole".into(),
            url: format!("http://{}{}", tunnel.addr, sink::PATH),
            ok: StatusCode::OK,
            key: any_key,
            kind: Kind::Rathole(tunnel),
        });
    }
    describe(&mut setup, args, &targets);

    let labels: Vec<String> = targets.iter().map(|t| t.label.clone()).collect();
    let mut report = Comparison::new(labels, args.rates.clone());
    let measured = measure(args, &wrk, &targets, &recorder, clock, &mut report).await;
    for target in targets {
        notes.extend(target.stop().await);
    }
    let stray = sink.stop().await;
    if stray > 0 {
        notes.push(format!(
            "sink: {stray} requests to a path other than {}",
            sink::PATH
        ));
    }
    measured?;

    let markdown = report.markdown(&setup);
    if let Some(path) = &args.markdown {
        std::fs::write(path, &markdown)
            .with_context(|| format!("cannot write {}", path.display()))?;
        eprintln!("compare: wrote {}", path.display());
    }
    let notes_text: String = notes.iter().map(|n| format!("  {n}\n")).collect();
    let table = format!(
        "{}{}\nmarkdown:\n\n{markdown}",
        report.tables(),
        if notes.is_empty() {
            String::new()
        } else {
            format!("notes:\n{notes_text}")
        },
    );
    let mut results = report.to_json();
    results["notes"] = json!(notes);
    Ok(Outcome {
        name: "compare".into(),
        setup,
        results,
        table,
        worked: report.worked(),
    })
}

/// The first line of `BIN --version` (its commit), or why there is none.
async fn version(bin: &std::path::Path) -> String {
    match tokio::process::Command::new(bin)
        .arg("--version")
        .output()
        .await
    {
        Ok(out) => String::from_utf8_lossy(&out.stdout)
            .lines()
            .next()
            .unwrap_or("no --version output")
            .trim()
            .to_owned(),
        Err(err) => format!("--version failed: {err}"),
    }
}

fn describe(setup: &mut Setup, args: &CompareArgs, targets: &[Target]) {
    let labels: Vec<&str> = targets.iter().map(|t| t.label.as_str()).collect();
    setup
        .add("paths", labels.join(", "))
        .add(
            "rounds",
            format!(
                "{} (each path once per measure and round, in this order)",
                args.rounds
            ),
        )
        .add(
            "body_size",
            format!("{} B JSON, distinct per request", args.body_size),
        )
        .add("sink", "in-process axum app, answers 200 at once")
        .add(
            "listen",
            format!(
                "lobster-relay listen --forward SINK --concurrency {}",
                args.concurrency
            ),
        )
        .add(
            "relay_flags",
            "--signature-scheme none (wrk cannot sign); sqlite, 202 after the WAL fsync",
        );
    if !args.no_throughput {
        setup.add(
            "throughput",
            format!(
                "wrk -t{} -c{} -d{}s, closed loop; events/s counted at the sink",
                args.threads,
                args.connections,
                args.duration.as_secs()
            ),
        );
    }
    if !args.no_latency {
        let rates: Vec<String> = args.rates.iter().map(|r| format!("{r}/s")).collect();
        setup.add(
            "latency",
            format!(
                "open loop at {} for {} each, POST (scheduled) to sink arrival",
                rates.join(", "),
                humantime::format_duration(args.latency_duration)
            ),
        );
    }
}

/// All rounds: in each, every measure against every target.
async fn measure(
    args: &CompareArgs,
    wrk: &Wrk,
    targets: &[Target],
    recorder: &Arc<Recorder>,
    clock: Instant,
    report: &mut Comparison,
) -> anyhow::Result<()> {
    let scripts = tempfile::tempdir().context("cannot create a temporary dir for wrk scripts")?;
    let client = load::client(args.max_in_flight)?;
    let run_id = format!("{:08x}", rand::random::<u32>());
    for round in 1..=args.rounds {
        if !args.no_throughput {
            for target in targets {
                let label = format!("{run_id}-r{round}-{}", target.label);
                eprintln!("compare: round {round}, wrk against {}...", target.label);
                let script = wrk.script(scripts.path(), &label)?;
                let result = throughput(wrk, target, &script, recorder, clock, args.settle).await?;
                report.throughput.push(ThroughputRun {
                    round,
                    target: target.label.clone(),
                    ..result
                });
            }
        }
        if args.no_latency {
            continue;
        }
        for &rate in &args.rates {
            for target in targets {
                eprintln!(
                    "compare: round {round}, {rate}/s against {}...",
                    target.label
                );
                let load = Arc::new(Load {
                    client: client.clone(),
                    targets: vec![target.url.clone()],
                    key: target.key.clone(),
                    body_size: args.body_size,
                    clock,
                    run_id: rand::random(),
                    ok: target.ok,
                });
                let result = latency(load, rate, args, recorder).await;
                report.latency.push(LatencyRun {
                    round,
                    target: target.label.clone(),
                    ..result
                });
            }
        }
    }
    Ok(())
}

/// One wrk run against `target`, counted at the sink.
async fn throughput(
    wrk: &Wrk,
    target: &Target,
    script: &std::path::Path,
    recorder: &Recorder,
    clock: Instant,
    settle: Duration,
) -> anyhow::Result<ThroughputRun> {
    let _ = recorder.take();
    let start = clock.elapsed();
    let run = wrk.run(&target.url, script).await?;
    let end = clock.elapsed();
    let answered = run.answered();
    let waited = settle_count(recorder, answered, settle).await;
    let seen = recorder.take();
    let during = seen
        .first
        .values()
        .filter(|(_, at)| *at >= start && *at <= end)
        .count();
    let last = seen.first.values().map(|(_, at)| *at).max().unwrap_or(end);
    let window = end.saturating_sub(start).as_secs_f64().max(1e-9);
    Ok(ThroughputRun {
        round: 0,
        target: String::new(),
        answered,
        answered_per_s: answered as f64 / run.duration.as_secs_f64().max(1e-9),
        sink_per_s: during as f64 / window,
        delivered: seen.first.len() as u64,
        duplicates: seen.duplicates,
        foreign: seen.foreign,
        errors: run.bad_status + run.socket_errors,
        drain: last.saturating_sub(end),
        settle_waited: waited,
        answer_p50: run.p50,
        answer_p99: run.p99,
    })
}

/// Waits until `expected` distinct events have reached the sink and then
/// none for `QUIET` (wrk stops counting answers still in flight when its time
/// is up, but the relay stored those events and delivers them: they must not
/// land in the next run), or `limit` has passed, or none arrived for 5 s;
/// returns how long it waited.
async fn settle_count(recorder: &Recorder, expected: u64, limit: Duration) -> Duration {
    const STALL: Duration = Duration::from_secs(5);
    const QUIET: Duration = Duration::from_millis(750);
    let started = Instant::now();
    let (mut count, mut moved) = (recorder.len(), Instant::now());
    let waiting = |count: usize, moved: Instant| {
        if (count as u64) < expected {
            moved.elapsed() < STALL
        } else {
            moved.elapsed() < QUIET
        }
    };
    while started.elapsed() < limit && waiting(count, moved) {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let now = recorder.len();
        if now != count {
            (count, moved) = (now, Instant::now());
        }
    }
    started.elapsed()
}

/// One open-loop run at `rate`, latency from the scheduled send to the sink.
async fn latency(
    load: Arc<Load>,
    rate: f64,
    args: &CompareArgs,
    recorder: &Recorder,
) -> LatencyRun {
    let _ = recorder.take();
    let tally = load::open_loop(load, rate, args.latency_duration, args.max_in_flight).await;
    let waited = recorder.settle(&tally.accepted, args.settle).await;
    let seen = recorder.take();
    // Only this run's events: a late arrival from an earlier run carries
    // another sequence number and must not count as a sample.
    let mut samples: Vec<Duration> = tally
        .accepted
        .iter()
        .filter_map(|s| seen.first.get(s).map(|(l, _)| *l))
        .collect();
    let delivered = samples.len() as u64;
    LatencyRun {
        round: 0,
        target: String::new(),
        rate,
        sent: tally.sent,
        taken: tally.accepted.len() as u64,
        delivered,
        unsent: tally.unsent,
        settle_waited: waited,
        latency: Latency::of(&mut samples),
    }
}
