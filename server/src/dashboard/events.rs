//! Events: a filtered listing across agents, the detail of one event with
//! every attempt, replay of one, and bulk replay of a filter's failed events.

use std::collections::HashMap;
use std::fmt::Write as _;

use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use lobster_shared::ids::{AgentId, EventId, SessionId};

use super::auth::DashState;
use super::auth::Operator;
use super::html::{bare, csrf_field, esc, notice, page, time, url_part};
use crate::api::replay::{BULK_MAX, Replayed, replay_failed as replay_all};
use crate::store::{EventStatus, ReplayOutcome, StoreError};
use filter::query_of;

mod filter;

/// Rows on one listing page.
const PAGE: usize = 100;
/// The fields a filter is made of, in the order the form shows them.
const FILTER_FIELDS: [&str; 6] = ["agent", "status", "type", "since", "until", "id"];

pub fn store_failed(err: StoreError) -> Response {
    tracing::warn!(error = %err, "dashboard: store error");
    (
        StatusCode::SERVICE_UNAVAILABLE,
        bare(
            "Store unavailable",
            &notice(
                "error",
                "the store did not answer; reload in a moment (the relay log says why)",
            ),
        ),
    )
        .into_response()
}

pub(super) async fn agent_names(state: &DashState) -> HashMap<AgentId, String> {
    state
        .app
        .store
        .list_agents()
        .await
        .unwrap_or_default()
        .into_iter()
        .map(|a| (a.agent.agent_id, a.agent.name))
        .collect()
}

pub async fn list(
    State(state): State<DashState>,
    op: Operator,
    Query(filter): Query<HashMap<String, String>>,
) -> Response {
    render_list(&state, &op, &filter, String::new()).await
}

async fn render_list(
    state: &DashState,
    op: &Operator,
    filter: &HashMap<String, String>,
    top: String,
) -> Response {
    let names = agent_names(state).await;
    let (rows, mut top) = match query_of(filter, PAGE) {
        Ok(None) => (Vec::new(), top),
        Ok(Some(q)) => match state.app.store.admin_events(q).await {
            Ok(rows) => (rows, top),
            Err(err) => return store_failed(err),
        },
        Err(message) => (Vec::new(), top + &notice("error", &message)),
    };
    let mut table = String::new();
    for r in &rows {
        let e = &r.summary;
        let _ = write!(
            table,
            "<tr><td data-label=\"Received\">{at}</td>\
             <td data-label=\"Id\"><a href=\"/dashboard/events/{qid}\">{id}</a></td>\
             <td data-label=\"Agent\">{agent}</td><td data-label=\"Type\">{ty}</td>\
             <td data-label=\"Status\"><span class=\"status {st}\">{st}</span></td>\
             <td data-label=\"Attempts\">{n}</td></tr>",
            at = time(e.received_at),
            qid = esc(&url_part(e.id.as_str())),
            id = esc(e.id.as_str()),
            agent = esc(names
                .get(&r.agent_id)
                .map_or(r.agent_id.as_str(), String::as_str)),
            ty = esc(&e.event_type),
            st = esc(&e.status),
            n = e.attempts,
        );
    }
    if rows.is_empty() {
        top += "<p class=\"hint\">No events match.</p>";
    }
    let older = match rows.last() {
        Some(last) if rows.len() == PAGE => {
            let mut link = String::from("/dashboard/events?");
            for k in FILTER_FIELDS {
                if let Some(v) = filter.get(k) {
                    let _ = write!(link, "{k}={}&", url_part(v));
                }
            }
            format!(
                "<p><a href=\"{}before={}\" id=\"older\">Older events →</a></p>",
                esc(&link),
                last.seq
            )
        }
        _ => String::new(),
    };
    let value = |k: &str| esc(filter.get(k).map(String::as_str).unwrap_or_default());
    let mut agents: Vec<_> = names.iter().collect();
    agents.sort_by(|a, b| a.1.cmp(b.1));
    let mut agent_options = String::from("<option value=\"\">any</option>");
    for (id, name) in agents {
        let selected = if filter.get("agent").map(String::as_str) == Some(id.as_str()) {
            " selected"
        } else {
            ""
        };
        let _ = write!(
            agent_options,
            "<option value=\"{}\"{selected}>{}</option>",
            esc(id.as_str()),
            esc(name)
        );
    }
    let mut status_options = String::from("<option value=\"\">any</option>");
    for s in EventStatus::ALL.map(EventStatus::as_str) {
        let selected = if filter.get("status").map(String::as_str) == Some(s) {
            " selected"
        } else {
            ""
        };
        let _ = write!(status_options, "<option{selected}>{s}</option>");
    }
    let hidden: String = FILTER_FIELDS
        .iter()
        .filter(|k| **k != "status")
        .map(|k| {
            format!(
                "<input type=\"hidden\" name=\"{k}\" value=\"{}\">",
                value(k)
            )
        })
        .collect();
    let body = format!(
        "{top}<form method=\"get\" action=\"/dashboard/events\" class=\"filters\">\
         <label>Agent <select name=\"agent\">{agent_options}</select></label>\
         <label>Status <select name=\"status\">{status_options}</select></label>\
         <label>Type <input name=\"type\" value=\"{ty}\" placeholder=\"push* (glob)\"></label>\
         <label>Since <input name=\"since\" value=\"{since}\" placeholder=\"2h or RFC 3339\"></label>\
         <label>Until <input name=\"until\" value=\"{until}\" placeholder=\"RFC 3339\"></label>\
         <label>Event id <input name=\"id\" value=\"{id}\" placeholder=\"evt_…\"></label>\
         <button type=\"submit\">Filter</button></form>\
         <form method=\"post\" action=\"/dashboard/events/replay-failed\" class=\"inline\" \
         data-confirm=\"Queue again every failed event that matches this filter (up to {BULK_MAX})?\">\
         {csrf}{hidden}<button type=\"submit\">Replay the failed events of this filter</button></form>\
         <table class=\"cards\"><thead><tr><th>Received</th><th>Id</th><th>Agent</th><th>Type</th>\
         <th>Status</th><th>Attempts</th></tr></thead><tbody>{table}</tbody></table>\
         <p class=\"hint\">Newest first, {PAGE} a page.</p>{older}",
        ty = value("type"),
        since = value("since"),
        until = value("until"),
        id = value("id"),
        csrf = csrf_field(&op.csrf),
    );
    page("Events", &op.csrf, &body).into_response()
}

