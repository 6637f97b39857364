//! Sessions against a scripted relay over an in-memory duplex pipe.

use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt as _, StreamExt as _};
use lobster_shared::wire::{AgentMessage, EventFrame, Ready, RelayMessage};
use tokio::io::DuplexStream;
use tokio::sync::Semaphore;
use tokio::time::timeout;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::args::Mode;
use super::dispatch::Dispatch;
use super::handler::Handler;
use super::session::{self, SessionInfo};
use crate::agent::close::SessionEnd;
use crate::exit::ExitCode;
use crate::report::exit_code;
use crate::ui::Ui;

type Ws = WebSocketStream<DuplexStream>;

async fn pair() -> (Ws, Ws) {
    let (agent, relay) = tokio::io::duplex(1 << 20);
    let agent = WebSocketStream::from_raw_socket(agent, Role::Client, None).await;
    let relay = WebSocketStream::from_raw_socket(relay, Role::Server, None).await;
    (agent, relay)
}

fn dispatch(command: &str, concurrency: usize) -> Dispatch {
    let stop = CancellationToken::new();
    let mode = Mode::Exec {
        command: command.into(),
    };
    let handler = Handler::new(mode, None, Ui::silent(), stop.clone()).unwrap();
    Dispatch {
        handler: Arc::new(handler),
        permits: Arc::new(Semaphore::new(concurrency)),
        tracker: TaskTracker::new(),
        stop,
    }
}

/// One session over the WebSocket `agent`, as `listen` runs it.
async fn run_ws(agent: Ws, dispatch: &Dispatch) -> SessionEnd {
    match crate::agent::transport::ws::open(agent, &dispatch.stop).await {
        Ok(link) => session::run(link, dispatch, &Ui::silent(), SessionInfo::default()).await,
        Err(end) => end,
    }
}

fn ready(protocol: u32) -> Message {
    Message::text(
        RelayMessage::Ready(Ready {
            session_id: "ses_1".into(),
            agent_id: "agt_1".into(),
            relay_id: "r1".into(),
            webhook_url: "http://relay.test/api/v1/webhook/r1".into(),
            max_in_flight: 100,
            ack_timeout_ms: 30_000,
            protocol,
        })
        .to_json(),
    )
}

