//! An agent session over the HTTP transports (Server-Sent Events or
//! long-poll), spoken with a plain HTTP client, as a test uses it.
//!
//! The SSE parser here is written from the format, not from the relay's
//! code: it splits messages on blank lines and reads `id:`, `data:` and
//! comment lines.

use std::collections::VecDeque;
use std::time::Duration;

use anyhow::{Context as _, bail, ensure};
use serde_json::{Value, json};

use crate::api::Answer;
use crate::relay::Relay;

/// Which HTTP transport a session uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Sse,
    Poll,
}

/// One SSE message: its `id:`, its `data:` lines joined, its comments.
#[derive(Debug, Clone, Default)]
pub struct SseMessage {
    pub id: Option<String>,
    pub data: String,
    pub comments: Vec<String>,
}

/// Reads SSE messages off a streaming response.
#[derive(Debug)]
pub struct SseReader {
    resp: reqwest::Response,
    buf: String,
}

impl SseReader {
    pub fn new(resp: reqwest::Response) -> Self {
        Self {
            resp,
            buf: String::new(),
        }
    }

    /// The next message (comment-only ones included); `None` once the
    /// stream ended.
    pub async fn next_message(&mut self) -> anyhow::Result<Option<SseMessage>> {
        loop {
            if let Some(end) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..end + 2).collect();
                return Ok(Some(parse_block(&block)));
            }
            match self
                .resp
                .chunk()
                .await
                .context("reading the event stream")?
            {
                Some(bytes) => self
                    .buf
                    .push_str(std::str::from_utf8(&bytes).context("the stream is UTF-8")?),
                None => return Ok(None),
            }
        }
    }
}

fn parse_block(block: &str) -> SseMessage {
    let mut message = SseMessage::default();
    let mut data = Vec::new();
    for line in block.lines().filter(|line| !line.is_empty()) {
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "" => message.comments.push(value.to_owned()),
            "id" => message.id = Some(value.to_owned()),
            "data" => data.push(value),
            _ => {}
        }
    }
    message.data = data.join("\n");
    message
}

/// One session of an agent over SSE or long-poll.
#[derive(Debug)]
pub struct HttpSession {
    http: reqwest::Client,
    base: String,
    api_key: String,
    pub transport: Transport,
    pub session_id: String,
    /// The `ready` frame.
    pub ready: Value,
    sse: Option<SseReader>,
    /// Frames received and not yet taken.
    frames: VecDeque<Value>,
    /// Long-poll: how long each poll waits, and at most how many events.
    pub poll_wait_secs: u64,
    pub poll_max: Option<usize>,
}

impl HttpSession {
    /// Opens a session; `query` is extra query text such as `events=a.*`.
    pub async fn open(
        relay: &Relay,
        api_key: &str,
        transport: Transport,
        query: &str,
    ) -> anyhow::Result<Self> {
        Self::open_at(relay.http_client(), relay.url(), api_key, transport, query).await
    }

    /// [`Self::open`] by the relay's URL and client (to reopen while the
    /// relay is being restarted elsewhere).
    pub async fn open_at(
        http: reqwest::Client,
        base: String,
        api_key: &str,
        transport: Transport,
        query: &str,
    ) -> anyhow::Result<Self> {
        let mut session = HttpSession {
            http,
            base,
            api_key: api_key.to_owned(),
            transport,
            session_id: String::new(),
            ready: Value::Null,
            sse: None,
            frames: VecDeque::new(),
            poll_wait_secs: 5,
            poll_max: None,
        };
        match transport {
            Transport::Sse => {
                let resp = session
                    .http
                    .get(format!("{}/api/v1/agent/stream?{query}", session.base))
                    .bearer_auth(api_key)
                    .send()
                    .await
                    .context("opening the event stream")?;
                if resp.status() != 200 {
                    let answer = Answer::read(resp).await?;
                    bail!("stream refused: {} {}", answer.status, answer.text);
                }
                let content_type = resp
                    .headers()
                    .get("content-type")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned();
                ensure!(
                    content_type.starts_with("text/event-stream"),
                    "content-type {content_type:?}"
                );
                session.sse = Some(SseReader::new(resp));
            }
            Transport::Poll => {
                let answer = session.poll_once(Some(query)).await?;
                ensure!(
                    answer.status == 200,
                    "opening poll refused: {} {}",
                    answer.status,
                    answer.text
                );
            }
        }
        let ready = session
            .next_frame(Duration::from_secs(10))
            .await?
            .context("the session ended before its ready frame")?;
        ensure!(
            ready["type"] == "ready",
            "first frame is not ready: {ready}"
        );
        session.session_id = ready["session_id"]
            .as_str()
            .context("ready without session_id")?
            .to_owned();
        session.ready = ready;
        Ok(session)
    }

