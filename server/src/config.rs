//! Server configuration: flags, environment, an optional TOML file, defaults.
//!
//! Flags beat env (clap does both), env beats the file, the file beats the
//! defaults. Everything is validated once into a plain [`Config`]; nothing
//! downstream reads the environment.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use ipnet::IpNet;
use lobster_shared::Secret;
use lobster_shared::signature::{Scheme, SigningKey};
use serde::Deserialize;

use crate::crypto::EncryptionKey;
use crate::retry::RetryPolicy;

/// A flag, variable or config-file value the server cannot start with. The
/// CLI exits with its usage code (2) for it; other start-up failures are
/// runtime failures (1).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

/// Flags of `lobster-relay server` (`docs/api-reference.md`, "Server configuration").
#[derive(Debug, Clone, Default, Args)]
pub struct ServerArgs {
    /// TOML file with the same settings (flags and env win over it).
    #[arg(long, env = "RELAY_CONFIG", value_name = "FILE")]
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
    pub webhook_secret: Vec<Secret>,
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

/// How the server writes its logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LogFormat {
    Pretty,
    Json,
}

/// The `--config` file: the flags' names, kebab-case or snake_case.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct FileConfig {
    listen: Option<String>,
    #[serde(alias = "public_url")]
    public_url: Option<String>,
    database: Option<String>,
    redis: Option<String>,
    #[serde(alias = "data_dir")]
    data_dir: Option<PathBuf>,
    #[serde(alias = "webhook_secret")]
    webhook_secret: Option<OneOrMany<Secret>>,
    #[serde(alias = "webhook_secret_previous")]
    webhook_secret_previous: Option<Secret>,
    #[serde(alias = "signature_scheme")]
    signature_scheme: Option<Scheme>,
    #[serde(alias = "admin_token")]
    admin_token: Option<Secret>,
    #[serde(alias = "encryption_key")]
    encryption_key: Option<Secret>,
    #[serde(alias = "tls_cert")]
    tls_cert: Option<PathBuf>,
    #[serde(alias = "tls_key")]
    tls_key: Option<PathBuf>,
    #[serde(alias = "max_body")]
    max_body: Option<String>,
    #[serde(alias = "agent_rate_limit")]
    agent_rate_limit: Option<String>,
    #[serde(alias = "global_rate_limit")]
    global_rate_limit: Option<String>,
    #[serde(alias = "log_format")]
    log_format: Option<LogFormat>,
    #[serde(alias = "max_in_flight")]
    max_in_flight: Option<u32>,
    #[serde(alias = "ack_timeout")]
    ack_timeout: Option<String>,
    #[serde(alias = "retry_initial")]
    retry_initial: Option<String>,
    #[serde(alias = "retry_max_delay")]
    retry_max_delay: Option<String>,
    #[serde(alias = "retry_max_attempts")]
    retry_max_attempts: Option<u32>,
    retention: Option<String>,
    #[serde(alias = "failed_retention")]
    failed_retention: Option<String>,
    #[serde(alias = "rescan_interval")]
    rescan_interval: Option<String>,
    #[serde(alias = "trusted_proxies")]
    trusted_proxies: Option<String>,
    #[serde(alias = "auth_failure_limit")]
    auth_failure_limit: Option<String>,
    #[serde(alias = "max_sessions_per_agent")]
    max_sessions_per_agent: Option<u32>,
    #[serde(alias = "agent_max_pending")]
    agent_max_pending: Option<u64>,
    #[serde(alias = "max_connections")]
    max_connections: Option<usize>,
    #[serde(alias = "header_timeout")]
    header_timeout: Option<String>,
    #[serde(alias = "request_timeout")]
    request_timeout: Option<String>,
    #[serde(alias = "tls_reload_interval")]
    tls_reload_interval: Option<String>,
    #[serde(alias = "allow_http_callbacks")]
    allow_http_callbacks: Option<bool>,
    #[serde(alias = "callback_allow_cidr")]
    callback_allow_cidr: Option<String>,
    #[serde(alias = "callback_ca_cert")]
    callback_ca_cert: Option<PathBuf>,
}

