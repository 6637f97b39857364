//! `swarm` (hidden): one client process of `agents`. It holds many idle
//! agent sessions with a lean WebSocket client, reconnects each one with the
//! CLI's backoff, acks every event, and reports what happens as lines on
//! stdout until its stdin closes.
//!
//! Lines (times are Unix nanoseconds, the clock the parent shares on one
//! machine): `R idx t` ready; `E idx t seq` event; `D idx t why` a session
//! that was ready ended; `X idx why` an attempt failed before `ready`;
//! `F idx why` fatal, the agent stops.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use futures_util::{SinkExt as _, StreamExt as _};
use lobster_shared::wire::{AgentMessage, RelayMessage, close_code};
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufWriter};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::{Semaphore, mpsc};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

use crate::load::parse_body;

/// TCP connect, then the HTTP upgrade, then the `ready` frame: each step
/// gets this long before the attempt counts as failed.
const STEP_LIMIT: Duration = Duration::from_secs(10);
/// A session that stayed up this long after `ready` resets the backoff.
pub use lobster_shared::backoff::STABLE;
use lobster_shared::backoff::{Backoff, RESTART_STEP, RESTART_TRIES};

/// How the client processes connect; `agents` passes these on to `swarm`.
#[derive(Debug, Clone, clap::Args)]
pub struct ClientArgs {
    /// Source addresses per client process (127.0.P.1 ..), bound with
    /// IP_BIND_ADDRESS_NO_PORT so no one address runs out of ports
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u8).range(1..=250))]
    pub sources: u8,
    /// First connects in flight per client process (reconnects are not
    /// limited: each agent retries on its own, as separate CLIs would)
    #[arg(long, default_value_t = 256)]
    pub connect_concurrency: usize,
    /// Ceiling of the first retry's delay (the CLI's is 250 ms)
    #[arg(long, default_value = "250ms", value_parser = humantime::parse_duration)]
    pub backoff_first: Duration,
    /// Ceiling of every retry's delay (the CLI's is 10 s)
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub backoff_cap: Duration,
    /// tungstenite read buffer per connection, bytes (its default is 128 KiB)
    #[arg(long, default_value_t = 4096)]
    pub read_buffer: usize,
}

impl ClientArgs {
    /// The arguments that give a `swarm` child the same settings.
    pub fn to_args(&self) -> Vec<String> {
        let d = |d: Duration| humantime::format_duration(d).to_string();
        vec![
            format!("--sources={}", self.sources),
            format!("--connect-concurrency={}", self.connect_concurrency),
            format!("--backoff-first={}", d(self.backoff_first)),
            format!("--backoff-cap={}", d(self.backoff_cap)),
            format!("--read-buffer={}", self.read_buffer),
        ]
    }

    /// The reconnect policy in words, for the run's setup.
    pub fn policy(&self) -> String {
        format!(
            "full jitter: retry n waits U[0, min({}, {} * 2^n)), reset after {} up; \
             after a 1012 close the next {RESTART_TRIES} retries wait U[0, {}) \
             (shared/src/backoff.rs, as the CLI); no GET /agent/me before connecting",
            humantime::format_duration(self.backoff_cap),
            humantime::format_duration(self.backoff_first),
            humantime::format_duration(STABLE),
            humantime::format_duration(RESTART_STEP),
        )
    }
}

#[derive(Debug, Clone, clap::Args)]
pub struct SwarmArgs {
    /// The relay's base URL (http://host:port)
    #[arg(long)]
    pub relay: String,
    /// A file with one API key a line
    #[arg(long)]
    pub keys: PathBuf,
    /// The run-wide index of the first key, used in the report lines
    #[arg(long, default_value_t = 0)]
    pub first: usize,
    /// Third octet of this process's source addresses (127.0.NET.x)
    #[arg(long, default_value_t = 1)]
    pub net: u8,
    #[command(flatten)]
    pub client: ClientArgs,
}

