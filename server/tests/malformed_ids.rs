//! Ids that could never have been issued (wrong prefix, case, length,
//! alphabet) get exactly the answer an unknown id of the right shape gets:
//! the same status and JSON body. The relay parses ids where they enter;
//! these pin that parsing changes no answer.

// Shared with session.rs, which uses what this file does not.
#[allow(dead_code)]
mod support;

use futures_util::SinkExt as _;
use lobster_shared::wire::{AgentMessage, RelayMessage};
use serde_json::{Value, json};
use support::{ADMIN_TOKEN, Relay, next_message};
use tokio_tungstenite::tungstenite::Message;

fn error(code: &str, message: &str) -> Value {
    json!({"error": {"code": code, "message": message}})
}

/// Texts that are no event id, and one that is but names no event.
const EVENT_IDS: [&str; 5] = [
    "garbage",
    "evt_1",
    "evt_01kbq3m0z6x8y9a7b5c4d3e2f1",
    "agt_01KBQ3M0Z6X8Y9A7B5C4D3E2F1",
    "evt_01KBQ3M0Z6X8Y9A7B5C4D3E2F1",
];

#[tokio::test]
async fn event_ids_that_name_no_event_answer_event_not_found() {
    let relay = Relay::start().await;
    let agent = relay.create_agent("events").await;
    for id in EVENT_IDS {
        let path = format!("/api/v1/agent/events/{id}");
        let answer = relay.request("GET", &path, &agent.api_key, None).await;
        let expected = error("event_not_found", &format!("this agent has no event {id}"));
        assert_eq!(answer, (404, expected.clone()), "GET {path}");
        let path = format!("/api/v1/agent/events/{id}/replay");
        let answer = relay.request("POST", &path, &agent.api_key, None).await;
        assert_eq!(answer, (404, expected), "POST {path}");
    }
    relay.stop().await;
}

#[tokio::test]
async fn a_cursor_that_names_no_event_lists_from_the_newest() {
    let relay = Relay::start().await;
    let agent = relay.create_agent("cursor").await;
    let id = relay.post_webhook(&agent, &json!({"type": "a"})).await;
    for before in EVENT_IDS {
        let path = format!("/api/v1/agent/events?before={before}");
        let (status, body) = relay.request("GET", &path, &agent.api_key, None).await;
        assert_eq!(status, 200, "{path}: {body}");
        assert_eq!(body["events"][0]["id"], id.as_str(), "{path}: {body}");
    }
    relay.stop().await;
}

#[tokio::test]
async fn relay_ids_that_name_no_agent_answer_unknown_relay() {
    let relay = Relay::start().await;
    let agent = relay.create_agent("relay").await;
    let expected = error(
        "unknown_relay",
        "no agent has this relay id; check the webhook URL",
    );
    let upper = agent.relay_id.to_uppercase().replacen("RLY_", "rly_", 1);
    let short = &agent.relay_id[..agent.relay_id.len() - 1];
    let other = format!("rly_{}", "0".repeat(26));
    for relay_id in ["garbage", "rly_", upper.as_str(), short, other.as_str()] {
        let path = format!("/api/v1/webhook/{relay_id}");
        let answer = relay.request("POST", &path, "-", Some(&json!({}))).await;
        assert_eq!(answer, (404, expected.clone()), "{path}");
    }
    relay.stop().await;
}

