//! Kept-alive HTTP/1.1 connections to one plain `http://` app, of our own.
//!
//! hyper-util's legacy client did this before, and spent per request what
//! this path does not need: a pool checkout racing a lazy connect future,
//! a pool key cloned and hashed, and a task spawned per request to put the
//! connection back once it was ready again. Here a forwarder keeps, per
//! host and port, a stack of idle `hyper::client::conn::http1` senders:
//! a POST takes the most recently used one, or opens a connection with
//! the same connector (so DNS, happy eyeballs, TCP_NODELAY and the connect
//! errors are the legacy client's), and puts it back once the answer has
//! been read.
//!
//! Kept from the legacy client: the request in origin form with the
//! `host` header it would set, idle connections dropped after [`IDLE`]
//! (checked when one is taken, and by a sweep every [`IDLE`], as its reaper
//! does), a request that a reused connection closed before sending it
//! tried again on another, and its error texts (`client error (...)`).

use std::error::Error as StdError;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use bytes::Bytes;
use http::header::{HOST, HeaderValue};
use http::{Request, Response, Uri};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::client::legacy::connect::HttpConnector;
use tokio::time::Instant;
use tower::Service as _;

/// How long an idle connection to the app is kept (reqwest's default).
pub const IDLE: Duration = Duration::from_secs(90);

type Sender = SendRequest<Full<Bytes>>;

/// The idle connections to one app, and how to open more.
pub struct Pool {
    /// `http://host:port`, what the connector connects to.
    origin: Uri,
    /// The `host` header of every request: the URL's host, and its port
    /// unless it is 80.
    host: HeaderValue,
    connector: HttpConnector,
    idle: Arc<Mutex<Vec<Idle>>>,
    /// Set once the sweep of idle connections runs.
    sweeping: std::sync::Once,
}

struct Idle {
    sender: Sender,
    since: Instant,
}

/// Why a request got no answer; the texts are the legacy client's.
#[derive(Debug)]
pub enum PoolError {
    /// The connection could not be made (DNS, TCP).
    Connect(Box<dyn StdError + Send + Sync>),
    /// hyper gave up on the exchange: `client error (SendRequest)` or
    /// `client error (Canceled)`, with hyper's error as the cause.
    Client {
        kind: &'static str,
        source: hyper::Error,
    },
}

impl fmt::Display for PoolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Connect(_) => f.write_str("client error (Connect)"),
            Self::Client { kind, .. } => write!(f, "client error ({kind})"),
        }
    }
}

impl StdError for PoolError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match self {
            Self::Connect(cause) => Some(&**cause),
            Self::Client { source, .. } => Some(source),
        }
    }
}

/// A connection taken from the pool for one exchange.
pub struct Taken {
    sender: Sender,
    reused: bool,
}

impl Pool {
    /// A pool for `uri` (an `http://` URL with a host).
    pub fn new(uri: &Uri, connector: HttpConnector) -> Option<Self> {
        let authority = uri.authority()?.clone();
        let host = match uri.port_u16() {
            Some(80) | None => HeaderValue::from_str(authority.host()).ok()?,
            Some(port) => HeaderValue::from_str(&format!("{}:{port}", authority.host())).ok()?,
        };
        let origin = Uri::builder()
            .scheme("http")
            .authority(authority)
            .path_and_query("/")
            .build()
            .ok()?;
        Some(Self {
            origin,
            host,
            connector,
            idle: Arc::default(),
            sweeping: std::sync::Once::new(),
        })
    }

    /// Whether `other` connects where this pool does.
    pub fn same_origin(&self, uri: &Uri) -> bool {
        uri.authority() == self.origin.authority()
    }

    /// Sends `request` (its URI in origin form, without `host`) and waits
    /// for the answer's head. Give the connection back with [`Pool::put`]
    /// once the answer's body is read.
    pub async fn send(
        &self,
        mut request: Request<Full<Bytes>>,
    ) -> Result<(Response<Incoming>, Taken), PoolError> {
        request.headers_mut().insert(HOST, self.host.clone());
        loop {
            let mut taken = self.take().await?;
            match taken.sender.try_send_request(request).await {
                Ok(response) => return Ok((response, taken)),
                Err(mut err) => match err.take_message() {
                    // Closed before it was written: safe to send again,
                    // unless a new connection did that.
                    Some(unsent) if taken.reused => request = unsent,
                    Some(_) => {
                        return Err(PoolError::Client {
                            kind: "Canceled",
                            source: err.into_error(),
                        });
                    }
                    None => {
                        return Err(PoolError::Client {
                            kind: "SendRequest",
                            source: err.into_error(),
                        });
                    }
                },
            }
        }
    }

    /// Keeps `taken` for the next request, if its connection stays open.
    pub fn put(&self, taken: Taken) {
        if taken.sender.is_closed() {
            return;
        }
        self.lock().push(Idle {
            sender: taken.sender,
            since: Instant::now(),
        });
    }

    /// The most recently used idle connection still open, or a new one.
    async fn take(&self) -> Result<Taken, PoolError> {
        loop {
            let Some(mut idle) = self.lock().pop() else {
                break;
            };
            if idle.since.elapsed() >= IDLE || idle.sender.is_closed() {
                continue;
            }
            // Put back as soon as its answer was read, it can still be
            // finishing that exchange: wait for it (at once, or closed).
            if idle.sender.is_ready() || idle.sender.ready().await.is_ok() {
                return Ok(Taken {
                    sender: idle.sender,
                    reused: true,
                });
            }
        }
        self.connect().await
    }

    async fn connect(&self) -> Result<Taken, PoolError> {
        self.sweeping
            .call_once(|| sweep(Arc::downgrade(&self.idle)));
        let mut connector = self.connector.clone();
        let connect = |err| PoolError::Connect(Box::new(err));
        std::future::poll_fn(|cx| connector.poll_ready(cx))
            .await
            .map_err(connect)?;
        let io = connector.call(self.origin.clone()).await.map_err(connect)?;
        let tx = |source| PoolError::Client {
            kind: "SendRequest",
            source,
        };
        let (mut sender, connection) = http1::Builder::new().handshake(io).await.map_err(tx)?;
        tokio::spawn(async move {
            if let Err(err) = connection.await {
                tracing::debug!("client connection error: {err:?}");
            }
        });
        sender.ready().await.map_err(tx)?;
        Ok(Taken {
            sender,
            reused: false,
        })
    }

    /// How many kept connections are still open (tests).
    #[cfg(test)]
    pub fn open_idle(&self) -> usize {
        self.lock().iter().filter(|c| !c.sender.is_closed()).count()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Idle>> {
        self.idle.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Every [`IDLE`], closes the connections idle that long, until the pool
/// is gone.
fn sweep(idle: Weak<Mutex<Vec<Idle>>>) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval_at(Instant::now() + IDLE, IDLE);
        loop {
            tick.tick().await;
            let Some(idle) = idle.upgrade() else { return };
            let mut idle = idle.lock().unwrap_or_else(PoisonError::into_inner);
            idle.retain(|conn| conn.since.elapsed() < IDLE && !conn.sender.is_closed());
        }
    });
}
