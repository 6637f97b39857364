//! `cross`: delivery across relay instances. Two relays, A and B, share one
//! PostgreSQL database; an agent holds a session on A; webhooks are posted
//! to B at a fixed rate. Latency runs from the scheduled send to the
//! moment the agent holds the event.
//!
//! Each run gets a fresh database and fresh relays. With Redis, B's
//! wake-up reaches A through pub/sub; without, A finds the event only at
//! its session's next database re-scan, so latency there is bounded by
//! `--rescan-interval` rather than by the work of delivering.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::agent::protocol_agent;
use crate::backing::{self, Database, Redis};
use crate::ingest::relay_log;
use crate::load::{self, Load, Tally};
use crate::relay::{Launch, Relay, RelayArgs};
use crate::stats::{Latency, Outcome, Recorder, Setup, ms, table};

/// The relay's own `--rescan-interval` defaults (server/src/config.rs).
const DEFAULT_RESCAN_WITH_REDIS: &str = "5s";
const DEFAULT_RESCAN_WITHOUT_REDIS: &str = "1s";

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Wakeup {
    /// Relays share a private redis-server for wake-ups
    Redis,
    /// No Redis: only the database re-scan finds events from the other instance
    NoRedis,
}

#[derive(Debug, Clone, clap::Args)]
pub struct CrossArgs {
    /// PostgreSQL server to create each run's database in (dropped after
    /// the run) [default: $LOBSTER_TEST_POSTGRES_URL, as exported by
    /// `source scripts/services.sh; start_postgres DIR`]
    #[arg(
        long,
        env = "LOBSTER_BENCH_POSTGRES_URL",
        value_name = "URL",
        hide_env_values = true
    )]
    pub postgres_url: Option<String>,
    /// Events a second posted to instance B (open loop)
    #[arg(long, default_value_t = 200.0, value_parser = load::parse_rate)]
    pub rate: f64,
    /// How long to send, per run
    #[arg(long, default_value = "10s", value_parser = load::parse_duration)]
    pub duration: Duration,
    /// `--rescan-interval` for both relays [default: the relay's own, 5s
    /// with Redis and 1s without]
    #[arg(long, value_name = "DURATION", value_parser = parse_rescan)]
    pub rescan_interval: Option<String>,
    /// The runs, in order
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "redis,no-redis"
    )]
    pub runs: Vec<Wakeup>,
    /// Bytes per webhook body
    #[arg(long, default_value_t = 512)]
    pub body_size: usize,
    /// After the load, wait at most this long for the last deliveries
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub settle: Duration,
    /// At most this many webhook requests in flight
    #[arg(long, default_value_t = 2048, value_parser = clap::value_parser!(usize))]
    pub max_in_flight: usize,
}

fn parse_rescan(text: &str) -> Result<String, String> {
    humantime::parse_duration(text)
        .map(|_| text.to_owned())
        .map_err(|err| format!("{err} (e.g. 500ms, 1s, 5s)"))
}

/// One run's figures.
struct Run {
    wakeup: Wakeup,
    rescan: String,
    tally: Tally,
    latency_202: Option<Latency>,
    latency: Option<Latency>,
    /// Arrival at the agent minus the time B took to answer 202.
    after_202: Option<Latency>,
    delivered: usize,
    duplicates: u64,
    foreign: u64,
    settle: Duration,
    notes: Vec<String>,
    relay_logs: Value,
}

impl Wakeup {
    fn label(self) -> &'static str {
        match self {
            Wakeup::Redis => "with Redis",
            Wakeup::NoRedis => "without Redis",
        }
    }

    fn key(self) -> &'static str {
        match self {
            Wakeup::Redis => "with_redis",
            Wakeup::NoRedis => "without_redis",
        }
    }
}

