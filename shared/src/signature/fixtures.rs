//! Test vectors and request builders shared by the signature tests.

use std::slice;

use http::{HeaderMap, HeaderName, HeaderValue};

use super::header::*;
use super::{Scheme, SigningKey, sign_github, sign_standard, sign_stripe, verify};

pub(super) const WHSEC: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
pub(super) const MSG_ID: &str = "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk";
pub(super) const TS: i64 = 1_649_367_553;
pub(super) const BODY: &[u8] = br#"{"email":"test@example.com","username":"test_user"}"#;
pub(super) const VECTOR: &str = "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=";
pub(super) const NOT_UTF8: &[u8] = b"\xff\xfe\x00\x80 raw \xc3\x28";
pub(super) const SIGNED: [Scheme; 3] = [Scheme::StandardWebhooks, Scheme::Github, Scheme::Stripe];

pub(super) fn key(secret: &str) -> SigningKey {
    SigningKey::parse(secret).unwrap()
}

pub(super) fn headers(pairs: &[(&str, &[u8])]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        let name = HeaderName::from_bytes(name.as_bytes()).unwrap();
        map.append(name, HeaderValue::from_bytes(value).unwrap());
    }
    map
}

pub(super) fn standard(id: &str, ts: i64, signature: &str) -> HeaderMap {
    let ts = ts.to_string();
    headers(&[
        (WEBHOOK_ID, id.as_bytes()),
        (WEBHOOK_TIMESTAMP, ts.as_bytes()),
        (WEBHOOK_SIGNATURE, signature.as_bytes()),
    ])
}

/// A request for `scheme` signed with `signer` at `TS`.
pub(super) fn signed(scheme: Scheme, signer: &SigningKey, body: &[u8]) -> HeaderMap {
    let stamped = |value: String| headers(&[(scheme.signature_header(), value.as_bytes())]);
    match scheme {
        Scheme::StandardWebhooks => standard(MSG_ID, TS, &sign_standard(signer, MSG_ID, TS, body)),
        Scheme::Github => stamped(sign_github(signer, body)),
        Scheme::Stripe => stamped(sign_stripe(signer, TS, body)),
        Scheme::None => HeaderMap::new(),
    }
}

/// Verifies with one key and answers "ok" or the error code.
pub(super) fn check(
    scheme: Scheme,
    key: &SigningKey,
    request: &HeaderMap,
    body: &[u8],
    now: i64,
) -> &'static str {
    let result = verify(scheme, slice::from_ref(key), request, body, now);
    result.map_or_else(|err| err.code(), |_| "ok")
}

/// Verifies a single signature header value for `scheme` against BODY.
pub(super) fn check_header(scheme: Scheme, key: &SigningKey, value: &str) -> &'static str {
    let request = match scheme {
        Scheme::StandardWebhooks => standard(MSG_ID, TS, value),
        _ => headers(&[(scheme.signature_header(), value.as_bytes())]),
    };
    check(scheme, key, &request, BODY, TS)
}

impl Scheme {
    fn signature_header(self) -> &'static str {
        match self {
            Scheme::Github => GITHUB_SIGNATURE,
            Scheme::Stripe => STRIPE_SIGNATURE,
            _ => WEBHOOK_SIGNATURE,
        }
    }
}

pub(super) fn key_for_stripe(secret: &str) -> SigningKey {
    SigningKey::parse_for(Scheme::Stripe, secret).unwrap()
}
