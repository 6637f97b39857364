//! Dead letters: events that exhausted the retry policy stay `failed` and
//! inspectable, and are queued again in bulk by a filter, from the CLI
//! (`events replay --failed`) and the admin API.

use lobster_e2e::{
    ADMIN_TOKEN, CliUser, Listener, RelayOpts, Sink, WAIT, accepted_id, eventually, post_signed,
    relay_with_agent,
};
use reqwest::Method;
use serde_json::json;

#[tokio::test]
async fn failed_events_are_replayed_by_filter_from_the_cli_and_the_admin_api() -> anyhow::Result<()>
{
    let opts = RelayOpts::default().args(["--retry-max-attempts", "1"]);
    let (relay, agent) = relay_with_agent(opts, "dead-letters").await?;
    let sink = Sink::start().await?;
    sink.respond_with(|_, _| 500);
    let listener =
        Listener::ready(&relay.url(), &agent.api_key, &["--forward", &sink.url("/")]).await?;
    let mut ids = Vec::new();
    for kind in ["invoice.paid", "invoice.void", "push"] {
        let body = format!(r#"{{"type":"{kind}"}}"#);
        ids.push(accepted_id(
            &post_signed(&agent.webhook_url, body.as_bytes(), &[]).await?,
        ));
    }
    for id in &ids {
        relay
            .wait_event_status(&agent.api_key, id, "failed", WAIT)
            .await?;
    }
    drop(listener);
    // Replayed events must stay queued until a listener returns.
    eventually("the relay sees the listener gone", WAIT, || async {
        let list = relay
            .request(Method::GET, "/api/v1/admin/agents", Some(ADMIN_TOKEN), None)
            .await?;
        anyhow::ensure!(
            list.json["agents"][0]["online_sessions"] == 0,
            "{}",
            list.text
        );
        Ok(())
    })
    .await?;

    let user = CliUser::new()?
        .env("LOBSTER_RELAY_URL", &relay.url())
        .env("LOBSTER_RELAY_API_KEY", &agent.api_key);
    // Flags that need --failed say so.
    user.run(&["events", "replay", "--type", "x"])
        .await?
        .expect_code(2);
    let bad = user
        .run(&["events", "replay", "--failed", "--since", "lately"])
        .await?;
    bad.expect_code(1);
    assert!(bad.stderr.contains("neither a duration"), "{}", bad.stderr);

    // Only the invoices, and only those received in the last hour.
    let run = user
        .run(&[
            "events",
            "replay",
            "--failed",
            "--since",
            "1h",
            "--type",
            "invoice.*",
            "--json",
        ])
        .await?;
    run.expect_code(0);
    assert_eq!(run.json()["queued"], 2, "{}", run.stdout);
    for id in &ids[..2] {
        relay
            .wait_event_status(&agent.api_key, id, "pending", WAIT)
            .await?;
    }
    assert_eq!(
        relay.event(&agent.api_key, &ids[2]).await?["status"],
        "failed"
    );
    // The queue depth gauge counts the two queued again.
    eventually("lobster_queue_depth 2", WAIT, || async {
        let metrics = relay.request(Method::GET, "/metrics", None, None).await?;
        anyhow::ensure!(
            metrics.text.contains("\nlobster_queue_depth 2\n"),
            "{}",
            metrics.text
        );
        Ok(())
    })
    .await?;

    // The admin API takes the rest; a listener that succeeds gets all three.
    let answer = relay
        .request(
            Method::POST,
            "/api/v1/admin/events/replay-failed",
            Some(ADMIN_TOKEN),
            Some(json!({"type": "push"})),
        )
        .await?;
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(answer.json["queued"], 1, "{}", answer.text);
    assert_eq!(answer.json["truncated"], false, "{}", answer.text);
    let refused = relay
        .request(
            Method::POST,
            "/api/v1/admin/events/replay-failed",
            Some(&agent.api_key),
            None,
        )
        .await?;
    assert_eq!(refused.status, 401, "{}", refused.text);

    sink.respond_with(|_, _| 200);
    let _listener =
        Listener::ready(&relay.url(), &agent.api_key, &["--forward", &sink.url("/")]).await?;
    for id in &ids {
        relay
            .wait_event_status(&agent.api_key, id, "delivered", WAIT)
            .await?;
    }
    // Nothing failed is left to replay.
    let again = user
        .run(&["events", "replay", "--failed", "--json"])
        .await?;
    again.expect_code(0);
    assert_eq!(again.json()["matched"], 0, "{}", again.stdout);
    Ok(())
}