pub async fn run(
    relay_args: &RelayArgs,
    args: &CrossArgs,
    mut setup: Setup,
) -> anyhow::Result<Outcome> {
    if relay_args.relay_url.is_some() {
        bail!("cross starts its own two relays on PostgreSQL; --relay-url cannot be used with it");
    }
    if args.max_in_flight == 0 {
        bail!("--max-in-flight must be at least 1");
    }
    let bin = relay_args.bin()?;
    let server = match &args.postgres_url {
        Some(url) => url.clone(),
        None => std::env::var("LOBSTER_TEST_POSTGRES_URL").context(
            "cross needs PostgreSQL: pass --postgres-url URL or set LOBSTER_BENCH_POSTGRES_URL \
             (a throwaway cluster: `source scripts/services.sh; start_postgres /tmp/pg`, \
             which exports LOBSTER_TEST_POSTGRES_URL)",
        )?,
    };
    let rescan = args.rescan_interval.clone().map_or_else(
        || {
            format!(
                "relay default: {DEFAULT_RESCAN_WITH_REDIS} with Redis, {DEFAULT_RESCAN_WITHOUT_REDIS} without"
            )
        },
        |r| format!("{r} on both relays"),
    );
    setup
        .add(
            "relays",
            "A and B spawned, one PostgreSQL database per run (fresh)",
        )
        .add("postgres", backing::server_host(&server))
        .add(
            "redis",
            "private redis-server (--save '' --appendonly no) for the Redis run",
        )
        .add(
            "consumer",
            "one in-process WebSocket agent on A, acks at once",
        )
        .add("load", "signed webhooks POSTed to B, for the agent on A")
        .add(
            "loop",
            "open (latency from scheduled send time to agent receipt)",
        )
        .add("rate", format!("{}/s", args.rate))
        .add("duration", humantime::format_duration(args.duration))
        .add("body_size", format!("{} B", args.body_size))
        .add("rescan_interval", rescan)
        .add("settle", humantime::format_duration(args.settle));
    let mut runs = Vec::new();
    for &wakeup in &args.runs {
        eprintln!(
            "cross {}: starting PostgreSQL database and relays...",
            wakeup.label()
        );
        runs.push(one_run(&bin, &server, wakeup, args).await?);
    }
    let worked = !runs.is_empty() && runs.iter().all(|r| r.delivered > 0);
    Ok(Outcome {
        name: "cross".into(),
        setup,
        results: json!({ "runs": runs.iter().map(Run::to_json).collect::<Vec<_>>() }),
        table: human(&runs),
        worked,
    })
}

/// Fresh database (and Redis), relays A and B, the load; everything is
/// stopped again whether or not the measurement worked.
async fn one_run(
    bin: &Path,
    server: &str,
    wakeup: Wakeup,
    args: &CrossArgs,
) -> anyhow::Result<Run> {
    let database = Database::create(server).await?;
    let redis = match wakeup {
        Wakeup::Redis => match Redis::start().await {
            Ok(redis) => Some(redis),
            Err(err) => {
                let _ = database.drop_it().await;
                return Err(err);
            }
        },
        Wakeup::NoRedis => None,
    };
    let mut launch = Launch::fresh();
    launch.extra = vec!["--database".into(), database.url.clone()];
    if let Some(redis) = &redis {
        launch.extra.extend(["--redis".into(), redis.url.clone()]);
    }
    if let Some(every) = &args.rescan_interval {
        launch
            .extra
            .extend(["--rescan-interval".into(), every.clone()]);
    }
    let rescan = args
        .rescan_interval
        .clone()
        .unwrap_or_else(|| match wakeup {
            Wakeup::Redis => format!("{DEFAULT_RESCAN_WITH_REDIS} (default)"),
            Wakeup::NoRedis => format!("{DEFAULT_RESCAN_WITHOUT_REDIS} (default)"),
        });
    // A first: it runs the migrations before B starts on the same database.
    let relays = match Relay::spawn(bin, launch.clone()).await {
        Ok(a) => match Relay::spawn(bin, launch).await {
            Ok(b) => Ok((a, b)),
            Err(err) => {
                let _ = a.stop().await;
                Err(err.context("starting relay B"))
            }
        },
        Err(err) => Err(err.context("starting relay A")),
    };
    let result = match relays {
        Ok((a, b)) => {
            eprintln!("cross {}: A at {}, B at {}", wakeup.label(), a.url, b.url);
            let measured = measure(&a, &b, wakeup, rescan, args).await;
            let stopped_b = b.stop().await;
            let stopped_a = a.stop().await;
            measured.and_then(|run| stopped_b.and(stopped_a).map(|()| run))
        }
        Err(err) => Err(err),
    };
    drop(redis);
    let dropped = database.drop_it().await;
    let run = result?;
    dropped.context("dropping the run's database")?;
    Ok(run)
}

