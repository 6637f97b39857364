//! Sessions over plain HTTP (SSE and long-poll): found by id, answered by
//! `POST /api/v1/agent/stream/{session_id}/acks`.
//!
//! An HTTP session's loop runs in a task of its own; requests reach it
//! through a channel. The map lives on this instance only: the requests of
//! a session must reach the instance that holds it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot};

use super::poll::PollRequest;
use super::{AnswerBatch, BatchOutcome};
use crate::api::{ApiError, AppState, AuthedAgent};

/// Most acks plus nacks in one `POST`.
pub const MAX_BATCH: usize = 10_000;
/// Requests queued for one session's loop.
const COMMAND_QUEUE: usize = 16;

/// Which transport an HTTP session uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Sse,
    Poll,
}

/// A request for a session's loop.
pub(crate) enum Command {
    Answers(AnswerBatch),
    Poll(PollRequest),
}

struct Entry {
    agent_id: String,
    kind: Kind,
    tx: mpsc::Sender<Command>,
}

/// This instance's live HTTP sessions by id.
#[derive(Default)]
pub struct HttpSessions {
    sessions: Mutex<HashMap<String, Entry>>,
}

/// A session's place in [`HttpSessions`]; leaves it on drop.
pub(crate) struct Listed {
    sessions: Arc<HttpSessions>,
    session_id: String,
}

impl Drop for Listed {
    fn drop(&mut self) {
        self.sessions.lock().remove(&self.session_id);
    }
}

impl HttpSessions {
    pub(crate) fn open(
        self: &Arc<Self>,
        agent_id: &str,
        session_id: &str,
        kind: Kind,
    ) -> (Listed, mpsc::Sender<Command>, mpsc::Receiver<Command>) {
        let (tx, rx) = mpsc::channel(COMMAND_QUEUE);
        self.lock().insert(
            session_id.to_owned(),
            Entry {
                agent_id: agent_id.to_owned(),
                kind,
                tx: tx.clone(),
            },
        );
        let listed = Listed {
            sessions: self.clone(),
            session_id: session_id.to_owned(),
        };
        (listed, tx, rx)
    }

    /// The session `session_id` of `agent_id`.
    pub(crate) fn find(
        &self,
        agent_id: &str,
        session_id: &str,
    ) -> Result<(Kind, mpsc::Sender<Command>), ApiError> {
        let sessions = self.lock();
        let entry = sessions.get(session_id).ok_or_else(|| ended(session_id))?;
        if entry.agent_id != agent_id {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "session_of_another_agent",
                format!("session {session_id} belongs to another agent: use that agent's key"),
            ));
        }
        Ok((entry.kind, entry.tx.clone()))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.sessions.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// `404 session_not_found`.
pub(crate) fn ended(session_id: &str) -> ApiError {
    ApiError::not_found(
        "session_not_found",
        format!(
            "no live session {session_id} on this relay (it ended, or the relay restarted): open a new one; the events it held are delivered again"
        ),
    )
}

/// `503 relay_restarting`.
pub(crate) fn restarting() -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "relay_restarting",
        "the relay is shutting down; reconnect in a moment",
    )
}

/// `409 wrong_transport`.
pub(crate) fn wrong_transport() -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        "wrong_transport",
        "this session is a Server-Sent Events stream, not a long-poll session: poll without session_id to open one",
    )
}

/// The body of `POST .../acks`: the WebSocket's `ack` and `nack` frames,
/// batched.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Answers {
    #[serde(default)]
    acks: Vec<AckEntry>,
    #[serde(default)]
    nacks: Vec<NackEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AckEntry {
    id: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NackEntry {
    id: String,
    #[serde(default)]
    reason: String,
}

/// `POST /api/v1/agent/stream/{session_id}/acks` → `200 {"acked", "nacked"}`
/// once the answers are stored.
pub async fn post_answers(
    State(state): State<AppState>,
    AuthedAgent(agent): AuthedAgent,
    Path(session_id): Path<String>,
    body: Result<Json<Answers>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let Json(answers) = body.map_err(|rejection| {
        // Wrong JSON types are malformed batches too (axum says 422).
        let status = match rejection.status() {
            StatusCode::UNSUPPORTED_MEDIA_TYPE => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            _ => StatusCode::BAD_REQUEST,
        };
        ApiError::new(
            status,
            "invalid_batch",
            format!(
                "{}; send {{\"acks\": [{{\"id\": \"evt_...\"}}], \"nacks\": [{{\"id\": \"evt_...\", \"reason\": \"...\"}}]}}",
                rejection.body_text()
            ),
        )
    })?;
    if answers.acks.len() + answers.nacks.len() > MAX_BATCH {
        return Err(ApiError::bad_request(
            "invalid_batch",
            format!("at most {MAX_BATCH} acks and nacks in one request"),
        ));
    }
    let (_, tx) = state.http_sessions.find(&agent.agent_id, &session_id)?;
    let (reply, outcome) = oneshot::channel();
    let batch = AnswerBatch {
        acks: answers.acks.into_iter().map(|a| a.id).collect(),
        nacks: answers
            .nacks
            .into_iter()
            .map(|n| (n.id, n.reason))
            .collect(),
        reply,
    };
    tx.send(Command::Answers(batch))
        .await
        .map_err(|_| ended(&session_id))?;
    let BatchOutcome {
        acked,
        nacked,
        acks_stored,
        nacks_stored,
    } = outcome.await.map_err(|_| ended(&session_id))?;
    let acks_stored = match acks_stored {
        Some(write) => write.await.unwrap_or(false),
        None => true,
    };
    if !(acks_stored && nacks_stored) {
        let mut err = ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "storage_unavailable",
            "the relay could not store these answers; send them again",
        );
        err.retry_after_secs = Some(1);
        return Err(err);
    }
    Ok(Json(json!({"acked": acked, "nacked": nacked})))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_are_found_by_their_agent_only_while_listed() {
        let sessions = Arc::new(HttpSessions::default());
        let (listed, _tx, _rx) = sessions.open("agt_1", "ses_1", Kind::Sse);
        assert_eq!(sessions.find("agt_1", "ses_1").unwrap().0, Kind::Sse);
        assert_eq!(sessions.find("agt_2", "ses_1").unwrap_err().status, 403);
        assert_eq!(sessions.find("agt_1", "ses_2").unwrap_err().status, 404);
        drop(listed);
        assert_eq!(sessions.find("agt_1", "ses_1").unwrap_err().status, 404);
    }

    #[test]
    fn batches_mirror_the_ack_and_nack_frames() {
        let answers: Answers = serde_json::from_str(
            r#"{"acks":[{"id":"evt_1"}],"nacks":[{"id":"evt_2","reason":"500"},{"id":"evt_3"}]}"#,
        )
        .unwrap();
        assert_eq!(answers.acks[0].id, "evt_1");
        assert_eq!(answers.nacks[0].reason, "500");
        assert_eq!(answers.nacks[1].reason, "");
        assert!(serde_json::from_str::<Answers>(r#"{"ack":[{"id":"evt_1"}]}"#).is_err());
        assert!(serde_json::from_str::<Answers>(r#"{"acks":["evt_1"]}"#).is_err());
        let empty: Answers = serde_json::from_str("{}").unwrap();
        assert!(empty.acks.is_empty() && empty.nacks.is_empty());
    }
}
