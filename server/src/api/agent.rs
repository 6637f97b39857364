//! The agent API (`docs/api-reference.md`, "Agent API"), authenticated by the agent's key.

use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use bytes::Bytes;
use lobster_shared::api;
use lobster_shared::ids::{EventId, SessionId};
use lobster_shared::signature::{
    Scheme, SigningKey, header, sign_github, sign_standard, sign_stripe,
};
use lobster_shared::wire::EventFrame;
use serde::Deserialize;
use serde_json::{Value, json};

use super::auth::AuthedAgent;
use super::error::ApiError;
use super::rfc3339;
use crate::state::AppState;
use crate::store::{EventQuery, EventStatus, EventSummary, NewEvent, ReplayOutcome, now_ms};

pub async fn me(
    State(state): State<AppState>,
    AuthedAgent(agent): AuthedAgent,
) -> Result<Json<api::AgentMe>, ApiError> {
    let pending_events = state.store.pending_count(&agent.agent_id).await?;
    Ok(Json(api::AgentMe {
        webhook_url: state.webhook_url(&agent.relay_id),
        pending_events,
        online_sessions: state.bus.hub().online_sessions(&agent.agent_id) as u64,
        agent_id: agent.agent_id.to_string(),
        name: agent.name.clone(),
        workspace: agent.workspace.to_string(),
        relay_id: agent.relay_id.to_string(),
    }))
}

#[derive(Deserialize)]
pub struct ListParams {
    status: Option<String>,
    limit: Option<String>,
    before: Option<String>,
}

/// A query string the handler cannot read (a repeated or malformed
/// parameter): the JSON error body, not axum's plain text.
fn bad_query(rejection: QueryRejection) -> ApiError {
    ApiError::bad_request("invalid_query", rejection.body_text())
}

const MAX_PAGE: usize = 500;

pub async fn list_events(
    State(state): State<AppState>,
    AuthedAgent(agent): AuthedAgent,
    params: Result<Query<ListParams>, QueryRejection>,
) -> Result<Json<api::EventPage>, ApiError> {
    let Query(params) = params.map_err(bad_query)?;
    let status = match params.status.as_deref().filter(|s| !s.is_empty()) {
        None => None,
        Some(text) => Some(EventStatus::parse(text).ok_or_else(|| {
            ApiError::bad_request(
                "invalid_status",
                "status must be one of pending, delivering, delivered, failed, expired, skipped",
            )
        })?),
    };
    let limit = match params.limit.as_deref() {
        None | Some("") => 50,
        Some(text) => text
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_PAGE).contains(n))
            .ok_or_else(|| {
                ApiError::bad_request("invalid_limit", format!("limit must be 1 to {MAX_PAGE}"))
            })?,
    };
    let events = state
        .store
        .list_events(EventQuery {
            agent_id: agent.agent_id.clone(),
            status,
            limit,
            // A cursor no event can have is one this agent has no event
            // of: the first page, as for an unknown id.
            before: params.before.and_then(|b| EventId::parse(&b).ok()),
        })
        .await?;
    let next = (events.len() == limit)
        .then(|| events.last().map(|e| e.id.to_string()))
        .flatten();
    let events = events.into_iter().map(summary).collect();
    Ok(Json(api::EventPage { events, next }))
}

fn summary(e: EventSummary) -> api::EventSummary {
    api::EventSummary {
        received_at: rfc3339(e.received_at),
        id: e.id.into_string(),
        event_type: e.event_type,
        status: e.status,
        attempts: e.attempts,
    }
}

pub async fn event_detail(
    State(state): State<AppState>,
    AuthedAgent(agent): AuthedAgent,
    Path(id): Path<String>,
) -> Result<Json<api::EventDetail>, ApiError> {
    // An id no event can have is one this agent has no event of.
    let detail = match EventId::parse(&id) {
        Ok(event) => state.store.event_detail(&agent.agent_id, &event).await?,
        Err(_) => None,
    };
    let detail = detail.ok_or_else(|| {
        ApiError::not_found("event_not_found", format!("this agent has no event {id}"))
    })?;
    let (body, body_encoding) = EventFrame::encode_body(&detail.body);
    let attempt_history = detail
        .history
        .into_iter()
        .map(|a| api::Attempt {
            attempt: a.attempt,
            at: rfc3339(a.at),
            session_id: a.session_id.map(SessionId::into_string),
            outcome: a.outcome,
            error: a.error,
        })
        .collect();
    Ok(Json(api::EventDetail {
        summary: summary(detail.summary),
        headers: detail.headers,
        body,
        body_encoding,
        attempt_history,
    }))
}