/// The certificate chain and key files the relay serves TLS with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// How often their modification times are checked.
    pub reload_every: Duration,
}

/// Where events are stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Database {
    /// Embedded; one relay instance.
    Sqlite(PathBuf),
    /// Shared by several relay instances; the URL as given.
    Postgres(String),
}

/// A rate limit: `count` events per `per`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub count: u32,
    pub per: Duration,
}

/// The validated configuration the server runs with.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: String,
    /// `None`: derived from the bound address once listening.
    pub public_url: Option<String>,
    pub database: Database,
    /// Redis for cross-instance wake-ups (PostgreSQL only).
    pub redis_url: Option<String>,
    /// How often sessions re-scan a shared store; `None` with SQLite,
    /// where every wake-up is local and none can be lost.
    pub rescan: Option<Duration>,
    pub data_dir: PathBuf,
    pub scheme: Scheme,
    pub signing_keys: Vec<SigningKey>,
    /// The `default` workspace's secrets as given, one per signing key.
    pub webhook_secrets: Vec<Secret>,
    pub admin_token: Option<Secret>,
    /// Encrypts workspace secrets stored in the database; `None`: stored
    /// in plaintext (the server warns when it stores one).
    pub encryption_key: Option<EncryptionKey>,
    pub max_body: usize,
    pub agent_rate_limit: Option<Rate>,
    pub global_rate_limit: Option<Rate>,
    pub log_format: Option<LogFormat>,
    pub max_in_flight: u32,
    pub ack_timeout: Duration,
    pub retry: RetryPolicy,
    pub retention: Duration,
    /// How long failed events are kept, for inspection and replay.
    pub failed_retention: Duration,
    /// `None`: plain HTTP (behind a proxy that terminates TLS).
    pub tls: Option<TlsFiles>,
    /// Peers whose `X-Forwarded-For` names the client.
    pub trusted_proxies: Vec<IpNet>,
    /// Failed authentications/signatures per client IP.
    pub auth_failure_limit: Rate,
    pub max_sessions_per_agent: u32,
    /// Undelivered events one agent may have stored before ingest says 429.
    pub agent_max_pending: u64,
    /// `--max-connections`; `None`: derived from the open-files limit.
    pub max_connections: Option<usize>,
    /// Headers (and the TLS handshake) must arrive within this.
    pub header_timeout: Duration,
    /// Non-WebSocket requests must be answered within this.
    pub request_timeout: Duration,
    /// Push delivery: which callback URLs and addresses are allowed.
    pub callback_policy: crate::callback::Policy,
    /// `--callback-ca-cert`: the PEM file's contents.
    pub callback_ca_cert: Option<Vec<u8>>,
}

impl Config {
    /// Layers flags/env over the `--config` file over defaults and validates.
    pub fn load(args: ServerArgs) -> anyhow::Result<Config> {
        let file = match &args.config {
            Some(path) => read_file(path)?,
            None => FileConfig::default(),
        };
        Self::from_layers(args, file)
    }

