//! Workspaces: the admin endpoints, and [`Workspaces`], which turns a
//! workspace name into the scheme and keys that verify its webhooks.
//!
//! `default` comes from the configuration (`--signature-scheme`,
//! `--webhook-secret`) and is never stored. Every other workspace lives in
//! the database with its secrets sealed by [`crate::crypto`].
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
use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use lobster_shared::Secret;
use lobster_shared::signature::{Scheme, SigningKey};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::auth::Admin;
use super::{ApiError, AppState, rfc3339};
use crate::config::Config;
use crate::crypto::{self, EncryptionKey, OpenError};
use crate::store::workspaces::StoredWorkspace;
use crate::store::{Store, StoreError, now_ms};

/// The workspace every relay has, configured by flags.
pub const DEFAULT_WORKSPACE: &str = "default";
/// How stale a cached verifier may be on a shared store.
pub const SHARED_RECHECK: Duration = Duration::from_secs(2);
/// Most secrets a workspace holds at once (rotation needs two or three).
const MAX_SECRETS: usize = 10;
const MAX_SECRET_LEN: usize = 1024;

/// What verifies one workspace's webhooks.
pub struct Verifier {
    pub scheme: Scheme,
    pub keys: Vec<SigningKey>,
    /// `sha256:` and 8 hex digits per secret: tells secrets apart in
    /// listings without revealing them.
    fingerprints: Vec<String>,
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
    default: Arc<Verifier>,
    /// `None`: this instance sees every change (SQLite), cache forever.
    recheck: Option<Duration>,
    cache: Mutex<HashMap<String, Cached>>,
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
    pub async fn verifier(&self, name: &str) -> Result<Option<Arc<Verifier>>, ApiError> {
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
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "workspace_secrets_unreadable",
                "this workspace's secrets cannot be read; the relay operator must check its encryption key",
            )
        })?;
        Ok(Some(self.remember(&stored, verifier)))
    }

    /// Whether agents can be created in `name`.
    pub async fn exists(&self, name: &str) -> Result<bool, StoreError> {
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

    fn cached(&self, name: &str) -> Option<(Arc<Verifier>, i64, bool)> {
        let cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        cache.get(name).map(|c| {
            let fresh = self.recheck.is_none_or(|every| c.checked.elapsed() < every);
            (c.verifier.clone(), c.version, fresh)
        })
    }

    fn touch(&self, name: &str) {
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(entry) = cache.get_mut(name) {
            entry.checked = Instant::now();
        }
    }

    /// Caches a verifier, unless a newer version is cached already (a
    /// lookup that read the row just before a rotation must not undo it).
    fn remember(&self, stored: &StoredWorkspace, verifier: Verifier) -> Arc<Verifier> {
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
    fn seal(&self, name: &str, secrets: &[Secret]) -> Vec<String> {
        if self.key.is_none() && !secrets.is_empty() {
            tracing::warn!(
                workspace = %name,
                "workspace secrets are stored in plaintext: start the relay with --encryption-key to encrypt them at rest"
            );
        }
        secrets
            .iter()
            .enumerate()
            .map(|(i, s)| crypto::seal(self.key.as_ref(), s, &crypto::secret_identity(name, i)))
            .collect()
    }
}

fn open_all(
    key: Option<&EncryptionKey>,
    name: &str,
    sealed: &[String],
) -> Result<Vec<Secret>, OpenError> {
    sealed
        .iter()
        .enumerate()
        .map(|(i, s)| crypto::open(key, s, &crypto::secret_identity(name, i)))
        .collect()
}

impl Verifier {
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

/// `[a-z0-9-]{1,64}`.
pub fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

#[derive(Deserialize)]
pub struct CreateWorkspace {
    name: String,
    signature_scheme: Option<String>,
    #[serde(default)]
    secrets: Vec<String>,
    #[serde(default)]
    allow_unsigned: bool,
}

#[derive(Deserialize)]
pub struct ReplaceSecrets {
    secrets: Vec<String>,
}

pub async fn create(
    State(state): State<AppState>,
    _: Admin,
    body: Result<Json<CreateWorkspace>, JsonRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let Json(request) = body.map_err(|e| ApiError::bad_request("invalid_json", e.body_text()))?;
    let name = request.name;
    if name == DEFAULT_WORKSPACE {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "workspace_exists",
            "\"default\" is configured by --signature-scheme and --webhook-secret and cannot be created or replaced here",
        ));
    }
    if !valid_name(&name) {
        return Err(ApiError::bad_request(
            "invalid_name",
            "a workspace name is 1 to 64 characters of a-z, 0-9 and -",
        ));
    }
    let scheme: Scheme = match request.signature_scheme.as_deref() {
        None => Scheme::default(),
        Some(text) => text
            .parse()
            .map_err(|msg: String| ApiError::bad_request("unknown_scheme", msg))?,
    };
    if scheme == Scheme::None && !request.allow_unsigned {
        return Err(ApiError::bad_request(
            "unsigned_not_allowed",
            "signature_scheme \"none\" accepts webhooks from anyone who knows the URL: pass \"allow_unsigned\": true to mean it",
        ));
    }
    let secrets = validate_secrets(scheme, request.secrets)?;
    let stored = StoredWorkspace {
        signature_scheme: scheme.as_str().to_owned(),
        secrets: state.workspaces.seal(&name, &secrets),
        version: 1,
        created_at: now_ms(),
        name,
    };
    if !state.store.create_workspace(stored.clone()).await? {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "workspace_exists",
            format!(
                "a workspace named {:?} exists already; rotate its secrets with PUT /api/v1/admin/workspaces/{}/secrets",
                stored.name, stored.name
            ),
        ));
    }
    let verifier = Verifier::new(scheme, keys_for(scheme, &secrets), &secrets);
    let verifier = state.workspaces.remember(&stored, verifier);
    tracing::info!(workspace = %stored.name, scheme = %scheme, secrets = secrets.len(), "workspace created");
    Ok((StatusCode::CREATED, Json(stored_json(&stored, &verifier))))
}

