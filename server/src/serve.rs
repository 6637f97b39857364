//! The accept loop: plain TCP or TLS, one hyper HTTP/1.1 connection per
//! socket, with the upgrades WebSockets need.
//!
//! `axum::serve` cannot terminate TLS nor bound how long a client may take
//! to send its headers; this loop does both. Each request carries the
//! peer's address as `ConnectInfo<SocketAddr>` (per-IP limits). On shutdown
//! the loop stops accepting and waits for in-flight requests; upgraded
//! WebSockets are no longer hyper's and close through the session tracker.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tower::Service as _;

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
}

/// Serves `app` on `listener` until `shutdown`, then drains requests.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    serving: Serving,
    shutdown: CancellationToken,
) {
    let mut builder = auto::Builder::new(TokioExecutor::new()).http1_only();
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(serving.header_timeout);
    let builder = Arc::new(builder);
    let graceful = GracefulShutdown::new();
    loop {
        let (tcp, peer) = tokio::select! {
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
        let _ = tcp.set_nodelay(true);
        let connection = Connection {
            app: app.clone(),
            builder: builder.clone(),
            serving: serving.clone(),
            peer,
        };
        tokio::spawn(connection.run(tcp, graceful.watcher()));
    }
    drop(listener);
    if tokio::time::timeout(REQUEST_DRAIN, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("some requests did not finish in time");
    }
}

struct Connection {
    app: Router,
    builder: Arc<auto::Builder<TokioExecutor>>,
    serving: Serving,
    peer: SocketAddr,
}

impl Connection {
    async fn run(self, tcp: TcpStream, watcher: hyper_util::server::graceful::Watcher) {
        let Connection {
            app,
            builder,
            serving,
            peer,
        } = self;
        let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
            request.extensions_mut().insert(ConnectInfo(peer));
            let mut app = app.clone();
            async move { Ok::<_, Infallible>(app.call(request).await.unwrap_or_else(|e| match e {})) }
        });
        let result = match serving.tls {
            None => {
                let conn = builder.serve_connection_with_upgrades(TokioIo::new(tcp), service);
                watcher.watch(conn).await
            }
            Some(acceptor) => {
                let stream = match tokio::time::timeout(
                    serving.header_timeout,
                    acceptor.accept(tcp),
                )
                .await
                {
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
                let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
                watcher.watch(conn).await
            }
        };
        if let Err(err) = result {
            tracing::debug!(peer = %peer, error = %err, "connection ended with an error");
        }
    }
}