    fn from_layers(flags: ServerArgs, file: FileConfig) -> anyhow::Result<Config> {
        let data_dir = match flags.data_dir.or(file.data_dir) {
            Some(dir) => dir,
            None => default_data_dir()?,
        };
        let database = match flags.database.or(file.database) {
            None => Database::Sqlite(data_dir.join("relay.db")),
            Some(url) => parse_database_url(&url)?,
        };
        let redis_url = flags.redis.or(file.redis).filter(|u| !u.trim().is_empty());
        if redis_url.is_some() && matches!(database, Database::Sqlite(_)) {
            bail!(
                "--redis carries wake-ups between relay instances sharing PostgreSQL; with SQLite there is one instance: remove --redis / REDIS_URL, or use --database postgres://..."
            );
        }
        let rescan = match &database {
            Database::Sqlite(_) => None,
            Database::Postgres(_) => {
                let default = if redis_url.is_some() { "5s" } else { "1s" };
                let every = duration(
                    "rescan-interval",
                    flags.rescan_interval.or(file.rescan_interval),
                    default,
                )?;
                Some(every).filter(|d| !d.is_zero())
            }
        };
        let encryption_key = match flags.encryption_key.or(file.encryption_key) {
            None => None,
            Some(hex) if hex.expose().trim().is_empty() => None,
            Some(hex) => Some(EncryptionKey::from_hex(hex.expose()).map_err(|err| {
                anyhow::anyhow!(
                    "{err}: generate one with `openssl rand -hex 32` and pass it as --encryption-key or RELAY_ENCRYPTION_KEY"
                )
            })?),
        };
        let tls = match (
            flags.tls_cert.or(file.tls_cert),
            flags.tls_key.or(file.tls_key),
        ) {
            (None, None) => None,
            (Some(cert), Some(key)) => Some(TlsFiles {
                cert,
                key,
                reload_every: positive(
                    "tls-reload-interval",
                    flags.tls_reload_interval.or(file.tls_reload_interval),
                    "5s",
                )?,
            }),
            _ => bail!(
                "--tls-cert and --tls-key go together: pass both (PEM files), or neither for plain HTTP behind a proxy"
            ),
        };
        let trusted_proxies = parse_cidrs(
            flags
                .trusted_proxies
                .or(file.trusted_proxies)
                .as_deref()
                .unwrap_or(""),
        )?;
        let callback_policy = crate::callback::Policy {
            allow_http: flags
                .allow_http_callbacks
                .or(file.allow_http_callbacks)
                .unwrap_or(false),
            allow: parse_cidrs_for(
                "callback-allow-cidr",
                flags
                    .callback_allow_cidr
                    .or(file.callback_allow_cidr)
                    .as_deref()
                    .unwrap_or(""),
            )?,
        };
        let callback_ca_cert = match flags.callback_ca_cert.or(file.callback_ca_cert) {
            None => None,
            Some(path) => Some(std::fs::read(&path).with_context(|| {
                format!(
                    "cannot read --callback-ca-cert {}: pass a PEM file of CA certificates",
                    path.display()
                )
            })?),
        };
        let auth_failure_limit = rate(
            "auth-failure-limit",
            Some(
                flags
                    .auth_failure_limit
                    .or(file.auth_failure_limit)
                    .unwrap_or_else(|| "10/m".into()),
            ),
        )?
        .expect("a value was given");
        let max_sessions_per_agent = flags
            .max_sessions_per_agent
            .or(file.max_sessions_per_agent)
            .unwrap_or(10);
        if !(1..=10_000).contains(&max_sessions_per_agent) {
            bail!(
                "--max-sessions-per-agent must be between 1 and 10000, got {max_sessions_per_agent}"
            );
        }
        let max_connections = flags.max_connections.or(file.max_connections);
        if max_connections.is_some_and(|n| !(1..=1_000_000).contains(&n)) {
            bail!("--max-connections must be between 1 and 1000000");
        }
        let agent_max_pending = flags
            .agent_max_pending
            .or(file.agent_max_pending)
            .unwrap_or(100_000);
        if !(1..=1_000_000_000).contains(&agent_max_pending) {
            bail!("--agent-max-pending must be between 1 and 1000000000, got {agent_max_pending}");
        }
        let header_timeout = positive(
            "header-timeout",
            flags.header_timeout.or(file.header_timeout),
            "10s",
        )?;
        let request_timeout = positive(
            "request-timeout",
            flags.request_timeout.or(file.request_timeout),
            "30s",
        )?;
        let scheme = flags
            .signature_scheme
            .or(file.signature_scheme)
            .unwrap_or_default();
        let secrets = if flags.webhook_secret.is_empty() {
            file.webhook_secret
                .map(OneOrMany::into_vec)
                .unwrap_or_default()
        } else {
            flags.webhook_secret
        };
        let previous = flags
            .webhook_secret_previous
            .or(file.webhook_secret_previous);
        let (signing_keys, webhook_secrets) =
            parse_secrets(secrets.into_iter().chain(previous).collect(), scheme)?;
        let retry = RetryPolicy {
            initial: duration(
                "retry-initial",
                flags.retry_initial.or(file.retry_initial),
                "1s",
            )?,
            max_delay: duration(
                "retry-max-delay",
                flags.retry_max_delay.or(file.retry_max_delay),
                "10m",
            )?,
            max_attempts: flags
                .retry_max_attempts
                .or(file.retry_max_attempts)
                .unwrap_or(20),
        };
        if retry.max_attempts == 0 {
            bail!("--retry-max-attempts must be at least 1");
        }
        let max_in_flight = flags.max_in_flight.or(file.max_in_flight).unwrap_or(100);
        if !(1..=10_000).contains(&max_in_flight) {
            bail!("--max-in-flight must be between 1 and 10000, got {max_in_flight}");
        }
        let ack_timeout = duration("ack-timeout", flags.ack_timeout.or(file.ack_timeout), "30s")?;
        if ack_timeout < Duration::from_millis(100) {
            bail!("--ack-timeout must be at least 100ms");
        }
        Ok(Config {
            listen: flags
                .listen
                .or(file.listen)
                .unwrap_or_else(|| "127.0.0.1:8080".into()),
            public_url: flags
                .public_url
                .or(file.public_url)
                .map(|u| u.trim_end_matches('/').to_owned()),
            database,
            redis_url,
            rescan,
            data_dir,
            scheme,
            signing_keys,
            webhook_secrets,
            admin_token: flags
                .admin_token
                .or(file.admin_token)
                .filter(|t| !t.expose().is_empty()),
            encryption_key,
            max_body: size("max-body", flags.max_body.or(file.max_body), "1MiB")?,
            agent_rate_limit: rate(
                "agent-rate-limit",
                flags
                    .agent_rate_limit
                    .or(file.agent_rate_limit)
                    .or(Some("1000/s".into())),
            )?,
            global_rate_limit: rate(
                "global-rate-limit",
                flags.global_rate_limit.or(file.global_rate_limit),
            )?,
            log_format: flags.log_format.or(file.log_format),
            max_in_flight,
            ack_timeout,
            retry,
            retention: duration("retention", flags.retention.or(file.retention), "7d")?,
            failed_retention: duration(
                "failed-retention",
                flags.failed_retention.or(file.failed_retention),
                "30d",
            )?,
            tls,
            trusted_proxies,
            auth_failure_limit,
            max_sessions_per_agent,
            agent_max_pending,
            max_connections,
            header_timeout,
            request_timeout,
            callback_policy,
            callback_ca_cert,
        })
    }

