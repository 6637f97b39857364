//! Push delivery to callback URLs: the real relay POSTs events to a local
//! HTTPS receiver (a test CA's certificate, trusted with
//! `--callback-ca-cert`, reached on loopback because
//! `--callback-allow-cidr 127.0.0.1/32` allows it), signed with the
//! agent's callback secret; retried by the retry policy; refused for every
//! forbidden address, at `PUT` for IP literals and at delivery for names
//! and redirects; and a connected `listen` takes precedence.

use anyhow::Context as _;
use lobster_e2e::pki::TestCa;
use lobster_e2e::{
    Answer, CliUser, Listener, Relay, RelayOpts, Sender, Sink, WAIT, accepted_id, eventually,
};
use reqwest::Method;
use serde_json::{Value, json};

const ENCRYPTION_KEY: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

/// A relay that may push to loopback, trusting `ca`, with fast retries.
async fn relay(ca: &TestCa, extra: &[&str]) -> anyhow::Result<(Relay, lobster_e2e::Agent)> {
    let ca_cert = ca.ca_cert.display().to_string();
    let mut args = vec![
        "--encryption-key",
        ENCRYPTION_KEY,
        "--callback-ca-cert",
        &ca_cert,
        "--retry-initial",
        "100ms",
        "--retry-max-delay",
        "200ms",
    ];
    args.extend_from_slice(extra);
    let opts = RelayOpts::default().args(args.iter().map(|a| a.to_string()));
    lobster_e2e::relay_with_agent(opts, "pushed").await
}

async fn put_callback(relay: &Relay, api_key: &str, url: &str) -> anyhow::Result<Answer> {
    relay
        .request(
            Method::PUT,
            "/api/v1/agent/callback",
            Some(api_key),
            Some(json!({ "url": url })),
        )
        .await
}

/// `PUT`s `url`, expects `200`; returns the signing secret.
async fn set_callback(relay: &Relay, api_key: &str, url: &str) -> anyhow::Result<String> {
    let answer = put_callback(relay, api_key, url).await?;
    anyhow::ensure!(
        answer.status == 200,
        "PUT callback: {} {}",
        answer.status,
        answer.text
    );
    let secret = answer.json["signing_secret"]
        .as_str()
        .context("signing_secret")?
        .to_owned();
    Ok(secret)
}

