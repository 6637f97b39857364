use std::time::Duration;

use bytes::Bytes;

use super::*;

const POLICY: RetryPolicy = RetryPolicy {
    initial: Duration::from_millis(1),
    max_delay: Duration::from_millis(1),
    max_attempts: 3,
};

fn open() -> (tempfile::TempDir, SqliteStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("relay.db"), POLICY).unwrap();
    (dir, store)
}

fn event(n: usize, key: Option<&str>) -> NewEvent {
    NewEvent {
        id: lobster_shared::ids::event_id(),
        agent_id: "agt_1".into(),
        event_type: if n.is_multiple_of(2) {
            "message.received".into()
        } else {
            "ping".into()
        },
        received_at: now_ms(),
        headers: vec![("x-n".into(), n.to_string())],
        body: Bytes::from(vec![n as u8, 0xff]),
        dedup_key: key.map(str::to_owned),
    }
}

fn claim_req(session: &str, limit: usize, lease_ms: Millis) -> ClaimRequest {
    ClaimRequest {
        agent_id: "agt_1".into(),
        session_id: session.into(),
        limit,
        lease_ms,
        patterns: vec![],
    }
}

async fn insert(store: &SqliteStore, n: usize) -> String {
    match store.insert_event(event(n, None)).await.unwrap() {
        Inserted::New(id) => id,
        other => panic!("{other:?}"),
    }
}

async fn status(store: &SqliteStore, id: &str) -> (String, u32) {
    let d = store.event_detail("agt_1", id).await.unwrap().unwrap();
    (d.summary.status, d.summary.attempts)
}

#[tokio::test]
async fn concurrent_inserts_share_commits_and_all_survive_reopen() {
    let (dir, store) = open();
    let tasks: Vec<_> = (0..200)
        .map(|n| tokio::spawn(store.insert_event(event(n, Some(&format!("k{n}"))))))
        .collect();
    for task in tasks {
        assert!(matches!(task.await.unwrap().unwrap(), Inserted::New(_)));
    }
    store.close().await;
    let reopened = SqliteStore::open(&dir.path().join("relay.db"), POLICY).unwrap();
    assert_eq!(reopened.pending_count("agt_1").await.unwrap(), 200);
}

#[tokio::test]
async fn a_repeated_dedup_key_returns_the_original_id() {
    let (_dir, store) = open();
    let first = store.insert_event(event(1, Some("msg_1"))).await.unwrap();
    let second = store.insert_event(event(2, Some("msg_1"))).await.unwrap();
    let Inserted::New(id) = first else { panic!() };
    assert_eq!(second, Inserted::Duplicate(id));
    assert_eq!(store.pending_count("agt_1").await.unwrap(), 1);
}

