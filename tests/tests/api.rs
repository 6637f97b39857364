//! The admin and agent HTTP APIs: authentication, the fields a user reads,
//! and revocation closing live sessions.

use std::time::Duration;

use anyhow::Context as _;

use lobster_e2e::{
    ADMIN_TOKEN, Listener, Relay, RelayOpts, Sender, WAIT, accepted_id, eventually,
    relay_with_agent,
};
use reqwest::Method;
use serde_json::{Value, json};

/// How soon a connected agent's `last_seen` must be listed (the batch
/// writer runs every second).
const LISTED_WITHIN: Duration = Duration::from_secs(3);

/// How soon a revoked listener must be gone.
const REVOKE_EXIT: Duration = Duration::from_secs(10);

#[tokio::test]
async fn the_admin_api_wants_the_admin_token() -> anyhow::Result<()> {
    let relay = Relay::start(RelayOpts::default()).await?;
    let body = || Some(json!({"name": "intruder", "workspace": "default"}));
    for token in [None, Some("wrong-token"), Some("")] {
        let created = relay
            .request(Method::POST, "/api/v1/admin/agents", token, body())
            .await?;
        created.assert_error(401);
        let listed = relay
            .request(Method::GET, "/api/v1/admin/agents", token, None)
            .await?;
        listed.assert_error(401);
    }

    let agent = relay.create_agent("survivor").await?;
    let path = format!("/api/v1/admin/agents/{}", agent.agent_id);
    relay
        .request(Method::DELETE, &path, Some("wrong-token"), None)
        .await?
        .assert_error(401);
    let me = relay.agent_get(&agent.api_key, "/api/v1/agent/me").await?;
    assert_eq!(
        me.status, 200,
        "a refused revoke leaves the agent working: {}",
        me.text
    );
    Ok(())
}

#[tokio::test]
async fn create_agent_shows_the_key_once_and_lists_the_agent() -> anyhow::Result<()> {
    let relay = Relay::start(RelayOpts::default()).await?;
    let agent = relay.create_agent("laptop").await?;
    assert_eq!(agent.name, "laptop");
    assert_eq!(agent.created["workspace"], "default");
    let relay_id = &agent.relay_id;
    assert!(
        relay_id.len() >= 22,
        "a relay id carries at least 128 random bits: {relay_id}"
    );
    assert!(
        relay_id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'),
        "relay ids are URL-safe: {relay_id}"
    );
    assert!(
        agent
            .reported_webhook_url
            .ends_with(&format!("/api/v1/webhook/{relay_id}")),
        "{}",
        agent.created
    );
    assert_ne!(
        relay.create_agent("phone").await?.relay_id,
        *relay_id,
        "each agent has its own relay id"
    );

    let listed = relay
        .request(Method::GET, "/api/v1/admin/agents", Some(ADMIN_TOKEN), None)
        .await?;
    assert_eq!(listed.status, 200, "{}", listed.text);
    let agents = match &listed.json {
        Value::Array(list) => list.clone(),
        other => other["agents"].as_array().cloned().unwrap_or_default(),
    };
    let entry = agents
        .iter()
        .find(|a| a["agent_id"] == agent.agent_id.as_str())
        .unwrap_or_else(|| panic!("agent missing from the listing: {}", listed.text));
    assert_eq!(entry["online_sessions"], 0, "{entry}");
    assert!(
        !listed.text.contains(&agent.api_key),
        "the API key is shown only at creation"
    );
    Ok(())
}