pub async fn list(State(state): State<AppState>, _: Admin) -> Result<Json<Value>, ApiError> {
    let default = &state.workspaces.default;
    let mut workspaces = vec![json!({
        "name": DEFAULT_WORKSPACE,
        "signature_scheme": default.scheme,
        "secret_count": default.fingerprints.len(),
        "secret_fingerprints": default.fingerprints,
        "source": "config",
        "created_at": null,
        "encrypted_at_rest": null,
    })];
    for stored in state.store.list_workspaces().await? {
        match state.workspaces.verifier(&stored.name).await? {
            Some(verifier) => workspaces.push(stored_json(&stored, &verifier)),
            None => continue,
        }
    }
    Ok(Json(json!({ "workspaces": workspaces })))
}

pub async fn replace_secrets(
    State(state): State<AppState>,
    _: Admin,
    Path(name): Path<String>,
    body: Result<Json<ReplaceSecrets>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let Json(request) = body.map_err(|e| ApiError::bad_request("invalid_json", e.body_text()))?;
    if name == DEFAULT_WORKSPACE {
        return Err(ApiError::bad_request(
            "default_workspace_is_configured",
            "the secrets of \"default\" come from --webhook-secret / WEBHOOK_SECRET: change them there and restart",
        ));
    }
    let not_found = || {
        ApiError::not_found(
            "workspace_not_found",
            format!("no workspace {name:?}; see GET /api/v1/admin/workspaces"),
        )
    };
    let Some(current) = state.store.workspace(&name).await? else {
        return Err(not_found());
    };
    let scheme: Scheme = current.signature_scheme.parse().map_err(|_| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "workspace_unreadable",
            "the stored signature scheme is unknown to this build",
        )
    })?;
    if scheme == Scheme::None {
        return Err(ApiError::bad_request(
            "unsigned_workspace",
            format!(
                "workspace {name:?} uses signature_scheme \"none\" and has no secrets to rotate"
            ),
        ));
    }
    let secrets = validate_secrets(scheme, request.secrets)?;
    let sealed = state.workspaces.seal(&name, &secrets);
    let Some(version) = state
        .store
        .replace_workspace_secrets(&name, sealed.clone())
        .await?
    else {
        return Err(not_found());
    };
    let stored = StoredWorkspace {
        secrets: sealed,
        version,
        ..current
    };
    // From now on this instance verifies with the new set only.
    let verifier = Verifier::new(scheme, keys_for(scheme, &secrets), &secrets);
    let verifier = state.workspaces.remember(&stored, verifier);
    tracing::info!(workspace = %name, secrets = secrets.len(), "workspace secrets replaced");
    Ok(Json(stored_json(&stored, &verifier)))
}

