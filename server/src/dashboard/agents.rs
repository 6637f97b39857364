//! Agents: the listing, create (the key is shown once), revoke.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;

use axum::extract::{Path, State};
use axum::response::{Html, IntoResponse, Response};
use axum::{Form, Json};
use lobster_shared::api::ListedAgent;
use lobster_shared::ids::AgentId;
use serde_json::{Value, json};

use super::answer::answer;
use super::auth::DashState;
use super::auth::Operator;
use super::html::{csrf_field, esc, notice, page, url_part};
use crate::api::admin;
use crate::api::auth::Admin;

pub async fn show(State(state): State<DashState>, op: Operator) -> Html<String> {
    render(&state, &op, String::new()).await
}

async fn render(state: &DashState, op: &Operator, top: String) -> Html<String> {
    let listed = admin::list_agents(State(state.app.clone()), Admin).await;
    let agents = match listed {
        Ok(Json(listed)) => listed.agents,
        Err(err) => return page("Agents", &op.csrf, &notice("error", &err.message)),
    };
    let failed: HashMap<AgentId, u64> = state
        .app
        .store
        .failed_by_agent()
        .await
        .unwrap_or_default()
        .into_iter()
        .collect();
    let mut rows = String::new();
    for a in &agents {
        let id = a.agent_id.as_str();
        let failed = failed.get(id).copied().unwrap_or(0);
        let _ = write!(
            rows,
            "<tr><td data-label=\"Name\">{name}</td><td data-label=\"Workspace\">{ws}</td>\
             <td data-label=\"Online\">{online}</td><td data-label=\"Last seen\">{seen}</td>\
             <td data-label=\"Pending\"><a href=\"/dashboard/events?agent={qid}&amp;status=pending\">{pending}</a></td>\
             <td data-label=\"Failed\"><a href=\"/dashboard/events?agent={qid}&amp;status=failed\">{failed}</a></td>\
             <td><form method=\"post\" action=\"/dashboard/agents/{qid}/revoke\" data-confirm=\"Revoke {name}? Its key stops working at once.\">\
             {csrf}<button type=\"submit\" class=\"danger\">Revoke</button></form></td></tr>",
            name = esc(&a.name),
            ws = esc(&a.workspace),
            online = online(a),
            seen = esc(a.last_seen.as_deref().unwrap_or("never")),
            pending = a.pending_events,
            qid = esc(&url_part(id)),
            csrf = csrf_field(&op.csrf),
        );
    }
    let workspaces: HashSet<String> = std::iter::once(admin::DEFAULT_WORKSPACE.to_owned())
        .chain(
            state
                .app
                .store
                .list_workspaces()
                .await
                .unwrap_or_default()
                .into_iter()
                .map(|w| w.name.into_string()),
        )
        .collect();
    let mut names: Vec<_> = workspaces.into_iter().collect();
    names.sort();
    let options: String = names
        .iter()
        .map(|w| format!("<option>{}</option>", esc(w)))
        .collect();
    let body = format!(
        "{top}<form method=\"post\" action=\"/dashboard/agents\" class=\"inline\">{csrf}\
         <label>Name <input name=\"name\" required maxlength=\"100\"></label>\
         <label>Workspace <select name=\"workspace\">{options}</select></label>\
         <button type=\"submit\">Create agent</button></form>\
         <table class=\"cards\"><thead><tr><th>Name</th><th>Workspace</th><th>Online sessions</th>\
         <th>Last seen</th><th>Pending</th><th>Failed</th><th></th></tr></thead><tbody>{rows}</tbody></table>\
         <p class=\"hint\">{count} agent(s).</p>",
        csrf = csrf_field(&op.csrf),
        count = agents.len(),
    );
    page("Agents", &op.csrf, &body)
}

pub async fn create(
    State(state): State<DashState>,
    op: Operator,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    if let Some(refused) = op.forged(form.get("csrf")) {
        return refused;
    }
    let request = json!({
        "name": form.get("name").cloned().unwrap_or_default(),
        "workspace": form.get("workspace"),
    });
    let created = match serde_json::from_value::<admin::CreateAgent>(request) {
        Ok(body) => {
            match admin::create_agent(State(state.app.clone()), Admin, Ok(Json(body))).await {
                Ok(answered) => answer(answered.into_response()).await,
                Err(err) => Err(err.message),
            }
        }
        Err(err) => Err(format!("invalid form: {err}")),
    };
    let top = match created {
        Ok(agent) => created_notice(&agent, &state.app.public_url),
        Err(message) => notice("error", &message),
    };
    render(&state, &op, top).await.into_response()
}

fn created_notice(agent: &Value, relay: &str) -> String {
    let s = |k: &str| esc(agent[k].as_str().unwrap_or_default());
    format!(
        "<div class=\"notice ok created\" role=\"status\"><p>Agent <strong>{name}</strong> created. \
         Its API key is shown <strong>only now</strong>: copy it.</p>\
         <p><code id=\"api-key\" class=\"secret\">{key}</code></p>\
         <p>Webhook URL: <code>{url}</code></p>\
         <p class=\"hint\">On the agent's machine: <code>lobster-relay login --relay {relay}</code> \
         (paste the key when asked), then <code>lobster-relay listen</code>.</p></div>",
        name = s("name"),
        key = s("api_key"),
        url = s("webhook_url"),
        relay = esc(relay),
    )
}

pub async fn revoke(
    State(state): State<DashState>,
    op: Operator,
    Path(agent_id): Path<String>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    if let Some(refused) = op.forged(form.get("csrf")) {
        return refused;
    }
    let top =
        match admin::revoke_agent(State(state.app.clone()), Admin, Path(agent_id.clone())).await {
            Ok(_) => notice("ok", &format!("agent {agent_id} revoked")),
            Err(err) => notice("error", &err.message),
        };
    render(&state, &op, top).await.into_response()
}

/// `2 (sse, websocket)`: the agent's online sessions and how they connect.
fn online(agent: &ListedAgent) -> String {
    let count = agent.online_sessions;
    if agent.session_transports.is_empty() {
        return count.to_string();
    }
    esc(&format!(
        "{count} ({})",
        agent.session_transports.join(", ")
    ))
}
