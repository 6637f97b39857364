//! The command line, as clap sees it: global flags and one variant per command.
//!
//! Each command's own flags live beside its code (`listen::ListenArgs`,
//! `admin::AdminCommand`); this file only wires them together.

use std::path::PathBuf;

use clap::{ArgAction, Args, Parser, Subcommand};
use lobster_shared::Secret;
use reqwest::Url;

use crate::admin::AdminCommand;
use crate::listen::ListenArgs;

/// The hosted relay, used when neither `--relay` nor `LOBSTER_RELAY_URL` says otherwise.
pub const DEFAULT_RELAY_URL: &str = "https://relay.powerlobster.com";

/// Receive webhooks behind NAT: the lobster-relay agent and relay server in one binary.
#[derive(Debug, Parser)]
#[command(name = "lobster-relay", version, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,

    #[command(subcommand)]
    pub command: Command,
}

/// Flags accepted by every command (contract section 7).
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Global options")]
pub struct GlobalArgs {
    /// Base URL of the relay.
    #[arg(
        long,
        global = true,
        env = "LOBSTER_RELAY_URL",
        default_value = DEFAULT_RELAY_URL,
        value_name = "URL",
        value_parser = parse_relay_url
    )]
    pub relay: Url,

    /// API key of the agent.
    #[arg(
        long,
        global = true,
        env = "LOBSTER_RELAY_API_KEY",
        hide_env_values = true,
        value_name = "KEY"
    )]
    pub api_key: Option<Secret>,

    /// Directory holding config.toml and credentials [default: the platform config dir].
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
}

/// The commands of `lobster-relay`.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Connect to the relay and handle webhooks as they arrive.
    Listen(ListenArgs),

    /// Manage agents on a relay you run (needs the relay's admin token).
    #[command(subcommand)]
    Admin(AdminCommand),

    /// Run the relay server in the foreground.
    // Boxed: the server has many flags and would make every variant as big.
    Server(Box<lobster_server::ServerArgs>),
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
    fn relay_urls_need_http_and_a_host() {
        assert!(parse_relay_url("https://relay.example.com").is_ok());
        assert!(parse_relay_url("http://127.0.0.1:8080").is_ok());
        assert!(parse_relay_url("ftp://x").is_err());
        assert!(parse_relay_url("relay.example.com").is_err());
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
        assert_eq!(cli.global.relay.as_str(), "http://127.0.0.1:1/");
        assert_eq!(cli.global.api_key.unwrap().expose(), "k");
        assert_eq!(cli.global.verbose, 2);
    }
}
