//! The flags every command takes ([`GlobalArgs`]) and the relay URL they
//! name: how `--relay` is parsed and how API URLs are built from it. Below
//! every command: nothing here imports them.

use std::path::PathBuf;

use clap::{ArgAction, Args};
use lobster_shared::Secret;
use reqwest::Url;

/// The hosted relay, used when neither `--relay`, `LOBSTER_RELAY_URL` nor
/// `config.toml` says otherwise.
pub const DEFAULT_RELAY_URL: &str = "https://relay.powerlobster.com";

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
}
