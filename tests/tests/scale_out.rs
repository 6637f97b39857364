//! Several relay instances on one PostgreSQL, with Redis carrying wake-ups:
//! events cross instances, each is delivered and acked once (with two and
//! with three instances), and neither a dead instance, a Redis outage nor a
//! PostgreSQL restart loses an accepted one.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use futures_util::StreamExt as _;
use lobster_e2e::balancer::Balancer;
use lobster_e2e::services::{Postgres, Redis, fresh_database};
use lobster_e2e::{
    Agent, Listener, Relay, RelayOpts, Sender, Sink, WAIT, accepted_id, eventually, new_message_id,
    now_unix,
};

fn opts(database: &str, redis: Option<&Redis>, extra: &[&str]) -> RelayOpts {
    let mut opts = RelayOpts::default().args(["--database", database]);
    if let Some(redis) = redis {
        opts = opts.args(["--redis".to_owned(), redis.url()]);
    }
    opts.args(extra.iter().copied())
}

fn webhook_url(relay: &Relay, agent: &Agent) -> String {
    format!("{}/api/v1/webhook/{}", relay.url(), agent.relay_id)
}

async fn post_n(url: &str, n: usize, tag: &str) -> Vec<String> {
    let sender = Sender::default();
    let mut ids = Vec::new();
    for i in 0..n {
        let body = format!(r#"{{"type":"scale.{tag}","n":{i}}}"#);
        let answer = sender.post(url, body.as_bytes(), &[]).await.unwrap();
        assert_eq!(answer.status, 202, "{}", answer.text);
        ids.push(answer.json["id"].as_str().unwrap().to_owned());
    }
    ids
}

/// Two instances on one database and Redis, an agent, and a listener on A
/// forwarding to a sink: the set-up most of these tests share.
struct Pair {
    _a: Relay,
    b: Relay,
    agent: Agent,
    sink: Sink,
    _listener: Listener,
}

async fn pair_with_listener_on_a(
    database: &str,
    redis: &Redis,
    extra: &[&str],
    name: &str,
) -> Pair {
    let a = Relay::start(opts(database, Some(redis), extra))
        .await
        .unwrap();
    let b = Relay::start(opts(database, Some(redis), extra))
        .await
        .unwrap();
    let agent = a.create_agent(name).await.unwrap();
    let sink = Sink::start().await.unwrap();
    let forward = sink.host_path("/in");
    let listener = Listener::ready(&a.url(), &agent.api_key, &["--forward", &forward])
        .await
        .unwrap();
    Pair {
        _a: a,
        b,
        agent,
        sink,
        _listener: listener,
    }
}

fn delivered_ids(sink: &Sink) -> Vec<String> {
    sink.requests()
        .iter()
        .filter_map(|r| r.event_id().map(str::to_owned))
        .collect()
}

#[tokio::test]
async fn an_event_posted_to_b_reaches_a_listener_on_a_through_redis() {
    let database = fresh_database().await.unwrap();
    let redis = Redis::start().await.unwrap();
    // A re-scan far slower than the wait below: only Redis can be in time.
    let Pair {
        _a,
        b,
        agent,
        sink,
        _listener,
    } = pair_with_listener_on_a(&database, &redis, &["--rescan-interval", "1h"], "cross").await;
    let started = Instant::now();
    let ids = post_n(&webhook_url(&b, &agent), 20, "cross").await;
    sink.wait_for(20, Duration::from_secs(10)).await.unwrap();
    eprintln!("20 events B -> A in {:?}", started.elapsed());
    assert_eq!(
        delivered_ids(&sink).into_iter().collect::<HashSet<_>>(),
        ids.into_iter().collect()
    );
}

#[tokio::test]
async fn sessions_on_two_instances_share_the_queue_exactly_once() {
    let database = fresh_database().await.unwrap();
    let redis = Redis::start().await.unwrap();
    let a = Relay::start(opts(&database, Some(&redis), &[]))
        .await
        .unwrap();
    let b = Relay::start(opts(&database, Some(&redis), &[]))
        .await
        .unwrap();
    let agent = a.create_agent("shared").await.unwrap();
    let sink = Sink::start().await.unwrap();
    let target = sink.host_path("/in");
    let _on_a = Listener::ready(&a.url(), &agent.api_key, &["--forward", &target])
        .await
        .unwrap();
    let _on_b = Listener::ready(&b.url(), &agent.api_key, &["--forward", &target])
        .await
        .unwrap();
    let (url_a, url_b) = (webhook_url(&a, &agent), webhook_url(&b, &agent));
    let (to_a, to_b) = tokio::join!(post_n(&url_a, 100, "a"), post_n(&url_b, 100, "b"));
    sink.wait_for(200, WAIT).await.unwrap();
    let delivered = delivered_ids(&sink);
    let unique: HashSet<_> = delivered.iter().cloned().collect();
    assert_eq!(unique, to_a.into_iter().chain(to_b).collect::<HashSet<_>>());
    assert_eq!(
        delivered.len(),
        200,
        "no event may be delivered twice without a fault"
    );
}

#[tokio::test]
async fn killing_an_instance_while_events_flow_loses_nothing() {
    let database = fresh_database().await.unwrap();
    let redis = Redis::start().await.unwrap();
    let extra = ["--ack-timeout", "2s", "--rescan-interval", "500ms"];
    let mut a = Relay::start(opts(&database, Some(&redis), &extra))
        .await
        .unwrap();
    let b = Relay::start(opts(&database, Some(&redis), &extra))
        .await
        .unwrap();
    let balancer = Balancer::start(vec![a.port(), b.port()]).await.unwrap();
    let agent = a.create_agent("failover").await.unwrap();
    let sink = Sink::start().await.unwrap();
    let mut listener = Listener::ready(
        &balancer.url(),
        &agent.api_key,
        &["--forward", &sink.host_path("/in")],
    )
    .await
    .unwrap();
    let url = format!("{}/api/v1/webhook/{}", balancer.url(), agent.relay_id);
    let sender = Sender::default();
    let mut accepted = HashSet::new();
    for i in 0..300 {
        if i == 150 {
            a.kill9().await.unwrap();
        }
        let body = format!(r#"{{"type":"failover","n":{i}}}"#);
        let msg_id = new_message_id();
        // A sender retries a failed post with the same id, as platforms do.
        for _ in 0..5 {
            match sender
                .post_as(&url, body.as_bytes(), &msg_id, now_unix(), &[])
                .await
            {
                Ok(answer) if answer.status == 202 || answer.status == 200 => {
                    accepted.insert(answer.json["id"].as_str().unwrap().to_owned());
                    break;
                }
                _ => continue,
            }
        }
    }
    assert!(
        accepted.len() >= 290,
        "the surviving instance must accept nearly all: {}",
        accepted.len()
    );
    sink.wait_until("every accepted event", Duration::from_secs(60), |reqs| {
        let got: HashSet<&str> = reqs.iter().filter_map(|r| r.event_id()).collect();
        accepted.iter().all(|id| got.contains(id.as_str()))
    })
    .await
    .unwrap();
    let delivered = delivered_ids(&sink);
    eprintln!(
        "failover: accepted {}, delivered {} unique, {} duplicate deliveries",
        accepted.len(),
        delivered.iter().collect::<HashSet<_>>().len(),
        delivered.len() - delivered.iter().collect::<HashSet<_>>().len()
    );
    assert!(
        listener.try_exit().is_none(),
        "the listener must survive the failover"
    );
    assert!(
        listener.stderr().contains("Reconnected"),
        "the listener should say it reconnected"
    );
}

#[tokio::test]
async fn a_redis_outage_delays_delivery_but_loses_nothing() {
    let database = fresh_database().await.unwrap();
    let mut redis = Redis::start().await.unwrap();
    let extra = ["--rescan-interval", "500ms"];
    let Pair {
        _a,
        b,
        agent,
        sink,
        _listener,
    } = pair_with_listener_on_a(&database, &redis, &extra, "outage").await;
    let url = webhook_url(&b, &agent);
    let mut ids = post_n(&url, 10, "before").await;
    sink.wait_for(10, WAIT).await.unwrap();
    redis.stop().await.unwrap();
    ids.extend(post_n(&url, 10, "during").await);
    sink.wait_for(20, WAIT).await.unwrap();
    redis.resume().await.unwrap();
    ids.extend(post_n(&url, 10, "after").await);
    sink.wait_for(30, WAIT).await.unwrap();
    let delivered: HashSet<String> = delivered_ids(&sink).into_iter().collect();
    assert_eq!(delivered, ids.into_iter().collect());
}

/// An instance (re)started while Redis is down comes up, delivers by the
/// database re-scan, says Redis is down on /readyz, and connects to Redis
/// once it answers. It used to exit 1 after 5 s and stay down.
#[tokio::test]
async fn an_instance_starts_while_redis_is_down_and_connects_when_it_returns() {
    let database = fresh_database().await.unwrap();
    let mut redis = Redis::start().await.unwrap();
    redis.stop().await.unwrap();
    let relay = Relay::start(opts(
        &database,
        Some(&redis),
        &["--rescan-interval", "500ms"],
    ))
    .await
    .expect("the relay starts without Redis");
    let ready = relay
        .request(reqwest::Method::GET, "/readyz", None, None)
        .await
        .unwrap();
    assert_eq!(ready.status, 503, "{}", ready.text);
    assert_eq!(ready.json["redis"], "unreachable", "{}", ready.text);
    assert_eq!(ready.json["storage"], "ok", "{}", ready.text);

    let agent = relay.create_agent("no-redis").await.unwrap();
    let sink = Sink::start().await.unwrap();
    let _listener = Listener::ready(
        &relay.url(),
        &agent.api_key,
        &["--forward", &sink.host_path("/in")],
    )
    .await
    .unwrap();
    let url = webhook_url(&relay, &agent);
    let ids = post_n(&url, 3, "without-redis").await;
    sink.wait_for(3, WAIT).await.unwrap();

    redis.resume().await.unwrap();
    eventually("/readyz to see Redis", WAIT, || async {
        let ready = relay
            .request(reqwest::Method::GET, "/readyz", None, None)
            .await?;
        anyhow::ensure!(ready.status == 200, "{}", ready.text);
        Ok(())
    })
    .await
    .unwrap();
    let delivered: HashSet<String> = delivered_ids(&sink).into_iter().collect();
    assert_eq!(delivered, ids.into_iter().collect());
}

#[tokio::test]
async fn a_postgres_restart_answers_503_never_202_and_recovers_by_itself() {
    let pg = Postgres::start().await.unwrap();
    let database = pg.fresh_database().await.unwrap();
    let relay = Relay::start(opts(&database, None, &[])).await.unwrap();
    let agent = relay.create_agent("pg-restart").await.unwrap();
    let sink = Sink::start().await.unwrap();
    let _listener = Listener::ready(
        &relay.url(),
        &agent.api_key,
        &["--forward", &sink.host_path("/in")],
    )
    .await
    .unwrap();
    let url = webhook_url(&relay, &agent);
    let sender = Sender::default();
    let mut accepted = post_n(&url, 3, "up").await;
    pg.stop().await.unwrap();
    for i in 0..5 {
        let answer = sender
            .post(
                &url,
                format!(r#"{{"type":"down","n":{i}}}"#).as_bytes(),
                &[],
            )
            .await
            .unwrap();
        assert_ne!(
            answer.status, 202,
            "nothing can be stored while PostgreSQL is down"
        );
        answer.assert_error(503);
    }
    let ready = relay
        .request(reqwest::Method::GET, "/readyz", None, None)
        .await
        .unwrap();
    assert_eq!(ready.status, 503, "{}", ready.text);
    pg.resume().await.unwrap();
    let back = lobster_e2e::eventually("a 202 after PostgreSQL came back", WAIT, || {
        let (sender, url) = (sender.clone(), url.clone());
        async move {
            let answer = sender.post(&url, br#"{"type":"back"}"#, &[]).await?;
            anyhow::ensure!(answer.status == 202, "still {}", answer.status);
            Ok(answer.json["id"].as_str().unwrap_or_default().to_owned())
        }
    })
    .await
    .unwrap();
    accepted.push(back);
    // An "up" event the session leased as PostgreSQL went down (a commit
    // whose answer was lost) comes back with the session's next claim, not
    // after the lease and never only with a new session.
    sink.wait_until(
        "the events from before and after the restart",
        WAIT,
        |reqs| {
            let got: HashSet<&str> = reqs.iter().filter_map(|r| r.event_id()).collect();
            accepted.iter().all(|id| got.contains(id.as_str()))
        },
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn three_instances_round_robin_every_event_is_delivered_and_acked_once() {
    const EVENTS: usize = 300;
    let database = fresh_database().await.unwrap();
    let redis = Redis::start().await.unwrap();
    let mut relays = Vec::new();
    for _ in 0..3 {
        relays.push(
            Relay::start(opts(&database, Some(&redis), &[]))
                .await
                .unwrap(),
        );
    }
    let agent = relays[0].create_agent("three").await.unwrap();
    // Sessions on A and B, none on C: what C accepts must cross over.
    let (sink_a, sink_b) = (Sink::start().await.unwrap(), Sink::start().await.unwrap());
    let _on_a = Listener::ready(
        &relays[0].url(),
        &agent.api_key,
        &["--forward", &sink_a.host_path("/in")],
    )
    .await
    .unwrap();
    let _on_b = Listener::ready(
        &relays[1].url(),
        &agent.api_key,
        &["--forward", &sink_b.host_path("/in")],
    )
    .await
    .unwrap();

    let urls: Vec<String> = relays.iter().map(|r| webhook_url(r, &agent)).collect();
    let sender = Sender::default();
    let started = Instant::now();
    let accepted: Vec<String> = futures_util::stream::iter(0..EVENTS)
        .map(|i| {
            let (sender, url) = (sender.clone(), urls[i % urls.len()].clone());
            async move {
                let body = format!(r#"{{"type":"scale.three","n":{i}}}"#);
                accepted_id(&sender.post(&url, body.as_bytes(), &[]).await.unwrap())
            }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    let accepted: HashSet<String> = accepted.into_iter().collect();
    assert_eq!(accepted.len(), EVENTS, "every post got its own id");

    let (a, b) = (&sink_a, &sink_b);
    eventually("every event at one of the two sinks", WAIT, || async move {
        let got = a.len() + b.len();
        anyhow::ensure!(got >= EVENTS, "{got} of {EVENTS}");
        Ok(())
    })
    .await
    .unwrap();
    let elapsed = started.elapsed();
    let (got_a, got_b) = (delivered_ids(&sink_a), delivered_ids(&sink_b));
    let unique: HashSet<String> = got_a.iter().chain(&got_b).cloned().collect();
    assert_eq!(unique, accepted, "exactly the accepted events arrive");
    assert_eq!(
        got_a.len() + got_b.len(),
        EVENTS,
        "no event may reach the app twice without a fault"
    );
    eprintln!(
        "three instances: {EVENTS} events posted round-robin and forwarded in {elapsed:?} \
         (session on A took {}, on B {})",
        got_a.len(),
        got_b.len()
    );

    // Acked once: every event ends `delivered` after exactly one attempt,
    // whichever instance is asked.
    let path = "/api/v1/agent/events?limit=500";
    for relay in &relays {
        let key = agent.api_key.as_str();
        eventually(
            "every event delivered after one attempt",
            WAIT,
            || async move {
                let answer = relay.agent_get(key, path).await?;
                let events = answer.json["events"]
                    .as_array()
                    .ok_or_else(|| anyhow::anyhow!("no events list: {}", answer.text))?;
                anyhow::ensure!(events.len() == EVENTS, "{} events listed", events.len());
                for event in events {
                    anyhow::ensure!(
                        event["status"] == "delivered" && lobster_e2e::attempts_of(event) == 1,
                        "{} is {} after {} attempts",
                        event["id"],
                        event["status"],
                        event["attempts"]
                    );
                }
                Ok(())
            },
        )
        .await
        .unwrap();
    }
}

/// Revoking on A stops the key and the webhook URL on B too, although B has
/// just used both (and remembers the agent): at once through Redis, and
/// within the revocation poll (2 s) without it.
#[tokio::test]
async fn a_revocation_on_a_stops_the_agent_on_b_with_and_without_redis() {
    for with_redis in [true, false] {
        let database = fresh_database().await.unwrap();
        let redis = if with_redis {
            Some(Redis::start().await.unwrap())
        } else {
            None
        };
        let a = Relay::start(opts(&database, redis.as_ref(), &[]))
            .await
            .unwrap();
        let b = Relay::start(opts(&database, redis.as_ref(), &[]))
            .await
            .unwrap();
        let agent = a.create_agent("revoked").await.unwrap();
        let url_b = webhook_url(&b, &agent);
        // B looks the agent up by key and by relay id, and keeps it.
        let me = b
            .agent_get(&agent.api_key, "/api/v1/agent/me")
            .await
            .unwrap();
        assert_eq!(me.status, 200, "{}", me.text);
        post_n(&url_b, 1, "before").await;

        a.revoke(&agent.agent_id).await.unwrap();
        let started = Instant::now();
        let bound = if with_redis {
            Duration::from_secs(2)
        } else {
            Duration::from_secs(5)
        };
        eventually("B to refuse the revoked key", bound, || async {
            let me = b.agent_get(&agent.api_key, "/api/v1/agent/me").await?;
            anyhow::ensure!(me.status == 401, "B answered {}", me.status);
            Ok(())
        })
        .await
        .unwrap();
        eventually(
            "B to refuse the revoked agent's webhooks",
            bound,
            || async {
                let body = br#"{"type":"scale.after"}"#;
                let answer = Sender::default().post(&url_b, body, &[]).await?;
                anyhow::ensure!(answer.status == 404, "B answered {}", answer.status);
                Ok(())
            },
        )
        .await
        .unwrap();
        eprintln!(
            "redis: {with_redis}: B refused the revoked agent after {:?}",
            started.elapsed()
        );
    }
}

/// Push delivery steps aside for a session of the agent on *another*
/// instance (as it does for one on its own): the sessions mark themselves
/// in PostgreSQL (`presence`), and a callback reads the marks.
#[tokio::test]
async fn a_session_on_another_instance_takes_precedence_over_the_callback() {
    const KEY: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
    let database = fresh_database().await.unwrap();
    let push = [
        "--encryption-key",
        KEY,
        "--allow-http-callbacks",
        "--callback-allow-cidr",
        "127.0.0.1/32",
    ];
    let a = Relay::start(opts(&database, None, &push)).await.unwrap();
    let b = Relay::start(opts(&database, None, &push)).await.unwrap();
    let agent = a.create_agent("both").await.unwrap();
    let (sink, receiver) = (Sink::start().await.unwrap(), Sink::start().await.unwrap());
    let mut on_b = Listener::ready(
        &b.url(),
        &agent.api_key,
        &["--forward", &sink.host_path("/in")],
    )
    .await
    .unwrap();
    let put = a
        .request(
            reqwest::Method::PUT,
            "/api/v1/agent/callback",
            Some(&agent.api_key),
            Some(serde_json::json!({ "url": receiver.url("/pushed") })),
        )
        .await
        .unwrap();
    assert_eq!(put.status, 200, "{}", put.text);
    eventually("A to see the session on B", WAIT, || async {
        let shown = a
            .agent_get(&agent.api_key, "/api/v1/agent/callback")
            .await?;
        anyhow::ensure!(shown.json["connected_elsewhere"] == true, "{}", shown.text);
        anyhow::ensure!(shown.json["pushing"] == false, "{}", shown.text);
        Ok(())
    })
    .await
    .unwrap();
    // Accepted by A, which has the callback and no session of the agent:
    // every one goes to the listener on B (each event is delivered once,
    // so one pushed by A would be missing there).
    let accepted = post_n(&webhook_url(&a, &agent), 5, "while-on-b").await;
    sink.wait_until("the events through B", WAIT, |reqs| {
        let got: HashSet<&str> = reqs.iter().filter_map(|r| r.event_id()).collect();
        accepted.iter().all(|id| got.contains(id.as_str()))
    })
    .await
    .unwrap();
    assert!(receiver.is_empty(), "A pushed while the agent was on B");

    // Once the session on B is gone, A pushes again.
    on_b.interrupt().unwrap();
    on_b.wait_exit(WAIT).await.unwrap();
    let after = post_n(&webhook_url(&a, &agent), 1, "after-b").await;
    let pushed = receiver.wait_for(1, WAIT).await.unwrap();
    assert_eq!(pushed[0].event_id(), Some(after[0].as_str()));
    assert_eq!(pushed[0].path, "/pushed");
}
