//! `listen` and `wait` through networks that refuse the WebSocket: `auto`
//! falls back to Server-Sent Events, then to long-poll, behind real proxies
//! (tinyproxy refusing the CONNECT tunnel, nginx stripping the upgrade and
//! buffering streams); `--transport sse|poll` keep the delivery guarantee
//! (order, nack then retry, no loss across a relay SIGKILL).

use std::collections::HashSet;

use anyhow::{Context as _, ensure};
use lobster_e2e::proxies::{Nginx, Tinyproxy, TinyproxyOpts, have_nginx, have_tinyproxy};
use lobster_e2e::{
    ADMIN_TOKEN, Agent, CliUser, Listener, Relay, RelayOpts, Sender, Sink, WAIT, accepted_id,
    eventually, relay_with_agent,
};
use reqwest::Method;

/// A body that is not UTF-8, with a line break and a NUL in it.
fn binary_body(n: usize) -> Vec<u8> {
    let mut body = vec![0xff, 0x00, 0xfe, b'\n', 0x80];
    body.extend(format!("n={n}").as_bytes());
    body
}

/// Posts three binary events with a header of their own; checks the sink
/// got each byte for byte, with the header.
async fn deliver_binary(agent: &Agent, sink: &Sink) -> anyhow::Result<()> {
    let sender = Sender::default();
    for n in 0..3 {
        let body = binary_body(n);
        let id = accepted_id(
            &sender
                .post(
                    &agent.webhook_url,
                    &body,
                    &[
                        ("content-type", "application/octet-stream"),
                        ("x-order-ref", "ref 7; ünïcode"),
                    ],
                )
                .await?,
        );
        let received = sink
            .wait_until(&format!("event {id}"), WAIT, |reqs| {
                reqs.iter().any(|req| req.event_id() == Some(id.as_str()))
            })
            .await?;
        let req = received
            .iter()
            .find(|req| req.event_id() == Some(id.as_str()))
            .expect("found above");
        assert_eq!(req.body.as_ref(), body.as_slice(), "byte for byte");
        assert_eq!(req.header("x-order-ref"), Some("ref 7; ünïcode"));
        assert_eq!(req.header("content-type"), Some("application/octet-stream"));
    }
    Ok(())
}

/// The transports of the agent's live sessions, as the admin API lists them.
async fn session_transports(relay: &Relay, agent: &Agent) -> anyhow::Result<Vec<String>> {
    let answer = relay
        .request(Method::GET, "/api/v1/admin/agents", Some(ADMIN_TOKEN), None)
        .await?;
    ensure!(answer.status == 200, "{}", answer.text);
    let agents = answer.json["agents"].as_array().context("agents")?;
    let ours = agents
        .iter()
        .find(|a| a["agent_id"] == agent.agent_id.as_str())
        .context("our agent")?;
    Ok(ours["session_transports"]
        .as_array()
        .context("session_transports")?
        .iter()
        .filter_map(|t| t.as_str().map(str::to_owned))
        .collect())
}

/// Waits until the agent has exactly one live session, over `transport`.
async fn one_session_over(relay: &Relay, agent: &Agent, transport: &str) -> anyhow::Result<()> {
    eventually(&format!("one {transport} session"), WAIT, || async {
        let transports = session_transports(relay, agent).await?;
        ensure!(transports == [transport], "{transports:?}");
        Ok(())
    })
    .await
}

#[tokio::test]
async fn a_proxy_refusing_the_websocket_tunnel_makes_listen_fall_back_to_sse() -> anyhow::Result<()>
{
    if !have_tinyproxy("fallback_to_sse") {
        return Ok(());
    }
    let (mut relay, agent) = relay_with_agent(RelayOpts::default(), "fallback-sse").await?;
    // Tunnels only to 443, as many corporate proxies are set up; plain
    // HTTP requests pass.
    let proxy = Tinyproxy::start(TinyproxyOpts {
        connect_ports: vec![443],
        basic_auth: None,
    })
    .await?;
    let sink = Sink::start().await?;
    let forward = sink.url("/hook");
    let listener = Listener::start_with_env(
        &relay.url(),
        &agent.api_key,
        &["--forward", &forward],
        &[("HTTP_PROXY", &proxy.url())],
    )
    .await?;
    let ready = listener.wait_ready_line().await?;
    assert!(
        ready.ends_with(&format!(
            "{} (via SSE: WebSocket upgrade refused by a proxy)",
            agent.reported_webhook_url
        )),
        "{ready}"
    );
    one_session_over(&relay, &agent, "sse").await?;
    deliver_binary(&agent, &sink).await?;
    let target = format!("127.0.0.1:{}", relay.port());
    assert_eq!(
        proxy.connects(),
        std::slice::from_ref(&target),
        "the WebSocket tried its tunnel once; log:\n{}",
        proxy.log()
    );
    proxy
        .wait_for_log(&format!("GET http://{target}/api/v1/agent/stream"), WAIT)
        .await?;
    proxy
        .wait_for_log(&format!("POST http://{target}/api/v1/agent/stream/"), WAIT)
        .await?;

    // After a relay crash the listener comes back over SSE at once, without
    // asking the proxy for a WebSocket tunnel again.
    relay.kill9().await?;
    relay.restart().await?;
    listener.stderr().wait_for("Reconnected", WAIT).await?;
    one_session_over(&relay, &agent, "sse").await?;
    deliver_binary(&agent, &sink).await?;
    assert_eq!(
        proxy.connects().len(),
        1,
        "no second WebSocket attempt; log:\n{}",
        proxy.log()
    );
    Ok(())
}

