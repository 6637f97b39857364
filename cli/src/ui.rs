//! Where output goes: data on stdout, everything else on stderr.
//!
//! Lines are plain text, never ANSI codes, so they read the same in a
//! terminal, a log file or a CI job. Writes to stderr ignore errors (there
//! is nowhere left to report them); writes to stdout return them, so a
//! closed pipe can end the program quietly.

use std::fmt::Display;
use std::io::{self, Write as _};
use std::time::{Duration, SystemTime};

use crate::cli::GlobalArgs;

/// How chatty stderr is, from `-q` and `-v`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ui {
    quiet: bool,
    verbose: u8,
    /// Tests only: print nothing at all.
    silent: bool,
}

impl Ui {
    /// Output settings from the global flags.
    pub fn new(global: &GlobalArgs) -> Self {
        Self {
            quiet: global.quiet,
            verbose: global.verbose,
            silent: false,
        }
    }

    /// Settings that print nothing, so test output stays readable.
    #[cfg(test)]
    pub fn silent() -> Self {
        Self {
            quiet: true,
            verbose: 0,
            silent: true,
        }
    }

    /// A status line, hidden by `-q`.
    pub fn status(&self, line: impl Display) {
        if !self.quiet {
            eprint_line(line);
        }
    }

    /// A line that `-q` does not hide: warnings and what the user must see.
    pub fn always(&self, line: impl Display) {
        if !self.silent {
            eprint_line(line);
        }
    }

    /// Detail shown only with `-v`.
    pub fn detail(&self, line: impl Display) {
        if self.verbose > 0 {
            eprint_line(line);
        }
    }
}

fn eprint_line(line: impl Display) {
    let _ = writeln!(io::stderr().lock(), "{line}");
}

/// Writes one line of data to stdout and flushes it.
pub fn print_data(line: impl Display) -> io::Result<()> {
    let mut stdout = io::stdout().lock();
    writeln!(stdout, "{line}")?;
    stdout.flush()
}

/// The current UTC time as `2026-11-28T12:00:00Z`, for event lines.
pub fn timestamp() -> String {
    humantime::format_rfc3339_seconds(SystemTime::now()).to_string()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_are_short() {
        assert_eq!(short_duration(Duration::from_millis(12)), "12ms");
        assert_eq!(short_duration(Duration::from_millis(1_440)), "1.4s");
        assert_eq!(short_duration(Duration::from_secs(125)), "2m05s");
    }

    #[test]
    fn timestamps_are_utc_seconds() {
        let now = timestamp();
        assert_eq!(now.len(), 20, "{now}");
        assert!(now.ends_with('Z'));
    }
}
