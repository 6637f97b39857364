//! Signature headers and bodies under every scheme.
//!
//! The input reads like an HTTP request so seeds are real requests:
//!
//! ```text
//! <scheme>\n<secret>\n<unix now>\n<name>: <value>\n...\n\n<body>
//! ```
//!
//! 1. `verify` on whatever headers, body, secret and clock never panics.
//! 2. The body signed correctly (with the input's `webhook-id`) verifies;
//!    the same headers over a changed body never do (`none` checks nothing,
//!    so it is skipped).
#![no_main]

use http::{HeaderMap, HeaderName, HeaderValue};
use libfuzzer_sys::fuzz_target;
use lobster_shared::signature::header::*;
use lobster_shared::signature::{
    Scheme, SigningKey, sign_github, sign_standard, sign_stripe, verify,
};

fuzz_target!(|data: &[u8]| {
    let (head, body) = split_at_blank_line(data);
    let mut lines = head.split(|&b| b == b'\n');
    let mut field = || String::from_utf8_lossy(lines.next().unwrap_or_default()).into_owned();
    let scheme = field().parse::<Scheme>().unwrap_or_default();
    let secret = field();
    let now: i64 = field().trim().parse().unwrap_or(1_649_367_553);
    let mut headers = HeaderMap::new();
    for line in lines {
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let (name, value) = (&line[..colon], trim_start(&line[colon + 1..]));
        if let (Ok(name), Ok(value)) =
            (HeaderName::from_bytes(name), HeaderValue::from_bytes(value))
        {
            headers.append(name, value);
        }
    }
    let Ok(key) = SigningKey::parse_for(scheme, &secret) else {
        return;
    };
    let keys = std::slice::from_ref(&key);

    // 1. Any answer is fine; a panic is not.
    let _ = verify(scheme, keys, &headers, body, now);

    // 2. Signed correctly, then the body changed.
    if scheme == Scheme::None {
        return;
    }
    let now = now.clamp(0, 1 << 40);
    let id = headers
        .get(WEBHOOK_ID)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|id| !id.is_empty())
        .unwrap_or("msg_fuzz");
    let Some(signed) = signed_headers(scheme, &key, id, now, body) else {
        return;
    };
    let ok = verify(scheme, keys, &signed, body, now);
    assert!(
        ok.is_ok(),
        "{scheme}: a correct signature was refused: {ok:?}"
    );
    for changed in changed_bodies(body) {
        let forged = verify(scheme, keys, &signed, &changed, now);
        assert!(
            forged.is_err(),
            "{scheme}: a signature verified over another body"
        );
    }
});

fn split_at_blank_line(data: &[u8]) -> (&[u8], &[u8]) {
    match data.windows(2).position(|w| w == b"\n\n") {
        Some(at) => (&data[..at], &data[at + 2..]),
        None => (data, &[]),
    }
}

fn trim_start(mut bytes: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = bytes {
        bytes = rest;
    }
    bytes
}

/// One byte flipped, one appended, the last one dropped.
fn changed_bodies(body: &[u8]) -> Vec<Vec<u8>> {
    let mut out = vec![[body, b"x"].concat()];
    if let Some((last, rest)) = body.split_last() {
        out.push(rest.to_vec());
        let mut flipped = body.to_vec();
        let at = usize::from(*last) % body.len();
        flipped[at] ^= 0x01;
        out.push(flipped);
    }
    out
}

fn signed_headers(
    scheme: Scheme,
    key: &SigningKey,
    id: &str,
    now: i64,
    body: &[u8],
) -> Option<HeaderMap> {
    let mut headers = HeaderMap::new();
    let mut put = |name: &'static str, value: String| -> Option<()> {
        headers.insert(name, HeaderValue::from_str(&value).ok()?);
        Some(())
    };
    match scheme {
        Scheme::StandardWebhooks => {
            put(WEBHOOK_ID, id.to_owned())?;
            put(WEBHOOK_TIMESTAMP, now.to_string())?;
            put(WEBHOOK_SIGNATURE, sign_standard(key, id, now, body))?;
        }
        Scheme::Github => put(GITHUB_SIGNATURE, sign_github(key, body))?,
        Scheme::Stripe => put(STRIPE_SIGNATURE, sign_stripe(key, now, body))?,
        Scheme::None => {}
    }
    Some(headers)
}
