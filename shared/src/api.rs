//! The bodies of the relay's HTTP API, typed once for both ends: the relay
//! serializes these, the CLI deserializes them, so a renamed field fails to
//! compile (or, against an older relay, fails to parse with a message)
//! instead of silently reading as zero. The endpoints are described in
//! `docs/api-reference.md`; times are RFC 3339 text, UTC, with
//! milliseconds.

use serde::{Deserialize, Serialize};

pub use crate::wire::BodyEncoding;

/// `GET /api/v1/agent/me`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AgentMe {
    pub agent_id: String,
    pub name: String,
    pub workspace: String,
    pub relay_id: String,
    pub webhook_url: String,
    /// Events not yet delivered (pending or being delivered).
    pub pending_events: u64,
    /// Sessions of this agent on the instance that answered.
    pub online_sessions: u64,
}

/// One event in a listing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EventSummary {
    pub id: String,
    pub event_type: String,
    /// `pending`, `delivering`, `delivered`, `failed`, `expired` or `skipped`.
    pub status: String,
    pub received_at: String,
    /// Delivery attempts so far.
    pub attempts: u32,
}

/// `GET /api/v1/agent/events`: newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EventPage {
    pub events: Vec<EventSummary>,
    /// Pass as `before` for the next page; `null` on the last one.
    pub next: Option<String>,
}

/// One delivery attempt in an event's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Attempt {
    pub attempt: u32,
    pub at: String,
    pub session_id: Option<String>,
    /// `delivered`, `nacked`, `timeout` or `interrupted`.
    pub outcome: String,
    pub error: Option<String>,
}

/// `GET /api/v1/agent/events/{id}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EventDetail {
    #[serde(flatten)]
    pub summary: EventSummary,
    /// The sender's headers in order, names lower-cased: `[name, value]`.
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<Vec<String>>))]
    pub headers: Vec<(String, String)>,
    /// The body as received: text, or base64 (see `body_encoding`).
    pub body: String,
    pub body_encoding: BodyEncoding,
    pub attempt_history: Vec<Attempt>,
}

/// `202` of a webhook, a replay or a test event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Accepted {
    pub id: String,
    /// Webhooks only: `true` (with `200`) when the sender's delivery was
    /// stored before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duplicate: Option<bool>,
}

/// `POST /api/v1/{agent,admin}/events/replay-failed`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReplayedFailed {
    pub matched: u64,
    pub queued: u64,
    /// More matched than one request queues: send it again.
    pub truncated: bool,
}

/// `POST /api/v1/admin/agents` (`201`): the key is shown this once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CreatedAgent {
    pub agent_id: String,
    pub name: String,
    pub workspace: String,
    pub relay_id: String,
    pub api_key: String,
    pub webhook_url: String,
}

/// One agent in `GET /api/v1/admin/agents`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ListedAgent {
    pub agent_id: String,
    pub name: String,
    pub workspace: String,
    pub relay_id: String,
    pub webhook_url: String,
    pub created_at: String,
    pub last_seen: Option<String>,
    pub online_sessions: u64,
    /// `websocket`, `sse`, `poll`: one per live session on this instance.
    pub session_transports: Vec<String>,
    pub pending_events: u64,
}

/// `GET /api/v1/admin/agents`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AgentList {
    pub agents: Vec<ListedAgent>,
}

/// `DELETE /api/v1/admin/agents/{agent_id}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Revoked {
    pub agent_id: String,
    pub revoked: bool,
}

/// `PUT /api/v1/agent/callback`: one URL, or several tried in order (the
/// first that answers 2xx takes the event). Give `url` or `urls`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SetCallback {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub urls: Option<Vec<String>>,
}

/// `PUT /api/v1/agent/callback`: the secret is shown this once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CallbackSet {
    /// The first of `urls`.
    pub url: String,
    /// Every URL, in the order they are tried (absent from relays before
    /// lists: read `url` then).
    #[serde(default)]
    pub urls: Vec<String>,
    /// `whsec_...`: verifies the pushes (Standard Webhooks).
    pub signing_secret: String,
    /// `standard-webhooks`.
    pub signature_scheme: String,
}