    /// Start-up warnings about the default workspace's secrets: whitespace at
    /// either end is kept (secrets are verbatim) but is usually a copy slip.
    pub fn secret_warnings(&self) -> Vec<String> {
        let total = self.webhook_secrets.len();
        self.webhook_secrets
            .iter()
            .enumerate()
            .filter(|(_, s)| s.expose().trim() != s.expose())
            .map(|(n, _)| {
                format!(
                    "webhook secret {} of {total} has leading or trailing whitespace; it is used as given",
                    n + 1
                )
            })
            .collect()
    }

    /// The public URL, given the address the listener actually bound:
    /// `https://` when the relay serves TLS itself.
    pub fn public_url_for(&self, bound: SocketAddr) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        self.public_url
            .clone()
            .unwrap_or_else(|| format!("{scheme}://{bound}"))
    }
}

fn read_file(path: &Path) -> anyhow::Result<FileConfig> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read config file {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("config file {} is not valid", path.display()))
}

fn default_data_dir() -> anyhow::Result<PathBuf> {
    directories::ProjectDirs::from("com", "PowerLobster", "lobster-relay")
        .map(|dirs| dirs.data_dir().to_path_buf())
        .context("no home directory to keep data in: pass --data-dir DIR")
}

fn parse_database_url(url: &str) -> anyhow::Result<Database> {
    let url = url.trim();
    if let Some(path) = url.strip_prefix("sqlite://") {
        if path.is_empty() {
            bail!(
                "--database sqlite:// needs a path, e.g. sqlite:///var/lib/lobster-relay/relay.db"
            );
        }
        return Ok(Database::Sqlite(PathBuf::from(path)));
    }
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Ok(Database::Postgres(url.to_owned()));
    }
    bail!("--database must be sqlite://PATH or postgres://USER@HOST/DB")
}

