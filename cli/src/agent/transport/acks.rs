//! The ack sink of SSE and long-poll sessions: `POST
//! /api/v1/agent/stream/{session_id}/acks`, every answer waiting in one
//! request (`{"acks": [...], "nacks": [...]}`).

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use lobster_shared::wire::AgentMessage;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{AckSink, Http, relay_error_code};
use crate::agent::writer::Outgoing;
use lobster_shared::error_chain;

/// Most answers in one request (the relay takes up to 10,000).
const MAX_BATCH: usize = 1000;
/// How long one request may take.
const POST_TIMEOUT: Duration = Duration::from_secs(30);
/// Tries of one batch when the relay could not store it (503) or the
/// request failed on the way; acks are idempotent, so a retry is safe.
const TRIES: u32 = 3;

/// Posts the answers of one HTTP session.
pub struct HttpSink {
    http: Arc<Http>,
    session_id: String,
}

impl HttpSink {
    pub fn new(http: Arc<Http>, session_id: String) -> Self {
        Self { http, session_id }
    }

    async fn run_inner(
        self,
        mut outgoing: mpsc::Receiver<Outgoing>,
        session: CancellationToken,
    ) -> Result<(), String> {
        loop {
            let first = tokio::select! {
                () = session.cancelled() => return Ok(()),
                next = outgoing.recv() => next,
            };
            let mut batch = Vec::new();
            let mut last = false;
            let mut next = first;
            loop {
                match next {
                    Some(Outgoing::Reply(reply)) => batch.push(reply),
                    Some(Outgoing::Close) | None => {
                        last = true;
                        break;
                    }
                }
                if batch.len() >= MAX_BATCH {
                    break;
                }
                next = match outgoing.try_recv() {
                    Ok(item) => Some(item),
                    Err(mpsc::error::TryRecvError::Empty) => break,
                    Err(mpsc::error::TryRecvError::Disconnected) => None,
                };
            }
            if !batch.is_empty()
                && let Err(reason) = self.post(&batch).await
            {
                session.cancel();
                return Err(reason);
            }
            if last {
                return Ok(());
            }
        }
    }

    /// Sends one batch, retrying what may succeed on a second try.
    async fn post(&self, batch: &[AgentMessage]) -> Result<(), String> {
        let body = body(batch);
        let url = self.http.url(&["stream", self.session_id.as_str(), "acks"]);
        let mut tries = 0;
        loop {
            tries += 1;
            let sent = self
                .http
                .post(url.clone())
                .timeout(POST_TIMEOUT)
                .json(&body)
                .send()
                .await;
            let failure = match sent {
                Ok(response) if response.status().is_success() => return Ok(()),
                Ok(response) => {
                    let status = response.status();
                    let text = response.text().await.unwrap_or_default();
                    let code = relay_error_code(&text).unwrap_or_default();
                    let reason = format!("the relay refused the answers (HTTP {status} {code})");
                    if status.as_u16() != 503 && !status.is_server_error() {
                        // 404: the session ended; 401/403: the key is gone.
                        // The session's events come back to a new one.
                        return Err(reason);
                    }
                    reason
                }
                Err(err) => format!("could not send the answers: {}", error_chain(&err)),
            };
            if tries >= TRIES {
                return Err(failure);
            }
            tokio::time::sleep(Duration::from_millis(250 * u64::from(tries))).await;
        }
    }
}

/// `{"acks": [{"id"}], "nacks": [{"id", "reason"}]}`.
fn body(batch: &[AgentMessage]) -> Value {
    let mut acks = Vec::new();
    let mut nacks = Vec::new();
    for reply in batch {
        match reply {
            AgentMessage::Ack { id } => acks.push(json!({ "id": id })),
            AgentMessage::Nack { id, reason } => nacks.push(json!({ "id": id, "reason": reason })),
        }
    }
    json!({ "acks": acks, "nacks": nacks })
}

impl AckSink for HttpSink {
    fn run(
        self: Box<Self>,
        outgoing: mpsc::Receiver<Outgoing>,
        session: CancellationToken,
    ) -> BoxFuture<'static, Result<(), String>> {
        Box::pin(self.run_inner(outgoing, session))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acks_and_nacks_are_batched_in_their_lists() {
        let batch = [
            AgentMessage::Ack { id: "evt_1".into() },
            AgentMessage::Nack {
                id: "evt_2".into(),
                reason: "HTTP 500".into(),
            },
            AgentMessage::Ack { id: "evt_3".into() },
        ];
        assert_eq!(
            body(&batch),
            json!({
                "acks": [{"id": "evt_1"}, {"id": "evt_3"}],
                "nacks": [{"id": "evt_2", "reason": "HTTP 500"}],
            })
        );
    }
}
