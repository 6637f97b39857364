//! `GET /api/v1/agent/connect`: one agent session over a WebSocket.
//!
//! The session loop reads the agent's frames as [`Inbound`] values, leases
//! events from the store up to `max_in_flight`,
//! pushes them, and applies acks and nacks. The loop looks for work when the
//! hub says an event was stored, when capacity frees up, when a retry or an
//! expired lease comes due, and never otherwise.

use std::collections::HashMap;
use std::time::Duration;

use axum::extract::ws::{
    CloseFrame, Message, WebSocket, WebSocketUpgrade, rejection::WebSocketUpgradeRejection,
};
use axum::extract::{Query, State};
use axum::response::Response;
use bytes::Bytes;
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{FutureExt as _, SinkExt, StreamExt};
use lobster_shared::ids;
use lobster_shared::wire::{
    AgentMessage, ErrorFrame, EventFrame, PROTOCOL_VERSION, Ready, RelayMessage, close_code,
};
use serde::Deserialize;
use tokio::time::{Instant, sleep_until};
use tracing::Instrument as _;

use crate::api::{ApiError, AppState, AuthedAgent, rfc3339};
use crate::store::push::Port;
use crate::store::{Agent, ClaimRequest, Delivery, Millis, now_ms};

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
/// session's memory.
const READ_BUFFER: usize = 1024;
/// How long to wait before asking a failing store again.
const STORE_RETRY: Duration = Duration::from_secs(1);
/// How long the echo of an agent's Close frame may take to send.
const CLOSE_ECHO_WAIT: Duration = Duration::from_secs(1);
/// Most acks stored in one write.
const ACK_BATCH: usize = 256;
/// Most queued agent frames handled before the loop looks at its other work.
const MAX_DRAIN: usize = 1024;
/// Most pushed events sent in one flush.
const MAX_PUSH_BATCH: usize = 256;

#[derive(Deserialize)]
pub struct ConnectParams {
    events: Option<String>,
}

pub async fn connect(
    State(state): State<AppState>,
    AuthedAgent(agent): AuthedAgent,
    Query(params): Query<ConnectParams>,
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
        return Err(ApiError::new(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "relay_restarting",
            "the relay is shutting down; reconnect in a moment",
        ));
    }
    let write_limit = state.config.max_body * 2 + 1024 * 1024;
    let sessions = state.sessions.clone();
    Ok(upgrade
        .read_buffer_size(READ_BUFFER)
        .max_message_size(MAX_AGENT_FRAME)
        .max_frame_size(MAX_AGENT_FRAME)
        .max_write_buffer_size(write_limit)
        .on_upgrade(move |socket| {
            // Everything is built here, outside the task's future: an async
            // fn keeps a copy of each argument moved into it, so every level
            // of nesting would add the session's state again to the memory
            // an idle agent costs.
            let session_id = ids::session_id();
            let span = tracing::info_span!("session", agent_id = %agent.agent_id, session_id = %session_id);
            let session = Session::new(state, agent, session_id, patterns);
            let (sink, stream) = socket.split();
            // The socket holds its --max-connections slot while it lives.
            sessions.track_future(session.run(sink, stream, slot).instrument(span))
        }))
}

