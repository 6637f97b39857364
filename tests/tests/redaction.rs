//! Secrets never reach a log line or an error body, and request data cannot
//! forge a log line.
//!
//! The relay runs with canary secrets (the test relays' webhook secret and
//! admin token, and a created agent's API key) at `RUST_LOG=trace`, is driven
//! through success and failure paths (bad signatures made of the secrets
//! themselves, wrong API keys, wrong admin tokens, a listen session, CLI
//! commands with bad credentials), and then every line of every stderr and
//! every answer body is searched for each canary and for the signature
//! header values sent. A second relay logs `pretty` and gets event types and
//! nack reasons with CR/LF and ESC in them: every line must still be one log
//! record.

use base64::Engine as _;
use futures_util::{SinkExt as _, StreamExt as _};
use lobster_e2e::{
    ADMIN_TOKEN, Agent, Answer, CliUser, Listener, Relay, RelayOpts, Sender, Sink, WAIT,
    accepted_id, new_message_id, now_unix, relay_with_agent, webhook_secret,
};
use lobster_shared::wire::{AgentMessage, RelayMessage};
use reqwest::Method;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;

/// What the relay prints on stderr on an empty database with the pretty
/// log, before any log record; with `--log-format json` it is a log record
/// (`first_steps_banner_is_json_in_json_mode`).
const BANNER: [&str; 2] = [
    "No agents yet. Create one with:",
    "lobster-relay admin create-agent",
];

/// A line injected through request data starts with this.
const FORGED: &str = "FORGED";

/// A value that must never be printed, and what it is.
struct Canary {
    what: &'static str,
    value: String,
}

fn canaries(agent: &Agent) -> Vec<Canary> {
    let secret = webhook_secret();
    let encoded = secret.trim_start_matches("whsec_").to_owned();
    let raw = base64::engine::general_purpose::STANDARD
        .decode(&encoded)
        .expect("the test secret is base64");
    let raw = String::from_utf8(raw).expect("the test secret's key is text");
    let mut all = vec![
        Canary {
            what: "webhook secret",
            value: secret,
        },
        Canary {
            what: "webhook secret (base64 part)",
            value: encoded,
        },
        Canary {
            what: "webhook secret (key bytes)",
            value: raw,
        },
        Canary {
            what: "admin token",
            value: ADMIN_TOKEN.to_owned(),
        },
        Canary {
            what: "API key",
            value: agent.api_key.clone(),
        },
    ];
    // Most of the key too, in case something prints a truncated form.
    all.push(Canary {
        what: "API key (prefix)",
        value: agent.api_key[..agent.api_key.len() - 8].to_owned(),
    });
    all
}

fn assert_no_canary(source: &str, lines: &[String], canaries: &[Canary]) {
    for line in lines {
        for canary in canaries {
            assert!(
                !line.contains(&canary.value),
                "{source} shows the {} in: {line}",
                canary.what
            );
        }
    }
}

/// Every line of a JSON log is one JSON object.
fn assert_json_lines(source: &str, lines: &[String]) {
    for line in lines {
        let parsed: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|err| panic!("{source}: a log line is not JSON ({err}): {line:?}"));
        assert!(parsed.is_object(), "{source}: not an object: {line}");
    }
}

/// Below `info`, only the relay's own crates log, however verbose
/// `RUST_LOG` is.
fn assert_dependencies_capped_at_info(source: &str, lines: &[String]) {
    for line in lines {
        let record: serde_json::Value = serde_json::from_str(line).expect("JSON lines");
        let level = record["level"].as_str().unwrap_or_default();
        let target = record["target"].as_str().unwrap_or_default();
        assert!(
            !matches!(level, "DEBUG" | "TRACE") || target.starts_with("lobster_"),
            "{source}: a {level} record of {target} passed the cap: {line}"
        );
    }
}

/// Every line of a pretty log starts a record with its timestamp, so none
/// was injected.
fn assert_pretty_records(source: &str, lines: &[String]) {
    for line in lines.iter().filter(|line| !is_banner(line)) {
        let stamped = line.len() > 20
            && line.as_bytes()[4] == b'-'
            && line.as_bytes()[10] == b'T'
            && line[..4].bytes().all(|b| b.is_ascii_digit());
        assert!(
            stamped,
            "{source}: a line that is not a log record: {line:?}"
        );
        assert!(!line.contains('\x1b'), "{source}: raw ESC in {line:?}");
    }
}

