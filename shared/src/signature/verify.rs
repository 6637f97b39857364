//! Verifying a request under a workspace's scheme, what verification learns
//! (ids and the replay-protection key), and why it refuses.

use http::HeaderMap;
use sha2::{Digest as _, Sha256};

use super::github::verify_github;
use super::header::{WEBHOOK_ID, WEBHOOK_SIGNATURE};
use super::standard::verify_standard;
use super::stripe::verify_stripe;
use super::{Scheme, SigningKey};

/// How far a signed timestamp may be from the relay's clock, either way.
pub const TOLERANCE_SECS: i64 = 300;

/// What a successful verification learned from the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// `webhook-id`, `X-GitHub-Delivery`, or the Stripe event id (the JSON
    /// body's top-level `"id"`), when present.
    pub delivery_id: Option<String>,
    /// `X-GitHub-Event` for GitHub; `None` otherwise, and the caller falls
    /// back to the body's `type`, then `event`, then `unknown`.
    pub event_type: Option<String>,
    /// The replay-protection key: for Standard Webhooks the signed
    /// `webhook-id`; for GitHub a hash of the body (the delivery id is not
    /// signed, so a captured request resent with a new one must still be a
    /// duplicate, and the signature is a function of the body); for Stripe
    /// the event id, else a hash of the signed timestamp and body (stable
    /// whatever `v0=` entries or hex case the header carries); for `none`
    /// `webhook-id`, else a hash of the signature header and body. Hashes
    /// are `sha256:` + hex.
    pub dedup_key: String,
}

/// Why a request was refused. `Display` is one sentence for the sender and
/// never contains a secret or the expected signature.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// A required header is absent; holds its (lowercase) name.
    #[error("the request has no {0} header; this endpoint only accepts signed webhooks")]
    MissingHeader(&'static str),
    /// A signature header is present but unreadable; holds what is wrong.
    #[error("the signature headers are malformed: {0}")]
    Malformed(&'static str),
    /// The signed timestamp is more than [`TOLERANCE_SECS`] away from now.
    #[error(
        "the signature timestamp is more than 5 minutes from the relay's clock; sign each request as it is sent and check the sender's clock"
    )]
    StaleTimestamp,
    /// Well-formed, but no signature matches any of the endpoint's secrets.
    #[error(
        "no signature matches this endpoint's secret; check the signing secret and sign the raw body unchanged"
    )]
    Mismatch,
}

impl VerifyError {
    /// The snake_case code for the contract's error body.
    pub fn code(&self) -> &'static str {
        match self {
            Self::MissingHeader(_) => "missing_signature",
            Self::Malformed(_) => "malformed_signature",
            Self::StaleTimestamp => "timestamp_out_of_tolerance",
            Self::Mismatch => "invalid_signature",
        }
    }
}

/// Verifies a webhook request against any of `keys` (several during a
/// rotation; with none, only [`Scheme::None`] passes). `now_unix` is the
/// relay's clock, passed in so tests can pin it.
pub fn verify(
    scheme: Scheme,
    keys: &[SigningKey],
    headers: &HeaderMap,
    body: &[u8],
    now_unix: i64,
) -> Result<Verified, VerifyError> {
    match scheme {
        Scheme::StandardWebhooks => verify_standard(keys, headers, body, now_unix),
        Scheme::Github => verify_github(keys, headers, body),
        Scheme::Stripe => verify_stripe(keys, headers, body, now_unix),
        Scheme::None => {
            let signature = headers.get(WEBHOOK_SIGNATURE).map(|value| value.as_bytes());
            let delivery_id = optional(headers, WEBHOOK_ID);
            Ok(verified(
                delivery_id,
                None,
                &[signature.unwrap_or_default(), body],
            ))
        }
    }
}

/// Unix seconds, digits only (no sign, no fraction), within the tolerance.
pub(super) fn parse_timestamp(text: &str, now_unix: i64) -> Result<i64, VerifyError> {
    const NOT_UNIX: &str = "the timestamp is not unix seconds";
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(VerifyError::Malformed(NOT_UNIX));
    }
    let timestamp: i64 = text.parse().map_err(|_| VerifyError::Malformed(NOT_UNIX))?;
    if now_unix.abs_diff(timestamp) > TOLERANCE_SECS.unsigned_abs() {
        return Err(VerifyError::StaleTimestamp);
    }
    Ok(timestamp)
}

pub(super) fn required<'a>(
    headers: &'a HeaderMap,
    name: &'static str,
) -> Result<&'a str, VerifyError> {
    let value = headers.get(name).ok_or(VerifyError::MissingHeader(name))?;
    let text = value
        .to_str()
        .map_err(|_| VerifyError::Malformed("a signature header is not ASCII text"))?;
    if text.trim().is_empty() {
        return Err(VerifyError::Malformed("a signature header is empty"));
    }
    Ok(text)
}

