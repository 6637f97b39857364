//! Opening the WebSocket: `GET /api/v1/agent/connect` upgraded, with the key.
//!
//! The relay's HTTP 401 or 403 on the upgrade is fatal (exit code 3), as is
//! a proxy asking for credentials (407). A refusal by something in the way
//! (a proxy's answer to the tunnel or the upgrade, a 200 or 400 where 101
//! was expected, a connection closed during the upgrade) is
//! [`ConnectError::Refused`]: `--transport auto` then tries SSE (see
//! `transport`). Every other failure is worth another try.
//! With a proxy (see [`crate::proxy`]) the TCP connection is a CONNECT
//! tunnel through it, and TLS (`--ca-cert` included) and the upgrade run
//! inside the tunnel as they would on a direct connection.

use std::time::Duration;

use http::HeaderValue;
use http::header::{AUTHORIZATION, USER_AGENT};
use lobster_shared::Secret;
use reqwest::Url;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::{self, protocol::WebSocketConfig};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::exit::Fatal;
use crate::glob::GlobList;
use crate::global::endpoint;
use crate::proxy::{self, Proxy, TunnelError};
use lobster_shared::error_chain;

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
    /// The upgrade was refused or broken off by something in the way (a
    /// proxy's answer, a closed connection): another transport may pass.
    Refused(String),
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

/// Opens the WebSocket, directly or through `via`, and completes the upgrade.
pub async fn connect(
    url: &Url,
    api_key: &Secret,
    via: Option<&Proxy>,
) -> Result<WsStream, ConnectError> {
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
    let connecting = async {
        let Some(proxy) = via else {
            return tokio_tungstenite::connect_async_tls_with_config(
                request,
                Some(config),
                true,
                connector,
            )
            .await
            .map_err(classify);
        };
        let target = target(url);
        let tunnel = proxy::open(proxy, &target, CONNECT_TIMEOUT)
            .await
            .map_err(|err| tunnel_failed(proxy, &target, err))?;
        tokio_tungstenite::client_async_tls_with_config(request, tunnel, Some(config), connector)
            .await
            .map_err(classify)
    };
    match tokio::time::timeout(CONNECT_TIMEOUT, connecting).await {
        Ok(Ok((stream, _response))) => Ok(stream),
        Ok(Err(err)) => Err(err),
        Err(_) => Err(ConnectError::Refused(format!(
            "no answer within {}s{}",
            CONNECT_TIMEOUT.as_secs(),
            via.map(|proxy| format!(" through the proxy {proxy}"))
                .unwrap_or_default()
        ))),
    }
}

/// `host:port` of the relay, as the CONNECT request names it.
fn target(url: &Url) -> String {
    let host = url.host_str().unwrap_or_default();
    let port = url.port_or_known_default().unwrap_or(80);
    format!("{host}:{port}")
}

