//! Verifying a request under a workspace's scheme: [`verify`] picks the
//! scheme's verifier (`standard`, `github`, `stripe`; `none` here).

use http::HeaderMap;

use super::github::verify_github;
use super::header::{WEBHOOK_ID, WEBHOOK_SIGNATURE};
use super::standard::verify_standard;
use super::stripe::verify_stripe;
use super::verified::{Verified, VerifyError, optional, verified};
use super::{Scheme, SigningKey};

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

#[cfg(test)]
mod tests {
    use std::slice;

    use super::*;
    use crate::signature::fixtures::*;
    use crate::signature::header::*;
    use crate::signature::sign_github;
    use sha2::{Digest as _, Sha256};

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
