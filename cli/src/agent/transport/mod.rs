//! How a session reaches the relay: the WebSocket, Server-Sent Events or
//! long-poll (`docs/api-reference.md`, "WebSocket sessions" and "HTTP
//! sessions"), behind one small interface that `listen` and `wait` share.
//!
//! An open session is a [`Link`]: the `ready` frame, an [`EventSource`]
//! (what the relay sends, one [`Incoming`] at a time) and an [`AckSink`]
//! (a task that sends the acks and nacks it is given). The handler, the
//! dispatcher and the session loop do not know which transport carries
//! them.
//!
//! - `ws`: the WebSocket (`/connect`), its reader and writer halves.
//! - `sse`: a `text/event-stream` parser and the `/stream` source.
//! - `poll`: the `/poll` source.
//! - `acks`: the HTTP ack sink (`POST .../acks`, batched), for both.
//! - [`Connector`]: `--transport`, and the fallback of `auto`: the
//!   WebSocket, then SSE, then long-poll, remembering what worked.

mod acks;
mod http;
mod poll;
mod sse;
pub(crate) mod ws;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::future::BoxFuture;
use lobster_shared::Secret;
use lobster_shared::wire::Ready;
use reqwest::Url;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_util::sync::CancellationToken;

use super::close::SessionEnd;
use super::connect::{self, ConnectError};
use super::frame::Frame;
use super::writer::Outgoing;
use crate::glob::GlobList;
use crate::proxy::Proxy;
use crate::ui::Ui;
pub(crate) use http::Http;
use http::relay_error_code;

/// How long the SSE stream may take to bring `ready` when `auto` may still
/// fall back: a proxy that buffers the stream holds it back for good.
const SSE_READY_WAIT: Duration = Duration::from_secs(5);
/// How long `ready` may take when nothing comes after this transport.
/// Hearing nothing at all (no frame, ping or pong) this long drops the connection.
pub const LIVENESS: Duration = Duration::from_secs(60);
const READY_WAIT: Duration = LIVENESS;
/// How long the answer's headers (HTTP transports) may take.
const HTTP_CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// `--transport`: which way to reach the relay.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum TransportChoice {
    /// The WebSocket, else Server-Sent Events, else long-poll.
    #[default]
    Auto,
    /// Only the WebSocket.
    Ws,
    /// Only Server-Sent Events.
    Sse,
    /// Only long-poll.
    Poll,
}

impl TransportChoice {
    /// `auto`, `ws`, `sse` or `poll`, as config.toml spells it.
    pub fn parse(text: &str) -> Result<Self, String> {
        <Self as clap::ValueEnum>::from_str(text, true)
            .map_err(|_| format!("{text:?} is not a transport: use auto, ws, sse or poll"))
    }
}

/// One transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    WebSocket,
    Sse,
    Poll,
}

impl Transport {
    /// How the Ready line names it.
    pub fn name(self) -> &'static str {
        match self {
            Self::WebSocket => "WebSocket",
            Self::Sse => "SSE",
            Self::Poll => "long-poll",
        }
    }

    fn next(self) -> Option<Self> {
        match self {
            Self::WebSocket => Some(Self::Sse),
            Self::Sse => Some(Self::Poll),
            Self::Poll => None,
        }
    }
}

/// One thing the relay sent, whatever the transport.
#[derive(Debug)]
pub enum Incoming {
    /// A frame.
    Message(Frame),
    /// A frame this version cannot read (the text says why).
    Unreadable(String),
    /// A sign of life only: a ping, a keep-alive comment, an empty poll.
    Alive,
    /// The relay ended the session; HTTP transports turn the `error` that
    /// ended it into the WebSocket's close code (`agent_revoked` is 4003,
    /// `relay_restarting` 1012), so [`super::close::on_close`] reads both.
    Closed(Option<CloseFrame>),
    /// The connection failed.
    Lost(String),
}

/// What the relay sends, one item at a time.
pub trait EventSource: Send {
    /// The next item; after `Closed` or `Lost` there is nothing more.
    fn next(&mut self) -> BoxFuture<'_, Incoming>;
    /// True when the relay answers our close with its own (the
    /// WebSocket); over HTTP a session is over once its acks are sent.
    fn awaits_close(&self) -> bool;
}

