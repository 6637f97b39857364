//! Opening the WebSocket: `GET /api/v1/agent/connect` upgraded, with the key.
//!
//! An HTTP 401 or 403 on the upgrade is fatal (exit code 3); every other
//! failure is worth another try.

use std::time::Duration;

use http::HeaderValue;
use http::header::{AUTHORIZATION, USER_AGENT};
use lobster_shared::Secret;
use reqwest::Url;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::{self, protocol::WebSocketConfig};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::cli::endpoint;
use crate::exit::{Fatal, error_chain};
use crate::glob::GlobList;

/// The WebSocket of one session.
pub type WsStream = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// How long the TCP connect, TLS and upgrade together may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// Largest frame accepted: a 1 MiB body as base64 plus headers fits with room
/// to spare, and a relay configured for larger bodies still fits.
const MAX_MESSAGE: usize = 64 << 20;

/// Why a connection could not be opened.
#[derive(Debug)]
pub enum ConnectError {
    /// The relay refused the key: stop.
    Rejected(Fatal),
    /// Anything else: try again later.
    Failed(String),
}

/// `{relay}/api/v1/agent/connect[?events=...]` with `http` turned into `ws`
/// and `https` into `wss`.
pub fn connect_url(relay: &Url, events: Option<&GlobList>) -> Url {
    let mut url = endpoint(relay, &["api", "v1", "agent", "connect"]);
    let scheme = if url.scheme() == "https" { "wss" } else { "ws" };
    // Both are special schemes, so the switch cannot fail.
    let _ = url.set_scheme(scheme);
    if let Some(events) = events {
        // Commas and stars stay literal, as the contract writes the query
        // (`?events=message.*,ping`); only what a query parser would
        // misread is escaped here, and `set_query` escapes spaces and such.
        let mut value = String::new();
        for c in events.to_query().chars() {
            match c {
                '%' | '&' | '+' | '=' | '#' => value.push_str(&format!("%{:02X}", c as u32)),
                c => value.push(c),
            }
        }
        url.set_query(Some(&format!("events={value}")));
    }
    url
}

/// Opens the WebSocket and completes the upgrade.
pub async fn connect(url: &Url, api_key: &Secret) -> Result<WsStream, ConnectError> {
    let mut request = url
        .as_str()
        .into_client_request()
        .map_err(|err| ConnectError::Failed(format!("bad relay URL {url}: {err}")))?;
    let bearer = HeaderValue::from_str(&format!("Bearer {}", api_key.expose())).map_err(|_| {
        ConnectError::Rejected(Fatal::auth(
            "the API key holds characters that cannot be sent",
            "check --api-key / LOBSTER_RELAY_API_KEY for stray spaces or quotes",
        ))
    })?;
    request.headers_mut().insert(AUTHORIZATION, bearer);
    request.headers_mut().insert(
        USER_AGENT,
        HeaderValue::from_static(concat!("lobster-relay/", env!("CARGO_PKG_VERSION"))),
    );
    let config = WebSocketConfig::default()
        .max_message_size(Some(MAX_MESSAGE))
        .max_frame_size(Some(MAX_MESSAGE));
    let connector = crate::trust::ws_connector()
        .map_err(|err| ConnectError::Failed(format!("cannot set up TLS: {err:#}")))?;
    let connecting =
        tokio_tungstenite::connect_async_tls_with_config(request, Some(config), true, connector);
    match tokio::time::timeout(CONNECT_TIMEOUT, connecting).await {
        Ok(Ok((stream, _response))) => Ok(stream),
        Ok(Err(err)) => Err(classify(err)),
        Err(_) => Err(ConnectError::Failed(format!(
            "no answer within {}s",
            CONNECT_TIMEOUT.as_secs()
        ))),
    }
}

fn classify(err: tungstenite::Error) -> ConnectError {
    match err {
        tungstenite::Error::Http(response) => {
            let status = response.status();
            if status == http::StatusCode::UNAUTHORIZED || status == http::StatusCode::FORBIDDEN {
                ConnectError::Rejected(Fatal::auth(
                    format!("the relay refused the API key (HTTP {})", status.as_u16()),
                    "check --api-key / LOBSTER_RELAY_API_KEY, or ask the relay admin for a new key",
                ))
            } else if status == http::StatusCode::TOO_MANY_REQUESTS {
                ConnectError::Failed(
                    "the relay refused another session (HTTP 429): this agent has as many \
                     live sessions as the relay allows, or this address failed to \
                     authenticate too often; stop another listener, or wait"
                        .to_owned(),
                )
            } else {
                ConnectError::Failed(format!(
                    "the relay answered HTTP {status} instead of opening a WebSocket \
                     (is --relay the right URL?)"
                ))
            }
        }
        other => ConnectError::Failed(error_chain(&other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_becomes_ws_and_https_wss() {
        let relay = Url::parse("http://127.0.0.1:8080").unwrap();
        assert_eq!(
            connect_url(&relay, None).as_str(),
            "ws://127.0.0.1:8080/api/v1/agent/connect"
        );
        let relay = Url::parse("https://relay.example.com/base/").unwrap();
        assert_eq!(
            connect_url(&relay, None).as_str(),
            "wss://relay.example.com/base/api/v1/agent/connect"
        );
    }

    #[test]
    fn event_patterns_go_in_the_query() {
        let relay = Url::parse("http://x").unwrap();
        let events = GlobList::parse("message.*,ping").unwrap();
        let url = connect_url(&relay, Some(&events));
        assert_eq!(url.query(), Some("events=message.*,ping"));
        let odd = GlobList::parse("a+b,c&d=e,f g").unwrap();
        let url = connect_url(&relay, Some(&odd));
        let (key, value) = url.query_pairs().next().unwrap();
        assert_eq!((key.as_ref(), value.as_ref()), ("events", "a+b,c&d=e,f g"));
    }

    #[test]
    fn only_401_and_403_on_the_upgrade_are_fatal() {
        let response = |code: u16| {
            let response = http::Response::builder().status(code).body(None).unwrap();
            tungstenite::Error::Http(Box::new(response))
        };
        assert!(matches!(classify(response(401)), ConnectError::Rejected(_)));
        assert!(matches!(classify(response(403)), ConnectError::Rejected(_)));
        assert!(matches!(classify(response(404)), ConnectError::Failed(_)));
        assert!(matches!(classify(response(503)), ConnectError::Failed(_)));
        assert!(matches!(
            classify(tungstenite::Error::ConnectionClosed),
            ConnectError::Failed(_)
        ));
    }
}
