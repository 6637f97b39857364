//! The `lobster-relay` command line: the agent CLI and, through
//! `lobster-relay server`, the relay itself.
//!
//! Layout:
//! - [`cli`]: the clap definitions of the global flags and the commands.
//! - [`listen`]: `listen`, the WebSocket agent (sessions, handlers, reconnects).
//! - [`admin`]: `admin create-agent | list-agents | revoke-agent`.
//! - [`api`]: the HTTP API client shared by the commands that call the relay.
//! - [`credentials`]: where the API key comes from.
//! - [`glob`]: event type patterns for `--events` and forward routes.
//! - [`ui`]: data on stdout, status on stderr, `-q`/`-v`.
//! - [`exit`]: exit codes and how errors are reported.
//!
//! `server` is [`lobster_server::main`] with its own flags; this crate only
//! dispatches to it. Every command is an `async fn` returning
//! `anyhow::Result<()>`; [`main`] turns the result into an exit code.

pub mod admin;
pub mod api;
pub mod cli;
pub mod credentials;
pub mod exit;
pub mod glob;
pub mod listen;
pub mod ui;

use std::time::Duration;

use clap::Parser as _;

use crate::cli::{Cli, Command};
use crate::exit::ExitCode;

/// Runs the program: parses the command line, runs the command, and returns
/// the process exit code. Usage errors, `--help` and `--version` exit inside
/// clap (codes 2 and 0).
pub fn main() -> std::process::ExitCode {
    // reqwest and tungstenite both use rustls; one provider for the process.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            let err = anyhow::Error::new(err).context("could not start the async runtime");
            return exit::report(&err).into();
        }
    };
    let result = runtime.block_on(run(cli));
    // A blocked write to a stalled stdout pipe must not hold the exit.
    runtime.shutdown_timeout(Duration::from_millis(500));
    match result {
        Ok(()) => ExitCode::Success.into(),
        Err(err) => exit::report(&err).into(),
    }
}

/// Runs the command the user asked for.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Listen(args) => listen::run(&cli.global, args).await,
        Command::Admin(command) => admin::run(&cli.global, command).await,
        Command::Server(args) => lobster_server::main(*args).await,
    }
}