/// Sends the acks and nacks it is given until the channel ends, a close is
/// asked for (answers before it are sent first) or `session` is cancelled;
/// on a failure it cancels `session` and says why.
pub trait AckSink: Send {
    fn run(
        self: Box<Self>,
        outgoing: mpsc::Receiver<Outgoing>,
        session: CancellationToken,
    ) -> BoxFuture<'static, Result<(), String>>;
}

/// An open session.
pub struct Link {
    pub ready: Ready,
    pub source: Box<dyn EventSource>,
    pub sink: Box<dyn AckSink>,
    pub transport: Transport,
    /// Why this is not the WebSocket, when `auto` fell back.
    pub fallback: Option<String>,
}

impl Link {
    /// ` (via SSE: WebSocket upgrade refused by a proxy)` after a fallback,
    /// else nothing: for the Ready line.
    pub fn via(&self) -> String {
        match &self.fallback {
            Some(why) => format!(" (via {}: {why})", self.transport.name()),
            None => String::new(),
        }
    }
}

/// `HTTP 400` out of a longer reason, if it has one.
fn http_status(reason: &str) -> Option<&str> {
    let at = reason.find("HTTP ")?;
    let status = reason.get(at..at + 8)?;
    status[5..]
        .bytes()
        .all(|b| b.is_ascii_digit())
        .then_some(status)
}

/// Why a transport did not open.
#[derive(Debug)]
pub(crate) enum Failure {
    /// Something in the way refused it (a proxy, an answer that is not the
    /// relay's): the next transport may get through.
    Refused(String),
    /// Any other end: the relay is down, refused the key, is restarting.
    End(SessionEnd),
}

impl From<ConnectError> for Failure {
    fn from(err: ConnectError) -> Self {
        match err {
            ConnectError::Refused(reason) => Self::Refused(reason),
            ConnectError::Rejected(fatal) => Self::End(SessionEnd::Fatal(fatal.into())),
            ConnectError::Failed(reason) => Self::End(SessionEnd::failed(reason)),
        }
    }
}

/// Opens sessions by `--transport`; with `auto`, falls back from the
/// WebSocket to SSE to long-poll, and starts the next session with the
/// transport that worked last.
pub struct Connector {
    choice: TransportChoice,
    ws_url: Url,
    key: Secret,
    via: Option<Proxy>,
    http: Arc<Http>,
    /// Most events a poll asks for (`wait` takes one).
    poll_max: u32,
    /// The transport to start with, and why it is not the WebSocket.
    current: Mutex<(Transport, Option<String>)>,
    /// Some session opened.
    worked: AtomicBool,
}

impl Connector {
    pub fn new(
        choice: TransportChoice,
        relay: &Url,
        key: &Secret,
        events: Option<&GlobList>,
        poll_max: u32,
    ) -> anyhow::Result<Self> {
        let ws_url = connect::connect_url(relay, events);
        let via = crate::proxy::env().tunnel_for(&ws_url)?;
        let first = match choice {
            TransportChoice::Auto | TransportChoice::Ws => Transport::WebSocket,
            TransportChoice::Sse => Transport::Sse,
            TransportChoice::Poll => Transport::Poll,
        };
        Ok(Self {
            choice,
            ws_url,
            key: key.clone(),
            via,
            http: Arc::new(Http::new(relay, key, events)?),
            poll_max,
            current: Mutex::new((first, None)),
            worked: AtomicBool::new(false),
        })
    }

    /// The proxy the WebSocket goes through, if any.
    pub fn via(&self) -> Option<&Proxy> {
        self.via.as_ref()
    }

    /// The WebSocket URL, for messages.
    pub fn url(&self) -> &Url {
        &self.ws_url
    }

