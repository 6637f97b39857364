//! The command line, as clap sees it: global flags and one variant per command.
//!
//! Each command's own flags live beside its code (`listen::ListenArgs`,
//! `events::EventsCommand`, ...); this file only wires them together.

use std::path::PathBuf;

use clap::{ArgAction, Args, Parser, Subcommand};
use lobster_shared::Secret;
use reqwest::Url;

use crate::admin::AdminCommand;
use crate::events::{EventsCommand, TriggerArgs};
use crate::generate::{CompletionsArgs, ManArgs};
use crate::listen::ListenArgs;
use crate::login::LoginArgs;
use crate::wait::WaitArgs;

/// The hosted relay, used when neither `--relay`, `LOBSTER_RELAY_URL` nor
/// `config.toml` says otherwise.
pub const DEFAULT_RELAY_URL: &str = "https://relay.powerlobster.com";

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

/// Flags accepted by every command (`docs/cli.md`).
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Global options")]
pub struct GlobalArgs {
    /// Base URL of the relay [default: `relay` in config.toml, else https://relay.powerlobster.com].
    #[arg(
        long,
        global = true,
        env = "LOBSTER_RELAY_URL",
        value_name = "URL",
        value_parser = parse_relay_url
    )]
    pub relay: Option<Url>,

    /// API key of the agent [default: the one `login` stored for the relay].
    #[arg(
        long,
        global = true,
        env = "LOBSTER_RELAY_API_KEY",
        hide_env_values = true,
        value_name = "KEY"
    )]
    pub api_key: Option<Secret>,

    /// Directory holding config.toml and credentials.toml [default: the platform config dir].
    #[arg(
        long,
        global = true,
        env = "LOBSTER_RELAY_CONFIG_DIR",
        value_name = "DIR"
    )]
    pub config_dir: Option<PathBuf>,

    /// Print data as JSON on stdout.
    #[arg(long, global = true)]
    pub json: bool,

    /// Print only errors and warnings on stderr.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,

    /// Print more detail on stderr (repeat for even more).
    #[arg(short, long, global = true, action = ArgAction::Count)]
    pub verbose: u8,

    /// PEM file of a private CA to trust for the relay's TLS certificate, besides the platform's trust store.
    #[arg(
        long,
        global = true,
        env = "LOBSTER_RELAY_CA_CERT",
        value_name = "FILE"
    )]
    pub ca_cert: Option<PathBuf>,

    /// Use the OS keyring for API keys (`off`: only credentials.toml).
    #[arg(
        long,
        global = true,
        hide = true,
        env = "LOBSTER_RELAY_KEYRING",
        value_name = "on|off",
        default_value = "on",
        value_parser = parse_switch
    )]
    pub keyring: bool,
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
    Server(Box<lobster_server::ServerArgs>),

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

/// Parses `--relay`: an `http(s)://` URL with a host.
pub fn parse_relay_url(value: &str) -> Result<Url, String> {
    let url = Url::parse(value.trim()).map_err(|err| format!("not a URL ({err})"))?;
    match url.scheme() {
        "http" | "https" if url.has_host() => Ok(url),
        "http" | "https" => Err("the URL has no host".into()),
        other => Err(format!(
            "scheme {other}:// is not supported, use http:// or https://"
        )),
    }
}

/// Parses an on/off switch: `on`, `off`, `true`, `false`, `1`, `0`, `yes`, `no`.
pub fn parse_switch(value: &str) -> Result<bool, String> {
    match value.trim().to_ascii_lowercase().as_str() {
        "on" | "true" | "1" | "yes" => Ok(true),
        "off" | "false" | "0" | "no" => Ok(false),
        other => Err(format!("{other:?} is not on or off")),
    }
}

/// Builds `{base}/{segments...}`, keeping any path prefix the base URL has.
pub fn endpoint(base: &Url, segments: &[&str]) -> Url {
    let mut url = base.clone();
    url.set_query(None);
    url.set_fragment(None);
    if let Ok(mut path) = url.path_segments_mut() {
        path.pop_if_empty().extend(segments);
    }
    url
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
    fn relay_urls_need_http_and_a_host() {
        assert!(parse_relay_url("https://relay.example.com").is_ok());
        assert!(parse_relay_url("http://127.0.0.1:8080").is_ok());
        assert!(parse_relay_url("ftp://x").is_err());
        assert!(parse_relay_url("relay.example.com").is_err());
    }

    #[test]
    fn switches() {
        assert_eq!(parse_switch("OFF"), Ok(false));
        assert_eq!(parse_switch("on"), Ok(true));
        assert!(parse_switch("maybe").is_err());
    }

    #[test]
    fn endpoints_keep_a_path_prefix() {
        let base = Url::parse("https://x.example/relay/").unwrap();
        let url = endpoint(&base, &["api", "v1", "agent", "connect"]);
        assert_eq!(url.as_str(), "https://x.example/relay/api/v1/agent/connect");
        let bare = Url::parse("http://127.0.0.1:8080").unwrap();
        let url = endpoint(&bare, &["api", "v1", "admin", "agents", "a/b"]);
        assert_eq!(
            url.as_str(),
            "http://127.0.0.1:8080/api/v1/admin/agents/a%2Fb"
        );
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
