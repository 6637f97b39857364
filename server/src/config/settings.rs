//! Every setting of `lobster-relay server`, defined once: as a flag with
//! its environment variable (clap) and as a key of the `--config` file
//! (serde, the flag's name). Both layers are read into this one struct and
//! merged by [`Settings::or`]; `config/validate.rs` checks the result and
//! fills in the defaults, one concern at a time.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Args, ValueEnum};
use lobster_shared::Secret;
use lobster_shared::signature::Scheme;
use serde::{Deserialize, Deserializer};

/// Defines the settings struct and its merge from one list of fields, so a
/// new setting is written once. Every field is an `Option`: `None` is "not
/// given in this layer".
macro_rules! settings {
    (
        $(#[$meta:meta])*
        pub struct $name:ident {
            $( $(#[$field_meta:meta])* pub $field:ident: Option<$ty:ty>, )*
        }
    ) => {
        $(#[$meta])*
        pub struct $name {
            $( $(#[$field_meta])* pub $field: Option<$ty>, )*
        }

        impl $name {
            /// Each setting from `self`, or else from `under`: flags and
            /// environment over the file.
            pub fn or(self, under: $name) -> $name {
                $name { $( $field: self.$field.or(under.$field), )* }
            }
        }
    };
}

settings! {
/// Flags of `lobster-relay server` and keys of its `--config` file
/// (`docs/api-reference.md`, "Server configuration"). In the file a key is
/// the flag's name, kebab-case or snake_case.
#[derive(Debug, Clone, Default, Args, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Settings {
    /// TOML file with the same settings (flags and env win over it).
    #[arg(long, env = "RELAY_CONFIG", value_name = "FILE")]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:8080].
    #[arg(long, env = "RELAY_LISTEN", value_name = "ADDR")]
    pub listen: Option<String>,
    /// Public base URL of this relay, used in webhook URLs [default: http://{listen}].
    #[arg(long, env = "RELAY_PUBLIC_URL", value_name = "URL")]
    pub public_url: Option<String>,
    /// sqlite://PATH [default: sqlite://{data_dir}/relay.db].
    #[arg(long, env = "DATABASE_URL", value_name = "URL")]
    pub database: Option<String>,
    /// Redis URL for cross-instance wake-ups (with a PostgreSQL database).
    #[arg(long, env = "REDIS_URL", value_name = "URL")]
    pub redis: Option<String>,
    /// Directory for the database and the generated admin token.
    #[arg(long, env = "RELAY_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Signing secret of the default workspace, taken verbatim (spaces
    /// included). Give the flag again to verify with more than one (rotation).
    #[arg(
        long,
        env = "WEBHOOK_SECRET",
        value_name = "SECRET",
        hide_env_values = true,
        action = clap::ArgAction::Append
    )]
    #[serde(default, deserialize_with = "one_or_many")]
    pub webhook_secret: Option<Vec<Secret>>,
    /// One more secret that also verifies, verbatim (rotation: the old one).
    #[arg(
        long,
        env = "WEBHOOK_SECRET_PREVIOUS",
        value_name = "SECRET",
        hide_env_values = true
    )]
    pub webhook_secret_previous: Option<Secret>,
    /// standard-webhooks, github, stripe or none [default: standard-webhooks].
    #[arg(long, env = "RELAY_SIGNATURE_SCHEME", value_name = "SCHEME")]
    pub signature_scheme: Option<Scheme>,
    /// Token for the admin API [default: generated on first start].
    #[arg(
        long,
        env = "RELAY_ADMIN_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    pub admin_token: Option<Secret>,
    /// 64 hex chars: AES-256-GCM key for secrets at rest.
    #[arg(
        long,
        env = "RELAY_ENCRYPTION_KEY",
        value_name = "HEX",
        hide_env_values = true
    )]
    pub encryption_key: Option<Secret>,
    /// TLS certificate chain (PEM).
    #[arg(long, env = "RELAY_TLS_CERT", value_name = "FILE")]
    pub tls_cert: Option<PathBuf>,
    /// TLS private key (PEM).
    #[arg(long, env = "RELAY_TLS_KEY", value_name = "FILE")]
    pub tls_key: Option<PathBuf>,
    /// Largest webhook body accepted [default: 1MiB].
    #[arg(long, env = "RELAY_MAX_BODY", value_name = "SIZE")]
    pub max_body: Option<String>,
    /// Ingest rate limit per agent, e.g. 1000/s (burst twice that).
    #[arg(long, env = "RELAY_AGENT_RATE_LIMIT", value_name = "RATE")]
    pub agent_rate_limit: Option<String>,
    /// Ingest rate limit for the whole relay, e.g. 20000/s [default: none].
    #[arg(long, env = "RELAY_GLOBAL_RATE_LIMIT", value_name = "RATE")]
    pub global_rate_limit: Option<String>,
    /// pretty or json [default: pretty on a TTY, else json].
    #[arg(long, env = "RELAY_LOG_FORMAT", value_name = "FORMAT")]
    pub log_format: Option<LogFormat>,
    /// Unacked events per session [default: 100].
    #[arg(long, env = "RELAY_MAX_IN_FLIGHT", value_name = "N")]
    pub max_in_flight: Option<u32>,
    /// Time an agent has to ack an event [default: 30s].
    #[arg(long, env = "RELAY_ACK_TIMEOUT", value_name = "DURATION")]
    pub ack_timeout: Option<String>,
    /// First retry delay after a nack [default: 1s].
    #[arg(long, env = "RELAY_RETRY_INITIAL", value_name = "DURATION")]
    pub retry_initial: Option<String>,
    /// Longest delay between retries [default: 10m].
    #[arg(long, env = "RELAY_RETRY_MAX_DELAY", value_name = "DURATION")]
    pub retry_max_delay: Option<String>,
    /// Delivery attempts before an event is marked failed [default: 20].
    #[arg(long, env = "RELAY_RETRY_MAX_ATTEMPTS", value_name = "N")]
    pub retry_max_attempts: Option<u32>,
    /// How long events are kept [default: 7d].
    #[arg(long, env = "RELAY_RETENTION", value_name = "DURATION")]
    pub retention: Option<String>,
    /// How long failed events (dead letters) are kept [default: 30d].
    #[arg(long, env = "RELAY_FAILED_RETENTION", value_name = "DURATION")]
    pub failed_retention: Option<String>,
    /// Trust X-Forwarded-For only from these proxies, e.g. 10.0.0.0/8,::1 [default: none].
    #[arg(long, env = "RELAY_TRUSTED_PROXIES", value_name = "CIDR,...")]
    pub trusted_proxies: Option<String>,
    /// Failed agent-key and admin-token attempts per client IP before 429, e.g. 10/m (burst twice that).
    #[arg(long, env = "RELAY_AUTH_FAILURE_LIMIT", value_name = "RATE")]
    pub auth_failure_limit: Option<String>,
    /// Live WebSocket sessions per agent on this relay instance [default: 10].
    #[arg(long, env = "RELAY_MAX_SESSIONS_PER_AGENT", value_name = "N")]
    pub max_sessions_per_agent: Option<u32>,
    /// Undelivered events an agent may have stored; webhooks beyond get 429 [default: 100000].
    #[arg(long, env = "RELAY_AGENT_MAX_PENDING", value_name = "N")]
    pub agent_max_pending: Option<u64>,
    /// Open connections at most, WebSockets included [default: the open-files limit minus a reserve].
    #[arg(long, env = "RELAY_MAX_CONNECTIONS", value_name = "N")]
    pub max_connections: Option<usize>,
    /// Time a client has to send a request's headers, and to finish a TLS handshake [default: 10s].
    #[arg(long, env = "RELAY_HEADER_TIMEOUT", value_name = "DURATION")]
    pub header_timeout: Option<String>,
    /// Time a request (body included) may take, WebSockets excepted [default: 30s].
    #[arg(long, env = "RELAY_REQUEST_TIMEOUT", value_name = "DURATION")]
    pub request_timeout: Option<String>,
    /// How often the TLS files are checked for changes [default: 5s].
    #[arg(
        long,
        env = "RELAY_TLS_RELOAD_INTERVAL",
        value_name = "DURATION",
        hide = true
    )]
    pub tls_reload_interval: Option<String>,
    /// Accept plain http:// callback URLs (push delivery) [default: https only].
    #[arg(
        long,
        env = "RELAY_ALLOW_HTTP_CALLBACKS",
        value_name = "BOOL",
        num_args = 0..=1,
        default_missing_value = "true",
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    pub allow_http_callbacks: Option<bool>,
    /// Networks callbacks may reach although they are loopback, private,
    /// link-local... e.g. 10.1.2.0/24 [default: none].
    #[arg(long, env = "RELAY_CALLBACK_ALLOW_CIDR", value_name = "CIDR,...")]
    pub callback_allow_cidr: Option<String>,
    /// CA certificates (PEM) trusted for callback URLs, besides the system's.
    #[arg(long, env = "RELAY_CALLBACK_CA_CERT", value_name = "FILE")]
    pub callback_ca_cert: Option<PathBuf>,
    /// With PostgreSQL: how often sessions re-check the database for work
    /// whose wake-up was lost [default: 5s with Redis, 1s without].
    #[arg(long, env = "RELAY_RESCAN_INTERVAL", value_name = "DURATION")]
    pub rescan_interval: Option<String>,
}
}