    /// Opens a session and waits for its `ready`. With `auto`, a transport
    /// that something in the way refuses gives way to the next one; a
    /// relay that cannot be reached at all, or refuses the key, does not.
    pub async fn open(&self, ui: &Ui, stop: &CancellationToken) -> Result<Link, SessionEnd> {
        let (mut transport, mut fallback) = self.current.lock().expect("not poisoned").clone();
        loop {
            let last = self.choice != TransportChoice::Auto || transport.next().is_none();
            let opened = tokio::select! {
                () = stop.cancelled() => return Err(SessionEnd::Stopped),
                opened = self.open_one(transport, last, ui, stop) => opened,
            };
            match opened {
                Ok(mut link) => {
                    self.worked.store(true, Ordering::Relaxed);
                    link.fallback = fallback.clone();
                    *self.current.lock().expect("not poisoned") = (transport, fallback);
                    return Ok(link);
                }
                // Once a transport worked, a proxy's 5xx means the relay is
                // away (restarting), not that this transport is refused:
                // falling back then would leave the WebSocket for good.
                Err(Failure::Refused(reason))
                    if self.worked.load(Ordering::Relaxed)
                        && http_status(&reason)
                            .is_some_and(|status| status[5..].starts_with('5')) =>
                {
                    return Err(SessionEnd::failed(reason));
                }
                Err(Failure::Refused(reason)) if !last => {
                    let next = transport.next().expect("not the last");
                    ui.detail(format!(
                        "{} refused ({reason}); trying {}",
                        transport.name(),
                        next.name()
                    ));
                    let why = self.why(transport, &reason);
                    fallback = Some(match fallback {
                        Some(earlier) => format!("{earlier}; {why}"),
                        None => why,
                    });
                    transport = next;
                }
                Err(Failure::Refused(reason)) => {
                    let prefix = match &fallback {
                        Some(earlier) => format!("{earlier}; "),
                        None => String::new(),
                    };
                    return Err(SessionEnd::failed(format!(
                        "{prefix}{}: {reason}",
                        transport.name()
                    )));
                }
                Err(Failure::End(end)) => return Err(end),
            }
        }
    }

    /// The fallback note for a refused transport.
    fn why(&self, transport: Transport, reason: &str) -> String {
        match transport {
            Transport::WebSocket if self.via.is_some() => {
                "WebSocket upgrade refused by a proxy".to_owned()
            }
            Transport::WebSocket => match http_status(reason) {
                Some(status) => format!("WebSocket upgrade refused ({status})"),
                None => "WebSocket upgrade refused".to_owned(),
            },
            Transport::Sse if reason.starts_with("no ready event") => {
                format!(
                    "SSE held back ({})",
                    reason.split(':').next().unwrap_or(reason)
                )
            }
            Transport::Sse => match http_status(reason) {
                Some(status) => format!("SSE refused ({status})"),
                None => format!("SSE failed ({reason})"),
            },
            Transport::Poll => format!("long-poll failed ({reason})"),
        }
    }

