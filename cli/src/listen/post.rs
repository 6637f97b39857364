//! One POST to the local app, over a kept-alive connection.
//!
//! A plain `http://` target (the usual `localhost:3000/hooks`) goes through
//! hyper-util's pooled HTTP/1.1 client directly: reqwest runs the same
//! client under layers this path never uses (URL parsing and conversion per
//! request, redirect and retry middleware, a second header map), which
//! measured as a fifth of `listen`'s CPU per event. Any other target
//! (`https://`, or a URL with a user name or a fragment, which reqwest turns
//! into an `Authorization` header or drops) keeps reqwest, with its TLS
//! setup for `--ca-cert` and `--forward-insecure`.
//!
//! Both paths send the same request: the given headers, `accept: */*` when
//! the sender set none (reqwest's default), `host` and `content-length` of
//! the new request, TCP_NODELAY, no proxy, no redirect followed, idle
//! connections kept for 90 s. The timeout covers the whole exchange; an
//! answer whose body does not arrive in time still counts by its status.

use std::time::Duration;

use bytes::Bytes;
use http::header::{ACCEPT, HeaderMap, HeaderValue};
use http::{Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt as _, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use reqwest::Url;
use tokio::time::{Instant, timeout_at};

/// How long an idle connection to the app is kept (reqwest's default).
const POOL_IDLE: Duration = Duration::from_secs(90);

/// Where a route's events go, prepared once.
pub struct Target {
    url: Url,
    /// Set for a plain `http://` URL the direct client can take.
    uri: Option<Uri>,
}

impl Target {
    pub fn new(url: &Url) -> Self {
        let plain = url.scheme() == "http"
            && url.username().is_empty()
            && url.password().is_none()
            && url.fragment().is_none();
        let uri = plain.then(|| url.as_str().parse::<Uri>().ok()).flatten();
        Self {
            url: url.clone(),
            uri,
        }
    }
}

/// Why a POST got no answer.
#[derive(Debug)]
pub enum PostError {
    /// Nothing within the timeout.
    Timeout,
    /// The connection could not be made; `tls` when the handshake failed.
    Connect { tls: bool, cause: String },
    /// Anything else, as a chain of causes.
    Other(String),
}

/// The clients a forwarder POSTs with.
pub struct Poster {
    plain: Client<HttpConnector, Full<Bytes>>,
    other: reqwest::Client,
    timeout: Duration,
}

impl Poster {
    /// `other` is the reqwest client for the targets `plain` cannot take.
    pub fn new(other: reqwest::Client, timeout: Duration) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let plain = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(POOL_IDLE)
            .pool_timer(TokioTimer::new())
            .build(connector);
        Self {
            plain,
            other,
            timeout,
        }
    }

    /// POSTs `body` with `headers` to `target`; the status and the answer.
    pub async fn post(
        &self,
        target: &Target,
        headers: HeaderMap,
        body: Bytes,
    ) -> Result<(StatusCode, Bytes), PostError> {
        let deadline = Instant::now() + self.timeout;
        match &target.uri {
            Some(uri) => self.post_plain(uri, headers, body, deadline).await,
            // reqwest's client has the same timeout of its own.
            None => self.post_other(&target.url, headers, body).await,
        }
    }

    async fn post_plain(
        &self,
        uri: &Uri,
        mut headers: HeaderMap,
        body: Bytes,
        deadline: Instant,
    ) -> Result<(StatusCode, Bytes), PostError> {
        if !headers.contains_key(ACCEPT) {
            headers.insert(ACCEPT, HeaderValue::from_static("*/*"));
        }
        let mut request = Request::new(Full::new(body));
        *request.method_mut() = Method::POST;
        *request.uri_mut() = uri.clone();
        *request.headers_mut() = headers;
        let response = match timeout_at(deadline, self.plain.request(request)).await {
            Err(_) => return Err(PostError::Timeout),
            Ok(Err(err)) if err.is_connect() => {
                return Err(PostError::Connect {
                    tls: false,
                    cause: root_cause(&err),
                });
            }
            Ok(Err(err)) => return Err(PostError::Other(lobster_shared::error_chain(&err))),
            Ok(Ok(response)) => response,
        };
        let status = response.status();
        let answer = timeout_at(deadline, response.into_body().collect())
            .await
            .ok()
            .and_then(Result::ok)
            .map(|collected| collected.to_bytes())
            .unwrap_or_default();
        Ok((status, answer))
    }

    async fn post_other(
        &self,
        url: &Url,
        headers: HeaderMap,
        body: Bytes,
    ) -> Result<(StatusCode, Bytes), PostError> {
        // The request has no headers yet: this sets these, in their order.
        let request = self.other.post(url.clone()).body(body).headers(headers);
        match request.send().await {
            Ok(response) => {
                let status = response.status();
                let answer = response.bytes().await.unwrap_or_default();
                Ok((status, answer))
            }
            Err(err) if err.is_timeout() => Err(PostError::Timeout),
            Err(err) if err.is_connect() => Err(PostError::Connect {
                tls: is_tls(&err),
                cause: root_cause(&err),
            }),
            Err(err) => Err(PostError::Other(lobster_shared::error_chain(&err))),
        }
    }
}

/// Whether a connect error came from the TLS handshake (a certificate the
/// CLI does not trust, a protocol mismatch) rather than the TCP connect.
fn is_tls(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(err);
    while let Some(err) = cause {
        if err.is::<rustls::Error>() {
            return true;
        }
        // io::Error's source() skips the error it wraps: look inside.
        if let Some(io) = err.downcast_ref::<std::io::Error>()
            && io
                .get_ref()
                .is_some_and(|inner| inner.is::<rustls::Error>())
        {
            return true;
        }
        // Some layers keep only the text of the rustls error.
        let text = err.to_string();
        if text.contains("peer certificate") || text.contains("TLS") || text.contains("handshake") {
            return true;
        }
        cause = err.source();
    }
    false
}

/// The innermost error text, e.g. `Connection refused (os error 111)`.
fn root_cause(err: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = err;
    while let Some(source) = cause.source() {
        cause = source;
    }
    cause.to_string()
}
