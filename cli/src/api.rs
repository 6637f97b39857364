//! A small client for the relay's HTTP API (`docs/api-reference.md`, "Agent API" and "Admin API").
//!
//! Every request carries `Authorization: Bearer <token>` and expects JSON
//! back. Error answers (`{"error":{"code","message"}}`) become
//! [`ApiError::Status`], so commands can tell a bad token (exit code 3) from
//! an unreachable relay or a refused request (exit code 1).

use std::time::Duration;

use lobster_shared::Secret;
use reqwest::{Method, StatusCode, Url};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::global::endpoint;

/// How long one API call may take, connection included.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Why an API call failed.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The relay could not be reached or did not answer in time.
    #[error("could not reach the relay at {url}: {reason}")]
    Unreachable { url: Url, reason: String },
    /// The relay answered with an error status.
    #[error("the relay refused {method} {path}: {message} (HTTP {status}, {code})")]
    Status {
        method: Method,
        path: String,
        status: StatusCode,
        code: String,
        message: String,
    },
    /// The proxy (not the relay) asked for credentials, or refused them.
    #[error(
        "the proxy {proxy} refused {method} {path} (HTTP {status}): its user and password are missing or wrong"
    )]
    ProxyAuth {
        method: Method,
        path: String,
        status: StatusCode,
        /// The proxy as shown to users (`http://host:port (from VAR)`).
        proxy: String,
    },
    /// The relay answered 2xx with a body that is not JSON.
    #[error("the relay sent an answer to {path} that is not JSON: {reason}")]
    BadBody { path: String, reason: String },
    /// The relay answered JSON without the fields of
    /// [`lobster_shared::api`] this CLI reads.
    #[error(
        "the relay's answer to {path} is not what this version of lobster-relay expects ({reason}): use a CLI of the relay's version"
    )]
    Unexpected { path: String, reason: String },
}

impl ApiError {
    /// True when the relay rejected the credentials.
    pub fn is_auth(&self) -> bool {
        matches!(self, Self::Status { status, .. }
            if *status == StatusCode::UNAUTHORIZED || *status == StatusCode::FORBIDDEN)
    }

    /// What the user can do about it, when there is something obvious.
    pub fn next_step(&self) -> Option<&'static str> {
        match self {
            Self::Unreachable { .. } => Some("check --relay / LOBSTER_RELAY_URL and your network"),
            Self::ProxyAuth { .. } => Some(
                "set the proxy's user and password in its variable as \
                 http://USER:PASSWORD@HOST:PORT (percent-encode @ : / % in them)",
            ),
            Self::Status { path, .. } if self.is_auth() && path.contains("/admin/") => Some(
                "check --admin-token / RELAY_ADMIN_TOKEN (the server prints it on first start)",
            ),
            Self::Status { .. } if self.is_auth() => Some(
                "check --api-key / LOBSTER_RELAY_API_KEY, or run `lobster-relay login` again \
                 with a valid key (the relay admin can create one)",
            ),
            Self::Status { code, .. } if code == "event_not_found" => {
                Some("see this agent's event ids with `lobster-relay events list`")
            }
            Self::Status { code, .. } if code == "event_in_flight" => {
                Some("replay it once it is acked or has failed (`lobster-relay events show ID`)")
            }
            Self::Status { code, .. } if code == "callback_not_set" => {
                Some("set one with `lobster-relay callback set https://...`")
            }
            Self::Status { code, .. } if code == "encryption_key_required" => Some(
                "callback URLs are stored encrypted: ask the relay operator to start it with --encryption-key",
            ),
            Self::Status { code, .. } if code == "callback_address_forbidden" => Some(
                "use a URL on a public address, or ask the relay operator to allow its network with --callback-allow-cidr",
            ),
            Self::Status { code, .. } if code == "invalid_callback_url" => {
                Some("give a full https:// URL, e.g. https://app.example.com/hooks")
            }
            Self::Status { code, .. } if code == "not_found" => {
                Some("check --relay / LOBSTER_RELAY_URL: that server may not be a lobster-relay")
            }
            _ => None,
        }
    }
}

