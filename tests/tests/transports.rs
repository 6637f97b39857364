//! The HTTP transports (Server-Sent Events and long-poll) give the
//! WebSocket's guarantee: the same delivery suite runs over each, spoken
//! with a plain HTTP client against the real relay.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context as _, ensure};
use lobster_e2e::http_agent::{HttpSession, Transport, event_id};
use lobster_e2e::{Relay, RelayOpts, Sender, WAIT, accepted_id, eventually, relay_with_agent};
use serde_json::{Value, json};

/// Runs one scenario over each HTTP transport.
macro_rules! both_transports {
    ($scenario:ident) => {
        mod $scenario {
            use super::*;

            #[tokio::test]
            async fn sse() -> anyhow::Result<()> {
                super::$scenario(Transport::Sse).await
            }

            #[tokio::test]
            async fn poll() -> anyhow::Result<()> {
                super::$scenario(Transport::Poll).await
            }
        }
    };
}

both_transports!(events_arrive_in_order_and_acks_remove_them);
both_transports!(a_nack_brings_the_event_back_by_the_retry_policy);
both_transports!(an_event_not_acked_in_time_goes_to_another_session);
both_transports!(revocation_ends_the_session_with_the_error);
both_transports!(competing_sessions_share_the_queue_without_duplicates);
both_transports!(the_events_filter_holds_back_other_types);
both_transports!(no_accepted_event_is_lost_when_the_relay_is_killed);
both_transports!(bad_answers_and_unknown_sessions_get_clear_errors);
both_transports!(a_relay_shutdown_ends_the_session_with_relay_restarting);

async fn post(agent_url: &str, body: &str) -> anyhow::Result<String> {
    Ok(accepted_id(
        &Sender::default()
            .post(agent_url, body.as_bytes(), &[])
            .await?,
    ))
}

/// Ids of the agent's events with `status`.
async fn ids_with_status(
    relay: &Relay,
    key: &str,
    status: &str,
) -> anyhow::Result<HashSet<String>> {
    let answer = relay
        .agent_get(
            key,
            &format!("/api/v1/agent/events?status={status}&limit=500"),
        )
        .await?;
    ensure!(answer.status == 200, "list: {}", answer.text);
    Ok(answer.json["events"]
        .as_array()
        .context("events")?
        .iter()
        .map(event_id)
        .collect())
}

