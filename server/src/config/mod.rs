//! Server configuration: flags, environment, an optional TOML file, defaults.
//!
//! Flags beat env (clap does both), env beats the file, the file beats the
//! defaults. Everything is validated once into a plain [`Config`]; nothing
//! downstream reads the environment.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use ipnet::IpNet;
use lobster_shared::Secret;
use lobster_shared::signature::{Scheme, SigningKey};

mod parse;
mod settings;
mod validate;

pub use parse::parse_cidrs;
pub use settings::{LogFormat, Settings};
use validate::{
    Delivery, Limits, Storage, callbacks, delivery, encryption_key, limits, signatures, storage,
    tls,
};

use crate::crypto::EncryptionKey;
use crate::retry::RetryPolicy;

/// A flag, variable or config-file value the server cannot start with. The
/// CLI exits with its usage code (2) for it; other start-up failures are
/// runtime failures (1).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

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
    pub fn load(args: Settings) -> anyhow::Result<Config> {
        let file = match &args.config {
            Some(path) => Settings::read_file(path)?,
            None => Settings::default(),
        };
        Self::from_settings(args.or(file))
    }

    /// Validates the merged settings, filling in the defaults, one concern
    /// at a time (each takes its settings out of `s`).
    fn from_settings(mut s: Settings) -> anyhow::Result<Config> {
        let Storage {
            data_dir,
            database,
            redis_url,
            rescan,
        } = storage(&mut s)?;
        let (scheme, signing_keys, webhook_secrets) = signatures(&mut s)?;
        let Delivery {
            max_in_flight,
            ack_timeout,
            retry,
            retention,
            failed_retention,
        } = delivery(&mut s)?;
        let Limits {
            max_body,
            agent_rate_limit,
            global_rate_limit,
            auth_failure_limit,
            max_sessions_per_agent,
            agent_max_pending,
            max_connections,
            header_timeout,
            request_timeout,
        } = limits(&mut s)?;
        let (callback_policy, callback_ca_cert) = callbacks(&mut s)?;
        Ok(Config {
            listen: s.listen.unwrap_or_else(|| "127.0.0.1:8080".into()),
            public_url: s.public_url.map(|u| u.trim_end_matches('/').to_owned()),
            database,
            redis_url,
            rescan,
            data_dir,
            scheme,
            signing_keys,
            webhook_secrets,
            admin_token: s.admin_token.filter(|t| !t.expose().is_empty()),
            encryption_key: encryption_key(s.encryption_key)?,
            max_body,
            agent_rate_limit,
            global_rate_limit,
            log_format: s.log_format,
            max_in_flight,
            ack_timeout,
            retry,
            retention,
            failed_retention,
            tls: tls(s.tls_cert, s.tls_key, s.tls_reload_interval)?,
            trusted_proxies: parse_cidrs(s.trusted_proxies.as_deref().unwrap_or(""))?,
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::IpAddr;

    fn args() -> Settings {
        Settings {
            data_dir: Some("/tmp/x".into()),
            webhook_secret: Some(vec![Secret::new("whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD")]),
            ..Default::default()
        }
    }

    #[test]
    fn defaults_follow_the_contract() {
        let c = Config::from_settings(args()).unwrap();
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
        let file =
            Settings::from_toml("listen = \"0.0.0.0:9\"\nmax-in-flight = 5\nack_timeout = \"5s\"")
                .unwrap();
        let mut a = args();
        a.listen = Some("127.0.0.1:1".into());
        let c = Config::from_settings(a.or(file)).unwrap();
        assert_eq!(c.listen, "127.0.0.1:1");
        assert_eq!(c.max_in_flight, 5);
        assert_eq!(c.ack_timeout, Duration::from_secs(5));
    }

    #[test]
    fn bad_values_say_what_to_do() {
        type Case = (fn(&mut Settings), &'static str);
        let cases: Vec<Case> = vec![
            (|a| a.webhook_secret = None, "--signature-scheme none"),
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
            let err = format!("{:#}", Config::from_settings(a).unwrap_err());
            assert!(err.contains(hint), "{err:?} should mention {hint:?}");
        }
    }

    #[test]
    fn postgres_rescans_faster_without_redis() {
        let mut a = args();
        a.database = Some("postgres://u@h/db".into());
        let c = Config::from_settings(a.clone()).unwrap();
        assert_eq!(c.database, Database::Postgres("postgres://u@h/db".into()));
        assert_eq!(c.rescan, Some(Duration::from_secs(1)));
        a.redis = Some("redis://h".into());
        let c = Config::from_settings(a).unwrap();
        assert_eq!(c.rescan, Some(Duration::from_secs(5)));
    }

    #[test]
    fn redis_without_postgres_is_refused() {
        let mut a = args();
        a.redis = Some("redis://h".into());
        let err = Config::from_settings(a).unwrap_err().to_string();
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
        let err = Config::from_settings(a.clone()).unwrap_err();
        assert!(err.to_string().contains("go together"), "{err}");
        a.tls_key = Some("/k.pem".into());
        let c = Config::from_settings(a).unwrap();
        assert_eq!(c.tls.as_ref().unwrap().reload_every, Duration::from_secs(5));
        let bound: SocketAddr = "127.0.0.1:8443".parse().unwrap();
        assert_eq!(c.public_url_for(bound), "https://127.0.0.1:8443");
    }

    #[test]
    fn abuse_limits_have_defaults_and_parse_durations() {
        let c = Config::from_settings(args()).unwrap();
        assert_eq!(c.max_sessions_per_agent, 10);
        assert_eq!(c.header_timeout, Duration::from_secs(10));
        assert_eq!(c.request_timeout, Duration::from_secs(30));
        assert_eq!(c.auth_failure_limit.count, 10);
        let file = Settings::from_toml("header-timeout = \"1500ms\"\nauth_failure_limit = \"3/s\"")
            .unwrap();
        let c = Config::from_settings(args().or(file)).unwrap();
        assert_eq!(c.header_timeout, Duration::from_millis(1500));
        assert_eq!(c.auth_failure_limit.per, Duration::from_secs(1));
        let mut a = args();
        a.header_timeout = Some("0s".into());
        assert!(Config::from_settings(a).is_err());
        let mut a = args();
        a.max_sessions_per_agent = Some(0);
        assert!(Config::from_settings(a).is_err());
    }

    #[test]
    fn unknown_file_keys_are_rejected_by_name() {
        let err = Settings::from_toml("listn = \"x\"").unwrap_err();
        assert!(
            format!("{err:#}").contains("unknown field `listn`"),
            "{err:#}"
        );
        // `--config` is a flag only: a file cannot name another file.
        let err = Settings::from_toml("config = \"other.toml\"").unwrap_err();
        assert!(
            format!("{err:#}").contains("unknown field `config`"),
            "{err:#}"
        );
    }

    #[test]
    fn a_file_key_is_kebab_or_snake_case_but_not_both() {
        let both = Settings::from_toml("max_body = \"1KiB\"\nmax-body = \"2KiB\"").unwrap_err();
        assert!(
            format!("{both:#}").contains("`max-body` is given twice"),
            "{both:#}"
        );
        let snake = Settings::from_toml("max_in_flight = 7\nwebhook_secret = \"s\"").unwrap();
        assert_eq!(snake.max_in_flight, Some(7));
        assert_eq!(snake.webhook_secret.map(|s| s.len()), Some(1));
    }

    #[test]
    fn every_setting_the_flags_leave_out_comes_from_the_file() {
        let file = Settings::from_toml(
            "listen = \"0.0.0.0:9\"\nretention = \"1d\"\nwebhook-secret = \"from file\"",
        )
        .unwrap();
        let flags = Settings {
            retention: Some("2d".into()),
            ..Default::default()
        };
        let merged = flags.or(file);
        assert_eq!(merged.listen.as_deref(), Some("0.0.0.0:9"));
        assert_eq!(merged.retention.as_deref(), Some("2d"));
        let secrets = merged.webhook_secret.unwrap();
        assert_eq!(secrets[0].expose(), "from file");
    }

    #[test]
    fn encryption_keys_are_64_hex_characters() {
        let mut a = args();
        a.encryption_key = Some(Secret::new("ab".repeat(32)));
        let c = Config::from_settings(a).unwrap();
        assert!(c.encryption_key.is_some());
        assert!(!format!("{c:?}").contains("abab"), "the key never prints");
        for bad in ["abcd", &"zz".repeat(32)] {
            let mut a = args();
            a.encryption_key = Some(Secret::new(bad));
            let err = format!("{:#}", Config::from_settings(a).unwrap_err());
            assert!(err.contains("--encryption-key"), "{err}");
            assert!(err.contains("64 hex characters"), "{err}");
            assert!(!err.contains(bad), "the value is not echoed: {err}");
        }
    }

    #[test]
    fn no_secret_is_fine_only_with_scheme_none() {
        let mut a = args();
        a.webhook_secret = None;
        a.signature_scheme = Some(Scheme::None);
        assert!(Config::from_settings(a).unwrap().signing_keys.is_empty());
    }

    #[test]
    fn a_secret_with_spaces_is_one_secret_taken_verbatim() {
        let mut a = args();
        a.signature_scheme = Some(Scheme::Github);
        a.webhook_secret = Some(vec![Secret::new("It's a Secret to Everybody")]);
        let c = Config::from_settings(a).unwrap();
        assert_eq!(c.webhook_secrets.len(), 1);
        assert_eq!(c.webhook_secrets[0].expose(), "It's a Secret to Everybody");
        assert_eq!(c.signing_keys.len(), 1);
    }

    #[test]
    fn rotation_is_the_flag_repeated_or_the_previous_secret() {
        let mut a = args();
        a.signature_scheme = Some(Scheme::Github);
        a.webhook_secret = Some(vec![Secret::new("new one"), Secret::new("newer")]);
        a.webhook_secret_previous = Some(Secret::new(" old one "));
        let c = Config::from_settings(a).unwrap();
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
        a.webhook_secret = None;
        a.signature_scheme = Some(Scheme::Github);
        let file = Settings::from_toml(
            "webhook-secret = [\"a b\", \"c\"]\nwebhook-secret-previous = \"d e\"",
        )
        .unwrap();
        let c = Config::from_settings(a.or(file)).unwrap();
        let secrets: Vec<&str> = c.webhook_secrets.iter().map(Secret::expose).collect();
        assert_eq!(secrets, ["a b", "c", "d e"]);
    }
}
