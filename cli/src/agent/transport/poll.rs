//! Long-poll: `GET /api/v1/agent/poll`, one request waiting up to
//! [`WAIT`] for up to `max` events, again and again; acks by `POST`
//! ([`super::acks`]). For proxies that hold a streamed answer back.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use lobster_shared::wire::{RelayMessage, close_code};
use serde::Deserialize;
use serde_json::Value;
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::Utf8Bytes;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use super::acks::HttpSink;
use super::{EventSource, Failure, HTTP_CONNECT_TIMEOUT, Http, Incoming, Link, Transport};
use crate::ui::Ui;
use lobster_shared::error_chain;

/// Seconds a poll waits for an event: well inside the 60 s liveness, and
/// under the idle timeouts of common proxies.
const WAIT: u64 = 25;
/// How long past [`WAIT`] the answer may take.
const SLACK: Duration = Duration::from_secs(15);

#[derive(Deserialize)]
struct Answer {
    session_id: String,
    #[serde(default)]
    ready: Option<Value>,
    #[serde(default)]
    events: Vec<Value>,
}

/// Opens a session with a poll that answers at once, with its `ready` and
/// the events already due.
pub(super) async fn open(http: Arc<Http>, max: u32, ui: &Ui) -> Result<Link, Failure> {
    let mut url = http.url(&["poll"]);
    url.set_query(http.events.as_deref());
    url.query_pairs_mut()
        .append_pair("wait", "0")
        .append_pair("max", &max.to_string());
    ui.detail(format!("opening a long-poll session: {url}"));
    let asked = async {
        let response = http.get(url).send().await?;
        let status = response.status();
        let text = response.text().await?;
        Ok::<_, reqwest::Error>((status, text))
    };
    let (status, text) = match timeout(HTTP_CONNECT_TIMEOUT, asked).await {
        Err(_) => {
            return Err(Failure::Refused(format!(
                "no answer within {}s",
                HTTP_CONNECT_TIMEOUT.as_secs()
            )));
        }
        Ok(Err(err)) => return Err(http.failed(&err).into()),
        Ok(Ok(answer)) => answer,
    };
    if !status.is_success() {
        return Err(http.refusal(status, &text).into());
    }
    let answer: Answer = serde_json::from_str(&text)
        .map_err(|err| Failure::Refused(format!("an answer that is not the relay's: {err}")))?;
    let ready = match answer.ready.map(serde_json::from_value::<RelayMessage>) {
        Some(Ok(RelayMessage::Ready(ready))) => ready,
        _ => {
            return Err(Failure::Refused(
                "the opening poll had no ready frame".to_owned(),
            ));
        }
    };
    let mut source = Source {
        http: http.clone(),
        session_id: answer.session_id.clone(),
        max,
        waiting: VecDeque::new(),
    };
    source.take(answer.events);
    Ok(Link {
        ready,
        source: Box::new(source),
        sink: Box::new(HttpSink::new(http, answer.session_id)),
        transport: Transport::Poll,
        fallback: None,
    })
}

struct Source {
    http: Arc<Http>,
    session_id: String,
    max: u32,
    /// Events of the last answer not handed on yet.
    waiting: VecDeque<Incoming>,
}

impl Source {
    fn take(&mut self, events: Vec<Value>) {
        self.waiting.extend(events.into_iter().map(|event| {
            match serde_json::from_value::<RelayMessage>(event) {
                Ok(message) => Incoming::Message(message.map(Utf8Bytes::from)),
                Err(err) => Incoming::Unreadable(err.to_string()),
            }
        }));
    }

    async fn poll(&mut self) -> Incoming {
        let mut url = self.http.url(&["poll"]);
        url.query_pairs_mut()
            .append_pair("session_id", &self.session_id)
            .append_pair("wait", &WAIT.to_string())
            .append_pair("max", &self.max.to_string());
        let request = self
            .http
            .get(url)
            .timeout(Duration::from_secs(WAIT) + SLACK);
        let asked = async {
            let response = request.send().await?;
            let status = response.status();
            let text = response.text().await?;
            Ok::<_, reqwest::Error>((status, text))
        };
        let (status, text) = match asked.await {
            Ok(answer) => answer,
            Err(err) => return Incoming::Lost(error_chain(&err)),
        };
        if !status.is_success() {
            return ended(status.as_u16(), &text);
        }
        match serde_json::from_str::<Answer>(&text) {
            Ok(answer) => {
                self.take(answer.events);
                self.waiting.pop_front().unwrap_or(Incoming::Alive)
            }
            Err(err) => Incoming::Lost(format!("a poll answer that is not the relay's: {err}")),
        }
    }
}

/// What a refused poll means, in the WebSocket's close codes where it
/// ends the session as one of them would.
fn ended(status: u16, body: &str) -> Incoming {
    let code = super::relay_error_code(body).unwrap_or_default();
    let close = |code: u16| {
        Incoming::Closed(Some(CloseFrame {
            code: CloseCode::from(code),
            reason: "".into(),
        }))
    };
    match (status, code.as_str()) {
        (403, "agent_revoked") => close(close_code::REVOKED),
        (401, _) => close(close_code::UNAUTHORIZED),
        (503, "relay_restarting") => close(close_code::RESTARTING),
        (404, "session_not_found") => {
            Incoming::Lost("the relay no longer knows this session (HTTP 404)".to_owned())
        }
        (status, code) => Incoming::Lost(format!("a poll failed (HTTP {status} {code})")),
    }
}

impl EventSource for Source {
    fn next(&mut self) -> BoxFuture<'_, Incoming> {
        Box::pin(async move {
            match self.waiting.pop_front() {
                Some(item) => item,
                None => self.poll().await,
            }
        })
    }

    fn awaits_close(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::close::{SessionEnd, on_close};

    fn end_of(incoming: Incoming) -> SessionEnd {
        match incoming {
            Incoming::Closed(frame) => on_close(frame.as_ref(), None),
            Incoming::Lost(reason) => SessionEnd::failed(reason),
            other => panic!("not an end: {other:?}"),
        }
    }

    #[test]
    fn refused_polls_end_the_session_as_the_websocket_would() {
        let body = |code: &str| format!(r#"{{"error":{{"code":"{code}","message":"m"}}}}"#);
        assert!(matches!(
            end_of(ended(403, &body("agent_revoked"))),
            SessionEnd::Fatal(_)
        ));
        assert!(matches!(
            end_of(ended(401, &body("unauthorized"))),
            SessionEnd::Fatal(_)
        ));
        assert!(matches!(
            end_of(ended(503, &body("relay_restarting"))),
            SessionEnd::Dropped {
                restarting: true,
                ..
            }
        ));
        let SessionEnd::Dropped { reason, .. } = end_of(ended(404, &body("session_not_found")))
        else {
            panic!("a lost session is retried");
        };
        assert!(reason.contains("no longer knows this session"), "{reason}");
    }
}