async fn events_arrive_in_order_and_acks_remove_them(t: Transport) -> anyhow::Result<()> {
    let (relay, agent) = relay_with_agent(RelayOpts::default(), "order").await?;
    let mut sent = Vec::new();
    for n in 0..20 {
        sent.push(
            post(
                &agent.webhook_url,
                &format!(r#"{{"type":"queued","n":{n}}}"#),
            )
            .await?,
        );
    }
    let mut session = HttpSession::open(&relay, &agent.api_key, t, "").await?;
    assert_eq!(session.ready["agent_id"], agent.agent_id.as_str());
    assert_eq!(session.ready["protocol"], 1);
    let events = session.events(20, WAIT).await?;
    let got: Vec<String> = events.iter().map(event_id).collect();
    assert_eq!(got, sent, "events arrive once each, in acceptance order");
    assert_eq!(events[3]["body"], r#"{"type":"queued","n":3}"#);
    assert_eq!(events[3]["attempt"], 1);
    let ids: Vec<&str> = got.iter().map(String::as_str).collect();
    session.ack(&ids).await?;
    // The 200 comes once the acks are stored.
    let delivered = ids_with_status(&relay, &agent.api_key, "delivered").await?;
    assert_eq!(delivered, sent.iter().cloned().collect::<HashSet<_>>());
    // Nothing acked comes again: the next frame is the next event.
    let marker = post(&agent.webhook_url, r#"{"type":"marker"}"#).await?;
    let next = session.events(1, WAIT).await?;
    assert_eq!(event_id(&next[0]), marker);
    Ok(())
}

async fn a_nack_brings_the_event_back_by_the_retry_policy(t: Transport) -> anyhow::Result<()> {
    let opts = RelayOpts::default().args(["--retry-initial", "200ms"]);
    let (relay, agent) = relay_with_agent(opts, "nack").await?;
    let mut session = HttpSession::open(&relay, &agent.api_key, t, "").await?;
    let id = post(&agent.webhook_url, r#"{"type":"flaky"}"#).await?;
    let first = session.events(1, WAIT).await?.remove(0);
    assert_eq!(
        (event_id(&first), first["attempt"].clone()),
        (id.clone(), json!(1))
    );
    session.nack(&id, "app answered 500").await?;
    let again = session.events(1, WAIT).await?.remove(0);
    assert_eq!(
        (event_id(&again), again["attempt"].clone()),
        (id.clone(), json!(2))
    );
    session.ack(&[&id]).await?;
    let event = relay.event(&agent.api_key, &id).await?;
    assert_eq!(event["status"], "delivered", "{event}");
    let nacked = event["attempt_history"]
        .as_array()
        .context("attempt_history")?
        .iter()
        .any(|a| a["outcome"] == "nacked" && a["error"] == "app answered 500");
    assert!(nacked, "the nack and its reason are recorded: {event}");
    Ok(())
}

async fn an_event_not_acked_in_time_goes_to_another_session(t: Transport) -> anyhow::Result<()> {
    let opts = RelayOpts::default().args(["--ack-timeout", "1s"]);
    let (relay, agent) = relay_with_agent(opts, "timeout").await?;
    let mut holder = HttpSession::open(&relay, &agent.api_key, t, "").await?;
    let id = post(&agent.webhook_url, r#"{"type":"slow"}"#).await?;
    let first = holder.events(1, WAIT).await?.remove(0);
    assert_eq!(event_id(&first), id);
    // The holder never answers; once its lease runs out, the event goes to
    // the other session (never again to the holder).
    let mut other = HttpSession::open(&relay, &agent.api_key, t, "").await?;
    let again = other.events(1, WAIT).await?.remove(0);
    assert_eq!(
        (event_id(&again), again["attempt"].clone()),
        (id.clone(), json!(2))
    );
    other.ack(&[&id]).await?;
    let event = relay.event(&agent.api_key, &id).await?;
    assert_eq!(event["status"], "delivered");
    let timed_out = event["attempt_history"]
        .as_array()
        .is_some_and(|h| h.iter().any(|a| a["outcome"] == "timeout"));
    assert!(timed_out, "the timeout is recorded: {event}");
    drop(holder);
    Ok(())
}

async fn revocation_ends_the_session_with_the_error(t: Transport) -> anyhow::Result<()> {
    let (relay, agent) = relay_with_agent(RelayOpts::default(), "revoked").await?;
    let mut session = HttpSession::open(&relay, &agent.api_key, t, "").await?;
    if t == Transport::Sse {
        // The stream is open, so the session is in its loop.
        relay.revoke(&agent.agent_id).await?;
        let frame = session
            .next_frame(WAIT)
            .await?
            .context("the stream ended without an error")?;
        assert_eq!(frame["type"], "error", "{frame}");
        assert_eq!(frame["code"], "agent_revoked", "{frame}");
        assert!(
            session.next_frame(WAIT).await?.is_none(),
            "the stream ends after the error"
        );
    } else {
        let waiting = waiting_poll(&relay, &agent.api_key, &session.session_id).await?;
        relay.revoke(&agent.agent_id).await?;
        let answer = tokio::time::timeout(WAIT, waiting).await???;
        assert_eq!(answer.assert_error(403), "agent_revoked");
    }
    let answer = relay
        .agent_get(&agent.api_key, "/api/v1/agent/poll?wait=0")
        .await?;
    assert_eq!(answer.assert_error(401), "unauthorized");
    Ok(())
}

async fn competing_sessions_share_the_queue_without_duplicates(t: Transport) -> anyhow::Result<()> {
    let opts = RelayOpts::default().args(["--max-in-flight", "3"]);
    let (relay, agent) = relay_with_agent(opts, "competing").await?;
    let mut sent = HashSet::new();
    for n in 0..12 {
        sent.insert(
            post(
                &agent.webhook_url,
                &format!(r#"{{"type":"shared","n":{n}}}"#),
            )
            .await?,
        );
    }
    let mut a = HttpSession::open(&relay, &agent.api_key, t, "").await?;
    let first = a.events(3, WAIT).await?;
    // `a` is full: the next three can only go to `b`.
    let mut b = HttpSession::open(&relay, &agent.api_key, t, "").await?;
    let second = b.events(3, WAIT).await?;
    let seen: Arc<Mutex<Vec<(char, String)>>> = Arc::default();
    for (name, frames) in [('a', &first), ('b', &second)] {
        seen.lock()
            .unwrap()
            .extend(frames.iter().map(|f| (name, event_id(f))));
    }
    let mut tasks = Vec::new();
    for (name, mut session, held) in [('a', a, first), ('b', b, second)] {
        let seen = seen.clone();
        tasks.push(tokio::spawn(async move {
            let mut held: Vec<String> = held.iter().map(event_id).collect();
            loop {
                let ids: Vec<&str> = held.iter().map(String::as_str).collect();
                session.ack(&ids).await?;
                let next = session.events(1, WAIT).await?;
                held = next.iter().map(event_id).collect();
                seen.lock()
                    .unwrap()
                    .extend(held.iter().map(|id| (name, id.clone())));
            }
            #[allow(unreachable_code)]
            Ok::<(), anyhow::Error>(())
        }));
    }
    let done = eventually("all 12 events", WAIT, || async {
        let seen = seen.lock().unwrap().clone();
        ensure!(seen.len() >= sent.len(), "{} of {}", seen.len(), sent.len());
        Ok(seen)
    })
    .await;
    for task in &tasks {
        task.abort();
    }
    let seen = done?;
    let ids: Vec<&String> = seen.iter().map(|(_, id)| id).collect();
    let unique: HashSet<String> = ids.iter().map(|id| (*id).clone()).collect();
    assert_eq!(unique, sent, "every event arrives");
    assert_eq!(ids.len(), sent.len(), "and only once: {seen:?}");
    let by_a = seen.iter().filter(|(name, _)| *name == 'a').count();
    eprintln!("{t:?}: session a got {by_a}, b got {}", seen.len() - by_a);
    Ok(())
}

async fn the_events_filter_holds_back_other_types(t: Transport) -> anyhow::Result<()> {
    let (relay, agent) = relay_with_agent(RelayOpts::default(), "filter").await?;
    let mut session = HttpSession::open(&relay, &agent.api_key, t, "events=keep.*").await?;
    let skipped = post(&agent.webhook_url, r#"{"type":"other.thing"}"#).await?;
    let kept = post(&agent.webhook_url, r#"{"type":"keep.this"}"#).await?;
    let got = session.events(1, WAIT).await?.remove(0);
    assert_eq!(event_id(&got), kept);
    assert_eq!(got["event_type"], "keep.this");
    session.ack(&[&kept]).await?;
    let event = relay.event(&agent.api_key, &skipped).await?;
    assert_eq!(
        event["status"], "pending",
        "filtered out, still queued: {event}"
    );
    Ok(())
}

/// The crash case over each transport: senders keep posting while the relay
/// is killed and started again on its data dir; every id it accepted
/// reaches the agent, which reconnects by opening a new session.
async fn no_accepted_event_is_lost_when_the_relay_is_killed(t: Transport) -> anyhow::Result<()> {
    const TOTAL: usize = 150;
    let opts = RelayOpts::default().args(["--ack-timeout", "5s", "--retry-initial", "100ms"]);
    let (mut relay, agent) = relay_with_agent(opts, "crash").await?;
    let accepted: Arc<Mutex<HashSet<String>>> = Arc::default();
    let received: Arc<Mutex<HashSet<String>>> = Arc::default();
    let (http, base, key) = (relay.http_client(), relay.url(), agent.api_key.clone());

    let sender = {
        let accepted = accepted.clone();
        let url = agent.webhook_url.clone();
        tokio::spawn(async move {
            let sender = Sender::default();
            let mut retry = tokio::time::interval(Duration::from_millis(50));
            for n in 0..TOTAL {
                let body = format!(r#"{{"type":"durable","n":{n}}}"#);
                let msg_id = lobster_e2e::new_message_id();
                // The same webhook-id until accepted, as a real sender would.
                for _ in 0..600 {
                    let answer = sender
                        .post_as(&url, body.as_bytes(), &msg_id, lobster_e2e::now_unix(), &[])
                        .await;
                    if let Ok(a) = &answer
                        && (a.status == 202 || a.status == 200)
                    {
                        accepted
                            .lock()
                            .unwrap()
                            .insert(a.json["id"].as_str().unwrap_or_default().to_owned());
                        break;
                    }
                    retry.tick().await;
                }
            }
        })
    };
    let consumer = {
        let received = received.clone();
        tokio::spawn(async move {
            let mut retry = tokio::time::interval(Duration::from_millis(50));
            loop {
                let Ok(mut session) =
                    HttpSession::open_at(http.clone(), base.clone(), &key, t, "").await
                else {
                    retry.tick().await;
                    continue;
                };
                session.poll_wait_secs = 2;
                // Until this session fails: then a new one.
                while let Ok(Some(frame)) = session.next_frame(WAIT).await {
                    if frame["type"] != "event" {
                        break;
                    }
                    let id = event_id(&frame);
                    received.lock().unwrap().insert(id.clone());
                    // An ack lost to the crash means a redelivery.
                    let _ = session.ack(&[&id]).await;
                }
            }
        })
    };

    eventually("some events acked before the crash", WAIT, || async {
        let n = received.lock().unwrap().len();
        ensure!(n >= 40, "{n} acked");
        Ok(())
    })
    .await?;
    relay.kill9().await?;
    relay.restart().await?;
    let outcome = eventually(
        "every accepted event acked",
        Duration::from_secs(60),
        || async {
            ensure!(sender.is_finished(), "still sending");
            let accepted = accepted.lock().unwrap().clone();
            let received = received.lock().unwrap();
            let missing: Vec<_> = accepted.difference(&received).collect();
            ensure!(
                missing.is_empty(),
                "{} of {} missing",
                missing.len(),
                accepted.len()
            );
            Ok(accepted.len())
        },
    )
    .await;
    consumer.abort();
    sender.abort();
    let accepted = outcome?;
    assert!(
        accepted >= TOTAL * 9 / 10,
        "most posts are accepted: {accepted}"
    );
    eprintln!("{t:?}: {accepted} of {TOTAL} accepted across a SIGKILL, all received");
    Ok(())
}

async fn bad_answers_and_unknown_sessions_get_clear_errors(t: Transport) -> anyhow::Result<()> {
    let (relay, agent) = relay_with_agent(RelayOpts::default(), "errors").await?;
    let intruder = relay.create_agent("intruder").await?;
    let session = HttpSession::open(&relay, &agent.api_key, t, "").await?;
    let acks_path = format!("/api/v1/agent/stream/{}/acks", session.session_id);
    let post = |key: String, path: String, body: Value| {
        let relay = &relay;
        async move {
            relay
                .request(reqwest::Method::POST, &path, Some(&key), Some(body))
                .await
        }
    };
    let ok = post(agent.api_key.clone(), acks_path.clone(), json!({})).await?;
    assert_eq!(
        (ok.status, ok.json.clone()),
        (200, json!({"acked": 0, "nacked": 0}))
    );
    for bad in [
        json!({"acks": "evt_1"}),
        json!({"ack": [{"id": "x"}]}),
        json!({"acks": ["evt_1"]}),
    ] {
        let answer = post(agent.api_key.clone(), acks_path.clone(), bad.clone()).await?;
        assert_eq!(answer.assert_error(400), "invalid_batch", "{bad}");
    }
    let answer = post(intruder.api_key.clone(), acks_path.clone(), json!({})).await?;
    assert_eq!(answer.assert_error(403), "session_of_another_agent");
    let unknown = "/api/v1/agent/stream/ses_00000000000000000000000000/acks".to_owned();
    let answer = post(agent.api_key.clone(), unknown, json!({})).await?;
    assert_eq!(answer.assert_error(404), "session_not_found");
    let poll = |query: String| {
        let (relay, key) = (&relay, agent.api_key.clone());
        async move {
            relay
                .agent_get(&key, &format!("/api/v1/agent/poll?{query}"))
                .await
        }
    };
    assert_eq!(
        poll("wait=soon".into()).await?.assert_error(400),
        "invalid_wait"
    );
    assert_eq!(poll("max=0".into()).await?.assert_error(400), "invalid_max");
    assert_eq!(
        poll("events=a[b]".into()).await?.assert_error(400),
        "invalid_events_filter"
    );
    let stream = relay
        .agent_get(&agent.api_key, "/api/v1/agent/stream?events=a[b]")
        .await?;
    assert_eq!(stream.assert_error(400), "invalid_events_filter");
    let other_kind = poll(format!("session_id={}", session.session_id)).await?;
    match t {
        Transport::Sse => assert_eq!(other_kind.assert_error(409), "wrong_transport"),
        Transport::Poll => assert_eq!(other_kind.status, 200, "{}", other_kind.text),
    }
    if t == Transport::Sse {
        // Closing the stream ends the session.
        drop(session);
        eventually("the session to end", WAIT, || async {
            let answer = post(agent.api_key.clone(), acks_path.clone(), json!({})).await?;
            ensure!(answer.status == 404, "{} {}", answer.status, answer.text);
            Ok(())
        })
        .await?;
    }
    Ok(())
}

#[tokio::test]
async fn closing_the_stream_hands_its_events_back_at_once() -> anyhow::Result<()> {
    let opts = RelayOpts::default().args(["--ack-timeout", "10m"]);
    let (relay, agent) = relay_with_agent(opts, "closed").await?;
    let mut first = HttpSession::open(&relay, &agent.api_key, Transport::Sse, "").await?;
    let id = post(&agent.webhook_url, r#"{"type":"held"}"#).await?;
    assert_eq!(event_id(&first.events(1, WAIT).await?[0]), id);
    drop(first);
    let mut second = HttpSession::open(&relay, &agent.api_key, Transport::Sse, "").await?;
    let again = second.events(1, WAIT).await?.remove(0);
    assert_eq!(
        (event_id(&again), again["attempt"].clone()),
        (id.clone(), json!(2))
    );
    let event = relay.event(&agent.api_key, &id).await?;
    let interrupted = event["attempt_history"]
        .as_array()
        .is_some_and(|h| h.iter().any(|a| a["outcome"] == "interrupted"));
    assert!(interrupted, "{event}");
    Ok(())
}

/// The admin's agent list says how each online session is connected.
#[tokio::test]
async fn the_admin_api_lists_each_sessions_transport() -> anyhow::Result<()> {
    let (relay, agent) = relay_with_agent(RelayOpts::default(), "transports").await?;
    let _stream = HttpSession::open(&relay, &agent.api_key, Transport::Sse, "").await?;
    let transports = || async {
        let answer = relay
            .request(
                reqwest::Method::GET,
                "/api/v1/admin/agents",
                Some(lobster_e2e::ADMIN_TOKEN),
                None,
            )
            .await?;
        let listed = answer.json["agents"]
            .as_array()
            .and_then(|agents| agents.iter().find(|a| a["agent_id"] == agent.agent_id))
            .context("the agent is listed")?;
        anyhow::Ok((
            listed["online_sessions"].clone(),
            listed["session_transports"].clone(),
        ))
    };
    assert_eq!(transports().await?, (json!(1), json!(["sse"])));
    Ok(())
}

#[tokio::test]
async fn an_idle_stream_gets_a_keep_alive_comment() -> anyhow::Result<()> {
    let (relay, agent) = relay_with_agent(RelayOpts::default(), "quiet").await?;
    let mut session = HttpSession::open(&relay, &agent.api_key, Transport::Sse, "").await?;
    let started = std::time::Instant::now();
    let message = tokio::time::timeout(Duration::from_secs(30), session.next_sse_message())
        .await
        .context("no keep-alive within 30 s")??
        .context("the stream ended")?;
    let after = started.elapsed();
    assert_eq!(
        message.comments,
        ["keep-alive"],
        "{message:?} after {after:?}"
    );
    assert!(message.data.is_empty());
    assert!(
        (Duration::from_secs(15)..Duration::from_secs(25)).contains(&after),
        "keep-alive after {after:?}, expected about 20 s"
    );
    Ok(())
}

#[tokio::test]
async fn a_poll_answers_at_most_max_events_or_nothing_after_wait() -> anyhow::Result<()> {
    let (relay, agent) = relay_with_agent(RelayOpts::default(), "polling").await?;
    let mut session = HttpSession::open(&relay, &agent.api_key, Transport::Poll, "").await?;
    let path = |query: &str| {
        format!(
            "/api/v1/agent/poll?session_id={}&{query}",
            session.session_id
        )
    };
    let started = std::time::Instant::now();
    let empty = relay.agent_get(&agent.api_key, &path("wait=1")).await?;
    assert_eq!(empty.status, 200, "{}", empty.text);
    assert_eq!(empty.json["events"], json!([]));
    assert_eq!(empty.json["session_id"], session.session_id.as_str());
    assert!(
        empty.json.get("ready").is_none(),
        "ready comes once: {}",
        empty.text
    );
    assert!(started.elapsed() >= Duration::from_millis(900), "it waited");
    let mut sent = Vec::new();
    for n in 0..5 {
        sent.push(
            post(
                &agent.webhook_url,
                &format!(r#"{{"type":"batch","n":{n}}}"#),
            )
            .await?,
        );
    }
    let two = relay
        .agent_get(&agent.api_key, &path("wait=10&max=2"))
        .await?;
    let got: Vec<String> = two.json["events"]
        .as_array()
        .context("events")?
        .iter()
        .map(event_id)
        .collect();
    assert_eq!(got, sent[..2], "{}", two.text);
    // The rest come with the next poll; nothing waits leased meanwhile.
    session.poll_max = Some(10);
    let rest = session.events(3, WAIT).await?;
    assert_eq!(rest.iter().map(event_id).collect::<Vec<_>>(), sent[2..]);
    Ok(())
}

/// A poll on `session_id` that is surely waiting in the relay: two polls
/// on one session, the later answers the earlier at once, so when one of
/// them returns the other is waiting.
async fn waiting_poll(
    relay: &Relay,
    api_key: &str,
    session_id: &str,
) -> anyhow::Result<tokio::task::JoinHandle<anyhow::Result<lobster_e2e::Answer>>> {
    let poll = || {
        let (http, key) = (relay.http_client(), api_key.to_owned());
        let url = format!(
            "{}/api/v1/agent/poll?wait=30&session_id={session_id}",
            relay.url()
        );
        tokio::spawn(async move {
            let resp = http.get(url).bearer_auth(key).send().await?;
            lobster_e2e::Answer::read(resp).await
        })
    };
    let (mut p0, mut p1) = (poll(), poll());
    let (first, waiting) = tokio::select! {
        first = &mut p0 => (first, p1),
        first = &mut p1 => (first, p0),
    };
    let first = first??;
    ensure!(
        first.status == 200 && first.json["events"] == json!([]),
        "the replaced poll answers empty: {} {}",
        first.status,
        first.text
    );
    Ok(waiting)
}

async fn a_relay_shutdown_ends_the_session_with_relay_restarting(
    t: Transport,
) -> anyhow::Result<()> {
    let (mut relay, agent) = relay_with_agent(RelayOpts::default(), "drain").await?;
    let mut session = HttpSession::open(&relay, &agent.api_key, t, "").await?;
    if t == Transport::Sse {
        relay.terminate()?;
        let frame = session
            .next_frame(WAIT)
            .await?
            .context("the stream ended without an error")?;
        assert_eq!(frame["code"], "relay_restarting", "{frame}");
        assert!(session.next_frame(WAIT).await?.is_none());
    } else {
        let waiting = waiting_poll(&relay, &agent.api_key, &session.session_id).await?;
        relay.terminate()?;
        let answer = tokio::time::timeout(WAIT, waiting).await???;
        assert_eq!(answer.assert_error(503), "relay_restarting");
    }
    let status = relay.wait_exit(WAIT).await?;
    assert!(status.success(), "the relay drains and exits 0: {status}");
    Ok(())
}

#[tokio::test]
async fn http_sessions_count_against_the_session_cap() -> anyhow::Result<()> {
    let opts = RelayOpts::default().args(["--max-sessions-per-agent", "1"]);
    let (relay, agent) = relay_with_agent(opts, "capped").await?;
    let stream = HttpSession::open(&relay, &agent.api_key, Transport::Sse, "").await?;
    let again = relay
        .agent_get(&agent.api_key, "/api/v1/agent/stream")
        .await?;
    assert_eq!(again.assert_error(429), "too_many_sessions");
    let poll = relay
        .agent_get(&agent.api_key, "/api/v1/agent/poll?wait=0")
        .await?;
    assert_eq!(poll.assert_error(429), "too_many_sessions");
    drop(stream);
    eventually("the place to free up", WAIT, || async {
        HttpSession::open(&relay, &agent.api_key, Transport::Poll, "").await
    })
    .await?;
    Ok(())
}

#[tokio::test]
async fn a_poll_may_wait_longer_than_the_request_timeout() -> anyhow::Result<()> {
    let opts = RelayOpts::default().args(["--request-timeout", "1s"]);
    let (relay, agent) = relay_with_agent(opts, "patient").await?;
    let session = HttpSession::open(&relay, &agent.api_key, Transport::Poll, "").await?;
    let path = format!(
        "/api/v1/agent/poll?session_id={}&wait=2",
        session.session_id
    );
    let started = std::time::Instant::now();
    let empty = relay.agent_get(&agent.api_key, &path).await?;
    assert_eq!(empty.status, 200, "not cut at 1 s: {}", empty.text);
    assert_eq!(empty.json["events"], json!([]));
    assert!(
        started.elapsed() >= Duration::from_millis(1_900),
        "it waited"
    );
    // Other requests still get the deadline's 408 (tests/tests/abuse.rs).
    Ok(())
}
