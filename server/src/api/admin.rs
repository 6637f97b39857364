//! The admin API (`docs/api-reference.md`, "Admin API"), authenticated by the admin token.

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use lobster_shared::ids::{AgentId, RelayId, WorkspaceName};
use lobster_shared::{api, ids};
use serde::Deserialize;

use super::auth::Admin;
use super::error::ApiError;
use super::rfc3339;
use crate::state::AppState;
use crate::store::{Agent, NewAgent};

pub use super::workspaces::DEFAULT_WORKSPACE;

#[derive(Deserialize)]
pub struct CreateAgent {
    name: String,
    workspace: Option<String>,
}

pub async fn create_agent(
    State(state): State<AppState>,
    _: Admin,
    body: Result<Json<CreateAgent>, JsonRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let Json(request) = body.map_err(|e| ApiError::bad_request("invalid_json", e.body_text()))?;
    let name = request.name.trim().to_owned();
    if name.is_empty() || name.len() > 100 || name.chars().any(char::is_control) {
        return Err(ApiError::bad_request(
            "invalid_name",
            "name must be 1 to 100 printable characters",
        ));
    }
    let workspace = request
        .workspace
        .unwrap_or_else(|| DEFAULT_WORKSPACE.into());
    // A name no workspace can have names none that exists.
    let known = match WorkspaceName::parse(&workspace) {
        Ok(name) => state.workspaces.exists(&name).await?.then_some(name),
        Err(_) => None,
    };
    let Some(workspace) = known else {
        return Err(ApiError::not_found(
            "unknown_workspace",
            format!(
                "no workspace {workspace:?}: create it with POST /api/v1/admin/workspaces, or see GET /api/v1/admin/workspaces"
            ),
        ));
    };
    let agent = Agent {
        agent_id: AgentId::generate(),
        name,
        workspace,
        relay_id: RelayId::generate(),
    };
    let api_key = ids::api_key();
    state
        .agents
        .create(NewAgent {
            agent: agent.clone(),
            key_hash: ids::hash_key(api_key.expose()),
        })
        .await?;
    tracing::info!(agent_id = %agent.agent_id, name = %agent.name, "agent created");
    let body = api::CreatedAgent {
        api_key: api_key.expose().to_owned(),
        webhook_url: state.webhook_url(&agent.relay_id),
        agent_id: agent.agent_id.into_string(),
        name: agent.name,
        workspace: agent.workspace.into_string(),
        relay_id: agent.relay_id.into_string(),
    };
    Ok((StatusCode::CREATED, Json(body)))
}

pub async fn list_agents(
    State(state): State<AppState>,
    _: Admin,
) -> Result<Json<api::AgentList>, ApiError> {
    let mut listed = state.store.list_agents().await?;
    state.last_seen.overlay(&mut listed);
    let hub = state.bus.hub();
    let agents = listed
        .into_iter()
        .map(|s| api::ListedAgent {
            webhook_url: state.webhook_url(&s.agent.relay_id),
            created_at: rfc3339(s.created_at),
            last_seen: s.last_seen.map(rfc3339),
            online_sessions: hub.online_sessions(&s.agent.agent_id) as u64,
            session_transports: hub
                .session_transports(&s.agent.agent_id)
                .into_iter()
                .map(str::to_owned)
                .collect(),
            pending_events: s.pending_events,
            agent_id: s.agent.agent_id.into_string(),
            name: s.agent.name,
            workspace: s.agent.workspace.into_string(),
            relay_id: s.agent.relay_id.into_string(),
        })
        .collect();
    Ok(Json(api::AgentList { agents }))
}

pub async fn revoke_agent(
    State(state): State<AppState>,
    _: Admin,
    Path(agent_id): Path<String>,
) -> Result<Json<api::Revoked>, ApiError> {
    let not_found =
        || ApiError::not_found("agent_not_found", format!("no active agent {agent_id}"));
    // An id no agent can have names no active agent.
    let Ok(agent) = AgentId::parse(&agent_id) else {
        return Err(not_found());
    };
    if !state.store.revoke_agent(&agent).await? {
        return Err(not_found());
    }
    state.bus.revoke(&agent);
    tracing::info!(agent_id = %agent_id, "agent revoked");
    Ok(Json(api::Revoked {
        agent_id,
        revoked: true,
    }))
}
