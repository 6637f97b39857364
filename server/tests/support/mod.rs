//! The whole relay in-process: `lobster_server::run` on a [`Listener`] of
//! `tokio::io::duplex` pipes, a SQLite store in a temporary directory, and
//! clients that speak HTTP/1.1 and WebSocket over the pipes. No port, no
//! process: a test connects by creating a pipe and handing the relay its
//! other half.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use futures_util::StreamExt as _;
use lobster_server::{Config, Listener, Settings};
use lobster_shared::Secret;
use lobster_shared::api::{CreatedAgent, EventDetail};
use lobster_shared::signature::Scheme;
use lobster_shared::wire::RelayMessage;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _, DuplexStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_util::sync::CancellationToken;

/// What a test waits for anything at most.
pub const PATIENCE: Duration = Duration::from_secs(10);
pub const ADMIN_TOKEN: &str = "adm_in_process_test_token_0123456789abcdef";
pub const PUBLIC_URL: &str = "http://relay.test";
/// Not the defaults, so that the ready frame is seen to carry the settings.
pub const MAX_IN_FLIGHT: u32 = 7;
pub const ACK_TIMEOUT_MS: u64 = 45_000;
/// Bytes a pipe buffers each way.
const PIPE_BUFFER: usize = 256 * 1024;

pub type Ws = WebSocketStream<DuplexStream>;

/// Connections made by [`Relay::pipe`], each the relay's half of a pipe.
struct Pipes {
    incoming: mpsc::UnboundedReceiver<DuplexStream>,
}

impl Listener for Pipes {
    type Io = DuplexStream;

    async fn accept(&mut self) -> io::Result<(DuplexStream, SocketAddr)> {
        match self.incoming.recv().await {
            Some(pipe) => Ok((pipe, "127.0.0.1:40000".parse().unwrap())),
            // The test dropped its relay: no more connections, ever.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok("127.0.0.1:8080".parse().unwrap())
    }
}

/// A running relay; dropping it without [`Relay::stop`] aborts it.
pub struct Relay {
    connect: mpsc::UnboundedSender<DuplexStream>,
    shutdown: CancellationToken,
    running: JoinHandle<anyhow::Result<()>>,
    _data_dir: tempfile::TempDir,
}

impl Relay {
    /// A relay with fast retries, so a nacked event comes back at once.
    /// Its ack timeout is `ACK_TIMEOUT_MS`.
    pub async fn start() -> Relay {
        let data_dir = tempfile::tempdir().unwrap();
        let config = Config::load(Settings {
            data_dir: Some(data_dir.path().to_owned()),
            admin_token: Some(Secret::new(ADMIN_TOKEN)),
            public_url: Some(PUBLIC_URL.into()),
            // Webhooks unsigned: signatures are tested where they are checked.
            signature_scheme: Some(Scheme::None),
            retry_initial: Some("1ms".into()),
            retry_max_delay: Some("1ms".into()),
            max_in_flight: Some(MAX_IN_FLIGHT),
            ack_timeout: Some("45s".into()),
            ..Settings::default()
        })
        .unwrap();
        let (connect, incoming) = mpsc::unbounded_channel();
        let shutdown = CancellationToken::new();
        let running = tokio::spawn(lobster_server::run(
            config,
            Pipes { incoming },
            shutdown.clone(),
        ));
        Relay {
            connect,
            shutdown,
            running,
            _data_dir: data_dir,
        }
    }

    /// A new connection to the relay: the client's half of a pipe.
    pub fn pipe(&self) -> DuplexStream {
        let (client, relay) = tokio::io::duplex(PIPE_BUFFER);
        self.connect.send(relay).expect("the relay is running");
        client
    }

