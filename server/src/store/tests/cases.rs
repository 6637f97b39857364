//! The store's behaviour, written once and run on every backend (see the
//! `on_every_backend!` list in `mod.rs`).

use std::time::Duration;

use bytes::Bytes;

use lobster_shared::ids::{EventId, RelayId, WorkspaceName};

use super::fixture::TestDb;
use super::{agt, ses};
use crate::store::*;

pub fn event(n: usize, key: Option<&str>) -> NewEvent {
    let event_type = if n.is_multiple_of(2) {
        "message.received"
    } else {
        "ping"
    };
    typed_event(n, event_type, key)
}

pub fn typed_event(n: usize, event_type: &str, key: Option<&str>) -> NewEvent {
    NewEvent {
        id: lobster_shared::ids::EventId::generate(),
        agent_id: agt("agt_1"),
        event_type: event_type.into(),
        received_at: now_ms(),
        headers: vec![("x-n".into(), n.to_string())],
        body: Bytes::from(vec![n as u8, 0xff]),
        dedup_key: key.map(str::to_owned),
    }
}

pub fn claim_req(session: &str, limit: usize, lease_ms: Millis) -> ClaimRequest {
    ClaimRequest {
        agent_id: agt("agt_1"),
        session_id: ses(session),
        limit,
        lease_ms,
        patterns: vec![],
        port: None,
        requeue_except: None,
    }
}

pub async fn insert(store: &Store, n: usize) -> EventId {
    match store.insert_event(event(n, None)).await.unwrap() {
        Inserted::New(id) => id,
        other => panic!("{other:?}"),
    }
}

/// The detail of agt_1's event `id`, which must exist.
pub async fn detail(store: &Store, id: &EventId) -> EventDetail {
    store
        .event_detail(&agt("agt_1"), id)
        .await
        .unwrap()
        .expect("the event exists")
}

pub async fn status(store: &Store, id: &EventId) -> (String, u32) {
    let d = detail(store, id).await;
    (d.summary.status, d.summary.attempts)
}

fn ids(claim: &Claim) -> Vec<EventId> {
    claim.deliveries.iter().map(|d| d.id.clone()).collect()
}

pub async fn concurrent_inserts_all_survive_reopen(db: TestDb) {
    let store = db.open().await;
    let tasks: Vec<_> = (0..200)
        .map(|n| tokio::spawn(store.insert_event(event(n, Some(&format!("k{n}"))))))
        .collect();
    for task in tasks {
        assert!(matches!(task.await.unwrap().unwrap(), Inserted::New(_)));
    }
    store.close().await;
    let reopened = db.open().await;
    assert_eq!(reopened.pending_count(&agt("agt_1")).await.unwrap(), 200);
}

pub async fn a_repeated_dedup_key_returns_the_original_id(db: TestDb) {
    let store = db.open().await;
    let first = store.insert_event(event(1, Some("msg_1"))).await.unwrap();
    let second = store.insert_event(event(2, Some("msg_1"))).await.unwrap();
    let Inserted::New(id) = first else { panic!() };
    assert_eq!(second, Inserted::Duplicate(id));
    assert_eq!(store.pending_count(&agt("agt_1")).await.unwrap(), 1);
}

/// Replay protection holds across a restart: the key still names its event
/// inside its window, and is forgotten after it.
pub async fn a_dedup_key_outlives_a_restart_for_its_window(db: TestDb) {
    let store = db.open().await;
    let Inserted::New(id) = store.insert_event(event(1, Some("msg_1"))).await.unwrap() else {
        panic!("stored")
    };
    store.close().await;
    let reopened = db.open().await;
    let again = reopened
        .insert_event(event(2, Some("msg_1")))
        .await
        .unwrap();
    assert_eq!(again, Inserted::Duplicate(id));
    reopened
        .clock()
        .advance(Duration::from_millis(DEDUP_WINDOW_MS as u64 + 1));
    let later = reopened
        .insert_event(event(3, Some("msg_1")))
        .await
        .unwrap();
    assert!(matches!(later, Inserted::New(_)), "{later:?}");
    assert_eq!(reopened.pending_count(&agt("agt_1")).await.unwrap(), 2);
}

