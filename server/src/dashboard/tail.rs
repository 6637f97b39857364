//! The live tail: a page whose script follows `/dashboard/tail/stream`, a
//! server-sent event stream of events as they are accepted.
//!
//! The stream reads the store for events past its cursor (the acceptance
//! sequence) every [`POLL`]: it sees what every instance sharing the store
//! accepted, costs one indexed query a second per open tail, and needs no
//! hook in the ingest path. It ends when the session ends or the relay
//! drains.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Response};
use futures_util::Stream;
use serde_json::json;

use super::auth::DashState;
use super::auth::Operator;
use lobster_shared::ids::AgentId;

use super::events::agent_names;
use super::html::page;
use crate::store::dashboard::{AdminEventQuery, AdminEventRow};

const POLL: Duration = Duration::from_secs(1);
/// Events shown when the tail opens.
const BACKLOG: usize = 20;
/// Most events one poll sends.
const BATCH: usize = 200;

pub async fn show(op: Operator) -> Html<String> {
    let body = "<p class=\"hint\" id=\"tail-state\">Connecting…</p>\
        <table class=\"cards\"><thead><tr><th>Received</th><th>Id</th><th>Agent</th><th>Type</th><th>Status</th></tr></thead>\
        <tbody id=\"tail\" data-stream=\"/dashboard/tail/stream\"></tbody></table>\
        <p class=\"hint\">New events appear at the top as the relay accepts them. Status is as of arrival: \
        open an event for its progress.</p>";
    page("Live tail", &op.csrf, body)
}

fn frame(row: &AdminEventRow, names: &std::collections::HashMap<AgentId, String>) -> Event {
    let e = &row.summary;
    let data = json!({
        "seq": row.seq,
        "id": e.id,
        "agent": names.get(&row.agent_id).map_or(row.agent_id.as_str(), String::as_str),
        "type": e.event_type,
        "status": e.status,
        "received_at": crate::api::rfc3339(e.received_at),
    });
    Event::default().event("event").data(data.to_string())
}

struct Cursor {
    state: DashState,
    session: String,
    seq: Option<i64>,
    pending: std::collections::VecDeque<Event>,
    names: std::collections::HashMap<AgentId, String>,
}

impl Cursor {
    /// The next batch: on the first call the newest [`BACKLOG`] events,
    /// after that whatever arrived since. `None` ends the stream.
    async fn next(&mut self) -> Option<Event> {
        loop {
            if let Some(event) = self.pending.pop_front() {
                return Some(event);
            }
            if self.seq.is_some() {
                tokio::select! {
                    _ = self.state.app.shutdown.cancelled() => return None,
                    _ = tokio::time::sleep(POLL) => {}
                }
            }
            self.state.sessions.csrf(&self.session)?;
            let rows = match self.seq {
                None => {
                    let query = AdminEventQuery {
                        limit: BACKLOG,
                        ..Default::default()
                    };
                    let mut rows = self.state.app.store.admin_events(query).await.ok()?;
                    rows.reverse();
                    self.seq = Some(rows.last().map_or(0, |r| r.seq));
                    self.names = agent_names(&self.state).await;
                    self.pending
                        .extend(rows.iter().map(|r| frame(r, &self.names)));
                    // Tells the page it is connected even when nothing arrives.
                    self.pending
                        .push_back(Event::default().event("ready").data("{}"));
                    continue;
                }
                Some(after) => {
                    let query = AdminEventQuery {
                        after_seq: Some(after),
                        limit: BATCH,
                        ..Default::default()
                    };
                    match self.state.app.store.admin_events(query).await {
                        Ok(rows) => rows,
                        Err(err) => {
                            tracing::warn!(error = %err, "live tail: store error");
                            continue;
                        }
                    }
                }
            };
            if let Some(last) = rows.last() {
                self.seq = Some(last.seq);
            }
            if rows.iter().any(|r| !self.names.contains_key(&r.agent_id)) {
                self.names = agent_names(&self.state).await;
            }
            self.pending
                .extend(rows.iter().map(|r| frame(r, &self.names)));
        }
    }
}

pub async fn stream(State(state): State<DashState>, op: Operator) -> Response {
    let cursor = Cursor {
        names: Default::default(),
        state,
        session: op.session,
        seq: None,
        pending: Default::default(),
    };
    Sse::new(events(cursor))
        .keep_alive(KeepAlive::default())
        .into_response()
}

fn events(cursor: Cursor) -> impl Stream<Item = Result<Event, Infallible>> {
    futures_util::stream::unfold(cursor, |mut cursor| async move {
        let event = cursor.next().await?;
        Some((Ok(event), cursor))
    })
}