#[tokio::test]
async fn admin_ids_and_names_that_name_nothing_answer_as_unknown_ones() {
    let relay = Relay::start().await;
    for agent_id in ["garbage", "agt_1", "agt_01KBQ3M0Z6X8Y9A7B5C4D3E2F1"] {
        let path = format!("/api/v1/admin/agents/{agent_id}");
        let answer = relay.request("DELETE", &path, ADMIN_TOKEN, None).await;
        let expected = error("agent_not_found", &format!("no active agent {agent_id}"));
        assert_eq!(answer, (404, expected), "{path}");
    }
    for name in ["Bad_Name", "UPPER", "nope"] {
        let path = format!("/api/v1/admin/workspaces/{name}/secrets");
        let body = json!({"secrets": ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"]});
        let answer = relay.request("PUT", &path, ADMIN_TOKEN, Some(&body)).await;
        let message = format!("no workspace {name:?}; see GET /api/v1/admin/workspaces");
        assert_eq!(
            answer,
            (404, error("workspace_not_found", &message)),
            "{path}"
        );
    }
    for workspace in ["Not Valid", "UPPER", "nope", ""] {
        let body = json!({"name": "a", "workspace": workspace});
        let answer = relay
            .request("POST", "/api/v1/admin/agents", ADMIN_TOKEN, Some(&body))
            .await;
        let message = format!(
            "no workspace {workspace:?}: create it with POST /api/v1/admin/workspaces, or see GET /api/v1/admin/workspaces"
        );
        assert_eq!(
            answer,
            (404, error("unknown_workspace", &message)),
            "{body}"
        );
    }
    for name in ["Bad Name", "a_b", ""] {
        let body = json!({"name": name, "signature_scheme": "github", "secrets": ["s3cret"]});
        let answer = relay
            .request("POST", "/api/v1/admin/workspaces", ADMIN_TOKEN, Some(&body))
            .await;
        let message = "a workspace name is 1 to 64 characters of a-z, 0-9 and -";
        assert_eq!(answer, (400, error("invalid_name", message)), "{body}");
    }
    let body = json!({"agent_id": "garbage"});
    let answer = relay
        .request(
            "POST",
            "/api/v1/admin/events/replay-failed",
            ADMIN_TOKEN,
            Some(&body),
        )
        .await;
    let nothing = json!({"matched": 0, "queued": 0, "truncated": false});
    assert_eq!(answer, (200, nothing));
    relay.stop().await;
}

#[tokio::test]
async fn session_ids_that_name_no_session_answer_session_not_found() {
    let relay = Relay::start().await;
    let agent = relay.create_agent("sessions").await;
    for session_id in ["garbage", "ses_1", "ses_01KBQ3M0Z6X8Y9A7B5C4D3E2F1"] {
        let message = format!(
            "no live session {session_id} on this relay (it ended, or the relay restarted): open a new one; the events it held are delivered again"
        );
        let expected = (404, error("session_not_found", &message));
        let path = format!("/api/v1/agent/stream/{session_id}/acks");
        let body = json!({"acks": [{"id": "garbage"}]});
        let answer = relay
            .request("POST", &path, &agent.api_key, Some(&body))
            .await;
        assert_eq!(answer, expected, "{path}");
        let path = format!("/api/v1/agent/poll?session_id={session_id}&wait=0");
        let answer = relay.request("GET", &path, &agent.api_key, None).await;
        assert_eq!(answer, expected, "{path}");
    }
    relay.stop().await;
}

#[tokio::test]
async fn acks_and_nacks_of_ids_that_name_no_event_change_nothing() {
    let relay = Relay::start().await;
    let agent = relay.create_agent("answers").await;
    let mut ws = relay.connect(&agent.api_key).await.unwrap();
    let RelayMessage::Ready(_) = next_message(&mut ws).await else {
        panic!("the session did not start with ready");
    };
    let id = relay.post_webhook(&agent, &json!({"type": "a"})).await;
    let RelayMessage::Event(event) = next_message(&mut ws).await else {
        panic!("expected the event");
    };
    assert_eq!(event.id, id);
    for bogus in ["garbage", "evt_1", &id.to_lowercase()] {
        for message in [
            AgentMessage::Ack { id: bogus.into() },
            AgentMessage::Nack {
                id: bogus.into(),
                reason: "no".into(),
            },
        ] {
            ws.send(Message::text(message.to_json())).await.unwrap();
        }
    }
    let detail = relay.event(&agent, &id).await;
    assert_eq!(detail.summary.status, "delivering", "still leased");
    let ack = AgentMessage::Ack { id: id.clone() };
    ws.send(Message::text(ack.to_json())).await.unwrap();
    relay.await_status(&agent, &id, "delivered").await;
    relay.stop().await;
}
