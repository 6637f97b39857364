//! Handling one event: filter, act by mode, log a line, answer ack or nack.

use std::time::{Duration, Instant};

use lobster_shared::wire::{AgentMessage, EventFrame};
use tokio_util::sync::CancellationToken;

use super::args::Mode;
use super::exec::Executor;
use super::forward::Forwarder;
use super::print::Printer;
use crate::glob::GlobList;
use crate::ui::{Ui, short_duration, timestamp};

/// What became of one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Handled; acked. `status` is what the event line shows (`200 OK`, `exit 0`).
    Done { status: String },
    /// Not for this listener (`--events`, no route); acked so it is not retried.
    Skipped { why: String },
    /// Failed; nacked with this reason, and the relay retries it by its policy.
    Failed { reason: String },
    /// Neither acked nor nacked (stdout is gone); the relay hands it out
    /// again once this session closes.
    Abandoned,
}

impl Outcome {
    /// The answer to send to the relay, if any.
    pub fn reply(&self, id: &str) -> Option<AgentMessage> {
        let id = id.to_owned();
        match self {
            Self::Done { .. } | Self::Skipped { .. } => Some(AgentMessage::Ack { id }),
            Self::Failed { reason } => Some(AgentMessage::Nack {
                id,
                reason: reason.clone(),
            }),
            Self::Abandoned => None,
        }
    }

    /// The status column of the event line.
    fn status(&self) -> String {
        match self {
            Self::Done { status } => status.clone(),
            Self::Skipped { why } => format!("skipped ({why}), acked"),
            Self::Failed { reason } => format!("failed: {reason}, nacked"),
            Self::Abandoned => "not handled".to_owned(),
        }
    }
}

enum Action {
    Print(Printer),
    Forward(Forwarder),
    Exec(Executor),
}

/// Handles events the way the flags asked; shared by all handler tasks.
pub struct Handler {
    filter: Option<GlobList>,
    action: Action,
    ui: Ui,
}

impl Handler {
    /// A handler for `mode`. `stop` is cancelled when stdout closes in print
    /// mode, which ends the listener quietly.
    pub fn new(
        mode: Mode,
        filter: Option<GlobList>,
        ui: Ui,
        stop: CancellationToken,
    ) -> anyhow::Result<Self> {
        let action = match mode {
            Mode::Print => Action::Print(Printer::new(stop)),
            Mode::Forward {
                routes,
                headers,
                timeout,
            } => Action::Forward(Forwarder::new(routes, headers, timeout, ui)?),
            Mode::Exec { command } => Action::Exec(Executor::new(command)),
        };
        Ok(Self { filter, action, ui })
    }

    /// The output settings, for lines about this handler's events.
    pub fn ui(&self) -> Ui {
        self.ui
    }

    /// A line for stderr saying what the listener does with events.
    pub fn describe(&self) -> String {
        match &self.action {
            Action::Print(_) => "Printing events to stdout as JSON lines.".to_owned(),
            Action::Forward(forwarder) => format!("Forwarding events to {}.", forwarder.describe()),
            Action::Exec(executor) => format!("Running `{}` for each event.", executor.command()),
        }
    }

    /// Handles one event, logs its line on stderr, and returns the answer
    /// to send to the relay.
    pub async fn handle(&self, frame: &EventFrame) -> Option<AgentMessage> {
        let started = Instant::now();
        let outcome = match &self.filter {
            Some(filter) if !filter.matches(&frame.event_type) => Outcome::Skipped {
                why: "does not match --events".to_owned(),
            },
            _ => match &self.action {
                Action::Print(printer) => printer.print(frame).await,
                Action::Forward(forwarder) => forwarder.forward(frame).await,
                Action::Exec(executor) => executor.run(frame).await,
            },
        };
        if outcome != Outcome::Abandoned {
            self.ui
                .status(event_line(frame, &outcome, started.elapsed()));
        }
        outcome.reply(&frame.id)
    }
}

/// `time  type  id  status  duration`, with the attempt when it is a retry.
fn event_line(frame: &EventFrame, outcome: &Outcome, took: Duration) -> String {
    let attempt = match frame.attempt {
        0 | 1 => String::new(),
        n => format!(" (attempt {n})"),
    };
    format!(
        "{}  {}  {}{attempt}  {}  {}",
        timestamp(),
        frame.event_type,
        frame.id,
        outcome.status(),
        short_duration(took),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use lobster_shared::wire::BodyEncoding;

    pub(crate) fn frame(event_type: &str) -> EventFrame {
        EventFrame {
            id: "evt_1".into(),
            event_type: event_type.into(),
            received_at: "2026-11-28T12:00:00Z".into(),
            attempt: 2,
            headers: vec![],
            body: "{}".into(),
            body_encoding: BodyEncoding::Utf8,
        }
    }

    #[test]
    fn outcomes_map_to_ack_nack_or_silence() {
        let done = Outcome::Done {
            status: "200 OK".into(),
        };
        assert_eq!(done.reply("e"), Some(AgentMessage::Ack { id: "e".into() }));
        let skipped = Outcome::Skipped {
            why: "no route".into(),
        };
        assert_eq!(
            skipped.reply("e"),
            Some(AgentMessage::Ack { id: "e".into() })
        );
        let failed = Outcome::Failed {
            reason: "HTTP 500".into(),
        };
        assert_eq!(
            failed.reply("e"),
            Some(AgentMessage::Nack {
                id: "e".into(),
                reason: "HTTP 500".into()
            })
        );
        assert_eq!(Outcome::Abandoned.reply("e"), None);
    }

    #[test]
    fn event_lines_show_type_id_attempt_status_and_duration() {
        let line = event_line(
            &frame("message.received"),
            &Outcome::Done {
                status: "200 OK".into(),
            },
            Duration::from_millis(12),
        );
        assert!(
            line.ends_with("  message.received  evt_1 (attempt 2)  200 OK  12ms"),
            "{line}"
        );
    }

    #[tokio::test]
    async fn events_outside_the_filter_are_acked_as_skipped() {
        let filter = GlobList::parse("message.*").ok();
        let handler = Handler::new(
            Mode::Exec {
                command: "exit 1".into(),
            },
            filter,
            Ui::silent(),
            CancellationToken::new(),
        )
        .unwrap();
        let reply = handler.handle(&frame("ping")).await;
        assert_eq!(reply, Some(AgentMessage::Ack { id: "evt_1".into() }));
    }
}