    /// One request on a connection of its own; the status and the JSON
    /// body (`Null` when there is none).
    pub async fn request(
        &self,
        method: &str,
        path: &str,
        token: &str,
        body: Option<&Value>,
    ) -> (u16, Value) {
        let body = body.map(Value::to_string).unwrap_or_default();
        let request = format!(
            "{method} {path} HTTP/1.1\r\nhost: relay.test\r\nauthorization: Bearer {token}\r\n\
             content-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
        let mut pipe = self.pipe();
        let answer = tokio::time::timeout(PATIENCE, async {
            pipe.write_all(request.as_bytes()).await.unwrap();
            let mut answer = Vec::new();
            pipe.read_to_end(&mut answer).await.unwrap();
            answer
        })
        .await
        .expect("the relay answers");
        parse_answer(&answer)
    }

    /// A new agent of the default workspace.
    pub async fn create_agent(&self, name: &str) -> CreatedAgent {
        let (status, body) = self
            .request(
                "POST",
                "/api/v1/admin/agents",
                ADMIN_TOKEN,
                Some(&json!({ "name": name })),
            )
            .await;
        assert_eq!(status, 201, "create agent: {body}");
        serde_json::from_value(body).unwrap()
    }

    /// Sends a webhook to the agent; the stored event's id.
    pub async fn post_webhook(&self, agent: &CreatedAgent, body: &Value) -> String {
        let path = format!("/api/v1/webhook/{}", agent.relay_id);
        let (status, answer) = self.request("POST", &path, "-", Some(body)).await;
        assert_eq!(status, 202, "webhook: {answer}");
        answer["id"].as_str().unwrap().to_owned()
    }

    /// The event as its agent sees it.
    pub async fn event(&self, agent: &CreatedAgent, id: &str) -> EventDetail {
        let path = format!("/api/v1/agent/events/{id}");
        let (status, body) = self.request("GET", &path, &agent.api_key, None).await;
        assert_eq!(status, 200, "event detail: {body}");
        serde_json::from_value(body).unwrap()
    }

    /// Waits until the event has `status`, asking again after every answer.
    pub async fn await_status(&self, agent: &CreatedAgent, id: &str, status: &str) -> EventDetail {
        tokio::time::timeout(PATIENCE, async {
            loop {
                let event = self.event(agent, id).await;
                if event.summary.status == status {
                    return event;
                }
                tokio::task::yield_now().await;
            }
        })
        .await
        .unwrap_or_else(|_| panic!("event {id} did not become {status}"))
    }

    /// A WebSocket session of the agent with this key, or the refusal.
    pub async fn connect(&self, api_key: &str) -> Result<Ws, tungstenite::Error> {
        let mut request = "ws://relay.test/api/v1/agent/connect"
            .into_client_request()
            .unwrap();
        request.headers_mut().insert(
            "authorization",
            format!("Bearer {api_key}").parse().unwrap(),
        );
        let connected = tokio::time::timeout(
            PATIENCE,
            tokio_tungstenite::client_async(request, self.pipe()),
        )
        .await
        .expect("the upgrade is answered");
        connected.map(|(ws, _response)| ws)
    }

    /// Stops the relay as SIGTERM would, and waits until it has drained.
    pub async fn stop(mut self) {
        self.shutdown.cancel();
        tokio::time::timeout(PATIENCE, &mut self.running)
            .await
            .expect("the relay drains in time")
            .unwrap()
            .unwrap();
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.running.abort();
    }
}

/// Status and JSON body of an HTTP/1.1 answer read to its end.
fn parse_answer(answer: &[u8]) -> (u16, Value) {
    let text = String::from_utf8_lossy(answer);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("not an HTTP answer: {text:?}"));
    assert!(
        !head.to_ascii_lowercase().contains("transfer-encoding"),
        "a chunked answer: {head}"
    );
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no status line: {head:?}"));
    let body = if body.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(body).unwrap_or_else(|e| panic!("body is not JSON ({e}): {body}"))
    };
    (status, body)
}

/// What the relay sends next on a session, pings and pongs skipped.
#[derive(Debug)]
pub enum Frame {
    Relay(RelayMessage),
    /// The close code.
    Closed(Option<u16>),
}

pub async fn next_frame(ws: &mut Ws) -> Frame {
    loop {
        let message = tokio::time::timeout(PATIENCE, ws.next())
            .await
            .expect("the relay sends a frame in time");
        match message {
            Some(Ok(Message::Text(text))) => {
                return Frame::Relay(RelayMessage::from_json(&text).unwrap());
            }
            Some(Ok(Message::Close(frame))) => {
                return Frame::Closed(frame.map(|f| u16::from(f.code)));
            }
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
            other => panic!("the session ended without a close frame: {other:?}"),
        }
    }
}

/// The next frame, which must be a relay message.
pub async fn next_message(ws: &mut Ws) -> RelayMessage {
    match next_frame(ws).await {
        Frame::Relay(message) => message,
        Frame::Closed(code) => panic!("the relay closed the session ({code:?})"),
    }
}