    async fn open_one(
        &self,
        transport: Transport,
        last: bool,
        ui: &Ui,
        stop: &CancellationToken,
    ) -> Result<Link, Failure> {
        match transport {
            Transport::WebSocket => {
                match self.via.as_ref() {
                    None => ui.detail(format!("connecting to {}", self.ws_url)),
                    Some(proxy) => {
                        ui.detail(format!("connecting to {} via proxy {proxy}", self.ws_url))
                    }
                }
                let ws = connect::connect(&self.ws_url, &self.key, self.via.as_ref()).await?;
                ws::open(ws, stop).await.map_err(Failure::End)
            }
            Transport::Sse => sse::open(self.http.clone(), !last, ui).await,
            Transport::Poll => poll::open(self.http.clone(), self.poll_max, ui).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::StatusCode;

    /// A server in front of a relay as a careless reverse proxy makes it:
    /// the upgrade gets the relay's 400, the stream's headers come but its
    /// `ready` never does, and polls pass. Records each request's path.
    async fn careless_proxy() -> (Url, Arc<Mutex<Vec<String>>>) {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = Url::parse(&format!("http://{}", listener.local_addr().unwrap())).unwrap();
        let paths = Arc::new(Mutex::new(Vec::new()));
        let seen = paths.clone();
        tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                let seen = seen.clone();
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    let mut byte = [0u8; 1];
                    loop {
                        if conn.read(&mut byte).await.unwrap_or(0) == 0 {
                            return;
                        }
                        head.push(byte[0]);
                        if !head.ends_with(b"\r\n\r\n") {
                            continue;
                        }
                        let text = String::from_utf8_lossy(&head).into_owned();
                        head.clear();
                        let path = text.split(' ').nth(1).unwrap_or_default().to_owned();
                        seen.lock().unwrap().push(path.clone());
                        let answer = if path.starts_with("/api/v1/agent/connect") {
                            let body = r#"{"error":{"code":"websocket_required","message":"no"}}"#;
                            format!(
                                "HTTP/1.1 400 Bad Request\r\ncontent-length: {}\r\n\r\n{body}",
                                body.len()
                            )
                        } else if path.starts_with("/api/v1/agent/stream") {
                            let _ = conn
                                .write_all(
                                    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\r\n",
                                )
                                .await;
                            // Held back, as a buffering proxy holds it.
                            tokio::time::sleep(Duration::from_secs(600)).await;
                            return;
                        } else {
                            let body = r#"{"session_id":"ses_1","ready":{"type":"ready","session_id":"ses_1","agent_id":"agt_1","relay_id":"rly_1","webhook_url":"http://x/api/v1/webhook/rly_1","max_in_flight":100,"ack_timeout_ms":30000,"protocol":1},"events":[]}"#;
                            format!(
                                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                                body.len()
                            )
                        };
                        if conn.write_all(answer.as_bytes()).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        (url, paths)
    }

    fn opened(result: Result<Link, SessionEnd>) -> Link {
        match result {
            Ok(link) => link,
            Err(end) => panic!("no session: {end:?}"),
        }
    }

    /// Auto falls from the WebSocket to SSE to long-poll, says why, and the
    /// next session starts with long-poll.
    #[tokio::test]
    async fn auto_falls_back_in_order_and_remembers_what_worked() {
        let (relay, paths) = careless_proxy().await;
        let connector = Connector::new(
            TransportChoice::Auto,
            &relay,
            &Secret::new("lrk_x"),
            None,
            10,
        )
        .unwrap();
        let (ui, stop) = (Ui::silent(), CancellationToken::new());
        let link = opened(connector.open(&ui, &stop).await);
        assert_eq!(link.transport, Transport::Poll);
        assert_eq!(
            link.via(),
            " (via long-poll: WebSocket upgrade refused (HTTP 400); \
             SSE held back (no ready event within 5s))"
        );
        let count = |prefix: &str| {
            let paths = paths.lock().unwrap();
            paths.iter().filter(|p| p.starts_with(prefix)).count()
        };
        assert_eq!(
            (
                count("/api/v1/agent/connect"),
                count("/api/v1/agent/stream")
            ),
            (1, 1)
        );
        let again = opened(connector.open(&ui, &stop).await);
        assert_eq!(again.transport, Transport::Poll);
        assert!(
            again.via().contains("WebSocket upgrade refused"),
            "the note stays"
        );
        assert_eq!(
            (
                count("/api/v1/agent/connect"),
                count("/api/v1/agent/stream")
            ),
            (1, 1),
            "the second session went straight to long-poll"
        );
        assert_eq!(count("/api/v1/agent/poll?wait=0&max=10"), 2);
    }

    #[test]
    fn fallback_notes_are_short() {
        assert_eq!(
            http_status("the relay answered HTTP 400 Bad Request instead"),
            Some("HTTP 400")
        );
        assert_eq!(http_status("HTTP 4"), None);
        assert_eq!(http_status("HTTP version must be 1.1"), None);
    }

    #[test]
    fn transports_parse_from_config_text() {
        assert_eq!(TransportChoice::parse("sse"), Ok(TransportChoice::Sse));
        assert_eq!(TransportChoice::parse("POLL"), Ok(TransportChoice::Poll));
        let err = TransportChoice::parse("carrier-pigeon").unwrap_err();
        assert!(err.contains("auto, ws, sse or poll"), "{err}");
    }

    #[test]
    fn the_relays_refusals_are_told_from_a_proxys() {
        let http = Http::new(
            &Url::parse("http://relay.test").unwrap(),
            &Secret::new("lrk_x"),
            None,
        )
        .unwrap();
        let relay_body = r#"{"error":{"code":"unauthorized","message":"bad key"}}"#;
        assert!(matches!(
            http.refusal(StatusCode::UNAUTHORIZED, relay_body),
            ConnectError::Rejected(_)
        ));
        for (status, body) in [
            (StatusCode::FORBIDDEN, "<html>blocked by policy</html>"),
            (StatusCode::METHOD_NOT_ALLOWED, ""),
            (StatusCode::OK, ""),
        ] {
            assert!(
                matches!(http.refusal(status, body), ConnectError::Refused(_)),
                "{status}"
            );
        }
        assert!(matches!(
            http.refusal(StatusCode::PROXY_AUTHENTICATION_REQUIRED, ""),
            ConnectError::Rejected(_)
        ));
        assert!(
            matches!(
                http.refusal(StatusCode::BAD_GATEWAY, "<html>"),
                ConnectError::Failed(_)
            ),
            "a relay behind a gateway restarts: no fallback for that"
        );
        let busy = r#"{"error":{"code":"too_many_sessions","message":"no"}}"#;
        assert!(matches!(
            http.refusal(StatusCode::TOO_MANY_REQUESTS, busy),
            ConnectError::Failed(_)
        ));
    }
}