#[tokio::test]
async fn behind_a_buffering_reverse_proxy_listen_falls_back_to_long_poll() -> anyhow::Result<()> {
    if !have_nginx("fallback_to_long_poll") {
        return Ok(());
    }
    let (relay, agent) = relay_with_agent(RelayOpts::default(), "fallback-poll").await?;
    let nginx = Nginx::start_buffering(relay.port()).await?;
    let sink = Sink::start().await?;
    let forward = sink.url("/hook");
    let started = std::time::Instant::now();
    let listener = Listener::ready(&nginx.url(), &agent.api_key, &["--forward", &forward]).await?;
    let ready = listener.wait_ready_line().await?;
    assert!(
        ready.contains("(via long-poll: WebSocket upgrade refused")
            && ready.contains("no ready event within 5s"),
        "{ready}"
    );
    eprintln!("ready over long-poll after {:?}", started.elapsed());
    one_session_over(&relay, &agent, "poll").await?;
    deliver_binary(&agent, &sink).await?;
    let log = nginx.access_log();
    assert!(
        log.contains("GET /api/v1/agent/poll?session_id="),
        "the polls went through nginx: {log}"
    );
    Ok(())
}

/// Runs one scenario with `--transport sse` and with `--transport poll`.
macro_rules! forced_transports {
    ($scenario:ident) => {
        mod $scenario {
            #[tokio::test]
            async fn sse() -> anyhow::Result<()> {
                super::$scenario("sse").await
            }

            #[tokio::test]
            async fn poll() -> anyhow::Result<()> {
                super::$scenario("poll").await
            }
        }
    };
}

forced_transports!(a_forced_transport_keeps_order_retries_nacks_and_survives_a_sigkill);

