//! The local app a listener forwards to: a real HTTP server on loopback that
//! records every request and answers with a programmable status.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// The header carrying the relay's event id on forwarded requests.
pub const EVENT_ID_HEADER: &str = "lobster-relay-event-id";
/// The header carrying the delivery attempt on forwarded requests.
pub const ATTEMPT_HEADER: &str = "lobster-relay-attempt";

/// One request the sink received.
#[derive(Debug, Clone)]
pub struct SinkRequest {
    /// Arrival order, from 0.
    pub seq: usize,
    pub method: String,
    /// Path and query, e.g. `/hooks?a=1`.
    pub path: String,
    /// Names lowercased, in arrival order.
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
    /// The status the sink answered with.
    pub status: u16,
    /// When it arrived.
    pub at: Instant,
}

impl SinkRequest {
    /// The first value of header `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.header_all(name).into_iter().next()
    }

    /// Every value of header `name` (any case).
    pub fn header_all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
            .collect()
    }

    /// `Lobster-Relay-Event-Id`.
    pub fn event_id(&self) -> Option<&str> {
        self.header(EVENT_ID_HEADER)
    }

    /// `Lobster-Relay-Attempt`, parsed.
    pub fn attempt(&self) -> Option<u32> {
        self.header(ATTEMPT_HEADER)?.trim().parse().ok()
    }
}

/// Chooses the status for a request, given how many earlier requests had
/// the same `Lobster-Relay-Event-Id`.
type Responder = Arc<dyn Fn(&SinkRequest, usize) -> u16 + Send + Sync>;

struct Shared {
    log: watch::Sender<Vec<SinkRequest>>,
    /// Requests so far per event id (changed with `log`, under its lock):
    /// counting them in the log instead made a 2,000-event backlog
    /// quadratic, and the sink the slowest part of a push measurement.
    per_event: Mutex<HashMap<String, usize>>,
    responder: Mutex<Responder>,
    /// The `Location` of 3xx answers, when set.
    location: Mutex<Option<String>>,
}

/// A recording HTTP endpoint on `127.0.0.1:PORT`; stops when dropped.
pub struct Sink {
    addr: SocketAddr,
    shared: Arc<Shared>,
    server: JoinHandle<()>,
    /// `https` for [`Sink::start_tls`], else `http`.
    scheme: &'static str,
}

