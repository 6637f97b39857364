//! An agent's WebSocket session against the whole relay, in-process: the
//! relay serves on in-memory pipes (`support`), and each test speaks the
//! protocol as an agent would, with webhooks and API calls over pipes of
//! their own.

mod support;

use futures_util::SinkExt as _;
use lobster_shared::api::CreatedAgent;
use lobster_shared::wire::{AgentMessage, EventFrame, PROTOCOL_VERSION, RelayMessage, close_code};
use serde_json::json;
use support::{
    ACK_TIMEOUT_MS, Frame, MAX_IN_FLIGHT, PUBLIC_URL, Relay, Ws, next_frame, next_message,
};
use tokio_tungstenite::tungstenite::{self, Message};

/// A session of `agent` past its ready frame.
async fn session(relay: &Relay, agent: &CreatedAgent) -> Ws {
    let mut ws = relay.connect(&agent.api_key).await.expect("the upgrade");
    let RelayMessage::Ready(_) = next_message(&mut ws).await else {
        panic!("the session did not start with ready");
    };
    ws
}

async fn next_event(ws: &mut Ws) -> EventFrame {
    match next_message(ws).await {
        RelayMessage::Event(event) => event,
        other => panic!("expected an event, got {other:?}"),
    }
}

async fn answer(ws: &mut Ws, message: AgentMessage) {
    ws.send(Message::text(message.to_json())).await.unwrap();
}

#[tokio::test]
async fn a_session_starts_with_ready() {
    let relay = Relay::start().await;
    let agent = relay.create_agent("ready").await;
    let mut ws = relay.connect(&agent.api_key).await.unwrap();
    let RelayMessage::Ready(ready) = next_message(&mut ws).await else {
        panic!("the first frame is not ready");
    };
    assert!(ready.session_id.starts_with("ses_"), "{}", ready.session_id);
    assert_eq!(ready.agent_id, agent.agent_id);
    assert_eq!(ready.relay_id, agent.relay_id);
    assert_eq!(
        ready.webhook_url,
        format!("{PUBLIC_URL}/api/v1/webhook/{}", agent.relay_id)
    );
    assert_eq!(ready.max_in_flight, MAX_IN_FLIGHT);
    assert_eq!(ready.ack_timeout_ms, ACK_TIMEOUT_MS);
    assert_eq!(ready.protocol, PROTOCOL_VERSION);
    relay.stop().await;
}

#[tokio::test]
async fn a_bad_key_is_refused_before_the_upgrade() {
    let relay = Relay::start().await;
    match relay.connect("lr_not_a_key").await {
        Err(tungstenite::Error::Http(response)) => assert_eq!(response.status(), 401),
        Err(other) => panic!("expected 401, got {other}"),
        Ok(_) => panic!("a bad key opened a session"),
    }
    relay.stop().await;
}

#[tokio::test]
async fn a_webhook_is_delivered_as_an_event_and_its_ack_settles_it() {
    let relay = Relay::start().await;
    let agent = relay.create_agent("acks").await;
    let mut ws = session(&relay, &agent).await;
    let body = json!({"type": "order.paid", "order": 1});
    let id = relay.post_webhook(&agent, &body).await;

    let event = next_event(&mut ws).await;
    assert_eq!(event.id, id);
    assert_eq!(event.event_type, "order.paid");
    assert_eq!(event.attempt, 1);
    assert!(!event.replay);
    assert_eq!(event.raw_body().unwrap(), body.to_string().into_bytes());

    answer(&mut ws, AgentMessage::Ack { id: id.clone() }).await;
    let stored = relay.await_status(&agent, &id, "delivered").await;
    assert_eq!(stored.summary.attempts, 1);
    let outcomes: Vec<_> = stored
        .attempt_history
        .iter()
        .map(|a| &a.outcome[..])
        .collect();
    assert_eq!(outcomes, ["delivered"]);
    relay.stop().await;
}

