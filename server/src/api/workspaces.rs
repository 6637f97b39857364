//! The admin endpoints of workspaces (`/api/v1/admin/workspaces`); the
//! verifier cache and secret sealing they use are [`crate::workspaces`].

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use lobster_shared::Secret;
use lobster_shared::api::{CreateWorkspace, ReplaceSecrets, Workspace, WorkspaceList};
use lobster_shared::ids::WorkspaceName;
use lobster_shared::signature::{Scheme, SigningKey};

use super::auth::Admin;
use super::error::ApiError;
use super::rfc3339;
use crate::crypto;
use crate::state::AppState;
use crate::store::now_ms;
use crate::store::workspaces::StoredWorkspace;
pub use crate::workspaces::DEFAULT_WORKSPACE;
use crate::workspaces::{Verifier, WorkspaceError};

/// Most secrets a workspace holds at once (rotation needs two or three).
const MAX_SECRETS: usize = 10;
const MAX_SECRET_LEN: usize = 1024;

impl From<WorkspaceError> for ApiError {
    fn from(err: WorkspaceError) -> Self {
        match err {
            WorkspaceError::Store(err) => err.into(),
            WorkspaceError::Unreadable(_) => ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "workspace_secrets_unreadable",
                "this workspace's secrets cannot be read; the relay operator must check its encryption key",
            ),
        }
    }
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
    let Ok(name) = WorkspaceName::parse(&name) else {
        return Err(ApiError::bad_request(
            "invalid_name",
            "a workspace name is 1 to 64 characters of a-z, 0-9 and -",
        ));
    };
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
    let verifier = Verifier::for_secrets(scheme, &secrets);
    let verifier = state.workspaces.remember(&stored, verifier);
    tracing::info!(workspace = %stored.name, scheme = %scheme, secrets = secrets.len(), "workspace created");
    Ok((StatusCode::CREATED, Json(shown(&stored, &verifier))))
}

pub async fn list(
    State(state): State<AppState>,
    _: Admin,
) -> Result<Json<WorkspaceList>, ApiError> {
    let default = &state.workspaces.default;
    let mut workspaces = vec![Workspace {
        name: DEFAULT_WORKSPACE.to_owned(),
        signature_scheme: default.scheme.as_str().to_owned(),
        secret_count: default.fingerprints.len(),
        secret_fingerprints: default.fingerprints.clone(),
        source: "config".to_owned(),
        created_at: None,
        encrypted_at_rest: None,
    }];
    for stored in state.store.list_workspaces().await? {
        match state.workspaces.verifier(&stored.name).await? {
            Some(verifier) => workspaces.push(shown(&stored, &verifier)),
            None => continue,
        }
    }
    Ok(Json(WorkspaceList { workspaces }))
}

pub async fn replace_secrets(
    State(state): State<AppState>,
    _: Admin,
    Path(name): Path<String>,
    body: Result<Json<ReplaceSecrets>, JsonRejection>,
) -> Result<Json<Workspace>, ApiError> {
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
    // A name no workspace could have names none.
    let Ok(name) = WorkspaceName::parse(&name) else {
        return Err(not_found());
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
    let verifier = Verifier::for_secrets(scheme, &secrets);
    let verifier = state.workspaces.remember(&stored, verifier);
    tracing::info!(workspace = %name, secrets = secrets.len(), "workspace secrets replaced");
    Ok(Json(shown(&stored, &verifier)))
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

/// A stored workspace as the API shows it: never its secrets.
fn shown(stored: &StoredWorkspace, verifier: &Verifier) -> Workspace {
    Workspace {
        name: stored.name.to_string(),
        signature_scheme: verifier.scheme.as_str().to_owned(),
        secret_count: verifier.fingerprints.len(),
        secret_fingerprints: verifier.fingerprints.clone(),
        source: "database".to_owned(),
        created_at: Some(rfc3339(stored.created_at)),
        encrypted_at_rest: Some(stored.secrets.iter().all(|s| crypto::is_encrypted(s))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
