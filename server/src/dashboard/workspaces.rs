//! Workspaces: scheme, secret count and fingerprints; rotate the secrets
//! of a stored workspace (the same handler as `PUT .../secrets`).

use std::collections::HashMap;
use std::fmt::Write as _;

use axum::extract::{Path, State};
use axum::response::{Html, IntoResponse, Response};
use axum::{Form, Json};
use lobster_shared::api::ReplaceSecrets;

use super::answer::answer;
use super::auth::DashState;
use super::auth::Operator;
use super::html::{csrf_field, esc, notice, page, url_part};
use crate::api::auth::Admin;
use crate::api::workspaces as api;

pub async fn show(State(state): State<DashState>, op: Operator) -> Html<String> {
    render(&state, &op, String::new()).await
}

async fn render(state: &DashState, op: &Operator, top: String) -> Html<String> {
    let workspaces = match api::list(State(state.app.clone()), Admin).await {
        Ok(Json(listed)) => listed.workspaces,
        Err(err) => return page("Workspaces", &op.csrf, &notice("error", &err.message)),
    };
    let mut rows = String::new();
    for w in &workspaces {
        let name = w.name.as_str();
        let scheme = w.signature_scheme.as_str();
        let rotate = if w.source == "config" {
            "<span class=\"hint\">set by --webhook-secret; change it there and restart</span>"
                .to_owned()
        } else if scheme == "none" {
            "<span class=\"hint\">unsigned: no secrets</span>".to_owned()
        } else {
            format!(
                "<form method=\"post\" action=\"/dashboard/workspaces/{path}/rotate\" class=\"stack\" \
                 data-confirm=\"Replace the secrets of {name}? Webhooks signed with a secret not in the new list are refused.\">{csrf}\
                 <label>New secrets, one a line (keep the old one during the switch)\
                 <textarea name=\"secrets\" rows=\"2\" required autocomplete=\"off\"></textarea></label>\
                 <button type=\"submit\">Rotate</button></form>",
                path = esc(&url_part(name)),
                name = esc(name),
                csrf = csrf_field(&op.csrf),
            )
        };
        let _ = write!(
            rows,
            "<tr><td data-label=\"Name\">{name}</td><td data-label=\"Scheme\">{scheme}</td>\
             <td data-label=\"Secrets\">{count}</td><td data-label=\"Fingerprints\"><code>{prints}</code></td>\
             <td data-label=\"Source\">{source}</td><td>{rotate}</td></tr>",
            name = esc(name),
            scheme = esc(scheme),
            count = w.secret_count,
            prints = esc(&w.secret_fingerprints.join(" ")),
            source = esc(&w.source),
        );
    }
    let body = format!(
        "{top}<table class=\"cards\"><thead><tr><th>Name</th><th>Scheme</th><th>Secrets</th>\
         <th>Fingerprints</th><th>Source</th><th>Rotate</th></tr></thead><tbody>{rows}</tbody></table>\
         <p class=\"hint\">Create workspaces with <code>POST /api/v1/admin/workspaces</code> \
         (see docs/api-reference.md).</p>"
    );
    page("Workspaces", &op.csrf, &body)
}

pub async fn rotate(
    State(state): State<DashState>,
    op: Operator,
    Path(name): Path<String>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    if let Some(refused) = op.forged(form.get("csrf")) {
        return refused;
    }
    let secrets: Vec<String> = form
        .get("secrets")
        .map(|s| {
            s.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    let outcome = match api::replace_secrets(
        State(state.app.clone()),
        Admin,
        Path(name.clone()),
        Ok(Json(ReplaceSecrets { secrets })),
    )
    .await
    {
        Ok(answered) => answer(answered.into_response()).await,
        Err(err) => Err(err.message),
    };
    let top = match outcome {
        Ok(_) => notice(
            "ok",
            &format!("workspace {name} now verifies with the new secrets"),
        ),
        Err(message) => notice("error", &message),
    };
    render(&state, &op, top).await.into_response()
}
