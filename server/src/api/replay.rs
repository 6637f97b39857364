//! Dead letters: queue the failed events of a filter again
//! (`POST /api/v1/admin/events/replay-failed`, and the agent's own with
//! `POST /api/v1/agent/events/replay-failed`; `docs/api-reference.md`).

use axum::Json;
use axum::extract::State;
use lobster_shared::api;
use lobster_shared::ids::AgentId;
use serde::Deserialize;

use super::auth::Admin;
use super::auth::AuthedAgent;
use super::error::ApiError;
use crate::state::AppState;
use crate::store::dashboard::AdminEventQuery;
use crate::store::{EventStatus, ReplayOutcome, StoreError, now_ms};

/// Most events one request queues; the answer says when more matched.
pub const BULK_MAX: usize = 1000;

/// Which failed events to queue again; every field narrows.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplayFilter {
    /// A duration back from now (`2h`) or an RFC 3339 time.
    since: Option<String>,
    /// A glob on the event type (`invoice.*`).
    #[serde(rename = "type")]
    event_type: Option<String>,
    /// Admin only: one agent's events.
    agent_id: Option<String>,
}

/// A time bound: a duration back from now (`2h`) or an RFC 3339 time.
pub fn time_bound(text: &str) -> Result<i64, String> {
    if let Ok(d) = humantime::parse_duration(text) {
        return Ok(now_ms() - d.as_millis().min(i64::MAX as u128) as i64);
    }
    humantime::parse_rfc3339_weak(text)
        .map(|t| {
            t.duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as i64)
        })
        .map_err(|_| {
            format!("{text:?} is neither a duration (2h) nor a time (2026-12-04T10:00:00Z)")
        })
}

/// What a bulk replay did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Replayed {
    pub matched: usize,
    pub queued: usize,
    /// More than [`BULK_MAX`] matched: run it again for the rest.
    pub truncated: bool,
}

impl Replayed {
    /// What a filter that matches no event replays.
    pub const NOTHING: Replayed = Replayed {
        matched: 0,
        queued: 0,
        truncated: false,
    };
}

/// Queues again the failed events `query` matches (its status is forced to
/// failed), up to [`BULK_MAX`], and wakes their agents.
pub async fn replay_failed(
    state: &AppState,
    mut query: AdminEventQuery,
) -> Result<Replayed, StoreError> {
    query.status = Some(EventStatus::Failed);
    query.limit = BULK_MAX + 1;
    query.after_seq = None;
    let mut rows = state.store.admin_events(query).await?;
    let truncated = rows.len() > BULK_MAX;
    rows.truncate(BULK_MAX);
    let mut queued = 0;
    let mut woken = std::collections::HashSet::new();
    for row in &rows {
        if state.store.replay(&row.agent_id, &row.summary.id).await? == ReplayOutcome::Queued {
            queued += 1;
            woken.insert(row.agent_id.clone());
        }
    }
    woken.iter().for_each(|agent| state.bus.wake(agent));
    tracing::info!(matched = rows.len(), queued, "failed events replayed");
    Ok(Replayed {
        matched: rows.len(),
        queued,
        truncated,
    })
}

/// The query a filter means; `None` when it matches nothing (an agent id
/// no agent can have).
fn query_of(filter: ReplayFilter) -> Result<Option<AdminEventQuery>, ApiError> {
    let since = filter
        .since
        .as_deref()
        .map(time_bound)
        .transpose()
        .map_err(|msg| ApiError::bad_request("invalid_since", msg))?;
    let Ok(agent_id) = filter.agent_id.as_deref().map(AgentId::parse).transpose() else {
        return Ok(None);
    };
    Ok(Some(AdminEventQuery {
        agent_id,
        type_glob: filter.event_type.filter(|t| !t.is_empty()),
        since,
        ..Default::default()
    }))
}

/// An empty body is no filter: every failed event.
fn body_of(body: &[u8]) -> Result<ReplayFilter, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(ReplayFilter::default());
    }
    serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request(
            "invalid_json",
            format!("the body must be a JSON object with since, type or agent_id: {e}"),
        )
    })
}

fn answer(done: Replayed) -> Json<api::ReplayedFailed> {
    Json(api::ReplayedFailed {
        matched: done.matched as u64,
        queued: done.queued as u64,
        truncated: done.truncated,
    })
}

/// `POST /api/v1/admin/events/replay-failed`: every agent's, or one's.
pub async fn admin(
    State(state): State<AppState>,
    _: Admin,
    body: axum::body::Bytes,
) -> Result<Json<api::ReplayedFailed>, ApiError> {
    match query_of(body_of(&body)?)? {
        Some(query) => Ok(answer(replay_failed(&state, query).await?)),
        None => Ok(answer(Replayed::NOTHING)),
    }
}

/// `POST /api/v1/agent/events/replay-failed`: this agent's.
pub async fn agent(
    State(state): State<AppState>,
    AuthedAgent(agent): AuthedAgent,
    body: axum::body::Bytes,
) -> Result<Json<api::ReplayedFailed>, ApiError> {
    let mut filter = body_of(&body)?;
    if filter.agent_id.is_some() {
        return Err(ApiError::bad_request(
            "invalid_filter",
            "agent_id is for the admin API; an agent replays only its own events",
        ));
    }
    filter.agent_id = Some(agent.agent_id.to_string());
    match query_of(filter)? {
        Some(query) => Ok(answer(replay_failed(&state, query).await?)),
        None => Ok(answer(Replayed::NOTHING)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_parse_and_bad_ones_say_why() {
        assert!(body_of(b"").unwrap().since.is_none());
        let f = body_of(br#"{"since":"2h","type":"a.*"}"#).unwrap();
        let q = query_of(f).unwrap().unwrap();
        assert!((now_ms() - q.since.unwrap() - 7_200_000).abs() < 5_000);
        assert_eq!(q.type_glob.as_deref(), Some("a.*"));
        assert_eq!(
            body_of(br#"{"status":"x"}"#).unwrap_err().code,
            "invalid_json"
        );
        let bad = query_of(body_of(br#"{"since":"soon"}"#).unwrap()).unwrap_err();
        assert_eq!(bad.code, "invalid_since");
        assert_eq!(time_bound("2026-12-04T10:00:00Z"), Ok(1_796_378_400_000));
        let unknown = body_of(br#"{"agent_id":"nobody"}"#).unwrap();
        assert!(query_of(unknown).unwrap().is_none());
    }
}
