//! The `--config` TOML file: the flags' names, kebab-case or snake_case.

use std::path::{Path, PathBuf};

use anyhow::Context;
use lobster_shared::Secret;
use lobster_shared::signature::Scheme;
use serde::Deserialize;

use super::LogFormat;

/// The `--config` file: the flags' names, kebab-case or snake_case.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub(super) struct FileConfig {
    pub(super) listen: Option<String>,
    #[serde(alias = "public_url")]
    pub(super) public_url: Option<String>,
    pub(super) database: Option<String>,
    pub(super) redis: Option<String>,
    #[serde(alias = "data_dir")]
    pub(super) data_dir: Option<PathBuf>,
    #[serde(alias = "webhook_secret")]
    pub(super) webhook_secret: Option<OneOrMany<Secret>>,
    #[serde(alias = "webhook_secret_previous")]
    pub(super) webhook_secret_previous: Option<Secret>,
    #[serde(alias = "signature_scheme")]
    pub(super) signature_scheme: Option<Scheme>,
    #[serde(alias = "admin_token")]
    pub(super) admin_token: Option<Secret>,
    #[serde(alias = "encryption_key")]
    pub(super) encryption_key: Option<Secret>,
    #[serde(alias = "tls_cert")]
    pub(super) tls_cert: Option<PathBuf>,
    #[serde(alias = "tls_key")]
    pub(super) tls_key: Option<PathBuf>,
    #[serde(alias = "max_body")]
    pub(super) max_body: Option<String>,
    #[serde(alias = "agent_rate_limit")]
    pub(super) agent_rate_limit: Option<String>,
    #[serde(alias = "global_rate_limit")]
    pub(super) global_rate_limit: Option<String>,
    #[serde(alias = "log_format")]
    pub(super) log_format: Option<LogFormat>,
    #[serde(alias = "max_in_flight")]
    pub(super) max_in_flight: Option<u32>,
    #[serde(alias = "ack_timeout")]
    pub(super) ack_timeout: Option<String>,
    #[serde(alias = "retry_initial")]
    pub(super) retry_initial: Option<String>,
    #[serde(alias = "retry_max_delay")]
    pub(super) retry_max_delay: Option<String>,
    #[serde(alias = "retry_max_attempts")]
    pub(super) retry_max_attempts: Option<u32>,
    pub(super) retention: Option<String>,
    #[serde(alias = "failed_retention")]
    pub(super) failed_retention: Option<String>,
    #[serde(alias = "rescan_interval")]
    pub(super) rescan_interval: Option<String>,
    #[serde(alias = "trusted_proxies")]
    pub(super) trusted_proxies: Option<String>,
    #[serde(alias = "auth_failure_limit")]
    pub(super) auth_failure_limit: Option<String>,
    #[serde(alias = "max_sessions_per_agent")]
    pub(super) max_sessions_per_agent: Option<u32>,
    #[serde(alias = "agent_max_pending")]
    pub(super) agent_max_pending: Option<u64>,
    #[serde(alias = "max_connections")]
    pub(super) max_connections: Option<usize>,
    #[serde(alias = "header_timeout")]
    pub(super) header_timeout: Option<String>,
    #[serde(alias = "request_timeout")]
    pub(super) request_timeout: Option<String>,
    #[serde(alias = "tls_reload_interval")]
    pub(super) tls_reload_interval: Option<String>,
    #[serde(alias = "allow_http_callbacks")]
    pub(super) allow_http_callbacks: Option<bool>,
    #[serde(alias = "callback_allow_cidr")]
    pub(super) callback_allow_cidr: Option<String>,
    #[serde(alias = "callback_ca_cert")]
    pub(super) callback_ca_cert: Option<PathBuf>,
}

/// A TOML value that may be one item or a list of them.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum OneOrMany<T> {
    One(T),
    Many(Vec<T>),
}

impl<T> OneOrMany<T> {
    pub(super) fn into_vec(self) -> Vec<T> {
        match self {
            OneOrMany::One(one) => vec![one],
            OneOrMany::Many(many) => many,
        }
    }
}

pub(super) fn read_file(path: &Path) -> anyhow::Result<FileConfig> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read config file {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("config file {} is not valid", path.display()))
}
