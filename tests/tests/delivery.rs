//! `listen --forward`: what the local app receives, in which order, and how
//! failures are retried.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use lobster_e2e::{
    Listener, RelayOpts, Sender, Sink, WAIT, accepted_id, attempts_of, eventually, relay_with_agent,
};

#[tokio::test]
async fn forwarded_bodies_arrive_byte_for_byte_at_the_forward_path() -> anyhow::Result<()> {
    let (relay, agent) = relay_with_agent(RelayOpts::default(), "bytes").await?;
    let sink = Sink::start().await?;
    // Scheme-less form: `http` is the default.
    let _listener = Listener::ready(
        &relay.url(),
        &agent.api_key,
        &["--forward", &sink.host_path("/hooks")],
    )
    .await?;
    let sender = Sender::default();

    let json = "{\"type\":\"bytes.json\",  \"text\":\"grüße 🦞\",\n  \"n\": 1.50 }\n"
        .as_bytes()
        .to_vec();
    let binary: Vec<u8> = (0..=255).collect();
    let mut sent = HashMap::new();
    for (body, content_type) in [
        (json, "application/json"),
        (binary, "application/octet-stream"),
    ] {
        let id = accepted_id(
            &sender
                .post(&agent.webhook_url, &body, &[("content-type", content_type)])
                .await?,
        );
        sent.insert(id, body);
    }

    let reqs = sink.wait_for(2, WAIT).await?;
    for req in &reqs {
        let id = req
            .event_id()
            .expect("forwarded requests carry Lobster-Relay-Event-Id");
        let body = sent
            .get(id)
            .unwrap_or_else(|| panic!("unknown event id {id}"));
        assert_eq!(&req.body[..], &body[..], "body of {id} changed on the way");
        assert_eq!(req.method, "POST");
        assert_eq!(req.path, "/hooks");
    }
    let got: HashSet<_> = reqs.iter().filter_map(|r| r.event_id()).collect();
    assert_eq!(got.len(), 2, "both events arrive");
    Ok(())
}

#[tokio::test]
async fn original_headers_pass_through_minus_hop_by_hop_plus_relay_headers() -> anyhow::Result<()> {
    let (relay, agent) = relay_with_agent(RelayOpts::default(), "headers").await?;
    let sink = Sink::start().await?;
    let args = ["--forward", &sink.url("/hooks"), "--header", "X-Extra: yes"];
    let _listener = Listener::ready(&relay.url(), &agent.api_key, &args).await?;
    let sender = Sender::default();
    let extra = [
        ("content-type", "application/json; charset=utf-8"),
        ("x-custom", "hello there"),
        ("connection", "x-drop-me"),
        ("x-drop-me", "1"),
        ("keep-alive", "timeout=5"),
        ("te", "trailers"),
    ];
    let body = br#"{"type":"headers.test"}"#;
    let id = accepted_id(&sender.post(&agent.webhook_url, body, &extra).await?);

    let req = sink.wait_for(1, WAIT).await?.remove(0);
    assert_eq!(req.event_id(), Some(id.as_str()));
    assert_eq!(req.attempt(), Some(1));
    assert_eq!(req.header("x-custom"), Some("hello there"));
    assert_eq!(
        req.header("content-type"),
        Some("application/json; charset=utf-8")
    );
    assert_eq!(req.header("x-extra"), Some("yes"), "--header adds a header");
    for hop in ["x-drop-me", "keep-alive", "te"] {
        assert_eq!(
            req.header(hop),
            None,
            "hop-by-hop header {hop} was forwarded: {:?}",
            req.headers
        );
    }
    assert!(
        req.header_all("connection")
            .iter()
            .all(|v| !v.contains("x-drop-me")),
        "{:?}",
        req.headers
    );
    assert_eq!(
        req.header("host"),
        Some(sink.host_path("").as_str()),
        "Host names the local app"
    );
    assert_eq!(
        req.header_all("content-length"),
        [body.len().to_string().as_str()]
    );

    // The local app verifies the sender's signature as if called directly.
    let (msg_id, ts, signature) = (
        req.header("webhook-id").expect("webhook-id passes through"),
        req.header("webhook-timestamp")
            .expect("webhook-timestamp passes through"),
        req.header("webhook-signature")
            .expect("webhook-signature passes through"),
    );
    assert_eq!(
        signature,
        sender.sign(msg_id, ts.parse()?, &req.body),
        "the signature no longer verifies"
    );
    Ok(())
}

