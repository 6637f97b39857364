//! `listen --print`, `listen --exec`, `wait`, and Ctrl-C: the CLI's ways of
//! handing events to scripts.

use std::ffi::OsString;
use std::time::Duration;

use base64::Engine as _;
use lobster_e2e::process::Proc;
use lobster_e2e::{
    Listener, RelayOpts, Sender, Sink, WAIT, accepted_id, attempts_of, relay_with_agent,
};
use serde_json::Value;

fn parse_line(line: &str) -> Value {
    serde_json::from_str(line)
        .unwrap_or_else(|err| panic!("stdout line is not one JSON object ({err}): {line}"))
}

#[tokio::test]
async fn print_writes_one_json_line_per_event_and_acks_it() -> anyhow::Result<()> {
    let (relay, agent) = relay_with_agent(RelayOpts::default(), "print").await?;
    let mut listener = Listener::start(&relay.url(), &agent.api_key, &["--print"]).await?;
    let shown = listener.wait_ready().await?;
    assert_eq!(
        shown, agent.reported_webhook_url,
        "listen shows the agent's webhook URL"
    );
    let body = r#"{"type":"message.received","text":"hi 🦞"}"#;
    let headers = [("x-custom", "printed")];
    let id = accepted_id(
        &Sender::default()
            .post(&agent.webhook_url, body.as_bytes(), &headers)
            .await?,
    );

    let line = parse_line(&listener.next_stdout_line(WAIT).await?);
    assert_eq!(line["type"], "event", "{line}");
    assert_eq!(line["id"], id.as_str());
    assert_eq!(line["event_type"], "message.received");
    assert_eq!(line["attempt"], 1);
    assert_eq!(line["body"], body);
    assert_eq!(line["body_encoding"], "utf8");
    assert!(line["received_at"].is_string(), "{line}");
    let pairs = line["headers"]
        .as_array()
        .expect("headers as [name, value] pairs");
    let custom = pairs.iter().find(|pair| {
        pair[0]
            .as_str()
            .is_some_and(|n| n.eq_ignore_ascii_case("x-custom"))
    });
    assert_eq!(
        custom.map(|pair| &pair[1]),
        Some(&Value::from("printed")),
        "{line}"
    );
    relay
        .wait_event_status(&agent.api_key, &id, "delivered", WAIT)
        .await?;
    Ok(())
}