#[tokio::test]
async fn agent_me_answers_the_contract_fields_and_wants_the_key() -> anyhow::Result<()> {
    let (relay, agent) = relay_with_agent(RelayOpts::default(), "me").await?;
    relay
        .agent_get("", "/api/v1/agent/me")
        .await?
        .assert_error(401);
    relay
        .agent_get("lr_not_a_real_key", "/api/v1/agent/me")
        .await?
        .assert_error(401);
    relay
        .agent_get(ADMIN_TOKEN, "/api/v1/agent/me")
        .await?
        .assert_error(401);
    let anonymous = relay
        .request(Method::GET, "/api/v1/agent/me", None, None)
        .await?;
    anonymous.assert_error(401);

    let sender = Sender::default();
    for n in 0..2 {
        accepted_id(
            &sender
                .post(
                    &agent.webhook_url,
                    format!(r#"{{"n":{n}}}"#).as_bytes(),
                    &[],
                )
                .await?,
        );
    }
    let me = relay.agent_get(&agent.api_key, "/api/v1/agent/me").await?;
    assert_eq!(me.status, 200, "{}", me.text);
    let me = me.json;
    assert_eq!(me["agent_id"], agent.agent_id.as_str());
    assert_eq!(me["name"], "me");
    assert_eq!(me["workspace"], "default");
    assert_eq!(me["relay_id"], agent.relay_id.as_str());
    assert_eq!(me["webhook_url"], agent.reported_webhook_url.as_str());
    assert_eq!(
        me["pending_events"], 2,
        "two events wait for a listener: {me}"
    );
    assert_eq!(me["online_sessions"], 0, "{me}");
    Ok(())
}

#[tokio::test]
async fn revoking_an_agent_ends_its_listener_with_exit_3_and_kills_the_key() -> anyhow::Result<()> {
    let (relay, agent) = relay_with_agent(RelayOpts::default(), "revoked").await?;
    let mut listener = Listener::ready(&relay.url(), &agent.api_key, &["--print"]).await?;
    relay.revoke(&agent.agent_id).await?;

    let status = listener.wait_exit(REVOKE_EXIT).await?;
    assert_eq!(
        status.code(),
        Some(3),
        "revocation is an auth failure; stderr:\n{}",
        listener.stderr().tail(10)
    );
    relay
        .agent_get(&agent.api_key, "/api/v1/agent/me")
        .await?
        .assert_error(401);

    // It stays out: a new listener with the old key fails the same way.
    let mut again = Listener::start(&relay.url(), &agent.api_key, &["--print"]).await?;
    assert_eq!(again.wait_exit(WAIT).await?.code(), Some(3));
    Ok(())
}

/// `POST /api/v1/agent/test-event` is stored like a webhook, so it costs
/// like one: signed as the agent's senders sign (an app that verifies
/// signatures accepts it), rate limited per agent, and capped in size with
/// a JSON 413.
#[tokio::test]
async fn test_events_are_signed_rate_limited_and_capped() -> anyhow::Result<()> {
    use lobster_shared::signature::{Scheme, SigningKey, verify};

    let opts = RelayOpts::default().args(["--agent-rate-limit", "5/m"]);
    let (relay, agent) = relay_with_agent(opts, "tester").await?;
    let sink = lobster_e2e::Sink::start().await?;
    let _listener =
        Listener::ready(&relay.url(), &agent.api_key, &["--forward", &sink.url("/")]).await?;
    let test_event = |data: Value| {
        relay.request(
            Method::POST,
            "/api/v1/agent/test-event",
            Some(&agent.api_key),
            Some(json!({"event_type": "test.signed", "data": data})),
        )
    };
    let created = test_event(json!({"n": 1})).await?;
    assert_eq!(created.status, 202, "{}", created.text);

    let forwarded = sink.wait_for(1, WAIT).await?;
    let request = &forwarded[0];
    let mut headers = http::HeaderMap::new();
    for name in ["webhook-id", "webhook-timestamp", "webhook-signature"] {
        let value = request
            .header(name)
            .unwrap_or_else(|| panic!("the test event carries {name}"));
        headers.insert(name, value.parse()?);
    }
    let key = SigningKey::parse_for(Scheme::StandardWebhooks, &lobster_e2e::webhook_secret())?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs() as i64;
    verify(
        Scheme::StandardWebhooks,
        &[key],
        &headers,
        &request.body,
        now,
    )
    .expect("the app can verify a test event with the workspace secret");

    // Over 64 KiB: a JSON 413, nothing stored (the burst allows more).
    let big = test_event(json!({"blob": "x".repeat(100 * 1024)})).await?;
    assert_eq!(big.assert_error(413), "payload_too_large");
    // Past axum's 2 MB request limit the relay answers before reading the
    // whole body and closes the connection, so the client may lose the
    // race to read the answer: retry on a fresh connection until it does.
    let huge_body =
        json!({"event_type": "test.signed", "data": {"blob": "x".repeat(3 * 1024 * 1024)}});
    let mut huge = None;
    for _ in 0..5 {
        let sent = reqwest::Client::new()
            .post(format!("{}/api/v1/agent/test-event", relay.url()))
            .bearer_auth(&agent.api_key)
            .json(&huge_body)
            .send()
            .await;
        if let Ok(response) = sent {
            huge = Some(response);
            break;
        }
    }
    let huge = huge.context("no answer to a 3 MiB test event in 5 tries")?;
    assert_eq!(huge.status().as_u16(), 413);
    let body: Value = huge.json().await?;
    assert_eq!(body["error"]["code"], "payload_too_large", "{body}");

    // The agent's rate limit (5/m, burst 10) covers test events too.
    let mut statuses = Vec::new();
    for n in 0..12 {
        statuses.push(test_event(json!({"n": n})).await?.status);
    }
    assert!(statuses.contains(&429), "{statuses:?}");
    Ok(())
}

/// Every error is the JSON error body, query strings included: a repeated
/// or malformed parameter used to get axum's plain text.
#[tokio::test]
async fn unreadable_query_strings_get_the_json_error_body() -> anyhow::Result<()> {
    let (relay, agent) = relay_with_agent(RelayOpts::default(), "queries").await?;
    for path in [
        "/api/v1/agent/events?limit=1&limit=2",
        "/api/v1/agent/events?limit=lots",
        "/api/v1/agent/events?status=nope",
    ] {
        let answer = relay.agent_get(&agent.api_key, path).await?;
        let code = answer.assert_error(400);
        assert!(
            ["invalid_query", "invalid_limit", "invalid_status"].contains(&code.as_str()),
            "{path}: {code}"
        );
    }
    Ok(())
}

/// Requests hyper cannot parse never reach the router: hyper answers them
/// itself. They get the JSON error body too (they used to be empty).
#[tokio::test]
async fn unparsable_requests_get_the_json_error_body() -> anyhow::Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let relay = Relay::start(RelayOpts::default()).await?;
    let addr = relay.url().trim_start_matches("http://").to_owned();
    let many_headers: String = (0..200).map(|n| format!("x-h{n}: y\r\n")).collect();
    let cases = [
        ("garbage".to_owned(), 400, "bad_request"),
        (
            "GET /healthz HTTP/1.1\r\nhost: x\r\nbad header: y\r\n\r\n".to_owned(),
            400,
            "bad_request",
        ),
        (
            format!("GET /{} HTTP/1.1\r\nhost: x\r\n\r\n", "a".repeat(70_000)),
            414,
            "uri_too_long",
        ),
        (
            format!("GET /healthz HTTP/1.1\r\nhost: x\r\n{many_headers}\r\n"),
            431,
            "headers_too_large",
        ),
    ];
    for (request, status, code) in cases {
        let mut socket = tokio::net::TcpStream::connect(&addr).await?;
        // hyper may answer (and close) before it has read it all.
        let _ = socket
            .write_all(format!("{request}\r\n\r\n").as_bytes())
            .await;
        let mut answer = Vec::new();
        tokio::time::timeout(WAIT, socket.read_to_end(&mut answer))
            .await
            .context("no answer")??;
        let answer = String::from_utf8_lossy(&answer);
        let (head, body) = answer.split_once("\r\n\r\n").context("no head")?;
        assert!(head.starts_with(&format!("HTTP/1.1 {status} ")), "{head}");
        assert!(head.contains("content-type: application/json"), "{head}");
        let body: Value = serde_json::from_str(body).with_context(|| format!("{answer}"))?;
        assert_eq!(body["error"]["code"], code, "{body}");
    }
    Ok(())
}