pub async fn claims_hand_out_in_acceptance_order_to_one_session_each(db: TestDb) {
    let store = db.open().await;
    let mut inserted = vec![];
    for n in 0..5 {
        inserted.push(insert(&store, n).await);
    }
    let a = store.claim(claim_req("ses_a", 3, 60_000)).await.unwrap();
    let b = store.claim(claim_req("ses_b", 10, 60_000)).await.unwrap();
    assert_eq!(ids(&a), inserted[..3]);
    assert_eq!(ids(&b), inserted[3..]);
    assert_eq!(
        a.deliveries[0].headers,
        vec![("x-n".to_string(), "0".to_string())]
    );
    assert_eq!(a.deliveries[0].body, vec![0, 0xff]);
    assert_eq!(a.deliveries[0].attempt, 1);
    let c = store.claim(claim_req("ses_c", 10, 60_000)).await.unwrap();
    assert!(c.deliveries.is_empty());
}

pub async fn ack_delivers_nack_retries_then_fails(db: TestDb) {
    let store = db.open().await;
    let id = insert(&store, 0).await;
    for attempt in 1..=3 {
        let claim = store.claim(claim_req("ses_a", 1, 60_000)).await.unwrap();
        assert_eq!(claim.deliveries[0].attempt, attempt);
        store
            .nack(&agt("agt_1"), &ses("ses_a"), &id, "500")
            .await
            .unwrap();
        store.clock().advance(Duration::from_millis(3)); // past the 1 ms retry delay
    }
    assert_eq!(status(&store, &id).await, ("failed".into(), 3));
    let id2 = insert(&store, 1).await;
    store.claim(claim_req("ses_a", 1, 60_000)).await.unwrap();
    store
        .ack(&agt("agt_1"), &ses("ses_a"), vec![id2.clone()])
        .await
        .unwrap();
    assert_eq!(status(&store, &id2).await, ("delivered".into(), 1));
    let history = detail(&store, &id).await.history;
    let outcomes: Vec<_> = history.iter().map(|a| a.outcome.as_str()).collect();
    assert_eq!(outcomes, ["nacked"; 3]);
}

pub async fn expired_leases_and_closed_sessions_return_events(db: TestDb) {
    let store = db.open().await;
    let id = insert(&store, 0).await;
    let first = store.claim(claim_req("ses_a", 1, 0)).await.unwrap();
    assert_eq!(first.deliveries.len(), 1);
    // Room for two, so the claim is not full and says what is due next.
    let again = store.claim(claim_req("ses_b", 2, 60_000)).await.unwrap();
    assert_eq!(again.deliveries.len(), 1);
    assert_eq!(again.deliveries[0].id, id);
    assert_eq!(again.deliveries[0].attempt, 2);
    assert!(
        again.next_due.is_some(),
        "the live lease is the next thing due"
    );
    store.release(&agt("agt_1"), &ses("ses_b")).await.unwrap();
    assert_eq!(status(&store, &id).await.0, "pending");
    let third = store.claim(claim_req("ses_c", 1, 60_000)).await.unwrap();
    assert_eq!(third.deliveries[0].attempt, 3);
}

