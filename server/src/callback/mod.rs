//! Push delivery: the relay POSTs an agent's events to its callback URL.
//!
//! - [`address`]: which addresses a callback may reach (the SSRF policy).
//! - [`CallbackClient`]: the HTTP client that POSTs one event, signed with
//!   the agent's callback secret (Standard Webhooks), checking every
//!   address it connects to, following no redirect, reading at most
//!   [`BODY_CAP`] of an answer.
//! - The session that feeds it is `session::callback`; the registration
//!   endpoints are in `api::callbacks`.

pub mod address;
mod urls;

use urls::literal_ip;
pub use urls::{MAX_URL_LEN, MAX_URLS, Policy, UrlError, decode_urls, encode_urls};

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use ipnet::IpNet;
use lobster_shared::error_chain;
use lobster_shared::signature::{SigningKey, header, sign_standard};
use lobster_shared::wire::HOP_BY_HOP;
use reqwest::Url;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

use crate::store::Delivery;

/// Most bytes of a callback's answer read (the rest is dropped unread).
pub const BODY_CAP: usize = 4096;
/// Time to open a connection (TCP and TLS) to a callback.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest a whole callback request may take, answer included; shorter
/// when the ack timeout is (see [`CallbackClient::new`]).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// The `user-agent` of callback requests.
const USER_AGENT: &str = concat!("lobster-relay/", env!("CARGO_PKG_VERSION"), " (callback)");

/// Resolves names as the system does, then drops every address the policy
/// refuses; a name left with none fails with the reason.
struct CheckedResolver {
    allow: Arc<Vec<IpNet>>,
}

impl Resolve for CheckedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allow = self.allow.clone();
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let mut refused = None;
            let allowed: Vec<SocketAddr> = found
                .into_iter()
                .filter(|addr| match address::check(addr.ip(), &allow) {
                    Ok(()) => true,
                    Err(blocked) => {
                        refused.get_or_insert(blocked);
                        false
                    }
                })
                .collect();
            if allowed.is_empty() {
                let reason = match refused {
                    Some(blocked) => {
                        format!("{host} resolves only to refused addresses: {blocked}")
                    }
                    None => format!("{host} resolves to no address"),
                };
                return Err(reason.into());
            }
            Ok(Box::new(allowed.into_iter()) as Addrs)
        })
    }
}

/// POSTs events to callback URLs. Cheap to clone.
#[derive(Clone)]
pub struct CallbackClient {
    client: reqwest::Client,
    policy: Arc<Policy>,
    /// What all the POSTs of one attempt may take together.
    timeout: Duration,
}

