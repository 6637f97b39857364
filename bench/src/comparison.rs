//! `compare`'s figures: every run as measured, and per path the median over
//! the rounds with its ratio to the direct POST, as text tables, Markdown
//! (for docs/performance.md) and JSON.

use std::fmt::Write as _;
use std::time::Duration;

use serde_json::{Value, json};

use crate::stats::{Latency, Setup, ms, table};

/// The baseline every ratio is taken against.
pub const BASELINE: &str = "direct";

/// One wrk run against one path.
#[derive(Debug, Clone)]
pub struct ThroughputRun {
    pub round: usize,
    pub target: String,
    /// Answers with a 2xx status (for the relay: stored, `202`).
    pub answered: u64,
    pub answered_per_s: f64,
    /// Distinct events that reached the sink while wrk ran, a second.
    pub sink_per_s: f64,
    /// Distinct events at the sink once settled.
    pub delivered: u64,
    pub duplicates: u64,
    pub foreign: u64,
    /// Non-2xx answers and socket errors.
    pub errors: u64,
    /// From the end of the load to the last arrival: the backlog's drain.
    pub drain: Duration,
    pub settle_waited: Duration,
    /// wrk's time to the answer.
    pub answer_p50: Duration,
    pub answer_p99: Duration,
}

/// One fixed-rate run against one path.
#[derive(Debug, Clone)]
pub struct LatencyRun {
    pub round: usize,
    pub target: String,
    pub rate: f64,
    pub sent: u64,
    /// Answered with the path's "taken" status.
    pub taken: u64,
    /// Of those, arrived at the sink.
    pub delivered: u64,
    pub unsent: u64,
    pub settle_waited: Duration,
    /// POST (scheduled) to sink arrival.
    pub latency: Option<Latency>,
}

/// All runs of a comparison, in the order they ran.
pub struct Comparison {
    labels: Vec<String>,
    rates: Vec<f64>,
    pub throughput: Vec<ThroughputRun>,
    pub latency: Vec<LatencyRun>,
}

/// A path's figures over the rounds.
struct Summary {
    label: String,
    sink_per_s: Vec<f64>,
    answered_per_s: Vec<f64>,
    undelivered: u64,
    /// Per rate: (p50s, p99s) in milliseconds.
    latency: Vec<(Vec<f64>, Vec<f64>)>,
}

impl Comparison {
    pub fn new(labels: Vec<String>, rates: Vec<f64>) -> Comparison {
        Comparison {
            labels,
            rates,
            throughput: Vec::new(),
            latency: Vec::new(),
        }
    }

    /// Every run delivered something to the sink.
    pub fn worked(&self) -> bool {
        !(self.throughput.is_empty() && self.latency.is_empty())
            && self.throughput.iter().all(|r| r.delivered > 0)
            && self.latency.iter().all(|r| r.delivered > 0)
    }

    fn summaries(&self) -> Vec<Summary> {
        self.labels
            .iter()
            .map(|label| {
                let runs = self.throughput.iter().filter(|r| &r.target == label);
                let latency = self
                    .rates
                    .iter()
                    .map(|&rate| {
                        let of = |f: fn(&Latency) -> Duration| {
                            self.latency
                                .iter()
                                .filter(|r| &r.target == label && r.rate == rate)
                                .filter_map(|r| r.latency.as_ref().map(|l| ms(f(l))))
                                .collect()
                        };
                        (of(|l| l.p50), of(|l| l.p99))
                    })
                    .collect();
                Summary {
                    label: label.clone(),
                    sink_per_s: runs.clone().map(|r| r.sink_per_s).collect(),
                    answered_per_s: runs.clone().map(|r| r.answered_per_s).collect(),
                    undelivered: runs
                        .map(|r| r.answered.saturating_sub(r.delivered))
                        .sum::<u64>()
                        + self
                            .latency
                            .iter()
                            .filter(|r| &r.target == label)
                            .map(|r| r.taken - r.delivered)
                            .sum::<u64>(),
                    latency,
                }
            })
            .collect()
    }

