//! A webhook sender signing with Standard Webhooks.
//!
//! The signing here is written independently of `lobster_shared::signature`
//! on purpose: an end-to-end oracle that shared the relay's code would agree
//! with the relay's bugs. The contract's test vector pins it down.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac as _};
use sha2::Sha256;

use crate::api::Answer;
use crate::relay::webhook_secret;

/// Unix seconds now.
pub fn now_unix() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs() as i64
}

/// A `webhook-id` no other request of this test process uses.
pub fn new_message_id() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_nanos();
    format!(
        "msg_e2e_{}_{nanos}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// Signs and posts webhooks with one secret.
#[derive(Debug, Clone)]
pub struct Sender {
    http: reqwest::Client,
    key: Vec<u8>,
}

impl Default for Sender {
    /// A sender with the test relays' secret.
    fn default() -> Self {
        Self::new(&webhook_secret())
    }
}

impl Sender {
    /// `whsec_<base64>` secrets use the decoded bytes as the key; others
    /// their raw bytes (`docs/security.md`, "Signatures").
    pub fn new(secret: &str) -> Self {
        let key = match secret.strip_prefix("whsec_") {
            Some(encoded) => BASE64.decode(encoded).expect("whsec_ secret is base64"),
            None => secret.as_bytes().to_vec(),
        };
        let http = reqwest::Client::builder()
            .no_proxy()
            .build()
            .expect("reqwest client builds");
        Self { http, key }
    }

    /// The same sender posting through `http` (e.g. a client trusting a
    /// test CA: [`crate::Relay::http_client`]).
    pub fn with_client(mut self, http: reqwest::Client) -> Self {
        self.http = http;
        self
    }

    /// `v1,<base64 HMAC-SHA256(key, "{id}.{timestamp}.{body}")>`.
    pub fn sign(&self, msg_id: &str, timestamp: i64, body: &[u8]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes any key length");
        mac.update(format!("{msg_id}.{timestamp}.").as_bytes());
        mac.update(body);
        format!("v1,{}", BASE64.encode(mac.finalize().into_bytes()))
    }

    /// Posts `body` signed with a fresh `webhook-id` and the current time.
    pub async fn post(
        &self,
        url: &str,
        body: &[u8],
        extra: &[(&str, &str)],
    ) -> anyhow::Result<Answer> {
        self.post_as(url, body, &new_message_id(), now_unix(), extra)
            .await
    }

    /// Posts `body` signed as message `msg_id` at `timestamp`.
    pub async fn post_as(
        &self,
        url: &str,
        body: &[u8],
        msg_id: &str,
        timestamp: i64,
        extra: &[(&str, &str)],
    ) -> anyhow::Result<Answer> {
        let signature = self.sign(msg_id, timestamp, body);
        let timestamp = timestamp.to_string();
        let mut headers = vec![
            ("webhook-id", msg_id),
            ("webhook-timestamp", timestamp.as_str()),
            ("webhook-signature", signature.as_str()),
        ];
        headers.extend_from_slice(extra);
        self.post_raw(url, body, &headers).await
    }

    /// Posts `body` with exactly `headers`, signing nothing.
    pub async fn post_raw(
        &self,
        url: &str,
        body: &[u8],
        headers: &[(&str, &str)],
    ) -> anyhow::Result<Answer> {
        let mut req = self.http.post(url).body(body.to_vec());
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        let resp = req
            .send()
            .await
            .with_context(|| format!("posting to {url}"))?;
        Answer::read(resp).await
    }
}

/// Posts `body` to `webhook_url` signed with the test relays' secret.
pub async fn post_signed(
    webhook_url: &str,
    body: &[u8],
    extra: &[(&str, &str)],
) -> anyhow::Result<Answer> {
    Sender::default().post(webhook_url, body, extra).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_the_contract_test_vector() {
        let sender = Sender::new("whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD");
        let body = br#"{"email":"test@example.com","username":"test_user"}"#;
        assert_eq!(
            sender.sign("msg_27UH4WbU6Z5A5EzD8u03UvzRbpk", 1649367553, body),
            "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw="
        );
    }

    #[test]
    fn agrees_with_the_shared_crate_signer() {
        use lobster_shared::signature::{SigningKey, sign_standard};
        for secret in [webhook_secret(), "plain-secret-without-prefix".to_owned()] {
            let ours = Sender::new(&secret);
            let theirs = SigningKey::parse(&secret).expect("the shared crate parses the secret");
            let body: Vec<u8> = (0..=255).collect();
            assert_eq!(
                ours.sign("msg_x", 1_700_000_000, &body),
                sign_standard(&theirs, "msg_x", 1_700_000_000, &body)
            );
        }
    }

    #[test]
    fn message_ids_are_unique() {
        assert_ne!(new_message_id(), new_message_id());
    }
}
