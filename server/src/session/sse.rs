//! `GET /api/v1/agent/stream`: a session down a Server-Sent Events stream.
//!
//! Each SSE message's `data` is the JSON of a WebSocket frame (`ready`,
//! `event`, `error`), with `id:` the event id on events; `: keep-alive`
//! comments fill 20 s of silence. Acks and nacks come by `POST` ([`super::http`]).
//! The session ends when the stream does.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse as _, Response};
use lobster_shared::ids::{EventId, SessionId};
use lobster_shared::wire::{ErrorFrame, RelayMessage};
use tokio::sync::mpsc;

use super::driver::run;
use super::link::{Ending, Inbound, Link};
use super::patterns::parse_patterns;
use super::registry::{Command, Kind, Listed, restarting, wrong_transport};
use super::reserve::reserve_session;
use super::websocket::ConnectParams;
use crate::api::auth::AuthedAgent;
use crate::api::error::ApiError;
use crate::state::AppState;

/// A comment is sent after this long without a message.
const KEEP_ALIVE: Duration = Duration::from_secs(20);
/// Messages buffered between the session and the response body; beyond
/// that the session waits for the agent to read, as on a WebSocket.
const STREAM_BUFFER: usize = 256;
/// How long the goodbye `error` message may wait for room in the stream.
const GOODBYE_WAIT: Duration = Duration::from_secs(1);

pub async fn stream(
    State(state): State<AppState>,
    AuthedAgent(agent): AuthedAgent,
    query: Result<Query<ConnectParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(params) = query.map_err(|r| ApiError::bad_request("invalid_query", r.body_text()))?;
    let patterns = parse_patterns(params.events.as_deref().unwrap_or(""))?;
    if state.shutdown.is_cancelled() {
        return Err(restarting());
    }
    reserve_session(&state, &agent.agent_id)?;
    let session_id = SessionId::generate();
    let (listed, _, commands) = state
        .http_sessions
        .open(&agent.agent_id, &session_id, Kind::Sse);
    let (messages, body) = mpsc::channel(STREAM_BUFFER);
    let link = SseLink {
        messages,
        commands,
        _listed: listed,
    };
    state
        .sessions
        .spawn(run(link, state.clone(), agent, session_id, patterns, "sse"));
    let body = futures_util::stream::unfold(body, |mut body| async move {
        let event = body.recv().await?;
        Some((Ok::<_, Infallible>(event), body))
    });
    let sse = Sse::new(body).keep_alive(KeepAlive::new().interval(KEEP_ALIVE).text("keep-alive"));
    // nginx buffers responses unless told not to.
    Ok((
        [(header::HeaderName::from_static("x-accel-buffering"), "no")],
        sse,
    )
        .into_response())
}

struct SseLink {
    messages: mpsc::Sender<Event>,
    commands: mpsc::Receiver<Command>,
    _listed: Listed,
}

impl SseLink {
    async fn put(&mut self, event: Event) -> Result<(), String> {
        self.messages
            .send(event)
            .await
            .map_err(|_| "the agent closed the stream".to_owned())
    }
}

impl Link for SseLink {
    async fn feed_event(&mut self, id: &EventId, json: String) -> Result<(), String> {
        self.put(Event::default().id(id.as_str()).data(json)).await
    }

    async fn flush(&mut self) -> Result<(), String> {
        Ok(())
    }

    async fn send(&mut self, message: &RelayMessage) -> Result<(), String> {
        self.put(Event::default().data(message.to_json())).await
    }

    async fn next(&mut self) -> Option<Inbound> {
        tokio::select! {
            command = self.commands.recv() => from_command(command),
            _ = self.messages.closed() => Some(Inbound::Gone("the agent closed the stream".into())),
        }
    }

    fn try_next(&mut self) -> Option<Option<Inbound>> {
        self.commands.try_recv().ok().map(|c| from_command(Some(c)))
    }

    /// Revocation and shutdown end the stream with an `error` message.
    async fn finish(&mut self, ending: &Ending) {
        let (code, message) = match ending {
            Ending::Revoked => ("agent_revoked", "this agent was revoked"),
            Ending::Shutdown => (
                "relay_restarting",
                "the relay is shutting down; reconnect in a moment",
            ),
            _ => return,
        };
        let frame = RelayMessage::Error(ErrorFrame {
            code: code.into(),
            message: message.into(),
        });
        let goodbye = Event::default().data(frame.to_json());
        let _ = tokio::time::timeout(GOODBYE_WAIT, self.messages.send(goodbye)).await;
    }
}

fn from_command(command: Option<Command>) -> Option<Inbound> {
    let Some(command) = command else {
        return Some(Inbound::Gone("the session was closed".into()));
    };
    match command {
        Command::Answers(batch) => Some(Inbound::Batch(batch)),
        Command::Poll(request) => {
            request.refuse(wrong_transport());
            None
        }
    }
}
