//! Workspaces: [`Workspaces`] turns a workspace name into the scheme and
//! keys that verify its webhooks, and seals the secrets it stores.
//!
//! `default` comes from the configuration (`--signature-scheme`,
//! `--webhook-secret`) and is never stored. Every other workspace lives in
//! the database with its secrets sealed by [`crate::crypto`]. The admin
//! endpoints are in [`crate::api::workspaces`].
//!
//! Ingest must not decrypt on every request, so verifiers are cached in
//! memory. A rotation through this instance replaces its entry at once. On
//! a shared store (PostgreSQL, several instances) an entry older than
//! [`SHARED_RECHECK`] is checked against the workspace's `version` column
//! before use (one indexed read), so a rotation made on another instance
//! takes effect here within that time.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::bail;
use lobster_shared::Secret;
use lobster_shared::ids::WorkspaceName;
use lobster_shared::signature::{Scheme, SigningKey};
use sha2::{Digest, Sha256};

use crate::config::Config;
use crate::crypto::{self, EncryptionKey, OpenError};
use crate::store::workspaces::StoredWorkspace;
use crate::store::{Store, StoreError};

/// Why a workspace's verifier could not be had.
#[derive(Debug, thiserror::Error)]
pub enum WorkspaceError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A stored secret does not decrypt or parse (the operator's
    /// encryption key changed, or a newer build stored it).
    #[error("the secrets of workspace {0:?} cannot be read")]
    Unreadable(String),
}

/// The workspace every relay has, configured by flags.
pub const DEFAULT_WORKSPACE: &str = "default";
/// How stale a cached verifier may be on a shared store.
pub const SHARED_RECHECK: Duration = Duration::from_secs(2);
/// What verifies one workspace's webhooks.
pub struct Verifier {
    pub scheme: Scheme,
    pub keys: Vec<SigningKey>,
    /// `sha256:` and 8 hex digits per secret: tells secrets apart in
    /// listings without revealing them.
    pub fingerprints: Vec<String>,
}

struct Cached {
    verifier: Arc<Verifier>,
    version: i64,
    checked: Instant,
}

/// The workspaces of this relay and their cached verifiers. Shared by all
/// requests.
pub struct Workspaces {
    store: Store,
    key: Option<EncryptionKey>,
    /// The `default` workspace's verifier, from the configuration.
    pub default: Arc<Verifier>,
    /// `None`: this instance sees every change (SQLite), cache forever.
    recheck: Option<Duration>,
    cache: Mutex<HashMap<WorkspaceName, Cached>>,
}

impl Workspaces {
    /// Reads every stored workspace once, so that a missing or wrong
    /// encryption key stops the start instead of failing webhooks later.
    pub async fn open(store: Store, config: &Config) -> anyhow::Result<Workspaces> {
        let secrets: Vec<Secret> = config.webhook_secrets.clone();
        let workspaces = Workspaces {
            recheck: store.is_shared().then_some(SHARED_RECHECK),
            store,
            key: config.encryption_key.clone(),
            default: Arc::new(Verifier::new(
                config.scheme,
                config.signing_keys.clone(),
                &secrets,
            )),
            cache: Mutex::new(HashMap::new()),
        };
        let stored = workspaces.store.list_workspaces().await?;
        let mut plaintext = 0;
        for workspace in &stored {
            plaintext += workspace
                .secrets
                .iter()
                .filter(|s| !crypto::is_encrypted(s))
                .count();
            let verifier = match workspaces.build(workspace) {
                Ok(verifier) => verifier,
                Err(OpenError::KeyMissing) => bail!(
                    "the database holds encrypted workspace secrets (workspace {:?}) but no encryption key was given: start the relay with the --encryption-key / RELAY_ENCRYPTION_KEY they were stored with",
                    workspace.name
                ),
                Err(OpenError::WrongKey) => bail!(
                    "the encryption key does not match the one the secrets were stored with (workspace {:?} does not decrypt): pass the original --encryption-key / RELAY_ENCRYPTION_KEY",
                    workspace.name
                ),
                Err(OpenError::Malformed) => bail!(
                    "workspace {:?} has a stored secret this build cannot read: upgrade lobster-relay, or rotate the workspace's secrets",
                    workspace.name
                ),
            };
            workspaces.remember(workspace, verifier);
        }
        if plaintext > 0 && workspaces.key.is_some() {
            tracing::warn!(
                secrets = plaintext,
                "some workspace secrets were stored before an encryption key was set and are not encrypted: rotate them to encrypt them"
            );
        }
        Ok(workspaces)
    }

