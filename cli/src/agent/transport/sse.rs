//! Server-Sent Events: `GET /api/v1/agent/stream`, one frame per message's
//! `data`, `: keep-alive` comments, acks by `POST` ([`super::acks`]).
//!
//! The parser follows the `text/event-stream` rules that matter here:
//! lines end with `\n`, `\r\n` or `\r`; a blank line ends a message; `data:`
//! lines join with `\n`; one space after the colon is dropped; lines that
//! start with `:` are comments; `event:`, `retry:` and unknown fields are
//! ignored; a message without data is not dispatched.

use futures_util::future::BoxFuture;
use lobster_shared::wire::{RelayMessage, close_code};
use std::collections::VecDeque;
use std::sync::Arc;
use tokio::time::{Instant, timeout, timeout_at};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use super::acks::HttpSink;
use super::{EventSource, Failure, HTTP_CONNECT_TIMEOUT, Http, Incoming, Link, Transport};
use crate::agent::close::on_close;
use crate::agent::frame;
use crate::ui::Ui;
use lobster_shared::error_chain;

/// Longest line kept: a 64 MiB frame (`agent/connect.rs`) with room.
const MAX_LINE: usize = 80 << 20;

/// One item of the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SseItem {
    /// A message: its `data` lines joined, and its `id:` if it had one.
    Message { id: Option<String>, data: String },
    /// A comment line (`: keep-alive`).
    Comment,
}

/// A `text/event-stream` parser fed with chunks as they arrive.
#[derive(Debug, Default)]
pub struct SseParser {
    line: Vec<u8>,
    /// The last byte was a `\r`: a `\n` right after it ends nothing more.
    after_cr: bool,
    data: Option<String>,
    id: Option<String>,
    started: bool,
}

impl SseParser {
    /// Takes a chunk; returns the items it completed. Errs on a line too
    /// long to be a frame.
    pub fn feed(&mut self, chunk: &[u8]) -> Result<Vec<SseItem>, String> {
        let mut items = Vec::new();
        for &byte in chunk {
            match byte {
                b'\n' if self.after_cr => self.after_cr = false,
                b'\n' | b'\r' => {
                    self.after_cr = byte == b'\r';
                    let line = std::mem::take(&mut self.line);
                    if let Some(item) = self.line_done(&line) {
                        items.push(item);
                    }
                }
                _ => {
                    self.after_cr = false;
                    self.line.push(byte);
                    if self.line.len() > MAX_LINE {
                        return Err(format!("a stream line over {} MiB", MAX_LINE >> 20));
                    }
                }
            }
        }
        Ok(items)
    }

    fn line_done(&mut self, line: &[u8]) -> Option<SseItem> {
        let mut line = String::from_utf8_lossy(line).into_owned();
        if !self.started {
            self.started = true;
            if let Some(rest) = line.strip_prefix('\u{feff}') {
                line = rest.to_owned();
            }
        }
        if line.is_empty() {
            let id = self.id.take();
            return self.data.take().map(|data| SseItem::Message { id, data });
        }
        if line.starts_with(':') {
            return Some(SseItem::Comment);
        }
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (line.as_str(), ""),
        };
        match field {
            "data" => match &mut self.data {
                Some(data) => {
                    data.push('\n');
                    data.push_str(value);
                }
                None => self.data = Some(value.to_owned()),
            },
            "id" if !value.contains('\0') => self.id = Some(value.to_owned()),
            _ => {}
        }
        None
    }
}

/// Opens the stream and reads until `ready`. With `fallback`, the answer
/// and `ready` together get [`super::SSE_READY_WAIT`]: a proxy that holds
/// the stream back may hold its headers back too. Else the headers get
/// [`HTTP_CONNECT_TIMEOUT`] and `ready` [`super::READY_WAIT`].
pub(super) async fn open(http: Arc<Http>, fallback: bool, ui: &Ui) -> Result<Link, Failure> {
    let started = Instant::now();
    let (headers_by, ready_by) = match fallback {
        true => {
            let by = started + super::SSE_READY_WAIT;
            (by, by)
        }
        false => (
            started + HTTP_CONNECT_TIMEOUT,
            started + HTTP_CONNECT_TIMEOUT + super::READY_WAIT,
        ),
    };
    let held_back = || {
        Failure::Refused(format!(
            "no ready event within {}s: a proxy may be holding the stream back",
            (ready_by - started).as_secs()
        ))
    };
    let url = {
        let mut url = http.url(&["stream"]);
        url.set_query(http.events.as_deref());
        url
    };
    ui.detail(format!("opening the SSE stream {url}"));
    let request = http
        .get(url)
        .header(http::header::ACCEPT, "text/event-stream");
    let response = match timeout_at(headers_by, request.send()).await {
        Err(_) => return Err(held_back()),
        Ok(Err(err)) => return Err(http.failed(&err).into()),
        Ok(Ok(response)) => response,
    };
    let status = response.status();
    let is_stream = response
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("text/event-stream"));
    if !status.is_success() || !is_stream {
        let body = timeout(HTTP_CONNECT_TIMEOUT, response.text())
            .await
            .ok()
            .and_then(Result::ok)
            .unwrap_or_default();
        return Err(http.refusal(status, &body).into());
    }
    let mut source = Source {
        response,
        parser: SseParser::default(),
        items: VecDeque::new(),
        last_error: None,
    };
    let first = timeout_at(ready_by, async {
        loop {
            match source.next_item().await {
                Incoming::Alive => continue,
                other => break other,
            }
        }
    })
    .await;
    match first {
        Err(_) => Err(held_back()),
        Ok(Incoming::Message(RelayMessage::Ready(ready))) => Ok(Link {
            sink: Box::new(HttpSink::new(http, ready.session_id.clone())),
            ready,
            source: Box::new(source),
            transport: Transport::Sse,
            fallback: None,
        }),
        Ok(Incoming::Message(RelayMessage::Error(error))) => {
            // The stream ends with the error that explains it.
            let code = match error.code.as_str() {
                "agent_revoked" => Some(close_code::REVOKED),
                "relay_restarting" => Some(close_code::RESTARTING),
                _ => None,
            };
            let frame = code.map(|code| CloseFrame {
                code: CloseCode::from(code),
                reason: "".into(),
            });
            Err(Failure::End(on_close(frame.as_ref(), Some(&error))))
        }
        Ok(Incoming::Message(RelayMessage::Event(_))) => Err(Failure::End(
            crate::agent::close::SessionEnd::failed("the relay sent an event before ready"),
        )),
        Ok(Incoming::Unreadable(err)) => Err(Failure::Refused(format!("bad first message: {err}"))),
        Ok(Incoming::Closed(frame)) => Err(Failure::End(on_close(frame.as_ref(), None))),
        Ok(Incoming::Lost(reason)) => Err(Failure::Refused(reason)),
        Ok(Incoming::Alive) => unreachable!("skipped above"),
    }
}

