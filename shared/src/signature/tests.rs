//! Properties every signed scheme must keep, whatever its header format.

use std::slice;

use http::HeaderValue;

use super::fixtures::*;
use super::header::*;
use super::{Scheme, VerifyError, verify};

#[test]
fn non_utf8_bodies_verify_byte_for_byte() {
    let key = key(WHSEC);
    let mut tampered = NOT_UTF8.to_vec();
    tampered[0] ^= 1;
    for scheme in SIGNED {
        let request = signed(scheme, &key, NOT_UTF8);
        assert_eq!(
            check(scheme, &key, &request, NOT_UTF8, TS),
            "ok",
            "{scheme}"
        );
        let got = check(scheme, &key, &request, &tampered, TS);
        assert_eq!(got, "invalid_signature", "{scheme}");
    }
}

#[test]
fn hostile_headers_are_malformed_not_panics() {
    let key = key(WHSEC);
    let huge = "v1,AAAA ".repeat(100_000);
    let cases: [(Scheme, &str, &[u8]); 7] = [
        (Scheme::StandardWebhooks, WEBHOOK_SIGNATURE, huge.as_bytes()),
        (
            Scheme::StandardWebhooks,
            WEBHOOK_SIGNATURE,
            b"v1,\xc3\xa9\xff",
        ),
        (Scheme::StandardWebhooks, WEBHOOK_ID, b"msg_\xff"),
        (
            Scheme::StandardWebhooks,
            WEBHOOK_TIMESTAMP,
            b"\xd9\xa1\xd9\xa2",
        ),
        (Scheme::Github, GITHUB_SIGNATURE, b"sha256=\xe2\x82\xac"),
        (Scheme::Stripe, STRIPE_SIGNATURE, b",,,=,=,t=,v1=,"),
        (Scheme::Stripe, STRIPE_SIGNATURE, b"t=1,v1=\xf0\x9f\xa6\x9e"),
    ];
    for (scheme, name, value) in cases {
        let mut request = signed(scheme, &key, BODY);
        request.insert(name, HeaderValue::from_bytes(value).unwrap());
        let got = check(scheme, &key, &request, BODY, TS);
        assert_eq!(got, "malformed_signature", "{name}");
    }
}

#[test]
fn messages_never_reveal_secrets_or_expected_signatures() {
    let key = key(WHSEC);
    let request = standard(
        MSG_ID,
        TS,
        "v1,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
    );
    let err = verify(
        Scheme::StandardWebhooks,
        slice::from_ref(&key),
        &request,
        BODY,
        TS,
    );
    let err = err.unwrap_err();
    assert_eq!(err, VerifyError::Mismatch);
    let shown = format!("{err} {err:?} {key:?}");
    for secret in [WHSEC, &WHSEC[6..], &VECTOR[3..], "C2FV"] {
        assert!(!shown.contains(secret), "{shown}");
    }
}
