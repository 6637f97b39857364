//! Stripe: `Stripe-Signature: t=<ts>,v1=<hex>`, an HMAC over `{t}.{body}`;
//! the delivery id is the event id in the body.

use http::HeaderMap;

use super::header::STRIPE_SIGNATURE;
use super::tag::{Tag, decode_tag, hmac, judge, tags};
use super::verified::{parse_timestamp, required, verified};
use super::{SigningKey, Verified, VerifyError};

pub(super) fn verify_stripe(
    keys: &[SigningKey],
    headers: &HeaderMap,
    body: &[u8],
    now_unix: i64,
) -> Result<Verified, VerifyError> {
    let signature = required(headers, STRIPE_SIGNATURE)?;
    let (timestamp, candidates) = parse_stripe(signature)?;
    let timestamp = parse_timestamp(timestamp, now_unix)?;
    let expected = tags(keys, |key| stripe_tag(key, timestamp, body));
    let candidates = candidates
        .into_iter()
        .map(|sig| decode_tag(hex::decode(sig).ok(), "a v1 signature is not hex"));
    judge(&expected, candidates)?;
    // Without an event id, the key is what was signed (`{t}.{body}`), not
    // the header's text: extra `v0=` entries or upper-case hex must not
    // turn a replay into a new event.
    let signed_at = timestamp.to_string();
    Ok(verified(
        stripe_event_id(body),
        None,
        &[b"stripe:", signed_at.as_bytes(), b".", body],
    ))
}

/// The `Stripe-Signature` value for a Stripe request: `t=<ts>,v1=<hex>`.
pub fn sign_stripe(key: &SigningKey, timestamp: i64, body: &[u8]) -> String {
    format!(
        "t={timestamp},v1={}",
        hex::encode(stripe_tag(key, timestamp, body))
    )
}

fn stripe_tag(key: &SigningKey, timestamp: i64, body: &[u8]) -> Tag {
    hmac(&key.raw, &[timestamp.to_string().as_bytes(), b".", body])
}

/// Splits `t=<ts>,v1=<hex>,...` into the timestamp and the v1 signatures;
/// other schemes such as Stripe's test-mode `v0` are ignored.
fn parse_stripe(header: &str) -> Result<(&str, Vec<&str>), VerifyError> {
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for item in header.split(',').map(str::trim) {
        match item.split_once('=') {
            Some(("t", t)) => {
                if timestamp.replace(t).is_some() {
                    return Err(VerifyError::Malformed(
                        "stripe-signature has more than one t=",
                    ));
                }
            }
            Some(("v1", sig)) => signatures.push(sig),
            Some(_) => {}
            None => {
                return Err(VerifyError::Malformed(
                    "stripe-signature items are not `key=value`",
                ));
            }
        }
    }
    let timestamp = timestamp.ok_or(VerifyError::Malformed(
        "stripe-signature has no t= timestamp",
    ))?;
    Ok((timestamp, signatures))
}

/// Stripe puts the event id in the body only; a body that is not a JSON
/// object with a string `id` simply has none.
fn stripe_event_id(body: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Envelope {
        id: Option<String>,
    }
    let envelope: Envelope = serde_json::from_slice(body).ok()?;
    envelope.id.filter(|id| !id.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signature::fixtures::*;
    use crate::signature::{Scheme, verify};

    #[test]
    fn stripe_round_trip_with_several_v1_entries() {
        // Stripe's secrets start with whsec_ too, yet are used as raw bytes.
        let key = key("whsec_stripeTestSecret0123456789ab");
        let other = key_for_stripe("whsec_other");
        let body = br#"{"id":"evt_1NG8Du2eZvKYlo2CUI79vXWy","type":"charge.succeeded"}"#;
        let good = sign_stripe(&key, TS, body);
        let expected = hmac(
            b"whsec_stripeTestSecret0123456789ab",
            &[format!("{TS}.").as_bytes(), body],
        );
        assert_eq!(good, format!("t={TS},v1={}", hex::encode(expected)));
        let v1 = good.split_once(",v1=").unwrap().1;
        let wrong = sign_stripe(&other, TS, body);
        let wrong = wrong.split_once(",v1=").unwrap().1;
        let header = format!("t={TS},v1={wrong},v1={v1},v0={wrong}");
        let request = headers(&[(STRIPE_SIGNATURE, header.as_bytes())]);
        let verified = verify(Scheme::Stripe, &[key], &request, body, TS).unwrap();
        assert_eq!(
            verified.delivery_id.as_deref(),
            Some("evt_1NG8Du2eZvKYlo2CUI79vXWy")
        );
        assert_eq!(verified.dedup_key, "evt_1NG8Du2eZvKYlo2CUI79vXWy");
        assert_eq!(verified.event_type, None);
    }

    /// Without an event id, header spelling (extra `v0=`, hex case, entry
    /// order) does not change the replay key; another timestamp does.
    #[test]
    fn the_replay_key_ignores_how_the_header_is_spelled() {
        let key = key(WHSEC);
        let body = br#"{"type":"no.id"}"#;
        let good = sign_stripe(&key, TS, body);
        let v1 = good.split_once(",v1=").unwrap().1;
        let key_of = |header: String, ts: i64| {
            let request = headers(&[(STRIPE_SIGNATURE, header.as_bytes())]);
            verify(
                Scheme::Stripe,
                std::slice::from_ref(&key),
                &request,
                body,
                ts,
            )
            .unwrap()
            .dedup_key
        };
        let plain = key_of(good.clone(), TS);
        assert!(plain.starts_with("sha256:"));
        assert_eq!(key_of(format!("t={TS},v1={v1},v0=abcd"), TS), plain);
        assert_eq!(
            key_of(format!("t={TS},v1={}", v1.to_uppercase()), TS),
            plain
        );
        assert_eq!(key_of(format!("v0=00,t={TS},v1={v1}"), TS), plain);
        let later = sign_stripe(&key, TS + 1, body);
        assert_ne!(key_of(later, TS + 1), plain);
    }

    #[test]
    fn bad_stripe_signatures_never_pass() {
        let key = key(WHSEC);
        let good = sign_stripe(&key, TS, BODY);
        let v1 = good.split_once(",v1=").unwrap().1;
        let malformed = "malformed_signature";
        let cases = [
            ("", malformed),
            (&format!("t={TS}"), "invalid_signature"),
            (&format!("t={TS},v0={v1}"), "invalid_signature"),
            (&format!("v1={v1}"), malformed),
            (&format!("t={TS},v1="), malformed),
            (&format!("t={TS},v1={}", &v1[..40]), malformed),
            (&format!("t=-{TS},v1={v1}"), malformed),
            (&format!("t={TS}.5,v1={v1}"), malformed),
            (&format!("t=99999999999999999999,v1={v1}"), malformed),
            (&format!("t={TS},t={TS},v1={v1}"), malformed),
            (&format!("t={TS},{v1}"), malformed),
            (&format!("t={TS}, v1={v1}, v1=zz"), "ok"),
        ];
        for (signature, expected) in cases {
            assert_eq!(
                check_header(Scheme::Stripe, &key, signature),
                expected,
                "{signature:?}"
            );
        }
    }
}