/// Non-empty, parseable for the scheme, at most [`MAX_SECRETS`]; none for
/// scheme `none`.
fn validate_secrets(scheme: Scheme, secrets: Vec<String>) -> Result<Vec<Secret>, ApiError> {
    if scheme == Scheme::None {
        if !secrets.is_empty() {
            return Err(ApiError::bad_request(
                "secrets_not_used",
                "signature_scheme \"none\" verifies nothing: leave \"secrets\" out",
            ));
        }
        return Ok(Vec::new());
    }
    if secrets.is_empty() {
        return Err(ApiError::bad_request(
            "no_secrets",
            "give at least one signing secret in \"secrets\" (the one the webhook sender shows)",
        ));
    }
    if secrets.len() > MAX_SECRETS {
        return Err(ApiError::bad_request(
            "too_many_secrets",
            format!("a workspace holds at most {MAX_SECRETS} secrets"),
        ));
    }
    secrets
        .into_iter()
        .enumerate()
        .map(|(i, secret)| {
            if secret.trim().is_empty() {
                return Err(ApiError::bad_request(
                    "empty_secret",
                    format!("secret {} is empty", i + 1),
                ));
            }
            if secret.len() > MAX_SECRET_LEN || secret.chars().any(char::is_control) {
                return Err(ApiError::bad_request(
                    "invalid_secret",
                    format!(
                        "secret {} must be at most {MAX_SECRET_LEN} printable characters",
                        i + 1
                    ),
                ));
            }
            SigningKey::parse_for(scheme, &secret).map_err(|err| {
                ApiError::bad_request("invalid_secret", format!("secret {}: {err}", i + 1))
            })?;
            Ok(Secret::new(secret))
        })
        .collect()
}

/// Keys of secrets [`validate_secrets`] accepted.
fn keys_for(scheme: Scheme, secrets: &[Secret]) -> Vec<SigningKey> {
    secrets
        .iter()
        .filter_map(|s| SigningKey::parse_for(scheme, s.expose()).ok())
        .collect()
}

/// A stored workspace as the API shows it: never its secrets.
fn stored_json(stored: &StoredWorkspace, verifier: &Verifier) -> Value {
    json!({
        "name": stored.name,
        "signature_scheme": verifier.scheme,
        "secret_count": verifier.fingerprints.len(),
        "secret_fingerprints": verifier.fingerprints,
        "source": "database",
        "created_at": rfc3339(stored.created_at),
        "encrypted_at_rest": stored.secrets.iter().all(|s| crypto::is_encrypted(s)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_short_lowercase_slugs() {
        for good in ["acme", "a", "team-7", &"x".repeat(64)] {
            assert!(valid_name(good), "{good}");
        }
        for bad in ["", "Acme", "a b", "a_b", "ü", &"x".repeat(65), "a/b"] {
            assert!(!valid_name(bad), "{bad}");
        }
    }

    #[test]
    fn secrets_are_checked_for_the_scheme() {
        let code = |scheme, secrets: &[&str]| {
            validate_secrets(scheme, secrets.iter().map(|s| s.to_string()).collect())
                .err()
                .map(|e| e.code)
        };
        assert_eq!(code(Scheme::Github, &["s1", "s2"]), None);
        assert_eq!(code(Scheme::Github, &[]), Some("no_secrets"));
        assert_eq!(code(Scheme::Github, &["s1", " "]), Some("empty_secret"));
        assert_eq!(code(Scheme::Github, &["a\nb"]), Some("invalid_secret"));
        assert_eq!(
            code(Scheme::StandardWebhooks, &["whsec_!!"]),
            Some("invalid_secret")
        );
        assert_eq!(code(Scheme::Stripe, &["whsec_!!"]), None);
        assert_eq!(code(Scheme::None, &[]), None);
        assert_eq!(code(Scheme::None, &["s"]), Some("secrets_not_used"));
        let many: Vec<&str> = vec!["s"; MAX_SECRETS + 1];
        assert_eq!(code(Scheme::Github, &many), Some("too_many_secrets"));
    }

    #[test]
    fn fingerprints_are_short_and_do_not_contain_the_secret() {
        let print = fingerprint(&Secret::new("topsecret"));
        assert!(print.starts_with("sha256:") && print.len() == 15, "{print}");
        assert!(!print.contains("topsecret"));
        assert_ne!(print, fingerprint(&Secret::new("topsecret2")));
    }
}