/// Ids and types that are not ASCII text or blank count as absent.
pub(super) fn optional(headers: &HeaderMap, name: &str) -> Option<String> {
    let text = headers.get(name)?.to_str().ok()?.trim();
    (!text.is_empty()).then(|| text.to_owned())
}

/// What verification learned; the dedup key is `delivery_id`, or without
/// one [`content_key`] of `content`.
pub(super) fn verified(
    delivery_id: Option<String>,
    event_type: Option<String>,
    content: &[&[u8]],
) -> Verified {
    let dedup_key = match &delivery_id {
        Some(id) => id.clone(),
        None => content_key(content),
    };
    Verified {
        delivery_id,
        event_type,
        dedup_key,
    }
}

/// `sha256:` + hex SHA-256 of the parts, one after the other.
pub(super) fn content_key(parts: &[&[u8]]) -> String {
    let digest = parts
        .iter()
        .fold(Sha256::new(), |hash, part| hash.chain_update(part))
        .finalize();
    format!("sha256:{}", hex::encode(digest))
}

#[cfg(test)]
mod tests {
    use std::slice;

    use super::*;
    use crate::signature::fixtures::*;
    use crate::signature::header::*;
    use crate::signature::sign_github;

    #[test]
    fn timestamp_tolerance_is_300_seconds_both_ways() {
        let key = key(WHSEC);
        let stale = "timestamp_out_of_tolerance";
        let cases = [
            (-301, stale),
            (-300, "ok"),
            (0, "ok"),
            (300, "ok"),
            (301, stale),
        ];
        for scheme in [Scheme::StandardWebhooks, Scheme::Stripe] {
            let request = signed(scheme, &key, BODY);
            for (skew, expected) in cases {
                let got = check(scheme, &key, &request, BODY, TS + skew);
                assert_eq!(got, expected, "{scheme} {skew}");
            }
        }
        // GitHub signs no timestamp, so the clock does not matter.
        let request = signed(Scheme::Github, &key, BODY);
        assert_eq!(check(Scheme::Github, &key, &request, BODY, i64::MAX), "ok");
    }

    #[test]
    fn missing_headers_are_named() {
        let key = key(WHSEC);
        let cases = [
            (Scheme::StandardWebhooks, WEBHOOK_ID),
            (Scheme::StandardWebhooks, WEBHOOK_TIMESTAMP),
            (Scheme::StandardWebhooks, WEBHOOK_SIGNATURE),
            (Scheme::Github, GITHUB_SIGNATURE),
            (Scheme::Stripe, STRIPE_SIGNATURE),
        ];
        for (scheme, name) in cases {
            let mut request = signed(scheme, &key, BODY);
            request.remove(name);
            let err = verify(scheme, slice::from_ref(&key), &request, BODY, TS).unwrap_err();
            assert_eq!(err, VerifyError::MissingHeader(name));
            assert_eq!(err.code(), "missing_signature");
            assert!(err.to_string().contains(name), "{err}");
        }
    }

    #[test]
    fn none_passes_everything_and_still_deduplicates() {
        let with_id = headers(&[(WEBHOOK_ID, b"msg_1")]);
        let verified = verify(Scheme::None, &[], &with_id, NOT_UTF8, 0).unwrap();
        assert_eq!(verified.delivery_id.as_deref(), Some("msg_1"));
        assert_eq!(verified.dedup_key, "msg_1");

        let bare = |body: &[u8]| verify(Scheme::None, &[], &HeaderMap::new(), body, 0).unwrap();
        assert_eq!(bare(b"a").delivery_id, None);
        let expected = format!("sha256:{}", hex::encode(Sha256::digest(b"a")));
        assert_eq!(bare(b"a").dedup_key, expected);
        assert_ne!(bare(b"a").dedup_key, bare(b"b").dedup_key);
    }

    #[test]
    fn dedup_key_hashes_the_signed_content_without_an_id() {
        let key = key("secret");
        let request = signed(Scheme::Github, &key, BODY);
        let verified = verify(Scheme::Github, slice::from_ref(&key), &request, BODY, TS).unwrap();
        let expected = Sha256::new()
            .chain_update(b"github:")
            .chain_update(BODY)
            .finalize();
        assert_eq!(verified.delivery_id, None);
        assert_eq!(
            verified.dedup_key,
            format!("sha256:{}", hex::encode(expected))
        );
        // The signature is a function of the body: no need to hash it.
        let _ = sign_github(&key, BODY);
        // Stripe bodies that are not objects with a string id fall back the same way.
        for body in [
            &b"[1]"[..],
            br#"{"id":42}"#,
            br#"{"id":""}"#,
            br#"{"data":{"id":"x"}}"#,
            NOT_UTF8,
        ] {
            let request = signed(Scheme::Stripe, &key, body);
            let verified =
                verify(Scheme::Stripe, slice::from_ref(&key), &request, body, TS).unwrap();
            assert_eq!(verified.delivery_id, None);
            assert!(verified.dedup_key.starts_with("sha256:"));
        }
    }
}
