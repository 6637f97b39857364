//! The command line, as clap sees it: global flags and one variant per command.
//!
//! Each command's own flags live beside its code (`listen::ListenArgs`,
//! `events::EventsCommand`, ...); this file only wires them together.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use clap_complete::Shell;

use crate::admin::AdminCommand;
use crate::events::{EventsCommand, TriggerArgs};
use crate::global::GlobalArgs;
use crate::listen::ListenArgs;
use crate::login::LoginArgs;
use crate::wait::WaitArgs;

const EXAMPLES: &str = "\
Examples:
  # Log in once (the key is checked, then kept in the OS keyring)
  lobster-relay login --relay https://relay.example.com

  # Forward every webhook to your local app
  lobster-relay listen --forward localhost:3000/webhooks

  # Who am I, and is anything waiting?
  lobster-relay status

  # Send yourself a test event, then look at it
  lobster-relay trigger message.received --data '{\"text\":\"hi\"}'
  lobster-relay events list --limit 5

Files: config.toml (default relay, `listen` defaults) and, where no OS
keyring works, credentials.toml (mode 0600), both in the config dir.
Set LOBSTER_RELAY_KEYRING=off to never use the OS keyring.

Exit codes: 0 success, 1 failure, 2 bad flags or config, 3 the relay
refused the credentials (or none were found).";

/// Receive webhooks behind NAT: the lobster-relay agent and relay server in one binary.
#[derive(Debug, Parser)]
#[command(
    name = "lobster-relay",
    version = crate::version::LINE,
    propagate_version = true,
    after_help = EXAMPLES
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,

    #[command(subcommand)]
    pub command: Command,
}

/// The commands of `lobster-relay`.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check an agent's API key with the relay and store it (OS keyring, else a 0600 file).
    Login(LoginArgs),

    /// Remove the API key stored for the relay.
    #[command(after_help = "\
Examples:
  lobster-relay logout
  lobster-relay logout --relay https://relay.example.com")]
    Logout,

    /// Connect to the relay and handle webhooks as they arrive.
    Listen(ListenArgs),

    /// Wait for one event, print it as one JSON line, ack it, and exit.
    Wait(WaitArgs),

    /// Show the relay, the agent, its webhook URL, the key in use, pending events and sessions.
    #[command(after_help = "\
Examples:
  lobster-relay status
  lobster-relay status --json | jq .pending_events

The key source is one of: --api-key flag, LOBSTER_RELAY_API_KEY, the OS
keyring, or credentials.toml (where `login` stored it).")]
    Status,

    /// List, show and replay this agent's events.
    #[command(subcommand)]
    Events(EventsCommand),

    /// Send this agent a test event, as if a webhook had arrived.
    Trigger(TriggerArgs),

    /// Have the relay POST this agent's events to a URL (push delivery) while no session is connected.
    #[command(subcommand)]
    Callback(crate::callback::CallbackCommand),

    /// Manage agents on a relay you run (needs the relay's admin token).
    #[command(subcommand)]
    Admin(AdminCommand),

    /// Run the relay server in the foreground.
    // Boxed: the server has many flags and would make every variant as big.
    #[command(after_help = "\
Examples:
  # A relay on this machine, state in ./relay-data (prints the admin token once)
  WEBHOOK_SECRET=\"whsec_$(head -c 24 /dev/urandom | base64)\" \\
    lobster-relay server --data-dir ./relay-data

  # Behind a proxy that terminates TLS (trust its X-Forwarded-For)
  lobster-relay server --listen 0.0.0.0:8080 --public-url https://relay.example.com \\
    --trusted-proxies 10.0.0.0/8

  # Serving TLS itself (SIGHUP or a changed file reloads the certificate)
  lobster-relay server --listen 0.0.0.0:8443 --tls-cert fullchain.pem --tls-key privkey.pem

SIGTERM or Ctrl-C drains: no new requests, writes finish, sessions close
with 1012 so listeners reconnect by themselves.")]
    Server(Box<lobster_server::Settings>),

    /// Check that a relay answers: GET a URL, exit 0 on 2xx, else 1 (for container health checks).
    #[command(after_help = "\
Examples:
  lobster-relay healthcheck
  lobster-relay healthcheck --url https://relay.example.com/readyz --ca-cert ca.pem")]
    Healthcheck(crate::healthcheck::HealthcheckArgs),

    /// Print the version, git commit, target and build date (`--json`: one JSON object).
    #[command(after_help = "\
Examples:
  lobster-relay version
  lobster-relay version --json")]
    Version,

    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions(CompletionsArgs),

    /// Print the man page, or write one per command into a directory.
    #[command(hide = true)]
    Man(ManArgs),
}

/// Flags of `completions`.
#[derive(Debug, Clone, Args)]
#[command(after_help = "\
Examples:
  lobster-relay completions bash > ~/.local/share/bash-completion/completions/lobster-relay
  lobster-relay completions zsh > \"${fpath[1]}/_lobster-relay\"
  lobster-relay completions fish > ~/.config/fish/completions/lobster-relay.fish")]
pub struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum)]
    pub shell: Shell,
}

/// Flags of `man`.
#[derive(Debug, Clone, Args)]
#[command(after_help = "\
Examples:
  lobster-relay man | man -l -
  lobster-relay man --out-dir /usr/local/share/man/man1")]
pub struct ManArgs {
    /// Write one page per command (lobster-relay.1, lobster-relay-listen.1, ...) here.
    #[arg(long, value_name = "DIR")]
    pub out_dir: Option<PathBuf>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory as _;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn every_visible_command_has_examples() {
        let mut cli = Cli::command();
        cli.build();
        let mut missing = Vec::new();
        let mut stack: Vec<&clap::Command> = vec![&cli];
        while let Some(cmd) = stack.pop() {
            let has_subcommands = cmd.get_subcommands().next().is_some();
            let help = cmd
                .get_after_help()
                .or(cmd.get_after_long_help())
                .map(|h| h.to_string())
                .unwrap_or_default();
            let exempt = cmd.get_name() == "help" || has_subcommands;
            if !exempt && !help.contains("lobster-relay ") {
                missing.push(cmd.get_name().to_owned());
            }
            // `help` mirrors every command without its help texts.
            stack.extend(
                cmd.get_subcommands()
                    .filter(|c| !c.is_hide_set() && c.get_name() != "help"),
            );
        }
        assert!(missing.is_empty(), "commands without examples: {missing:?}");
    }

    #[test]
    fn globals_work_after_the_subcommand() {
        let cli = Cli::try_parse_from([
            "lobster-relay",
            "listen",
            "--relay",
            "http://127.0.0.1:1",
            "--api-key",
            "k",
            "-vv",
        ])
        .unwrap();
        assert_eq!(cli.global.relay.unwrap().as_str(), "http://127.0.0.1:1/");
        assert_eq!(cli.global.api_key.unwrap().expose(), "k");
        assert_eq!(cli.global.verbose, 2);
    }
}
