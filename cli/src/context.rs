//! What every agent command needs, resolved once: output settings, the
//! config dir and file, the relay, and where the API key comes from.
//!
//! The relay is `--relay`, else `LOBSTER_RELAY_URL`, else `relay` in
//! `config.toml`, else the hosted relay. The key is looked up only when a
//! command needs one ([`Context::api_key`]).

use clap::parser::ValueSource;
use lobster_shared::Secret;
use reqwest::Url;

use crate::api::ApiClient;
use crate::config::{Config, relay_text};
use crate::credentials::{self, KeySource, Lookup};
use crate::files::ConfigDir;
use crate::global::{DEFAULT_RELAY_URL, GlobalArgs, parse_relay_url};
use crate::ui::Ui;

/// Where `--relay` and `--api-key` got their values, as clap saw it.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sources {
    pub relay: Option<ValueSource>,
    pub api_key: Option<ValueSource>,
}

/// Everything an agent command shares.
#[derive(Debug, Clone)]
pub struct Context {
    pub global: GlobalArgs,
    pub ui: Ui,
    pub dir: ConfigDir,
    pub config: Config,
    /// The relay this command talks to.
    pub relay: Url,
    /// Whether `--api-key` came from the flag or the environment.
    key_source: KeySource,
}

impl Context {
    /// Resolves the config dir, reads `config.toml`, and picks the relay.
    pub fn new(global: GlobalArgs, sources: Sources) -> anyhow::Result<Self> {
        let ui = Ui::new(&global);
        let dir = ConfigDir::resolve(global.config_dir.as_deref())?;
        let config = Config::load(&dir.config_file())?;
        let relay = match (&global.relay, &config.relay) {
            (Some(given), _) => given.clone(),
            (None, Some(configured)) => configured.clone(),
            (None, None) => parse_relay_url(DEFAULT_RELAY_URL).map_err(anyhow::Error::msg)?,
        };
        let key_source = match sources.api_key {
            Some(ValueSource::EnvVariable) => KeySource::Env,
            _ => KeySource::Flag,
        };
        ui.detail(format!(
            "relay {} (from {}), config dir {}",
            relay_text(&relay),
            match (sources.relay, &config.relay) {
                (Some(ValueSource::EnvVariable), _) => "LOBSTER_RELAY_URL",
                (Some(_), _) => "--relay",
                (None, Some(_)) => "config.toml",
                (None, None) => "the default",
            },
            dir.path().display()
        ));
        Ok(Self {
            global,
            ui,
            dir,
            config,
            relay,
            key_source,
        })
    }

    /// The relay URL as keys and config store it (no trailing slash).
    pub fn account(&self) -> &str {
        relay_text(&self.relay)
    }

    /// `lobster-relay login`, with `--relay` when the relay is not the one
    /// a bare command would use.
    pub fn login_command(&self) -> String {
        let default = self
            .config
            .relay
            .clone()
            .or_else(|| parse_relay_url(DEFAULT_RELAY_URL).ok());
        if default.as_ref() == Some(&self.relay) {
            "lobster-relay login".to_owned()
        } else {
            format!("lobster-relay login --relay {}", self.account())
        }
    }

    /// The API key for the relay and where it came from: flag, env, OS
    /// keyring, then `credentials.toml`. Exit code 3 when there is none.
    pub async fn api_key(&self) -> anyhow::Result<(Secret, KeySource)> {
        let given = self
            .global
            .api_key
            .as_ref()
            .map(|key| (key, self.key_source.clone()));
        let request = Lookup {
            given,
            account: self.account(),
            use_keyring: self.global.keyring,
            file: self.dir.credentials_file(),
            login_command: self.login_command(),
        };
        credentials::lookup(request, &self.ui).await
    }

    /// An API client for the agent API, and where its key came from.
    pub async fn agent_client(&self) -> anyhow::Result<(ApiClient, KeySource)> {
        let (key, source) = self.api_key().await?;
        let client = ApiClient::new(self.relay.clone(), key)?;
        Ok((client, source))
    }
}
