//! Webhook load: signed POSTs in closed loop (each sender waits for its
//! answer) or open loop (sends on a fixed schedule, latency counted from the
//! scheduled time so a stalled relay shows up instead of hiding).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use lobster_shared::error_chain;
use lobster_shared::signature::{SigningKey, header, sign_standard};
use reqwest::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::stats::{Latency, table};

/// A request that takes longer than this counts as an error.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Open loop: past the run's duration plus this, unsent requests are dropped.
const DISPATCH_GRACE: Duration = Duration::from_secs(5);

/// One HTTP/1.1 client whose pool can hold a connection per sender.
pub fn client(pool: usize) -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .http1_only()
        .no_proxy()
        .pool_max_idle_per_host(pool)
        .timeout(REQUEST_TIMEOUT)
        .build()?)
}

/// What every request of a run shares.
pub struct Load {
    pub client: reqwest::Client,
    /// Webhook URLs; request `seq` goes to `targets[seq % len]`.
    pub targets: Vec<String>,
    pub key: SigningKey,
    pub body_size: usize,
    /// The run clock: every timestamp in a body is measured from here.
    pub clock: Instant,
    /// Makes `webhook-id`s unique across runs against one relay.
    pub run_id: u64,
    /// The status that means "taken": `202` from a relay; `compare` also
    /// posts straight to the sink, which answers `200`.
    pub ok: StatusCode,
}

/// The JSON body each request carries.
#[derive(Serialize, Deserialize)]
pub struct BenchBody {
    #[serde(rename = "type")]
    pub kind: String,
    pub seq: u64,
    /// Scheduled send time, nanoseconds on the run clock.
    pub sent_ns: u64,
    #[serde(default)]
    pub pad: String,
}

/// `(seq, sent)` of a body this harness built, if it is one.
pub fn parse_body(raw: &[u8]) -> Option<(u64, Duration)> {
    let body: BenchBody = serde_json::from_slice(raw).ok()?;
    (body.kind == "bench").then(|| (body.seq, Duration::from_nanos(body.sent_ns)))
}

impl Load {
    fn body(&self, seq: u64, sent: Duration) -> Vec<u8> {
        let mut body = BenchBody {
            kind: "bench".into(),
            seq,
            sent_ns: sent.as_nanos() as u64,
            pad: String::new(),
        };
        let bare = serde_json::to_vec(&body)
            .expect("bench bodies serialize")
            .len();
        body.pad = "x".repeat(self.body_size.saturating_sub(bare));
        serde_json::to_vec(&body).expect("bench bodies serialize")
    }

    async fn send(&self, seq: u64, sent: Duration) -> Result<StatusCode, reqwest::Error> {
        let body = self.body(seq, sent);
        let id = format!("msg_bench_{:016x}_{seq}", self.run_id);
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let ts = now.as_secs() as i64;
        let signature = sign_standard(&self.key, &id, ts, &body);
        let url = &self.targets[(seq % self.targets.len() as u64) as usize];
        let response = self
            .client
            .post(url)
            .header(http::header::CONTENT_TYPE, "application/json")
            .header(header::WEBHOOK_ID, id)
            .header(header::WEBHOOK_TIMESTAMP, ts.to_string())
            .header(header::WEBHOOK_SIGNATURE, signature)
            .body(body)
            .send()
            .await?;
        let status = response.status();
        // Reading the body lets the connection go back to the pool.
        let _ = response.bytes().await;
        Ok(status)
    }
}

/// Answers to the requests of a run.
#[derive(Default)]
pub struct Tally {
    pub sent: u64,
    pub statuses: BTreeMap<u16, u64>,
    pub errors: BTreeMap<&'static str, u64>,
    pub error_sample: Option<String>,
    /// Latencies of the answers with `Load::ok` (202 from a relay).
    pub latencies: Vec<Duration>,
    /// Sequence numbers answered with `Load::ok`.
    pub accepted: Vec<u64>,
    /// Open loop: requests never sent because the schedule ran too late.
    pub unsent: u64,
    /// From the first send until the last answer.
    pub elapsed: Duration,
}

impl Tally {
    fn note(
        &mut self,
        ok: StatusCode,
        seq: u64,
        result: Result<StatusCode, reqwest::Error>,
        took: Duration,
    ) {
        self.sent += 1;
        match result {
            Ok(status) if status == ok => {
                self.latencies.push(took);
                self.accepted.push(seq);
            }
            Ok(status) => *self.statuses.entry(status.as_u16()).or_default() += 1,
            Err(err) => {
                let kind = match () {
                    _ if err.is_timeout() => "timeout",
                    _ if err.is_connect() => "connect",
                    _ => "other",
                };
                *self.errors.entry(kind).or_default() += 1;
                self.error_sample.get_or_insert_with(|| error_chain(&err));
            }
        }
    }

