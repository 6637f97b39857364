//! This instance's live HTTP sessions (SSE and long-poll) by id, and what
//! their requests hand to a session's loop. The map lives on this instance
//! only: the requests of a session must reach the instance that holds it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use lobster_shared::ids::{AgentId, EventId, SessionId};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::link::AnswerBatch;
use crate::agent_directory::AgentDirectory;
use crate::api::error::ApiError;
use crate::store::Agent;

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
    agent_id: AgentId,
    kind: Kind,
    tx: mpsc::Sender<Command>,
}

/// This instance's live HTTP sessions by id.
#[derive(Default)]
pub struct HttpSessions {
    sessions: Mutex<HashMap<SessionId, Entry>>,
}

/// A session's place in [`HttpSessions`]; leaves it on drop.
pub(crate) struct Listed {
    sessions: Arc<HttpSessions>,
    session_id: SessionId,
}

impl Drop for Listed {
    fn drop(&mut self) {
        self.sessions.lock().remove(&self.session_id);
    }
}

impl HttpSessions {
    pub(crate) fn open(
        self: &Arc<Self>,
        agent_id: &AgentId,
        session_id: &SessionId,
        kind: Kind,
    ) -> (Listed, mpsc::Sender<Command>, mpsc::Receiver<Command>) {
        let (tx, rx) = mpsc::channel(COMMAND_QUEUE);
        self.lock().insert(
            session_id.clone(),
            Entry {
                agent_id: agent_id.clone(),
                kind,
                tx: tx.clone(),
            },
        );
        let listed = Listed {
            sessions: self.clone(),
            session_id: session_id.clone(),
        };
        (listed, tx, rx)
    }

    /// The session `session_id` of `agent_id`; `None` when there is no
    /// such session (see [`gone`]).
    fn find(
        &self,
        agent_id: &AgentId,
        session_id: &SessionId,
    ) -> Result<Option<(Kind, mpsc::Sender<Command>)>, ApiError> {
        let sessions = self.lock();
        let Some(entry) = sessions.get(session_id) else {
            return Ok(None);
        };
        if &entry.agent_id != agent_id {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "session_of_another_agent",
                format!("session {session_id} belongs to another agent: use that agent's key"),
            ));
        }
        Ok(Some((entry.kind, entry.tx.clone())))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<SessionId, Entry>> {
        self.sessions.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The live HTTP session `session_id` of `agent`, or why there is none
/// (see [`gone`]). `session_id` is the request's text: one that is no
/// session id names no session, like one that ended.
pub(crate) async fn find_session(
    sessions: &HttpSessions,
    agents: &AgentDirectory,
    agent: &Agent,
    session_id: &str,
) -> Result<(Kind, mpsc::Sender<Command>), ApiError> {
    let found = match SessionId::parse(session_id) {
        Ok(id) => sessions.find(&agent.agent_id, &id)?,
        Err(_) => None,
    };
    match found {
        Some(found) => Ok(found),
        None => Err(gone(agents, agent, session_id).await),
    }
}

/// What a request for a session that is not, or no longer, there gets:
/// `403 agent_revoked` when its agent was revoked meanwhile (the request
/// passed authentication just before the revocation ended the session, and
/// must not read as "reconnect"), else `404 session_not_found`.
pub(crate) async fn gone(agents: &AgentDirectory, agent: &Agent, session_id: &str) -> ApiError {
    match agents.by_relay_id(&agent.relay_id).await {
        Ok(None) => revoked(),
        _ => ended(session_id),
    }
}

/// `403 agent_revoked`.
pub(crate) fn revoked() -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        "agent_revoked",
        "this agent was revoked",
    )
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

/// One waiting poll, in its session's loop.
pub(crate) struct PollRequest {
    pub(super) max: usize,
    pub(super) until: Instant,
    pub(super) reply: oneshot::Sender<Result<PollAnswer, ApiError>>,
}

impl PollRequest {
    pub(crate) fn refuse(self, err: ApiError) {
        let _ = self.reply.send(Err(err));
    }
}

/// `{"session_id", "ready"?, "events": [...]}`.
pub(crate) struct PollAnswer {
    pub(super) session_id: String,
    /// The `ready` frame, in the answer to the poll that opened the session.
    pub(super) ready: Option<String>,
    /// `(id, event frame JSON)`.
    pub(super) events: Vec<(EventId, String)>,
}

impl IntoResponse for PollAnswer {
    fn into_response(self) -> Response {
        let size: usize = self.events.iter().map(|(_, json)| json.len() + 1).sum();
        let mut body = String::with_capacity(size + 64);
        body.push_str("{\"session_id\":");
        body.push_str(&serde_json::Value::from(self.session_id).to_string());
        if let Some(ready) = &self.ready {
            body.push_str(",\"ready\":");
            body.push_str(ready);
        }
        body.push_str(",\"events\":[");
        for (n, (_, json)) in self.events.iter().enumerate() {
            if n > 0 {
                body.push(',');
            }
            body.push_str(json);
        }
        body.push_str("]}");
        (
            [
                (header::CONTENT_TYPE, "application/json"),
                (header::CACHE_CONTROL, "no-store"),
            ],
            body,
        )
            .into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Ids as the tests name them.
    fn agt(id: &str) -> AgentId {
        AgentId::from_stored(id)
    }

    fn ses(id: &str) -> SessionId {
        SessionId::from_stored(id)
    }

    #[test]
    fn sessions_are_found_by_their_agent_only_while_listed() {
        let sessions = Arc::new(HttpSessions::default());
        let (listed, _tx, _rx) = sessions.open(&agt("agt_1"), &ses("ses_1"), Kind::Sse);
        assert_eq!(
            sessions
                .find(&agt("agt_1"), &ses("ses_1"))
                .unwrap()
                .unwrap()
                .0,
            Kind::Sse
        );
        assert_eq!(
            sessions
                .find(&agt("agt_2"), &ses("ses_1"))
                .unwrap_err()
                .status,
            403
        );
        assert!(
            sessions
                .find(&agt("agt_1"), &ses("ses_2"))
                .unwrap()
                .is_none()
        );
        drop(listed);
        assert!(
            sessions
                .find(&agt("agt_1"), &ses("ses_1"))
                .unwrap()
                .is_none()
        );
    }
}