/// Queues one event again and wakes its agent's sessions.
async fn replay_one(
    state: &DashState,
    agent_id: &AgentId,
    id: &EventId,
) -> Result<ReplayOutcome, StoreError> {
    let outcome = state.app.store.replay(agent_id, id).await?;
    if outcome == ReplayOutcome::Queued {
        state.app.bus.wake(agent_id);
        tracing::info!(
            agent_id = agent_id.as_str(),
            event_id = id.as_str(),
            "dashboard: event replayed"
        );
    }
    Ok(outcome)
}

pub async fn replay_failed(
    State(state): State<DashState>,
    op: Operator,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    if let Some(refused) = op.forged(form.get("csrf")) {
        return refused;
    }
    let mut filter = form.clone();
    filter.remove("csrf");
    filter.insert("status".into(), "failed".into());
    let query = match query_of(&filter, BULK_MAX) {
        Ok(q) => q,
        Err(message) => return render_list(&state, &op, &filter, notice("error", &message)).await,
    };
    let done = match query {
        None => Replayed::NOTHING,
        Some(query) => match replay_all(&state.app, query).await {
            Ok(done) => done,
            Err(err) => return store_failed(err),
        },
    };
    let more = if done.truncated {
        "; more matched: replay again for the rest"
    } else {
        ""
    };
    let message = format!(
        "queued {} of {} failed event(s) again{more}",
        done.queued, done.matched
    );
    filter.remove("status");
    render_list(&state, &op, &filter, notice("ok", &message)).await
}

pub async fn detail(
    State(state): State<DashState>,
    op: Operator,
    Path(id): Path<String>,
) -> Response {
    render_detail(&state, &op, &id, String::new()).await
}

pub async fn replay(
    State(state): State<DashState>,
    op: Operator,
    Path(id): Path<String>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    if let Some(refused) = op.forged(form.get("csrf")) {
        return refused;
    }
    // An id no event can have finds none, like an unknown one.
    let event = match EventId::parse(&id) {
        Ok(event) => state
            .app
            .store
            .event_agent(&event)
            .await
            .map(|a| a.zip(Some(event))),
        Err(_) => Ok(None),
    };
    let top = match event {
        Ok(Some((agent, event))) => match replay_one(&state, &agent, &event).await {
            Ok(ReplayOutcome::Queued) => notice(
                "ok",
                "queued again: its agent gets it as soon as a session is online",
            ),
            Ok(ReplayOutcome::InFlight) => notice(
                "error",
                "it is being delivered right now; replay it after it is acked or fails",
            ),
            Ok(ReplayOutcome::NotFound) => notice("error", "no such event"),
            Err(err) => return store_failed(err),
        },
        Ok(None) => notice("error", "no such event"),
        Err(err) => return store_failed(err),
    };
    render_detail(&state, &op, &id, top).await
}