/// A TOML value that may be one item or a list of them.
#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany<T> {
    One(T),
    Many(Vec<T>),
}

fn one_or_many<'de, D, T>(deserializer: D) -> Result<Option<Vec<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Ok(Some(match OneOrMany::deserialize(deserializer)? {
        OneOrMany::One(one) => vec![one],
        OneOrMany::Many(many) => many,
    }))
}

impl Settings {
    /// The settings of a `--config` file.
    pub fn read_file(path: &Path) -> anyhow::Result<Settings> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read config file {}", path.display()))?;
        Self::from_toml(&text)
            .with_context(|| format!("config file {} is not valid", path.display()))
    }

    /// Settings from TOML text, its keys kebab-case or snake_case.
    pub fn from_toml(text: &str) -> anyhow::Result<Settings> {
        let table: toml::Table = toml::from_str(text)?;
        let mut keys = toml::Table::new();
        for (key, value) in table {
            let kebab = key.replace('_', "-");
            if keys.insert(kebab.clone(), value).is_some() {
                anyhow::bail!(
                    "`{kebab}` is given twice (kebab-case and snake_case name the same setting)"
                );
            }
        }
        Ok(toml::Value::Table(keys).try_into()?)
    }
}

/// How the server writes its logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LogFormat {
    Pretty,
    Json,
}