#[derive(Deserialize)]
struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Deserialize)]
struct ErrorDetail {
    code: String,
    message: String,
}

/// A client for one relay, with one bearer token.
#[derive(Debug, Clone)]
pub struct ApiClient {
    http: reqwest::Client,
    base: Url,
    token: Secret,
    timeout: Duration,
    /// The proxy reqwest sends the calls through (from `HTTP_PROXY` and
    /// friends), for error messages.
    via: Option<String>,
}

impl ApiClient {
    /// A client for the relay at `base`, authenticating with `token`.
    pub fn new(base: Url, token: Secret) -> anyhow::Result<Self> {
        let http = crate::trust::http_client()
            .timeout(REQUEST_TIMEOUT)
            .user_agent(concat!("lobster-relay/", env!("CARGO_PKG_VERSION")))
            .build()?;
        let via = crate::proxy::env()
            .proxy_for(&base)
            .ok()
            .flatten()
            .map(|proxy| proxy.to_string());
        Ok(Self {
            via,
            http,
            base,
            token,
            timeout: REQUEST_TIMEOUT,
        })
    }

    /// The same client, giving up on each call after `timeout` (at most the
    /// default of 30 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout.min(REQUEST_TIMEOUT);
        self
    }

    /// The relay's base URL.
    pub fn base(&self) -> &Url {
        &self.base
    }

    /// `GET {base}/{segments}`, answered with JSON.
    pub async fn get(&self, segments: &[&str]) -> Result<Value, ApiError> {
        self.call(Method::GET, segments, None).await
    }

    /// `GET {base}/{segments}`, answered with the body type `T`
    /// ([`lobster_shared::api`]).
    pub async fn get_as<T: DeserializeOwned>(&self, segments: &[&str]) -> Result<T, ApiError> {
        let value = self.get(segments).await?;
        typed(&segments.join("/"), value)
    }

    /// `GET {base}/{segments}?{query}`, answered with JSON; `query` must
    /// already be percent-encoded.
    pub async fn get_query(&self, segments: &[&str], query: &str) -> Result<Value, ApiError> {
        self.call_with(Method::GET, segments, Some(query), None)
            .await
    }

    /// `POST {base}/{segments}` with a JSON body, answered with JSON.
    pub async fn post(&self, segments: &[&str], body: &Value) -> Result<Value, ApiError> {
        self.call(Method::POST, segments, Some(body)).await
    }

    /// `PUT {base}/{segments}` with a JSON body, answered with JSON.
    pub async fn put(&self, segments: &[&str], body: &Value) -> Result<Value, ApiError> {
        self.call(Method::PUT, segments, Some(body)).await
    }

    /// `DELETE {base}/{segments}`; an empty answer becomes `Value::Null`.
    pub async fn delete(&self, segments: &[&str]) -> Result<Value, ApiError> {
        self.call(Method::DELETE, segments, None).await
    }

    async fn call(
        &self,
        method: Method,
        segments: &[&str],
        body: Option<&Value>,
    ) -> Result<Value, ApiError> {
        self.call_with(method, segments, None, body).await
    }

    async fn call_with(
        &self,
        method: Method,
        segments: &[&str],
        query: Option<&str>,
        body: Option<&Value>,
    ) -> Result<Value, ApiError> {
        let mut url = endpoint(&self.base, segments);
        url.set_query(query);
        let path = url.path().to_owned();
        let mut request = self
            .http
            .request(method.clone(), url.clone())
            .timeout(self.timeout)
            .bearer_auth(self.token.expose());
        if let Some(body) = body {
            request = request.json(body);
        }
        let unreachable = |err: reqwest::Error| ApiError::Unreachable {
            url: url.clone(),
            reason: match &self.via {
                None => unreachable_reason(&err),
                Some(proxy) => format!("{} (through the proxy {proxy})", unreachable_reason(&err)),
            },
        };
        let response = request.send().await.map_err(unreachable)?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(unreachable)?;
        if let Some(proxy) = &self.via
            && is_proxy_auth(status, &bytes)
        {
            return Err(ApiError::ProxyAuth {
                method,
                path,
                status,
                proxy: proxy.clone(),
            });
        }
        if !status.is_success() {
            let (code, message) = match serde_json::from_slice::<ErrorBody>(&bytes) {
                Ok(body) => (body.error.code, body.error.message),
                Err(_) => (
                    "unexpected_answer".to_owned(),
                    status.canonical_reason().unwrap_or("error").to_lowercase(),
                ),
            };
            return Err(ApiError::Status {
                method,
                path,
                status,
                code,
                message,
            });
        }
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(Value::Null);
        }
        serde_json::from_slice(&bytes).map_err(|err| ApiError::BadBody {
            path,
            reason: err.to_string(),
        })
    }
}

