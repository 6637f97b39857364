//! The agent commands against a real relay: `status`, `events`, `trigger`,
//! `wait`, config.toml defaults, routing by type, plain piped output, and a
//! listener that survives a relay restart.

use std::time::Duration;

use lobster_e2e::{
    CliUser, Listener, RelayOpts, Sender, Sink, WAIT, accepted_id, relay_with_agent,
};
use serde_json::Value;

fn parse_line(line: &str) -> Value {
    serde_json::from_str(line).unwrap_or_else(|err| panic!("not one JSON object ({err}): {line}"))
}

#[tokio::test]
async fn status_json_names_the_agent_and_where_the_key_came_from() -> anyhow::Result<()> {
    let (relay, agent) = relay_with_agent(RelayOpts::default(), "status").await?;
    let user = CliUser::new()?;
    let by_flag = user
        .run(&[
            "status",
            "--json",
            "--relay",
            &relay.url(),
            "--api-key",
            &agent.api_key,
        ])
        .await?;
    let status = by_flag.expect_code(0).json();
    assert_eq!(status["relay"], relay.url());
    assert_eq!(status["agent_id"], agent.agent_id.as_str());
    assert_eq!(status["name"], "status");
    assert_eq!(status["workspace"], "default");
    assert_eq!(status["relay_id"], agent.relay_id.as_str());
    assert_eq!(status["webhook_url"], agent.reported_webhook_url.as_str());
    assert_eq!(status["pending_events"], 0);
    assert_eq!(status["online_sessions"], 0);
    assert_eq!(status["key_source"], "flag");

    let by_env = CliUser::new()?
        .env("LOBSTER_RELAY_URL", &relay.url())
        .env("LOBSTER_RELAY_API_KEY", &agent.api_key);
    let status = by_env
        .run(&["status", "--json"])
        .await?
        .expect_code(0)
        .json();
    assert_eq!(status["key_source"], "env");

    let human = user
        .run(&[
            "status",
            "--relay",
            &relay.url(),
            "--api-key",
            &agent.api_key,
        ])
        .await?;
    human.expect_code(0);
    assert!(
        human.stdout.contains(&agent.reported_webhook_url),
        "{}",
        human.stdout
    );
    assert!(human.stdout.contains("--api-key flag"), "{}", human.stdout);
    Ok(())
}

#[tokio::test]
async fn no_key_anywhere_is_exit_3_naming_the_login_command() -> anyhow::Result<()> {
    let (relay, _agent) = relay_with_agent(RelayOpts::default(), "nokey").await?;
    let run = CliUser::new()?
        .run(&["status", "--relay", &relay.url()])
        .await?;
    run.expect_code(3);
    assert!(run.stderr.contains("not logged in"), "{}", run.stderr);
    assert!(
        run.stderr
            .contains(&format!("lobster-relay login --relay {}", relay.url())),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.lines().count() <= 2,
        "one or two lines: {}",
        run.stderr
    );
    Ok(())
}

