//! What only a shared store can show: several relay instances (stores) on
//! one PostgreSQL database, working at the same time.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use super::cases::{claim_req, event, insert};
use super::fixture::{POLICY, TestDb, connect};
use super::{agt, ses};
use crate::store::*;
use lobster_shared::ids::EventId;

/// Two instances with two sessions each drain one agent's queue: every
/// event is handed out exactly once, and each claim is in acceptance order.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_instances_never_claim_the_same_event() {
    let db = TestDb::postgres().await;
    let (a, b) = (db.open().await, db.open().await);
    let mut order = HashMap::new();
    for n in 0..200 {
        order.insert(insert(&a, n).await, n);
    }
    let sessions = [
        (&a, "ses_a1"),
        (&a, "ses_a2"),
        (&b, "ses_b1"),
        (&b, "ses_b2"),
    ];
    let loops = sessions.map(|(store, session)| {
        let (store, session) = (store.clone(), session.to_owned());
        tokio::spawn(async move {
            let mut got = vec![];
            loop {
                let claim = store.claim(claim_req(&session, 7, 60_000)).await.unwrap();
                if claim.deliveries.is_empty() {
                    return got;
                }
                let ids: Vec<EventId> = claim.deliveries.into_iter().map(|d| d.id).collect();
                store
                    .ack(&agt("agt_1"), &ses(&session), ids.clone())
                    .await
                    .unwrap();
                got.push(ids);
            }
        })
    });
    let mut seen = HashSet::new();
    for task in loops {
        for batch in task.await.unwrap() {
            let positions: Vec<usize> = batch.iter().map(|id| order[id]).collect();
            assert!(positions.is_sorted(), "a claim out of order: {positions:?}");
            for id in batch {
                assert!(seen.insert(id.clone()), "{id} was handed out twice");
            }
        }
    }
    assert_eq!(seen.len(), 200, "every event is handed out");
    assert_eq!(a.pending_count(&agt("agt_1")).await.unwrap(), 0);
}

/// The same delivery arriving at two instances at once is stored once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_duplicates_on_two_instances_store_one_event() {
    let db = TestDb::postgres().await;
    let (a, b) = (db.open().await, db.open().await);
    let inserts: Vec<_> = (0..40)
        .map(|n| {
            let store = if n % 2 == 0 { &a } else { &b };
            tokio::spawn(store.insert_event(event(n, Some("msg_same"))))
        })
        .collect();
    let mut new = vec![];
    let mut originals = HashSet::new();
    for task in inserts {
        match task.await.unwrap().unwrap() {
            Inserted::New(id) | Inserted::Pushed(id) => new.push(id),
            Inserted::Duplicate(id) => drop(originals.insert(id)),
        }
    }
    assert_eq!(new.len(), 1, "one stored event");
    assert_eq!(originals, HashSet::from([new[0].clone()]));
    assert_eq!(b.pending_count(&agt("agt_1")).await.unwrap(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn instances_starting_together_migrate_once() {
    let db = TestDb::postgres().await;
    let opened = futures_util::future::join_all((0..4).map(|_| db.open())).await;
    assert_eq!(opened.len(), 4);
    let client = connect(db.postgres_url()).await;
    let versions: Vec<i32> = client
        .query("SELECT version FROM schema_version ORDER BY version", &[])
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    // Each migration recorded once, however many instances raced to apply it.
    assert_eq!(versions, vec![1, 2, 3, 4, 5, 6, 7]);
}

#[tokio::test]
async fn a_newer_schema_is_refused_with_advice() {
    let db = TestDb::postgres().await;
    db.open().await.close().await;
    let client = connect(db.postgres_url()).await;
    client
        .execute(
            "INSERT INTO schema_version (version, applied_at) VALUES (99, 0)",
            &[],
        )
        .await
        .unwrap();
    let Err(StoreError::Database(message)) = Store::open_postgres(db.postgres_url(), POLICY).await
    else {
        panic!("a newer schema was accepted");
    };
    assert!(message.contains("newer lobster-relay"), "{message}");
    assert!(message.contains("upgrade lobster-relay"), "{message}");
}

/// Leases of a live (or dead) instance are not released by another
/// instance starting; they expire by time and then go to another session.
#[tokio::test]
async fn another_instance_takes_over_leases_only_when_they_expire() {
    let db = TestDb::postgres().await;
    let a = db.open().await;
    let id = insert(&a, 0).await;
    a.claim(claim_req("ses_a", 1, 300)).await.unwrap();
    let b = db.open().await;
    let early = b.claim(claim_req("ses_b", 1, 60_000)).await.unwrap();
    assert!(early.deliveries.is_empty());
    let due = early.next_due.expect("the lease's expiry is due next");
    b.clock().advance(Duration::from_millis(
        (due - b.clock().now()).max(0) as u64 + 5,
    ));
    let late = b.claim(claim_req("ses_b", 1, 60_000)).await.unwrap();
    assert_eq!(late.deliveries[0].id, id);
    assert_eq!(late.deliveries[0].attempt, 2);
}

#[tokio::test]
async fn an_unreachable_server_fails_fast() {
    let started = Instant::now();
    let opened = Store::open_postgres("postgres://postgres@127.0.0.1:1/lobster", POLICY).await;
    let Err(StoreError::Database(message)) = opened else {
        panic!("opened a store on a closed port");
    };
    assert!(
        message.contains("cannot connect to PostgreSQL"),
        "{message}"
    );
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[tokio::test]
async fn tls_is_refused_until_supported() {
    let opened = Store::open_postgres("postgres://u@127.0.0.1:1/x?sslmode=require", POLICY).await;
    let Err(StoreError::Database(message)) = opened else {
        panic!("sslmode=require was accepted");
    };
    assert!(message.contains("sslmode"), "{message}");
}

/// Presence: what one instance marks, the others see (and it does not see
/// its own); a cleared or expired mark is gone.
#[tokio::test]
async fn instances_see_each_others_connected_agents() {
    let db = TestDb::postgres().await;
    let (a, b) = (db.open().await, db.open().await);
    let soon = a.clock().now() + 10_000;
    a.mark_presence(vec![agt("agt_1")], vec![], soon)
        .await
        .unwrap();
    assert!(b.connected_elsewhere(&agt("agt_1")).await.unwrap());
    assert!(
        !a.connected_elsewhere(&agt("agt_1")).await.unwrap(),
        "its own"
    );
    assert!(!b.connected_elsewhere(&agt("agt_2")).await.unwrap());
    a.mark_presence(vec![], vec![agt("agt_1")], soon)
        .await
        .unwrap();
    assert!(
        !b.connected_elsewhere(&agt("agt_1")).await.unwrap(),
        "cleared"
    );
    a.mark_presence(vec![agt("agt_1")], vec![], soon)
        .await
        .unwrap();
    b.clock().advance(Duration::from_secs(11));
    assert!(
        !b.connected_elsewhere(&agt("agt_1")).await.unwrap(),
        "run out"
    );
}
