//! `lobster-bench`: throughput and latency figures for lobster-relay, on
//! loopback. It reports; it asserts no timing.
//!
//! Layout: `relay` starts a relay (or finds a running one) and creates
//! agents; `load` generates signed webhooks in closed or open loop; `ingest`
//! and `e2e` are the subcommands built on it; `agent` holds the consumers
//! (in-process WebSocket agents, `lobster-relay listen` children), and
//! `http_agent` the in-process SSE and long-poll ones; `sink` is
//! the local HTTP app that `listen` forwards to; `stats` computes
//! percentiles and prints tables and JSON. `agents` holds many idle agents
//! through `fleet`, which runs `swarm` client processes of this binary.
//! `cross` times delivery between two relay instances on PostgreSQL, with
//! and without Redis, using the services in `backing`. `compare` runs one
//! `wrk` load (`wrk`) against a direct POST to the sink, the relay through
//! `listen`, and `rathole`, and prints ratios (`comparison`).

mod agent;
mod agents;
mod backing;
mod compare;
mod comparison;
mod cross;
mod e2e;
mod fleet;
mod http_agent;
mod ingest;
mod load;
mod rathole;
mod relay;
mod sink;
mod stats;
mod store;
mod swarm;
mod wrk;

use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use serde_json::json;

use crate::e2e::{E2eArgs, Mode};
use crate::ingest::IngestArgs;
use crate::relay::{Relay, RelayArgs};
use crate::stats::{Outcome, Setup};

#[derive(Debug, Parser)]
#[command(version, about = "Benchmark harness for lobster-relay (loopback only)")]
struct Cli {
    #[command(flatten)]
    relay: RelayArgs,
    /// Print one JSON object on stdout instead of tables
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Webhooks accepted per second and time to 202
    Ingest(IngestArgs),
    /// Webhooks delivered through agents and time from POST to consumer
    E2e(E2eArgs),
    /// A short run of both for CI: exits 0 when events were accepted and delivered
    Smoke,
    /// Many idle agents: connect time, relay memory per agent, idle CPU, reconnect after restarts
    Agents(agents::AgentsArgs),
    /// Two relays on one PostgreSQL: time from a POST on B to an agent on A, with and without Redis
    Cross(cross::CrossArgs),
    /// The same wrk load, alternated, against a direct POST to a local app, each
    /// --relay-bin through `listen --forward`, and rathole when found; prints ratios
    Compare(compare::CompareArgs),
    /// The SQLite store alone, in this process: writer CPU and bytes written per
    /// event stored, pushed and acked
    Store(store::StoreArgs),
    /// One client process of `agents` (internal)
    #[command(hide = true)]
    Swarm(swarm::SwarmArgs),
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match &cli.command {
        Command::Swarm(args) => swarm::main(args).await.map(|()| true),
        Command::Cross(args) => cross::run(&cli.relay, args, common_setup())
            .await
            .map(|outcome| report(&cli, &[outcome])),
        Command::Compare(args) => compare::run(&cli.relay, args, common_setup())
            .await
            .map(|outcome| report(&cli, &[outcome])),
        Command::Store(args) => store::run(args, common_setup())
            .await
            .map(|outcome| report(&cli, &[outcome])),
        _ => run(cli).await,
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!("lobster-bench: the harness ran but nothing was accepted or delivered");
            ExitCode::FAILURE
        }
        Err(err) => {
            eprintln!("lobster-bench: {err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<bool> {
    if cli.relay.relay_url.is_none() {
        eprintln!("starting relay...");
    }
    let mut relay = Relay::start(&cli.relay).await?;
    eprintln!("relay at {}", relay.url);
    let result = commands(&cli, &mut relay).await;
    relay.stop().await?;
    Ok(report(&cli, &result?))
}

/// Prints the outcomes as tables or one JSON object; whether all worked.
fn report(cli: &Cli, outcomes: &[Outcome]) -> bool {
    let worked = outcomes.iter().all(|o| o.worked);
    if cli.json {
        let mut object = match &cli.command {
            Command::Smoke => json!({
                "command": "smoke",
                "runs": outcomes.iter().map(Outcome::to_json).collect::<Vec<_>>(),
            }),
            _ => outcomes[0].to_json(),
        };
        object["worked"] = json!(worked);
        println!("{object}");
    } else {
        for outcome in outcomes {
            outcome.print_human();
        }
    }
    worked
}

async fn commands(cli: &Cli, relay: &mut Relay) -> anyhow::Result<Vec<Outcome>> {
    let setup = base_setup(relay);
    Ok(match &cli.command {
        Command::Ingest(args) => vec![ingest::run(relay, args, setup).await?],
        Command::E2e(args) => vec![e2e::run(relay, &cli.relay, args, setup).await?],
        Command::Agents(args) => vec![agents::run(relay, args, setup).await?],
        Command::Swarm(_) | Command::Cross(_) | Command::Compare(_) | Command::Store(_) => {
            unreachable!("swarm, cross and compare start no shared relay")
        }
        Command::Smoke => {
            let ingest_args = IngestArgs {
                senders: 20,
                duration: Duration::from_secs(2),
                rate: None,
                body_size: 512,
                agents: 1,
                max_in_flight: 2048,
            };
            let e2e_args = E2eArgs {
                rate: 200.0,
                duration: Duration::from_secs(2),
                agents: 1,
                mode: Mode::Protocol,
                body_size: 512,
                concurrency: 50,
                settle: Duration::from_secs(5),
                max_in_flight: 2048,
            };
            let mut outcomes = vec![
                ingest::run(relay, &ingest_args, setup.clone()).await?,
                e2e::run(relay, &cli.relay, &e2e_args, setup).await?,
            ];
            if let Some(args) = smoke_compare(&cli.relay).await {
                outcomes.push(compare::run(&cli.relay, &args, common_setup()).await?);
            }
            outcomes
        }
    })
}

/// A one-round, one-second `compare` without rathole, when wrk is there
/// and the relay is this harness's own; `None` (with a note) otherwise.
async fn smoke_compare(relay: &RelayArgs) -> Option<compare::CompareArgs> {
    let args = compare::CompareArgs::smoke();
    if relay.relay_url.is_some() {
        eprintln!("smoke: compare skipped (it starts its own relays, not --relay-url)");
        return None;
    }
    if let Err(err) = args.wrk().check().await {
        eprintln!("smoke: compare skipped: {err:#}");
        return None;
    }
    Some(args)
}

/// What every run prints first: the code and the relay it measured.
fn base_setup(relay: &Relay) -> Setup {
    let mut setup = common_setup();
    relay.describe(&mut setup);
    setup
}

/// The code measured and where.
fn common_setup() -> Setup {
    let mut setup = Setup::default();
    setup.add("commit", git_commit());
    setup.add("host", "loopback 127.0.0.1");
    setup
}

/// `git rev-parse --short HEAD`, marked `-dirty` when tracked files changed.
fn git_commit() -> String {
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
    };
    match git(&["rev-parse", "--short", "HEAD"]) {
        Some(hash) if !hash.is_empty() => {
            let dirty = git(&["status", "--porcelain", "--untracked-files=no"])
                .is_some_and(|s| !s.is_empty());
            if dirty { format!("{hash}-dirty") } else { hash }
        }
        _ => "unknown".into(),
    }
}
