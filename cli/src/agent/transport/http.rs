//! The plain-HTTP side of the relay that SSE, long-poll and the batched
//! acks share: one client (proxies, `--ca-cert`), the agent API's URLs, and
//! what a refusal means.

use lobster_shared::Secret;
use reqwest::{StatusCode, Url};

use super::HTTP_CONNECT_TIMEOUT;
use crate::agent::connect::{self, ConnectError};
use crate::exit::Fatal;
use crate::glob::GlobList;
use crate::global::endpoint;
use lobster_shared::error_chain;

/// The plain-HTTP side of the relay, for SSE, polls and acks: reqwest
/// honours the proxy variables and `--ca-cert` as the API calls do.
#[derive(Clone)]
pub(crate) struct Http {
    pub(super) client: reqwest::Client,
    pub(super) relay: Url,
    pub(super) key: Secret,
    /// `?events=` as on the WebSocket URL.
    pub(super) events: Option<String>,
    /// The proxy these requests go through, for messages.
    pub(super) via: Option<String>,
}

impl Http {
    pub(super) fn new(
        relay: &Url,
        key: &Secret,
        events: Option<&GlobList>,
    ) -> anyhow::Result<Self> {
        let client = crate::trust::http_client()
            .connect_timeout(HTTP_CONNECT_TIMEOUT)
            .user_agent(concat!("lobster-relay/", env!("CARGO_PKG_VERSION")))
            .build()?;
        let via = crate::proxy::env()
            .proxy_for(relay)
            .ok()
            .flatten()
            .map(|proxy| proxy.to_string());
        // The same query as the WebSocket's (`connect_url` escapes it).
        let events = events
            .map(|events| connect::connect_url(relay, Some(events)))
            .and_then(|url| url.query().map(str::to_owned));
        Ok(Self {
            client,
            relay: relay.clone(),
            key: key.clone(),
            events,
            via,
        })
    }

    /// `{relay}/api/v1/agent/{segments...}`.
    pub(super) fn url(&self, segments: &[&str]) -> Url {
        let mut all = vec!["api", "v1", "agent"];
        all.extend_from_slice(segments);
        endpoint(&self.relay, &all)
    }

    pub(super) fn get(&self, url: Url) -> reqwest::RequestBuilder {
        self.client.get(url).bearer_auth(self.key.expose())
    }

    pub(super) fn post(&self, url: Url) -> reqwest::RequestBuilder {
        self.client.post(url).bearer_auth(self.key.expose())
    }

    /// A failed request, naming the proxy when there is one.
    pub(super) fn failed(&self, err: &reqwest::Error) -> ConnectError {
        let reason = match &self.via {
            Some(proxy) => format!("{} (through the proxy {proxy})", error_chain(err)),
            None => error_chain(err),
        };
        // A connection that could not be made at all: the relay (or the
        // proxy) is down, which another transport would not change.
        if err.is_connect() {
            ConnectError::Failed(reason)
        } else {
            ConnectError::Refused(reason)
        }
    }

    /// What a refusal of `/stream` or the opening `/poll` means. The
    /// relay's own refusals carry its JSON error body; a proxy's do not.
    pub(super) fn refusal(&self, status: StatusCode, body: &str) -> ConnectError {
        let code = relay_error_code(body);
        match (status.as_u16(), code.as_deref()) {
            (401 | 403, Some(code)) => ConnectError::Rejected(Fatal::auth(
                format!(
                    "the relay refused the API key (HTTP {}, {code})",
                    status.as_u16()
                ),
                "check --api-key / LOBSTER_RELAY_API_KEY, or ask the relay admin for a new key",
            )),
            (407, _) => ConnectError::Rejected(Fatal::auth(
                format!(
                    "the proxy {} wants a user and password (HTTP 407)",
                    self.via.as_deref().unwrap_or("in the way")
                ),
                "set them in its variable as http://USER:PASSWORD@HOST:PORT \
                 (percent-encode @ : / % in them)",
            )),
            (429 | 503, Some(code)) => ConnectError::Failed(format!(
                "the relay refused a session (HTTP {status}, {code})"
            )),
            // A proxy that cannot reach the relay (tinyproxy says 500, others
            // 502 to 504), as while it restarts: the
            // next transport would get the same answer, or, a moment later,
            // get through and stay where this one would have worked.
            (500..=599, None) => ConnectError::Failed(format!(
                "HTTP {status} from {}: the relay may be down",
                self.via.as_deref().unwrap_or("a proxy")
            )),
            (_, Some(code)) => ConnectError::Refused(format!("HTTP {status}, {code}")),
            (_, None) => ConnectError::Refused(format!("HTTP {status}")),
        }
    }
}

/// The `code` of the relay's JSON error body, if `body` is one.
pub(super) fn relay_error_code(body: &str) -> Option<String> {
    let value: serde_json::Value = serde_json::from_str(body).ok()?;
    value["error"]["code"].as_str().map(str::to_owned)
}
