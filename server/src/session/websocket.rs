//! `GET /api/v1/agent/connect`: a session over a WebSocket.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{
    CloseFrame, Message, WebSocket, WebSocketUpgrade, rejection::WebSocketUpgradeRejection,
};
use axum::extract::{Query, State};
use axum::response::Response;
use bytes::Bytes;
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{FutureExt as _, SinkExt, StreamExt};
use lobster_shared::ids::{EventId, SessionId};
use lobster_shared::wire::{AgentMessage, ErrorFrame, RelayMessage, close_code};
use serde::Deserialize;
use tokio::time::Instant;

use super::driver::run;
use super::link::{Ending, Inbound, Link};
use super::patterns::parse_patterns;
use super::registry::restarting;
use super::reserve::reserve_session;
use crate::api::auth::AuthedAgent;
use crate::api::error::ApiError;
use crate::state::AppState;
use crate::store::Agent;
use axum::extract::rejection::QueryRejection;

/// The relay pings this often.
const PING_EVERY: Duration = Duration::from_secs(20);
/// A side that hears nothing for this long drops the connection.
const IDLE_LIMIT: Duration = Duration::from_secs(60);
/// Largest frame an agent may send; acks and nacks are tiny.
const MAX_AGENT_FRAME: usize = 64 * 1024;
/// Bytes tungstenite reads per call, and the buffer each session keeps for
/// it (zero-filled, so it is resident from the first read). Agents send
/// acks of about a hundred bytes; a larger frame grows the buffer as it
/// arrives. tungstenite's default of 128 KiB would be most of an idle
/// session's memory. 512 B rather than 1 KiB: half a kilobyte less per
/// idle agent, for twice the reads in a burst of acks (docs/performance-history.md,
/// "Issue 13: idle agents and reconnects, fourth pass").
const READ_BUFFER: usize = 512;
/// How long the echo of an agent's Close frame may take to send.
const CLOSE_ECHO_WAIT: Duration = Duration::from_secs(1);

#[derive(Deserialize)]
pub struct ConnectParams {
    pub(super) events: Option<String>,
}

/// `GET /api/v1/agent/connect`: refuses the upgrade with `429
/// too_many_sessions` when the agent already has
/// `--max-sessions-per-agent` sessions on this instance, else upgrades and
/// runs the session.
pub async fn connect(
    State(state): State<AppState>,
    AuthedAgent(agent): AuthedAgent,
    query: Result<Query<ConnectParams>, QueryRejection>,
    slot: Option<axum::Extension<crate::serve::ConnectionSlot>>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    let Query(params) = query.map_err(|r| ApiError::bad_request("invalid_query", r.body_text()))?;
    reserve_session(&state, &agent.agent_id)?;
    let hub = state.bus.hub().clone();
    let agent_id = agent.agent_id.clone();
    let answer = open(state, agent, params, slot, upgrade);
    if answer.is_err() {
        hub.unreserve(&agent_id);
    }
    answer
}

fn open(
    state: AppState,
    agent: Arc<Agent>,
    params: ConnectParams,
    slot: Option<axum::Extension<crate::serve::ConnectionSlot>>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    let patterns = parse_patterns(params.events.as_deref().unwrap_or(""))?;
    let upgrade = upgrade.map_err(|e| {
        ApiError::bad_request(
            "websocket_required",
            format!("this endpoint takes a WebSocket upgrade: {e}"),
        )
    })?;
    if state.shutdown.is_cancelled() {
        return Err(restarting());
    }
    let write_limit = state.config.max_body * 2 + 1024 * 1024;
    let sessions = state.sessions.clone();
    Ok(upgrade
        .read_buffer_size(READ_BUFFER)
        .max_message_size(MAX_AGENT_FRAME)
        .max_frame_size(MAX_AGENT_FRAME)
        .max_write_buffer_size(write_limit)
        .on_upgrade(move |socket| {
            let link = WsLink::new(socket);
            let session_id = SessionId::generate();
            let session = run(link, state, agent, session_id, patterns, "websocket");
            // The socket holds its --max-connections slot while it lives.
            // `map`, not an `async move` block: awaiting a captured future
            // moves it into a second slot, and the task would hold the
            // session's future twice. A task of its own, not axum's: that
            // one's future keeps room for everything its closure captured
            // (the config, the callback) for as long as it runs.
            sessions.spawn(session.map(move |()| drop(slot)));
            std::future::ready(())
        }))
}

/// A WebSocket: frames both ways, pings, close codes.
struct WsLink {
    sink: SplitSink<WebSocket, Message>,
    stream: SplitStream<WebSocket>,
    /// The session loop's timer calls [`Link::at_deadline`] then; an
    /// `Interval` of its own was a boxed timer and a wait per session.
    next_ping: Instant,
    last_heard: Instant,
}

