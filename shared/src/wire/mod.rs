//! The WebSocket protocol, version 1 (`docs/api-reference.md`, "WebSocket sessions").
//!
//! Frames are JSON text objects tagged by `type`. [`RelayMessage`] flows from
//! the relay to the agent, [`AgentMessage`] from the agent to the relay.
//! Nothing else in the project builds or parses frames by hand.
//!
//! - `event_fast`: reading an `event` frame without serde's buffering of
//!   tagged enums.
//! - `text`: [`Text`], a frame's string borrowed where it can be, for
//!   [`RelayMessage::from_json_in_place`].

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::{Deserialize, Serialize};

/// The protocol version this build speaks; sent in the `ready` frame.
pub const PROTOCOL_VERSION: u32 = 1;

/// WebSocket close codes with a meaning in this protocol.
pub mod close_code {
    /// The API key is missing, wrong or revoked before the session started.
    pub const UNAUTHORIZED: u16 = 4001;
    /// The agent was revoked while connected.
    pub const REVOKED: u16 = 4003;
    /// The peer sent something the protocol does not allow.
    pub const PROTOCOL_VIOLATION: u16 = 4008;
    /// The relay is shutting down or restarting; reconnect.
    pub const RESTARTING: u16 = 1012;
}

/// A frame from the relay to the agent. `S` is how the strings of an event
/// are held: `String`, or another string type a reader prefers (see
/// [`RelayMessage::from_json_in_place`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum RelayMessage<S = String> {
    /// First frame of every session: who the agent is and the session's limits.
    Ready(Ready),
    /// One webhook delivery; the agent answers with `ack` or `nack`.
    Event(EventFrame<S>),
    /// Sent just before a close that this error causes.
    Error(ErrorFrame),
}

/// The `ready` frame.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ready {
    pub session_id: String,
    pub agent_id: String,
    pub relay_id: String,
    pub webhook_url: String,
    /// At most this many events are unacked on this session at once.
    pub max_in_flight: u32,
    /// An event not acked within this time returns to the queue.
    pub ack_timeout_ms: u64,
    pub protocol: u32,
}

/// How the `body` field of an event frame is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum BodyEncoding {
    /// The raw body was valid UTF-8 and is carried as is.
    Utf8,
    /// The raw body is carried as standard base64 with padding.
    Base64,
}

/// The `event` frame: one delivery attempt of a stored webhook. Its strings
/// are `S`: `String` by default; the listener holds them as slices of the
/// frame it read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventFrame<S = String> {
    /// The id the webhook's `202` answered with; stable across redeliveries.
    pub id: S,
    pub event_type: S,
    /// RFC 3339 time at which the relay accepted the webhook.
    pub received_at: S,
    /// 1 for the first delivery, increased on each redelivery.
    pub attempt: u32,
    /// The original request headers, in order, as `[name, value]` pairs.
    pub headers: Vec<(S, S)>,
    pub body: S,
    pub body_encoding: BodyEncoding,
    /// `true` when this delivery comes from an explicit replay (`events
    /// replay`, the replay endpoint): the agent hands it on even if it has
    /// handled this id before. Absent (false) on every other delivery.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub replay: bool,
}

impl EventFrame {
    /// Encodes a raw body for the `body`/`body_encoding` pair.
    pub fn encode_body(raw: &[u8]) -> (String, BodyEncoding) {
        match std::str::from_utf8(raw) {
            Ok(text) => (text.to_owned(), BodyEncoding::Utf8),
            Err(_) => (BASE64.encode(raw), BodyEncoding::Base64),
        }
    }
}

impl<S: AsRef<str>> EventFrame<S> {
    /// The raw body, byte for byte as the relay received it.
    pub fn raw_body(&self) -> Result<Vec<u8>, WireError> {
        let body = self.body.as_ref().as_bytes();
        match self.body_encoding {
            BodyEncoding::Utf8 => Ok(body.to_vec()),
            BodyEncoding::Base64 => BASE64.decode(body).map_err(|_| self.bad_base64()),
        }
    }

    /// The error of a `base64` body that is not base64.
    pub fn bad_base64(&self) -> WireError {
        WireError::BadBase64 {
            id: self.id.as_ref().to_owned(),
        }
    }
}