async fn a_forced_transport_keeps_order_retries_nacks_and_survives_a_sigkill(
    transport: &str,
) -> anyhow::Result<()> {
    let opts = RelayOpts::default().args(["--retry-initial", "200ms", "--ack-timeout", "5s"]);
    let (mut relay, agent) = relay_with_agent(opts, &format!("forced-{transport}")).await?;
    let sender = Sender::default();
    let mut queued = Vec::new();
    for n in 0..10 {
        let body = format!(r#"{{"type":"queued","n":{n}}}"#);
        queued.push(accepted_id(
            &sender
                .post(&agent.webhook_url, body.as_bytes(), &[])
                .await?,
        ));
    }
    let sink = Sink::start().await?;
    // The first delivery of a "flaky" event fails: a nack, then a retry.
    sink.respond_with(|req, earlier| {
        let flaky = String::from_utf8_lossy(&req.body).contains("flaky");
        if flaky && earlier == 0 { 500 } else { 200 }
    });
    let forward = sink.url("/hook");
    let listener = Listener::ready(
        &relay.url(),
        &agent.api_key,
        &[
            "--transport",
            transport,
            "--concurrency",
            "1",
            "--forward",
            &forward,
        ],
    )
    .await?;
    let wire_name = if transport == "sse" { "sse" } else { "poll" };
    one_session_over(&relay, &agent, wire_name).await?;

    // Order: the queue arrives as it was accepted.
    let got = sink.wait_for(10, WAIT).await?;
    let order: Vec<_> = got[..10]
        .iter()
        .map(|req| req.event_id().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(order, queued, "in acceptance order");

    // Nack, then the retry policy's second attempt is acked.
    let flaky = accepted_id(
        &sender
            .post(&agent.webhook_url, br#"{"type":"flaky"}"#, &[])
            .await?,
    );
    let event = relay
        .wait_event_status(&agent.api_key, &flaky, "delivered", WAIT)
        .await?;
    let attempts: Vec<_> = sink
        .requests()
        .iter()
        .filter(|req| req.event_id() == Some(flaky.as_str()))
        .map(|req| (req.attempt(), req.status))
        .collect();
    assert_eq!(
        attempts,
        [(Some(1), 500), (Some(2), 200)],
        "nacked, then retried: {event}"
    );
    let history = event["attempt_history"].as_array().context("history")?;
    assert!(
        history
            .iter()
            .any(|a| a["outcome"] == "nacked" && a["error"].as_str().unwrap_or("").contains("500")),
        "the nack carries its reason: {event}"
    );

    // SIGKILL mid-stream, restart on the same data dir: every event that got
    // a 202 reaches the sink.
    let mut accepted = HashSet::new();
    for n in 0..20 {
        let body = format!(r#"{{"type":"crash","n":{n}}}"#);
        accepted.insert(accepted_id(
            &sender
                .post(&agent.webhook_url, body.as_bytes(), &[])
                .await?,
        ));
    }
    sink.wait_until("a crash event", WAIT, |reqs| {
        reqs.iter()
            .any(|req| accepted.contains(req.event_id().unwrap_or_default()))
    })
    .await?;
    relay.kill9().await?;
    relay.restart().await?;
    for n in 20..30 {
        let body = format!(r#"{{"type":"crash","n":{n}}}"#);
        accepted.insert(accepted_id(
            &sender
                .post(&agent.webhook_url, body.as_bytes(), &[])
                .await?,
        ));
    }
    sink.wait_until("every accepted event", WAIT * 2, |reqs| {
        let seen: HashSet<_> = reqs.iter().filter_map(|req| req.event_id()).collect();
        accepted.iter().all(|id| seen.contains(id.as_str()))
    })
    .await
    .with_context(|| listener.stderr().tail(20))?;
    // The listener came back by itself, over the same transport.
    one_session_over(&relay, &agent, wire_name).await?;
    assert!(
        listener.stderr().contains("Reconnected"),
        "{}",
        listener.stderr().tail(20)
    );

    // Ctrl-C: the answers are sent and the listener exits 0 without
    // waiting for a close the HTTP transports never send.
    let mut listener = listener;
    let stopping = std::time::Instant::now();
    listener.interrupt()?;
    let status = listener.wait_exit(WAIT).await?;
    assert_eq!(status.code(), Some(0), "{}", listener.stderr().tail(10));
    assert!(
        stopping.elapsed() < std::time::Duration::from_secs(4),
        "stopped at once: {:?}",
        stopping.elapsed()
    );
    Ok(())
}

forced_transports!(wait_prints_one_event_and_exits_0);

async fn wait_prints_one_event_and_exits_0(transport: &str) -> anyhow::Result<()> {
    if !have_tinyproxy("wait_over_http_transports") {
        return Ok(());
    }
    let (relay, agent) = relay_with_agent(RelayOpts::default(), "wait-http").await?;
    // A proxy that would tunnel the WebSocket: only its log tells which
    // transport `wait` used.
    let proxy = Tinyproxy::start(TinyproxyOpts {
        connect_ports: vec![relay.port()],
        basic_auth: None,
    })
    .await?;
    let id = accepted_id(
        &Sender::default()
            .post(&agent.webhook_url, br#"{"type":"wait.sse"}"#, &[])
            .await?,
    );
    let user = CliUser::new()?.env("HTTP_PROXY", &proxy.url());
    let run = user
        .run(&[
            "wait",
            "--relay",
            &relay.url(),
            "--api-key",
            &agent.api_key,
            "--transport",
            transport,
            "--timeout",
            "30s",
        ])
        .await?;
    run.expect_code(0);
    let lines: Vec<_> = run.stdout.lines().collect();
    assert_eq!(lines.len(), 1, "one event: {}", run.stdout);
    let frame: serde_json::Value = serde_json::from_str(lines[0])?;
    assert_eq!(frame["id"], id.as_str());
    assert_eq!(frame["body"], r#"{"type":"wait.sse"}"#);
    relay
        .wait_event_status(&agent.api_key, &id, "delivered", WAIT)
        .await?;
    let target = format!("127.0.0.1:{}", relay.port());
    let path = if transport == "sse" { "stream" } else { "poll" };
    proxy
        .wait_for_log(&format!("GET http://{target}/api/v1/agent/{path}"), WAIT)
        .await?;
    proxy
        .wait_for_log(&format!("POST http://{target}/api/v1/agent/stream/"), WAIT)
        .await?;
    assert!(
        proxy.connects().is_empty(),
        "no WebSocket tunnel: {}",
        proxy.log()
    );
    Ok(())
}

#[tokio::test]
async fn a_transport_that_does_not_exist_is_a_usage_error() -> anyhow::Result<()> {
    let user = CliUser::new()?;
    for command in ["listen", "wait"] {
        let run = user
            .run(&[
                command,
                "--relay",
                "http://127.0.0.1:9",
                "--transport",
                "carrier-pigeon",
            ])
            .await?;
        run.expect_code(2);
        assert!(
            run.stderr.contains("auto") && run.stderr.contains("poll"),
            "{}",
            run.stderr
        );
    }
    let run = CliUser::new()?
        .env("LOBSTER_RELAY_TRANSPORT", "smoke")
        .run(&["wait", "--relay", "http://127.0.0.1:9"])
        .await?;
    run.expect_code(2);
    Ok(())
}