/// A claim the session never saw the answer of (the store failed after
/// committing it) leased events the session does not have: its next claim,
/// in doubt, takes them back, and leaves the ones it did send alone.
pub async fn a_claim_in_doubt_takes_back_what_the_session_never_got(db: TestDb) {
    let store = db.open().await;
    let sent = insert(&store, 0).await;
    let lost = insert(&store, 1).await;
    let first = store.claim(claim_req("ses_a", 1, 60_000)).await.unwrap();
    assert_eq!(ids(&first), std::slice::from_ref(&sent));
    // This claim's answer is "lost".
    store.claim(claim_req("ses_a", 1, 60_000)).await.unwrap();
    let blind = store.claim(claim_req("ses_a", 10, 60_000)).await.unwrap();
    assert!(blind.deliveries.is_empty(), "both are leased to ses_a");
    let mut doubt = claim_req("ses_a", 10, 60_000);
    doubt.requeue_except = Some(vec![sent.clone()]);
    let again = store.claim(doubt).await.unwrap();
    assert_eq!(
        ids(&again),
        std::slice::from_ref(&lost),
        "the lost lease comes back, the sent one stays"
    );
    assert_eq!(again.deliveries[0].attempt, 2);
    let detail = detail(&store, &lost).await;
    let outcomes: Vec<_> = detail.history.iter().map(|a| a.outcome.as_str()).collect();
    assert_eq!(outcomes, ["interrupted"]);
    // An expired lease of the session is offered to it again as well.
    store
        .ack(&agt("agt_1"), &ses("ses_a"), vec![sent, lost])
        .await
        .unwrap();
    let late = insert(&store, 2).await;
    store.claim(claim_req("ses_a", 1, 0)).await.unwrap();
    let expired = store.claim(claim_req("ses_a", 1, 60_000)).await.unwrap();
    assert!(
        expired.deliveries.is_empty(),
        "never offered back to the session that let it time out"
    );
    let mut doubt = claim_req("ses_a", 1, 60_000);
    doubt.requeue_except = Some(vec![]);
    assert_eq!(ids(&store.claim(doubt).await.unwrap()), [late]);
}