/// Waits until the test command has created `path`: the handler started.
async fn appears(path: &std::path::Path) {
    timeout(Duration::from_secs(10), async {
        while !path.exists() {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    })
    .await
    .expect("the handler starts");
}

/// An event whose type is how long the test command sleeps.
fn event(id: &str, event_type: &str) -> Message {
    let (body, body_encoding) = EventFrame::encode_body(b"{}");
    Message::text(
        RelayMessage::Event(EventFrame {
            id: id.into(),
            event_type: event_type.into(),
            received_at: "2026-11-28T12:00:00Z".into(),
            attempt: 1,
            headers: vec![],
            body,
            body_encoding,
            replay: false,
        })
        .to_json(),
    )
}

/// The next ack or nack, or the close, skipping pings.
async fn next_from_agent(relay: &mut Ws) -> Result<AgentMessage, Option<u16>> {
    loop {
        let message = timeout(Duration::from_secs(10), relay.next())
            .await
            .expect("the agent answers within 10 s");
        match message {
            Some(Ok(Message::Text(text))) => return Ok(AgentMessage::from_json(&text).unwrap()),
            Some(Ok(Message::Close(frame))) => return Err(frame.map(|f| u16::from(f.code))),
            Some(Ok(_)) => {}
            other => panic!("agent went away: {other:?}"),
        }
    }
}

fn id(message: AgentMessage) -> String {
    match message {
        AgentMessage::Ack { id } | AgentMessage::Nack { id, .. } => id,
    }
}

#[tokio::test]
async fn exit_zero_acks_and_failure_nacks() {
    let (agent, mut relay) = pair().await;
    let dispatch = dispatch("test \"$LOBSTER_EVENT_TYPE\" = good", 10);
    let session = tokio::spawn({
        let dispatch = dispatch.clone();
        async move { run_ws(agent, &dispatch).await }
    });
    relay.send(ready(1)).await.unwrap();
    relay.send(event("evt_1", "good")).await.unwrap();
    assert_eq!(
        next_from_agent(&mut relay).await.unwrap(),
        AgentMessage::Ack { id: "evt_1".into() }
    );
    relay.send(event("evt_2", "bad")).await.unwrap();
    let AgentMessage::Nack { id, reason } = next_from_agent(&mut relay).await.unwrap() else {
        panic!("expected a nack");
    };
    assert_eq!((id.as_str(), reason.as_str()), ("evt_2", "exit status 1"));
    relay.close(None).await.unwrap();
    let end = session.await.unwrap();
    assert!(
        matches!(
            end,
            SessionEnd::Dropped {
                up_for: Some(_),
                ..
            }
        ),
        "{end:?}"
    );
}

#[tokio::test]
async fn concurrency_one_answers_in_arrival_order() {
    let (agent, mut relay) = pair().await;
    let dispatch = dispatch("sleep \"$LOBSTER_EVENT_TYPE\"", 1);
    tokio::spawn(async move { run_ws(agent, &dispatch).await });
    relay.send(ready(1)).await.unwrap();
    for (n, secs) in ["0.3", "0.2", "0.1", "0"].iter().enumerate() {
        relay.send(event(&format!("evt_{n}"), secs)).await.unwrap();
    }
    let mut order = Vec::new();
    for _ in 0..4 {
        order.push(id(next_from_agent(&mut relay).await.unwrap()));
    }
    assert_eq!(order, ["evt_0", "evt_1", "evt_2", "evt_3"]);
}

#[tokio::test]
async fn events_run_concurrently_and_answer_as_each_finishes() {
    let (agent, mut relay) = pair().await;
    let dispatch = dispatch("sleep \"$LOBSTER_EVENT_TYPE\"", 4);
    tokio::spawn(async move { run_ws(agent, &dispatch).await });
    relay.send(ready(1)).await.unwrap();
    relay.send(event("slow", "0.5")).await.unwrap();
    relay.send(event("fast", "0")).await.unwrap();
    assert_eq!(id(next_from_agent(&mut relay).await.unwrap()), "fast");
    assert_eq!(id(next_from_agent(&mut relay).await.unwrap()), "slow");
}

#[tokio::test]
async fn stop_finishes_in_flight_events_then_closes_normally() {
    let (agent, mut relay) = pair().await;
    let dir = tempfile::tempdir().unwrap();
    let started = dir.path().join("started");
    let dispatch = dispatch(
        &format!(
            "touch '{}'; sleep \"$LOBSTER_EVENT_TYPE\"",
            started.display()
        ),
        10,
    );
    let stop = dispatch.stop.clone();
    let session = tokio::spawn(async move { run_ws(agent, &dispatch).await });
    relay.send(ready(1)).await.unwrap();
    relay.send(event("in_flight", "0.4")).await.unwrap();
    appears(&started).await;
    stop.cancel();
    relay.send(event("too_late", "0")).await.unwrap();
    assert_eq!(
        next_from_agent(&mut relay).await.unwrap(),
        AgentMessage::Ack {
            id: "in_flight".into()
        }
    );
    assert_eq!(
        next_from_agent(&mut relay).await,
        Err(Some(1000)),
        "no answer for too_late"
    );
    // Reading on sends the relay's half of the close handshake.
    while let Some(Ok(_)) = relay.next().await {}
    let end = timeout(Duration::from_secs(1), session)
        .await
        .expect("closes without waiting");
    assert!(matches!(end.unwrap(), SessionEnd::Stopped));
}

#[tokio::test]
async fn a_revoked_agent_is_fatal_with_exit_code_3() {
    let (agent, mut relay) = pair().await;
    let dispatch = dispatch("true", 1);
    let session = tokio::spawn(async move { run_ws(agent, &dispatch).await });
    relay.send(ready(1)).await.unwrap();
    let close = CloseFrame {
        code: CloseCode::from(4003),
        reason: "revoked".into(),
    };
    relay.send(Message::Close(Some(close))).await.unwrap();
    let SessionEnd::Fatal(err) = session.await.unwrap() else {
        panic!("not fatal")
    };
    assert_eq!(exit_code(&err), ExitCode::Auth);
}

#[tokio::test]
async fn another_protocol_version_is_fatal_with_exit_code_3() {
    let (agent, mut relay) = pair().await;
    let dispatch = dispatch("true", 1);
    let session = tokio::spawn(async move { run_ws(agent, &dispatch).await });
    relay.send(ready(2)).await.unwrap();
    let SessionEnd::Fatal(err) = session.await.unwrap() else {
        panic!("not fatal")
    };
    assert_eq!(exit_code(&err), ExitCode::Auth);
    assert!(err.to_string().contains("protocol version 2"), "{err}");
}

#[tokio::test(start_paused = true)]
async fn the_agent_pings_and_drops_a_silent_relay_after_60s() {
    let (agent, mut relay) = pair().await;
    let dispatch = dispatch("true", 1);
    let session = tokio::spawn(async move { run_ws(agent, &dispatch).await });
    relay.send(ready(1)).await.unwrap();
    let started = tokio::time::Instant::now();
    // Read (so our pings are seen) but never answer: with `Role::Server`
    // tungstenite would pong, so only watch the frames arrive.
    let first = relay.next().await.unwrap().unwrap();
    assert!(matches!(first, Message::Ping(_)), "{first:?}");
    assert_eq!(started.elapsed().as_secs(), 20);
    let end = session.await.unwrap();
    let SessionEnd::Dropped { reason, .. } = end else {
        panic!("not dropped: {end:?}")
    };
    assert!(reason.contains("60s"), "{reason}");
}

#[tokio::test]
async fn events_not_started_when_the_connection_drops_are_dropped_not_handled() {
    let (agent, mut relay) = pair().await;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("handled");
    let started = dir.path().join("started");
    let command = format!(
        "touch '{}'; sleep 0.3; echo \"$LOBSTER_EVENT_ID\" >> '{}'",
        started.display(),
        log.display()
    );
    let dispatch = dispatch(&command, 1);
    let tracker = dispatch.tracker.clone();
    let session = tokio::spawn(async move { run_ws(agent, &dispatch).await });
    relay.send(ready(1)).await.unwrap();
    for n in 0..3 {
        relay.send(event(&format!("evt_{n}"), "x")).await.unwrap();
    }
    // evt_0 runs (0.3 s); evt_1 and evt_2 wait for the one permit. The
    // connection drops meanwhile: the relay will hand those two out again.
    appears(&started).await;
    drop(relay);
    let end = timeout(Duration::from_secs(5), session)
        .await
        .unwrap()
        .unwrap();
    assert!(matches!(end, SessionEnd::Dropped { .. }), "{end:?}");
    tracker.close();
    timeout(Duration::from_secs(5), tracker.wait())
        .await
        .unwrap();
    let handled = std::fs::read_to_string(&log).unwrap();
    assert_eq!(
        handled, "evt_0\n",
        "only the event already started finishes"
    );
}