#[tokio::test]
async fn claims_hand_out_in_acceptance_order_to_one_session_each() {
    let (_dir, store) = open();
    let mut ids = vec![];
    for n in 0..5 {
        ids.push(insert(&store, n).await);
    }
    let a = store.claim(claim_req("ses_a", 3, 60_000)).await.unwrap();
    let b = store.claim(claim_req("ses_b", 10, 60_000)).await.unwrap();
    let got = |c: &Claim| {
        c.deliveries
            .iter()
            .map(|d| d.id.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(got(&a), ids[..3]);
    assert_eq!(got(&b), ids[3..]);
    assert_eq!(
        a.deliveries[0].headers,
        vec![("x-n".to_string(), "0".to_string())]
    );
    assert_eq!(a.deliveries[0].body, vec![0, 0xff]);
    assert_eq!(a.deliveries[0].attempt, 1);
    assert!(
        store
            .claim(claim_req("ses_c", 10, 60_000))
            .await
            .unwrap()
            .deliveries
            .is_empty()
    );
}

#[tokio::test]
async fn ack_delivers_nack_retries_then_fails() {
    let (_dir, store) = open();
    let id = insert(&store, 0).await;
    for attempt in 1..=3 {
        let claim = store.claim(claim_req("ses_a", 1, 60_000)).await.unwrap();
        assert_eq!(claim.deliveries[0].attempt, attempt);
        store.nack("agt_1", "ses_a", &id, "500").await.unwrap();
        tokio::time::sleep(Duration::from_millis(3)).await; // past the 1 ms retry delay
    }
    assert_eq!(status(&store, &id).await, ("failed".into(), 3));
    let id2 = insert(&store, 1).await;
    store.claim(claim_req("ses_a", 1, 60_000)).await.unwrap();
    store
        .ack("agt_1", "ses_a", vec![id2.clone()])
        .await
        .unwrap();
    assert_eq!(status(&store, &id2).await, ("delivered".into(), 1));
    let history = store
        .event_detail("agt_1", &id)
        .await
        .unwrap()
        .unwrap()
        .history;
    assert_eq!(
        history
            .iter()
            .map(|a| a.outcome.as_str())
            .collect::<Vec<_>>(),
        ["nacked"; 3]
    );
}

#[tokio::test]
async fn expired_leases_and_closed_sessions_return_events() {
    let (_dir, store) = open();
    let id = insert(&store, 0).await;
    let first = store.claim(claim_req("ses_a", 1, 0)).await.unwrap();
    assert_eq!(first.deliveries.len(), 1);
    let again = store.claim(claim_req("ses_b", 1, 60_000)).await.unwrap();
    assert_eq!(again.deliveries[0].id, id);
    assert_eq!(again.deliveries[0].attempt, 2);
    assert!(
        again.next_due.is_some(),
        "the live lease is the next thing due"
    );
    store.release("agt_1", "ses_b").await.unwrap();
    assert_eq!(status(&store, &id).await.0, "pending");
    let third = store.claim(claim_req("ses_c", 1, 60_000)).await.unwrap();
    assert_eq!(third.deliveries[0].attempt, 3);
}

#[tokio::test]
async fn patterns_filter_by_event_type() {
    let (_dir, store) = open();
    for n in 0..4 {
        insert(&store, n).await;
    }
    let mut req = claim_req("ses_a", 10, 60_000);
    req.patterns = vec!["message.*".into()];
    let claim = store.claim(req).await.unwrap();
    assert_eq!(claim.deliveries.len(), 2);
    assert!(
        claim
            .deliveries
            .iter()
            .all(|d| d.event_type == "message.received")
    );
}

#[tokio::test]
async fn replay_requeues_a_delivered_event_keeping_its_id() {
    let (_dir, store) = open();
    let id = insert(&store, 0).await;
    assert_eq!(
        store.replay("agt_1", "evt_nope").await.unwrap(),
        ReplayOutcome::NotFound
    );
    store.claim(claim_req("ses_a", 1, 60_000)).await.unwrap();
    assert_eq!(
        store.replay("agt_1", &id).await.unwrap(),
        ReplayOutcome::InFlight
    );
    store.ack("agt_1", "ses_a", vec![id.clone()]).await.unwrap();
    assert_eq!(
        store.replay("agt_1", &id).await.unwrap(),
        ReplayOutcome::Queued
    );
    let claim = store.claim(claim_req("ses_a", 1, 60_000)).await.unwrap();
    assert_eq!(
        (claim.deliveries[0].id.as_str(), claim.deliveries[0].attempt),
        (id.as_str(), 2)
    );
}

#[tokio::test]
async fn a_restart_releases_leases_of_the_dead_process() {
    let (dir, store) = open();
    let id = insert(&store, 0).await;
    store.claim(claim_req("ses_a", 1, 60_000)).await.unwrap();
    store.close().await;
    let reopened = SqliteStore::open(&dir.path().join("relay.db"), POLICY).unwrap();
    let claim = reopened.claim(claim_req("ses_b", 1, 60_000)).await.unwrap();
    assert_eq!(claim.deliveries[0].id, id);
}

#[tokio::test]
async fn agents_are_found_by_key_hash_and_relay_id_until_revoked() {
    let (_dir, store) = open();
    let agent = Agent {
        agent_id: "agt_1".into(),
        name: "a".into(),
        workspace: "default".into(),
        relay_id: "rly_1".into(),
    };
    store
        .create_agent(NewAgent {
            agent: agent.clone(),
            key_hash: "h1".into(),
        })
        .await
        .unwrap();
    assert_eq!(
        store.agent_by_key_hash("h1").await.unwrap(),
        Some(agent.clone())
    );
    assert_eq!(store.agent_by_relay_id("rly_1").await.unwrap(), Some(agent));
    assert!(store.revoke_agent("agt_1").await.unwrap());
    assert!(!store.revoke_agent("agt_1").await.unwrap());
    assert_eq!(store.agent_by_key_hash("h1").await.unwrap(), None);
    assert_eq!(store.agent_by_relay_id("rly_1").await.unwrap(), None);
}

#[tokio::test]
async fn writes_after_close_fail_cleanly() {
    let (_dir, store) = open();
    store.close().await;
    assert!(matches!(
        store.insert_event(event(0, None)).await,
        Err(StoreError::Closed)
    ));
}