struct Source {
    response: reqwest::Response,
    parser: SseParser,
    items: VecDeque<SseItem>,
    /// The `error` message's code, which says how the stream ends.
    last_error: Option<String>,
}

impl Source {
    async fn next_item(&mut self) -> Incoming {
        loop {
            if let Some(item) = self.items.pop_front() {
                return match item {
                    SseItem::Comment => Incoming::Alive,
                    SseItem::Message { data, .. } => match frame::read(&data.into()) {
                        Ok(message) => {
                            if let RelayMessage::Error(error) = &message {
                                self.last_error = Some(error.code.clone());
                            }
                            Incoming::Message(message)
                        }
                        Err(err) => Incoming::Unreadable(err.to_string()),
                    },
                };
            }
            match self.response.chunk().await {
                Ok(Some(chunk)) => match self.parser.feed(&chunk) {
                    Ok(items) => self.items.extend(items),
                    Err(err) => return Incoming::Lost(err),
                },
                Ok(None) => return self.ended(),
                Err(err) => return Incoming::Lost(error_chain(&err)),
            }
        }
    }

    /// The stream ended: after an `error`, as the WebSocket's close with
    /// the matching code would.
    fn ended(&self) -> Incoming {
        let code = match self.last_error.as_deref() {
            Some("agent_revoked") => close_code::REVOKED,
            Some("relay_restarting") => close_code::RESTARTING,
            Some("unauthorized") => close_code::UNAUTHORIZED,
            Some(_) => close_code::PROTOCOL_VIOLATION,
            None => return Incoming::Lost("the relay ended the stream".to_owned()),
        };
        Incoming::Closed(Some(CloseFrame {
            code: CloseCode::from(code),
            reason: "".into(),
        }))
    }
}

impl EventSource for Source {
    fn next(&mut self) -> BoxFuture<'_, Incoming> {
        Box::pin(self.next_item())
    }

    fn awaits_close(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(id: Option<&str>, data: &str) -> SseItem {
        SseItem::Message {
            id: id.map(str::to_owned),
            data: data.to_owned(),
        }
    }

    #[test]
    fn messages_ids_and_comments() {
        let mut parser = SseParser::default();
        let stream = "data: {\"type\":\"ready\"}\n\nid: evt_1\ndata: {\"a\":1}\n\n: keep-alive\n\n";
        assert_eq!(
            parser.feed(stream.as_bytes()).unwrap(),
            [
                message(None, "{\"type\":\"ready\"}"),
                message(Some("evt_1"), "{\"a\":1}"),
                SseItem::Comment,
            ]
        );
    }

    #[test]
    fn chunks_split_anywhere_give_the_same_messages() {
        let stream = "id: evt_1\r\ndata: one\r\ndata:two\r\n\r\n:c\rdata: three\r\rdata: é\n\n";
        let expected = [
            message(Some("evt_1"), "one\ntwo"),
            SseItem::Comment,
            message(None, "three"),
            message(None, "é"),
        ];
        let bytes = stream.as_bytes();
        for size in 1..bytes.len() {
            let mut parser = SseParser::default();
            let mut items = Vec::new();
            for chunk in bytes.chunks(size) {
                items.extend(parser.feed(chunk).unwrap());
            }
            assert_eq!(items, expected, "chunks of {size}");
        }
    }

    #[test]
    fn messages_without_data_and_other_fields_are_skipped() {
        let mut parser = SseParser::default();
        let stream =
            "\u{feff}event: x\nretry: 5\n\nid: lonely\n\ndata\n\nunknown: 1\ndata:  two spaces\n\n";
        assert_eq!(
            parser.feed(stream.as_bytes()).unwrap(),
            [message(None, ""), message(None, " two spaces")]
        );
    }

    #[test]
    fn a_message_is_only_dispatched_at_its_blank_line() {
        let mut parser = SseParser::default();
        assert!(parser.feed(b"data: half").unwrap().is_empty());
        assert!(parser.feed(b"\n").unwrap().is_empty());
        assert_eq!(parser.feed(b"\n").unwrap(), [message(None, "half")]);
    }
}