/// `GET /api/v1/agent/callback`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CallbackShown {
    /// The first of `urls`.
    pub url: String,
    /// Every URL, in the order they are tried (absent from relays before
    /// lists: read `url` then).
    #[serde(default)]
    pub urls: Vec<String>,
    pub signature_scheme: String,
    pub created_at: String,
    pub updated_at: String,
    /// Whether the instance that answered pushes to it now (not while a
    /// session of the agent is connected to it).
    pub pushing: bool,
    /// Sessions of this agent on the instance that answered.
    pub online_sessions: u64,
    /// Whether a session of the agent is connected to another instance
    /// sharing the database (pushes pause for it too).
    #[serde(default)]
    pub connected_elsewhere: bool,
}

/// Every error answer: `{"error": {"code", "message"}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorDetail {
    /// Stable, for programs (`unknown_relay`, `rate_limited`, ...).
    pub code: String,
    /// For people: what happened and what to do.
    pub message: String,
}

/// `POST /api/v1/admin/workspaces`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CreateWorkspace {
    /// 1 to 64 characters of a-z, 0-9 and `-`; not `default`.
    pub name: String,
    /// `standard-webhooks` (the default), `github`, `stripe` or `none`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature_scheme: Option<String>,
    /// Signing secrets, taken verbatim; any of them verifies.
    #[serde(default)]
    pub secrets: Vec<String>,
    /// Required `true` with the scheme `none`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allow_unsigned: bool,
}

/// `PUT /api/v1/admin/workspaces/{name}/secrets`: the new set, replacing
/// the old one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReplaceSecrets {
    pub secrets: Vec<String>,
}

/// A workspace as the API shows it: never its secrets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Workspace {
    pub name: String,
    pub signature_scheme: String,
    pub secret_count: usize,
    /// `sha256:` and the first hex digits of each secret's SHA-256.
    pub secret_fingerprints: Vec<String>,
    /// `config` (the default workspace, from the relay's flags) or
    /// `database`.
    pub source: String,
    /// `null` for the default workspace.
    pub created_at: Option<String>,
    /// Whether the stored secrets are sealed with `--encryption-key`;
    /// `null` for the default workspace.
    pub encrypted_at_rest: Option<bool>,
}

/// `GET /api/v1/admin/workspaces`: the default workspace first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WorkspaceList {
    pub workspaces: Vec<Workspace>,
}

/// `POST /api/v1/agent/stream/{session_id}/acks` (the Server-Sent Events
/// and long-poll sessions): how many of the batch's acks and nacks applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AnswersApplied {
    pub acked: usize,
    pub nacked: usize,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_event_detail_is_its_summary_plus_the_payload() {
        let detail = EventDetail {
            summary: EventSummary {
                id: "evt_1".into(),
                event_type: "ping".into(),
                status: "delivered".into(),
                received_at: "2026-12-04T00:00:00.000Z".into(),
                attempts: 1,
            },
            headers: vec![("content-type".into(), "application/json".into())],
            body: "{}".into(),
            body_encoding: BodyEncoding::Utf8,
            attempt_history: vec![],
        };
        let value = serde_json::to_value(&detail).unwrap();
        assert_eq!(value["id"], "evt_1");
        assert_eq!(
            value["headers"],
            json!([["content-type", "application/json"]])
        );
        assert_eq!(
            serde_json::from_value::<EventDetail>(value).unwrap(),
            detail
        );
    }

    #[test]
    fn accepted_names_duplicates_only_for_webhooks() {
        let replay = Accepted {
            id: "evt_1".into(),
            duplicate: None,
        };
        assert_eq!(
            serde_json::to_value(&replay).unwrap(),
            json!({"id": "evt_1"})
        );
        let webhook: Accepted =
            serde_json::from_value(json!({"id": "evt_1", "duplicate": false})).unwrap();
        assert_eq!(webhook.duplicate, Some(false));
    }

    #[test]
    fn a_missing_field_is_an_error_not_a_zero() {
        let old = json!({"agent_id": "agt_1", "name": "a", "workspace": "default",
                         "relay_id": "rly_1", "webhook_url": "http://x"});
        assert!(serde_json::from_value::<AgentMe>(old).is_err());
    }
}