impl CallbackClient {
    /// A client for `policy`, trusting the platform's roots and `extra_roots`
    /// (`--callback-ca-cert`, PEM). A request takes at most 10 s, and
    /// never longer than 90 % of `ack_timeout`, so its answer always comes
    /// before its lease runs out.
    pub fn new(
        policy: Policy,
        extra_roots: Option<&[u8]>,
        ack_timeout: Duration,
    ) -> anyhow::Result<Self> {
        let timeout = REQUEST_TIMEOUT.min(ack_timeout.mul_f32(0.9));
        let mut builder = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            // A proxy would resolve the name itself, past the address check.
            .no_proxy()
            .connect_timeout(CONNECT_TIMEOUT.min(timeout))
            .timeout(timeout)
            .user_agent(USER_AGENT)
            .dns_resolver(CheckedResolver {
                allow: Arc::new(policy.allow.clone()),
            });
        if let Some(pem) = extra_roots {
            let certs = reqwest::Certificate::from_pem_bundle(pem)
                .map_err(|e| anyhow::anyhow!("--callback-ca-cert is not valid PEM: {e}"))?;
            if certs.is_empty() {
                anyhow::bail!(
                    "--callback-ca-cert holds no PEM certificate (-----BEGIN CERTIFICATE-----)"
                );
            }
            builder = builder.tls_certs_merge(certs);
        }
        let client = builder
            .build()
            .map_err(|e| anyhow::anyhow!("cannot build the callback HTTP client: {e}"))?;
        Ok(CallbackClient {
            client,
            policy: Arc::new(policy),
            timeout,
        })
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// POSTs one event to each URL in turn until one answers 2xx (`Ok`);
    /// else why not (the nack reason recorded in the event's attempts, one
    /// per URL when there are several, named by position: the reason is
    /// stored in the clear, the URLs only sealed). The URLs share the
    /// attempt's time, so the answer comes before the lease runs out.
    pub async fn deliver(
        &self,
        urls: &[Url],
        key: &SigningKey,
        delivery: &Delivery,
    ) -> Result<(), String> {
        let each = self.timeout / urls.len().max(1) as u32;
        let mut reasons = Vec::new();
        for url in urls {
            match self.deliver_to(url, key, delivery, each).await {
                Ok(()) => return Ok(()),
                Err(reason) => reasons.push(reason),
            }
        }
        Err(match <[String; 1]>::try_from(reasons) {
            Ok([reason]) => reason,
            Err(reasons) => reasons
                .iter()
                .enumerate()
                .map(|(i, reason)| format!("URL {}: {reason}", i + 1))
                .collect::<Vec<_>>()
                .join("; "),
        })
    }

    /// POSTs one event to one URL within `timeout`.
    async fn deliver_to(
        &self,
        url: &Url,
        key: &SigningKey,
        delivery: &Delivery,
        timeout: Duration,
    ) -> Result<(), String> {
        // Checked again at each delivery: the allowed networks may have
        // changed since the URL was registered.
        if let Some(ip) = literal_ip(url) {
            address::check(ip, &self.policy.allow)
                .map_err(|blocked| format!("callback refused: {blocked}"))?;
        }
        let unix = crate::store::now_ms() / 1000;
        let mut request = self.client.post(url.clone()).timeout(timeout);
        for (name, value) in forwarded_headers(&delivery.headers) {
            request = request.header(name, value);
        }
        let request = request
            .header(header::WEBHOOK_ID, delivery.id.as_str())
            .header(header::WEBHOOK_TIMESTAMP, unix.to_string())
            .header(
                header::WEBHOOK_SIGNATURE,
                sign_standard(key, delivery.id.as_str(), unix, &delivery.body),
            )
            .header("lobster-relay-event-id", delivery.id.as_str())
            .header("lobster-relay-attempt", delivery.attempt.to_string())
            .body(delivery.body.clone());
        let mut response = request
            .send()
            .await
            // Without the URL: the reason is stored in the clear (attempt
            // history), the URL only encrypted.
            .map_err(|e| format!("callback failed: {}", error_chain(&e.without_url())))?;
        let status = response.status();
        let mut body = Vec::new();
        while body.len() < BODY_CAP {
            match response.chunk().await {
                Ok(Some(chunk)) => body.extend_from_slice(&chunk),
                Ok(None) => break,
                // The status already decides; a broken body only loses the
                // reason's excerpt.
                Err(_) => break,
            }
        }
        if status.is_success() {
            return Ok(());
        }
        let mut reason = format!("callback answered {status}");
        if status.is_redirection() {
            reason.push_str(" (redirects are not followed)");
        }
        body.truncate(BODY_CAP.min(200));
        let excerpt = String::from_utf8_lossy(&body);
        let excerpt = excerpt.trim();
        if !excerpt.is_empty() {
            reason.push_str(": ");
            reason.push_str(excerpt);
        }
        Err(reason)
    }
}

/// The sender's headers as they came, less what HTTP or this request owns:
/// hop-by-hop headers, `host`, `content-length`, our `lobster-relay-*`
/// headers, and the Standard Webhooks headers, which the relay's own
/// signature replaces.
fn forwarded_headers(original: &[(String, String)]) -> Vec<(http::HeaderName, http::HeaderValue)> {
    const DROPPED: [&str; 5] = [
        "host",
        "content-length",
        header::WEBHOOK_ID,
        header::WEBHOOK_TIMESTAMP,
        header::WEBHOOK_SIGNATURE,
    ];
    original
        .iter()
        .filter_map(|(name, value)| {
            let name = http::HeaderName::from_bytes(name.as_bytes()).ok()?;
            let dropped = HOP_BY_HOP.contains(&name.as_str()) || DROPPED.contains(&name.as_str());
            if dropped || name.as_str().starts_with("lobster-relay-") {
                return None;
            }
            Some((name, http::HeaderValue::from_str(value).ok()?))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_resolver_drops_refused_addresses() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let resolver = CheckedResolver {
            allow: Arc::new(Vec::new()),
        };
        let err = rt
            .block_on(resolver.resolve("localhost".parse().unwrap()))
            .err()
            .expect("localhost is refused");
        assert!(err.to_string().contains("loopback"), "{err}");
        let allowing = CheckedResolver {
            allow: Arc::new(vec!["127.0.0.0/8".parse().unwrap()]),
        };
        let addrs: Vec<SocketAddr> = rt
            .block_on(allowing.resolve("localhost".parse().unwrap()))
            .map_err(|e| e.to_string())
            .unwrap()
            .collect();
        assert!(
            addrs.iter().all(|a| a.ip().is_loopback() && a.is_ipv4()),
            "{addrs:?}"
        );
    }

    #[test]
    fn sender_headers_pass_but_signature_and_hop_by_hop_headers_do_not() {
        let original: Vec<(String, String)> = [
            ("content-type", "application/json"),
            ("x-github-event", "push"),
            ("host", "relay.example"),
            ("content-length", "12"),
            ("connection", "close"),
            ("webhook-signature", "v1,forged"),
            ("lobster-relay-attempt", "9"),
        ]
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect();
        let names: Vec<String> = forwarded_headers(&original)
            .into_iter()
            .map(|(n, _)| n.to_string())
            .collect();
        assert_eq!(names, ["content-type", "x-github-event"]);
    }
}
