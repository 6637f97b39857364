//! One session: the WebSocket's `ready` handshake, then the reader loop,
//! whatever the transport (see `transport`).
//!
//! After `ready` the link's sink runs as a task of its own (the
//! WebSocket's `writer`, or the HTTP acks), a dispatcher starts handlers
//! (`dispatch`), and this loop reads what the relay sends, hands events
//! over, and watches liveness and Ctrl-C. On Ctrl-C it stops handing events over (later ones are left
//! unanswered), waits for the handlers already running and for their
//! answers to be queued, then closes with 1000 and waits briefly for the
//! relay's close.

use std::time::Duration;

use lobster_shared::wire::{Ready, RelayMessage};
use tokio::sync::mpsc;
use tokio::time::{Instant, sleep_until};
use tokio_util::sync::CancellationToken;

use super::dispatch::Dispatch;
use crate::agent::check_protocol;
use crate::agent::close::{SessionEnd, on_close};
use crate::agent::transport::{Incoming, LIVENESS, Link};
use crate::agent::writer::Outgoing;
use crate::ui::{Ui, clock, paint, plural, printable, short_duration};

/// How long to wait for the relay's close after ours.
const CLOSE_WAIT: Duration = Duration::from_secs(5);
/// Answers waiting for the writer.
const OUTGOING_QUEUE: usize = 256;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Phase {
    Running,
    Draining,
    Closing,
}

/// What a session knows from before it connected.
#[derive(Debug, Clone, Copy, Default)]
pub struct SessionInfo {
    /// When the previous ready session dropped; `None` on the first connect.
    pub offline_since: Option<Instant>,
    /// The agent's queue as `GET /api/v1/agent/me` saw it just before
    /// connecting, when the relay answered.
    pub backlog: Option<Backlog>,
}

/// Queued events and other live sessions of this agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backlog {
    pub pending_events: u64,
    pub online_sessions: u64,
}

/// Runs one open session until it ends.
pub async fn run(link: Link, dispatch: &Dispatch, ui: &Ui, info: SessionInfo) -> SessionEnd {
    if let Err(err) = check_protocol(&link.ready) {
        return SessionEnd::Fatal(err);
    }
    let ready_at = Instant::now();
    ui.stop_spin();
    let filter = dispatch.handler.filter_text();
    let mut lines = ready_lines(&link.ready, info, filter.as_deref()).into_iter();
    let via = link.via();
    if info.offline_since.is_none() {
        // The Ready line shows even with -q: it is the one thing a listener
        // must know.
        if let Some(ready_line) = lines.next() {
            ui.always(format!("{ready_line}{via}"));
        }
        ui.status(dispatch.handler.describe());
    } else if let Some(reconnected) = lines.next() {
        ui.status(format!("{reconnected}{via}"));
    }
    lines.for_each(|line| ui.status(line));
    let ready = &link.ready;
    ui.detail(format!(
        "session {} over {} (agent {}, at most {} events in flight, ack timeout {}ms)",
        ready.session_id,
        link.transport.name(),
        ready.agent_id,
        ready.max_in_flight,
        ready.ack_timeout_ms
    ));

    let end = read_loop(link, dispatch, ui).await;
    match end {
        SessionEnd::Dropped {
            reason,
            up_for: None,
            restarting,
        } => SessionEnd::Dropped {
            reason,
            up_for: Some(ready_at.elapsed()),
            restarting,
        },
        other => other,
    }
}

/// The lines that say the listener is connected, and what is arriving.
fn ready_lines(ready: &Ready, info: SessionInfo, filter: Option<&str>) -> Vec<String> {
    let mut lines = Vec::new();
    let pending = info.backlog.map(|b| b.pending_events);
    // The relay counts the agent's whole queue; with a filter only part of
    // it is for this listener.
    let queued = |n: u64| {
        let (events, verb) = (plural(n, "event"), if n == 1 { "is" } else { "are" });
        match filter {
            None => format!("{events} queued for this agent {verb} being delivered now"),
            Some(_) => {
                format!("{events} {verb} queued; those matching the filter are delivered now")
            }
        }
    };
    match info.offline_since {
        None => {
            lines.push(format!(
                "{} {}",
                paint("Ready! Your webhook URL is").green().bold(),
                ready.webhook_url
            ));
            if let Some(filter) = filter {
                lines.push(format!(
                    "Only events matching {} are handled here (--events); the others stay queued for another listener.",
                    printable(filter)
                ));
            }
            if let Some(n) = pending.filter(|n| *n > 0) {
                lines.push(format!("{} (retries when due).", queued(n)));
            }
            if let Some(others) = info.backlog.map(|b| b.online_sessions).filter(|n| *n > 0) {
                lines.push(format!(
                    "Note: {} of this agent {} connected too; events are shared between them.",
                    plural(others, "other listener"),
                    if others == 1 { "is" } else { "are" }
                ));
            }
        }
        Some(since) => {
            let queued = match pending {
                Some(0) => " Nothing was queued meanwhile.".to_owned(),
                Some(n) => format!(" {}.", queued(n)),
                None => String::new(),
            };
            lines.push(format!(
                "{}  {} after {} offline.{queued}",
                paint(clock()).dim(),
                paint("Reconnected").green().bold(),
                short_duration(since.elapsed())
            ));
        }
    }
    lines
}