    pub fn accepted_per_sec(&self) -> f64 {
        self.accepted.len() as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    pub fn to_json(&self) -> Value {
        json!({
            "sent": self.sent, "accepted": self.accepted.len(),
            "other_statuses": self.statuses, "errors": self.errors,
            "error_sample": self.error_sample, "unsent": self.unsent,
            "elapsed_s": self.elapsed.as_secs_f64(), "accepted_per_s": self.accepted_per_sec(),
        })
    }

    pub fn table(&self) -> String {
        let join = |m: Vec<String>| {
            if m.is_empty() {
                "-".into()
            } else {
                m.join(" ")
            }
        };
        let others = join(
            self.statuses
                .iter()
                .map(|(c, n)| format!("{c}x{n}"))
                .collect(),
        );
        let errors = join(
            self.errors
                .iter()
                .map(|(k, n)| format!("{k}x{n}"))
                .collect(),
        );
        let row = vec![
            self.sent.to_string(),
            self.accepted.len().to_string(),
            others,
            errors,
            self.unsent.to_string(),
            format!("{:.2}s", self.elapsed.as_secs_f64()),
            format!("{:.1}", self.accepted_per_sec()),
        ];
        let headers = [
            "sent",
            "202",
            "other",
            "errors",
            "unsent",
            "elapsed",
            "accepted/s",
        ];
        let mut out = table(&headers, &[row]);
        if let Some(sample) = &self.error_sample {
            out.push_str(&format!("  first error: {sample}\n"));
        }
        out
    }

    pub fn latency(&mut self) -> Option<Latency> {
        Latency::of(&mut self.latencies)
    }
}

/// `senders` tasks, each posting and awaiting the answer until `duration`
/// has passed.
pub async fn closed_loop(load: Arc<Load>, senders: usize, duration: Duration) -> Tally {
    let tally = Arc::new(Mutex::new(Tally::default()));
    let next = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let deadline = start + duration;
    let mut tasks = JoinSet::new();
    for _ in 0..senders {
        let (load, tally, next) = (load.clone(), tally.clone(), next.clone());
        tasks.spawn(async move {
            while Instant::now() < deadline {
                let seq = next.fetch_add(1, Ordering::Relaxed);
                let sent = load.clock.elapsed();
                let result = load.send(seq, sent).await;
                let took = load.clock.elapsed().saturating_sub(sent);
                tally
                    .lock()
                    .expect("tally lock")
                    .note(load.ok, seq, result, took);
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    finish(tally, start)
}

/// `rate` requests a second for `duration`, at most `max_in_flight` at once;
/// waiting for a free slot counts in the latency, as it would for a sender.
pub async fn open_loop(
    load: Arc<Load>,
    rate: f64,
    duration: Duration,
    max_in_flight: usize,
) -> Tally {
    let tally = Arc::new(Mutex::new(Tally::default()));
    let slots = Arc::new(Semaphore::new(max_in_flight));
    let total = (rate * duration.as_secs_f64()).round() as u64;
    let start = Instant::now();
    let first = load.clock.elapsed();
    let mut tasks = JoinSet::new();
    for seq in 0..total {
        let scheduled = first + Duration::from_secs_f64(seq as f64 / rate);
        let at = load.clock + scheduled;
        if Instant::now() < at {
            tokio::time::sleep_until(at.into()).await;
        }
        let slot = slots.clone().acquire_owned().await.expect("never closed");
        if start.elapsed() > duration + DISPATCH_GRACE {
            tally.lock().expect("tally lock").unsent = total - seq;
            break;
        }
        let (load, tally) = (load.clone(), tally.clone());
        tasks.spawn(async move {
            let result = load.send(seq, scheduled).await;
            let took = load.clock.elapsed().saturating_sub(scheduled);
            tally
                .lock()
                .expect("tally lock")
                .note(load.ok, seq, result, took);
            drop(slot);
        });
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
    finish(tally, start)
}

fn finish(tally: Arc<Mutex<Tally>>, start: Instant) -> Tally {
    let mut tally = std::mem::take(&mut *tally.lock().expect("tally lock"));
    tally.elapsed = start.elapsed();
    tally
}

/// `--rate`: events a second, positive and finite.
pub fn parse_rate(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(rate) if rate.is_finite() && rate > 0.0 => Ok(rate),
        Ok(_) => Err("must be a positive number of events a second, e.g. 1000".into()),
        Err(err) => Err(format!("{err}: expected events a second, e.g. 1000")),
    }
}

/// `--duration`: a humantime duration longer than zero.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    match humantime::parse_duration(text) {
        Ok(d) if !d.is_zero() => Ok(d),
        Ok(_) => Err("must be longer than zero, e.g. 10s".into()),
        Err(err) => Err(format!("{err} (e.g. 10s, 500ms, 1m)")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_and_durations_must_be_usable() {
        assert_eq!(parse_rate("200"), Ok(200.0));
        assert_eq!(parse_rate("0.5"), Ok(0.5));
        for bad in ["0", "-1", "inf", "NaN", "fast", ""] {
            assert!(parse_rate(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        for bad in ["0s", "10", "soon"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }
}