/// Why a request got no answer, without reqwest's "error sending request
/// for url (...)" preamble: the URL is said once, by [`ApiError`].
/// Through a proxy, a 407, or a 401 without the relay's JSON error body
/// (tinyproxy answers wrong credentials so), is the proxy's refusal.
fn is_proxy_auth(status: StatusCode, body: &[u8]) -> bool {
    status == StatusCode::PROXY_AUTHENTICATION_REQUIRED
        || (status == StatusCode::UNAUTHORIZED
            && serde_json::from_slice::<ErrorBody>(body).is_err())
}

fn unreachable_reason(err: &reqwest::Error) -> String {
    if err.is_timeout() {
        return "no answer in time".to_owned();
    }
    if err.is_connect() {
        // `Connection refused (os error 111)`: the rest is reqwest's layers.
        let mut cause: &dyn std::error::Error = err;
        while let Some(source) = cause.source() {
            cause = source;
        }
        return cause.to_string();
    }
    let chain = lobster_shared::error_chain(err);
    let parts: Vec<&str> = chain
        .split(": ")
        .skip_while(|part| part.starts_with("error sending request"))
        .collect();
    if parts.is_empty() {
        chain
    } else {
        parts.join(": ")
    }
}

/// An answer of the relay read as the body type `T`.
pub fn typed<T: DeserializeOwned>(path: &str, value: Value) -> Result<T, ApiError> {
    serde_json::from_value(value).map_err(|err| ApiError::Unexpected {
        path: format!("/{}", path.trim_start_matches('/')),
        reason: err.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_without_a_field_names_the_path_and_the_field() {
        let old_relay = serde_json::json!({"agent_id": "agt_1"});
        let err = typed::<lobster_shared::api::AgentMe>("api/v1/agent/me", old_relay).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("/api/v1/agent/me"), "{text}");
        assert!(text.contains("missing field"), "{text}");
    }

    fn status(code: u16, path: &str) -> ApiError {
        ApiError::Status {
            method: Method::GET,
            path: path.into(),
            status: StatusCode::from_u16(code).unwrap(),
            code: "x".into(),
            message: "y".into(),
        }
    }

    #[test]
    fn through_a_proxy_407_and_a_401_without_the_relays_body_are_the_proxys() {
        let relay = br#"{"error":{"code":"unauthorized","message":"bad key"}}"#;
        assert!(is_proxy_auth(
            StatusCode::PROXY_AUTHENTICATION_REQUIRED,
            relay
        ));
        assert!(is_proxy_auth(
            StatusCode::UNAUTHORIZED,
            b"<html>Unauthorized</html>"
        ));
        assert!(!is_proxy_auth(StatusCode::UNAUTHORIZED, relay));
        assert!(!is_proxy_auth(StatusCode::FORBIDDEN, b"<html>"));
    }

    #[test]
    fn only_401_and_403_are_authentication_failures() {
        assert!(status(401, "/api/v1/agent/me").is_auth());
        assert!(status(403, "/api/v1/admin/agents").is_auth());
        assert!(!status(404, "/api/v1/admin/agents").is_auth());
        assert!(!status(500, "/api/v1/admin/agents").is_auth());
    }

    #[test]
    fn admin_auth_failures_point_at_the_admin_token() {
        let hint = status(401, "/api/v1/admin/agents").next_step().unwrap();
        assert!(hint.contains("RELAY_ADMIN_TOKEN"));
        let hint = status(401, "/api/v1/agent/me").next_step().unwrap();
        assert!(hint.contains("LOBSTER_RELAY_API_KEY"));
    }
}