#[tokio::test]
async fn events_queued_while_offline_arrive_in_posting_order() -> anyhow::Result<()> {
    let (relay, agent) = relay_with_agent(RelayOpts::default(), "offline").await?;
    let sender = Sender::default();
    let mut ids = Vec::new();
    for n in 0..20 {
        let body = format!(r#"{{"type":"queued","n":{n}}}"#);
        ids.push(accepted_id(
            &sender
                .post(&agent.webhook_url, body.as_bytes(), &[])
                .await?,
        ));
    }

    let sink = Sink::start().await?;
    let args = ["--forward", &sink.url("/"), "--concurrency", "1"];
    let _listener = Listener::ready(&relay.url(), &agent.api_key, &args).await?;
    let reqs = sink.wait_for(20, WAIT).await?;
    let arrived: Vec<&str> = reqs
        .iter()
        .map(|r| r.event_id().unwrap_or("<none>"))
        .collect();
    assert_eq!(
        arrived, ids,
        "events arrive once each, in the order they were accepted"
    );
    for (n, req) in reqs.iter().enumerate() {
        assert_eq!(
            req.body,
            format!(r#"{{"type":"queued","n":{n}}}"#).as_bytes()
        );
    }
    Ok(())
}

#[tokio::test]
async fn a_failing_app_gets_the_event_again_until_it_succeeds() -> anyhow::Result<()> {
    let opts = RelayOpts::default().args(["--retry-initial", "200ms"]);
    let (relay, agent) = relay_with_agent(opts, "retry").await?;
    let sink = Sink::start().await?;
    sink.respond_with(|_, earlier| if earlier < 2 { 500 } else { 200 });
    let _listener =
        Listener::ready(&relay.url(), &agent.api_key, &["--forward", &sink.url("/")]).await?;
    let id = accepted_id(
        &Sender::default()
            .post(&agent.webhook_url, br#"{"type":"flaky"}"#, &[])
            .await?,
    );

    let reqs = sink
        .wait_until("a successful delivery", Duration::from_secs(20), |reqs| {
            reqs.iter().any(|r| r.status == 200)
        })
        .await?;
    let tries: Vec<_> = reqs
        .iter()
        .filter(|r| r.event_id() == Some(id.as_str()))
        .collect();
    let attempts: Vec<_> = tries.iter().map(|r| r.attempt()).collect();
    assert_eq!(
        attempts,
        [Some(1), Some(2), Some(3)],
        "Lobster-Relay-Attempt counts up"
    );
    assert_eq!(
        tries.iter().map(|r| r.status).collect::<Vec<_>>(),
        [500, 500, 200]
    );
    eprintln!(
        "retry gaps: {:?}, {:?}",
        tries[1].at - tries[0].at,
        tries[2].at - tries[1].at
    );

    let event = relay
        .wait_event_status(&agent.api_key, &id, "delivered", WAIT)
        .await?;
    assert!(
        attempts_of(&event) >= 3,
        "three attempts are recorded: {event}"
    );
    Ok(())
}

#[tokio::test]
async fn two_listeners_of_one_agent_share_the_queue_without_duplicates() -> anyhow::Result<()> {
    let (relay, agent) = relay_with_agent(RelayOpts::default(), "competing").await?;
    let sink = Sink::start().await?;
    let forward = sink.url("/");
    let mut a = Listener::ready(
        &relay.url(),
        &agent.api_key,
        &["--forward", &forward, "--header", "X-Listener: a"],
    )
    .await?;
    let mut b = Listener::ready(
        &relay.url(),
        &agent.api_key,
        &["--forward", &forward, "--header", "X-Listener: b"],
    )
    .await?;
    eventually("both sessions online", WAIT, || async {
        let me = relay.agent_get(&agent.api_key, "/api/v1/agent/me").await?;
        anyhow::ensure!(me.json["online_sessions"] == 2, "me: {}", me.text);
        Ok(())
    })
    .await?;

    let sender = Sender::default();
    let mut ids = HashSet::new();
    for n in 0..50 {
        let body = format!(r#"{{"type":"shared","n":{n}}}"#);
        ids.insert(accepted_id(
            &sender
                .post(&agent.webhook_url, body.as_bytes(), &[])
                .await?,
        ));
    }
    sink.wait_until("all 50 events", WAIT, |reqs| {
        ids.iter()
            .all(|id| reqs.iter().any(|r| r.event_id() == Some(id.as_str())))
    })
    .await?;

    // A graceful stop finishes in-flight work: after it nothing more arrives.
    a.interrupt()?;
    b.interrupt()?;
    a.wait_exit(WAIT).await?;
    b.wait_exit(WAIT).await?;
    let reqs = sink.requests();
    let delivered: HashSet<_> = reqs
        .iter()
        .filter_map(|r| r.event_id())
        .map(str::to_owned)
        .collect();
    assert_eq!(delivered, ids);
    assert_eq!(reqs.len(), 50, "each event reaches the app exactly once");
    let by_a = reqs
        .iter()
        .filter(|r| r.header("x-listener") == Some("a"))
        .count();
    eprintln!(
        "competing consumers: listener a got {by_a}, listener b got {}",
        reqs.len() - by_a
    );
    Ok(())
}

/// A listener frozen past the ack timeout (laptop lid, SIGSTOP) must not get
/// the event a second time on the same session when it wakes: the relay
/// keeps it for another session or a reconnect, and the late ack delivers it.
#[tokio::test]
async fn a_paused_listener_gets_each_event_once_when_it_resumes() -> anyhow::Result<()> {
    let opts = RelayOpts::default().args(["--ack-timeout", "500ms"]);
    let (relay, agent) = relay_with_agent(opts, "paused").await?;
    let sink = Sink::start().await?;
    let listener = Listener::ready(
        &relay.url(),
        &agent.api_key,
        &["--forward", &sink.url("/"), "--concurrency", "1"],
    )
    .await?;
    listener.pause()?;
    let id = accepted_id(
        &Sender::default()
            .post(&agent.webhook_url, br#"{"type":"while.asleep"}"#, &[])
            .await?,
    );
    // The relay gives up waiting for the ack (and records it) while the
    // listener sleeps.
    eventually("the lease to time out", WAIT, || async {
        let event = relay.event(&agent.api_key, &id).await?;
        let timed_out = event["attempt_history"]
            .as_array()
            .is_some_and(|h| h.iter().any(|a| a["outcome"] == "timeout"));
        anyhow::ensure!(timed_out, "{event}");
        Ok(())
    })
    .await?;
    listener.resume()?;
    let event = relay
        .wait_event_status(&agent.api_key, &id, "delivered", WAIT)
        .await?;
    // Anything queued behind a duplicate would arrive after it (one at a
    // time): once this marker is through, a duplicate would have been too.
    let marker = accepted_id(
        &Sender::default()
            .post(&agent.webhook_url, br#"{"type":"marker"}"#, &[])
            .await?,
    );
    let reqs = sink
        .wait_until("the marker", WAIT, |reqs| {
            reqs.iter().any(|r| r.event_id() == Some(marker.as_str()))
        })
        .await?;
    let forwarded: Vec<_> = reqs
        .iter()
        .filter(|r| r.event_id() == Some(id.as_str()))
        .map(|r| r.attempt())
        .collect();
    assert_eq!(forwarded, [Some(1)], "forwarded once, as attempt 1");
    assert_eq!(
        attempts_of(&event),
        1,
        "no second delivery attempt: {event}"
    );
    Ok(())
}
