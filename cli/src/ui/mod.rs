//! Where output goes: data on stdout, everything else on stderr.
//!
//! Status lines are plain text when stderr is piped or `NO_COLOR` is set,
//! and coloured (through `console`, which checks both) on a terminal. A
//! spinner shows while something is being waited for, on a terminal only
//! and never with `-q`; lines printed meanwhile go above it, so it never
//! garbles them. Writes to stderr ignore errors (there is nowhere left to
//! report them); writes to stdout return them, so a closed pipe can end the
//! program quietly.

mod table;
pub use table::table;

use std::borrow::Cow;
use std::fmt::{Display, Write as _};
use std::io::{self, Write as _};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use console::{StyledObject, style};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::global::GlobalArgs;

/// The spinner slot: `Some` while a spinner turns.
type SpinnerSlot = Arc<Mutex<Option<ProgressBar>>>;

/// How chatty stderr is (`-q`, `-v`) and whether it is a terminal.
#[derive(Debug, Clone)]
pub struct Ui {
    quiet: bool,
    verbose: u8,
    /// Tests only: print nothing at all.
    silent: bool,
    /// `None` when stderr is not a terminal or `-q` was given: no spinner.
    spinner: Option<SpinnerSlot>,
    /// Event lines waiting to be written together; see [`Ui::batch_events`].
    batch: Option<Arc<Mutex<String>>>,
}

/// How long event lines may wait in a batch before they are written.
const BATCH_DELAY: Duration = Duration::from_millis(100);
/// A batch this large is written at once, without waiting for the tick.
const BATCH_BYTES: usize = 32 * 1024;

/// Writes the batched event lines every [`BATCH_DELAY`] until dropped, then
/// writes what is left.
pub struct BatchGuard {
    ui: Ui,
    ticker: Option<tokio::task::JoinHandle<()>>,
}

impl Drop for BatchGuard {
    fn drop(&mut self) {
        if let Some(ticker) = self.ticker.take() {
            ticker.abort();
        }
        self.ui.flush_events();
    }
}

impl Ui {
    /// Output settings from the global flags.
    pub fn new(global: &GlobalArgs) -> Self {
        let spinner = (!global.quiet && console::Term::stderr().is_term())
            .then(|| Arc::new(Mutex::new(None)));
        Self {
            quiet: global.quiet,
            verbose: global.verbose,
            silent: false,
            spinner,
            batch: None,
        }
    }

    /// Settings that print nothing, so test output stays readable.
    #[cfg(test)]
    pub fn silent() -> Self {
        Self {
            quiet: true,
            verbose: 0,
            silent: true,
            spinner: None,
            batch: None,
        }
    }

    /// When stderr is not a terminal (a log file, a pipe, a service
    /// manager), a copy whose [`Ui::event`] lines are written in batches,
    /// at most [`BATCH_DELAY`] late, instead of one write per line: at
    /// thousands of events a second the writes would cost more than the
    /// forwarding. Any other line writes the batch first, so the order
    /// holds. On a terminal, or with `-q`, a plain copy. Needs a runtime.
    pub fn batch_events(&self) -> (Ui, BatchGuard) {
        let mut ui = self.clone();
        if self.quiet || self.silent || console::Term::stderr().is_term() {
            let guard = BatchGuard {
                ui: ui.clone(),
                ticker: None,
            };
            return (ui, guard);
        }
        ui.batch = Some(Arc::new(Mutex::new(String::new())));
        let flusher = ui.clone();
        let ticker = tokio::spawn(async move {
            let mut tick = tokio::time::interval(BATCH_DELAY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                flusher.flush_events();
            }
        });
        let guard = BatchGuard {
            ui: ui.clone(),
            ticker: Some(ticker),
        };
        (ui, guard)
    }

    /// A per-event line (`-->`, `<--`), hidden by `-q`; batched when
    /// [`Ui::batch_events`] made this copy.
    pub fn event(&self, line: impl Display) {
        if self.quiet {
            return;
        }
        let Some(batch) = &self.batch else {
            self.eprint_line(line);
            return;
        };
        let full = {
            let mut batch = batch.lock().unwrap_or_else(PoisonError::into_inner);
            let _ = writeln!(batch, "{line}");
            batch.len() >= BATCH_BYTES
        };
        if full {
            self.flush_events();
        }
    }

