//! What verification learns (ids and the replay-protection key), why it
//! refuses, and the header and timestamp readings every scheme shares.

use http::HeaderMap;
use sha2::{Digest as _, Sha256};

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