#[tokio::test]
async fn an_event_stored_while_offline_is_delivered_when_a_session_opens() {
    let relay = Relay::start().await;
    let agent = relay.create_agent("offline").await;
    let id = relay
        .post_webhook(&agent, &json!({"type": "while.away"}))
        .await;
    assert_eq!(relay.event(&agent, &id).await.summary.status, "pending");

    let mut ws = session(&relay, &agent).await;
    let event = next_event(&mut ws).await;
    assert_eq!((event.id.as_str(), event.attempt), (id.as_str(), 1));
    answer(&mut ws, AgentMessage::Ack { id: id.clone() }).await;
    relay.await_status(&agent, &id, "delivered").await;
    relay.stop().await;
}

#[tokio::test]
async fn a_nacked_event_is_delivered_again() {
    let relay = Relay::start().await;
    let agent = relay.create_agent("nacks").await;
    let mut ws = session(&relay, &agent).await;
    let id = relay.post_webhook(&agent, &json!({"type": "flaky"})).await;

    let first = next_event(&mut ws).await;
    assert_eq!((first.id.as_str(), first.attempt), (id.as_str(), 1));
    let reason = "handler exited with status 1".to_owned();
    answer(
        &mut ws,
        AgentMessage::Nack {
            id: id.clone(),
            reason: reason.clone(),
        },
    )
    .await;

    // The retry delay is 1 ms: the same session gets it again.
    let second = next_event(&mut ws).await;
    assert_eq!((second.id.as_str(), second.attempt), (id.as_str(), 2));
    assert_eq!(second.raw_body().unwrap(), first.raw_body().unwrap());
    answer(&mut ws, AgentMessage::Ack { id: id.clone() }).await;

    let stored = relay.await_status(&agent, &id, "delivered").await;
    let history: Vec<_> = stored
        .attempt_history
        .iter()
        .map(|a| (a.attempt, &a.outcome[..], a.error.as_deref()))
        .collect();
    assert_eq!(
        history,
        [(1, "nacked", Some(&reason[..])), (2, "delivered", None)]
    );
    relay.stop().await;
}

#[tokio::test]
async fn a_malformed_frame_ends_the_session_as_a_protocol_violation() {
    let relay = Relay::start().await;
    let agent = relay.create_agent("garbage").await;
    let frames = [
        Message::text("this is not json"),
        Message::text(r#"{"type":"ack"}"#),
        Message::binary(b"{}".to_vec()),
    ];
    for frame in frames {
        let mut ws = session(&relay, &agent).await;
        ws.send(frame.clone()).await.unwrap();
        let RelayMessage::Error(error) = next_message(&mut ws).await else {
            panic!("no error frame after {frame:?}");
        };
        assert_eq!(error.code, "protocol_violation", "after {frame:?}");
        assert!(!error.message.is_empty());
        assert!(
            matches!(
                next_frame(&mut ws).await,
                Frame::Closed(Some(close_code::PROTOCOL_VIOLATION))
            ),
            "after {frame:?}"
        );
    }
    relay.stop().await;
}

#[tokio::test]
async fn revoking_the_agent_closes_its_session() {
    let relay = Relay::start().await;
    let agent = relay.create_agent("revoked").await;
    let mut ws = session(&relay, &agent).await;
    let path = format!("/api/v1/admin/agents/{}", agent.agent_id);
    let (status, body) = relay
        .request("DELETE", &path, support::ADMIN_TOKEN, None)
        .await;
    assert_eq!(status, 200, "{body}");

    let RelayMessage::Error(error) = next_message(&mut ws).await else {
        panic!("no error frame on revocation");
    };
    assert_eq!(error.code, "agent_revoked");
    assert!(matches!(
        next_frame(&mut ws).await,
        Frame::Closed(Some(close_code::REVOKED))
    ));
    relay.stop().await;
}

#[tokio::test]
async fn a_shutdown_closes_sessions_as_restarting_and_drains() {
    let relay = Relay::start().await;
    let agent = relay.create_agent("restart").await;
    let mut ws = session(&relay, &agent).await;
    let stopped = tokio::spawn(relay.stop());
    assert!(matches!(
        next_frame(&mut ws).await,
        Frame::Closed(Some(close_code::RESTARTING))
    ));
    // `run` returned: sessions closed and every write committed.
    stopped.await.unwrap();
}
