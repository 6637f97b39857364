//! The local HTTP app that `lobster-relay listen --forward` posts to: answers
//! 200 at once and notes when each body arrived.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use axum::Router;
use axum::extract::State;
use axum::routing::any;
use bytes::Bytes;
use http::StatusCode;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::load::parse_body;
use crate::stats::Recorder;

/// The path the sink answers on; everything else gets 404 and is counted.
pub const PATH: &str = "/hook";
/// A path that answers 200 and records nothing: for probes such as
/// `compare`'s check that a tunnel is up.
pub const HEALTH_PATH: &str = "/healthz";

#[derive(Clone)]
struct Shared {
    recorder: Arc<Recorder>,
    clock: Instant,
    stray: Arc<AtomicU64>,
}

/// A running sink.
pub struct Sink {
    pub addr: SocketAddr,
    stray: Arc<AtomicU64>,
    stop: CancellationToken,
    task: JoinHandle<std::io::Result<()>>,
}

impl Sink {
    /// Binds 127.0.0.1:0 and serves until [`Sink::stop`].
    pub async fn start(recorder: Arc<Recorder>, clock: Instant) -> anyhow::Result<Sink> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let stray = Arc::new(AtomicU64::new(0));
        let shared = Shared {
            recorder,
            clock,
            stray: stray.clone(),
        };
        let app = Router::new()
            .route(PATH, any(receive))
            .route(HEALTH_PATH, any(|| async { StatusCode::OK }))
            .fallback(stray_request)
            .with_state(shared);
        let stop = CancellationToken::new();
        let task = tokio::spawn(
            axum::serve(listener, app)
                .with_graceful_shutdown(stop.clone().cancelled_owned())
                .into_future(),
        );
        Ok(Sink {
            addr,
            stray,
            stop,
            task,
        })
    }

    /// Stops serving; returns how many requests hit another path.
    pub async fn stop(self) -> u64 {
        self.stop.cancel();
        // Idle keep-alive connections would hold graceful shutdown open.
        let _ = tokio::time::timeout(std::time::Duration::from_secs(2), self.task).await;
        self.stray.load(Ordering::Relaxed)
    }
}

async fn receive(State(shared): State<Shared>, body: Bytes) -> StatusCode {
    let now = shared.clock.elapsed();
    shared.recorder.record(parse_body(&body), now);
    StatusCode::OK
}

async fn stray_request(State(shared): State<Shared>) -> StatusCode {
    shared.stray.fetch_add(1, Ordering::Relaxed);
    StatusCode::NOT_FOUND
}
