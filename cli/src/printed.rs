//! The event ids `wait` printed in the last ten minutes, kept in the config
//! dir (`wait-printed`) across runs.
//!
//! `wait` prints one event and exits. If its ack is lost (the connection
//! drops between the print and the ack), the relay hands the same event to
//! the next `wait`, and a script that loops over `wait` would see it twice.
//! So each printed id is written down before the ack, and a later `wait`
//! that is handed one of them acks it without printing it. An explicit
//! replay (`"replay": true`) is always printed: the user asked for it.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::files::{ConfigDir, read_optional, write_private};

/// How long a printed id is remembered (the relay's replay window).
pub const REMEMBER: Duration = Duration::from_secs(10 * 60);
/// At most this many ids are kept; the oldest go first.
const CAPACITY: usize = 1000;

/// Printed ids with when they were printed (Unix ms).
#[derive(Debug)]
pub struct Printed {
    path: PathBuf,
    entries: Vec<(u64, String)>,
}

impl Printed {
    /// The ids printed within [`REMEMBER`], from `wait-printed` in `dir`. A
    /// missing or unreadable file is an empty list: remembering is a
    /// courtesy, never a reason to fail.
    pub fn load(dir: &ConfigDir) -> Self {
        Self::load_at(&dir.path().join("wait-printed"), now_ms())
    }

    fn load_at(path: &Path, now: u64) -> Self {
        let text = read_optional(path).ok().flatten().unwrap_or_default();
        let cutoff = now.saturating_sub(REMEMBER.as_millis() as u64);
        let entries = text
            .lines()
            .filter_map(|line| {
                let (at, id) = line.split_once(' ')?;
                let at: u64 = at.parse().ok()?;
                (at > cutoff && !id.is_empty()).then(|| (at, id.to_owned()))
            })
            .collect();
        Printed {
            path: path.to_owned(),
            entries,
        }
    }

    /// Whether `id` was printed by a recent `wait`.
    pub fn contains(&self, id: &str) -> bool {
        self.entries.iter().any(|(_, seen)| seen == id)
    }

    /// Writes `id` down as printed now.
    pub fn record(&mut self, id: &str) -> anyhow::Result<()> {
        self.record_at(id, now_ms())
    }

    fn record_at(&mut self, id: &str, now: u64) -> anyhow::Result<()> {
        self.entries.push((now, id.to_owned()));
        let excess = self.entries.len().saturating_sub(CAPACITY);
        self.entries.drain(..excess);
        if let Some(dir) = self.path.parent() {
            ConfigDir::at(dir).create()?;
        }
        let text: String = self
            .entries
            .iter()
            .map(|(at, id)| format!("{at} {id}\n"))
            .collect();
        write_private(&self.path, &text)
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printed_ids_are_remembered_across_runs_for_ten_minutes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub").join("wait-printed");
        let t0 = 1_000_000_000;
        let mut first = Printed::load_at(&path, t0);
        assert!(!first.contains("evt_1"), "nothing yet");
        first.record_at("evt_1", t0).unwrap();
        // A later run, five minutes on: still remembered.
        let later = Printed::load_at(&path, t0 + 5 * 60 * 1000);
        assert!(later.contains("evt_1"));
        assert!(!later.contains("evt_2"));
        // Past ten minutes: forgotten.
        let much_later = Printed::load_at(&path, t0 + 11 * 60 * 1000);
        assert!(!much_later.contains("evt_1"));
    }

    #[test]
    fn a_broken_file_is_an_empty_list_and_the_list_is_capped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wait-printed");
        std::fs::write(&path, "garbage\n12 \nnot-a-number evt_x\n").unwrap();
        let mut printed = Printed::load_at(&path, 100);
        assert!(printed.entries.is_empty());
        for i in 0..CAPACITY + 5 {
            printed.record_at(&format!("evt_{i}"), 100).unwrap();
        }
        let reread = Printed::load_at(&path, 100);
        assert_eq!(reread.entries.len(), CAPACITY);
        assert!(!reread.contains("evt_0") && reread.contains(&format!("evt_{}", CAPACITY + 4)));
    }
}