impl<S> EventFrame<S> {
    /// The same frame with each string turned by `f`, in field order (`id`,
    /// `event_type`, `received_at`, each header's name then value, `body`).
    pub fn map<T>(self, mut f: impl FnMut(S) -> T) -> EventFrame<T> {
        EventFrame {
            id: f(self.id),
            event_type: f(self.event_type),
            received_at: f(self.received_at),
            attempt: self.attempt,
            headers: (self.headers.into_iter())
                .map(|(name, value)| (f(name), f(value)))
                .collect(),
            body: f(self.body),
            body_encoding: self.body_encoding,
            replay: self.replay,
        }
    }
}

/// The `error` frame.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorFrame {
    pub code: String,
    pub message: String,
}

/// A frame from the agent to the relay.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum AgentMessage {
    /// The event was handled; the relay marks it delivered.
    Ack { id: String },
    /// The event failed; the relay retries it by its policy.
    Nack {
        id: String,
        #[serde(default)]
        reason: String,
    },
}

/// Why a frame could not be read.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("frame is not a valid message: {0}")]
    Malformed(#[from] serde_json::Error),
    #[error("event {id} has a body_encoding of base64 but its body is not valid base64")]
    BadBase64 { id: String },
}

impl RelayMessage {
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("relay messages always serialize")
    }

    /// Reads a frame. An `event` frame whose first key is `type` (as the
    /// relay writes every frame) is read straight into [`EventFrame`];
    /// anything else, and any frame that fast path does not accept, goes
    /// through serde's internally tagged enum, so what is accepted and every
    /// error are those of the derived `Deserialize`.
    pub fn from_json(text: &str) -> Result<Self, WireError> {
        if let Some(frame) = event_fast::parse(text) {
            return Ok(RelayMessage::Event(frame));
        }
        Ok(serde_json::from_str(text)?)
    }
}

impl<S> RelayMessage<S> {
    /// The same frame with each string of an event turned by `f` (see
    /// [`EventFrame::map`]); `ready` and `error` frames are kept as they are.
    pub fn map<T>(self, f: impl FnMut(S) -> T) -> RelayMessage<T> {
        match self {
            Self::Ready(ready) => RelayMessage::Ready(ready),
            Self::Event(frame) => RelayMessage::Event(frame.map(f)),
            Self::Error(error) => RelayMessage::Error(error),
        }
    }
}

impl<'a> RelayMessage<Text<'a>> {
    /// Reads a frame as [`RelayMessage::from_json`] does (the same frames
    /// accepted, the same values, the same errors), with the strings of an
    /// event borrowed from `text` wherever they need no unescaping. The
    /// fast path reads into [`Text`] directly; any other frame is read by
    /// `from_json` and its strings kept as owned `Text`.
    pub fn from_json_in_place(text: &'a str) -> Result<Self, WireError> {
        if let Some(frame) = event_fast::parse(text) {
            return Ok(RelayMessage::Event(frame));
        }
        Ok(RelayMessage::from_json(text)?.map(Text::from))
    }
}

mod event_fast;
mod text;

pub use text::Text;

impl AgentMessage {
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("agent messages always serialize")
    }

    pub fn from_json(text: &str) -> Result<Self, WireError> {
        Ok(serde_json::from_str(text)?)
    }
}

