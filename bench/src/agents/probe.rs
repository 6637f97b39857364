//! Probe webhooks: one to each of K agents spread evenly over the N, to
//! see that sessions receive, and how long a webhook takes to reach one.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use futures_util::StreamExt as _;
use lobster_shared::signature::{header, sign_standard};
use serde_json::{Value, json};

use crate::fleet::Fleet;
use crate::load;
use crate::relay::{Agent, Relay};
use crate::stats::Latency;
use crate::swarm::unix_ns;

/// Posts at most this many probes at once.
const IN_FLIGHT: usize = 64;

pub struct Probes<'a> {
    http: reqwest::Client,
    agents: &'a [Agent],
    targets: Vec<usize>,
    /// Give up waiting for arrivals after this long.
    pub limit: Duration,
}

/// One round of probes, posted.
pub struct Posted {
    /// Sequence number -> when it was posted (Unix ns), for those with a 202.
    accepted: HashMap<u64, u64>,
    errors: BTreeMap<String, u64>,
    posted: usize,
}

impl<'a> Probes<'a> {
    pub fn new(agents: &'a [Agent], k: usize, limit: Duration) -> anyhow::Result<Self> {
        let n = agents.len();
        Ok(Probes {
            http: load::client(IN_FLIGHT)?,
            agents,
            targets: (0..k).map(|i| i * n / k.max(1)).collect(),
            limit,
        })
    }

    /// Posts one probe to each target agent; the sequence number carries
    /// the round and the agent.
    pub async fn post(&self, relay: &Relay, round: u64) -> Posted {
        let run: u64 = rand::random();
        let posts = self.targets.iter().map(|&idx| {
            let seq = (round << 32) | idx as u64;
            let url = self.agents[idx].webhook_url.clone();
            let (http, key) = (self.http.clone(), relay.key.clone());
            async move {
                let body = serde_json::to_vec(&load::BenchBody {
                    kind: "bench".into(),
                    seq,
                    sent_ns: 0,
                    pad: String::new(),
                })
                .expect("bench bodies serialize");
                let id = format!("msg_agents_{run:016x}_{seq}");
                let ts = (unix_ns() / 1_000_000_000) as i64;
                let signature = sign_standard(&key, &id, ts, &body);
                let sent = unix_ns();
                let answer = http
                    .post(url)
                    .header(http::header::CONTENT_TYPE, "application/json")
                    .header(header::WEBHOOK_ID, id)
                    .header(header::WEBHOOK_TIMESTAMP, ts.to_string())
                    .header(header::WEBHOOK_SIGNATURE, signature)
                    .body(body)
                    .send()
                    .await;
                let outcome = match answer {
                    Ok(r) if r.status() == reqwest::StatusCode::ACCEPTED => Ok(()),
                    Ok(r) => Err(format!("http-{}", r.status().as_u16())),
                    Err(e) if e.is_connect() => Err("connect".into()),
                    Err(e) if e.is_timeout() => Err("timeout".into()),
                    Err(_) => Err("other".into()),
                };
                (seq, sent, outcome)
            }
        });
        let answers: Vec<_> = futures_util::stream::iter(posts)
            .buffer_unordered(IN_FLIGHT)
            .collect()
            .await;
        let mut posted = Posted {
            accepted: HashMap::new(),
            errors: BTreeMap::new(),
            posted: self.targets.len(),
        };
        for (seq, sent, outcome) in answers {
            match outcome {
                Ok(()) => {
                    posted.accepted.insert(seq, sent);
                }
                Err(kind) => *posted.errors.entry(kind).or_default() += 1,
            }
        }
        posted
    }

    /// A round while the agents idle: post, then wait for the arrivals.
    pub async fn idle_round(&self, relay: &Relay, fleet: &Fleet) -> Value {
        let start = unix_ns();
        let posted = self.post(relay, 0).await;
        let seqs = posted.seqs();
        fleet
            .wait(self.limit, |b| b.probes_seen(&seqs) == seqs.len())
            .await;
        posted.to_json(fleet, start)
    }
}

impl Posted {
    /// The sequence numbers answered with 202.
    pub fn seqs(&self) -> Vec<u64> {
        self.accepted.keys().copied().collect()
    }

    /// Post-to-agent latencies, and when the last probe arrived counted
    /// from `from` (Unix ns).
    pub fn to_json(&self, fleet: &Fleet, from: u64) -> Value {
        let arrivals = fleet.probe_arrivals(self.accepted.keys());
        let mut latencies: Vec<Duration> = arrivals
            .iter()
            .map(|(seq, at)| Duration::from_nanos(at.saturating_sub(self.accepted[seq])))
            .collect();
        let last = arrivals.iter().map(|(_, at)| *at).max();
        json!({
            "posted": self.posted, "accepted": self.accepted.len(), "post_errors": self.errors,
            "received": arrivals.len(),
            "all_received_ms": last.map(|l| l.saturating_sub(from) as f64 / 1e6),
            "post_to_agent": Latency::to_json(Latency::of(&mut latencies)),
        })
    }
}
