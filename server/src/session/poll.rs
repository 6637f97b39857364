//! `GET /api/v1/agent/poll`: a session for agents behind proxies that
//! buffer streams. Each poll waits up to `wait` seconds and answers with up
//! to `max` events as soon as there are any; acks and nacks come by `POST`
//! ([`super::http`]).
//!
//! The session outlives its polls: the first poll opens it, later ones name
//! it with `session_id`. Events are leased only for a waiting poll, so none
//! sits leased in the relay while nobody asks. The session ends when no
//! poll is waiting, no request came for [`AWAY_LIMIT`](super::driver::AWAY_LIMIT), and none of its
//! leases is still running; its leases then return to the queue.

use std::collections::VecDeque;
use std::time::Duration;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use lobster_shared::ids::{EventId, SessionId};
use lobster_shared::wire::RelayMessage;
use serde::Deserialize;
use tokio::sync::{mpsc, oneshot};
use tokio::time::{Instant, sleep_until};

use super::driver::run;
use super::link::{Ending, Inbound, Link};
use super::patterns::parse_patterns;
use super::registry::{
    Command, Kind, Listed, PollAnswer, PollRequest, ended, find_session, gone, restarting, revoked,
    wrong_transport,
};
use super::reserve::reserve_session;
use crate::api::auth::AuthedAgent;
use crate::api::error::ApiError;
use crate::state::AppState;

/// `wait` when the poll does not say.
const DEFAULT_WAIT_SECS: u64 = 25;
/// Longest `wait`; longer asks are shortened to it.
pub const MAX_WAIT_SECS: u64 = 60;

#[derive(Deserialize)]
pub struct PollParams {
    wait: Option<String>,
    max: Option<String>,
    session_id: Option<String>,
    events: Option<String>,
}

pub async fn poll(
    State(state): State<AppState>,
    AuthedAgent(agent): AuthedAgent,
    query: Result<Query<PollParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(params) = query.map_err(|r| ApiError::bad_request("invalid_query", r.body_text()))?;
    let wait = match params.wait.as_deref() {
        None | Some("") => DEFAULT_WAIT_SECS,
        Some(text) => text.parse::<u64>().map_err(|_| {
            ApiError::bad_request(
                "invalid_wait",
                format!("wait is whole seconds, 0 to {MAX_WAIT_SECS}"),
            )
        })?,
    }
    .min(MAX_WAIT_SECS);
    let max_in_flight = state.config.max_in_flight as usize;
    let max = match params.max.as_deref() {
        None | Some("") => max_in_flight,
        Some(text) => text
            .parse::<usize>()
            .ok()
            .filter(|n| *n >= 1)
            .ok_or_else(|| {
                ApiError::bad_request(
                    "invalid_max",
                    format!("max is a number of events, 1 to {max_in_flight}"),
                )
            })?,
    }
    .min(max_in_flight);
    let (session_id, commands) = match params.session_id.filter(|id| !id.is_empty()) {
        Some(session_id) => {
            let (kind, commands) =
                find_session(&state.http_sessions, &state.agents, &agent, &session_id).await?;
            if kind != Kind::Poll {
                return Err(wrong_transport());
            }
            (session_id, commands)
        }
        None => {
            let patterns = parse_patterns(params.events.as_deref().unwrap_or(""))?;
            open(&state, agent.clone(), patterns)?
        }
    };
    let (reply, answer) = oneshot::channel();
    let request = PollRequest {
        max,
        until: Instant::now() + Duration::from_secs(wait),
        reply,
    };
    if commands.send(Command::Poll(request)).await.is_err() {
        return Err(gone(&state.agents, &agent, &session_id).await);
    }
    match answer.await {
        Ok(Ok(answer)) => Ok(answer.into_response()),
        Ok(Err(err)) => Err(err),
        Err(_) => Err(gone(&state.agents, &agent, &session_id).await),
    }
}

/// Opens a poll session; returns its id and where its polls go.
fn open(
    state: &AppState,
    agent: std::sync::Arc<crate::store::Agent>,
    patterns: Vec<String>,
) -> Result<(String, mpsc::Sender<Command>), ApiError> {
    if state.shutdown.is_cancelled() {
        return Err(restarting());
    }
    reserve_session(state, &agent.agent_id)?;
    let session_id = SessionId::generate();
    let (listed, commands, inbox) =
        state
            .http_sessions
            .open(&agent.agent_id, &session_id, Kind::Poll);
    let link = PollLink {
        session_id: session_id.clone(),
        inbox,
        _listed: listed,
        ready: None,
        held: VecDeque::new(),
        waiting: None,
        last_seen: Instant::now(),
    };
    state.sessions.spawn(run(
        link,
        state.clone(),
        agent,
        session_id.clone(),
        patterns,
        "poll",
    ));
    Ok((session_id.into_string(), commands))
}