#[tokio::test]
async fn events_filter_hands_a_listener_only_matching_types() -> anyhow::Result<()> {
    let (relay, agent) = relay_with_agent(RelayOpts::default(), "filter").await?;
    let args = ["--print", "--events", "order.*", "--concurrency", "1"];
    let mut listener = Listener::ready(&relay.url(), &agent.api_key, &args).await?;
    let sender = Sender::default();
    accepted_id(
        &sender
            .post(&agent.webhook_url, br#"{"type":"ping"}"#, &[])
            .await?,
    );
    let order = accepted_id(
        &sender
            .post(&agent.webhook_url, br#"{"type":"order.paid"}"#, &[])
            .await?,
    );

    let line = parse_line(&listener.next_stdout_line(WAIT).await?);
    assert_eq!(
        line["id"],
        order.as_str(),
        "the ping event does not match order.*: {line}"
    );
    assert_eq!(line["event_type"], "order.paid");
    Ok(())
}

#[tokio::test]
async fn listen_without_forward_prints_binary_bodies_as_base64() -> anyhow::Result<()> {
    let (relay, agent) = relay_with_agent(RelayOpts::default(), "print-binary").await?;
    let mut listener = Listener::ready(&relay.url(), &agent.api_key, &[]).await?;
    let body: Vec<u8> = (0..=255).rev().collect();
    let id = accepted_id(
        &Sender::default()
            .post(&agent.webhook_url, &body, &[])
            .await?,
    );

    let line = parse_line(&listener.next_stdout_line(WAIT).await?);
    assert_eq!(line["id"], id.as_str());
    assert_eq!(
        line["event_type"], "unknown",
        "no type header and no JSON body"
    );
    assert_eq!(line["body_encoding"], "base64", "{line}");
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(line["body"].as_str().unwrap_or_default())?;
    assert_eq!(decoded, body);
    relay
        .wait_event_status(&agent.api_key, &id, "delivered", WAIT)
        .await?;
    Ok(())
}

#[tokio::test]
async fn exec_gets_the_body_on_stdin_and_the_event_in_its_environment() -> anyhow::Result<()> {
    let (relay, agent) = relay_with_agent(RelayOpts::default(), "exec").await?;
    let out = tempfile::tempdir()?;
    let dir = out.path().display();
    let cmd = format!(
        r#"cat > "{dir}/$LOBSTER_EVENT_ID.body" && printf '%s %s' "$LOBSTER_EVENT_TYPE" "$LOBSTER_EVENT_ATTEMPT" > "{dir}/$LOBSTER_EVENT_ID.env""#
    );
    let _listener = Listener::ready(&relay.url(), &agent.api_key, &["--exec", &cmd]).await?;
    let body = br#"{"type":"exec.test","data":[1,2,3]}"#;
    let id = accepted_id(
        &Sender::default()
            .post(&agent.webhook_url, body, &[])
            .await?,
    );

    relay
        .wait_event_status(&agent.api_key, &id, "delivered", WAIT)
        .await?;
    assert_eq!(std::fs::read(out.path().join(format!("{id}.body")))?, body);
    assert_eq!(
        std::fs::read_to_string(out.path().join(format!("{id}.env")))?,
        "exec.test 1"
    );
    Ok(())
}

#[tokio::test]
async fn a_failing_exec_gets_the_event_again() -> anyhow::Result<()> {
    let opts = RelayOpts::default().args(["--retry-initial", "100ms"]);
    let (relay, agent) = relay_with_agent(opts, "exec-retry").await?;
    let out = tempfile::tempdir()?;
    let log = out.path().join("attempts");
    let cmd = format!(
        r#"echo "$LOBSTER_EVENT_ATTEMPT" >> "{}"; [ "$LOBSTER_EVENT_ATTEMPT" -ge 2 ]"#,
        log.display()
    );
    let _listener = Listener::ready(&relay.url(), &agent.api_key, &["--exec", &cmd]).await?;
    let id = accepted_id(
        &Sender::default()
            .post(&agent.webhook_url, br#"{"type":"exec.fail"}"#, &[])
            .await?,
    );

    let event = relay
        .wait_event_status(&agent.api_key, &id, "delivered", Duration::from_secs(20))
        .await?;
    assert_eq!(
        std::fs::read_to_string(&log)?,
        "1\n2\n",
        "exit 1 nacks, the retry is attempt 2"
    );
    assert!(attempts_of(&event) >= 2, "{event}");
    Ok(())
}

#[tokio::test]
async fn ctrl_c_stops_listen_with_exit_0() -> anyhow::Result<()> {
    let (relay, agent) = relay_with_agent(RelayOpts::default(), "ctrl-c").await?;
    let mut listener = Listener::ready(&relay.url(), &agent.api_key, &["--print"]).await?;
    listener.interrupt()?;
    let status = listener.wait_exit(WAIT).await?;
    assert_eq!(status.code(), Some(0), "Ctrl-C is a graceful stop");
    Ok(())
}

/// `lobster-relay wait --relay URL --api-key KEY ARGS` with its own config dir.
fn spawn_wait(
    relay_url: &str,
    api_key: &str,
    args: &[&str],
    config_dir: &tempfile::TempDir,
) -> anyhow::Result<Proc> {
    let mut argv: Vec<OsString> = ["wait", "--relay", relay_url, "--api-key", api_key]
        .map(OsString::from)
        .into();
    argv.extend(args.iter().map(OsString::from));
    let env = [(
        "LOBSTER_RELAY_CONFIG_DIR".to_owned(),
        config_dir.path().display().to_string(),
    )];
    Proc::spawn("wait", &argv, &env)
}

#[tokio::test]
async fn wait_prints_the_next_event_acks_it_and_exits_0() -> anyhow::Result<()> {
    let (relay, agent) = relay_with_agent(RelayOpts::default(), "wait").await?;
    let id = accepted_id(
        &Sender::default()
            .post(&agent.webhook_url, br#"{"type":"callback.done"}"#, &[])
            .await?,
    );
    let config = tempfile::tempdir()?;
    let mut wait = spawn_wait(&relay.url(), &agent.api_key, &["--timeout", "30s"], &config)?;

    let status = wait.wait_exit(WAIT).await?;
    assert_eq!(status.code(), Some(0), "stderr: {}", wait.stderr.tail(10));
    let lines = wait.stdout.lines();
    assert_eq!(lines.len(), 1, "one JSON line on stdout: {lines:?}");
    let line = parse_line(&lines[0]);
    assert_eq!(line["id"], id.as_str());
    assert_eq!(line["event_type"], "callback.done");
    relay
        .wait_event_status(&agent.api_key, &id, "delivered", WAIT)
        .await?;
    Ok(())
}

/// A relay killed while `wait` is connected is reconnected to, as
/// `listen` does (the same loop), and the event queued after the restart
/// is printed and acked within the one `--timeout`.
#[tokio::test]
async fn wait_reconnects_after_a_relay_sigkill_and_gets_the_event() -> anyhow::Result<()> {
    let (mut relay, agent) = relay_with_agent(RelayOpts::default(), "wait-kill").await?;
    let config = tempfile::tempdir()?;
    let mut wait = spawn_wait(
        &relay.url(),
        &agent.api_key,
        &["--timeout", "60s", "-v"],
        &config,
    )?;
    wait.wait_for_stderr("connected; webhook URL", WAIT).await?;
    relay.kill9().await?;
    wait.wait_for_stderr("Connection lost:", WAIT).await?;
    relay.restart().await?;
    let id = accepted_id(
        &Sender::default()
            .post(&agent.webhook_url, br#"{"type":"after.kill"}"#, &[])
            .await?,
    );
    let status = wait.wait_exit(Duration::from_secs(30)).await?;
    assert_eq!(status.code(), Some(0), "stderr: {}", wait.stderr.tail(10));
    let lines = wait.stdout.lines();
    assert_eq!(lines.len(), 1, "one JSON line on stdout: {lines:?}");
    assert_eq!(parse_line(&lines[0])["id"], id.as_str());
    relay
        .wait_event_status(&agent.api_key, &id, "delivered", WAIT)
        .await?;
    Ok(())
}

/// As `timeout(1)`: 124 when nothing arrives in time, so a script can tell
/// "no callback yet" from "the relay is down" (1).
#[tokio::test]
async fn wait_exits_124_when_nothing_arrives_in_time() -> anyhow::Result<()> {
    let (relay, agent) = relay_with_agent(RelayOpts::default(), "wait-timeout").await?;
    let config = tempfile::tempdir()?;
    let mut wait = spawn_wait(&relay.url(), &agent.api_key, &["--timeout", "1s"], &config)?;
    let status = wait.wait_exit(WAIT).await?;
    assert_eq!(status.code(), Some(124), "stderr: {}", wait.stderr.tail(10));
    assert!(
        wait.stderr.contains("no event arrived within 1s"),
        "{}",
        wait.stderr.tail(10)
    );
    Ok(())
}

#[tokio::test]
async fn wait_exits_1_at_once_when_the_relay_cannot_be_reached() -> anyhow::Result<()> {
    // A port nothing listens on: bound, then closed.
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let url = format!("http://127.0.0.1:{port}");
    let config = tempfile::tempdir()?;
    let key = "lrk_0000000000000000000000000000000000000000000000000000000000000";
    let started = std::time::Instant::now();
    let mut wait = spawn_wait(&url, key, &["--timeout", "60s"], &config)?;
    let status = wait.wait_exit(WAIT).await?;
    assert_eq!(status.code(), Some(1), "stderr: {}", wait.stderr.tail(10));
    assert!(
        started.elapsed() < std::time::Duration::from_secs(20),
        "failed fast, not after retries"
    );
    assert!(
        wait.stderr.contains("cannot reach the relay at"),
        "{}",
        wait.stderr.tail(10)
    );
    Ok(())
}

/// A mistyped `--relay` (nothing listening, or something that is not a
/// relay) is reported at once with exit 1, not retried forever.
#[tokio::test]
async fn listen_exits_1_at_once_when_the_first_connection_fails() -> anyhow::Result<()> {
    let closed = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    // Something that is not a relay: an HTTP server answering 404 to all.
    let not_a_relay = Sink::start().await?;
    not_a_relay.respond_with(|_, _| 404);
    let key = "lrk_0000000000000000000000000000000000000000000000000000000000000";
    for url in [
        format!("http://127.0.0.1:{closed}"),
        format!("http://127.0.0.1:{}", not_a_relay.port()),
    ] {
        let started = std::time::Instant::now();
        let mut listener = Listener::start(&url, key, &["--print"]).await?;
        let status = listener.wait_exit(WAIT).await?;
        let stderr = listener.stderr().tail(5);
        assert_eq!(status.code(), Some(1), "{url}: {stderr}");
        assert!(
            stderr.contains(&url) || stderr.contains("127.0.0.1"),
            "names the relay: {stderr}"
        );
        assert!(
            started.elapsed() < std::time::Duration::from_secs(15),
            "{url}: no retry loop"
        );
    }
    Ok(())
}

/// The banner names the active `--events` filter and does not claim the
/// whole queue is on its way; `-v` shows what the app answered on a
/// failure (here the relay's own JSON 405 for a POST to /healthz).
#[tokio::test]
async fn the_banner_shows_the_filter_and_verbose_shows_the_apps_answer() -> anyhow::Result<()> {
    let (relay, agent) = relay_with_agent(RelayOpts::default(), "banner").await?;
    let sender = Sender::default();
    accepted_id(
        &sender
            .post(&agent.webhook_url, br#"{"type":"other.kind"}"#, &[])
            .await?,
    );
    let target = format!("{}/healthz", relay.url());
    let listener = Listener::ready(
        &relay.url(),
        &agent.api_key,
        &["--events", "message.*", "--forward", &target, "-v"],
    )
    .await?;
    let filter_line = listener
        .stderr()
        .wait_for("Only events matching message.*", WAIT)
        .await?;
    assert!(filter_line.contains("--events"), "{filter_line}");
    let queued = listener
        .stderr()
        .wait_for("1 event is queued", WAIT)
        .await?;
    assert!(queued.contains("matching the filter"), "{queued}");

    accepted_id(
        &sender
            .post(&agent.webhook_url, br#"{"type":"message.received"}"#, &[])
            .await?,
    );
    let answered = listener.stderr().wait_for("answered:", WAIT).await?;
    assert!(answered.contains("405 POST"), "{answered}");
    assert!(answered.contains("method_not_allowed"), "{answered}");
    Ok(())
}
