//! The settings validated one concern at a time: storage, signatures,
//! delivery, limits, TLS and callbacks. Each takes its settings out of the
//! merged [`Settings`] and fills in its defaults.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use lobster_shared::Secret;
use lobster_shared::signature::{Scheme, SigningKey};

use super::parse::{
    default_data_dir, duration, parse_cidrs_for, parse_database_url, parse_secrets, positive, rate,
    size,
};
use super::{Database, Rate, Settings, TlsFiles};
use crate::crypto::EncryptionKey;
use crate::retry::RetryPolicy;

/// Where events are stored, and how instances sharing it hear of them.
pub(super) struct Storage {
    pub(super) data_dir: PathBuf,
    pub(super) database: Database,
    pub(super) redis_url: Option<String>,
    pub(super) rescan: Option<Duration>,
}

pub(super) fn storage(s: &mut Settings) -> anyhow::Result<Storage> {
    let data_dir = match s.data_dir.take() {
        Some(dir) => dir,
        None => default_data_dir()?,
    };
    let database = match s.database.take() {
        None => Database::Sqlite(data_dir.join("relay.db")),
        Some(url) => parse_database_url(&url)?,
    };
    let redis_url = s.redis.take().filter(|u| !u.trim().is_empty());
    if redis_url.is_some() && matches!(database, Database::Sqlite(_)) {
        bail!(
            "--redis carries wake-ups between relay instances sharing PostgreSQL; with SQLite there is one instance: remove --redis / REDIS_URL, or use --database postgres://..."
        );
    }
    let rescan = match &database {
        Database::Sqlite(_) => None,
        Database::Postgres(_) => {
            let default = if redis_url.is_some() { "5s" } else { "1s" };
            let every = duration("rescan-interval", s.rescan_interval.take(), default)?;
            Some(every).filter(|d| !d.is_zero())
        }
    };
    Ok(Storage {
        data_dir,
        database,
        redis_url,
        rescan,
    })
}

/// The default workspace's scheme, its signing keys and the secrets they
/// came from.
pub(super) fn signatures(
    s: &mut Settings,
) -> anyhow::Result<(Scheme, Vec<SigningKey>, Vec<Secret>)> {
    let scheme = s.signature_scheme.take().unwrap_or_default();
    let secrets = s.webhook_secret.take().unwrap_or_default();
    let previous = s.webhook_secret_previous.take();
    let (keys, secrets) = parse_secrets(secrets.into_iter().chain(previous).collect(), scheme)?;
    Ok((scheme, keys, secrets))
}

pub(super) fn encryption_key(hex: Option<Secret>) -> anyhow::Result<Option<EncryptionKey>> {
    match hex {
        None => Ok(None),
        Some(hex) if hex.expose().trim().is_empty() => Ok(None),
        Some(hex) => Ok(Some(EncryptionKey::from_hex(hex.expose()).map_err(|err| {
            anyhow::anyhow!(
                "{err}: generate one with `openssl rand -hex 32` and pass it as --encryption-key or RELAY_ENCRYPTION_KEY"
            )
        })?)),
    }
}

pub(super) fn tls(
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
    reload_interval: Option<String>,
) -> anyhow::Result<Option<TlsFiles>> {
    match (cert, key) {
        (None, None) => Ok(None),
        (Some(cert), Some(key)) => Ok(Some(TlsFiles {
            cert,
            key,
            reload_every: positive("tls-reload-interval", reload_interval, "5s")?,
        })),
        _ => bail!(
            "--tls-cert and --tls-key go together: pass both (PEM files), or neither for plain HTTP behind a proxy"
        ),
    }
}

/// How events are handed out and retried, and how long they are kept.
pub(super) struct Delivery {
    pub(super) max_in_flight: u32,
    pub(super) ack_timeout: Duration,
    pub(super) retry: RetryPolicy,
    pub(super) retention: Duration,
    pub(super) failed_retention: Duration,
}