pub async fn the_history_records_every_outcome_in_order(db: TestDb) {
    let store = db.open().await;
    let id = insert(&store, 0).await;
    store.claim(claim_req("ses_a", 1, 0)).await.unwrap();
    store.claim(claim_req("ses_b", 1, 60_000)).await.unwrap(); // times out ses_a
    store.release(&agt("agt_1"), &ses("ses_b")).await.unwrap();
    store.claim(claim_req("ses_c", 1, 60_000)).await.unwrap();
    store
        .nack(&agt("agt_1"), &ses("ses_c"), &id, "boom")
        .await
        .unwrap();
    let detail = detail(&store, &id).await;
    let history: Vec<_> = detail
        .history
        .iter()
        .map(|a| {
            (
                a.attempt,
                a.session_id.clone().unwrap(),
                a.outcome.as_str(),
                a.error.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        history,
        [
            (
                1,
                ses("ses_a"),
                "timeout",
                Some("not acked within the ack timeout")
            ),
            (
                2,
                ses("ses_b"),
                "interrupted",
                Some("session closed before the ack")
            ),
            (3, ses("ses_c"), "nacked", Some("boom")),
        ]
    );
    assert_eq!(detail.summary.status, "failed", "three attempts used up");
}

pub async fn leases_that_keep_timing_out_fail_after_the_last_attempt(db: TestDb) {
    let store = db.open().await;
    let id = insert(&store, 0).await;
    // Each timed-out lease goes to another session: never twice to one.
    for attempt in 1..=3 {
        let session = format!("ses_{attempt}");
        let claim = store.claim(claim_req(&session, 1, 0)).await.unwrap();
        assert_eq!(claim.deliveries[0].attempt, attempt);
    }
    let last = store.claim(claim_req("ses_4", 1, 0)).await.unwrap();
    assert!(last.deliveries.is_empty());
    assert_eq!(last.next_due, None);
    assert_eq!(status(&store, &id).await, ("failed".into(), 3));
}

/// Dead letters: a replay gives a failed event the whole retry budget again
/// (by nacks or by timeouts), while its attempt number goes on.
pub async fn a_replayed_failed_event_gets_a_fresh_retry_budget(db: TestDb) {
    let store = db.open().await;
    let id = insert(&store, 0).await;
    time_out_until_failed(&store, &id, 1..=3).await;

    store.replay(&agt("agt_1"), &id).await.unwrap();
    // Three more attempts, by nacks this time: attempt 4 and 5 are retried,
    // attempt 6 uses the new budget up.
    for attempt in 4..=6 {
        let delivery = claim_when_due(&store, "ses_a").await;
        assert_eq!(delivery.attempt, attempt, "the attempt number goes on");
        store
            .nack(&agt("agt_1"), &ses("ses_a"), &id, "500")
            .await
            .unwrap();
    }
    assert_eq!(status(&store, &id).await, ("failed".into(), 6));

    // And again, by timeouts.
    store.replay(&agt("agt_1"), &id).await.unwrap();
    time_out_until_failed(&store, &id, 7..=9).await;
}

/// Leases the agent's only event to a new session per attempt in
/// `attempts`, each lease running out at once, until it is `failed`.
async fn time_out_until_failed(
    store: &Store,
    id: &EventId,
    attempts: std::ops::RangeInclusive<u32>,
) {
    let last = *attempts.end();
    for attempt in attempts {
        let session = format!("ses_t{attempt}");
        let claim = store.claim(claim_req(&session, 1, 0)).await.unwrap();
        assert_eq!(claim.deliveries[0].attempt, attempt);
    }
    let after = store.claim(claim_req("ses_after", 1, 0)).await.unwrap();
    assert!(after.deliveries.is_empty(), "no attempt after the budget");
    assert_eq!(status(store, id).await, ("failed".into(), last));
}

/// The next delivery for `session`, its retry time (1 ms) passed.
async fn claim_when_due(store: &Store, session: &str) -> Delivery {
    store.clock().advance(Duration::from_millis(5));
    let claim = store.claim(claim_req(session, 1, 60_000)).await.unwrap();
    claim
        .deliveries
        .into_iter()
        .next()
        .unwrap_or_else(|| panic!("nothing came due for {session}"))
}

/// A session fires its acks off without awaiting them, then releases its
/// leases when it closes: the release must not overtake the acks.
/// A write runs to its end even if its caller drops the future, and
/// `close` waits for it. (Nothing orders writes in flight: a session that
/// needs an order awaits, see `session::driver::writes`.)
pub async fn dropped_writes_still_apply_and_close_waits_for_them(db: TestDb) {
    let store = db.open().await;
    for n in 0..50 {
        insert(&store, n).await;
    }
    let claim = store.claim(claim_req("ses_a", 50, 60_000)).await.unwrap();
    for id in ids(&claim) {
        drop(store.ack(&agt("agt_1"), &ses("ses_a"), vec![id]));
    }
    store.close().await;
    let store = db.open().await;
    assert_eq!(store.pending_count(&agt("agt_1")).await.unwrap(), 0);
    for id in ids(&claim) {
        let history = detail(&store, &id).await.history;
        assert_eq!(history.len(), 1, "only the ack: {history:?}");
    }
}

pub async fn patterns_filter_by_event_type(db: TestDb) {
    let store = db.open().await;
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

pub async fn only_star_and_question_mark_are_wildcards(db: TestDb) {
    let store = db.open().await;
    for (n, event_type) in ["order_paid", "orderXpaid", "100%", "1000"]
        .iter()
        .enumerate()
    {
        store
            .insert_event(typed_event(n, event_type, None))
            .await
            .unwrap();
    }
    for (pattern, expected) in [
        ("order_paid", vec!["order_paid"]),
        ("order?paid", vec!["order_paid", "orderXpaid"]),
        ("100%", vec!["100%"]),
        ("10*", vec!["100%", "1000"]),
        ("*", vec!["order_paid", "orderXpaid", "100%", "1000"]),
    ] {
        let mut req = claim_req("ses_a", 10, 60_000);
        req.patterns = vec![pattern.into()];
        let claim = store.claim(req).await.unwrap();
        let types: Vec<_> = claim
            .deliveries
            .iter()
            .map(|d| d.event_type.as_str())
            .collect();
        assert_eq!(types, expected, "pattern {pattern}");
        store.release(&agt("agt_1"), &ses("ses_a")).await.unwrap();
    }
}

pub async fn replay_requeues_a_delivered_event_keeping_its_id(db: TestDb) {
    let store = db.open().await;
    let id = insert(&store, 0).await;
    let nope = EventId::generate();
    let replay = store.replay(&agt("agt_1"), &nope).await.unwrap();
    assert_eq!(replay, ReplayOutcome::NotFound);
    store.claim(claim_req("ses_a", 1, 60_000)).await.unwrap();
    let replay = store.replay(&agt("agt_1"), &id).await.unwrap();
    assert_eq!(replay, ReplayOutcome::InFlight);
    store
        .ack(&agt("agt_1"), &ses("ses_a"), vec![id.clone()])
        .await
        .unwrap();
    let replay = store.replay(&agt("agt_1"), &id).await.unwrap();
    assert_eq!(replay, ReplayOutcome::Queued);
    let claim = store.claim(claim_req("ses_a", 1, 60_000)).await.unwrap();
    let first = &claim.deliveries[0];
    assert_eq!((first.id.as_str(), first.attempt), (id.as_str(), 2));
    // Both deliveries stay in the history, each with the session that
    // acked it, however the backend keeps the last one.
    store.clock().advance(Duration::from_millis(5));
    store
        .ack(&agt("agt_1"), &ses("ses_b"), vec![id.clone()])
        .await
        .unwrap();
    let detail = detail(&store, &id).await;
    let history: Vec<_> = detail
        .history
        .iter()
        .map(|a| (a.attempt, a.session_id.clone(), a.outcome.as_str()))
        .collect();
    assert_eq!(
        history,
        [
            (1, Some(ses("ses_a")), "delivered"),
            (2, Some(ses("ses_b")), "delivered"),
        ]
    );
    assert!(detail.history[0].at < detail.history[1].at);
}

/// A session that let a lease time out still holds the event (a paused
/// laptop): it must not get it a second time. Another session may, and a
/// late ack from the holder still delivers it.
pub async fn a_timed_out_lease_is_never_offered_again_to_its_session(db: TestDb) {
    let store = db.open().await;
    let first = insert(&store, 0).await;
    let second = insert(&store, 2).await;
    let held = store.claim(claim_req("ses_a", 1, 0)).await.unwrap();
    assert_eq!(ids(&held), [first.as_str()]);
    let again = store.claim(claim_req("ses_a", 5, 60_000)).await.unwrap();
    assert_eq!(
        ids(&again),
        [second.as_str()],
        "only the event it never held"
    );
    store
        .ack(
            &agt("agt_1"),
            &ses("ses_a"),
            vec![first.clone(), second.clone()],
        )
        .await
        .unwrap();
    assert_eq!(status(&store, &first).await, ("delivered".into(), 1));

    let third = insert(&store, 4).await;
    store.claim(claim_req("ses_b", 1, 0)).await.unwrap();
    let still_b = store.claim(claim_req("ses_b", 1, 60_000)).await.unwrap();
    assert!(still_b.deliveries.is_empty());
    assert_eq!(
        still_b.next_due, None,
        "nothing is due for ses_b: no busy loop"
    );
    let other = store.claim(claim_req("ses_c", 1, 60_000)).await.unwrap();
    assert_eq!(ids(&other), [third.as_str()]);
    assert_eq!(other.deliveries[0].attempt, 2);
}

/// An explicit replay is marked in its deliveries until it is acked, even
/// across a nack; ordinary deliveries and redeliveries are not.
pub async fn replays_are_marked_until_acked(db: TestDb) {
    let store = db.open().await;
    let id = insert(&store, 0).await;
    let claim = store.claim(claim_req("ses_a", 1, 60_000)).await.unwrap();
    assert!(!claim.deliveries[0].replay);
    store
        .ack(&agt("agt_1"), &ses("ses_a"), vec![id.clone()])
        .await
        .unwrap();
    store.replay(&agt("agt_1"), &id).await.unwrap();
    let claim = store.claim(claim_req("ses_a", 1, 60_000)).await.unwrap();
    assert!(claim.deliveries[0].replay);
    store
        .nack(&agt("agt_1"), &ses("ses_a"), &id, "later")
        .await
        .unwrap();
    // The retry comes due after the policy's 1 ms backoff.
    let retry = claim_when_due(&store, "ses_a").await;
    assert!(retry.replay, "a retried replay is still a replay");
    store
        .ack(&agt("agt_1"), &ses("ses_a"), vec![id.clone()])
        .await
        .unwrap();
    let other = insert(&store, 2).await;
    let claim = store.claim(claim_req("ses_a", 1, 60_000)).await.unwrap();
    assert_eq!(ids(&claim), [other]);
    assert!(!claim.deliveries[0].replay);
}

/// SQLite has one instance: at start no lease can be live. On a shared
/// store other instances may hold leases, which only expire by time.
pub async fn a_restart_releases_leases_only_on_an_unshared_store(db: TestDb) {
    let store = db.open().await;
    let id = insert(&store, 0).await;
    store.claim(claim_req("ses_a", 1, 60_000)).await.unwrap();
    store.close().await;
    let reopened = db.open().await;
    let claim = reopened.claim(claim_req("ses_b", 1, 60_000)).await.unwrap();
    if reopened.is_shared() {
        assert!(claim.deliveries.is_empty());
        assert_eq!(status(&reopened, &id).await, ("delivering".into(), 1));
    } else {
        assert_eq!(claim.deliveries[0].id, id);
    }
}

pub async fn listings_page_newest_first_and_filter_by_status(db: TestDb) {
    let store = db.open().await;
    let mut inserted = vec![];
    for n in 0..5 {
        inserted.push(insert(&store, n).await);
    }
    store.claim(claim_req("ses_a", 2, 60_000)).await.unwrap();
    store
        .ack(&agt("agt_1"), &ses("ses_a"), inserted[..2].to_vec())
        .await
        .unwrap();
    let list = |status, limit, before: Option<&EventId>| {
        store.list_events(EventQuery {
            agent_id: agt("agt_1"),
            status,
            limit,
            before: before.cloned(),
        })
    };
    let listed = |events: Vec<EventSummary>| events.into_iter().map(|e| e.id).collect::<Vec<_>>();
    let page = list(None, 3, None).await.unwrap();
    assert_eq!(listed(page), [4, 3, 2].map(|i| inserted[i].clone()));
    let rest = list(None, 10, Some(&inserted[2])).await.unwrap();
    assert_eq!(rest[0].status, "delivered");
    assert_eq!(rest[0].attempts, 1);
    assert_eq!(listed(rest), [1, 0].map(|i| inserted[i].clone()));
    let pending = list(Some(EventStatus::Pending), 10, None).await.unwrap();
    assert_eq!(listed(pending), [4, 3, 2].map(|i| inserted[i].clone()));
    let other = store.list_events(EventQuery {
        agent_id: agt("agt_2"),
        status: None,
        limit: 10,
        before: None,
    });
    assert!(other.await.unwrap().is_empty());
}

/// Dead letters outlive delivered events: `--failed-retention` is their own.
pub async fn failed_events_are_kept_for_their_own_retention(db: TestDb) {
    let store = db.open().await;
    let failed = insert(&store, 0).await;
    time_out_until_failed(&store, &failed, 1..=3).await;
    let delivered = insert(&store, 1).await;
    store.claim(claim_req("ses_a", 1, 60_000)).await.unwrap();
    store
        .ack(&agt("agt_1"), &ses("ses_a"), vec![delivered.clone()])
        .await
        .unwrap();
    store.clock().advance(Duration::from_millis(5));
    let day = Duration::from_secs(86_400);
    store.sweep(Duration::ZERO, day).await.unwrap();
    let gone = |id: EventId| {
        let store = store.clone();
        async move {
            store
                .event_detail(&agt("agt_1"), &id)
                .await
                .unwrap()
                .is_none()
        }
    };
    assert!(gone(delivered).await, "delivered: past --retention");
    assert!(
        !gone(failed.clone()).await,
        "failed: kept for --failed-retention"
    );
    store.sweep(day, Duration::ZERO).await.unwrap();
    assert!(gone(failed).await, "failed: past --failed-retention");
}

pub async fn sweeps_expire_then_forget_old_events(db: TestDb) {
    let store = db.open().await;
    let delivered = match store.insert_event(event(0, Some("k0"))).await.unwrap() {
        Inserted::New(id) => id,
        other => panic!("{other:?}"),
    };
    let undelivered = insert(&store, 1).await;
    store.claim(claim_req("ses_a", 1, 60_000)).await.unwrap();
    store
        .ack(&agt("agt_1"), &ses("ses_a"), vec![delivered.clone()])
        .await
        .unwrap();
    store.clock().advance(Duration::from_millis(5));
    // Expires one, forgets the delivered event (and its history); the
    // dedup key stays for its own window.
    assert_eq!(
        store.sweep(Duration::ZERO, Duration::ZERO).await.unwrap(),
        2
    );
    assert_eq!(status(&store, &undelivered).await.0, "expired");
    assert!(
        store
            .event_detail(&agt("agt_1"), &delivered)
            .await
            .unwrap()
            .is_none()
    );
    let again = store.insert_event(event(0, Some("k0"))).await.unwrap();
    assert_eq!(again, Inserted::Duplicate(delivered));
    store.clock().advance(Duration::from_millis(5));
    assert_eq!(
        store.sweep(Duration::ZERO, Duration::ZERO).await.unwrap(),
        1
    );
    assert!(
        store
            .event_detail(&agt("agt_1"), &undelivered)
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(store.pending_count(&agt("agt_1")).await.unwrap(), 0);
}

pub async fn agents_are_found_by_key_hash_and_relay_id_until_revoked(db: TestDb) {
    let store = db.open().await;
    let agent = Agent {
        agent_id: agt("agt_1"),
        name: "a".into(),
        workspace: WorkspaceName::default_workspace(),
        relay_id: RelayId::from_stored("rly_1"),
    };
    let new = NewAgent {
        agent: agent.clone(),
        key_hash: "h1".into(),
    };
    store.create_agent(new.clone()).await.unwrap();
    assert!(store.create_agent(new).await.is_err(), "ids are unique");
    let found = store.agent_by_key_hash("h1").await.unwrap();
    assert_eq!(found, Some(agent.clone()));
    let found = store
        .agent_by_relay_id(&RelayId::from_stored("rly_1"))
        .await
        .unwrap();
    assert_eq!(found, Some(agent.clone()));
    insert(&store, 0).await;
    let seen_at = now_ms();
    store
        .touch_agents(vec![(agt("agt_1"), seen_at), (agt("agt_unknown"), seen_at)])
        .await
        .unwrap();
    let listed = store.list_agents().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].agent, agent);
    assert_eq!(listed[0].pending_events, 1);
    assert_eq!(listed[0].last_seen, Some(seen_at));
    assert_eq!(store.agent_count().await.unwrap(), 1);
    let before_revoking = now_ms();
    assert!(store.revoke_agent(&agt("agt_1")).await.unwrap());
    assert!(!store.revoke_agent(&agt("agt_1")).await.unwrap());
    assert_eq!(store.agent_by_key_hash("h1").await.unwrap(), None);
    assert_eq!(
        store
            .agent_by_relay_id(&RelayId::from_stored("rly_1"))
            .await
            .unwrap(),
        None
    );
    assert!(store.list_agents().await.unwrap().is_empty());
    let revoked = store.revoked_since(before_revoking).await.unwrap();
    assert_eq!(revoked, [agt("agt_1")]);
    let later = store.revoked_since(now_ms() + 1_000).await.unwrap();
    assert!(later.is_empty());
}

pub async fn writes_after_close_fail_cleanly(db: TestDb) {
    let store = db.open().await;
    store.ping().await.unwrap();
    store.close().await;
    assert!(matches!(
        store.insert_event(event(0, None)).await,
        Err(StoreError::Closed)
    ));
}