    /// The summary's header and rows; `md` picks Markdown emphasis.
    fn summary_rows(&self) -> (Vec<String>, Vec<Vec<String>>) {
        let summaries = self.summaries();
        let base = summaries.iter().find(|s| s.label == BASELINE);
        let base_rate = base.and_then(|b| median(&b.sink_per_s));
        let mut headers = Vec::new();
        let with_throughput = !self.throughput.is_empty();
        headers.push("path".to_owned());
        if with_throughput {
            headers.extend([
                "events/s at the sink, median (min–max)".to_owned(),
                "× direct".to_owned(),
                "answered/s, median".to_owned(),
            ]);
        }
        for rate in &self.rates {
            headers.push(format!("p50 / p99 at {}/s (ms)", thousands(*rate)));
            headers.push("p99 × direct".to_owned());
        }
        headers.push("undelivered".to_owned());
        let rows = summaries
            .iter()
            .map(|s| {
                let mut row = vec![s.label.clone()];
                if with_throughput {
                    let med = median(&s.sink_per_s);
                    let min = s.sink_per_s.iter().copied().reduce(f64::min);
                    let max = s.sink_per_s.iter().copied().reduce(f64::max);
                    row.push(format!(
                        "{} ({}–{})",
                        opt(med, thousands),
                        opt(min, thousands),
                        opt(max, thousands)
                    ));
                    row.push(ratio(med, base_rate));
                    row.push(opt(median(&s.answered_per_s), thousands));
                }
                for (i, (p50s, p99s)) in s.latency.iter().enumerate() {
                    let p99 = median(p99s);
                    row.push(format!("{} / {}", opt(median(p50s), two), opt(p99, two)));
                    let base_p99 = base.and_then(|b| median(&b.latency[i].1));
                    row.push(ratio(p99, base_p99));
                }
                row.push(s.undelivered.to_string());
                row
            })
            .collect();
        (headers, rows)
    }

    /// Every run, then the summary, as text tables.
    pub fn tables(&self) -> String {
        let mut out = String::new();
        if !self.throughput.is_empty() {
            let headers = [
                "round",
                "path",
                "answered",
                "answered/s",
                "sink/s",
                "delivered",
                "dups",
                "errors",
                "drain",
                "answer p50",
                "answer p99",
            ];
            let rows: Vec<Vec<String>> = self
                .throughput
                .iter()
                .map(|r| {
                    vec![
                        r.round.to_string(),
                        r.target.clone(),
                        r.answered.to_string(),
                        format!("{:.0}", r.answered_per_s),
                        format!("{:.0}", r.sink_per_s),
                        r.delivered.to_string(),
                        r.duplicates.to_string(),
                        r.errors.to_string(),
                        format!("{:.2}s", r.drain.as_secs_f64()),
                        format!("{:.2}ms", ms(r.answer_p50)),
                        format!("{:.2}ms", ms(r.answer_p99)),
                    ]
                })
                .collect();
            let _ = write!(
                out,
                "throughput runs (wrk; sink/s = distinct arrivals while wrk ran / its wall time; drain = last arrival after wrk ended):\n{}",
                table(&headers, &rows)
            );
        }
        if !self.latency.is_empty() {
            let headers = [
                "round",
                "rate",
                "path",
                "sent",
                "taken",
                "delivered",
                "unsent",
                "p50",
                "p90",
                "p99",
                "max",
            ];
            let rows: Vec<Vec<String>> = self
                .latency
                .iter()
                .map(|r| {
                    let at = |f: fn(&Latency) -> Duration| {
                        r.latency
                            .map_or("-".into(), |l| format!("{:.2}", ms(f(&l))))
                    };
                    vec![
                        r.round.to_string(),
                        format!("{}/s", r.rate),
                        r.target.clone(),
                        r.sent.to_string(),
                        r.taken.to_string(),
                        r.delivered.to_string(),
                        r.unsent.to_string(),
                        at(|l| l.p50),
                        at(|l| l.p90),
                        at(|l| l.p99),
                        at(|l| l.max),
                    ]
                })
                .collect();
            let _ = write!(
                out,
                "latency runs (open loop, ms from the scheduled POST to arrival at the sink):\n{}",
                table(&headers, &rows)
            );
        }
        let (headers, rows) = self.summary_rows();
        let headers: Vec<&str> = headers.iter().map(String::as_str).collect();
        let _ = write!(
            out,
            "summary (medians over rounds; ratios against direct):\n{}",
            table(&headers, &rows)
        );
        out
    }