/// A TOML value that may be one item or a list of them.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum OneOrMany<T> {
    One(T),
    Many(Vec<T>),
}

impl<T> OneOrMany<T> {
    fn into_vec(self) -> Vec<T> {
        match self {
            OneOrMany::One(one) => vec![one],
            OneOrMany::Many(many) => many,
        }
    }
}

/// The keys, and the secrets they were read from (for fingerprints). Each
/// secret is taken verbatim: GitHub's own example secret has spaces in it.
/// Empty ones (an unset variable expanded into a flag) are ignored.
fn parse_secrets(
    secrets: Vec<Secret>,
    scheme: Scheme,
) -> anyhow::Result<(Vec<SigningKey>, Vec<Secret>)> {
    let secrets: Vec<Secret> = secrets
        .into_iter()
        .filter(|s| !s.expose().is_empty())
        .collect();
    let keys = secrets
        .iter()
        .enumerate()
        .map(|(n, s)| {
            SigningKey::parse_for(scheme, s.expose()).with_context(|| {
                format!("webhook secret {} of {} is not valid", n + 1, secrets.len())
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    if keys.is_empty() && scheme != Scheme::None {
        bail!(
            "no webhook secret: pass --webhook-secret (or WEBHOOK_SECRET), or --signature-scheme none for local development only"
        );
    }
    Ok((keys, secrets))
}

/// The longest duration any flag takes. Durations become milliseconds in
/// signed 64-bit arithmetic (due times, retention cut-offs); a bound far
/// below that keeps every sum and cast exact, so `--retention 600000000y`
/// is a usage error instead of a negative cut-off that would purge
/// everything.
const MAX_DURATION: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// The largest size any flag takes (`--max-body`): 1 GiB.
const MAX_SIZE: u64 = 1 << 30;

fn duration(name: &str, value: Option<String>, default: &str) -> anyhow::Result<Duration> {
    let text = value.unwrap_or_else(|| default.to_owned());
    let parsed = humantime::parse_duration(text.trim()).with_context(|| {
        format!("--{name} {text:?} is not a duration: use e.g. 500ms, 30s, 10m, 7d")
    })?;
    if parsed > MAX_DURATION {
        bail!("--{name} {text:?} is too long: at most 100 years (36500d)");
    }
    Ok(parsed)
}

fn positive(name: &str, value: Option<String>, default: &str) -> anyhow::Result<Duration> {
    let every = duration(name, value, default)?;
    if every.is_zero() {
        bail!("--{name} must be longer than 0, e.g. {default}");
    }
    Ok(every)
}

/// `10.0.0.0/8, 192.168.1.7, ::1`: networks, or single addresses.
pub fn parse_cidrs(text: &str) -> anyhow::Result<Vec<IpNet>> {
    parse_cidrs_for("trusted-proxies", text)
}

/// [`parse_cidrs`] for the flag `--{name}`, named in the error.
fn parse_cidrs_for(name: &str, text: &str) -> anyhow::Result<Vec<IpNet>> {
    text.split(',')
        .map(str::trim)
        .filter(|part| !part.is_empty())
        .map(|part| {
            part.parse::<IpNet>()
                .or_else(|_| part.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| {
                    anyhow::anyhow!(
                        "--{name}: {part:?} is not an IP address or CIDR network: use e.g. 10.0.0.0/8,192.168.1.7,::1"
                    )
                })
        })
        .collect()
}

fn size(name: &str, value: Option<String>, default: &str) -> anyhow::Result<usize> {
    let text = value.unwrap_or_else(|| default.to_owned());
    let bytes: bytesize::ByteSize = text.trim().parse().map_err(|e| {
        anyhow::anyhow!("--{name} {text:?} is not a size ({e}): use e.g. 512KiB, 1MiB")
    })?;
    if bytes.as_u64() > MAX_SIZE {
        bail!("--{name} {text:?} is too large: at most 1GiB");
    }
    let bytes = usize::try_from(bytes.as_u64()).context("size too large")?;
    if bytes == 0 {
        bail!("--{name} must be larger than 0");
    }
    Ok(bytes)
}

fn rate(name: &str, value: Option<String>) -> anyhow::Result<Option<Rate>> {
    let Some(text) = value else { return Ok(None) };
    let bad = || {
        anyhow::anyhow!(
            "--{name} {text:?} is not a rate: use COUNT/UNIT, e.g. 1000/s, 600/m, 10000/h"
        )
    };
    let (count, unit) = text.trim().split_once('/').ok_or_else(bad)?;
    let count: u32 = count.trim().parse().map_err(|_| bad())?;
    let per = match unit.trim() {
        "s" | "sec" | "second" => Duration::from_secs(1),
        "m" | "min" | "minute" => Duration::from_secs(60),
        "h" | "hour" => Duration::from_secs(3600),
        _ => return Err(bad()),
    };
    if count == 0 {
        bail!("--{name} must allow at least 1 event");
    }
    Ok(Some(Rate { count, per }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args() -> ServerArgs {
        ServerArgs {
            data_dir: Some("/tmp/x".into()),
            webhook_secret: vec![Secret::new("whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD")],
            ..Default::default()
        }
    }

    #[test]
    fn defaults_follow_the_contract() {
        let c = Config::from_layers(args(), FileConfig::default()).unwrap();
        assert_eq!(c.listen, "127.0.0.1:8080");
        assert_eq!(
            c.database,
            Database::Sqlite(PathBuf::from("/tmp/x/relay.db"))
        );
        assert_eq!(c.rescan, None);
        assert_eq!(c.max_body, 1024 * 1024);
        assert_eq!(c.max_in_flight, 100);
        assert_eq!(c.ack_timeout, Duration::from_secs(30));
        assert_eq!(c.retry.initial, Duration::from_secs(1));
        assert_eq!(c.retry.max_delay, Duration::from_secs(600));
        assert_eq!(c.retry.max_attempts, 20);
        assert_eq!(c.retention, Duration::from_secs(7 * 86400));
        assert_eq!(c.failed_retention, Duration::from_secs(30 * 86400));
        assert_eq!(
            c.agent_rate_limit,
            Some(Rate {
                count: 1000,
                per: Duration::from_secs(1)
            })
        );
        assert_eq!(c.global_rate_limit, None);
    }

    #[test]
    fn flags_beat_the_file() {
        let file: FileConfig =
            toml::from_str("listen = \"0.0.0.0:9\"\nmax-in-flight = 5\nack_timeout = \"5s\"")
                .unwrap();
        let mut a = args();
        a.listen = Some("127.0.0.1:1".into());
        let c = Config::from_layers(a, file).unwrap();
        assert_eq!(c.listen, "127.0.0.1:1");
        assert_eq!(c.max_in_flight, 5);
        assert_eq!(c.ack_timeout, Duration::from_secs(5));
    }

    #[test]
    fn bad_values_say_what_to_do() {
        type Case = (fn(&mut ServerArgs), &'static str);
        let cases: Vec<Case> = vec![
            (|a| a.webhook_secret.clear(), "--signature-scheme none"),
            (|a| a.max_body = Some("lots".into()), "512KiB"),
            (|a| a.ack_timeout = Some("soon".into()), "30s"),
            (|a| a.agent_rate_limit = Some("fast".into()), "1000/s"),
            (|a| a.database = Some("mysql://x".into()), "postgres://"),
            (|a| a.max_in_flight = Some(0), "between 1 and 10000"),
            (
                |a| a.retention = Some("600000000y".into()),
                "at most 100 years",
            ),
            (
                |a| a.failed_retention = Some("a month".into()),
                "--failed-retention",
            ),
            (
                |a| a.ack_timeout = Some("9999999999999s".into()),
                "at most 100 years",
            ),
            (
                |a| a.retry_max_delay = Some("200y".into()),
                "at most 100 years",
            ),
            (|a| a.max_body = Some("5TiB".into()), "at most 1GiB"),
        ];
        for (mutate, hint) in cases {
            let mut a = args();
            mutate(&mut a);
            let err = format!(
                "{:#}",
                Config::from_layers(a, FileConfig::default()).unwrap_err()
            );
            assert!(err.contains(hint), "{err:?} should mention {hint:?}");
        }
    }

    #[test]
    fn postgres_rescans_faster_without_redis() {
        let mut a = args();
        a.database = Some("postgres://u@h/db".into());
        let c = Config::from_layers(a.clone(), FileConfig::default()).unwrap();
        assert_eq!(c.database, Database::Postgres("postgres://u@h/db".into()));
        assert_eq!(c.rescan, Some(Duration::from_secs(1)));
        a.redis = Some("redis://h".into());
        let c = Config::from_layers(a, FileConfig::default()).unwrap();
        assert_eq!(c.rescan, Some(Duration::from_secs(5)));
    }

    #[test]
    fn redis_without_postgres_is_refused() {
        let mut a = args();
        a.redis = Some("redis://h".into());
        let err = Config::from_layers(a, FileConfig::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("postgres"), "{err}");
    }

    #[test]
    fn trusted_proxies_take_networks_and_addresses() {
        let nets = parse_cidrs(" 10.0.0.0/8, 192.168.1.7,::1 ,").unwrap();
        assert_eq!(nets.len(), 3);
        assert!(nets[0].contains(&"10.1.2.3".parse::<IpAddr>().unwrap()));
        assert!(nets[1].contains(&"192.168.1.7".parse::<IpAddr>().unwrap()));
        assert!(!nets[1].contains(&"192.168.1.8".parse::<IpAddr>().unwrap()));
        assert!(nets[2].contains(&"::1".parse::<IpAddr>().unwrap()));
        assert!(parse_cidrs("").unwrap().is_empty());
        for bad in ["10.0.0.0/33", "proxy.local", "10.0.0"] {
            let err = parse_cidrs(bad).unwrap_err().to_string();
            assert!(err.contains("10.0.0.0/8"), "{bad}: {err}");
        }
    }

    #[test]
    fn tls_needs_both_files_and_makes_the_public_url_https() {
        let mut a = args();
        a.tls_cert = Some("/c.pem".into());
        let err = Config::from_layers(a.clone(), FileConfig::default()).unwrap_err();
        assert!(err.to_string().contains("go together"), "{err}");
        a.tls_key = Some("/k.pem".into());
        let c = Config::from_layers(a, FileConfig::default()).unwrap();
        assert_eq!(c.tls.as_ref().unwrap().reload_every, Duration::from_secs(5));
        let bound: SocketAddr = "127.0.0.1:8443".parse().unwrap();
        assert_eq!(c.public_url_for(bound), "https://127.0.0.1:8443");
    }

    #[test]
    fn abuse_limits_have_defaults_and_parse_durations() {
        let c = Config::from_layers(args(), FileConfig::default()).unwrap();
        assert_eq!(c.max_sessions_per_agent, 10);
        assert_eq!(c.header_timeout, Duration::from_secs(10));
        assert_eq!(c.request_timeout, Duration::from_secs(30));
        assert_eq!(c.auth_failure_limit.count, 10);
        let file: FileConfig =
            toml::from_str("header-timeout = \"1500ms\"\nauth_failure_limit = \"3/s\"").unwrap();
        let c = Config::from_layers(args(), file).unwrap();
        assert_eq!(c.header_timeout, Duration::from_millis(1500));
        assert_eq!(c.auth_failure_limit.per, Duration::from_secs(1));
        let mut a = args();
        a.header_timeout = Some("0s".into());
        assert!(Config::from_layers(a, FileConfig::default()).is_err());
        let mut a = args();
        a.max_sessions_per_agent = Some(0);
        assert!(Config::from_layers(a, FileConfig::default()).is_err());
    }

    #[test]
    fn unknown_file_keys_are_rejected() {
        assert!(toml::from_str::<FileConfig>("listn = \"x\"").is_err());
    }

    #[test]
    fn encryption_keys_are_64_hex_characters() {
        let mut a = args();
        a.encryption_key = Some(Secret::new("ab".repeat(32)));
        let c = Config::from_layers(a, FileConfig::default()).unwrap();
        assert!(c.encryption_key.is_some());
        assert!(!format!("{c:?}").contains("abab"), "the key never prints");
        for bad in ["abcd", &"zz".repeat(32)] {
            let mut a = args();
            a.encryption_key = Some(Secret::new(bad));
            let err = format!(
                "{:#}",
                Config::from_layers(a, FileConfig::default()).unwrap_err()
            );
            assert!(err.contains("--encryption-key"), "{err}");
            assert!(err.contains("64 hex characters"), "{err}");
            assert!(!err.contains(bad), "the value is not echoed: {err}");
        }
    }

    #[test]
    fn no_secret_is_fine_only_with_scheme_none() {
        let mut a = args();
        a.webhook_secret.clear();
        a.signature_scheme = Some(Scheme::None);
        assert!(
            Config::from_layers(a, FileConfig::default())
                .unwrap()
                .signing_keys
                .is_empty()
        );
    }

    #[test]
    fn a_secret_with_spaces_is_one_secret_taken_verbatim() {
        let mut a = args();
        a.signature_scheme = Some(Scheme::Github);
        a.webhook_secret = vec![Secret::new("It's a Secret to Everybody")];
        let c = Config::from_layers(a, FileConfig::default()).unwrap();
        assert_eq!(c.webhook_secrets.len(), 1);
        assert_eq!(c.webhook_secrets[0].expose(), "It's a Secret to Everybody");
        assert_eq!(c.signing_keys.len(), 1);
    }

    #[test]
    fn rotation_is_the_flag_repeated_or_the_previous_secret() {
        let mut a = args();
        a.signature_scheme = Some(Scheme::Github);
        a.webhook_secret = vec![Secret::new("new one"), Secret::new("newer")];
        a.webhook_secret_previous = Some(Secret::new(" old one "));
        let c = Config::from_layers(a, FileConfig::default()).unwrap();
        let secrets: Vec<&str> = c.webhook_secrets.iter().map(Secret::expose).collect();
        assert_eq!(secrets, ["new one", "newer", " old one "]);
        assert_eq!(
            c.secret_warnings(),
            ["webhook secret 3 of 3 has leading or trailing whitespace; it is used as given"]
        );
    }

    #[test]
    fn the_file_takes_one_secret_or_a_list() {
        let mut a = args();
        a.webhook_secret.clear();
        a.signature_scheme = Some(Scheme::Github);
        let file: FileConfig =
            toml::from_str("webhook-secret = [\"a b\", \"c\"]\nwebhook-secret-previous = \"d e\"")
                .unwrap();
        let c = Config::from_layers(a, file).unwrap();
        let secrets: Vec<&str> = c.webhook_secrets.iter().map(Secret::expose).collect();
        assert_eq!(secrets, ["a b", "c", "d e"]);
    }
}
