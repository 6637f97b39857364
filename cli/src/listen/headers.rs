//! The headers of a forwarded request.
//!
//! The original request's headers pass through in order, so the local app
//! can verify the sender's signature as if it had been called directly.
//! Removed: hop-by-hop headers (RFC 9110 section 7.6.1), every header named
//! in `Connection`, `Host` and `Content-Length` (the new request has its
//! own), and any incoming `Lobster-Relay-*` header of ours (a sender must
//! not forge them). Added: `Lobster-Relay-Event-Id`, `Lobster-Relay-Attempt`
//! and the `--header` extras, which replace an original of the same name.

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue};
use lobster_shared::wire::HOP_BY_HOP;
use tokio_tungstenite::tungstenite::Utf8Bytes;

/// The event id of the forwarded event.
pub const EVENT_ID: &str = "lobster-relay-event-id";
/// The delivery attempt, 1 for the first.
pub const ATTEMPT: &str = "lobster-relay-attempt";

/// One `--header 'Name: value'`, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtraHeader {
    pub name: HeaderName,
    pub value: HeaderValue,
}

impl ExtraHeader {
    /// Parses `Name: value` (the clap value parser of `--header`).
    pub fn parse(text: &str) -> Result<Self, String> {
        let (name, value) = text
            .split_once(':')
            .ok_or_else(|| format!("{text:?} is not of the form 'Name: value'"))?;
        let name = HeaderName::from_bytes(name.trim().as_bytes())
            .map_err(|_| format!("{:?} is not a valid header name", name.trim()))?;
        let value = HeaderValue::from_str(value.trim())
            .map_err(|_| format!("the value of header {name} holds characters a header cannot"))?;
        Ok(Self { name, value })
    }
}

/// The headers to forward for one event, built straight into the request's
/// map, with room for the `accept` header the client may add. Original
/// headers whose name or value HTTP cannot carry are dropped and returned by
/// name in the second element, so the caller can say so.
///
/// The map keeps the order of first appearance of each name, with the
/// values of a name together in their order, as hyper writes them. The
/// values share the event frame's bytes: nothing is copied for them.
pub fn forward_headers(
    original: &[(Utf8Bytes, Utf8Bytes)],
    event_id: &Utf8Bytes,
    attempt: u32,
    extra: &[ExtraHeader],
) -> (HeaderMap, Vec<String>) {
    let named_by_connection: Vec<String> = original
        .iter()
        .filter(|(name, _)| name.eq_ignore_ascii_case("connection"))
        .flat_map(|(_, value)| value.split(','))
        .map(|token| token.trim().to_ascii_lowercase())
        .filter(|token| !token.is_empty())
        .collect();
    let removed = |name: &HeaderName| {
        let name = name.as_str();
        HOP_BY_HOP.contains(&name)
            || named_by_connection.iter().any(|n| n == name)
            || name == "host"
            || name == "content-length"
            || name.starts_with("lobster-relay-")
            || extra.iter().any(|header| header.name == name)
    };

    let mut headers = HeaderMap::with_capacity(original.len() + extra.len() + 3);
    let mut invalid = Vec::new();
    for (name, value) in original {
        let parsed = HeaderName::from_bytes(name.as_bytes())
            .ok()
            .zip(shared_value(value));
        match parsed {
            Some((name, value)) if !removed(&name) => {
                headers.append(name, value);
            }
            Some(_) => {}
            None => invalid.push(name.to_string()),
        }
    }
    if let Some(id) = shared_value(event_id) {
        headers.append(HeaderName::from_static(EVENT_ID), id);
    }
    headers.append(HeaderName::from_static(ATTEMPT), HeaderValue::from(attempt));
    for header in extra {
        headers.append(header.name.clone(), header.value.clone());
    }
    (headers, invalid)
}