    /// The summary as a Markdown table, headed by how it was measured.
    pub fn markdown(&self, setup: &Setup) -> String {
        let (headers, rows) = self.summary_rows();
        let mut out = String::new();
        let _ = writeln!(out, "| {} |", headers.join(" | "));
        let _ = writeln!(out, "|{}", "---|".repeat(headers.len()));
        for row in rows {
            let _ = writeln!(out, "| {} |", row.join(" | "));
        }
        let _ = writeln!(out, "\nMeasured with:\n");
        for (key, value) in setup.pairs() {
            let _ = writeln!(out, "- {key}: {value}");
        }
        out
    }

    pub fn to_json(&self) -> Value {
        let throughput: Vec<Value> = self
            .throughput
            .iter()
            .map(|r| {
                json!({
                    "round": r.round, "path": r.target, "answered": r.answered,
                    "answered_per_s": r.answered_per_s, "sink_per_s": r.sink_per_s,
                    "delivered": r.delivered, "duplicates": r.duplicates, "foreign": r.foreign,
                    "errors": r.errors, "drain_s": r.drain.as_secs_f64(),
                    "settle_waited_s": r.settle_waited.as_secs_f64(),
                    "answer_p50_ms": ms(r.answer_p50), "answer_p99_ms": ms(r.answer_p99),
                })
            })
            .collect();
        let latency: Vec<Value> = self
            .latency
            .iter()
            .map(|r| {
                json!({
                    "round": r.round, "path": r.target, "rate": r.rate, "sent": r.sent,
                    "taken": r.taken, "delivered": r.delivered, "unsent": r.unsent,
                    "settle_waited_s": r.settle_waited.as_secs_f64(),
                    "latency": Latency::to_json(r.latency),
                })
            })
            .collect();
        let (headers, rows) = self.summary_rows();
        json!({
            "throughput": throughput,
            "latency": latency,
            "summary": {"headers": headers, "rows": rows},
        })
    }
}

/// The median; the mean of the middle two for an even count.
pub fn median(values: &[f64]) -> Option<f64> {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(sorted[n / 2]),
        _ => Some((sorted[n / 2 - 1] + sorted[n / 2]) / 2.0),
    }
}

/// `value / base` as `0.25×`, or `-` when either is missing or zero.
fn ratio(value: Option<f64>, base: Option<f64>) -> String {
    match (value, base) {
        (Some(v), Some(b)) if b > 0.0 => format!("{:.2}×", v / b),
        _ => "-".into(),
    }
}

fn opt(value: Option<f64>, format: fn(f64) -> String) -> String {
    value.map_or_else(|| "-".into(), format)
}

fn two(value: f64) -> String {
    format!("{value:.2}")
}

/// A whole number with thousands separators: 24500.4 → `24,500`.
pub fn thousands(value: f64) -> String {
    let digits = format!("{:.0}", value.abs());
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if value < -0.5 { format!("-{out}") } else { out }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(round: usize, target: &str, sink_per_s: f64) -> ThroughputRun {
        ThroughputRun {
            round,
            target: target.into(),
            answered: 100,
            answered_per_s: sink_per_s,
            sink_per_s,
            delivered: 100,
            duplicates: 0,
            foreign: 0,
            errors: 0,
            drain: Duration::ZERO,
            settle_waited: Duration::ZERO,
            answer_p50: Duration::ZERO,
            answer_p99: Duration::ZERO,
        }
    }

    #[test]
    fn medians_and_separators() {
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(thousands(24_500.4), "24,500");
        assert_eq!(thousands(999.0), "999");
        assert_eq!(thousands(1_000_000.0), "1,000,000");
        assert_eq!(thousands(0.0), "0");
    }

    #[test]
    fn ratios_are_taken_against_the_direct_median() {
        let mut c = Comparison::new(vec!["direct".into(), "after".into()], Vec::new());
        c.throughput = vec![
            run(1, "direct", 20_000.0),
            run(1, "after", 5_000.0),
            run(2, "direct", 22_000.0),
            run(2, "after", 5_500.0),
        ];
        let (headers, rows) = c.summary_rows();
        assert_eq!(headers[2], "× direct");
        assert_eq!(rows[0][1], "21,000 (20,000–22,000)");
        assert_eq!(rows[0][2], "1.00×");
        assert_eq!(rows[1][2], "0.25×");
        assert!(c.worked());
        let md = c.markdown(&Setup::default());
        assert!(md.starts_with("| path | events/s at the sink"), "{md}");
        assert!(
            md.contains("| after | 5,250 (5,000–5,500) | 0.25× |"),
            "{md}"
        );
    }
}