/// Headers of one HTTP hop (RFC 9110 section 7.6.1, plus the proxy ones)
/// that a sender's request carries but a forwarded copy must not: the
/// listener's `--forward` and the relay's push delivery both leave them out.
pub const HOP_BY_HOP: [&str; 9] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
    "proxy-authorization",
    "proxy-authenticate",
];

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};
    use std::borrow::Cow;

    #[test]
    fn ready_matches_the_contract() {
        let msg = RelayMessage::Ready(Ready {
            session_id: "ses_1".into(),
            agent_id: "agt_1".into(),
            relay_id: "r1".into(),
            webhook_url: "http://x/api/v1/webhook/r1".into(),
            max_in_flight: 100,
            ack_timeout_ms: 30_000,
            protocol: 1,
        });
        let value: Value = serde_json::from_str(&msg.to_json()).unwrap();
        assert_eq!(
            value,
            json!({"type":"ready","session_id":"ses_1","agent_id":"agt_1","relay_id":"r1",
                   "webhook_url":"http://x/api/v1/webhook/r1","max_in_flight":100,
                   "ack_timeout_ms":30000,"protocol":1})
        );
        assert_eq!(RelayMessage::from_json(&msg.to_json()).unwrap(), msg);
    }

    #[test]
    fn event_frame_round_trips_with_header_pairs() {
        let text = r#"{"type":"event","id":"evt_1","event_type":"message.received",
            "received_at":"2026-11-28T12:00:00.000Z","attempt":2,
            "headers":[["content-type","application/json"],["x-a","b"]],
            "body":"{\"a\":1}","body_encoding":"utf8"}"#;
        let RelayMessage::Event(frame) = RelayMessage::from_json(text).unwrap() else {
            panic!("not an event");
        };
        assert_eq!(frame.headers[1], ("x-a".into(), "b".into()));
        assert_eq!(frame.raw_body().unwrap(), br#"{"a":1}"#);
        let again: Value = serde_json::from_str(&RelayMessage::Event(frame).to_json()).unwrap();
        assert_eq!(again, serde_json::from_str::<Value>(text).unwrap());
        assert!(!frame_replay(text), "no `replay` field means not a replay");
    }

    fn frame_replay(text: &str) -> bool {
        match RelayMessage::from_json(text).unwrap() {
            RelayMessage::Event(frame) => frame.replay,
            other => panic!("not an event: {other:?}"),
        }
    }

    #[test]
    fn replays_are_marked_and_ordinary_deliveries_carry_no_flag() {
        let text = r#"{"type":"event","id":"evt_1","event_type":"t","received_at":"x","attempt":3,
            "headers":[],"body":"","body_encoding":"utf8","replay":true}"#;
        assert!(frame_replay(text));
        let RelayMessage::Event(mut frame) = RelayMessage::from_json(text).unwrap() else {
            unreachable!()
        };
        let marked: Value =
            serde_json::from_str(&RelayMessage::Event(frame.clone()).to_json()).unwrap();
        assert_eq!(marked["replay"], json!(true));
        frame.replay = false;
        let plain: Value = serde_json::from_str(&RelayMessage::Event(frame).to_json()).unwrap();
        assert!(plain.get("replay").is_none(), "{plain}");
    }

    #[test]
    fn bodies_that_are_not_utf8_travel_as_padded_base64() {
        let raw = [0xff, 0x00, 0xfe, b'a'];
        let (body, encoding) = EventFrame::encode_body(&raw);
        assert_eq!(encoding, BodyEncoding::Base64);
        assert_eq!(body, "/wD+YQ==");
        let frame = EventFrame {
            id: "evt".into(),
            event_type: "t".into(),
            received_at: String::new(),
            attempt: 1,
            headers: vec![],
            body,
            body_encoding: encoding,
            replay: false,
        };
        assert_eq!(frame.raw_body().unwrap(), raw);
    }

    #[test]
    fn agent_messages_match_the_contract() {
        assert_eq!(
            AgentMessage::from_json(r#"{"type":"ack","id":"evt_1"}"#).unwrap(),
            AgentMessage::Ack { id: "evt_1".into() }
        );
        assert_eq!(
            AgentMessage::from_json(r#"{"type":"nack","id":"evt_1","reason":"500"}"#).unwrap(),
            AgentMessage::Nack {
                id: "evt_1".into(),
                reason: "500".into()
            }
        );
    }

    /// What serde's derived reading of the enum makes of `text`: the
    /// reference `RelayMessage::from_json` must match, value or error text.
    fn derived(text: &str) -> Result<RelayMessage, String> {
        serde_json::from_str::<RelayMessage>(text).map_err(|err| err.to_string())
    }

    fn read(text: &str) -> Result<RelayMessage, String> {
        RelayMessage::from_json(text).map_err(|err| match err {
            WireError::Malformed(err) => err.to_string(),
            other => panic!("not a parse error: {other}"),
        })
    }

    /// [`RelayMessage::from_json_in_place`], with its strings made owned.
    fn read_in_place(text: &str) -> Result<RelayMessage, String> {
        match RelayMessage::from_json_in_place(text) {
            Ok(message) => Ok(message.map(|text| text.0.into_owned())),
            Err(WireError::Malformed(err)) => Err(err.to_string()),
            Err(other) => panic!("not a parse error: {other}"),
        }
    }

    #[test]
    fn in_place_strings_borrow_from_the_frame_unless_escaped() {
        // One copy of the frame: each use of a `const` may be a copy of
        // its own (one per codegen unit), at another address.
        let event: &str = EVENT;
        let Ok(RelayMessage::Event(frame)) = RelayMessage::from_json_in_place(event) else {
            panic!("not an event");
        };
        let inside = |text: &Text<'_>| {
            let range = event.as_bytes().as_ptr_range();
            matches!(text.0, Cow::Borrowed(_)) && range.contains(&text.as_ptr())
        };
        assert!(inside(&frame.id) && inside(&frame.event_type) && inside(&frame.received_at));
        assert!(frame.headers.iter().all(|(n, v)| inside(n) && inside(v)));
        assert!(
            matches!(frame.body.0, Cow::Owned(_)),
            "the body had escapes"
        );
        assert_eq!(&*frame.body, r#"{"a":1}"#);
        assert_eq!(frame.raw_body().unwrap(), br#"{"a":1}"#);
        // Another frame than an event, or one the fast path leaves: owned.
        let slow = format!(r#"{{{},"type":"event"}}"#, &EVENT[16..EVENT.len() - 1]);
        let Ok(RelayMessage::Event(frame)) = RelayMessage::from_json_in_place(&slow) else {
            panic!("not an event: {slow}");
        };
        assert!(matches!(frame.id.0, Cow::Owned(_)));
        assert_eq!(&*frame.id, "evt_1");
    }

    const EVENT: &str = r#"{"type":"event","id":"evt_1","event_type":"message.received","received_at":"2026-11-28T12:00:00.000Z","attempt":2,"headers":[["content-type","application/json"],["x-a","b"]],"body":"{\"a\":1}","body_encoding":"utf8"}"#;

    #[test]
    fn event_frames_with_the_type_first_take_the_fast_path() {
        let frame = event_fast::parse(EVENT).expect("the fast path reads the relay's frames");
        assert_eq!(Ok(RelayMessage::Event(frame)), derived(EVENT));
        let replay = EVENT.replace(
            r#""utf8"}"#,
            r#""utf8","replay":true,"extra":[1,{"a":null}]}"#,
        );
        let frame = event_fast::parse::<String>(&replay).expect("unknown fields are ignored");
        assert!(frame.replay);
        // What the relay writes comes back the same way.
        let Ok(RelayMessage::Event(frame)) = derived(EVENT) else {
            unreachable!()
        };
        let written = RelayMessage::Event(frame.clone()).to_json();
        assert_eq!(event_fast::parse(&written), Some(frame));
    }

    /// Frames the fast path leaves to serde's derived reading, and malformed
    /// ones: accepted or refused exactly as before, with the same error.
    #[test]
    fn every_frame_reads_as_the_derived_enum_does() {
        let body = r#""id":"evt_1","event_type":"t","received_at":"x","attempt":1,"headers":[["a","b"]],"body":"","body_encoding":"utf8""#;
        let fields = [
            r#""id":"evt_1""#,
            r#""event_type":"t""#,
            r#""received_at":"x""#,
            r#""attempt":1"#,
            r#""headers":[["a","b"]]"#,
            r#""body":"""#,
            r#""body_encoding":"utf8""#,
        ];
        let mut cases: Vec<String> = vec![
            // The type elsewhere than first (slow path, accepted).
            format!(r#"{{{body},"type":"event"}}"#),
            format!(r#"{{"id":"evt_1","type":"event",{}}}"#, &body[13..]),
            // Unknown, non-string, duplicate or missing types.
            format!(r#"{{"type":"bogus",{body}}}"#),
            format!(r#"{{"type":"Event",{body}}}"#),
            format!(r#"{{"type":1,{body}}}"#),
            format!(r#"{{"type":null,{body}}}"#),
            format!(r#"{{"type":"event","type":"event",{body}}}"#),
            format!(r#"{{"type":"event",{body},"type":"event"}}"#),
            format!(r#"{{"type":"event",{body},"type":"ready"}}"#),
            format!(r#"{{{body}}}"#),
            // Escaped keys and values.
            format!(r#"{{"typ\u0065":"ev\u0065nt",{body}}}"#),
            format!(r#"{{"type":"event",{}}}"#, body.replace(r#""id""#, r#""\u0069d""#)),
            format!(r#"{{"type":"event",{}}}"#, body.replace(r#""t""#, r#""\ttab\n""#)),
            // A raw control character in a string is not JSON.
            format!(r#"{{"type":"event",{}}}"#, body.replace(r#""t""#, "\"\ttab\n\"")),
            // Duplicate fields, wrong types, out-of-range numbers.
            format!(r#"{{"type":"event","id":"evt_0",{body}}}"#),
            format!(r#"{{"type":"event",{},"attempt":-1}}"#, body.replace(r#","attempt":1"#, "")),
            format!(r#"{{"type":"event",{}}}"#, body.replace(r#""attempt":1"#, r#""attempt":1.0"#)),
            format!(r#"{{"type":"event",{}}}"#, body.replace(r#""attempt":1"#, r#""attempt":"1""#)),
            format!(r#"{{"type":"event",{}}}"#, body.replace(r#""attempt":1"#, r#""attempt":4294967296"#)),
            format!(r#"{{"type":"event",{}}}"#, body.replace(r#""attempt":1"#, r#""attempt":-0"#)),
            format!(r#"{{"type":"event",{}}}"#, body.replace(r#"[["a","b"]]"#, r#"[["a"]]"#)),
            format!(r#"{{"type":"event",{}}}"#, body.replace(r#"[["a","b"]]"#, r#"[["a","b","c"]]"#)),
            format!(r#"{{"type":"event",{}}}"#, body.replace(r#"[["a","b"]]"#, r#"{"a":"b"}"#)),
            format!(r#"{{"type":"event",{}}}"#, body.replace(r#"[["a","b"]]"#, "[[1,2]]")),
            format!(r#"{{"type":"event",{}}}"#, body.replace(r#"[["a","b"]]"#, "null")),
            format!(r#"{{"type":"event",{}}}"#, body.replace(r#""utf8""#, r#""UTF8""#)),
            format!(r#"{{"type":"event",{}}}"#, body.replace(r#""utf8""#, r#"{"base64":null}"#)),
            format!(r#"{{"type":"event",{}}}"#, body.replace(r#""utf8""#, "0")),
            format!(r#"{{"type":"event",{body},"replay":null}}"#),
            format!(r#"{{"type":"event",{body},"replay":1}}"#),
            format!(r#"{{"type":"event",{body},"replay":false}}"#),
            // Around the object.
            format!(r#" {{"type":"event",{body}}} "#),
            format!(r#"{{"type":"event",{body}}}x"#),
            format!(r#"{{"type":"event",{body}}}{{}}"#),
            format!(r#"{{"type":"event",{body}"#),
            format!(r#"["event","evt_1","t","x",1,[["a","b"]],"","utf8"]"#),
            // The other frames.
            r#"{"type":"error","code":"c","message":"m"}"#.to_owned(),
            r#"{"type":"error","code":"c"}"#.to_owned(),
            r#"{"type":"ready","session_id":"s","agent_id":"a","relay_id":"r","webhook_url":"u","max_in_flight":1,"ack_timeout_ms":2,"protocol":1}"#.to_owned(),
            String::new(),
            "{}".to_owned(),
            "[]".to_owned(),
            "null".to_owned(),
            r#"{"type":"event"}"#.to_owned(),
            "nul\0".to_owned(),
        ];
        // Each field missing in turn.
        for field in fields {
            let without = body
                .replace(&format!("{field},"), "")
                .replace(&format!(",{field}"), "");
            cases.push(format!(r#"{{"type":"event",{without}}}"#));
        }
        // The relay's frame cut, or with a character deleted or replaced,
        // at every position.
        for at in 0..EVENT.len() {
            if !EVENT.is_char_boundary(at) {
                continue;
            }
            cases.push(EVENT[..at].to_owned());
            let rest = &EVENT[at..];
            let next = rest.chars().next().map_or(0, char::len_utf8);
            cases.push(format!("{}{}", &EVENT[..at], &rest[next..]));
            for with in ["\"", ",", "}", "]", "1", " ", "x"] {
                cases.push(format!("{}{with}{}", &EVENT[..at], &rest[next..]));
            }
        }
        let mut fast = 0;
        for case in &cases {
            assert_eq!(read(case), derived(case), "{case}");
            assert_eq!(read_in_place(case), derived(case), "in place: {case}");
            fast += usize::from(event_fast::parse::<String>(case).is_some());
        }
        assert!(fast > 20, "the fast path read {fast} of the cases");
    }

    #[test]
    fn malformed_agent_frames_are_errors_not_panics() {
        for bad in [
            "",
            "{}",
            "[]",
            r#"{"type":"ack"}"#,
            r#"{"type":"bogus","id":"x"}"#,
            "nul\0",
        ] {
            assert!(AgentMessage::from_json(bad).is_err(), "{bad:?} should fail");
        }
    }
}