/// The event's attempt history, waiting until `done` holds for it.
async fn wait_history(
    relay: &Relay,
    api_key: &str,
    id: &str,
    what: &str,
    done: impl Fn(&[Value]) -> bool,
) -> anyhow::Result<Vec<Value>> {
    eventually(what, WAIT, || async {
        let event = relay.event(api_key, id).await?;
        let history = event["attempt_history"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        anyhow::ensure!(done(&history), "{event}");
        Ok(history)
    })
    .await
}

#[tokio::test]
async fn events_are_pushed_byte_for_byte_with_a_signature_the_receiver_can_verify()
-> anyhow::Result<()> {
    let ca = TestCa::new("callback CA")?;
    let receiver = Sink::start_tls(&ca.server_cert(1)?).await?;
    let (relay, agent) = relay(&ca, &["--callback-allow-cidr", "127.0.0.1/32"]).await?;
    let url = receiver.url("/hooks/secret-path-7f3a");
    let secret = set_callback(&relay, &agent.api_key, &url).await?;
    assert!(secret.starts_with("whsec_"), "{secret}");

    let shown = relay
        .agent_get(&agent.api_key, "/api/v1/agent/callback")
        .await?;
    assert_eq!(shown.status, 200, "{}", shown.text);
    assert_eq!(shown.json["url"], url.as_str());
    assert!(
        !shown.text.contains(&secret),
        "the secret is shown once: {}",
        shown.text
    );

    // Not JSON, not UTF-8: the receiver must get exactly these bytes.
    let body: Vec<u8> = b"\x00\xffraw bytes {\"a\": 1}\r\n\x80".to_vec();
    let id = accepted_id(
        &Sender::default()
            .post(
                &agent.webhook_url,
                &body,
                &[
                    ("X-Custom", "kept as sent"),
                    ("Content-Type", "application/octet-stream"),
                ],
            )
            .await?,
    );
    let requests = receiver.wait_for(1, WAIT).await?;
    let request = &requests[0];
    assert_eq!(request.method, "POST");
    assert_eq!(request.path, "/hooks/secret-path-7f3a");
    assert_eq!(request.body.to_vec(), body, "the body is byte for byte");
    assert_eq!(request.header("x-custom"), Some("kept as sent"));
    assert_eq!(
        request.header("content-type"),
        Some("application/octet-stream")
    );
    assert_eq!(request.header("webhook-id"), Some(id.as_str()));
    assert_eq!(request.event_id(), Some(id.as_str()));
    assert_eq!(request.attempt(), Some(1));
    // Verified here with the harness's own HMAC, not the relay's code.
    let timestamp: i64 = request
        .header("webhook-timestamp")
        .context("webhook-timestamp")?
        .parse()?;
    assert!((timestamp - lobster_e2e::now_unix()).abs() < 60);
    let expected = Sender::new(&secret).sign(&id, timestamp, &body);
    assert_eq!(
        request.header_all("webhook-signature"),
        [expected.as_str()],
        "one signature, the relay's (the sender's is replaced)"
    );
    let delivered = relay
        .wait_event_status(&agent.api_key, &id, "delivered", WAIT)
        .await?;
    let history = delivered["attempt_history"].as_array().context("history")?;
    assert_eq!(history.len(), 1, "{delivered}");
    assert_eq!(history[0]["outcome"], "delivered");

    // Stored encrypted: neither the URL nor the secret is in the database.
    for file in ["relay.db", "relay.db-wal"] {
        let bytes = std::fs::read(relay.data_dir().join(file)).unwrap_or_default();
        let text = String::from_utf8_lossy(&bytes);
        assert!(!text.contains("secret-path-7f3a"), "{file} holds the URL");
        assert!(!text.contains(&secret[6..]), "{file} holds the secret");
    }

    let cleared = relay
        .request(
            Method::DELETE,
            "/api/v1/agent/callback",
            Some(&agent.api_key),
            None,
        )
        .await?;
    assert_eq!(cleared.status, 204, "{}", cleared.text);
    let gone = relay
        .agent_get(&agent.api_key, "/api/v1/agent/callback")
        .await?;
    assert_eq!(gone.assert_error(404), "callback_not_set");
    Ok(())
}

#[tokio::test]
async fn a_500_is_retried_by_the_retry_policy_and_recorded() -> anyhow::Result<()> {
    let ca = TestCa::new("callback CA")?;
    let receiver = Sink::start_tls(&ca.server_cert(1)?).await?;
    receiver.respond_with(|_, earlier| if earlier == 0 { 500 } else { 200 });
    let (relay, agent) = relay(&ca, &["--callback-allow-cidr", "127.0.0.1/32"]).await?;
    set_callback(&relay, &agent.api_key, &receiver.url("/")).await?;
    let id = accepted_id(
        &Sender::default()
            .post(&agent.webhook_url, br#"{"type":"retry.me"}"#, &[])
            .await?,
    );
    relay
        .wait_event_status(&agent.api_key, &id, "delivered", WAIT)
        .await?;
    let requests = receiver.requests();
    let attempts: Vec<(u16, Option<u32>)> =
        requests.iter().map(|r| (r.status, r.attempt())).collect();
    assert_eq!(attempts, [(500, Some(1)), (200, Some(2))]);
    let history = relay.event(&agent.api_key, &id).await?["attempt_history"].clone();
    let outcomes: Vec<(&str, &str)> = history
        .as_array()
        .context("history")?
        .iter()
        .map(|a| {
            (
                a["outcome"].as_str().unwrap_or(""),
                a["error"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        outcomes,
        [
            ("nacked", "callback answered 500 Internal Server Error"),
            ("delivered", "")
        ],
        "{history}"
    );
    Ok(())
}

#[tokio::test]
async fn several_urls_are_tried_in_order_until_one_answers_2xx() -> anyhow::Result<()> {
    let ca = TestCa::new("callback CA")?;
    let primary = Sink::start_tls(&ca.server_cert(1)?).await?;
    primary.respond_with(|_, _| 503);
    let standby = Sink::start_tls(&ca.server_cert(2)?).await?;
    let (relay, agent) = relay(&ca, &["--callback-allow-cidr", "127.0.0.1/32"]).await?;
    let urls = [primary.url("/primary"), standby.url("/standby")];
    let put = relay
        .request(
            Method::PUT,
            "/api/v1/agent/callback",
            Some(&agent.api_key),
            Some(json!({ "urls": urls })),
        )
        .await?;
    assert_eq!(put.status, 200, "{}", put.text);
    assert_eq!(put.json["urls"], json!(urls));
    assert_eq!(put.json["url"], urls[0].as_str());
    let secret = put.json["signing_secret"].as_str().context("secret")?;
    let shown = relay
        .agent_get(&agent.api_key, "/api/v1/agent/callback")
        .await?;
    assert_eq!(shown.json["urls"], json!(urls), "{}", shown.text);

    let body = br#"{"type":"fail.over"}"#;
    let id = accepted_id(
        &Sender::default()
            .post(&agent.webhook_url, body, &[])
            .await?,
    );
    relay
        .wait_event_status(&agent.api_key, &id, "delivered", WAIT)
        .await?;
    let event = relay.event(&agent.api_key, &id).await?;
    assert_eq!(event["attempts"], 1, "one attempt tries both: {event}");
    assert_eq!(primary.requests()[0].event_id(), Some(id.as_str()));
    let got = standby.wait_for(1, WAIT).await?;
    assert_eq!(got[0].path, "/standby");
    assert_eq!(got[0].body.to_vec(), body.to_vec());
    let timestamp: i64 = got[0].header("webhook-timestamp").context("ts")?.parse()?;
    assert_eq!(
        got[0].header("webhook-signature"),
        Some(Sender::new(secret).sign(&id, timestamp, body).as_str()),
        "every URL gets the same signature"
    );

    // All of them failing is one nack, each URL's reason by position (the
    // URLs themselves are only kept sealed).
    standby.respond_with(|_, _| 500);
    let id = accepted_id(
        &Sender::default()
            .post(&agent.webhook_url, br#"{"type":"all.down"}"#, &[])
            .await?,
    );
    let history = wait_history(&relay, &agent.api_key, &id, "a nacked attempt", |h| {
        h.iter().any(|a| a["outcome"] == "nacked")
    })
    .await?;
    let nacked = history.iter().find(|a| a["outcome"] == "nacked");
    let reason = nacked.and_then(|a| a["error"].as_str()).unwrap_or_default();
    assert!(
        reason.starts_with("URL 1: callback answered 503")
            && reason.contains("; URL 2: callback answered 500"),
        "{reason}"
    );
    assert!(
        !reason.contains("127.0.0.1"),
        "no URL in the clear: {reason}"
    );

    for (body, code, says) in [
        (json!({ "urls": [] }), "invalid_callback_url", "give url"),
        (
            json!({ "urls": [urls[0], urls[0]] }),
            "invalid_callback_url",
            "listed twice",
        ),
        (
            json!({ "urls": (0..6).map(|i| format!("https://{i}.example/")).collect::<Vec<_>>() }),
            "invalid_callback_url",
            "at most 5",
        ),
        (
            json!({ "url": urls[0], "urls": [urls[1]] }),
            "invalid_callback_url",
            "not both",
        ),
        (
            json!({ "urls": [urls[0], "https://10.0.0.1/"] }),
            "callback_address_forbidden",
            "URL 2",
        ),
    ] {
        let answer = relay
            .request(
                Method::PUT,
                "/api/v1/agent/callback",
                Some(&agent.api_key),
                Some(body.clone()),
            )
            .await?;
        assert_eq!(answer.status, 400, "{body}: {}", answer.text);
        assert_eq!(
            answer.json["error"]["code"], code,
            "{body}: {}",
            answer.text
        );
        assert!(answer.text.contains(says), "{body}: {}", answer.text);
    }
    // A refused list leaves the one set before in place.
    let shown = relay
        .agent_get(&agent.api_key, "/api/v1/agent/callback")
        .await?;
    assert_eq!(shown.json["urls"], json!(urls));
    Ok(())
}

#[tokio::test]
async fn forbidden_addresses_are_refused_when_the_callback_is_set() -> anyhow::Result<()> {
    let ca = TestCa::new("callback CA")?;
    // 127.0.0.1 is allowed, as in the other tests: the rest stays refused.
    let (relay, agent) = relay(&ca, &["--callback-allow-cidr", "127.0.0.1/32"]).await?;
    let mut matrix = Vec::new();
    for (url, range) in [
        ("https://127.0.0.2/", "loopback"),
        ("https://[::1]/", "loopback"),
        ("https://10.0.0.1/hooks", "private"),
        ("https://10.255.1.2:8443/", "private"),
        (
            "https://169.254.169.254/latest/meta-data/",
            "cloud metadata",
        ),
        ("https://[::ffff:127.0.0.1]/", "IPv4-mapped"),
        ("https://192.168.0.10/", "private"),
        ("https://100.64.0.1/", "CGNAT"),
        ("https://[fe80::1]/", "link-local"),
        ("https://224.0.0.1/", "multicast"),
        ("https://2130706434/", "loopback"),
    ] {
        let answer = put_callback(&relay, &agent.api_key, url).await?;
        let code = answer.assert_error(400);
        assert_eq!(code, "callback_address_forbidden", "{url}: {}", answer.text);
        let message = answer.json["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        assert!(message.contains(range), "{url}: {message}");
        matrix.push(format!("{url} -> {code}"));
    }
    eprintln!("SSRF matrix at PUT:\n{}", matrix.join("\n"));
    let plain = put_callback(&relay, &agent.api_key, "http://example.com/").await?;
    assert_eq!(plain.assert_error(400), "invalid_callback_url");
    assert!(plain.text.contains("https"), "{}", plain.text);
    let none = relay
        .agent_get(&agent.api_key, "/api/v1/agent/callback")
        .await?;
    assert_eq!(
        none.assert_error(404),
        "callback_not_set",
        "nothing was stored"
    );

    // Without an encryption key nothing is stored at all.
    let (bare, bare_agent) = lobster_e2e::relay_with_agent(RelayOpts::default(), "no-key").await?;
    let refused = put_callback(&bare, &bare_agent.api_key, "https://example.com/").await?;
    assert_eq!(refused.assert_error(409), "encryption_key_required");
    Ok(())
}

#[tokio::test]
async fn a_name_resolving_to_loopback_is_refused_at_delivery_and_recorded() -> anyhow::Result<()> {
    let ca = TestCa::new("callback CA")?;
    let receiver = Sink::start_tls(&ca.server_cert(1)?).await?;
    // No --callback-allow-cidr: loopback is forbidden.
    let (relay, agent) = relay(&ca, &["--retry-max-attempts", "2"]).await?;
    // The receiver's own address, as an IP literal, is refused at once.
    let literal = put_callback(&relay, &agent.api_key, &receiver.url("/hooks")).await?;
    assert_eq!(literal.assert_error(400), "callback_address_forbidden");
    assert!(
        literal.text.contains("127.0.0.1 is a loopback address"),
        "{}",
        literal.text
    );
    // Its name passes registration and is refused when resolved.
    let url = format!("https://localhost:{}/hooks", receiver.port());
    set_callback(&relay, &agent.api_key, &url).await?;
    let id = accepted_id(
        &Sender::default()
            .post(&agent.webhook_url, br#"{"type":"ssrf"}"#, &[])
            .await?,
    );
    let failed = relay
        .wait_event_status(&agent.api_key, &id, "failed", WAIT)
        .await?;
    let history = failed["attempt_history"].as_array().context("history")?;
    assert_eq!(history.len(), 2, "{failed}");
    for attempt in history {
        assert_eq!(attempt["outcome"], "nacked", "{failed}");
        let error = attempt["error"].as_str().unwrap_or("");
        eprintln!("refused at delivery: {error}");
        assert!(
            error.contains("localhost resolves only to refused addresses")
                && error.contains("loopback")
                && !error.contains("/hooks"),
            "{error}"
        );
    }
    assert!(receiver.is_empty(), "the receiver was never reached");
    Ok(())
}

#[tokio::test]
async fn a_redirect_to_loopback_is_not_followed() -> anyhow::Result<()> {
    let ca = TestCa::new("callback CA")?;
    let receiver = Sink::start_tls(&ca.server_cert(1)?).await?;
    let inner = Sink::start_tls(&ca.server_cert(2)?).await?;
    receiver.respond_with(|_, _| 302);
    receiver.redirect_to(&inner.url("/admin"));
    let (relay, agent) = relay(
        &ca,
        &[
            "--callback-allow-cidr",
            "127.0.0.1/32",
            "--retry-max-attempts",
            "1",
        ],
    )
    .await?;
    set_callback(&relay, &agent.api_key, &receiver.url("/")).await?;
    let id = accepted_id(
        &Sender::default()
            .post(&agent.webhook_url, br#"{"type":"redirect"}"#, &[])
            .await?,
    );
    relay
        .wait_event_status(&agent.api_key, &id, "failed", WAIT)
        .await?;
    let history = wait_history(&relay, &agent.api_key, &id, "the nack", |h| !h.is_empty()).await?;
    assert_eq!(history[0]["outcome"], "nacked");
    assert_eq!(
        history[0]["error"],
        "callback answered 302 Found (redirects are not followed)"
    );
    assert_eq!(receiver.len(), 1);
    assert!(inner.is_empty(), "the redirect target was never called");
    Ok(())
}

#[tokio::test]
async fn a_connected_listen_takes_precedence_over_the_callback() -> anyhow::Result<()> {
    let ca = TestCa::new("callback CA")?;
    let receiver = Sink::start_tls(&ca.server_cert(1)?).await?;
    let (relay, agent) = relay(&ca, &["--callback-allow-cidr", "127.0.0.1/32"]).await?;
    set_callback(&relay, &agent.api_key, &receiver.url("/")).await?;
    let state = |pushing: bool, online: u64| {
        let relay = &relay;
        let key = agent.api_key.clone();
        async move {
            let what = format!("pushing={pushing} online_sessions={online}");
            eventually(&what, WAIT, || async {
                let shown = relay.agent_get(&key, "/api/v1/agent/callback").await?;
                anyhow::ensure!(
                    shown.json["pushing"] == pushing && shown.json["online_sessions"] == online,
                    "{}",
                    shown.text
                );
                Ok(())
            })
            .await
        }
    };
    state(true, 0).await?;

    let mut listener = Listener::ready(&relay.url(), &agent.api_key, &[]).await?;
    state(false, 1).await?;
    let sender = Sender::default();
    let to_listener = accepted_id(
        &sender
            .post(&agent.webhook_url, br#"{"type":"while.connected"}"#, &[])
            .await?,
    );
    let line = listener.next_stdout_line(WAIT).await?;
    let event: Value = serde_json::from_str(&line)?;
    assert_eq!(event["id"], to_listener.as_str());
    relay
        .wait_event_status(&agent.api_key, &to_listener, "delivered", WAIT)
        .await?;

    listener.kill9().await?;
    state(true, 0).await?;
    let to_callback = accepted_id(
        &sender
            .post(&agent.webhook_url, br#"{"type":"after.disconnect"}"#, &[])
            .await?,
    );
    let requests = receiver.wait_for(1, WAIT).await?;
    let ids: Vec<&str> = requests.iter().filter_map(|r| r.event_id()).collect();
    assert_eq!(
        ids,
        [to_callback.as_str()],
        "only the event sent while no session was connected is pushed"
    );
    relay
        .wait_event_status(&agent.api_key, &to_callback, "delivered", WAIT)
        .await?;
    Ok(())
}

#[tokio::test]
async fn the_cli_sets_shows_and_clears_the_callback() -> anyhow::Result<()> {
    let ca = TestCa::new("callback CA")?;
    let receiver = Sink::start_tls(&ca.server_cert(1)?).await?;
    let (relay, agent) = relay(&ca, &["--callback-allow-cidr", "127.0.0.1/32"]).await?;
    let user = CliUser::new()?
        .env("LOBSTER_RELAY_URL", &relay.url())
        .env("LOBSTER_RELAY_API_KEY", &agent.api_key);
    let url = receiver.url("/cli-hooks");

    let set = user.run(&["callback", "set", &url]).await?;
    set.expect_code(0);
    let secret = set.stdout.trim().to_owned();
    assert!(
        secret.starts_with("whsec_") && !secret.contains('\n'),
        "stdout is the secret alone: {}",
        set.stdout
    );
    assert!(set.stderr.contains("shown once"), "{}", set.stderr);

    let id = accepted_id(
        &Sender::default()
            .post(&agent.webhook_url, br#"{"type":"via.cli"}"#, &[])
            .await?,
    );
    let requests = receiver.wait_for(1, WAIT).await?;
    let timestamp: i64 = requests[0]
        .header("webhook-timestamp")
        .context("timestamp")?
        .parse()?;
    assert_eq!(
        requests[0].header("webhook-signature"),
        Some(
            Sender::new(&secret)
                .sign(&id, timestamp, br#"{"type":"via.cli"}"#)
                .as_str()
        ),
        "the secret the CLI printed verifies the push"
    );

    let shown = user.run(&["callback", "show"]).await?;
    shown.expect_code(0);
    assert!(shown.stdout.contains(&url), "{}", shown.stdout);
    assert!(!shown.stdout.contains(&secret), "{}", shown.stdout);
    let json = user.run(&["callback", "show", "--json"]).await?;
    assert_eq!(json.expect_code(0).json()["url"], url.as_str());

    let standby = receiver.url("/cli-standby");
    let both = user.run(&["callback", "set", &url, &standby]).await?;
    both.expect_code(0);
    assert!(
        both.stderr.contains(&format!("{url}, then {standby}")),
        "{}",
        both.stderr
    );
    let shown = user.run(&["callback", "show"]).await?;
    assert!(
        shown
            .expect_code(0)
            .stdout
            .contains(&format!("urls:     1. {url}\n          2. {standby}")),
        "{}",
        shown.stdout
    );
    let none = user.run(&["callback", "set"]).await?;
    none.expect_code(2);

    user.run(&["callback", "clear"]).await?.expect_code(0);
    let gone = user.run(&["callback", "show"]).await?;
    gone.expect_code(1);
    assert!(
        gone.stderr.contains("callback_not_set") && gone.stderr.contains("callback set"),
        "says what to do: {}",
        gone.stderr
    );
    let forbidden = user.run(&["callback", "set", "https://10.0.0.1/"]).await?;
    forbidden.expect_code(1);
    assert!(
        forbidden.stderr.contains("private address")
            && forbidden.stderr.contains("--callback-allow-cidr"),
        "{}",
        forbidden.stderr
    );
    Ok(())
}

#[tokio::test]
async fn the_callback_survives_a_relay_sigkill_and_its_events_are_pushed_after()
-> anyhow::Result<()> {
    let ca = TestCa::new("callback CA")?;
    let receiver = Sink::start_tls(&ca.server_cert(1)?).await?;
    receiver.respond_with(|_, _| 503);
    // On PostgreSQL a killed instance's leases are not released by the next
    // one (another instance may hold them): they return when the ack
    // timeout passes. A short one keeps the test from waiting out 30 s.
    let (mut relay, agent) = relay(
        &ca,
        &[
            "--callback-allow-cidr",
            "127.0.0.1/32",
            "--ack-timeout",
            "2s",
        ],
    )
    .await?;
    let secret = set_callback(&relay, &agent.api_key, &receiver.url("/")).await?;
    let before = accepted_id(
        &Sender::default()
            .post(&agent.webhook_url, br#"{"type":"before.kill"}"#, &[])
            .await?,
    );
    receiver.wait_for(1, WAIT).await?;
    relay.kill9().await?;
    receiver.respond_with(|_, _| 200);
    relay.restart().await?;
    // Read back from the database (encrypted) at start-up.
    relay
        .wait_event_status(&agent.api_key, &before, "delivered", WAIT)
        .await?;
    let after = accepted_id(
        &Sender::default()
            .post(&agent.webhook_url, br#"{"type":"after.restart"}"#, &[])
            .await?,
    );
    relay
        .wait_event_status(&agent.api_key, &after, "delivered", WAIT)
        .await?;
    let last = receiver.requests().pop().context("a request")?;
    assert_eq!(last.event_id(), Some(after.as_str()));
    let timestamp: i64 = last.header("webhook-timestamp").context("ts")?.parse()?;
    assert_eq!(
        last.header("webhook-signature"),
        Some(
            Sender::new(&secret)
                .sign(&after, timestamp, br#"{"type":"after.restart"}"#)
                .as_str()
        ),
        "the same secret signs after the restart"
    );
    Ok(())
}

/// A figure, not a check: how fast push delivery drains a backlog to a
/// local HTTPS receiver (the events are stored first, then the callback
/// is set). `cargo test -p lobster-e2e --test callbacks -- --ignored
/// --nocapture push_throughput`; `PUSH_BENCH_HTTP=1` measures against a
/// plain-HTTP receiver (`--allow-http-callbacks`) to leave TLS out.
#[tokio::test]
#[ignore = "a measurement; run by hand"]
async fn push_throughput() -> anyhow::Result<()> {
    const EVENTS: usize = 2000;
    let ca = TestCa::new("callback CA")?;
    let plain = std::env::var_os("PUSH_BENCH_HTTP").is_some();
    let receiver = if plain {
        Sink::start().await?
    } else {
        Sink::start_tls(&ca.server_cert(1)?).await?
    };
    let (relay, agent) = relay(
        &ca,
        &[
            "--callback-allow-cidr",
            "127.0.0.1/32",
            "--agent-rate-limit",
            "100000/s",
            "--allow-http-callbacks",
        ],
    )
    .await?;
    let mut posts = tokio::task::JoinSet::new();
    for worker in 0..16 {
        let url = agent.webhook_url.clone();
        posts.spawn(async move {
            let sender = Sender::default();
            for n in (worker..EVENTS).step_by(16) {
                let body = format!(r#"{{"type":"burst","n":{n}}}"#);
                accepted_id(&sender.post(&url, body.as_bytes(), &[]).await?);
            }
            anyhow::Ok(())
        });
    }
    while let Some(done) = posts.join_next().await {
        done??;
    }
    let started = std::time::Instant::now();
    set_callback(&relay, &agent.api_key, &receiver.url("/")).await?;
    receiver
        .wait_for(EVENTS, std::time::Duration::from_secs(120))
        .await?;
    let drained = started.elapsed();
    eprintln!(
        "push throughput ({}): a backlog of {EVENTS} events POSTed to the callback in {drained:?}: {:.0} events/s",
        if plain { "http" } else { "https" },
        EVENTS as f64 / drained.as_secs_f64()
    );
    Ok(())
}