async fn measure(
    a: &Relay,
    b: &Relay,
    wakeup: Wakeup,
    rescan: String,
    args: &CrossArgs,
) -> anyhow::Result<Run> {
    let agent = a.create_agent("bench-cross").await?;
    let path = agent
        .webhook_url
        .strip_prefix(&a.url)
        .with_context(|| format!("the webhook URL {} is not on relay A", agent.webhook_url))?;
    let target = format!("{}{path}", b.url);
    let clock = Instant::now();
    let recorder = Arc::new(Recorder::default());
    let stop = CancellationToken::new();
    let consumer = protocol_agent(
        &a.url,
        &agent.api_key,
        recorder.clone(),
        clock,
        stop.clone(),
    )
    .await?;
    let load = Arc::new(Load {
        client: load::client(args.max_in_flight)?,
        targets: vec![target],
        key: b.key.clone(),
        body_size: args.body_size,
        clock,
        run_id: rand::random(),
        ok: reqwest::StatusCode::ACCEPTED,
    });
    eprintln!(
        "cross {}: posting to B for {}...",
        wakeup.label(),
        humantime::format_duration(args.duration)
    );
    let mut tally = load::open_loop(load, args.rate, args.duration, args.max_in_flight).await;
    let settle = recorder.settle(&tally.accepted, args.settle).await;
    stop.cancel();
    let end = consumer.await.unwrap_or_default();
    let seen = recorder.take();
    let delivered = tally
        .accepted
        .iter()
        .filter(|s| seen.first.contains_key(s))
        .count();
    let mut latencies: Vec<_> = seen.first.values().map(|(l, _)| *l).collect();
    // What delivery adds once B has answered: arrival minus the 202's time
    // (`latencies` and `accepted` are pushed together, so they pair up).
    let mut after_202: Vec<_> = tally
        .accepted
        .iter()
        .zip(&tally.latencies)
        .filter_map(|(seq, l202)| Some(seen.first.get(seq)?.0.saturating_sub(*l202)))
        .collect();
    let mut notes: Vec<String> = end.problems.iter().map(|p| format!("agent: {p}")).collect();
    let (log_a, text_a) = relay_log(a);
    let (log_b, text_b) = relay_log(b);
    for (name, text) in [("A", text_a), ("B", text_b)] {
        notes.extend(text.lines().map(|l| format!("relay {name}: {}", l.trim())));
    }
    if let Some(sample) = &tally.error_sample {
        notes.push(format!("first request error: {sample}"));
    }
    Ok(Run {
        wakeup,
        rescan,
        latency_202: tally.latency(),
        latency: Latency::of(&mut latencies),
        after_202: Latency::of(&mut after_202),
        tally,
        delivered,
        duplicates: seen.duplicates,
        foreign: seen.foreign,
        settle,
        notes,
        relay_logs: json!({"a": log_a, "b": log_b}),
    })
}

impl Run {
    fn to_json(&self) -> Value {
        let accepted = self.tally.accepted.len();
        json!({
            "wakeup": self.wakeup.key(),
            "rescan_interval": self.rescan,
            "ingest": self.tally.to_json(),
            "latency_202": Latency::to_json(self.latency_202),
            "accepted": accepted,
            "delivered_of_accepted": self.delivered,
            "undelivered": accepted - self.delivered,
            "duplicates": self.duplicates,
            "foreign": self.foreign,
            "settle_waited_s": self.settle.as_secs_f64(),
            "latency_b_to_agent_on_a": Latency::to_json(self.latency),
            "latency_202_to_agent_on_a": Latency::to_json(self.after_202),
            "notes": self.notes,
            "relay_log": self.relay_logs,
        })
    }
}

/// The runs side by side, then whatever went wrong in each.
fn human(runs: &[Run]) -> String {
    let cell = |d: Option<Duration>| d.map_or_else(|| "-".into(), |d| format!("{:.2}", ms(d)));
    let rows: Vec<Vec<String>> = runs
        .iter()
        .map(|r| {
            let l = r.latency;
            vec![
                r.wakeup.label().into(),
                r.rescan.clone(),
                format!("{}/{}", r.delivered, r.tally.sent),
                r.duplicates.to_string(),
                cell(l.map(|l| l.p50)),
                cell(l.map(|l| l.p90)),
                cell(l.map(|l| l.p99)),
                cell(l.map(|l| l.max)),
                cell(r.latency_202.map(|l| l.p99)),
                cell(r.after_202.map(|l| l.p50)),
                cell(r.after_202.map(|l| l.p99)),
            ]
        })
        .collect();
    let headers = [
        "wake-up",
        "rescan",
        "delivered/sent",
        "dups",
        "p50",
        "p90",
        "p99",
        "max",
        "202 p99",
        "after 202 p50",
        "p99",
    ];
    let mut out = format!(
        "latency POST on B -> agent on A (ms; delivered counts 202s that reached the agent):\n{}",
        table(&headers, &rows)
    );
    out.push_str("  202 p99: B's answer; after 202: arrival at the agent minus B's answer time\n");
    out.push_str(
        "  without Redis, A finds B's events only at its next re-scan: expect latency spread \
         up to the rescan interval\n",
    );
    for run in runs {
        for note in &run.notes {
            out.push_str(&format!("  {}: {note}\n", run.wakeup.label()));
        }
    }
    out
}