/// Validates `?events=` globs: `*` and `?` wildcards over a safe alphabet.
pub fn parse_patterns(text: &str) -> Result<Vec<String>, ApiError> {
    let patterns: Vec<String> = text
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(str::to_owned)
        .collect();
    let valid = |p: &String| {
        p.len() <= 200
            && p.chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-:/*?".contains(c))
    };
    if patterns.len() > 32 || !patterns.iter().all(valid) {
        return Err(ApiError::bad_request(
            "invalid_events_filter",
            "events must be up to 32 comma-separated patterns of letters, digits, . _ - : / and the wildcards * ?",
        ));
    }
    Ok(patterns)
}

/// What the reader task reports to the session loop.
enum Inbound {
    Message(AgentMessage),
    Violation(String),
    /// The agent sent a Close frame: answer it (RFC 6455 5.5.1).
    Closed,
    Gone(String),
}

type Sink = SplitSink<WebSocket, Message>;
type Stream = SplitStream<WebSocket>;

/// How a session ended.
enum Ending {
    Revoked,
    Shutdown,
    Violation(String),
    /// The agent closed: its Close frame is echoed before the socket goes.
    ClosedByAgent,
    Gone(String),
}

struct Session {
    state: AppState,
    agent: Agent,
    session_id: String,
    patterns: Vec<String>,
    /// Event id -> when its lease runs out.
    in_flight: HashMap<String, Instant>,
    /// Free delivery slots, and where new events arrive straight from
    /// their commit (see `store::push`).
    port: std::sync::Arc<Port>,
    acks: Vec<String>,
}

impl Session {
    /// The session from its first frame to its last; `slot` (the socket's
    /// `--max-connections` slot) is held until then.
    async fn run<T>(mut self, mut sink: Sink, mut stream: Stream, slot: T) {
        tracing::info!("session opened");
        crate::metrics::session_opened();
        let ending = self.serve(&mut sink, &mut stream).await;
        // Boxed: the goodbye is only needed once, so an idle session's
        // future need not be as large as it.
        Box::pin(self.finish(&mut sink, ending)).await;
        crate::metrics::session_closed();
        drop(slot);
    }

    fn new(state: AppState, agent: Agent, session_id: String, patterns: Vec<String>) -> Self {
        let port = Port::new(
            &session_id,
            !patterns.is_empty(),
            state.config.ack_timeout.as_millis() as Millis,
            state.config.max_in_flight as usize,
        );
        Session {
            state,
            agent,
            session_id,
            patterns,
            in_flight: HashMap::new(),
            port,
            acks: Vec::new(),
        }
    }

    /// Frames are read here rather than in a task of their own: one task and
    /// no channel per session keeps an idle agent's footprint small.
    async fn serve(&mut self, sink: &mut Sink, stream: &mut Stream) -> Ending {
        let registration = self
            .state
            .bus
            .hub()
            .register(&self.agent.agent_id, &self.session_id);
        let mut wake = registration.wake.clone();
        let port = self.port.clone();
        if let Some(ports) = self.state.store.ports() {
            ports.attach(&self.agent.agent_id, self.port.clone());
        }
        self.touch();
        // On a shared store a wake-up can be lost (another instance, Redis
        // down): look again on this timer. Never fires on SQLite.
        let rescan_every = self.state.config.rescan;
        let mut rescan = tokio::time::interval(rescan_every.unwrap_or(Duration::from_secs(3600)));
        rescan.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        if let Err(reason) = self.send(sink, &self.ready()).await {
            return Ending::Gone(reason);
        }
        let mut ping = tokio::time::interval_at(Instant::now() + PING_EVERY, PING_EVERY);
        let mut want_work = true;
        let mut next_due: Option<Instant> = None;
        let mut last_heard = Instant::now();
        loop {
            if want_work && self.port.free() > 0 {
                wake.borrow_and_update();
                match self.lease_and_push(sink).await {
                    Ok((more, due)) => (want_work, next_due) = (more, due),
                    Err(LeaseError::Store) => {
                        (want_work, next_due) = (false, Some(Instant::now() + STORE_RETRY))
                    }
                    Err(LeaseError::Socket(reason)) => return Ending::Gone(reason),
                }
            }
            let lease_deadline = self.in_flight.values().min().copied();
            tokio::select! {
                _ = registration.revoked.cancelled() => return Ending::Revoked,
                _ = self.state.shutdown.cancelled() => return Ending::Shutdown,
                frame = stream.next() => {
                    last_heard = Instant::now();
                    // Take every answer already here before leasing again, so
                    // one lease fills all the slots they freed (one store
                    // round trip per batch of acks, not per ack).
                    let mut next = Some(frame);
                    for _ in 0..MAX_DRAIN {
                        let Some(frame) = next else { break };
                        match Inbound::from_frame(frame) {
                            Some(Inbound::Message(message)) => {
                                want_work |= self.apply(message).await;
                                if self.acks.len() >= ACK_BATCH {
                                    self.flush_acks();
                                }
                            }
                            Some(Inbound::Violation(reason)) => return Ending::Violation(reason),
                            Some(Inbound::Closed) => return Ending::ClosedByAgent,
                            Some(Inbound::Gone(reason)) => return Ending::Gone(reason),
                            None => {}
                        }
                        next = stream.next().now_or_never();
                    }
                    self.flush_acks();
                }
                batch = port.pushed(MAX_PUSH_BATCH) => {
                    if let Err(reason) = self.send_events(sink, batch).await {
                        return Ending::Gone(reason);
                    }
                }
                Ok(()) = wake.changed() => want_work = true,
                _ = rescan.tick(), if rescan_every.is_some() => want_work = true,
                _ = sleep_until(next_due.unwrap_or_else(Instant::now)), if next_due.is_some() => {
                    (want_work, next_due) = (true, None);
                }
                _ = sleep_until(lease_deadline.unwrap_or_else(Instant::now)), if lease_deadline.is_some() => {
                    let now = Instant::now();
                    let before = self.in_flight.len();
                    self.in_flight.retain(|_, until| *until > now);
                    let expired = before - self.in_flight.len();
                    for _ in 0..expired {
                        crate::metrics::event_ack_timeout();
                    }
                    self.port.give_back(expired);
                    want_work = true;
                }
                _ = ping.tick() => {
                    if last_heard.elapsed() >= IDLE_LIMIT {
                        return Ending::Gone(format!("no frame, ping or pong for {} s", IDLE_LIMIT.as_secs()));
                    }
                    if let Err(e) = sink.send(Message::Ping(Bytes::new())).await {
                        return Ending::Gone(format!("ping failed: {e}"));
                    }
                }
            }
        }
    }

    fn ready(&self) -> RelayMessage {
        RelayMessage::Ready(Ready {
            session_id: self.session_id.clone(),
            agent_id: self.agent.agent_id.clone(),
            relay_id: self.agent.relay_id.clone(),
            webhook_url: self.state.webhook_url(&self.agent.relay_id),
            max_in_flight: self.state.config.max_in_flight,
            ack_timeout_ms: self.state.config.ack_timeout.as_millis() as u64,
            protocol: PROTOCOL_VERSION,
        })
    }

    /// Leases what is due into the free slots and sends it. Returns whether
    /// more may be waiting right now, and when something else comes due.
    async fn lease_and_push(
        &mut self,
        sink: &mut Sink,
    ) -> Result<(bool, Option<Instant>), LeaseError> {
        let ack_timeout = self.state.config.ack_timeout;
        let claim = self
            .state
            .store
            .claim(ClaimRequest {
                agent_id: self.agent.agent_id.clone(),
                session_id: self.session_id.clone(),
                limit: 0,
                lease_ms: ack_timeout.as_millis() as Millis,
                patterns: self.patterns.clone(),
                port: Some(self.port.clone()),
            })
            .await
            .map_err(|err| {
                tracing::warn!(error = %err, "cannot lease events; retrying");
                LeaseError::Store
            })?;
        let more = claim.more;
        let due = claim.next_due.map(|at| {
            let wait = Duration::from_millis((at - now_ms()).max(0) as u64);
            Instant::now() + wait
        });
        self.send_events(sink, claim.deliveries)
            .await
            .map_err(LeaseError::Socket)?;
        Ok((more, due))
    }

    /// Sends leased events (their slots are taken) as event frames.
    async fn send_events(
        &mut self,
        sink: &mut Sink,
        deliveries: Vec<Delivery>,
    ) -> Result<(), String> {
        if deliveries.is_empty() {
            return Ok(());
        }
        let deadline = Instant::now() + self.state.config.ack_timeout;
        for delivery in deliveries {
            self.in_flight.insert(delivery.id.clone(), deadline);
            crate::metrics::event_delivered();
            let frame = event_frame(delivery).to_json();
            sink.feed(Message::Text(frame.into()))
                .await
                .map_err(|e| e.to_string())?;
        }
        sink.flush().await.map_err(|e| e.to_string())
    }

    /// Applies an ack or nack; returns whether capacity was freed. Acks are
    /// batched and not awaited (a lost ack only means a redelivery); a nack
    /// is awaited so that the next lease sees its retry time.
    async fn apply(&mut self, message: AgentMessage) -> bool {
        match message {
            AgentMessage::Ack { id } => {
                crate::metrics::event_acked();
                let freed = self.in_flight.remove(&id).is_some();
                self.acks.push(id);
                if freed {
                    self.port.give_back(1);
                }
                // A caught-up session gets new events pushed into the slot;
                // only one that may have events waiting in the store asks.
                freed && !self.port.is_caught_up()
            }
            AgentMessage::Nack { id, reason } => {
                crate::metrics::event_nacked();
                let freed = self.in_flight.remove(&id).is_some();
                if freed {
                    self.port.give_back(1);
                }
                tracing::debug!(event_id = %id, reason = ?reason, "nack");
                self.flush_acks();
                let nack =
                    self.state
                        .store
                        .nack(&self.agent.agent_id, &self.session_id, &id, &reason);
                log_failure(nack, "nack").await;
                freed
            }
        }
    }

    /// Records `last_seen` in the background.
    fn touch(&self) {
        let touch = self.state.store.touch_agent(&self.agent.agent_id);
        self.state.sessions.spawn(log_failure(touch, "last seen"));
    }

    fn flush_acks(&mut self) {
        if self.acks.is_empty() {
            return;
        }
        let ids = std::mem::take(&mut self.acks);
        let ack = self
            .state
            .store
            .ack(&self.agent.agent_id, &self.session_id, ids);
        self.state.sessions.spawn(log_failure(ack, "ack"));
    }

    async fn send(&self, sink: &mut Sink, message: &RelayMessage) -> Result<(), String> {
        sink.send(Message::Text(message.to_json().into()))
            .await
            .map_err(|e| e.to_string())
    }

    /// Says goodbye with the right close code, then hands leased events back.
    async fn finish(mut self, sink: &mut Sink, ending: Ending) {
        let close = match &ending {
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
                let message = match &ending {
                    Ending::Violation(detail) => detail.clone(),
                    _ => reason.to_owned(),
                };
                let frame = RelayMessage::Error(ErrorFrame {
                    code: error_code.into(),
                    message,
                });
                let _ = self.send(sink, &frame).await;
            }
            let _ = sink
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
            let _ = tokio::time::timeout(CLOSE_ECHO_WAIT, sink.close()).await;
        }
        match &ending {
            Ending::Violation(detail) | Ending::Gone(detail) => {
                tracing::info!(reason = ?detail, "session closed")
            }
            Ending::ClosedByAgent => tracing::info!("session closed by the agent"),
            Ending::Revoked => tracing::info!("session closed: agent revoked"),
            Ending::Shutdown => tracing::info!("session closed: relay shutting down"),
        }
        self.flush_acks();
        // Before the release: no insert may lease to this session after it.
        if let Some(ports) = self.state.store.ports() {
            ports.detach(&self.agent.agent_id, &self.session_id);
        }
        self.port.close();
        let release = self
            .state
            .store
            .release(&self.agent.agent_id, &self.session_id);
        self.touch();
        if let Err(err) = release.await {
            tracing::warn!(error = %err, "could not release leases; they return when the ack timeout passes");
        }
    }
}

enum LeaseError {
    Store,
    Socket(String),
}

async fn log_failure(
    job: impl Future<Output = Result<(), crate::store::StoreError>>,
    what: &'static str,
) {
    if let Err(err) = job.await {
        tracing::warn!(error = %err, "{what} not stored; the event will be delivered again");
    }
}

fn event_frame(d: Delivery) -> RelayMessage {
    let (body, body_encoding) = EventFrame::encode_body(&d.body);
    RelayMessage::Event(EventFrame {
        id: d.id,
        event_type: d.event_type,
        received_at: rfc3339(d.received_at),
        attempt: d.attempt,
        headers: d.headers,
        body,
        body_encoding,
        replay: d.replay,
    })
}

impl Inbound {
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
}

/// Whether the socket refused a frame or message over its size limit.
fn is_too_large(err: &axum::Error) -> bool {
    std::error::Error::source(err)
        .and_then(|inner| inner.downcast_ref::<tungstenite::Error>())
        .is_some_and(|inner| matches!(inner, tungstenite::Error::Capacity(_)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_filters_accept_globs_and_refuse_glob_classes() {
        assert_eq!(
            parse_patterns("message.*, ping").unwrap(),
            vec!["message.*", "ping"]
        );
        assert!(parse_patterns("").unwrap().is_empty());
        assert!(parse_patterns("a[bc]").is_err());
        assert!(parse_patterns("drop table;").is_err());
        assert!(parse_patterns(&vec!["a"; 33].join(",")).is_err());
    }
}