/// Reads frames after `ready` until the session ends.
async fn read_loop(link: Link, dispatch: &Dispatch, ui: &Ui) -> SessionEnd {
    let Link {
        mut source, sink, ..
    } = link;
    let awaits_close = source.awaits_close();
    let session = CancellationToken::new();
    // Ends the writer and the dispatcher whichever way this function returns.
    let _session_guard = session.clone().drop_guard();
    let (outgoing, outgoing_rx) = mpsc::channel(OUTGOING_QUEUE);
    let mut writer = tokio::spawn(sink.run(outgoing_rx, session.clone()));
    let (events, events_rx) = mpsc::unbounded_channel();
    let mut events = Some(events);
    // On the tracker: after the session, it still finishes the handlers it
    // started, and Ctrl-C waits for that.
    let dispatcher = dispatch.tracker.spawn(dispatch.clone().run(
        events_rx,
        outgoing.clone(),
        session.clone(),
    ));
    let tracker = dispatch.tracker.clone();
    let drained = async move {
        let _ = dispatcher.await;
        tracker.close();
        tracker.wait().await;
    };
    tokio::pin!(drained);

    let mut phase = Phase::Running;
    let mut last_heard = Instant::now();
    let mut close_by = Instant::now();
    let mut last_error = None;
    let end = loop {
        tokio::select! {
            () = dispatch.stop.cancelled(), if phase == Phase::Running => {
                phase = Phase::Draining;
                events = None;
            }
            () = &mut drained, if phase == Phase::Draining => {
                let _ = outgoing.send(Outgoing::Close).await;
                phase = Phase::Closing;
                close_by = Instant::now() + CLOSE_WAIT;
            }
            () = sleep_until(close_by), if phase == Phase::Closing => break SessionEnd::Stopped,
            // Over HTTP the session is over once the last answers are sent.
            _ = &mut writer, if phase == Phase::Closing && !awaits_close => {
                break SessionEnd::Stopped;
            }
            // Over HTTP, nothing more is read once stopping: what the relay
            // would send now is not handled, so it is not asked for.
            () = sleep_until(last_heard + LIVENESS), if phase == Phase::Running || awaits_close => {
                break SessionEnd::failed("heard nothing from the relay for 60s");
            }
            () = session.cancelled() => {
                let reason = match (&mut writer).await {
                    Ok(Err(reason)) => reason,
                    _ => "the connection was lost".to_owned(),
                };
                break SessionEnd::failed(reason);
            }
            next = source.next(), if phase == Phase::Running || awaits_close => {
                last_heard = Instant::now();
                match next {
                    Incoming::Lost(reason) => break SessionEnd::failed(reason),
                    Incoming::Closed(frame) => break on_close(frame.as_ref(), last_error.as_ref()),
                    Incoming::Message(RelayMessage::Event(frame)) => match &events {
                        Some(events) => {
                            let _ = events.send(frame);
                        }
                        None => ui.detail(format!("not handling {}: stopping", frame.id)),
                    },
                    Incoming::Message(RelayMessage::Error(error)) => {
                        ui.detail(format!("relay error {}: {}", error.code, error.message));
                        last_error = Some(error);
                    }
                    Incoming::Message(RelayMessage::Ready(_)) => ui.detail("ignoring a second ready frame"),
                    Incoming::Unreadable(err) => {
                        ui.detail(format!("ignoring a frame this version does not know: {err}"));
                    }
                    Incoming::Alive => {}
                }
            }
        }
    };
    // At once: events received but not started must not start now. The
    // relay hands them out again, so starting them would deliver twice.
    session.cancel();
    match end {
        // Once Ctrl-C came, a lost connection ends the listener too.
        SessionEnd::Dropped { .. } if phase != Phase::Running => SessionEnd::Stopped,
        other => other,
    }
}
