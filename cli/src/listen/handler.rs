//! Handling one event: filter, act by mode, log a line, answer ack or nack.

use std::time::Instant;

use lobster_shared::wire::AgentMessage;
use tokio_util::sync::CancellationToken;

use super::args::Mode;
use super::exec::Executor;
use super::forward::Forwarder;
use super::handled::Handled;
use super::lines::{ArrivalLine, Clock, OutcomeLine};
use super::outcome::Outcome;
use super::print::Printer;
use crate::agent::frame::Event;
use crate::glob::GlobList;
use crate::ui::Ui;

enum Action {
    Print(Printer),
    // Boxed: the HTTP clients make it ten times the size of the others.
    Forward(Box<Forwarder>),
    Exec(Executor),
}

/// Handles events the way the flags asked; shared by all handler tasks.
pub struct Handler {
    filter: Option<GlobList>,
    action: Action,
    ui: Ui,
    /// Ids handled successfully: a redelivery of one is acked, not redone.
    handled: Handled,
    clock: Clock,
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
                insecure,
            } => Action::Forward(Box::new(Forwarder::new(
                routes,
                headers,
                timeout,
                insecure,
                ui.clone(),
            )?)),
            Mode::Exec { command } => Action::Exec(Executor::new(command)),
        };
        Ok(Self {
            filter,
            action,
            ui,
            handled: Handled::default(),
            clock: Clock::default(),
        })
    }

    /// The output settings, for lines about this handler's events.
    pub fn ui(&self) -> &Ui {
        &self.ui
    }

    /// A line for stderr saying what the listener does with events.
    pub fn describe(&self) -> String {
        match &self.action {
            Action::Print(_) => "Printing events to stdout as JSON lines.".to_owned(),
            Action::Forward(forwarder) => format!("Forwarding events to {}.", forwarder.describe()),
            Action::Exec(executor) => format!("Running `{}` for each event.", executor.command()),
        }
    }

    /// The active `--events` filter (from the flag or config.toml), as typed.
    pub fn filter_text(&self) -> Option<String> {
        self.filter.as_ref().map(GlobList::to_query)
    }

    /// True when the event is one this listener handles (`--events`).
    fn wants(&self, frame: &Event) -> bool {
        self.filter
            .as_ref()
            .is_none_or(|filter| filter.matches(&frame.event_type))
    }

    /// Logs the `-->` line of an event about to be handled. The dispatcher
    /// calls it in arrival order, before the handler task starts, so the
    /// lines keep the relay's order whatever the concurrency.
    pub fn announce(&self, frame: &Event) {
        if self.wants(frame) {
            self.clock
                .with(|now| self.ui.event(ArrivalLine { now, frame }));
        }
    }

    /// Handles one event, logs its `<--` line on stderr, and returns the
    /// answer to send to the relay.
    pub async fn handle(&self, frame: &Event) -> Option<AgentMessage> {
        let started = Instant::now();
        let outcome = if !frame.replay && self.handled.contains(&frame.id) {
            // Handled already (its ack was lost, or the relay gave up waiting
            // for it): ack again without handing it on a second time.
            Outcome::Skipped {
                why: "already handled by this listener".to_owned(),
            }
        } else if !self.wants(frame) {
            Outcome::Skipped {
                why: "does not match --events".to_owned(),
            }
        } else {
            match &self.action {
                Action::Print(printer) => printer.print(frame).await,
                Action::Forward(forwarder) => forwarder.forward(frame).await,
                Action::Exec(executor) => executor.run(frame).await,
            }
        };
        if matches!(outcome, Outcome::Done { .. }) {
            self.handled.remember(&frame.id);
        }
        // In print mode the event itself is on stdout; say only what went wrong.
        let quiet_success =
            matches!(self.action, Action::Print(_)) && matches!(outcome, Outcome::Done { .. });
        if !quiet_success && !matches!(outcome, Outcome::Abandoned) {
            let elapsed = started.elapsed();
            self.clock.with(|now| {
                self.ui.event(OutcomeLine {
                    now,
                    frame,
                    outcome: &outcome,
                    elapsed,
                });
            });
        }
        outcome.reply(&frame.id)
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use lobster_shared::wire::BodyEncoding;

    /// An event frame of `event_type`, for tests here and in `lines.rs`.
    pub(crate) fn frame(event_type: &str) -> Event {
        Event {
            id: "evt_1".into(),
            event_type: event_type.into(),
            received_at: "2026-11-28T12:00:00Z".into(),
            attempt: 2,
            headers: vec![],
            body: "{}".into(),
            body_encoding: BodyEncoding::Utf8,
            replay: false,
        }
    }

    /// A redelivery of an event this listener handled is acked without
    /// running the command again; an explicit replay runs it again.
    #[tokio::test]
    async fn a_handled_event_is_acked_not_redone_unless_replayed() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("runs");
        let mode = Mode::Exec {
            command: format!("echo run >> '{}'", log.display()),
        };
        let handler = Handler::new(mode, None, Ui::silent(), CancellationToken::new()).unwrap();
        let runs = || {
            std::fs::read_to_string(&log)
                .unwrap_or_default()
                .lines()
                .count()
        };
        let ack = Some(AgentMessage::Ack { id: "evt_1".into() });

        let event = frame("message.received");
        assert_eq!(handler.handle(&event).await, ack);
        assert_eq!(handler.handle(&event).await, ack, "the redelivery is acked");
        assert_eq!(runs(), 1, "but not handed on again");

        let replay = Event {
            replay: true,
            ..event.clone()
        };
        assert_eq!(handler.handle(&replay).await, ack);
        assert_eq!(runs(), 2, "an explicit replay is handled again");

        let failing = Handler::new(
            Mode::Exec {
                command: format!("echo run >> '{}'; exit 1", log.display()),
            },
            None,
            Ui::silent(),
            CancellationToken::new(),
        )
        .unwrap();
        for _ in 0..2 {
            let answer = failing.handle(&event).await;
            assert!(
                matches!(answer, Some(AgentMessage::Nack { .. })),
                "{answer:?}"
            );
        }
        assert_eq!(
            runs(),
            4,
            "a failed event is not remembered: each retry runs"
        );
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