    /// Writes the batched event lines now.
    pub fn flush_events(&self) {
        let Some(batch) = &self.batch else { return };
        let mut batch = batch.lock().unwrap_or_else(PoisonError::into_inner);
        if !batch.is_empty() {
            // Under the batch lock, so batches are written in order.
            let _ = io::stderr().lock().write_all(batch.as_bytes());
            batch.clear();
        }
    }

    /// A status line, hidden by `-q`.
    pub fn status(&self, line: impl Display) {
        if !self.quiet {
            self.eprint_line(line);
        }
    }

    /// A line that `-q` does not hide: warnings and what the user must see.
    pub fn always(&self, line: impl Display) {
        if !self.silent {
            self.eprint_line(line);
        }
    }

    /// Detail shown only with `-v`.
    pub fn detail(&self, line: impl Display) {
        if self.verbose > 0 && !self.silent {
            self.eprint_line(line);
        }
    }

    /// True with `-v`.
    pub fn is_verbose(&self) -> bool {
        self.verbose > 0
    }

    /// Starts the spinner with `message`, or changes the message of the one
    /// that turns. Does nothing when stderr is not a terminal.
    pub fn spin(&self, message: impl Into<String>) {
        let Some(slot) = &self.spinner else { return };
        let mut slot = slot.lock().unwrap_or_else(PoisonError::into_inner);
        match slot.as_ref() {
            Some(bar) => bar.set_message(message.into()),
            None => {
                let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
                bar.set_style(
                    ProgressStyle::with_template("{spinner} {msg}")
                        .unwrap_or_else(|_| ProgressStyle::default_spinner())
                        .tick_chars("⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏ "),
                );
                bar.set_message(message.into());
                bar.enable_steady_tick(Duration::from_millis(100));
                *slot = Some(bar);
            }
        }
    }

    /// Stops and clears the spinner, if one turns.
    pub fn stop_spin(&self) {
        if let Some(slot) = &self.spinner
            && let Some(bar) = slot.lock().unwrap_or_else(PoisonError::into_inner).take()
        {
            bar.finish_and_clear();
        }
    }

    fn eprint_line(&self, line: impl Display) {
        self.flush_events();
        // One write per line: stderr is unbuffered, and `writeln!` would
        // write the line and its newline separately.
        let line = format!("{line}\n");
        let write = || {
            let _ = io::stderr().lock().write_all(line.as_bytes());
        };
        match &self.spinner {
            Some(slot) => {
                let slot = slot.lock().unwrap_or_else(PoisonError::into_inner);
                match slot.as_ref() {
                    Some(bar) => bar.suspend(write),
                    None => write(),
                }
            }
            None => write(),
        }
    }
}

/// Text styled for stderr: coloured only when stderr is a terminal and
/// `NO_COLOR` is not set.
pub fn paint<D>(text: D) -> StyledObject<D> {
    style(text).for_stderr()
}

/// Writes one line of data to stdout and flushes it.
pub fn print_data(line: impl Display) -> io::Result<()> {
    let mut stdout = io::stdout().lock();
    writeln!(stdout, "{line}")?;
    stdout.flush()
}

/// Writes bytes to stdout as they are, and flushes.
pub fn print_raw(bytes: &[u8]) -> io::Result<()> {
    let mut stdout = io::stdout().lock();
    stdout.write_all(bytes)?;
    stdout.flush()
}

/// The current UTC time as `2026-11-28T12:00:00Z`.
pub fn timestamp() -> String {
    humantime::format_rfc3339_seconds(SystemTime::now()).to_string()
}

/// The local wall-clock time as `12:00:01`, for event and status lines.
pub fn clock() -> String {
    clock_in(Duration::ZERO)
}

/// The local wall-clock time `after` from now, as `12:00:01`.
pub fn clock_in(after: Duration) -> String {
    let later = SystemTime::now() + after;
    let later = jiff::Timestamp::try_from(later).unwrap_or_else(|_| jiff::Timestamp::now());
    later
        .to_zoned_datetime(jiff::tz::TimeZone::system())
        .strftime("%H:%M:%S")
        .to_string()
}