pub async fn replay(
    State(state): State<AppState>,
    AuthedAgent(agent): AuthedAgent,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    // An id no event can have is one this agent has no event of.
    let outcome = match EventId::parse(&id) {
        Ok(event) => state.store.replay(&agent.agent_id, &event).await?,
        Err(_) => ReplayOutcome::NotFound,
    };
    match outcome {
        ReplayOutcome::Queued => {
            state.bus.wake(&agent.agent_id);
            Ok((StatusCode::ACCEPTED, Json(accepted(id))))
        }
        ReplayOutcome::NotFound => Err(ApiError::not_found(
            "event_not_found",
            format!("this agent has no event {id}"),
        )),
        ReplayOutcome::InFlight => Err(ApiError::new(
            StatusCode::CONFLICT,
            "event_in_flight",
            "the event is being delivered right now; replay it after it is acked or fails",
        )),
    }
}

#[derive(Deserialize)]
pub struct TestEvent {
    event_type: Option<String>,
    #[serde(default)]
    data: Value,
}

pub async fn test_event(
    State(state): State<AppState>,
    AuthedAgent(agent): AuthedAgent,
    body: Result<Json<TestEvent>, JsonRejection>,
) -> Result<impl IntoResponse, ApiError> {
    // A test event is stored like a webhook, so it costs like one: the
    // agent's ingest rate limit applies, and its size is capped.
    state.limits.check(&agent.agent_id)?;
    state.backlog.check(&state.store, &agent.agent_id).await?;
    let Json(request) = body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            test_event_too_large()
        } else {
            ApiError::bad_request("invalid_json", e.body_text())
        }
    })?;
    let event_type = request
        .event_type
        .filter(|t| !t.trim().is_empty())
        .unwrap_or_else(|| "test.event".into());
    if event_type.len() > 200 {
        return Err(ApiError::bad_request(
            "invalid_event_type",
            "event_type is longer than 200 characters",
        ));
    }
    let id = EventId::generate();
    let payload = json!({"type": event_type, "id": id, "data": request.data, "test": true});
    let body = Bytes::from(serde_json::to_vec(&payload).expect("json values serialize"));
    if body.len() > TEST_EVENT_MAX_BODY.min(state.config.max_body) {
        return Err(test_event_too_large());
    }
    let received_at = now_ms();
    let mut headers = vec![
        ("content-type".into(), "application/json".into()),
        ("user-agent".into(), "lobster-relay-test-event".into()),
    ];
    // Signed as the agent's senders sign, so an app that verifies
    // signatures accepts a test event like a real one.
    if let Some(verifier) = state.workspaces.verifier(&agent.workspace).await?
        && let Some(key) = verifier.keys.first()
    {
        headers.extend(signature_headers(
            verifier.scheme,
            key,
            id.as_str(),
            received_at / 1000,
            &body,
        ));
    }
    let event = NewEvent {
        id: id.clone(),
        agent_id: agent.agent_id.clone(),
        event_type,
        received_at,
        headers,
        body,
        dedup_key: None,
    };
    if let crate::store::Inserted::New(_) = state.store.insert_event(event).await? {
        state.bus.wake(&agent.agent_id);
    }
    Ok((StatusCode::ACCEPTED, Json(accepted(id.into_string()))))
}

/// The largest test event body: enough for any sample payload, small enough
/// that a key cannot fill the disk with them.
const TEST_EVENT_MAX_BODY: usize = 64 * 1024;

fn test_event_too_large() -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        "a test event's body is limited to 64 KiB; send a smaller data object",
    )
}

/// The headers a sender of `scheme` signs `body` with.
fn signature_headers(
    scheme: Scheme,
    key: &SigningKey,
    id: &str,
    unix: i64,
    body: &[u8],
) -> Vec<(String, String)> {
    let pair = |name: &str, value: String| (name.to_owned(), value);
    match scheme {
        Scheme::StandardWebhooks => vec![
            pair(header::WEBHOOK_ID, id.to_owned()),
            pair(header::WEBHOOK_TIMESTAMP, unix.to_string()),
            pair(
                header::WEBHOOK_SIGNATURE,
                sign_standard(key, id, unix, body),
            ),
        ],
        Scheme::Github => vec![
            pair(header::GITHUB_DELIVERY, id.to_owned()),
            pair(header::GITHUB_SIGNATURE, sign_github(key, body)),
        ],
        Scheme::Stripe => vec![pair(header::STRIPE_SIGNATURE, sign_stripe(key, unix, body))],
        Scheme::None => Vec::new(),
    }
}

/// `202 {"id"}` of a replay or a test event.
fn accepted(id: String) -> api::Accepted {
    api::Accepted {
        id,
        duplicate: None,
    }
}
