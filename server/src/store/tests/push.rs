//! The push path (SQLite): new events leased in their insert and handed to
//! a caught-up session's port after the commit.

use super::cases::{claim_req, event, insert, status};
use super::fixture::TestDb;
use super::{agt, ses};
use crate::store::push::Port;
use crate::store::*;

fn port_claim(port: &std::sync::Arc<Port>) -> ClaimRequest {
    ClaimRequest {
        port: Some(port.clone()),
        requeue_except: None,
        ..claim_req(port.session_id().as_str(), 0, 30_000)
    }
}

#[tokio::test]
async fn a_caught_up_session_gets_new_events_from_their_commit_in_order() {
    let db = TestDb::sqlite().await;
    let store = db.open().await;
    let port = Port::new(&ses("ses_a"), false, 30_000, 2);
    store.ports().unwrap().attach(&agt("agt_1"), port.clone());
    let older = insert(&store, 0).await;
    // Not caught up yet: the event waits for the session's first claim.
    assert_eq!(status(&store, &older).await, ("pending".into(), 0));
    let claim = store.claim(port_claim(&port)).await.unwrap();
    assert_eq!(claim.deliveries.len(), 1);
    assert!(!claim.more);
    assert!(port.is_caught_up());
    assert_eq!(port.free(), 1);

    let Inserted::Pushed(id) = store.insert_event(event(1, None)).await.unwrap() else {
        panic!("a caught-up session with a free slot takes it")
    };
    let delivery = port.take_pushed(1).pop().expect("pushed after the commit");
    assert_eq!((delivery.id.as_str(), delivery.attempt), (id.as_str(), 1));
    assert_eq!(delivery.body, vec![1, 0xff]);
    assert_eq!(status(&store, &id).await, ("delivering".into(), 1));
    assert_eq!(port.free(), 0);

    // Full: the next two wait in the store, and the session stops being
    // caught up, so a freed slot cannot let a newer event overtake them.
    let waiting = [insert(&store, 2).await, insert(&store, 3).await];
    assert!(!port.is_caught_up());
    port.give_back(1);
    assert!(matches!(
        store.insert_event(event(4, None)).await.unwrap(),
        Inserted::New(_)
    ));
    let claim = store.claim(port_claim(&port)).await.unwrap();
    let ids: Vec<_> = claim.deliveries.iter().map(|d| d.id.clone()).collect();
    assert_eq!(ids, vec![waiting[0].clone()], "oldest first, one free slot");
    assert!(claim.more && !port.is_caught_up());

    // A pushed event is acked like a claimed one.
    store
        .ack(&agt("agt_1"), &ses("ses_a"), vec![id.clone()])
        .await
        .unwrap();
    assert_eq!(status(&store, &id).await, ("delivered".into(), 1));
}

#[tokio::test]
async fn a_closed_session_returns_pushed_events_to_the_queue() {
    let db = TestDb::sqlite().await;
    let store = db.open().await;
    let port = Port::new(&ses("ses_a"), false, 30_000, 4);
    store.ports().unwrap().attach(&agt("agt_1"), port.clone());
    store.claim(port_claim(&port)).await.unwrap();
    let Inserted::Pushed(id) = store.insert_event(event(0, None)).await.unwrap() else {
        panic!("pushed")
    };
    // The session ends without reading it: detach, then release.
    store.ports().unwrap().detach(&agt("agt_1"), &ses("ses_a"));
    port.close();
    assert!(
        port.take_pushed(10).is_empty(),
        "a closed port holds nothing"
    );
    store.release(&agt("agt_1"), &ses("ses_a")).await.unwrap();
    assert_eq!(status(&store, &id).await, ("pending".into(), 1));
    let other = Port::new(&ses("ses_b"), false, 30_000, 4);
    let claim = store.claim(port_claim(&other)).await.unwrap();
    assert_eq!(claim.deliveries[0].id, id);
    assert_eq!(claim.deliveries[0].attempt, 2);
}

#[tokio::test]
async fn filtered_sessions_and_duplicates_are_not_pushed() {
    let db = TestDb::sqlite().await;
    let store = db.open().await;
    let port = Port::new(&ses("ses_f"), true, 30_000, 4);
    store.ports().unwrap().attach(&agt("agt_1"), port.clone());
    store.claim(port_claim(&port)).await.unwrap();
    assert!(matches!(
        store.insert_event(event(0, Some("k"))).await.unwrap(),
        Inserted::New(_)
    ));
    assert!(matches!(
        store.insert_event(event(1, Some("k"))).await.unwrap(),
        Inserted::Duplicate(_)
    ));
    assert!(port.take_pushed(10).is_empty());
    assert_eq!(port.free(), 4);
}
