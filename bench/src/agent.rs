//! The consumers of `e2e`: in-process WebSocket agents speaking protocol v1,
//! or real `lobster-relay listen` processes forwarding to the sink.

use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use futures_util::{SinkExt as _, StreamExt as _};
use lobster_shared::wire::{AgentMessage, RelayMessage};
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::process::{Child, Command};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_util::sync::CancellationToken;

use crate::load::parse_body;
use crate::relay::{LogWatch, stop_child, wait_for};
use crate::stats::Recorder;

const READY_LIMIT: Duration = Duration::from_secs(15);

/// What one in-process agent saw besides events.
#[derive(Debug, Default)]
pub struct AgentEnd {
    pub events: u64,
    /// Error frames, undecodable frames, socket errors, an unasked close.
    pub problems: Vec<String>,
}

/// Connects as the agent with `api_key` and waits for the `ready` frame;
/// then acks every event until `stop`.
pub async fn protocol_agent(
    relay_url: &str,
    api_key: &str,
    recorder: Arc<Recorder>,
    clock: Instant,
    stop: CancellationToken,
) -> anyhow::Result<JoinHandle<AgentEnd>> {
    let url = format!(
        "{}/api/v1/agent/connect",
        relay_url.replacen("http", "ws", 1)
    );
    let mut request = url.as_str().into_client_request()?;
    request.headers_mut().insert(
        http::header::AUTHORIZATION,
        format!("Bearer {api_key}").parse()?,
    );
    let (mut ws, _) = tokio::time::timeout(READY_LIMIT, tokio_tungstenite::connect_async(request))
        .await
        .context("WebSocket connect timed out")?
        .with_context(|| format!("WebSocket connect to {url} failed"))?;
    let first = tokio::time::timeout(READY_LIMIT, ws.next()).await;
    match first {
        Ok(Some(Ok(Message::Text(text)))) => match RelayMessage::from_json(&text) {
            Ok(RelayMessage::Ready(_)) => {}
            other => bail!("expected a ready frame, got {other:?}"),
        },
        other => bail!("expected a ready frame, got {other:?}"),
    }
    Ok(tokio::spawn(async move {
        let mut end = AgentEnd::default();
        loop {
            let frame = tokio::select! {
                _ = stop.cancelled() => {
                    let _ = ws.close(None).await;
                    break;
                }
                frame = ws.next() => frame,
            };
            let text = match frame {
                Some(Ok(Message::Text(text))) => text,
                Some(Ok(Message::Close(close))) => {
                    end.problems
                        .push(format!("relay closed the session: {close:?}"));
                    break;
                }
                Some(Ok(_)) => continue,
                Some(Err(err)) => {
                    end.problems.push(format!("socket error: {err}"));
                    break;
                }
                None => {
                    end.problems.push("socket ended without a close".into());
                    break;
                }
            };
            let event = match RelayMessage::from_json(&text) {
                Ok(RelayMessage::Event(event)) => event,
                other => {
                    end.problems.push(format!("unexpected frame: {other:?}"));
                    continue;
                }
            };
            let now = clock.elapsed();
            recorder.record(event.raw_body().ok().and_then(|b| parse_body(&b)), now);
            end.events += 1;
            let ack = AgentMessage::Ack { id: event.id }.to_json();
            if let Err(err) = ws.send(Message::text(ack)).await {
                end.problems.push(format!("sending an ack failed: {err}"));
                break;
            }
        }
        end
    }))
}

/// A `lobster-relay listen` child.
pub struct Listener {
    child: Child,
    log: Arc<LogWatch>,
    drained: JoinHandle<()>,
}

impl Listener {
    /// The process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Starts `listen --forward` and waits for its `Ready!` line.
    pub async fn start(
        bin: &Path,
        relay_url: &str,
        api_key: &str,
        forward: &str,
        concurrency: usize,
    ) -> anyhow::Result<Listener> {
        let mut child = Command::new(bin)
            .args(["listen", "--relay", relay_url, "--api-key", api_key])
            .args([
                "--forward",
                forward,
                "--concurrency",
                &concurrency.to_string(),
            ])
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot run {} listen", bin.display()))?;
        let stderr = child.stderr.take().expect("stderr is piped");
        let mut lines = BufReader::new(stderr).lines();
        let ready = wait_for(&mut lines, "Ready! Your webhook URL is");
        tokio::time::timeout(READY_LIMIT, ready)
            .await
            .context("`lobster-relay listen` did not say Ready! within 15 s")??;
        let log = Arc::new(LogWatch::default());
        // A line or two per forwarded event (`-->` on arrival, `<-- 200 POST
        // URL (3 ms)` or, in older builds, `<-- 200 OK` when the sink
        // answered); the sink always answers 200, so any other line (nacks,
        // reconnects, warnings) is worth showing.
        let drained = log.clone().drain(lines, |line| {
            !line.contains(" 200 OK ")
                && !line.contains("<-- 200 ")
                && !line.contains("  --> ")
                && !line.starts_with("Forwarding events to")
                && !line.starts_with("Stopping: ")
                && !line.starts_with("Stopped. ")
        });
        Ok(Listener {
            child,
            log,
            drained,
        })
    }

    /// Stops it as Ctrl-C would; returns how it exited and its stderr
    /// after `Ready!` as (lines, notable lines, first notable lines).
    pub async fn stop(mut self) -> (String, (u64, u64, Vec<String>)) {
        let exit = match stop_child(&mut self.child, "INT").await {
            Ok(exit) => exit,
            Err(err) => format!("{err:#}"),
        };
        // The pipe closes with the process; read what it said last.
        let _ = tokio::time::timeout(Duration::from_secs(1), self.drained).await;
        (exit, self.log.snapshot())
    }
}
