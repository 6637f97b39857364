//! The accept loop: plain or TLS, one hyper HTTP/1.1 connection per
//! accepted stream, with the upgrades WebSockets need. Streams come from a
//! [`Listener`]: a TCP socket, or in tests the halves of in-memory pipes.
//!
//! `axum::serve` cannot terminate TLS nor bound how long a client may take
//! to send its headers; this loop does both. Each request carries the
//! peer's address as `ConnectInfo<SocketAddr>` (per-IP limits), and the
//! answers hyper writes itself get the JSON error body ([`parse_errors`]). On shutdown
//! the loop stops accepting and waits for in-flight requests; upgraded
//! WebSockets are no longer hyper's and close through the session tracker.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::Service as _;

mod listener;
mod parse_errors;
pub use listener::Listener;
use parse_errors::JsonParseErrors;

/// How long in-flight requests get to finish once the drain starts.
const REQUEST_DRAIN: Duration = Duration::from_secs(10);
/// Pause after a failed accept (out of file descriptors): let some close.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// How connections are served.
#[derive(Clone)]
pub struct Serving {
    /// `None`: plain HTTP.
    pub tls: Option<TlsAcceptor>,
    /// Request headers, and the TLS handshake, must arrive within this.
    pub header_timeout: Duration,
    /// Open connections at most (`--max-connections`), WebSocket sessions
    /// included.
    pub max_connections: usize,
}

/// One of the `--max-connections` slots. Every request carries it; a
/// WebSocket session keeps it after the upgrade (the socket outlives
/// hyper's connection), so the slot is free only when the socket is closed.
#[derive(Clone)]
pub struct ConnectionSlot {
    _permit: Arc<OwnedSemaphorePermit>,
}

/// How long a new connection waits for idle ones to be shed at the cap.
const SHED_WAIT: Duration = Duration::from_millis(200);
/// At most one "connection limit reached" line this often.
const REFUSAL_LOG_EVERY: Duration = Duration::from_secs(1);

/// The default `--max-connections`: the open-files limit minus a reserve
/// for the database, logs and outgoing connections (a tenth of it, at
/// least 32, at most 1024), so the relay sheds connections before accept
/// fails for want of a file descriptor.
pub fn default_max_connections() -> usize {
    let soft = open_files_limit().unwrap_or(10_240);
    let reserve = (soft / 10).clamp(32, 1024);
    soft.saturating_sub(reserve).max(16)
}

/// The soft `RLIMIT_NOFILE`, from `/proc/self/limits` (Linux).
fn open_files_limit() -> Option<usize> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Serves `app` on `listener` until `shutdown`, then drains requests.
///
/// HTTP/1.1 only, through hyper's own http1 builder: hyper-util's `auto`
/// builder first waits for bytes to pick a protocol, with no timer, so a
/// client that connects and says nothing would be held forever.
pub async fn serve<L: Listener>(
    mut listener: L,
    app: Router,
    serving: Serving,
    shutdown: CancellationToken,
) {
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(serving.header_timeout);
    let builder = Arc::new(builder);
    let connections = TaskTracker::new();
    let slots = Arc::new(Semaphore::new(serving.max_connections));
    let shed = Arc::new(Notify::new());
    let mut refusals = Refusals::default();
    loop {
        let (io, peer) = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    tracing::warn!(error = %err, "accept failed");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
        };
        let slot = match slots.clone().try_acquire_owned() {
            Ok(slot) => slot,
            Err(_) => {
                // At the cap: idle keep-alive connections close (busy ones
                // after their request), and this one waits a moment for a
                // slot they free; else it is closed at once.
                shed.notify_waiters();
                match tokio::time::timeout(SHED_WAIT, slots.clone().acquire_owned()).await {
                    Ok(Ok(slot)) => slot,
                    _ => {
                        refusals.refused(serving.max_connections);
                        drop(io);
                        continue;
                    }
                }
            }
        };
        let connection = Connection {
            app: app.clone(),
            builder: builder.clone(),
            serving: serving.clone(),
            peer,
            slot: ConnectionSlot {
                _permit: Arc::new(slot),
            },
            shed: shed.clone(),
        };
        connections.spawn(connection.run(io, shutdown.clone()));
    }
    drop(listener);
    connections.close();
    if tokio::time::timeout(REQUEST_DRAIN, connections.wait())
        .await
        .is_err()
    {
        tracing::warn!("some requests did not finish in time");
    }
}