/// Runs the swarm until stdin closes.
pub async fn main(args: &SwarmArgs) -> anyhow::Result<()> {
    let keys = std::fs::read_to_string(&args.keys)
        .with_context(|| format!("cannot read {}", args.keys.display()))?;
    let relay: SocketAddr = args
        .relay
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .parse()
        .context("--relay must be http://IP:PORT")?;
    let url = format!("ws://{relay}/api/v1/agent/connect");
    let config = WebSocketConfig::default()
        .read_buffer_size(args.client.read_buffer)
        .write_buffer_size(0)
        .max_message_size(Some(1 << 20));
    let (out, lines) = mpsc::unbounded_channel();
    let writer = tokio::spawn(write_lines(lines));
    let gate = Arc::new(Semaphore::new(args.client.connect_concurrency.max(1)));
    for (i, key) in keys.lines().filter(|k| !k.is_empty()).enumerate() {
        let agent = Agent {
            idx: args.first + i,
            relay,
            source: Ipv4Addr::new(
                127,
                0,
                args.net,
                1 + (i % args.client.sources as usize) as u8,
            ),
            url: url.clone(),
            bearer: format!("Bearer {key}").parse()?,
            config,
            out: out.clone(),
            client: args.client.clone(),
        };
        tokio::spawn(agent.run(gate.clone()));
    }
    drop(out);
    // The parent closes stdin to stop this process (or dies).
    let mut stdin = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    while let Ok(Some(_)) = stdin.next_line().await {}
    writer.abort();
    Ok(())
}

async fn write_lines(mut lines: mpsc::UnboundedReceiver<String>) {
    let mut stdout = BufWriter::new(tokio::io::stdout());
    while let Some(line) = lines.recv().await {
        let mut next = Some(line);
        while let Some(line) = next {
            if stdout.write_all(line.as_bytes()).await.is_err() {
                return;
            }
            next = lines.try_recv().ok();
        }
        if stdout.flush().await.is_err() {
            return;
        }
    }
}

pub fn unix_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos() as u64
}

/// One agent's reconnect loop.
struct Agent {
    idx: usize,
    relay: SocketAddr,
    source: Ipv4Addr,
    url: String,
    bearer: http::HeaderValue,
    config: WebSocketConfig,
    out: mpsc::UnboundedSender<String>,
    client: ClientArgs,
}

/// How a session attempt ended.
enum End {
    /// Failed before `ready`.
    Failed(String),
    /// Was ready for this long, then ended; the close code if the relay sent one.
    Dropped(String, Duration, Option<u16>),
    Fatal(String),
}

impl Agent {
    async fn run(self, gate: Arc<Semaphore>) {
        // The CLI's policy (lobster_shared::backoff), with the run's limits.
        let mut backoff = Backoff::with_limits(self.client.backoff_first, self.client.backoff_cap);
        let mut first = Some(gate);
        loop {
            let permit = match &first {
                Some(gate) => gate.clone().acquire_owned().await.ok(),
                None => None,
            };
            let end = self.session(permit).await;
            first = None;
            let idx = self.idx;
            match end {
                End::Failed(why) => {
                    let _ = self.out.send(format!("X {idx} {why}\n"));
                }
                End::Dropped(why, up_for, code) => {
                    let _ = self.out.send(format!("D {idx} {} {why}\n", unix_ns()));
                    backoff.connection_lasted(up_for);
                    if code == Some(close_code::RESTARTING) {
                        backoff.relay_restarting();
                    }
                }
                End::Fatal(why) => {
                    let _ = self.out.send(format!("F {idx} {why}\n"));
                    return;
                }
            }
            tokio::time::sleep(backoff.next_delay()).await;
        }
    }

    async fn session(&self, permit: Option<tokio::sync::OwnedSemaphorePermit>) -> End {
        let mut ws = match self.connect().await {
            Ok(ws) => ws,
            Err(end) => return end,
        };
        drop(permit);
        let ready = Instant::now();
        let idx = self.idx;
        let _ = self.out.send(format!("R {idx} {}\n", unix_ns()));
        let dropped = |why: String| End::Dropped(why, ready.elapsed(), None);
        loop {
            let text = match ws.next().await {
                Some(Ok(Message::Text(text))) => text,
                Some(Ok(Message::Close(frame))) => {
                    let code = frame.map_or(1005, |f| u16::from(f.code));
                    if code == close_code::UNAUTHORIZED || code == close_code::REVOKED {
                        return End::Fatal(format!("close-{code}"));
                    }
                    return End::Dropped(format!("close-{code}"), ready.elapsed(), Some(code));
                }
                Some(Ok(_)) => continue,
                Some(Err(err)) => return dropped(ws_error(&err)),
                None => return dropped("eof".into()),
            };
            let Ok(RelayMessage::Event(event)) = RelayMessage::from_json(&text) else {
                continue;
            };
            let seq = event.raw_body().ok().and_then(|b| parse_body(&b));
            let seq = seq.map_or(u64::MAX, |(seq, _)| seq);
            let _ = self.out.send(format!("E {idx} {} {seq}\n", unix_ns()));
            let ack = AgentMessage::Ack { id: event.id }.to_json();
            if let Err(err) = ws.send(Message::text(ack)).await {
                return dropped(ws_error(&err));
            }
        }
    }

