//! Standard Webhooks: `v1,<base64>` HMACs over `{id}.{timestamp}.{body}`.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use http::HeaderMap;

use super::header::{WEBHOOK_ID, WEBHOOK_SIGNATURE, WEBHOOK_TIMESTAMP};
use super::key::LENIENT_BASE64;
use super::tag::{Tag, decode_tag, hmac, judge, tags};
use super::verified::{parse_timestamp, required, verified};
use super::{SigningKey, Verified, VerifyError};

pub(super) fn verify_standard(
    keys: &[SigningKey],
    headers: &HeaderMap,
    body: &[u8],
    now_unix: i64,
) -> Result<Verified, VerifyError> {
    let id = required(headers, WEBHOOK_ID)?;
    let timestamp = required(headers, WEBHOOK_TIMESTAMP)?;
    let signatures = required(headers, WEBHOOK_SIGNATURE)?;
    let timestamp = parse_timestamp(timestamp, now_unix)?;
    let expected = tags(keys, |key| standard_tag(key, id, timestamp, body));
    let candidates = signatures.split_ascii_whitespace().filter_map(|entry| {
        let (version, sig) = match entry.split_once(',') {
            Some(parts) => parts,
            None => return Some(Err("a webhook-signature entry is not `v1,<base64>`")),
        };
        // Other versions (v1a is ed25519) are not ours to check.
        let decoded = (version == "v1").then(|| LENIENT_BASE64.decode(sig).ok())?;
        Some(decode_tag(decoded, "a v1 signature is not base64"))
    });
    judge(&expected, candidates)?;
    Ok(verified(Some(id.to_owned()), None, &[]))
}

/// The `webhook-signature` entry for a Standard Webhooks request: `v1,<base64>`.
pub fn sign_standard(key: &SigningKey, id: &str, timestamp: i64, body: &[u8]) -> String {
    format!(
        "v1,{}",
        STANDARD.encode(standard_tag(key, id, timestamp, body))
    )
}

fn standard_tag(key: &SigningKey, id: &str, timestamp: i64, body: &[u8]) -> Tag {
    hmac(
        key.standard_bytes(),
        &[
            id.as_bytes(),
            b".",
            timestamp.to_string().as_bytes(),
            b".",
            body,
        ],
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signature::fixtures::*;
    use crate::signature::{Scheme, verify};

    #[test]
    fn standard_webhooks_vector() {
        let key = key(WHSEC);
        assert_eq!(sign_standard(&key, MSG_ID, TS, BODY), VECTOR);
        let request = standard(MSG_ID, TS, VECTOR);
        let verified = verify(Scheme::StandardWebhooks, &[key], &request, BODY, TS).unwrap();
        let expected = Verified {
            delivery_id: Some(MSG_ID.into()),
            event_type: None,
            dedup_key: MSG_ID.into(),
        };
        assert_eq!(verified, expected);
    }

    #[test]
    fn bad_standard_signatures_never_pass() {
        let key = key(WHSEC);
        let other_body = sign_standard(&key, MSG_ID, TS, b"other");
        let malformed = "malformed_signature";
        let cases = [
            ("", malformed),
            ("   ", malformed),
            ("v1,", malformed),
            (&VECTOR[..VECTOR.len() - 4], malformed),
            ("v1,dGlueQ==", malformed),
            ("v1,not base64!", malformed),
            (&VECTOR[3..], malformed),
            (&VECTOR.replace("v1,", "v2,"), "invalid_signature"),
            (&VECTOR.replace("v1,", "V1,"), "invalid_signature"),
            (&VECTOR.replace("v1,", "v1a,"), "invalid_signature"),
            (&other_body, "invalid_signature"),
            (&format!("{other_body} v1,!!"), malformed),
            (&format!("v1,!! {VECTOR}"), "ok"),
            (&format!("v2,junk  {other_body}\t{VECTOR}"), "ok"),
            (VECTOR.trim_end_matches('='), "ok"),
        ];
        for (signature, expected) in cases {
            let got = check_header(Scheme::StandardWebhooks, &key, signature);
            assert_eq!(got, expected, "{signature:?}");
        }
    }
}
