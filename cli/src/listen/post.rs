//! One POST to the local app, over a kept-alive connection.
//!
//! A plain `http://` target (the usual `localhost:3000/hooks`) goes through
//! our own pool of HTTP/1.1 connections ([`super::pool`]): reqwest, and
//! hyper-util's legacy client under it, spent per request on layers this
//! path never uses (URL parsing and conversion, redirect and retry
//! middleware, a second header map, a pool checkout racing a connect, a
//! task to return the connection). Any other target (`https://`, or a URL
//! with a user name or a fragment, which reqwest turns into an
//! `Authorization` header or drops) keeps reqwest, with its TLS setup for
//! `--ca-cert` and `--forward-insecure`.
//!
//! Both paths send the same request: the given headers, `accept: */*` when
//! the sender set none (reqwest's default), `host` and `content-length` of
//! the new request, TCP_NODELAY, no proxy, no redirect followed, idle
//! connections kept for 90 s. The timeout covers the whole exchange; an
//! answer whose body does not arrive in time still counts by its status.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{ACCEPT, HeaderMap, HeaderValue};
use http::{Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt as _, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use reqwest::Url;
use tokio::time::{Instant, timeout_at};

use super::pool::{Pool, PoolError};

/// Where a route's events go, prepared once.
pub struct Target {
    url: Url,
    /// Set for a plain `http://` URL the pools can take: the pool of its
    /// host and port, and the request's URI in origin form.
    plain: Option<(Arc<Pool>, Uri)>,
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
    /// One per host and port of the plain targets.
    pools: Vec<Arc<Pool>>,
    connector: HttpConnector,
    other: reqwest::Client,
    timeout: Duration,
}

impl Poster {
    /// `other` is the reqwest client for the targets the pools cannot take.
    pub fn new(other: reqwest::Client, timeout: Duration) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        Self {
            pools: Vec::new(),
            connector,
            other,
            timeout,
        }
    }

    /// The target for `url`. Targets on one host and port share their
    /// connections, as they did in the legacy client's pool.
    pub fn target(&mut self, url: &Url) -> Target {
        let plain = url.scheme() == "http"
            && url.username().is_empty()
            && url.password().is_none()
            && url.fragment().is_none();
        let uri = plain.then(|| url.as_str().parse::<Uri>().ok()).flatten();
        let plain = uri.and_then(|uri| {
            let pool = match self.pools.iter().find(|pool| pool.same_origin(&uri)) {
                Some(pool) => pool.clone(),
                None => {
                    let pool = Arc::new(Pool::new(&uri, self.connector.clone())?);
                    self.pools.push(pool.clone());
                    pool
                }
            };
            Some((pool, origin_form(&uri)))
        });
        Target {
            url: url.clone(),
            plain,
        }
    }

    /// How many kept connections to the plain targets are still open (tests).
    #[cfg(test)]
    pub fn open_idle(&self) -> usize {
        self.pools.iter().map(|pool| pool.open_idle()).sum()
    }

    /// POSTs `body` with `headers` to `target`; the status and the answer.
    pub async fn post(
        &self,
        target: &Target,
        headers: HeaderMap,
        body: Bytes,
    ) -> Result<(StatusCode, Bytes), PostError> {
        let deadline = Instant::now() + self.timeout;
        match &target.plain {
            Some((pool, path)) => post_plain(pool, path, headers, body, deadline).await,
            // reqwest's client has the same timeout of its own.
            None => self.post_other(&target.url, headers, body).await,
        }
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

/// The URI of a request on a connection to its host: the path and query,
/// `/` when empty (as the legacy client sent it).
fn origin_form(uri: &Uri) -> Uri {
    match uri.path_and_query() {
        Some(path) if path.as_str() != "/" => Uri::from(path.clone()),
        _ => Uri::default(),
    }
}

async fn post_plain(
    pool: &Pool,
    path: &Uri,
    mut headers: HeaderMap,
    body: Bytes,
    deadline: Instant,
) -> Result<(StatusCode, Bytes), PostError> {
    if !headers.contains_key(ACCEPT) {
        headers.insert(ACCEPT, HeaderValue::from_static("*/*"));
    }
    let mut request = Request::new(Full::new(body));
    *request.method_mut() = Method::POST;
    *request.uri_mut() = path.clone();
    *request.headers_mut() = headers;
    let (response, taken) = match timeout_at(deadline, pool.send(request)).await {
        Err(_) => return Err(PostError::Timeout),
        Ok(Err(PoolError::Connect(cause))) => {
            return Err(PostError::Connect {
                tls: false,
                cause: root_cause(&*cause),
            });
        }
        Ok(Err(err)) => return Err(PostError::Other(lobster_shared::error_chain(&err))),
        Ok(Ok(sent)) => sent,
    };
    let status = response.status();
    let answer = timeout_at(deadline, response.into_body().collect())
        .await
        .ok()
        .and_then(Result::ok)
        .map(|collected| collected.to_bytes());
    // A connection whose answer was not read to its end cannot carry
    // another request: only one that was goes back.
    match answer {
        Some(answer) => {
            pool.put(taken);
            Ok((status, answer))
        }
        None => Ok((status, Bytes::new())),
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