impl WsLink {
    fn new(socket: WebSocket) -> Self {
        let (sink, stream) = socket.split();
        let now = Instant::now();
        WsLink {
            sink,
            stream,
            next_ping: now + PING_EVERY,
            last_heard: now,
        }
    }

    async fn send_text(&mut self, text: String) -> Result<(), String> {
        self.sink
            .send(Message::Text(text.into()))
            .await
            .map_err(|e| e.to_string())
    }
}

impl Link for WsLink {
    async fn feed_event(&mut self, _id: &EventId, json: String) -> Result<(), String> {
        self.sink
            .feed(Message::Text(json.into()))
            .await
            .map_err(|e| e.to_string())
    }

    async fn flush(&mut self) -> Result<(), String> {
        self.sink.flush().await.map_err(|e| e.to_string())
    }

    async fn send(&mut self, message: &RelayMessage) -> Result<(), String> {
        self.send_text(message.to_json()).await
    }

    async fn next(&mut self) -> Option<Inbound> {
        let frame = self.stream.next().await;
        self.last_heard = Instant::now();
        from_frame(frame)
    }

    fn deadline(&self) -> Option<Instant> {
        Some(self.next_ping)
    }

    /// Pings, or gives up on an agent silent for [`IDLE_LIMIT`].
    async fn at_deadline(&mut self) -> Result<(), String> {
        if self.last_heard.elapsed() >= IDLE_LIMIT {
            return Err(format!(
                "no frame, ping or pong for {} s",
                IDLE_LIMIT.as_secs()
            ));
        }
        self.next_ping = Instant::now() + PING_EVERY;
        self.sink
            .send(Message::Ping(Bytes::new()))
            .await
            .map_err(|e| format!("ping failed: {e}"))
    }

    fn try_next(&mut self) -> Option<Option<Inbound>> {
        let frame = self.stream.next().now_or_never()?;
        self.last_heard = Instant::now();
        Some(from_frame(frame))
    }

    /// Says goodbye with the right close code.
    async fn finish(&mut self, ending: &Ending) {
        let close = match ending {
            Ending::Revoked => Some((
                close_code::REVOKED,
                "agent_revoked",
                "this agent was revoked",
            )),
            Ending::Shutdown => Some((close_code::RESTARTING, "", "relay restarting")),
            Ending::Violation(_) => Some((
                close_code::PROTOCOL_VIOLATION,
                "protocol_violation",
                "protocol violation",
            )),
            Ending::Gone(_) | Ending::ClosedByAgent => None,
        };
        if let Some((code, error_code, reason)) = close {
            if !error_code.is_empty() {
                let message = match ending {
                    Ending::Violation(detail) => detail.clone(),
                    _ => reason.to_owned(),
                };
                let frame = RelayMessage::Error(ErrorFrame {
                    code: error_code.into(),
                    message,
                });
                let _ = self.send(&frame).await;
            }
            let _ = self
                .sink
                .send(Message::Close(Some(CloseFrame {
                    code,
                    reason: reason.into(),
                })))
                .await;
        }
        if matches!(ending, Ending::ClosedByAgent) {
            // The socket queued the echo of the agent's Close when it read
            // it; closing the sink sends it, so the agent sees its own code
            // (1000) rather than an abnormal 1006.
            let _ = tokio::time::timeout(CLOSE_ECHO_WAIT, self.sink.close()).await;
        }
    }
}

/// What one item of the socket means for the session; `None` for frames
/// that need nothing (pings and pongs, answered by the socket itself).
fn from_frame(frame: Option<Result<Message, axum::Error>>) -> Option<Inbound> {
    Some(match frame {
        None => Inbound::Gone("connection closed".into()),
        Some(Err(err)) if is_too_large(&err) => Inbound::Violation(format!(
            "a frame over {} KiB: acks and nacks are small",
            MAX_AGENT_FRAME / 1024
        )),
        Some(Err(err)) => Inbound::Gone(format!("connection error: {err}")),
        Some(Ok(Message::Text(text))) => match AgentMessage::from_json(&text) {
            Ok(message) => Inbound::Message(message),
            Err(err) => Inbound::Violation(format!("cannot read frame: {err}")),
        },
        Some(Ok(Message::Binary(_))) => {
            Inbound::Violation("binary frames are not part of protocol v1".into())
        }
        Some(Ok(Message::Close(_))) => Inbound::Closed,
        Some(Ok(Message::Ping(_) | Message::Pong(_))) => return None,
    })
}

/// Whether the socket refused a frame or message over its size limit.
fn is_too_large(err: &axum::Error) -> bool {
    std::error::Error::source(err)
        .and_then(|inner| inner.downcast_ref::<tungstenite::Error>())
        .is_some_and(|inner| matches!(inner, tungstenite::Error::Capacity(_)))
}