/// `text` as a header value over the same bytes, if HTTP can carry it.
fn shared_value(text: &Utf8Bytes) -> Option<HeaderValue> {
    HeaderValue::from_maybe_shared(Bytes::from(text.clone())).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(list: &[(&str, &str)]) -> Vec<(Utf8Bytes, Utf8Bytes)> {
        list.iter()
            .map(|(n, v)| ((*n).into(), (*v).into()))
            .collect()
    }

    fn names(headers: &HeaderMap) -> Vec<&str> {
        headers.iter().map(|(name, _)| name.as_str()).collect()
    }

    fn values(headers: &HeaderMap) -> Vec<&HeaderValue> {
        headers.iter().map(|(_, value)| value).collect()
    }

    #[test]
    fn hop_by_hop_host_and_length_are_removed_and_the_rest_kept_in_order() {
        let original = pairs(&[
            ("host", "relay.example.com"),
            ("content-type", "application/json"),
            ("Connection", "keep-alive, X-Secret-Hop"),
            ("keep-alive", "timeout=5"),
            ("x-secret-hop", "1"),
            ("webhook-id", "msg_1"),
            ("content-length", "42"),
            ("transfer-encoding", "chunked"),
            ("te", "trailers"),
            ("trailer", "x"),
            ("upgrade", "h2c"),
            ("proxy-authorization", "Basic x"),
            ("proxy-authenticate", "Basic"),
            ("proxy-connection", "close"),
            ("webhook-signature", "v1,abc"),
            ("x-multi", "1"),
            ("x-multi", "2"),
        ]);
        let (headers, invalid) = forward_headers(&original, &"evt_1".into(), 3, &[]);
        assert!(invalid.is_empty());
        assert_eq!(
            names(&headers),
            [
                "content-type",
                "webhook-id",
                "webhook-signature",
                "x-multi",
                "x-multi",
                EVENT_ID,
                ATTEMPT
            ]
        );
        assert_eq!(values(&headers)[5], "evt_1");
        assert_eq!(values(&headers)[6], "3");
        assert_eq!(values(&headers)[4], "2");
    }

    #[test]
    fn forged_relay_headers_are_replaced_by_ours() {
        let original = pairs(&[("Lobster-Relay-Event-Id", "forged"), ("x-a", "b")]);
        let (headers, _) = forward_headers(&original, &"evt_real".into(), 1, &[]);
        assert_eq!(names(&headers), ["x-a", EVENT_ID, ATTEMPT]);
        assert_eq!(values(&headers)[1], "evt_real");
    }

    #[test]
    fn extras_are_added_and_replace_originals_of_the_same_name() {
        let original = pairs(&[("authorization", "Bearer sender"), ("x-a", "b")]);
        let extra = [
            ExtraHeader::parse("Authorization: Bearer local").unwrap(),
            ExtraHeader::parse("X-Env:  dev ").unwrap(),
        ];
        let (headers, _) = forward_headers(&original, &"evt_1".into(), 1, &extra);
        assert_eq!(
            names(&headers),
            ["x-a", EVENT_ID, ATTEMPT, "authorization", "x-env"]
        );
        assert_eq!(values(&headers)[3], "Bearer local");
        assert_eq!(values(&headers)[4], "dev");
    }

    #[test]
    fn headers_http_cannot_carry_are_reported() {
        let original = pairs(&[("bad name", "x"), ("x-ok", "fine"), ("x-bad-value", "a\nb")]);
        let (headers, invalid) = forward_headers(&original, &"evt_1".into(), 1, &[]);
        assert_eq!(names(&headers), ["x-ok", EVENT_ID, ATTEMPT]);
        assert_eq!(invalid, ["bad name", "x-bad-value"]);
    }

    #[test]
    fn extra_headers_parse_name_colon_value() {
        let header = ExtraHeader::parse("X-Token: a: b").unwrap();
        assert_eq!(header.name, "x-token");
        assert_eq!(header.value, "a: b");
        let empty = ExtraHeader::parse("X-Empty:").unwrap();
        assert_eq!(empty.value, "");
        for bad in ["no colon", ": value", "bad name: x", "X-A: a\nb"] {
            assert!(
                ExtraHeader::parse(bad).is_err(),
                "{bad:?} should be rejected"
            );
        }
    }
}
