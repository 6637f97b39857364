//! Figures: percentiles over raw samples, arrival bookkeeping, and the two
//! output forms (a human table and one JSON object).
//!
//! Percentiles are computed from the full sorted list of samples, not from a
//! histogram: runs are seconds long, so the list stays small and exact.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::Duration;

use serde_json::{Map, Value, json};

/// The nearest-rank percentile `p` (0..=100) of an ascending list: the
/// smallest sample with at least `p`% of the samples at or below it.
pub fn percentile(sorted: &[Duration], p: f64) -> Option<Duration> {
    if sorted.is_empty() {
        return None;
    }
    // 99.9 has no exact binary form: without the slack, 99.9% of 1000
    // samples computes as 999.0000000000001 and rounds up to the maximum.
    let rank = (p / 100.0 * sorted.len() as f64 - 1e-9).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// A latency distribution summed up.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Latency {
    pub count: usize,
    pub p50: Duration,
    pub p90: Duration,
    pub p99: Duration,
    pub p999: Duration,
    pub max: Duration,
}

impl Latency {
    /// Sorts the samples in place; `None` when there are none.
    pub fn of(samples: &mut [Duration]) -> Option<Latency> {
        samples.sort_unstable();
        let at = |p| percentile(samples, p);
        Some(Latency {
            count: samples.len(),
            p50: at(50.0)?,
            p90: at(90.0)?,
            p99: at(99.0)?,
            p999: at(99.9)?,
            max: *samples.last()?,
        })
    }

    pub fn to_json(this: Option<Self>) -> Value {
        let Some(l) = this else { return Value::Null };
        json!({
            "count": l.count, "p50_ms": ms(l.p50), "p90_ms": ms(l.p90), "p99_ms": ms(l.p99),
            "p999_ms": ms(l.p999), "max_ms": ms(l.max),
        })
    }

    /// A two-line table of the distribution, or a note that there is none.
    pub fn table(this: Option<Self>, what: &str) -> String {
        let Some(l) = this else {
            return format!("latency of {what}: no samples\n");
        };
        let cells = [l.p50, l.p90, l.p99, l.p999, l.max].map(|d| format!("{:.2}", ms(d)));
        let mut row = vec![l.count.to_string()];
        row.extend(cells);
        format!(
            "latency of {what} (ms):\n{}",
            table(&["samples", "p50", "p90", "p99", "p99.9", "max"], &[row])
        )
    }
}

/// Milliseconds with fractions, for output.
pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Right-aligned columns, two spaces apart.
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let mut out = String::new();
    let mut line = |cells: Vec<&str>| {
        let parts: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:>w$}"))
            .collect();
        let _ = writeln!(out, "  {}", parts.join("  "));
    };
    line(headers.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
    out
}

/// What a run was set up with, in the order it was noted.
#[derive(Debug, Default, Clone)]
pub struct Setup(Vec<(String, String)>);

impl Setup {
    pub fn add(&mut self, key: &str, value: impl ToString) -> &mut Self {
        self.0.push((key.to_owned(), value.to_string()));
        self
    }

    pub fn to_json(&self) -> Value {
        let map: Map<String, Value> = self
            .0
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect();
        Value::Object(map)
    }

    /// The pairs in the order they were noted.
    pub fn pairs(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    pub fn lines(&self) -> String {
        let mut out = String::from("setup:\n");
        for (k, v) in &self.0 {
            let _ = writeln!(out, "  {k:<16} {v}");
        }
        out
    }
}

/// One run's figures, in both output forms.
pub struct Outcome {
    pub name: String,
    pub setup: Setup,
    pub results: Value,
    pub table: String,
    /// The harness did its job: something was accepted (and delivered).
    pub worked: bool,
}

impl Outcome {
    pub fn to_json(&self) -> Value {
        json!({"command": self.name, "setup": self.setup.to_json(), "results": self.results})
    }