/// What a failed tunnel means, naming the proxy (never its credentials).
fn tunnel_failed(proxy: &Proxy, target: &str, err: TunnelError) -> ConnectError {
    let host = target.rsplit_once(':').map_or(target, |(host, _)| host);
    let var = proxy.var;
    match err {
        TunnelError::AuthRequired(status) => {
            let with_user = format!(
                "{var}=http://USER:PASSWORD@{} (percent-encode @ : / % in them)",
                proxy.shown.trim_start_matches("http://")
            );
            let (what, next_step) = match proxy.auth {
                Some(_) => (
                    "refused the proxy user and password from",
                    format!("check the user and password in {with_user}"),
                ),
                None => (
                    "wants a user and password; none were set in",
                    format!("set them as {with_user}"),
                ),
            };
            ConnectError::Rejected(Fatal::auth(
                format!(
                    "the proxy {} {what} {var} (HTTP {status} {})",
                    proxy.shown,
                    match status {
                        407 => "Proxy Authentication Required",
                        _ => "Unauthorized",
                    }
                ),
                next_step,
            ))
        }
        TunnelError::Refused { status, reason } => {
            let hint = match status {
                403 => format!(
                    "it may allow tunnels only to port 443, or not to this host: ask its admin, or set NO_PROXY={host} if the relay is reachable directly"
                ),
                400 | 405 | 501 => format!(
                    "it does not seem to support CONNECT tunnels: use a proxy that does, or set NO_PROXY={host}"
                ),
                502..=504 => {
                    "it could not reach the relay: check --relay and that the relay is running"
                        .to_owned()
                }
                _ => format!("check the proxy, or set NO_PROXY={host} to bypass it"),
            };
            let reason = match reason.is_empty() {
                true => String::new(),
                false => format!(" {reason}"),
            };
            ConnectError::Refused(format!(
                "the proxy {proxy} refused a tunnel to {target} (HTTP {status}{reason}); {hint}"
            ))
        }
        TunnelError::Unreachable(err) => {
            ConnectError::Failed(format!("cannot reach the proxy {proxy}: {err}"))
        }
        other => ConnectError::Refused(format!("through the proxy {proxy}: {other}")),
    }
}