struct Connection {
    app: Router,
    builder: Arc<http1::Builder>,
    serving: Serving,
    peer: SocketAddr,
    slot: ConnectionSlot,
    shed: Arc<Notify>,
}

/// Counts connections refused at the cap and says so at most once a second.
#[derive(Default)]
struct Refusals {
    last_said: Option<std::time::Instant>,
    unsaid: u64,
}

impl Refusals {
    fn refused(&mut self, max: usize) {
        self.unsaid += 1;
        if self
            .last_said
            .is_none_or(|at| at.elapsed() >= REFUSAL_LOG_EVERY)
        {
            tracing::warn!(
                max_connections = max,
                refused = self.unsaid,
                "connection limit reached: refusing new connections (raise --max-connections, or the open-files limit)"
            );
            self.last_said = Some(std::time::Instant::now());
            self.unsaid = 0;
        }
    }
}

impl Connection {
    async fn run<Io>(self, io: Io, shutdown: CancellationToken)
    where
        Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let Connection {
            app,
            builder,
            serving,
            peer,
            slot,
            shed,
        } = self;
        let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
            request.extensions_mut().insert(ConnectInfo(peer));
            request.extensions_mut().insert(slot.clone());
            let mut app = app.clone();
            async move { Ok::<_, Infallible>(app.call(request).await.unwrap_or_else(|e| match e {})) }
        });
        let result = match serving.tls {
            None => {
                let conn = builder
                    .serve_connection(TokioIo::new(JsonParseErrors::new(io)), service)
                    .with_upgrades();
                until_drained(conn, &shutdown, &shed).await
            }
            Some(acceptor) => {
                let stream =
                    match tokio::time::timeout(serving.header_timeout, acceptor.accept(io)).await {
                        Ok(Ok(stream)) => stream,
                        Ok(Err(err)) => {
                            tracing::debug!(peer = %peer, error = %err, "TLS handshake failed");
                            return;
                        }
                        Err(_) => {
                            tracing::debug!(peer = %peer, "TLS handshake timed out");
                            return;
                        }
                    };
                let conn = builder
                    .serve_connection(TokioIo::new(JsonParseErrors::new(stream)), service)
                    .with_upgrades();
                until_drained(conn, &shutdown, &shed).await
            }
        };
        if let Err(err) = result {
            tracing::debug!(peer = %peer, error = %err, "connection ended with an error");
        }
    }
}

/// Runs a connection; once `shutdown` fires, lets its current request
/// finish and closes it (an idle keep-alive connection closes at once).
async fn until_drained<C>(conn: C, shutdown: &CancellationToken, shed: &Notify) -> hyper::Result<()>
where
    C: Future<Output = hyper::Result<()>> + GracefulShutdown,
{
    let mut conn = std::pin::pin!(conn);
    tokio::select! {
        result = conn.as_mut() => return result,
        _ = shutdown.cancelled() => {}
        _ = shed.notified() => {}
    }
    conn.as_mut().shutdown_gracefully();
    conn.await
}

/// hyper's graceful shutdown, for both stream types.
trait GracefulShutdown {
    fn shutdown_gracefully(self: std::pin::Pin<&mut Self>);
}

impl<I, S> GracefulShutdown for http1::UpgradeableConnection<I, S>
where
    S: hyper::service::HttpService<Incoming, ResBody = axum::body::Body>,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    fn shutdown_gracefully(self: std::pin::Pin<&mut Self>) {
        self.graceful_shutdown();
    }
}