struct PollLink {
    session_id: SessionId,
    inbox: mpsc::Receiver<Command>,
    _listed: Listed,
    /// The `ready` frame until a poll carried it.
    ready: Option<String>,
    /// Leased events no poll has carried yet: `(id, frame JSON)`.
    held: VecDeque<(EventId, String)>,
    waiting: Option<PollRequest>,
    /// The agent's last request, or the end of its last poll.
    last_seen: Instant,
}

impl PollLink {
    /// Answers the waiting poll with what is held.
    fn answer(&mut self) {
        let Some(request) = self.waiting.take() else {
            return;
        };
        self.last_seen = Instant::now();
        let take = request.max.min(self.held.len());
        let answer = PollAnswer {
            session_id: self.session_id.to_string(),
            ready: self.ready.take(),
            events: self.held.drain(..take).collect(),
        };
        if let Err(Ok(answer)) = request.reply.send(Ok(answer)) {
            // The agent gave up on this poll: its next one gets them.
            for event in answer.events.into_iter().rev() {
                self.held.push_front(event);
            }
            self.ready = answer.ready;
        }
    }

    fn command(&mut self, command: Option<Command>) -> Option<Inbound> {
        let Some(command) = command else {
            return Some(Inbound::Gone("the session was closed".into()));
        };
        self.last_seen = Instant::now();
        match command {
            Command::Answers(batch) => Some(Inbound::Batch(batch)),
            Command::Poll(request) => {
                // A newer poll replaces one still waiting (the agent gave up
                // on it, or a proxy retried).
                self.answer();
                self.waiting = Some(request);
                if self.held.is_empty() {
                    Some(Inbound::Wants)
                } else {
                    self.answer();
                    None
                }
            }
        }
    }
}

/// Resolves when the waiting poll's requester has gone away.
async fn abandoned(waiting: &mut Option<PollRequest>) {
    match waiting {
        Some(request) => request.reply.closed().await,
        None => std::future::pending().await,
    }
}

impl Link for PollLink {
    const PULL: bool = true;

    async fn feed_event(&mut self, id: &EventId, json: String) -> Result<(), String> {
        self.held.push_back((id.clone(), json));
        Ok(())
    }

    /// The poll that opened the session is answered at once, with the
    /// `ready` frame and whatever the first lease found.
    async fn flush(&mut self) -> Result<(), String> {
        if !self.held.is_empty() || self.ready.is_some() {
            self.answer();
        }
        Ok(())
    }

    async fn send(&mut self, message: &RelayMessage) -> Result<(), String> {
        if let RelayMessage::Ready(_) = message {
            self.ready = Some(message.to_json());
        }
        Ok(())
    }

    async fn next(&mut self) -> Option<Inbound> {
        let until = self.waiting.as_ref().map(|request| request.until);
        tokio::select! {
            command = self.inbox.recv() => self.command(command),
            _ = sleep_until(until.unwrap_or_else(Instant::now)), if until.is_some() => {
                self.answer();
                None
            }
            _ = abandoned(&mut self.waiting) => {
                self.waiting = None;
                self.last_seen = Instant::now();
                None
            }
        }
    }

    fn try_next(&mut self) -> Option<Option<Inbound>> {
        let command = self.inbox.try_recv().ok()?;
        Some(self.command(Some(command)))
    }

    fn demand(&self) -> Option<usize> {
        Some(
            self.waiting
                .as_ref()
                .map_or(0, |request| request.max.saturating_sub(self.held.len())),
        )
    }

    fn away_since(&self) -> Option<Instant> {
        self.waiting.is_none().then_some(self.last_seen)
    }

    fn expired(&mut self, ids: &[EventId]) {
        self.held.retain(|(id, _)| !ids.contains(id));
    }

    /// A waiting poll learns why the session ended.
    async fn finish(&mut self, ending: &Ending) {
        let Some(request) = self.waiting.take() else {
            return;
        };
        match ending {
            Ending::Revoked => request.refuse(revoked()),
            Ending::Shutdown => request.refuse(restarting()),
            _ => request.refuse(ended(self.session_id.as_str())),
        }
    }
}