    /// TCP from this agent's source address, the upgrade, the `ready` frame.
    async fn connect(&self) -> Result<WebSocketStream<TcpStream>, End> {
        let failed = |why: String| End::Failed(why);
        let stream = tokio::time::timeout(STEP_LIMIT, self.tcp())
            .await
            .map_err(|_| failed("tcp-timeout".into()))?
            .map_err(|err| failed(io_error(&err)))?;
        let mut request = self
            .url
            .as_str()
            .into_client_request()
            .map_err(|err| End::Fatal(ws_error(&err)))?;
        request
            .headers_mut()
            .insert(http::header::AUTHORIZATION, self.bearer.clone());
        let upgrade =
            tokio_tungstenite::client_async_with_config(request, stream, Some(self.config));
        let (mut ws, _) = match tokio::time::timeout(STEP_LIMIT, upgrade).await {
            Err(_) => return Err(failed("upgrade-timeout".into())),
            Ok(Err(WsError::Http(response))) => {
                let status = response.status().as_u16();
                return Err(if status == 401 || status == 403 {
                    End::Fatal(format!("http-{status}"))
                } else {
                    failed(format!("http-{status}"))
                });
            }
            Ok(Err(err)) => return Err(failed(ws_error(&err))),
            Ok(Ok(ws)) => ws,
        };
        match tokio::time::timeout(STEP_LIMIT, ws.next()).await {
            Err(_) => Err(failed("ready-timeout".into())),
            Ok(Some(Ok(Message::Text(text)))) => match RelayMessage::from_json(&text) {
                Ok(RelayMessage::Ready(_)) => Ok(ws),
                _ => Err(failed("not-ready-frame".into())),
            },
            Ok(Some(Ok(Message::Close(frame)))) => {
                let code = frame.map_or(1005, |f| u16::from(f.code));
                Err(failed(format!("close-{code}")))
            }
            Ok(Some(Err(err))) => Err(failed(ws_error(&err))),
            Ok(_) => Err(failed("no-ready-frame".into())),
        }
    }

    async fn tcp(&self) -> std::io::Result<TcpStream> {
        let socket = TcpSocket::new_v4()?;
        // Leave the port to connect(), which needs only the 4-tuple to be
        // unique: a bound port would be reserved for this address alone.
        #[cfg(target_os = "linux")]
        nix::sys::socket::setsockopt(
            &socket,
            nix::sys::socket::sockopt::IpBindAddressNoPort,
            &true,
        )?;
        socket.bind(SocketAddr::new(self.source.into(), 0))?;
        let stream = socket.connect(self.relay).await?;
        stream.set_nodelay(true)?;
        Ok(stream)
    }
}

/// A short, space-free name for an I/O failure.
fn io_error(err: &std::io::Error) -> String {
    use std::io::ErrorKind as K;
    match err.kind() {
        K::ConnectionRefused => "refused".into(),
        K::ConnectionReset => "reset".into(),
        K::ConnectionAborted => "aborted".into(),
        K::BrokenPipe => "broken-pipe".into(),
        K::UnexpectedEof => "eof".into(),
        K::TimedOut => "timeout".into(),
        K::AddrNotAvailable => "addr-not-available".into(),
        _ => match err.raw_os_error() {
            Some(code) => format!("os-{code}"),
            None => format!("{:?}", err.kind()).to_lowercase(),
        },
    }
}

fn ws_error(err: &WsError) -> String {
    match err {
        WsError::Io(err) => io_error(err),
        WsError::ConnectionClosed | WsError::AlreadyClosed => "closed".into(),
        WsError::Protocol(_) => "protocol".into(),
        WsError::Http(response) => format!("http-{}", response.status().as_u16()),
        _ => "ws-other".into(),
    }
}