/// `last_seen` of one agent in the admin listing, as RFC 3339 text.
async fn listed_last_seen(relay: &Relay, agent_id: &str) -> anyhow::Result<Value> {
    let listed = relay
        .request(Method::GET, "/api/v1/admin/agents", Some(ADMIN_TOKEN), None)
        .await?;
    anyhow::ensure!(listed.status == 200, "{}", listed.text);
    let entry = listed.json["agents"]
        .as_array()
        .and_then(|agents| agents.iter().find(|a| a["agent_id"] == agent_id))
        .with_context(|| format!("agent missing from the listing: {}", listed.text))?;
    Ok(entry["last_seen"].clone())
}

#[tokio::test]
async fn last_seen_shows_while_connected_and_outlives_a_graceful_restart() -> anyhow::Result<()> {
    let (mut relay, agent) = relay_with_agent(RelayOpts::default(), "seen").await?;
    assert_eq!(
        listed_last_seen(&relay, &agent.agent_id).await?,
        Value::Null
    );
    let listener = Listener::ready(&relay.url(), &agent.api_key, &["--print"]).await?;
    // Times are written in batches a second apart; the listing shows them
    // before that (and, for the few ms of a batch's write, may not).
    let seen = eventually("last_seen in the listing", LISTED_WITHIN, || async {
        let seen = listed_last_seen(&relay, &agent.agent_id).await?;
        seen.as_str()
            .map(str::to_owned)
            .with_context(|| format!("no last_seen: {seen}"))
    })
    .await?;
    drop(listener);
    relay.terminate()?;
    relay.wait_exit(WAIT).await?;
    relay.restart().await?;
    let after = listed_last_seen(&relay, &agent.agent_id).await?;
    let after = after.as_str().context("last_seen lost across a restart")?;
    assert!(after >= seen.as_str(), "{after} before {seen}");
    Ok(())
}
