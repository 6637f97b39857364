//! Parsing and checking single values: durations, sizes, rates, networks,
//! the database URL, the default workspace's secrets.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use ipnet::IpNet;
use lobster_shared::Secret;
use lobster_shared::signature::{Scheme, SigningKey};

use super::{Database, Rate};

pub(super) fn default_data_dir() -> anyhow::Result<PathBuf> {
    directories::ProjectDirs::from("com", "PowerLobster", "lobster-relay")
        .map(|dirs| dirs.data_dir().to_path_buf())
        .context("no home directory to keep data in: pass --data-dir DIR")
}

pub(super) fn parse_database_url(url: &str) -> anyhow::Result<Database> {
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

/// The keys, and the secrets they were read from (for fingerprints). Each
/// secret is taken verbatim: GitHub's own example secret has spaces in it.
/// Empty ones (an unset variable expanded into a flag) are ignored.
pub(super) fn parse_secrets(
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

pub(super) fn duration(
    name: &str,
    value: Option<String>,
    default: &str,
) -> anyhow::Result<Duration> {
    let text = value.unwrap_or_else(|| default.to_owned());
    let parsed = humantime::parse_duration(text.trim()).with_context(|| {
        format!("--{name} {text:?} is not a duration: use e.g. 500ms, 30s, 10m, 7d")
    })?;
    if parsed > MAX_DURATION {
        bail!("--{name} {text:?} is too long: at most 100 years (36500d)");
    }
    Ok(parsed)
}

pub(super) fn positive(
    name: &str,
    value: Option<String>,
    default: &str,
) -> anyhow::Result<Duration> {
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
pub(super) fn parse_cidrs_for(name: &str, text: &str) -> anyhow::Result<Vec<IpNet>> {
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

pub(super) fn size(name: &str, value: Option<String>, default: &str) -> anyhow::Result<usize> {
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

pub(super) fn rate(name: &str, value: Option<String>) -> anyhow::Result<Option<Rate>> {
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