pub(super) fn delivery(s: &mut Settings) -> anyhow::Result<Delivery> {
    let retry = RetryPolicy {
        initial: duration("retry-initial", s.retry_initial.take(), "1s")?,
        max_delay: duration("retry-max-delay", s.retry_max_delay.take(), "10m")?,
        max_attempts: s.retry_max_attempts.take().unwrap_or(20),
    };
    if retry.max_attempts == 0 {
        bail!("--retry-max-attempts must be at least 1");
    }
    let max_in_flight = s.max_in_flight.take().unwrap_or(100);
    if !(1..=10_000).contains(&max_in_flight) {
        bail!("--max-in-flight must be between 1 and 10000, got {max_in_flight}");
    }
    let ack_timeout = duration("ack-timeout", s.ack_timeout.take(), "30s")?;
    if ack_timeout < Duration::from_millis(100) {
        bail!("--ack-timeout must be at least 100ms");
    }
    Ok(Delivery {
        max_in_flight,
        ack_timeout,
        retry,
        retention: duration("retention", s.retention.take(), "7d")?,
        failed_retention: duration("failed-retention", s.failed_retention.take(), "30d")?,
    })
}

/// What one sender, agent or connection may take of the relay.
pub(super) struct Limits {
    pub(super) max_body: usize,
    pub(super) agent_rate_limit: Option<Rate>,
    pub(super) global_rate_limit: Option<Rate>,
    pub(super) auth_failure_limit: Rate,
    pub(super) max_sessions_per_agent: u32,
    pub(super) agent_max_pending: u64,
    pub(super) max_connections: Option<usize>,
    pub(super) header_timeout: Duration,
    pub(super) request_timeout: Duration,
}

pub(super) fn limits(s: &mut Settings) -> anyhow::Result<Limits> {
    let auth_failure_limit = rate(
        "auth-failure-limit",
        Some(s.auth_failure_limit.take().unwrap_or_else(|| "10/m".into())),
    )?
    .expect("a value was given");
    let max_sessions_per_agent = s.max_sessions_per_agent.take().unwrap_or(10);
    if !(1..=10_000).contains(&max_sessions_per_agent) {
        bail!("--max-sessions-per-agent must be between 1 and 10000, got {max_sessions_per_agent}");
    }
    let max_connections = s.max_connections.take();
    if max_connections.is_some_and(|n| !(1..=1_000_000).contains(&n)) {
        bail!("--max-connections must be between 1 and 1000000");
    }
    let agent_max_pending = s.agent_max_pending.take().unwrap_or(100_000);
    if !(1..=1_000_000_000).contains(&agent_max_pending) {
        bail!("--agent-max-pending must be between 1 and 1000000000, got {agent_max_pending}");
    }
    Ok(Limits {
        max_body: size("max-body", s.max_body.take(), "1MiB")?,
        agent_rate_limit: rate(
            "agent-rate-limit",
            s.agent_rate_limit.take().or(Some("1000/s".into())),
        )?,
        global_rate_limit: rate("global-rate-limit", s.global_rate_limit.take())?,
        auth_failure_limit,
        max_sessions_per_agent,
        agent_max_pending,
        max_connections,
        header_timeout: positive("header-timeout", s.header_timeout.take(), "10s")?,
        request_timeout: positive("request-timeout", s.request_timeout.take(), "30s")?,
    })
}

/// Push delivery: which callback URLs may be set, and the CAs they are
/// checked with.
pub(super) fn callbacks(
    s: &mut Settings,
) -> anyhow::Result<(crate::callback::Policy, Option<Vec<u8>>)> {
    let policy = crate::callback::Policy {
        allow_http: s.allow_http_callbacks.take().unwrap_or(false),
        allow: parse_cidrs_for(
            "callback-allow-cidr",
            s.callback_allow_cidr.take().as_deref().unwrap_or(""),
        )?,
    };
    let ca_cert = match s.callback_ca_cert.take() {
        None => None,
        Some(path) => Some(std::fs::read(&path).with_context(|| {
            format!(
                "cannot read --callback-ca-cert {}: pass a PEM file of CA certificates",
                path.display()
            )
        })?),
    };
    Ok((policy, ca_cert))
}