#[tokio::test]
async fn events_list_show_and_replay_round_trip() -> anyhow::Result<()> {
    let (relay, agent) = relay_with_agent(RelayOpts::default(), "events").await?;
    let user = CliUser::new()?
        .env("LOBSTER_RELAY_URL", &relay.url())
        .env("LOBSTER_RELAY_API_KEY", &agent.api_key);

    let triggered = user
        .run(&["trigger", "order.paid", "--data", r#"{"amount":42}"#])
        .await?;
    triggered.expect_code(0);
    let id = triggered.stdout.trim().to_owned();
    assert!(
        id.starts_with("evt_"),
        "trigger prints the id: {}",
        triggered.stdout
    );

    let listed = user
        .run(&["events", "list", "--json", "--limit", "5"])
        .await?;
    let listed = listed.expect_code(0).json();
    assert_eq!(listed["events"][0]["id"], id.as_str());
    assert_eq!(listed["events"][0]["event_type"], "order.paid");
    assert_eq!(listed["events"][0]["status"], "pending");
    let table = user.run(&["events", "list", "--status", "pending"]).await?;
    assert!(
        table.expect_code(0).stdout.contains(&id),
        "{}",
        table.stdout
    );

    // Delivered once...
    let first = user.run(&["wait", "--timeout", "20s"]).await?;
    let first = parse_line(&first.expect_code(0).stdout);
    assert_eq!(
        (first["id"].as_str(), first["attempt"].as_u64()),
        (Some(id.as_str()), Some(1))
    );
    relay
        .wait_event_status(&agent.api_key, &id, "delivered", WAIT)
        .await?;

    let shown = user.run(&["events", "show", &id, "--json"]).await?;
    let shown = shown.expect_code(0).json();
    assert_eq!(shown["status"], "delivered");
    let body: Value = serde_json::from_str(shown["body"].as_str().unwrap_or_default())?;
    assert_eq!(body["data"]["amount"], 42);
    let raw = user.run(&["events", "show", &id, "--body"]).await?;
    assert_eq!(
        raw.expect_code(0).stdout,
        shown["body"].as_str().unwrap_or_default()
    );
    // Shown as received (key order and spacing untouched), pretty on request.
    let human = user.run(&["events", "show", &id]).await?;
    let as_received = shown["body"].as_str().unwrap_or_default();
    assert!(
        human.expect_code(0).stdout.contains(as_received),
        "{}",
        human.stdout
    );
    let pretty = user.run(&["events", "show", &id, "--pretty"]).await?;
    assert!(
        pretty.expect_code(0).stdout.contains("\"amount\": 42"),
        "{}",
        pretty.stdout
    );

    // ...then replayed: same id, the attempt count goes on.
    user.run(&["events", "replay", &id]).await?.expect_code(0);
    let again = user.run(&["wait", "--timeout", "20s"]).await?;
    let again = parse_line(&again.expect_code(0).stdout);
    assert_eq!(again["id"], id.as_str());
    assert_eq!(again["attempt"], 2);
    assert_eq!(
        again["replay"], true,
        "an explicit replay is marked: {again}"
    );
    assert!(
        first.get("replay").is_none(),
        "a first delivery is not: {first}"
    );

    let missing = user.run(&["events", "show", "evt_nope"]).await?;
    missing.expect_code(1);
    assert!(
        missing.stderr.contains("event_not_found"),
        "{}",
        missing.stderr
    );
    Ok(())
}

/// A `wait` whose ack was lost printed its event, and the relay hands the
/// event to the next `wait`: that one acks it without printing it again and
/// goes on to the next event. (The lost ack is staged by writing down the
/// id in `wait-printed`, as the first `wait` does before its ack.)
#[tokio::test]
async fn wait_does_not_print_again_what_an_earlier_wait_printed() -> anyhow::Result<()> {
    let (relay, agent) = relay_with_agent(RelayOpts::default(), "wait-twice").await?;
    let user = CliUser::new()?
        .env("LOBSTER_RELAY_URL", &relay.url())
        .env("LOBSTER_RELAY_API_KEY", &agent.api_key);
    let trigger = |event_type: &'static str| {
        let user = &user;
        async move {
            let run = user.run(&["trigger", event_type]).await?;
            anyhow::Ok(run.expect_code(0).stdout.trim().to_owned())
        }
    };
    let first = trigger("order.first").await?;
    let second = trigger("order.second").await?;

    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis();
    std::fs::create_dir_all(user.config_dir())?;
    std::fs::write(
        user.config_dir().join("wait-printed"),
        format!("{now_ms} {first}\n"),
    )?;
    let waited = user.run(&["wait", "--timeout", "20s", "-v"]).await?;
    let line = parse_line(&waited.expect_code(0).stdout);
    assert_eq!(
        line["id"],
        second.as_str(),
        "the first was not printed again"
    );
    relay
        .wait_event_status(&agent.api_key, &first, "delivered", WAIT)
        .await?;
    // The printed one is written down for the next wait.
    let printed = std::fs::read_to_string(user.config_dir().join("wait-printed"))?;
    assert!(printed.contains(&second), "{printed}");
    Ok(())
}

#[tokio::test]
async fn trigger_reaches_a_running_listener() -> anyhow::Result<()> {
    let (relay, agent) = relay_with_agent(RelayOpts::default(), "trigger").await?;
    let mut listener = Listener::ready(&relay.url(), &agent.api_key, &["--print"]).await?;
    let user = CliUser::new()?;
    let run = user
        .run(&[
            "trigger",
            "message.received",
            "--data",
            r#"{"text":"hi"}"#,
            "--relay",
            &relay.url(),
            "--api-key",
            &agent.api_key,
        ])
        .await?;
    let id = run.expect_code(0).stdout.trim().to_owned();
    let line = parse_line(&listener.next_stdout_line(WAIT).await?);
    assert_eq!(line["id"], id.as_str());
    assert_eq!(line["event_type"], "message.received");
    let body: Value = serde_json::from_str(line["body"].as_str().unwrap_or_default())?;
    assert_eq!(body["data"]["text"], "hi");
    assert_eq!(body["test"], true);
    Ok(())
}

#[tokio::test]
async fn wait_returns_the_first_matching_event_only() -> anyhow::Result<()> {
    let (relay, agent) = relay_with_agent(RelayOpts::default(), "wait-match").await?;
    let sender = Sender::default();
    let ping = accepted_id(
        &sender
            .post(&agent.webhook_url, br#"{"type":"ping"}"#, &[])
            .await?,
    );
    let paid = accepted_id(
        &sender
            .post(&agent.webhook_url, br#"{"type":"order.paid"}"#, &[])
            .await?,
    );
    let later = accepted_id(
        &sender
            .post(&agent.webhook_url, br#"{"type":"order.refunded"}"#, &[])
            .await?,
    );
    let user = CliUser::new()?;
    let run = user
        .run(&[
            "wait",
            "--events",
            "order.*",
            "--timeout",
            "20s",
            "--relay",
            &relay.url(),
            "--api-key",
            &agent.api_key,
        ])
        .await?;
    let lines: Vec<&str> = run.expect_code(0).stdout.lines().collect();
    assert_eq!(lines.len(), 1, "one JSON line: {lines:?}");
    assert_eq!(
        parse_line(lines[0])["id"],
        paid.as_str(),
        "the first order.* event"
    );
    relay
        .wait_event_status(&agent.api_key, &paid, "delivered", WAIT)
        .await?;
    for untouched in [&ping, &later] {
        let event = relay.event(&agent.api_key, untouched).await?;
        assert_ne!(
            event["status"], "delivered",
            "{untouched} was not acked: {event}"
        );
    }
    Ok(())
}

#[tokio::test]
async fn forward_patterns_route_by_event_type() -> anyhow::Result<()> {
    let (relay, agent) = relay_with_agent(RelayOpts::default(), "routes").await?;
    let (messages, rest) = (Sink::start().await?, Sink::start().await?);
    let args = [
        "--forward",
        &format!("message.*={}", messages.host_path("/messages")),
        "--forward",
        &rest.url("/other"),
    ];
    let listener = Listener::ready(&relay.url(), &agent.api_key, &args).await?;
    let sender = Sender::default();
    let message = accepted_id(
        &sender
            .post(&agent.webhook_url, br#"{"type":"message.received"}"#, &[])
            .await?,
    );
    let ping = accepted_id(
        &sender
            .post(&agent.webhook_url, br#"{"type":"ping"}"#, &[])
            .await?,
    );

    let got = messages.wait_for(1, WAIT).await?;
    assert_eq!(
        (got[0].path.as_str(), got[0].event_id()),
        ("/messages", Some(message.as_str()))
    );
    let got = rest.wait_for(1, WAIT).await?;
    assert_eq!(
        (got[0].path.as_str(), got[0].event_id()),
        ("/other", Some(ping.as_str()))
    );
    relay
        .wait_event_status(&agent.api_key, &ping, "delivered", WAIT)
        .await?;
    assert_eq!(
        (messages.len(), rest.len()),
        (1, 1),
        "each event went one way"
    );
    // One `-->` and one `<--` line per event on stderr.
    let stderr = listener.stderr();
    stderr
        .wait_for(&format!("<-- 200 POST {}", rest.url("/other")), WAIT)
        .await?;
    assert!(stderr.contains(&format!("--> message.received {message}")));
    Ok(())
}

#[tokio::test]
async fn config_toml_supplies_the_relay_and_listen_defaults() -> anyhow::Result<()> {
    let (relay, agent) = relay_with_agent(RelayOpts::default(), "config").await?;
    let sink = Sink::start().await?;
    let user = CliUser::new()?.env("LOBSTER_RELAY_API_KEY", &agent.api_key);
    let config = format!(
        "relay = \"{}\"\n\n[listen]\nforward = \"{}\"\nevents = \"order.*\"\nheaders = [\"X-From-Config: yes\"]\n",
        relay.url(),
        sink.host_path("/hooks")
    );
    std::fs::write(user.config_dir().join("config.toml"), config)?;
    let listener = user.spawn("listener", &["listen"])?;
    listener.wait_for_stderr("Ready!", WAIT).await?;
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
    let got = sink.wait_for(1, WAIT).await?;
    assert_eq!(
        got[0].event_id(),
        Some(order.as_str()),
        "the events filter applies"
    );
    assert_eq!(got[0].path, "/hooks");
    assert_eq!(got[0].header("x-from-config"), Some("yes"));

    std::fs::write(
        user.config_dir().join("config.toml"),
        "[listen]\nforwad = 1\n",
    )?;
    let bad = user.run(&["status"]).await?;
    bad.expect_code(2);
    assert!(
        bad.stderr.contains("forwad"),
        "names the bad key: {}",
        bad.stderr
    );
    Ok(())
}

#[tokio::test]
async fn piped_output_has_no_ansi_codes() -> anyhow::Result<()> {
    let (relay, agent) = relay_with_agent(RelayOpts::default(), "plain").await?;
    // NO_COLOR unset: only the pipes keep the colours out.
    let user = CliUser::new()?
        .allow_color()
        .env("LOBSTER_RELAY_URL", &relay.url())
        .env("LOBSTER_RELAY_API_KEY", &agent.api_key)
        .env("TERM", "xterm-256color");
    let listener = user.spawn("listener", &["listen", "--forward", "127.0.0.1:9/x"])?;
    listener.wait_for_stderr("Ready!", WAIT).await?;
    let id = user.run(&["trigger"]).await?.stdout.trim().to_owned();
    listener
        .stderr
        .wait_for(&format!("--> test.event {id}"), WAIT)
        .await?;
    listener.stderr.wait_for("nacked", WAIT).await?;
    let mut outputs = vec![
        (
            "listen stderr".to_owned(),
            listener.stderr.lines().join("\n"),
        ),
        (
            "listen stdout".to_owned(),
            listener.stdout.lines().join("\n"),
        ),
    ];
    for args in [
        &["status"][..],
        &["events", "list"],
        &["events", "show", &id],
    ] {
        let run = user.run(args).await?;
        run.expect_code(0);
        outputs.push((format!("{args:?} stdout"), run.stdout));
        outputs.push((format!("{args:?} stderr"), run.stderr));
    }
    for (what, text) in outputs {
        assert!(!text.contains('\u{1b}'), "ANSI escape in {what}: {text:?}");
    }
    Ok(())
}

#[tokio::test]
async fn listen_survives_a_relay_restart_and_says_so() -> anyhow::Result<()> {
    let (mut relay, agent) = relay_with_agent(RelayOpts::default(), "restart").await?;
    let mut listener = Listener::ready(&relay.url(), &agent.api_key, &["--print"]).await?;
    relay.terminate()?;
    relay.wait_exit(WAIT).await?;
    listener
        .stderr()
        .wait_for("Connection lost: the relay is restarting", WAIT)
        .await?;
    // Queued while the listener is away: reported when it is back.
    relay.restart().await?;
    let id = accepted_id(
        &Sender::default()
            .post(&agent.webhook_url, br#"{"type":"after.restart"}"#, &[])
            .await?,
    );
    let line = parse_line(&listener.next_stdout_line(Duration::from_secs(30)).await?);
    assert_eq!(line["id"], id.as_str());
    let back = listener
        .stderr()
        .wait_for("Reconnected after", WAIT)
        .await?;
    assert!(back.contains("offline"), "{back}");
    assert!(listener.try_exit().is_none(), "still listening");
    Ok(())
}

/// Durations too large to be meant (a typo, a unit mix-up) are usage
/// errors naming the flag, never a wrap-around: a negative retention once
/// made the sweep delete every event.
#[tokio::test]
async fn absurd_durations_are_usage_errors() -> anyhow::Result<()> {
    let user = CliUser::new()?;
    let data = tempfile::tempdir()?;
    let server = user
        .run(&[
            "server",
            "--data-dir",
            data.path().to_str().unwrap_or_default(),
            "--listen",
            "127.0.0.1:0",
            "--signature-scheme",
            "none",
            "--retention",
            "300000000000d",
            "--admin-token",
            "e2e-admin-token-0123456789",
        ])
        .await?;
    server.expect_code(2);
    assert!(server.stderr.contains("--retention"), "{}", server.stderr);
    let wait = user
        .run(&[
            "wait",
            "--timeout",
            "300000000000d",
            "--relay",
            "http://127.0.0.1:9",
            "--api-key",
            "lr_live_whatever",
        ])
        .await?;
    wait.expect_code(2);
    assert!(wait.stderr.contains("--timeout"), "{}", wait.stderr);
    Ok(())
}
