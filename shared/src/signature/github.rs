//! GitHub: `X-Hub-Signature-256: sha256=<hex>`, an HMAC over the body alone.

use http::HeaderMap;

use super::header::{GITHUB_DELIVERY, GITHUB_EVENT, GITHUB_SIGNATURE};
use super::tag::{decode_tag, hmac, judge, tags};
use super::verified::{content_key, optional, required};
use super::{SigningKey, Verified, VerifyError};

pub(super) fn verify_github(
    keys: &[SigningKey],
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Verified, VerifyError> {
    const NOT_SHA256: &str = "x-hub-signature-256 is not `sha256=<hex>`";
    let signature = required(headers, GITHUB_SIGNATURE)?;
    let hex_sig = signature
        .strip_prefix("sha256=")
        .ok_or(VerifyError::Malformed(NOT_SHA256))?;
    let expected = tags(keys, |key| hmac(&key.raw, &[body]));
    judge(
        &expected,
        [decode_tag(hex::decode(hex_sig).ok(), NOT_SHA256)],
    )?;
    // GitHub signs the body alone and sends no timestamp: X-GitHub-Delivery
    // is not signed, so a captured request resent with a new one would pass
    // as new. The replay key is the body's hash instead (GitHub's own
    // redeliveries carry the same body, so they are duplicates either way).
    Ok(Verified {
        delivery_id: optional(headers, GITHUB_DELIVERY),
        event_type: optional(headers, GITHUB_EVENT),
        dedup_key: content_key(&[b"github:", body]),
    })
}

/// The `X-Hub-Signature-256` value for a GitHub request: `sha256=<hex>`.
pub fn sign_github(key: &SigningKey, body: &[u8]) -> String {
    format!("sha256={}", hex::encode(hmac(&key.raw, &[body])))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signature::fixtures::*;
    use crate::signature::{Scheme, verify};

    #[test]
    fn github_documented_example() {
        let key = key("It's a Secret to Everybody");
        let signature = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
        let delivery = "72d3162e-cc78-11e3-81ab-4c9367dc0958";
        assert_eq!(sign_github(&key, b"Hello, World!"), signature);
        let request = headers(&[
            (GITHUB_SIGNATURE, signature.as_bytes()),
            (GITHUB_DELIVERY, delivery.as_bytes()),
            (GITHUB_EVENT, b"push"),
        ]);
        let verified = verify(Scheme::Github, &[key], &request, b"Hello, World!", 0).unwrap();
        assert_eq!(verified.delivery_id.as_deref(), Some(delivery));
        assert!(verified.dedup_key.starts_with("sha256:"));
        assert_eq!(verified.event_type.as_deref(), Some("push"));
    }

    /// The delivery id is not signed: a captured request resent with a new
    /// one has the same replay key; another body has another.
    #[test]
    fn a_new_delivery_id_does_not_make_a_replay_new() {
        let key = key("It's a Secret to Everybody");
        let signature = sign_github(&key, BODY);
        let with_delivery = |delivery: &str, body: &[u8]| {
            let signature = sign_github(&key, body);
            let request = headers(&[
                (GITHUB_SIGNATURE, signature.as_bytes()),
                (GITHUB_DELIVERY, delivery.as_bytes()),
            ]);
            verify(
                Scheme::Github,
                std::slice::from_ref(&key),
                &request,
                body,
                0,
            )
            .unwrap()
            .dedup_key
        };
        assert_eq!(with_delivery("a", BODY), with_delivery("b", BODY));
        assert_ne!(with_delivery("a", BODY), with_delivery("a", b"other"));
        assert!(!signature.is_empty());
    }

    #[test]
    fn bad_github_signatures_never_pass() {
        let key = key("It's a Secret to Everybody");
        let good = sign_github(&key, BODY);
        let malformed = "malformed_signature";
        let cases = [
            ("", malformed),
            ("sha256=", malformed),
            (&good[..good.len() - 2], malformed),
            (&good[..good.len() - 1], malformed),
            (&good.replace("sha256=", "sha1="), malformed),
            (&good["sha256=".len()..], malformed),
            (&format!("sha256={}", "zz".repeat(32)), malformed),
            (&sign_github(&key, b"other"), "invalid_signature"),
            (&good.to_uppercase().replace("SHA256=", "sha256="), "ok"),
        ];
        for (signature, expected) in cases {
            assert_eq!(
                check_header(Scheme::Github, &key, signature),
                expected,
                "{signature:?}"
            );
        }
    }
}
