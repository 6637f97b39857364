//! The `lobster-relay` command line: the agent CLI and, through
//! `lobster-relay server`, the relay itself.
//!
//! Layout:
//! - [`cli`]: the clap definitions of the commands, wired together.
//! - [`global`]: the flags every command takes, `--relay` parsing and API
//!   URLs (below every command: nothing here imports one).
//! - [`context`]: what every agent command shares, resolved once: the
//!   relay, the config dir and `config.toml`, the API key lookup.
//! - [`config`]: `config.toml` (default relay, `listen` defaults).
//! - [`credentials`]: the API key's sources and stores (OS keyring,
//!   `credentials.toml`).
//! - [`files`]: the config dir and atomic, private file writes.
//! - [`login`]: `login` and `logout`.
//! - [`agent`]: an agent's connection, shared by `listen` and `wait`:
//!   transports (WebSocket, SSE, long-poll), handshake, answers, reconnects.
//! - [`listen`]: `listen`, the agent that handles every event (sessions,
//!   handlers).
//! - [`wait`]: `wait`, one event and out.
//! - [`status`]: the `status` command.
//! - [`events`]: `events list | show | replay` and `trigger`.
//! - [`admin`]: `admin create-agent | list-agents | revoke-agent`.
//! - [`generate`]: `completions` and the hidden `man`.
//! - [`api`]: the HTTP API client shared by the commands that call the relay.
//! - [`trust`]: the platform trust store plus `--ca-cert`, for every
//!   HTTP client and WebSocket connector.
//! - [`proxy`]: `HTTPS_PROXY` and friends for the WebSocket (a CONNECT
//!   tunnel), by the rules reqwest applies to the API calls.
//! - [`healthcheck`]: `healthcheck`, one GET for container health checks.
//! - [`version`]: `version` and `--version` (commit, target, build date).
//! - [`glob`]: event type patterns for `--events` and forward routes.
//! - [`ui`]: data on stdout, status on stderr, colour and spinner on a TTY.
//! - [`exit`]: exit codes and the errors that choose them; [`report`]: a
//!   failed command's message and exit code.
//!
//! `server` is [`lobster_server::main`] with its own flags; this crate only
//! dispatches to it. Every command is an `async fn` returning
//! `anyhow::Result<()>`; [`main`] turns the result into an exit code.

// Module docs link to the private items they describe (read them with
// `cargo doc --document-private-items`); clap turns doc comments into
// `--help`, where a URL is plain text, not a link.
#![allow(rustdoc::private_intra_doc_links, rustdoc::bare_urls)]

pub mod admin;
pub mod agent;
pub mod api;
pub mod callback;
pub mod cli;
pub mod config;
pub mod context;
pub mod credentials;
pub mod duration;
pub mod events;
pub mod exit;
pub mod files;
pub mod generate;
pub mod glob;
pub mod global;
pub mod healthcheck;
pub mod listen;
pub mod login;
pub mod printed;
pub mod proxy;
pub mod report;
pub mod status;
pub mod trust;
pub mod ui;
pub mod version;
pub mod wait;

use std::time::Duration;

use clap::{CommandFactory as _, FromArgMatches as _};

use crate::cli::{Cli, Command};
use crate::context::{Context, Sources};
use crate::exit::ExitCode;
use crate::ui::Ui;

/// Runs the program: parses the command line, runs the command, and returns
/// the process exit code. Usage errors, `--help` and `--version` exit inside
/// clap (codes 2 and 0).
pub fn main() -> std::process::ExitCode {
    // reqwest and tungstenite both use rustls; one provider for the process.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let matches = Cli::command().get_matches();
    let sources = Sources {
        relay: matches.value_source("relay"),
        api_key: matches.value_source("api_key"),
    };
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(err) => err.exit(),
    };
    let runtime = match runtime_for(&cli.command).enable_all().build() {
        Ok(runtime) => runtime,
        Err(err) => {
            let err = anyhow::Error::new(err).context("could not start the async runtime");
            return report::report(&err).into();
        }
    };
    let result = runtime.block_on(run(cli, sources));
    // A blocked write to a stalled stdout pipe, or a keyring call that
    // never answered, must not hold the exit.
    runtime.shutdown_timeout(Duration::from_millis(500));
    match result {
        Ok(()) => ExitCode::Success.into(),
        Err(err) => report::report(&err).into(),
    }
}

/// The relay serves many connections on every core. An agent command is
/// one connection and a handful of tasks: on one thread it skips the
/// wake-ups across threads that each event costs otherwise (`listen` used
/// 20% less CPU per forwarded event, and its p99 fell, in `docs/performance-history.md`).
fn runtime_for(command: &Command) -> tokio::runtime::Builder {
    match command {
        Command::Server(_) => tokio::runtime::Builder::new_multi_thread(),
        _ => tokio::runtime::Builder::new_current_thread(),
    }
}

/// Runs the command the user asked for.
pub async fn run(cli: Cli, sources: Sources) -> anyhow::Result<()> {
    let global = cli.global;
    trust::install_ca(global.ca_cert.as_deref())?;
    match cli.command {
        // These need no relay and no config: they work anywhere.
        Command::Server(args) => lobster_server::main(*args).await,
        Command::Healthcheck(args) => healthcheck::run(args).await,
        Command::Version => version::run(global.json),
        Command::Completions(args) => generate::completions(&args),
        Command::Man(args) => generate::man(&args, &Ui::new(&global)),
        command => {
            let ctx = Context::new(global, sources)?;
            match command {
                Command::Login(args) => login::login(&ctx, args).await,
                Command::Logout => login::logout(&ctx).await,
                Command::Listen(args) => listen::run(&ctx, args).await,
                Command::Wait(args) => wait::run(&ctx, args).await,
                Command::Status => status::run(&ctx).await,
                Command::Events(command) => events::run(&ctx, command).await,
                Command::Trigger(args) => events::trigger(&ctx, args).await,
                Command::Callback(command) => callback::run(&ctx, command).await,
                Command::Admin(command) => admin::run(&ctx, command).await,
                Command::Server(_)
                | Command::Healthcheck(_)
                | Command::Version
                | Command::Completions(_)
                | Command::Man(_) => {
                    unreachable!("handled above")
                }
            }
        }
    }
}