/// An RFC 3339 time from the relay in local time, `2026-11-28 12:00:01`;
/// the text as it came when it does not parse.
pub fn local_time(rfc3339: &str) -> String {
    match rfc3339.parse::<jiff::Timestamp>() {
        Ok(at) => at
            .to_zoned_datetime(jiff::tz::TimeZone::system())
            .strftime("%Y-%m-%d %H:%M:%S")
            .to_string(),
        Err(_) => rfc3339.to_owned(),
    }
}

/// A short human duration: `12ms`, `1.4s`, `2m05s`.
pub fn short_duration(duration: Duration) -> String {
    let millis = duration.as_millis();
    if millis < 1_000 {
        format!("{millis}ms")
    } else if millis < 60_000 {
        format!("{:.1}s", duration.as_secs_f64())
    } else {
        let secs = duration.as_secs();
        format!("{}m{:02}s", secs / 60, secs % 60)
    }
}

/// A duration for event lines, spaced as people write it: `12 ms`, `1.42 s`.
pub fn took(duration: Duration) -> String {
    let millis = duration.as_millis();
    if millis < 1_000 {
        format!("{millis} ms")
    } else {
        format!("{:.2} s", duration.as_secs_f64())
    }
}

/// `1 event`, `3 events`.
pub fn plural(n: u64, word: &str) -> String {
    if n == 1 {
        format!("1 {word}")
    } else {
        format!("{n} {word}s")
    }
}

/// `text` safe to put on a terminal line: control characters (CR, LF, ESC,
/// C1, DEL) and bidirectional overrides become visible escapes such as `\n`
/// and `\u{1b}`, so a webhook sender, who picks the event type, can neither
/// start a line that looks like ours nor send terminal escape sequences.
/// Printable text, non-ASCII included, is kept as it is.
pub fn printable(text: &str) -> Cow<'_, str> {
    escape_unless(text, |c| !c.is_control() && !is_bidi_control(c))
}

/// Marks and overrides that reorder what a terminal shows (U+200E, U+200F,
/// U+202A to U+202E, U+2066 to U+2069).
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// As [`printable`], but keeps line feeds and tabs: for a multi-line text
/// (a webhook body) shown as such. Carriage returns, escape sequences and
/// the rest are still made visible.
pub fn printable_multiline(text: &str) -> Cow<'_, str> {
    escape_unless(text, |c| {
        matches!(c, '\n' | '\t') || (!c.is_control() && !is_bidi_control(c))
    })
}

/// `text` with every character `keep` refuses written as its escape.
fn escape_unless(text: &str, keep: impl Fn(char) -> bool) -> Cow<'_, str> {
    if text.chars().all(&keep) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if keep(c) {
            out.push(c);
        } else {
            out.extend(c.escape_default());
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_are_short() {
        assert_eq!(short_duration(Duration::from_millis(12)), "12ms");
        assert_eq!(short_duration(Duration::from_millis(1_440)), "1.4s");
        assert_eq!(short_duration(Duration::from_secs(125)), "2m05s");
        assert_eq!(took(Duration::from_millis(12)), "12 ms");
        assert_eq!(took(Duration::from_millis(1_420)), "1.42 s");
    }

    #[test]
    fn timestamps_are_utc_seconds_and_clocks_are_hh_mm_ss() {
        let now = timestamp();
        assert_eq!(now.len(), 20, "{now}");
        assert!(now.ends_with('Z'));
        let clock = clock();
        assert_eq!(clock.len(), 8, "{clock}");
        assert_eq!(clock.matches(':').count(), 2, "{clock}");
        assert_eq!(clock_in(Duration::from_secs(3)).len(), 8);
    }

    #[test]
    fn relay_times_become_local_and_garbage_stays() {
        let local = local_time("2026-11-28T12:00:01Z");
        assert_eq!(local.len(), 19, "{local}");
        assert!(local.starts_with("2026-11-2"), "{local}");
        assert_eq!(local_time("yesterday"), "yesterday");
    }

    #[test]
    fn plurals() {
        assert_eq!(plural(1, "event"), "1 event");
        assert_eq!(plural(0, "event"), "0 events");
        assert_eq!(plural(3, "event"), "3 events");
    }
}