impl Sink {
    /// Starts a sink that answers `200` to everything.
    pub async fn start() -> anyhow::Result<Self> {
        let (shared, app) = Self::app();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .context("binding the sink")?;
        let addr = listener.local_addr()?;
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.ok();
        });
        Ok(Self {
            addr,
            shared,
            server,
            scheme: "http",
        })
    }

    /// The same over HTTPS, serving `cert` (see [`crate::pki`]).
    pub async fn start_tls(cert: &crate::pki::ServerCert) -> anyhow::Result<Self> {
        use rustls::pki_types::pem::PemObject as _;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let (shared, app) = Self::app();
        let chain = vec![CertificateDer::from_pem_slice(cert.cert_pem.as_bytes())?];
        let key = PrivateKeyDer::from_pem_slice(cert.key_pem.as_bytes())?;
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(chain, key)?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .context("binding the sink")?;
        let addr = listener.local_addr()?;
        let tls = TlsListener {
            tcp: listener,
            acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(config)),
        };
        let server = tokio::spawn(async move {
            axum::serve(tls, app).await.ok();
        });
        Ok(Self {
            addr,
            shared,
            server,
            scheme: "https",
        })
    }

    fn app() -> (Arc<Shared>, Router) {
        let shared = Arc::new(Shared {
            log: watch::Sender::new(Vec::new()),
            per_event: Mutex::new(HashMap::new()),
            responder: Mutex::new(Arc::new(|_, _| 200)),
            location: Mutex::new(None),
        });
        let app = Router::new()
            .fallback(record)
            .layer(DefaultBodyLimit::max(64 << 20))
            .with_state(shared.clone());
        (shared, app)
    }

    /// 3xx answers carry `Location: {url}` from now on.
    pub fn redirect_to(&self, url: &str) {
        *self.shared.location.lock().expect("location lock") = Some(url.to_owned());
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// `http://127.0.0.1:PORT{path}` (`https` for [`Sink::start_tls`]).
    pub fn url(&self, path: &str) -> String {
        format!("{}://{}{path}", self.scheme, self.addr)
    }

    /// `127.0.0.1:PORT{path}`: the scheme-less form `--forward` accepts.
    pub fn host_path(&self, path: &str) -> String {
        format!("{}{path}", self.addr)
    }

    /// Answers each request with `f(request, earlier requests for the same
    /// event id)`, e.g. `|_, earlier| if earlier < 2 { 500 } else { 200 }`.
    pub fn respond_with(&self, f: impl Fn(&SinkRequest, usize) -> u16 + Send + Sync + 'static) {
        *self.shared.responder.lock().expect("responder lock") = Arc::new(f);
    }

    /// Every request so far, in arrival order.
    pub fn requests(&self) -> Vec<SinkRequest> {
        self.shared.log.borrow().clone()
    }

    pub fn len(&self) -> usize {
        self.shared.log.borrow().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Waits until at least `n` requests arrived; returns all of them.
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> anyhow::Result<Vec<SinkRequest>> {
        self.wait_until(&format!("{n} requests"), timeout, |reqs| reqs.len() >= n)
            .await
    }

    /// Waits until `done(all requests so far)` holds; returns the requests.
    pub async fn wait_until(
        &self,
        what: &str,
        timeout: Duration,
        mut done: impl FnMut(&[SinkRequest]) -> bool,
    ) -> anyhow::Result<Vec<SinkRequest>> {
        let mut rx = self.shared.log.subscribe();
        let waited = tokio::time::timeout(timeout, rx.wait_for(|reqs| done(reqs))).await;
        match waited {
            Ok(Ok(reqs)) => Ok(reqs.clone()),
            Ok(Err(_)) => bail!("the sink stopped while waiting for {what}"),
            Err(_) => bail!(
                "sink: no {what} within {timeout:?} ({} requests arrived)",
                self.len()
            ),
        }
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn record(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> axum::response::Response {
    use axum::response::IntoResponse as _;
    let responder = shared.responder.lock().expect("responder lock").clone();
    let mut req = SinkRequest {
        seq: 0,
        method: method.to_string(),
        path: uri
            .path_and_query()
            .map_or_else(|| uri.path().to_owned(), |pq| pq.to_string()),
        headers: headers
            .iter()
            .map(|(name, value)| {
                (
                    name.as_str().to_owned(),
                    String::from_utf8_lossy(value.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body,
        status: 0,
        at: Instant::now(),
    };
    // Decided and recorded under one lock so "earlier" counts are exact.
    shared.log.send_modify(|log| {
        let earlier = match req.event_id() {
            Some(id) => {
                let mut counts = shared.per_event.lock().expect("per-event lock");
                let count = counts.entry(id.to_owned()).or_default();
                *count += 1;
                *count - 1
            }
            None => 0,
        };
        req.seq = log.len();
        req.status = responder(&req, earlier);
        log.push(req.clone());
    });
    let status = StatusCode::from_u16(req.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let location = shared.location.lock().expect("location lock").clone();
    match location {
        Some(url) if status.is_redirection() => {
            (status, [(axum::http::header::LOCATION, url)]).into_response()
        }
        _ => status.into_response(),
    }
}

/// Accepts TCP connections and completes their TLS handshakes, one at a
/// time (enough for a test's receiver).
struct TlsListener {
    tcp: tokio::net::TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
}

impl axum::serve::Listener for TlsListener {
    type Io = tokio_rustls::server::TlsStream<tokio::net::TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let Ok((tcp, addr)) = self.tcp.accept().await else {
                continue;
            };
            let handshake =
                tokio::time::timeout(Duration::from_secs(10), self.acceptor.accept(tcp)).await;
            if let Ok(Ok(tls)) = handshake {
                return (tls, addr);
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WAIT: Duration = Duration::from_secs(5);

    #[tokio::test]
    async fn records_raw_bytes_headers_and_order() {
        let sink = Sink::start().await.unwrap();
        let http = reqwest::Client::builder().no_proxy().build().unwrap();
        let binary: Vec<u8> = (0..=255).collect();
        for (n, body) in [b"{\"a\":1}".to_vec(), binary.clone()]
            .into_iter()
            .enumerate()
        {
            let resp = http
                .post(sink.url("/hooks?x=1"))
                .header("X-Custom", format!("v{n}"))
                .body(body)
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 200);
        }
        let reqs = sink.wait_for(2, WAIT).await.unwrap();
        assert_eq!(reqs[0].method, "POST");
        assert_eq!(reqs[0].path, "/hooks?x=1");
        assert_eq!(&reqs[0].body[..], b"{\"a\":1}");
        assert_eq!(reqs[0].header("x-custom"), Some("v0"));
        assert_eq!(reqs[1].body.to_vec(), binary);
        assert_eq!((reqs[0].seq, reqs[1].seq), (0, 1));
    }

    #[tokio::test]
    async fn answers_by_the_responder_per_event_id() {
        let sink = Sink::start().await.unwrap();
        sink.respond_with(|_, earlier| if earlier < 2 { 500 } else { 200 });
        let http = reqwest::Client::builder().no_proxy().build().unwrap();
        let mut statuses = Vec::new();
        for id in ["evt_a", "evt_a", "evt_b", "evt_a"] {
            let resp = http
                .post(sink.url("/"))
                .header(EVENT_ID_HEADER, id)
                .send()
                .await
                .unwrap();
            statuses.push(resp.status().as_u16());
        }
        assert_eq!(statuses, [500, 500, 500, 200]);
        assert_eq!(
            sink.requests().iter().map(|r| r.status).collect::<Vec<_>>(),
            statuses
        );
    }

    #[tokio::test]
    async fn waiting_for_more_than_arrived_times_out() {
        let sink = Sink::start().await.unwrap();
        let err = sink
            .wait_for(1, Duration::from_millis(50))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("no 1 requests"), "{err}");
    }
}
