//! `GET|PUT|DELETE /api/v1/agent/callback`: an agent's callback URLs for
//! push delivery (`crate::callback`, `session::callback`), tried in order.
//!
//! The URL and a fresh `whsec_` signing secret are stored sealed under the
//! `--encryption-key`; without a key the relay refuses to store them
//! (`409 encryption_key_required`). The secret is shown once, in the `PUT`
//! answer; every `PUT` issues a new one.

use axum::Json;
use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use lobster_shared::Secret;
use lobster_shared::api::{CallbackSet, CallbackShown, SetCallback};

use super::{ApiError, AuthedAgent, rfc3339};
use crate::callback::{UrlError, encode_urls};
use crate::crypto;
use crate::hub::CALLBACK_TRANSPORT;
use crate::state::AppState;

/// `PUT`: registers (or replaces) the callback; answers with the signing
/// secret, once.
pub async fn set(
    State(state): State<AppState>,
    AuthedAgent(agent): AuthedAgent,
    body: Result<Json<SetCallback>, JsonRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let Json(request) = body.map_err(|e| ApiError::bad_request("invalid_json", e.body_text()))?;
    let Some(key) = state.config.encryption_key.as_ref() else {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "encryption_key_required",
            "this relay stores callback URLs only encrypted, and it was started without --encryption-key; ask the relay operator to set one",
        ));
    };
    let urls = state
        .callbacks
        .client()
        .policy()
        .validate_urls(request.url, request.urls)
        .map_err(|err| match err {
            UrlError::Invalid(m) => ApiError::bad_request("invalid_callback_url", m),
            UrlError::Forbidden(m) => ApiError::bad_request("callback_address_forbidden", m),
        })?;
    let mut bytes = [0u8; 32];
    rand::fill(&mut bytes);
    let secret = Secret::new(format!("whsec_{}", STANDARD.encode(bytes)));
    let agent_id = &agent.agent_id;
    let sealed_url = crypto::seal(
        Some(key),
        &Secret::new(encode_urls(&urls)),
        &crypto::callback_identity(agent_id.as_str(), "url"),
    );
    let sealed_secret = crypto::seal(
        Some(key),
        &secret,
        &crypto::callback_identity(agent_id.as_str(), "secret"),
    );
    state
        .store
        .set_callback(agent_id, sealed_url, sealed_secret)
        .await?;
    state.callbacks.sync(&state).await;
    tracing::info!(agent_id = %agent_id, host = urls[0].host_str().unwrap_or(""), urls = urls.len(), "callback set");
    let urls = texts(&urls);
    Ok(Json(CallbackSet {
        url: urls[0].clone(),
        urls,
        signing_secret: secret.expose().to_owned(),
        signature_scheme: SIGNATURE_SCHEME.to_owned(),
    }))
}

/// `GET`: the callback, without its secret.
pub async fn show(
    State(state): State<AppState>,
    AuthedAgent(agent): AuthedAgent,
) -> Result<Json<CallbackShown>, ApiError> {
    let stored = state
        .store
        .callback(&agent.agent_id)
        .await?
        .ok_or_else(not_set)?;
    let target = crate::session::CallbackTarget::open(state.config.encryption_key.as_ref(), &stored)
        .map_err(|err| {
            tracing::warn!(agent_id = %agent.agent_id, error = %err, "cannot open a stored callback");
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "callback_unreadable",
                "this agent's callback cannot be read; the relay operator must check its encryption key, or set the callback again",
            )
        })?;
    let hub = state.bus.hub();
    let pushing = hub
        .session_transports(&agent.agent_id)
        .contains(&CALLBACK_TRANSPORT);
    let connected_elsewhere = state
        .store
        .connected_elsewhere(&agent.agent_id)
        .await
        .unwrap_or(false);
    let urls = texts(&target.urls);
    Ok(Json(CallbackShown {
        url: urls[0].clone(),
        urls,
        signature_scheme: SIGNATURE_SCHEME.to_owned(),
        created_at: rfc3339(stored.created_at),
        updated_at: rfc3339(stored.updated_at),
        pushing,
        online_sessions: hub.online_sessions(&agent.agent_id) as u64,
        connected_elsewhere,
    }))
}

/// `DELETE`: push delivery stops; events wait for a session again.
pub async fn clear(
    State(state): State<AppState>,
    AuthedAgent(agent): AuthedAgent,
) -> Result<StatusCode, ApiError> {
    if !state.store.clear_callback(&agent.agent_id).await? {
        return Err(not_set());
    }
    state.callbacks.sync(&state).await;
    tracing::info!(agent_id = %agent.agent_id, "callback cleared");
    Ok(StatusCode::NO_CONTENT)
}

const SIGNATURE_SCHEME: &str = "standard-webhooks";

fn texts(urls: &[reqwest::Url]) -> Vec<String> {
    urls.iter().map(|u| u.as_str().to_owned()).collect()
}

fn not_set() -> ApiError {
    ApiError::not_found(
        "callback_not_set",
        "this agent has no callback URL; set one with PUT /api/v1/agent/callback",
    )
}