async fn render_detail(state: &DashState, op: &Operator, id: &str, top: String) -> Response {
    // An id no event can have finds none, like an unknown one.
    let event = EventId::parse(id).ok();
    let agent = match &event {
        Some(event) => match state.app.store.event_agent(event).await {
            Ok(agent) => agent,
            Err(err) => return store_failed(err),
        },
        None => None,
    };
    let detail = match (&agent, &event) {
        (Some(agent), Some(event)) => match state.app.store.event_detail(agent, event).await {
            Ok(d) => d,
            Err(err) => return store_failed(err),
        },
        _ => None,
    };
    let (Some(agent), Some(d)) = (agent, detail) else {
        let body = format!("{top}{}", notice("error", &format!("no event {id}")));
        return (StatusCode::NOT_FOUND, page("Event", &op.csrf, &body)).into_response();
    };
    let names = agent_names(state).await;
    let headers: String = d
        .headers
        .iter()
        .map(|(k, v)| format!("<tr><th>{}</th><td>{}</td></tr>", esc(k), esc(v)))
        .collect();
    let (text, note) = match std::str::from_utf8(&d.body) {
        Ok(text) => (text.to_owned(), String::new()),
        Err(_) => (
            String::from_utf8_lossy(&d.body).into_owned(),
            "<p class=\"hint\">Not UTF-8: invalid bytes are shown as �.</p>".to_owned(),
        ),
    };
    let pretty = serde_json::from_slice::<serde_json::Value>(&d.body)
        .ok()
        .and_then(|v| serde_json::to_string_pretty(&v).ok())
        .map(|p| {
            format!(
                "<h2>Body, pretty JSON</h2><pre id=\"body-pretty\">{}</pre>",
                esc(&p)
            )
        })
        .unwrap_or_default();
    let attempts: String = d
        .history
        .iter()
        .map(|a| {
            format!(
                "<tr><td data-label=\"#\">{}</td><td data-label=\"Time\">{}</td><td data-label=\"Session\">{}</td>\
                 <td data-label=\"Outcome\">{}</td><td data-label=\"Error\">{}</td></tr>",
                a.attempt,
                time(a.at),
                esc(a.session_id.as_ref().map_or("", SessionId::as_str)),
                esc(&a.outcome),
                esc(a.error.as_deref().unwrap_or("")),
            )
        })
        .collect();
    let s = &d.summary;
    let body = format!(
        "{top}<dl class=\"facts\"><dt>Id</dt><dd><code>{id}</code></dd><dt>Agent</dt><dd>{agent}</dd>\
         <dt>Type</dt><dd>{ty}</dd><dt>Status</dt><dd><span class=\"status {st}\" id=\"event-status\">{st}</span></dd>\
         <dt>Received</dt><dd>{at}</dd><dt>Attempts</dt><dd>{n}</dd></dl>\
         <form method=\"post\" action=\"/dashboard/events/{qid}/replay\">{csrf}<button type=\"submit\" id=\"replay\">Replay</button></form>\
         <h2>Headers</h2><table class=\"kv\">{headers}</table>\
         <h2>Body, as received ({len} bytes)</h2>{note}<pre id=\"body-raw\">{raw}</pre>{pretty}\
         <h2>Attempts</h2><table class=\"cards\"><thead><tr><th>#</th><th>Time</th><th>Session</th><th>Outcome</th>\
         <th>Error</th></tr></thead><tbody>{attempts}</tbody></table>",
        id = esc(s.id.as_str()),
        agent = esc(names.get(&agent).map_or(agent.as_str(), String::as_str)),
        ty = esc(&s.event_type),
        st = esc(&s.status),
        at = time(s.received_at),
        n = s.attempts,
        qid = esc(&url_part(s.id.as_str())),
        csrf = csrf_field(&op.csrf),
        len = d.body.len(),
        raw = esc(&text),
    );
    page("Event", &op.csrf, &body).into_response()
}