fn classify(err: tungstenite::Error) -> ConnectError {
    match err {
        tungstenite::Error::Http(response) => {
            let status = response.status();
            // The relay refuses a key with its JSON error body; a 403 without
            // one comes from something in the way (a proxy's policy).
            let from_relay = response
                .body()
                .as_deref()
                .and_then(|body| serde_json::from_slice::<serde_json::Value>(body).ok())
                .is_some_and(|body| body["error"]["code"].is_string());
            if status == http::StatusCode::UNAUTHORIZED
                || (status == http::StatusCode::FORBIDDEN && from_relay)
            {
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
            } else if status == http::StatusCode::SERVICE_UNAVAILABLE && from_relay {
                ConnectError::Failed("the relay is restarting (HTTP 503)".to_owned())
            } else {
                ConnectError::Refused(format!(
                    "the relay answered HTTP {status} instead of opening a WebSocket \
                     (is --relay the right URL?)"
                ))
            }
        }
        // Nothing listens, no such host, a certificate that does not check
        // out: another transport would not get further.
        tungstenite::Error::Io(err)
            if matches!(
                err.kind(),
                std::io::ErrorKind::ConnectionRefused
                    | std::io::ErrorKind::NotFound
                    | std::io::ErrorKind::AddrNotAvailable
                    | std::io::ErrorKind::HostUnreachable
                    | std::io::ErrorKind::NetworkUnreachable
            ) || err.to_string().contains("failed to lookup") =>
        {
            ConnectError::Failed(error_chain(&err))
        }
        other @ (tungstenite::Error::Tls(_) | tungstenite::Error::Url(_)) => {
            ConnectError::Failed(error_chain(&other))
        }
        // The connection was made, then the upgrade went wrong: closed,
        // reset, or answered with something that is not HTTP/1.1.
        other => ConnectError::Refused(error_chain(&other)),
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

    fn proxy(userinfo: &str) -> Proxy {
        let vars = [("HTTPS_PROXY", format!("http://{userinfo}proxy.corp:3128"))];
        let env = crate::proxy::ProxyEnv::from_lookup(|name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.clone())
        });
        let url = Url::parse("wss://relay.test").unwrap();
        env.tunnel_for(&url).unwrap().unwrap()
    }

    #[test]
    fn a_407_is_fatal_and_says_where_the_credentials_go_without_showing_them() {
        let with = proxy("me:hunter2@");
        let ConnectError::Rejected(fatal) =
            tunnel_failed(&with, "relay.test:443", TunnelError::AuthRequired(407))
        else {
            panic!("a 407 must be fatal");
        };
        assert_eq!(fatal.code, crate::exit::ExitCode::Auth);
        let text = format!("{} / {}", fatal.message, fatal.next_step.clone().unwrap());
        assert!(
            text.contains("refused the proxy user and password"),
            "{text}"
        );
        assert!(
            text.contains("HTTPS_PROXY=http://USER:PASSWORD@proxy.corp:3128"),
            "{text}"
        );
        assert!(!text.contains("hunter2") && !text.contains("me:"), "{text}");
        let ConnectError::Rejected(fatal) =
            tunnel_failed(&proxy(""), "relay.test:443", TunnelError::AuthRequired(407))
        else {
            panic!("a 407 must be fatal");
        };
        assert!(
            fatal.message.contains("none were set in HTTPS_PROXY"),
            "{}",
            fatal.message
        );
    }

    #[test]
    fn other_refusals_and_an_unreachable_proxy_are_retried_with_the_status() {
        let refused = |status| TunnelError::Refused {
            status,
            reason: "Forbidden".into(),
        };
        let ConnectError::Refused(reason) =
            tunnel_failed(&proxy(""), "relay.test:8080", refused(403))
        else {
            panic!("a 403 is retried");
        };
        assert!(
            reason.contains("http://proxy.corp:3128 (from HTTPS_PROXY)"),
            "{reason}"
        );
        assert!(reason.contains("HTTP 403 Forbidden"), "{reason}");
        assert!(reason.contains("NO_PROXY=relay.test"), "{reason}");
        let ConnectError::Refused(reason) = tunnel_failed(&proxy(""), "r:1", refused(502)) else {
            panic!("a 502 is retried");
        };
        assert!(reason.contains("could not reach the relay"), "{reason}");
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        let ConnectError::Failed(reason) =
            tunnel_failed(&proxy("u:p@"), "r:1", TunnelError::Unreachable(refused))
        else {
            panic!("an unreachable proxy is retried");
        };
        assert!(
            reason.starts_with("cannot reach the proxy http://proxy.corp:3128"),
            "{reason}"
        );
    }

    #[test]
    fn the_tunnel_target_is_host_and_port_with_the_scheme_default() {
        let url = |s| Url::parse(s).unwrap();
        assert_eq!(target(&url("wss://relay.test/x")), "relay.test:443");
        assert_eq!(target(&url("ws://relay.test/x")), "relay.test:80");
        assert_eq!(target(&url("ws://127.0.0.1:8080/x")), "127.0.0.1:8080");
        assert_eq!(target(&url("wss://[::1]:9443/x")), "[::1]:9443");
    }

    #[test]
    fn only_the_relays_401_and_403_on_the_upgrade_are_fatal() {
        let response = |code: u16, body: Option<&str>| {
            let response = http::Response::builder()
                .status(code)
                .body(body.map(|b| b.as_bytes().to_vec()))
                .unwrap();
            tungstenite::Error::Http(Box::new(response))
        };
        let relay = Some(r#"{"error":{"code":"unauthorized","message":"no"}}"#);
        assert!(matches!(
            classify(response(401, None)),
            ConnectError::Rejected(_)
        ));
        assert!(matches!(
            classify(response(403, relay)),
            ConnectError::Rejected(_)
        ));
        assert!(matches!(
            classify(response(429, relay)),
            ConnectError::Failed(_)
        ));
        assert!(matches!(
            classify(response(503, relay)),
            ConnectError::Failed(_)
        ));
        // A proxy's answers, or a server that is not the relay: another
        // transport may get through.
        for code in [200, 400, 403, 404, 405, 426, 502] {
            assert!(
                matches!(
                    classify(response(code, Some("<html>"))),
                    ConnectError::Refused(_)
                ),
                "{code}"
            );
        }
        assert!(matches!(
            classify(tungstenite::Error::ConnectionClosed),
            ConnectError::Refused(_)
        ));
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert!(matches!(
            classify(tungstenite::Error::Io(refused)),
            ConnectError::Failed(_)
        ));
    }
}
