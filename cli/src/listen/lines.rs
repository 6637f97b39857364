//! The event lines on stderr: `-->` when an event arrives, `<--` with its
//! outcome. Each is a `Display` value written straight into the batch of
//! event lines (or not at all with `-q`), not built as a `String` first.

use std::fmt;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use super::outcome::Outcome;
use crate::agent::frame::Event;
use crate::ui::{clock, paint, printable, took};

/// The `12:00:01` of event lines: [`clock`], worked out once a second
/// rather than twice per event (the time zone lookup and the formatting
/// were a few percent of `listen`'s CPU at thousands of events a second).
#[derive(Default)]
pub struct Clock(Mutex<Option<(u64, String)>>);

impl Clock {
    /// Calls `f` with the current `clock()`.
    pub fn with<R>(&self, f: impl FnOnce(&str) -> R) -> R {
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
/// retry; `now` is [`clock`]'s. Written straight into the batch of event
/// lines (or not at all with `-q`), not built as a `String` first.
pub struct ArrivalLine<'a> {
    pub now: &'a str,
    pub frame: &'a Event,
}

impl fmt::Display for ArrivalLine<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let frame = self.frame;
        write!(
            f,
            "{}  {} {} {}",
            paint(self.now).dim(),
            paint("-->").cyan(),
            paint(printable(&frame.event_type)).bold(),
            printable(&frame.id)
        )?;
        if frame.attempt > 1 {
            write!(f, " (attempt {})", frame.attempt)?;
        }
        Ok(())
    }
}

/// `12:00:01  <-- 200 POST http://localhost:3000/hooks (12 ms) evt_...`:
/// green when acked, red when nacked, yellow when skipped; nothing for
/// [`Outcome::Abandoned`].
pub struct OutcomeLine<'a> {
    pub now: &'a str,
    pub frame: &'a Event,
    pub outcome: &'a Outcome,
    pub elapsed: Duration,
}

impl fmt::Display for OutcomeLine<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}  ", paint(self.now).dim())?;
        let answer = match self.outcome {
            Outcome::Done { status } => {
                write!(
                    f,
                    "{}",
                    paint(format_args!("<-- {}", printable(status))).green()
                )?;
                ""
            }
            Outcome::Failed { reason } => {
                write!(
                    f,
                    "{}",
                    paint(format_args!("<-- {}", printable(reason))).red()
                )?;
                ", nacked"
            }
            Outcome::Skipped { why } => {
                write!(
                    f,
                    "{}",
                    paint(format_args!("<-- skipped: {}", printable(why))).yellow()
                )?;
                ", acked"
            }
            Outcome::Abandoned => return Ok(()),
        };
        write!(
            f,
            " ({}){answer} {}",
            took(self.elapsed),
            paint(printable(&self.frame.id)).dim()
        )
    }
}

/// The arrival line as text (for the tests).
#[cfg(test)]
fn arrival_line(now: &str, frame: &Event) -> String {
    ArrivalLine { now, frame }.to_string()
}

/// The outcome line as text, `None` for [`Outcome::Abandoned`] (for the
/// tests).
#[cfg(test)]
fn outcome_line(now: &str, frame: &Event, outcome: &Outcome, elapsed: Duration) -> Option<String> {
    let line = OutcomeLine {
        now,
        frame,
        outcome,
        elapsed,
    };
    (!matches!(outcome, Outcome::Abandoned)).then(|| line.to_string())
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use super::*;
    use crate::listen::handler::tests::frame;

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
}