    pub fn print_human(&self) {
        println!(
            "== {} ==\n{}\n{}",
            self.name,
            self.setup.lines(),
            self.table
        );
    }
}

/// First arrival of each event at a consumer, keyed by the load's sequence
/// number; later arrivals of the same event count as duplicates.
#[derive(Default)]
pub struct Recorder {
    inner: Mutex<Arrivals>,
}

#[derive(Default)]
struct Arrivals {
    /// seq -> (latency, arrival time on the run clock)
    first: HashMap<u64, (Duration, Duration)>,
    duplicates: u64,
    foreign: u64,
}

/// What a recorder saw, taken at the end of a run.
pub struct Seen {
    pub first: HashMap<u64, (Duration, Duration)>,
    pub duplicates: u64,
    /// Bodies that were not this harness's (or not parseable).
    pub foreign: u64,
}

impl Recorder {
    /// Notes that the event `seq`, sent at `sent` on the run clock, arrived
    /// at `now` on the same clock.
    pub fn record(&self, seq: Option<(u64, Duration)>, now: Duration) {
        let mut arrivals = self.inner.lock().expect("recorder lock");
        let Some((seq, sent)) = seq else {
            arrivals.foreign += 1;
            return;
        };
        match arrivals.first.entry(seq) {
            Entry::Occupied(_) => arrivals.duplicates += 1,
            Entry::Vacant(slot) => {
                slot.insert((now.saturating_sub(sent), now));
            }
        }
    }

    /// How many of `seqs` have arrived.
    pub fn count_of(&self, seqs: &[u64]) -> usize {
        let arrivals = self.inner.lock().expect("recorder lock");
        seqs.iter()
            .filter(|s| arrivals.first.contains_key(s))
            .count()
    }

    /// How many distinct events have arrived.
    pub fn len(&self) -> usize {
        self.inner.lock().expect("recorder lock").first.len()
    }

    /// Waits until all of `seqs` have arrived or `limit` has passed,
    /// looking every 20 ms; returns how long it waited.
    pub async fn settle(&self, seqs: &[u64], limit: std::time::Duration) -> std::time::Duration {
        let started = std::time::Instant::now();
        while self.count_of(seqs) < seqs.len() && started.elapsed() < limit {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        started.elapsed()
    }

    pub fn take(&self) -> Seen {
        let mut arrivals = self.inner.lock().expect("recorder lock");
        let taken = std::mem::take(&mut *arrivals);
        Seen {
            first: taken.first,
            duplicates: taken.duplicates,
            foreign: taken.foreign,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn millis(values: impl IntoIterator<Item = u64>) -> Vec<Duration> {
        values.into_iter().map(Duration::from_millis).collect()
    }

    #[test]
    fn nearest_rank_over_one_to_a_hundred() {
        let samples = millis(1..=100);
        let at = |p| percentile(&samples, p).unwrap().as_millis();
        assert_eq!(at(50.0), 50);
        assert_eq!(at(90.0), 90);
        assert_eq!(at(99.0), 99);
        assert_eq!(at(99.9), 100);
        assert_eq!(at(100.0), 100);
        assert_eq!(at(0.0), 1);
    }

    #[test]
    fn small_lists_round_up_to_a_real_sample() {
        let samples = millis([10, 20, 30]);
        assert_eq!(percentile(&samples, 50.0), Some(Duration::from_millis(20)));
        assert_eq!(percentile(&samples, 34.0), Some(Duration::from_millis(20)));
        assert_eq!(percentile(&samples, 33.0), Some(Duration::from_millis(10)));
        assert_eq!(percentile(&samples, 99.0), Some(Duration::from_millis(30)));
        assert_eq!(percentile(&[], 50.0), None);
    }

    #[test]
    fn latency_sorts_its_samples_first() {
        let mut samples = millis([5, 1, 4, 2, 3]);
        let l = Latency::of(&mut samples).unwrap();
        assert_eq!(l.count, 5);
        assert_eq!(l.p50, Duration::from_millis(3));
        assert_eq!(l.p90, Duration::from_millis(5));
        assert_eq!(l.max, Duration::from_millis(5));
        assert_eq!(Latency::of(&mut []), None);
    }

    #[test]
    fn one_outlier_shows_only_in_the_tail() {
        let mut samples = millis(std::iter::repeat_n(1, 999).chain([500]));
        let l = Latency::of(&mut samples).unwrap();
        assert_eq!(l.p99, Duration::from_millis(1));
        assert_eq!(l.p999, Duration::from_millis(1));
        assert_eq!(l.max, Duration::from_millis(500));
    }

    #[test]
    fn recorder_keeps_the_first_arrival_and_counts_repeats() {
        let rec = Recorder::default();
        let s = Duration::from_millis;
        rec.record(Some((7, s(10))), s(15));
        rec.record(Some((7, s(10))), s(40));
        rec.record(None, s(41));
        assert_eq!(rec.count_of(&[7, 8]), 1);
        let seen = rec.take();
        assert_eq!(seen.first[&7], (s(5), s(15)));
        assert_eq!((seen.duplicates, seen.foreign), (1, 1));
    }
}
