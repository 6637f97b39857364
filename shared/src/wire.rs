//! The WebSocket protocol, version 1 (`docs/api-reference.md`, "WebSocket sessions").
//!
//! Frames are JSON text objects tagged by `type`. [`RelayMessage`] flows from
//! the relay to the agent, [`AgentMessage`] from the agent to the relay.
//! Nothing else in the project builds or parses frames by hand.

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

/// A frame from the relay to the agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum RelayMessage {
    /// First frame of every session: who the agent is and the session's limits.
    Ready(Ready),
    /// One webhook delivery; the agent answers with `ack` or `nack`.
    Event(EventFrame),
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

/// The `event` frame: one delivery attempt of a stored webhook.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventFrame {
    /// The id the webhook's `202` answered with; stable across redeliveries.
    pub id: String,
    pub event_type: String,
    /// RFC 3339 time at which the relay accepted the webhook.
    pub received_at: String,
    /// 1 for the first delivery, increased on each redelivery.
    pub attempt: u32,
    /// The original request headers, in order, as `[name, value]` pairs.
    pub headers: Vec<(String, String)>,
    pub body: String,
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

    /// The raw body, byte for byte as the relay received it.
    pub fn raw_body(&self) -> Result<Vec<u8>, WireError> {
        match self.body_encoding {
            BodyEncoding::Utf8 => Ok(self.body.as_bytes().to_vec()),
            BodyEncoding::Base64 => {
                BASE64
                    .decode(self.body.as_bytes())
                    .map_err(|_| WireError::BadBase64 {
                        id: self.id.clone(),
                    })
            }
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

    pub fn from_json(text: &str) -> Result<Self, WireError> {
        Ok(serde_json::from_str(text)?)
    }
}

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