fn is_banner(line: &str) -> bool {
    line.trim().is_empty()
        || BANNER
            .iter()
            .any(|part| line.trim_start().starts_with(part))
}

fn assert_body_clean(answer: &Answer, canaries: &[Canary], sent: &[&str]) {
    for canary in canaries {
        assert!(
            !answer.text.contains(&canary.value),
            "an error body shows the {}: {}",
            canary.what,
            answer.text
        );
    }
    for value in sent {
        assert!(
            !answer.text.contains(value),
            "an error body echoes {value:?}: {}",
            answer.text
        );
    }
}

#[tokio::test]
async fn secrets_never_reach_logs_or_error_bodies() -> anyhow::Result<()> {
    // Everything at trace, and the dependencies that print request data
    // named explicitly (`tokio_postgres::query` prints statement parameters,
    // so stored signatures, at debug): the relay caps them at info whatever
    // RUST_LOG says. On PostgreSQL (scripts/test.sh's second pass) this
    // covers the database driver too.
    let rust_log = "trace,tokio_postgres=trace,tokio_postgres::query=trace,\
                    hyper=trace,h2=trace,tungstenite=trace,rustls=trace,redis=trace";
    let opts = RelayOpts::default().env("RUST_LOG", rust_log);
    let (relay, agent) = relay_with_agent(opts, "redaction").await?;
    let canaries = canaries(&agent);
    let sender = Sender::default();
    let mut answers = Vec::new();
    let mut sent_signatures = Vec::new();

    // A good delivery to a listener, with verbose output.
    let sink = Sink::start().await?;
    let listener = Listener::ready(
        &relay.url(),
        &agent.api_key,
        &["--forward", &sink.host_path("/hooks"), "-vv"],
    )
    .await?;
    let (id, ts, body) = (new_message_id(), now_unix(), br#"{"type":"redaction.ok"}"#);
    sent_signatures.push(sender.sign(&id, ts, body));
    let accepted = sender
        .post_as(&agent.webhook_url, body, &id, ts, &[])
        .await?;
    let event_id = accepted_id(&accepted);
    sink.wait_for(1, WAIT).await?;
    relay
        .wait_event_status(&agent.api_key, &event_id, "delivered", WAIT)
        .await?;

    // Bad signatures made of the secrets themselves, and a stale good one.
    let bogus = [
        format!("v1,{}", webhook_secret()),
        format!("v1,{ADMIN_TOKEN}"),
        format!("v1,{}", agent.api_key),
        "v1,Q0FOQVJZLXNpZ25hdHVyZS1ub3QtdmFsaWQ=".to_owned(),
    ];
    for signature in &bogus {
        let ts = now_unix().to_string();
        let headers = [
            ("webhook-id", "msg_redaction"),
            ("webhook-timestamp", ts.as_str()),
            ("webhook-signature", signature.as_str()),
            ("authorization", "Bearer e2e-admin-token-0123456789"),
            ("x-hub-signature-256", "sha256=c0ffeec0ffeec0ffee"),
        ];
        let answer = sender.post_raw(&agent.webhook_url, b"{}", &headers).await?;
        // `invalid_signature`, or `malformed_signature` where the made-up
        // entry is not base64.
        answer.assert_error(401);
        answers.push(answer);
    }
    let stale = now_unix() - 3600;
    sent_signatures.push(sender.sign("msg_stale", stale, b"{}"));
    answers.push(
        sender
            .post_as(&agent.webhook_url, b"{}", "msg_stale", stale, &[])
            .await?,
    );
    answers.last().unwrap().assert_error(401);

    // Wrong credentials on the agent and admin APIs, crossed and made up.
    // Change the last character to one it is not (a fixed `x` would be the
    // real key whenever the key happens to end in `x`).
    let (stem, last) = agent.api_key.split_at(agent.api_key.len() - 1);
    let wrong_key = format!("{stem}{}", if last == "x" { "y" } else { "x" });
    for token in [wrong_key.as_str(), ADMIN_TOKEN] {
        let answer = relay
            .request(Method::GET, "/api/v1/agent/me", Some(token), None)
            .await?;
        answer.assert_error(401);
        answers.push(answer);
    }
    for token in [agent.api_key.as_str(), "e2e-admin-token-0123456780"] {
        let body = json!({"name": "nope"});
        let answer = relay
            .request(
                Method::POST,
                "/api/v1/admin/agents",
                Some(token),
                Some(body),
            )
            .await?;
        answer.assert_error(401);
        answers.push(answer);
    }

    // The CLI with bad credentials: a listener and an admin command.
    let user = CliUser::new()?;
    let listen = user
        .run(&[
            "listen",
            "--relay",
            &relay.url(),
            "--api-key",
            &wrong_key,
            "-vv",
        ])
        .await?;
    listen.expect_code(3);
    let admin = user
        .run(&[
            "admin",
            "list-agents",
            "--relay",
            &relay.url(),
            "--admin-token",
            "e2e-admin-token-0123456780",
            "-vv",
        ])
        .await?;
    assert_ne!(
        admin.code(),
        0,
        "a wrong admin token fails: {}",
        admin.stderr
    );
    let events = user
        .run(&[
            "events",
            "--relay",
            &relay.url(),
            "--api-key",
            ADMIN_TOKEN,
            "-vv",
        ])
        .await?;
    assert_ne!(
        events.code(),
        0,
        "an admin token is no API key: {}",
        events.stderr
    );

    let sent: Vec<&str> = sent_signatures
        .iter()
        .chain(&bogus)
        .map(String::as_str)
        .chain(["c0ffeec0ffeec0ffee", "Q0FOQVJZLXNpZ25hdHVyZS1ub3QtdmFsaWQ="])
        .collect();
    for answer in &answers {
        assert_body_clean(answer, &canaries, &sent);
    }
    let relay_log = relay.stderr().lines();
    assert!(
        relay_log.iter().any(|l| l.contains("session opened")),
        "debug log captured"
    );
    assert_json_lines("relay", &relay_log);
    assert_dependencies_capped_at_info("relay", &relay_log);
    assert_no_canary("relay log", &relay_log, &canaries);
    for (source, lines) in [
        ("listener", listener.stderr().lines()),
        ("failing listen", split(&listen.stderr)),
        ("admin list-agents", split(&admin.stderr)),
        ("events", split(&events.stderr)),
    ] {
        // The listener was given the real key; the others a near miss or
        // the admin token, which they must not repeat either.
        assert_no_canary(source, &lines, &canaries);
        for line in &lines {
            assert!(
                !line.contains(&wrong_key),
                "{source} repeats the key it was given: {line}"
            );
        }
    }
    for line in &relay_log {
        for value in &sent {
            assert!(
                !line.contains(value),
                "the relay log shows a signature sent: {line}"
            );
        }
    }
    Ok(())
}

fn split(text: &str) -> Vec<String> {
    text.lines().map(str::to_owned).collect()
}

/// A body whose `type` holds CR, LF and ESC: the relay takes it as the
/// event type.
fn forging_body() -> Vec<u8> {
    let event_type = format!("ping\n{FORGED} 2026-01-01T00:00:00Z INFO fake\r\n{FORGED}\x1b[2J");
    serde_json::to_vec(&json!({ "type": event_type })).expect("serializes")
}

#[tokio::test]
async fn request_data_cannot_forge_json_log_lines() -> anyhow::Result<()> {
    let lines = drive_forgery("json").await?;
    assert_json_lines("relay (json)", &lines);
    Ok(())
}

/// The pretty log escapes agent-supplied text: the nack reason and the close
/// reason of a bad frame (serde's message, which quotes the unknown `type`)
/// are logged with `?`, so CR/LF/ESC in them cannot start a line.
#[tokio::test]
async fn request_data_cannot_forge_pretty_log_lines() -> anyhow::Result<()> {
    let lines = drive_forgery("pretty").await?;
    assert_pretty_records("relay (pretty)", &lines);
    Ok(())
}

/// Starts a relay logging in `format` at debug level, sends it an event
/// whose type holds CR/LF/ESC, and has a raw WebSocket agent nack it with a
/// multi-line reason, then send a frame whose unknown `type` holds a line
/// break. Returns the relay's stderr lines.
async fn drive_forgery(format: &str) -> anyhow::Result<Vec<String>> {
    let opts = RelayOpts::default()
        .args(["--log-format", format])
        .env("RUST_LOG", "debug");
    let (relay, agent) = relay_with_agent(opts, "forgery").await?;
    let id = accepted_id(
        &Sender::default()
            .post(&agent.webhook_url, &forging_body(), &[])
            .await?,
    );

    let ws_url = format!("ws://127.0.0.1:{}/api/v1/agent/connect", relay.port());
    let mut request = ws_url.into_client_request()?;
    request.headers_mut().insert(
        "authorization",
        format!("Bearer {}", agent.api_key).parse()?,
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(request).await?;
    let frame = tokio::time::timeout(WAIT, async {
        while let Some(message) = ws.next().await {
            if let Message::Text(text) = message?
                && let Ok(RelayMessage::Event(frame)) = RelayMessage::from_json(&text)
            {
                return anyhow::Ok(frame);
            }
        }
        anyhow::bail!("the session ended before the event")
    })
    .await??;
    assert_eq!(frame.id, id);
    assert!(frame.event_type.contains('\n'), "the type is kept as sent");
    let nack = AgentMessage::Nack {
        id: id.clone(),
        reason: format!("broke\n{FORGED} 2026-01-01T00:00:00Z INFO nack\r\x1b[31m"),
    };
    ws.send(Message::text(nack.to_json())).await?;
    let bad = json!({ "type": format!("ack\n{FORGED} 2026-01-01T00:00:00Z INFO frame") });
    ws.send(Message::text(bad.to_string())).await?;
    // The relay closes on the bad frame; its log lines exist once it says so.
    tokio::time::timeout(WAIT, async { while ws.next().await.is_some() {} }).await?;
    relay.wait_for_stderr("session closed", WAIT).await?;
    Ok(relay.stderr().lines())
}

/// `listen` shows the event type, which the webhook sender chose, with
/// control characters escaped: no new stderr line, no terminal escapes.
#[tokio::test]
async fn event_types_cannot_forge_listener_lines() -> anyhow::Result<()> {
    let (relay, agent) = relay_with_agent(RelayOpts::default(), "forgery-cli").await?;
    let sink = Sink::start().await?;
    let listener = Listener::ready(
        &relay.url(),
        &agent.api_key,
        &["--forward", &sink.host_path("/")],
    )
    .await?;
    Sender::default()
        .post(&agent.webhook_url, &forging_body(), &[])
        .await?;
    sink.wait_for(1, WAIT).await?;
    listener.stderr().wait_for("<-- 200", WAIT).await?;
    for line in listener.stderr().lines() {
        assert!(!line.starts_with(FORGED), "forged listener line {line:?}");
        assert!(
            !line.contains('\x1b'),
            "raw ESC in a listener line {line:?}"
        );
        assert!(!line.contains('\r'), "raw CR in a listener line {line:?}");
    }
    Ok(())
}

/// With `--log-format json` the "no agents yet" hint of an empty database
/// is a log record like any other, carrying the command to paste, so the
/// log stays JSON Lines.
#[tokio::test]
async fn first_steps_banner_is_json_in_json_mode() -> anyhow::Result<()> {
    let relay = Relay::start(RelayOpts::default().args(["--log-format", "json"])).await?;
    relay.create_agent("banner").await?;
    let lines = relay.stderr().lines();
    assert_json_lines("relay (json)", &lines);
    let hint = lines
        .iter()
        .map(|line| serde_json::from_str::<serde_json::Value>(line).expect("checked above"))
        .find(|record| {
            record["fields"]["message"].as_str()
                == Some("no agents yet; create one with create_agent")
        })
        .unwrap_or_else(|| panic!("no first-steps record in {lines:#?}"));
    let command = hint["fields"]["create_agent"].as_str().unwrap_or_default();
    assert!(
        command.starts_with("lobster-relay admin create-agent my-agent --relay http://127.0.0.1:"),
        "{hint}"
    );
    assert!(
        command.ends_with("--admin-token $RELAY_ADMIN_TOKEN"),
        "a configured token is not repeated: {hint}"
    );
    Ok(())
}
