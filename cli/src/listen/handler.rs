//! Handling one event: filter, act by mode, log a line, answer ack or nack.

use std::fmt::Write as _;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use lobster_shared::wire::AgentMessage;
use tokio_util::sync::CancellationToken;

use super::args::Mode;
use super::exec::Executor;
use super::forward::Forwarder;
use super::handled::Handled;
use super::outcome::Outcome;
use super::print::Printer;
use crate::agent::frame::Event;
use crate::glob::GlobList;
use crate::ui::{Ui, clock, paint, printable, took};

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
            self.ui
                .event(self.clock.with(|now| arrival_line(now, frame)));
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
        if !quiet_success
            && let Some(line) = self
                .clock
                .with(|now| outcome_line(now, frame, &outcome, started.elapsed()))
        {
            self.ui.event(line);
        }
        outcome.reply(&frame.id)
    }
}

/// The `12:00:01` of event lines: [`clock`], worked out once a second
/// rather than twice per event (the time zone lookup and the formatting
/// were a few percent of `listen`'s CPU at thousands of events a second).
#[derive(Default)]
struct Clock(Mutex<Option<(u64, String)>>);

impl Clock {
    /// Calls `f` with the current `clock()`.
    fn with<R>(&self, f: impl FnOnce(&str) -> R) -> R {
        let second = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |since| since.as_secs());
        self.at(second, f)
    }

    /// Calls `f` with the text kept for `second` (a Unix time), worked out
    /// again when the second is another.
    fn at<R>(&self, second: u64, f: impl FnOnce(&str) -> R) -> R {
        let mut cached = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let now = match &mut *cached {
            Some((at, now)) if *at == second => &*now,
            // Time zone offsets are whole seconds: the text changes only
            // when the second does.
            slot => &slot.insert((second, clock())).1,
        };
        f(now)
    }
}

/// `12:00:01  --> message.received evt_...`, with the attempt when it is a
/// retry; `now` is [`clock`]'s.
fn arrival_line(now: &str, frame: &Event) -> String {
    let mut line = String::with_capacity(48 + frame.event_type.len() + frame.id.len());
    let _ = write!(
        line,
        "{}  {} {} {}",
        paint(now).dim(),
        paint("-->").cyan(),
        paint(printable(&frame.event_type)).bold(),
        printable(&frame.id)
    );
    if frame.attempt > 1 {
        let _ = write!(line, " (attempt {})", frame.attempt);
    }
    line
}

/// `12:00:01  <-- 200 POST http://localhost:3000/hooks (12 ms) evt_...`:
/// green when acked, red when nacked, yellow when skipped.
fn outcome_line(now: &str, frame: &Event, outcome: &Outcome, elapsed: Duration) -> Option<String> {
    let mut line = String::with_capacity(96 + frame.id.len());
    let _ = write!(line, "{}  ", paint(now).dim());
    let _ = match outcome {
        Outcome::Done { status } => write!(
            line,
            "{}",
            paint(format_args!("<-- {}", printable(status))).green()
        ),
        Outcome::Failed { reason } => write!(
            line,
            "{}",
            paint(format_args!("<-- {}", printable(reason))).red()
        ),
        Outcome::Skipped { why } => write!(
            line,
            "{}",
            paint(format_args!("<-- skipped: {}", printable(why))).yellow()
        ),
        Outcome::Abandoned => return None,
    };
    let answer = match outcome {
        Outcome::Failed { .. } => ", nacked",
        Outcome::Skipped { .. } => ", acked",
        _ => "",
    };
    let _ = write!(
        line,
        " ({}){answer} {}",
        took(elapsed),
        paint(printable(&frame.id)).dim()
    );
    Some(line)
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use super::*;
    use lobster_shared::wire::BodyEncoding;

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

    #[test]
    fn event_lines_show_arrival_then_outcome() {
        let plain = |line: &str| console::strip_ansi_codes(line).to_string();
        let arrival = plain(&arrival_line(&clock(), &frame("message.received")));
        assert!(
            arrival.ends_with("  --> message.received evt_1 (attempt 2)"),
            "{arrival}"
        );
        assert_eq!(arrival.find("  -->"), Some("12:00:01".len()), "{arrival}");
        let done = Outcome::Done {
            status: "200 POST http://localhost:3000/hooks".into(),
        };
        let line =
            plain(&outcome_line(&clock(), &frame("x"), &done, Duration::from_millis(12)).unwrap());
        assert!(
            line.ends_with("  <-- 200 POST http://localhost:3000/hooks (12 ms) evt_1"),
            "{line}"
        );
        let failed = Outcome::Failed {
            reason: "500 POST http://localhost:3000/hooks".into(),
        };
        let line =
            plain(&outcome_line(&clock(), &frame("x"), &failed, Duration::from_millis(3)).unwrap());
        assert!(line.contains("(3 ms), nacked"), "{line}");
        assert_eq!(
            outcome_line(&clock(), &frame("x"), &Outcome::Abandoned, Duration::ZERO),
            None
        );
    }

    #[test]
    fn the_clock_of_event_lines_is_kept_for_its_second_only() {
        let clock_of_lines = Clock::default();
        let before = clock();
        let first = clock_of_lines.with(str::to_owned);
        let after = clock();
        assert!(
            first == before || first == after,
            "{first} {before} {after}"
        );
        // Within one second the kept text is reused; the next second
        // works it out again.
        *clock_of_lines.0.lock().unwrap() = Some((7, "kept".to_owned()));
        assert_eq!(clock_of_lines.at(7, str::to_owned), "kept");
        let fresh = clock_of_lines.at(8, str::to_owned);
        assert_ne!(fresh, "kept");
        assert_eq!(clock_of_lines.at(8, str::to_owned), fresh);
    }

    #[test]
    fn event_lines_escape_what_the_sender_chose() {
        let hostile = "ping\nFORGED 12:00:00  <-- 200\r\u{1b}[2J\u{9b}31m\u{202e}";
        let line = arrival_line(&clock(), &frame(hostile));
        assert!(
            !line.contains(['\n', '\r', '\u{9b}', '\u{202e}']),
            "{line:?}"
        );
        let plain = console::strip_ansi_codes(&line).to_string();
        assert!(!plain.contains('\u{1b}'), "{plain:?}");
        assert!(
            plain.ends_with(
                r"ping\nFORGED 12:00:00  <-- 200\r\u{1b}[2J\u{9b}31m\u{202e} evt_1 (attempt 2)"
            ),
            "{plain:?}"
        );
        let failed = Outcome::Failed {
            reason: "exit 1\nFORGED".into(),
        };
        let line = outcome_line(&clock(), &frame("x"), &failed, Duration::ZERO).unwrap();
        assert!(!line.contains('\n'), "{line:?}");
    }

    #[test]
    fn printable_text_is_kept() {
        for text in [
            "message.received",
            "commande.payée",
            "注文.作成",
            "a\\nb",
            "🦞 tab\tless",
        ] {
            let kept = printable(text);
            if text.contains('\t') {
                assert_eq!(kept, text.replace('\t', "\\t"));
            } else {
                assert!(matches!(kept, Cow::Borrowed(_)), "{text:?} was changed");
            }
        }
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
