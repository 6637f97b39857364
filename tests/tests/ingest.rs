//! The webhook endpoint as a sender sees it: signatures, limits, replays.

use lobster_e2e::{
    Listener, RelayOpts, Sender, Sink, WAIT, accepted_id, new_message_id, now_unix,
    relay_with_agent,
};

const FIVE_MINUTES: i64 = 5 * 60;

#[tokio::test]
async fn a_signed_webhook_is_stored_raw_and_answered_202() -> anyhow::Result<()> {
    let (relay, agent) = relay_with_agent(RelayOpts::default(), "ingest").await?;
    let body = br#"{"type":"order.paid","amount":42}"#;
    let answer = Sender::default()
        .post(
            &agent.webhook_url,
            body,
            &[("content-type", "application/json")],
        )
        .await?;
    let id = accepted_id(&answer);
    assert!(id.starts_with("evt_"), "event ids look like evt_...: {id}");

    let event = relay.event(&agent.api_key, &id).await?;
    assert_eq!(event["id"], id.as_str());
    assert_eq!(
        event["event_type"], "order.paid",
        "type comes from the JSON body: {event}"
    );
    assert_eq!(event["status"], "pending", "no listener yet: {event}");
    assert_eq!(event["body"], std::str::from_utf8(body)?);
    assert_eq!(event["body_encoding"], "utf8");
    Ok(())
}

#[tokio::test]
async fn any_one_valid_signature_entry_and_an_in_tolerance_timestamp_pass() -> anyhow::Result<()> {
    let (_relay, agent) = relay_with_agent(RelayOpts::default(), "rotation").await?;
    let sender = Sender::default();
    let body = b"{}";
    let (msg_id, ts) = (new_message_id(), now_unix() - FIVE_MINUTES + 60);
    let good = sender.sign(&msg_id, ts, body);
    let other =
        Sender::new("whsec_b3RoZXIta2V5LW90aGVyLWtleS1vdGhlci1rZXk=").sign(&msg_id, ts, body);
    let ts = ts.to_string();
    let signatures = format!("{other} {good}");
    let headers = [
        ("webhook-id", msg_id.as_str()),
        ("webhook-timestamp", ts.as_str()),
        ("webhook-signature", &signatures),
    ];
    accepted_id(&sender.post_raw(&agent.webhook_url, body, &headers).await?);
    Ok(())
}

#[tokio::test]
async fn bad_stale_future_and_missing_signatures_get_401_and_store_nothing() -> anyhow::Result<()> {
    let (relay, agent) = relay_with_agent(RelayOpts::default(), "rejects").await?;
    let url = &agent.webhook_url;
    let sender = Sender::default();
    let body = br#"{"type":"x"}"#;

    let wrong_secret = Sender::new("whsec_d3Jvbmcta2V5LXdyb25nLWtleS13cm9uZy1rZXk=");
    wrong_secret.post(url, body, &[]).await?.assert_error(401);
    let stale = sender
        .post_as(
            url,
            body,
            &new_message_id(),
            now_unix() - FIVE_MINUTES - 100,
            &[],
        )
        .await?;
    stale.assert_error(401);
    let future = sender
        .post_as(
            url,
            body,
            &new_message_id(),
            now_unix() + FIVE_MINUTES + 100,
            &[],
        )
        .await?;
    future.assert_error(401);
    sender.post_raw(url, body, &[]).await?.assert_error(401);

    // A signature over another body, an empty one, a truncated one, none.
    let (msg_id, now) = (new_message_id(), now_unix());
    let ts = now.to_string();
    let signed_other_body = sender.sign(&msg_id, now, b"{\"type\":\"y\"}");
    let valid = sender.sign(&msg_id, now, body);
    let truncated = &valid[..valid.len() - 6];
    for signature in [signed_other_body.as_str(), "v1,", "", truncated] {
        let headers = [
            ("webhook-id", msg_id.as_str()),
            ("webhook-timestamp", ts.as_str()),
            ("webhook-signature", signature),
        ];
        let answer = sender.post_raw(url, body, &headers).await?;
        answer.assert_error(401);
    }
    let no_signature = [
        ("webhook-id", msg_id.as_str()),
        ("webhook-timestamp", ts.as_str()),
    ];
    sender
        .post_raw(url, body, &no_signature)
        .await?
        .assert_error(401);

    let listed = relay
        .agent_get(&agent.api_key, "/api/v1/agent/events")
        .await?;
    assert_eq!(listed.status, 200, "{}", listed.text);
    let events = listed.json["events"].as_array().expect("an events array");
    assert!(
        events.is_empty(),
        "rejected webhooks must not be stored: {}",
        listed.text
    );
    Ok(())
}

#[tokio::test]
async fn an_unknown_relay_id_gets_404() -> anyhow::Result<()> {
    let (relay, _agent) = relay_with_agent(RelayOpts::default(), "known").await?;
    let url = relay.webhook_url("rly_doesnotexist0000000000000000");
    Sender::default()
        .post(&url, b"{}", &[])
        .await?
        .assert_error(404);
    Ok(())
}

#[tokio::test]
async fn a_body_over_max_body_gets_413() -> anyhow::Result<()> {
    let (_relay, agent) =
        relay_with_agent(RelayOpts::default().args(["--max-body", "1KiB"]), "small").await?;
    let sender = Sender::default();
    let small = vec![b'a'; 900];
    accepted_id(&sender.post(&agent.webhook_url, &small, &[]).await?);
    let big = vec![b'a'; 4096];
    sender
        .post(&agent.webhook_url, &big, &[])
        .await?
        .assert_error(413);
    Ok(())
}

#[tokio::test]
async fn a_replayed_webhook_id_is_answered_200_duplicate_and_delivered_once() -> anyhow::Result<()>
{
    let (relay, agent) = relay_with_agent(RelayOpts::default(), "dedup").await?;
    let sink = Sink::start().await?;
    let _listener = Listener::ready(
        &relay.url(),
        &agent.api_key,
        &["--forward", &sink.url("/"), "--concurrency", "1"],
    )
    .await?;
    let sender = Sender::default();
    let (msg_id, ts) = (new_message_id(), now_unix());
    let body = br#"{"type":"dedup.test"}"#;

    let first = accepted_id(
        &sender
            .post_as(&agent.webhook_url, body, &msg_id, ts, &[])
            .await?,
    );
    // A sender's retry: same webhook-id, signed again a second later.
    let again = sender
        .post_as(&agent.webhook_url, body, &msg_id, ts + 1, &[])
        .await?;
    assert_eq!(
        again.status, 200,
        "a replay is answered 200: {}",
        again.text
    );
    assert_eq!(again.json["duplicate"], true, "{}", again.text);
    assert_eq!(
        again.json["id"],
        first.as_str(),
        "a replay answers with the original id"
    );

    // Events are handed out in order: once a later one arrived, a queued
    // duplicate would have arrived too.
    let marker = accepted_id(
        &sender
            .post(&agent.webhook_url, br#"{"type":"marker"}"#, &[])
            .await?,
    );
    let reqs = sink
        .wait_until("the marker event", WAIT, |reqs| {
            reqs.iter().any(|r| r.event_id() == Some(marker.as_str()))
        })
        .await?;
    let copies = reqs
        .iter()
        .filter(|r| r.event_id() == Some(first.as_str()))
        .count();
    assert_eq!(
        copies, 1,
        "the replayed webhook reached the app {copies} times"
    );
    Ok(())
}
