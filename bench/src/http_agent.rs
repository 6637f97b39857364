//! In-process agents over the HTTP transports: a Server-Sent Events stream
//! or long-polls, acking every event by `POST` (the acks gathered while the
//! previous `POST` ran go in the next one).

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use lobster_shared::wire::RelayMessage;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::agent::AgentEnd;
use crate::load::parse_body;
use crate::stats::Recorder;

const READY_LIMIT: Duration = Duration::from_secs(15);
/// How long each long-poll waits for events.
const POLL_WAIT_SECS: u64 = 5;
/// Most acks in one `POST`.
const ACK_BATCH: usize = 1000;

/// Which HTTP transport the agent uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Sse,
    Poll,
}

/// Opens a session over `transport` and waits for its `ready`; then acks
/// every event until `stop`.
pub async fn http_agent(
    transport: Transport,
    relay_url: &str,
    api_key: &str,
    recorder: Arc<Recorder>,
    clock: Instant,
    stop: CancellationToken,
) -> anyhow::Result<JoinHandle<AgentEnd>> {
    let http = reqwest::Client::builder().no_proxy().build()?;
    let key = api_key.to_owned();
    let base = relay_url.to_owned();
    match transport {
        Transport::Sse => {
            let resp = tokio::time::timeout(
                READY_LIMIT,
                http.get(format!("{base}/api/v1/agent/stream"))
                    .bearer_auth(&key)
                    .send(),
            )
            .await
            .context("stream open timed out")??;
            ensure!(resp.status() == 200, "stream refused: {}", resp.status());
            let mut stream = SseData::new(resp);
            let ready = tokio::time::timeout(READY_LIMIT, stream.next())
                .await
                .context("no ready frame")??
                .context("stream ended before ready")?;
            let session_id = session_of(&ready)?;
            let (acks, acker) = acker(http, &base, &key, &session_id);
            Ok(tokio::spawn(async move {
                let mut end = AgentEnd::default();
                loop {
                    let data = tokio::select! {
                        _ = stop.cancelled() => break,
                        data = stream.next() => data,
                    };
                    match data {
                        Ok(Some(data)) => take(&data, &recorder, clock, &acks, &mut end),
                        Ok(None) => {
                            end.problems.push("the stream ended".into());
                            break;
                        }
                        Err(err) => {
                            end.problems.push(format!("stream error: {err:#}"));
                            break;
                        }
                    }
                }
                drop(acks);
                end.problems.extend(acker.await.unwrap_or_default());
                end
            }))
        }
        Transport::Poll => {
            let first = poll(&http, &base, &key, None).await?;
            let session_id = session_of(&first["ready"].to_string())?;
            let (acks, acker) = acker(http.clone(), &base, &key, &session_id);
            Ok(tokio::spawn(async move {
                let mut end = AgentEnd::default();
                let mut answer = first;
                loop {
                    for event in answer["events"].as_array().into_iter().flatten() {
                        take(&event.to_string(), &recorder, clock, &acks, &mut end);
                    }
                    answer = tokio::select! {
                        _ = stop.cancelled() => break,
                        answer = poll(&http, &base, &key, Some(&session_id)) => match answer {
                            Ok(answer) => answer,
                            Err(err) => {
                                end.problems.push(format!("poll failed: {err:#}"));
                                break;
                            }
                        },
                    };
                }
                drop(acks);
                end.problems.extend(acker.await.unwrap_or_default());
                end
            }))
        }
    }
}

fn session_of(ready: &str) -> anyhow::Result<String> {
    match RelayMessage::from_json(ready) {
        Ok(RelayMessage::Ready(ready)) => Ok(ready.session_id),
        other => bail!("expected a ready frame, got {other:?}"),
    }
}

/// Records an event frame and queues its ack.
fn take(
    frame: &str,
    recorder: &Recorder,
    clock: Instant,
    acks: &mpsc::UnboundedSender<String>,
    end: &mut AgentEnd,
) {
    match RelayMessage::from_json(frame) {
        Ok(RelayMessage::Event(event)) => {
            recorder.record(
                event.raw_body().ok().and_then(|b| parse_body(&b)),
                clock.elapsed(),
            );
            end.events += 1;
            let _ = acks.send(event.id);
        }
        other => end.problems.push(format!("unexpected frame: {other:?}")),
    }
}

async fn poll(
    http: &reqwest::Client,
    base: &str,
    key: &str,
    session_id: Option<&str>,
) -> anyhow::Result<Value> {
    let mut url = format!("{base}/api/v1/agent/poll?wait={POLL_WAIT_SECS}");
    if let Some(id) = session_id {
        url.push_str(&format!("&session_id={id}"));
    }
    let resp = http.get(url).bearer_auth(key).send().await?;
    ensure!(resp.status() == 200, "poll answered {}", resp.status());
    Ok(resp.json().await?)
}

/// A task posting the acks it is sent, in batches; returns its problems.
fn acker(
    http: reqwest::Client,
    base: &str,
    key: &str,
    session_id: &str,
) -> (mpsc::UnboundedSender<String>, JoinHandle<Vec<String>>) {
    let (tx, mut rx) = mpsc::unbounded_channel::<String>();
    let url = format!("{base}/api/v1/agent/stream/{session_id}/acks");
    let key = key.to_owned();
    let task = tokio::spawn(async move {
        let mut problems = Vec::new();
        while let Some(first) = rx.recv().await {
            let mut ids = vec![first];
            while ids.len() < ACK_BATCH {
                match rx.try_recv() {
                    Ok(id) => ids.push(id),
                    Err(_) => break,
                }
            }
            let acks: Vec<Value> = ids.into_iter().map(|id| json!({"id": id})).collect();
            let body = json!({"acks": acks});
            match http.post(&url).bearer_auth(&key).json(&body).send().await {
                Ok(resp) if resp.status() == 200 => {}
                Ok(resp) => problems.push(format!("acks answered {}", resp.status())),
                Err(err) => problems.push(format!("acks failed: {err}")),
            }
        }
        problems
    });
    (tx, task)
}

/// The `data` of each message of an SSE response.
struct SseData {
    resp: reqwest::Response,
    buf: Vec<u8>,
    ready: std::collections::VecDeque<String>,
}

impl SseData {
    fn new(resp: reqwest::Response) -> Self {
        SseData {
            resp,
            buf: Vec::new(),
            ready: std::collections::VecDeque::new(),
        }
    }

    /// The next message with data (comments skipped); `None` at the end.
    async fn next(&mut self) -> anyhow::Result<Option<String>> {
        loop {
            if let Some(data) = self.ready.pop_front() {
                return Ok(Some(data));
            }
            match self.resp.chunk().await? {
                Some(bytes) => self.buf.extend_from_slice(&bytes),
                None => return Ok(None),
            }
            // Every complete message in one pass, then one shift of the rest.
            let mut start = 0;
            while let Some(end) = self.buf[start..].windows(2).position(|w| w == b"\n\n") {
                let block = std::str::from_utf8(&self.buf[start..start + end])
                    .context("the stream is UTF-8")?;
                let data: Vec<&str> = block
                    .lines()
                    .filter_map(|line| line.strip_prefix("data:"))
                    .map(|d| d.strip_prefix(' ').unwrap_or(d))
                    .collect();
                if !data.is_empty() {
                    self.ready.push_back(data.join("\n"));
                }
                start += end + 2;
            }
            self.buf.drain(..start);
        }
    }
}