    /// The verifier of a workspace; `None` if there is no such workspace.
    pub async fn verifier(
        &self,
        name: &WorkspaceName,
    ) -> Result<Option<Arc<Verifier>>, WorkspaceError> {
        if name == DEFAULT_WORKSPACE {
            return Ok(Some(self.default.clone()));
        }
        let cached = self.cached(name);
        if let Some((verifier, version, fresh)) = &cached {
            if *fresh {
                return Ok(Some(verifier.clone()));
            }
            if self.store.workspace_version(name).await? == Some(*version) {
                self.touch(name);
                return Ok(Some(verifier.clone()));
            }
        }
        let Some(stored) = self.store.workspace(name).await? else {
            return Ok(None);
        };
        let verifier = self.build(&stored).map_err(|err| {
            tracing::error!(workspace = %name, error = %err, "cannot read a workspace's secrets");
            WorkspaceError::Unreadable(name.to_string())
        })?;
        Ok(Some(self.remember(&stored, verifier)))
    }

    /// Whether agents can be created in `name`.
    pub async fn exists(&self, name: &WorkspaceName) -> Result<bool, StoreError> {
        Ok(name == DEFAULT_WORKSPACE || self.store.workspace_version(name).await?.is_some())
    }

    fn build(&self, stored: &StoredWorkspace) -> Result<Verifier, OpenError> {
        let scheme: Scheme = stored
            .signature_scheme
            .parse()
            .map_err(|_| OpenError::Malformed)?;
        let secrets = open_all(self.key.as_ref(), &stored.name, &stored.secrets)?;
        let keys = secrets
            .iter()
            .map(|s| SigningKey::parse_for(scheme, s.expose()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| OpenError::Malformed)?;
        Ok(Verifier::new(scheme, keys, &secrets))
    }

    fn cached(&self, name: &WorkspaceName) -> Option<(Arc<Verifier>, i64, bool)> {
        let cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        cache.get(name).map(|c| {
            let fresh = self.recheck.is_none_or(|every| c.checked.elapsed() < every);
            (c.verifier.clone(), c.version, fresh)
        })
    }

    fn touch(&self, name: &WorkspaceName) {
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(entry) = cache.get_mut(name) {
            entry.checked = Instant::now();
        }
    }

    /// Caches a verifier, unless a newer version is cached already (a
    /// lookup that read the row just before a rotation must not undo it).
    pub fn remember(&self, stored: &StoredWorkspace, verifier: Verifier) -> Arc<Verifier> {
        let verifier = Arc::new(verifier);
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if cache
            .get(&stored.name)
            .is_some_and(|c| c.version > stored.version)
        {
            return verifier;
        }
        cache.insert(
            stored.name.clone(),
            Cached {
                verifier: verifier.clone(),
                version: stored.version,
                checked: Instant::now(),
            },
        );
        verifier
    }

    /// Seals secrets for storage; warns once per call when there is no key.
    pub fn seal(&self, name: &WorkspaceName, secrets: &[Secret]) -> Vec<String> {
        if self.key.is_none() && !secrets.is_empty() {
            tracing::warn!(
                workspace = %name,
                "workspace secrets are stored in plaintext: start the relay with --encryption-key to encrypt them at rest"
            );
        }
        secrets
            .iter()
            .enumerate()
            .map(|(i, s)| {
                crypto::seal(
                    self.key.as_ref(),
                    s,
                    &crypto::secret_identity(name.as_str(), i),
                )
            })
            .collect()
    }
}

fn open_all(
    key: Option<&EncryptionKey>,
    name: &WorkspaceName,
    sealed: &[String],
) -> Result<Vec<Secret>, OpenError> {
    sealed
        .iter()
        .enumerate()
        .map(|(i, s)| crypto::open(key, s, &crypto::secret_identity(name.as_str(), i)))
        .collect()
}

impl Verifier {
    /// The verifier of secrets already checked for `scheme` (a secret that
    /// does not parse verifies nothing).
    pub fn for_secrets(scheme: Scheme, secrets: &[Secret]) -> Verifier {
        let keys = secrets
            .iter()
            .filter_map(|s| SigningKey::parse_for(scheme, s.expose()).ok())
            .collect();
        Verifier::new(scheme, keys, secrets)
    }

    fn new(scheme: Scheme, keys: Vec<SigningKey>, secrets: &[Secret]) -> Verifier {
        Verifier {
            scheme,
            keys,
            fingerprints: secrets.iter().map(fingerprint).collect(),
        }
    }
}

fn fingerprint(secret: &Secret) -> String {
    let digest = Sha256::digest(secret.expose().as_bytes());
    format!("sha256:{}", &hex::encode(digest)[..8])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_are_short_and_do_not_contain_the_secret() {
        let print = fingerprint(&Secret::new("topsecret"));
        assert!(print.starts_with("sha256:") && print.len() == 15, "{print}");
        assert!(!print.contains("topsecret"));
        assert_ne!(print, fingerprint(&Secret::new("topsecret2")));
    }
}