    /// One long-poll; its frames are queued. `opening` is the query of the
    /// poll that opens a session.
    async fn poll_once(&mut self, opening: Option<&str>) -> anyhow::Result<Answer> {
        let mut url = format!(
            "{}/api/v1/agent/poll?wait={}",
            self.base, self.poll_wait_secs
        );
        if let Some(max) = self.poll_max {
            url.push_str(&format!("&max={max}"));
        }
        match opening {
            Some(query) if !query.is_empty() => url.push_str(&format!("&{query}")),
            Some(_) => {}
            None => url.push_str(&format!("&session_id={}", self.session_id)),
        }
        let resp = self
            .http
            .get(url)
            .bearer_auth(&self.api_key)
            .timeout(Duration::from_secs(self.poll_wait_secs + 30))
            .send()
            .await
            .context("polling")?;
        let answer = Answer::read(resp).await?;
        if answer.status == 200 {
            if let Some(ready) = answer.json.get("ready") {
                self.frames.push_back(ready.clone());
            }
            let events = answer.json["events"]
                .as_array()
                .with_context(|| format!("poll answer without events: {}", answer.text))?;
            ensure!(
                answer.json["session_id"].is_string(),
                "poll answer without session_id: {}",
                answer.text
            );
            self.frames.extend(events.iter().cloned());
        } else if answer.json["error"]["code"].is_string() {
            // A poll that learns why its session ended: as the stream's
            // closing `error` frame.
            let mut frame = answer.json["error"].clone();
            frame["type"] = json!("error");
            frame["http_status"] = json!(answer.status);
            self.frames.push_back(frame);
        }
        Ok(answer)
    }

    /// The next frame within `timeout`; `None` once the stream ended (SSE).
    /// Long-poll sessions poll as often as needed.
    pub async fn next_frame(&mut self, timeout: Duration) -> anyhow::Result<Option<Value>> {
        tokio::time::timeout(timeout, self.next_frame_inner())
            .await
            .with_context(|| format!("no frame within {timeout:?}"))?
    }

    async fn next_frame_inner(&mut self) -> anyhow::Result<Option<Value>> {
        loop {
            if let Some(frame) = self.frames.pop_front() {
                return Ok(Some(frame));
            }
            match self.transport {
                Transport::Sse => {
                    let reader = self.sse.as_mut().context("no stream")?;
                    let Some(message) = reader.next_message().await? else {
                        return Ok(None);
                    };
                    if message.data.is_empty() {
                        continue; // a keep-alive comment
                    }
                    let frame: Value = serde_json::from_str(&message.data)
                        .with_context(|| format!("data is not JSON: {}", message.data))?;
                    if frame["type"] == "event" {
                        ensure!(
                            message.id.as_deref() == frame["id"].as_str(),
                            "the SSE id {:?} is not the event id: {frame}",
                            message.id
                        );
                    }
                    return Ok(Some(frame));
                }
                Transport::Poll => {
                    let answer = self.poll_once(None).await?;
                    if answer.status != 200 && self.frames.is_empty() {
                        bail!("poll: {} {}", answer.status, answer.text);
                    }
                }
            }
        }
    }

    /// The next SSE message as sent, comments included.
    pub async fn next_sse_message(&mut self) -> anyhow::Result<Option<SseMessage>> {
        self.sse
            .as_mut()
            .context("not an SSE session")?
            .next_message()
            .await
    }

    /// The next `n` event frames; fails on any other frame.
    pub async fn events(&mut self, n: usize, timeout: Duration) -> anyhow::Result<Vec<Value>> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut events = Vec::new();
        while events.len() < n {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let frame = self
                .next_frame(left)
                .await
                .with_context(|| format!("after {} of {n} events", events.len()))?
                .with_context(|| format!("stream ended after {} of {n} events", events.len()))?;
            ensure!(frame["type"] == "event", "expected an event: {frame}");
            events.push(frame);
        }
        Ok(events)
    }

    /// `POST /api/v1/agent/stream/{session_id}/acks` with any body.
    pub async fn post_answers(&self, body: &Value) -> anyhow::Result<Answer> {
        let url = format!("{}/api/v1/agent/stream/{}/acks", self.base, self.session_id);
        let resp = self
            .http
            .post(url)
            .bearer_auth(&self.api_key)
            .json(body)
            .send()
            .await
            .context("posting acks")?;
        Answer::read(resp).await
    }

    /// Acks `ids`; expects `200`.
    pub async fn ack(&self, ids: &[&str]) -> anyhow::Result<()> {
        let acks: Vec<Value> = ids.iter().map(|id| json!({"id": id})).collect();
        let answer = self.post_answers(&json!({"acks": acks})).await?;
        ensure!(
            answer.status == 200 && answer.json["acked"] == ids.len(),
            "ack: {} {}",
            answer.status,
            answer.text
        );
        Ok(())
    }

    /// Nacks `id`; expects `200`.
    pub async fn nack(&self, id: &str, reason: &str) -> anyhow::Result<()> {
        let answer = self
            .post_answers(&json!({"nacks": [{"id": id, "reason": reason}]}))
            .await?;
        ensure!(
            answer.status == 200 && answer.json["nacked"] == 1,
            "nack: {} {}",
            answer.status,
            answer.text
        );
        Ok(())
    }
}

/// The `id` of an event frame.
pub fn event_id(frame: &Value) -> String {
    frame["id"].as_str().unwrap_or_default().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sse_blocks_give_id_data_and_comments() {
        let m = parse_block("id: evt_1\ndata: {\"a\":1}\n\n");
        assert_eq!(m.id.as_deref(), Some("evt_1"));
        assert_eq!(m.data, "{\"a\":1}");
        let m = parse_block(": keep-alive\n\n");
        assert_eq!(m.comments, ["keep-alive"]);
        assert!(m.data.is_empty());
        let m = parse_block("data:x\ndata: y\n\n");
        assert_eq!(m.data, "x\ny");
    }
}
