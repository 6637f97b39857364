//! The agent cache's warm-up read on every backend: unrevoked agents with
//! their key hashes, the most recently seen first, up to a limit.

use super::fixture;
use fixture::TestDb;

/// The case functions, named for `on_every_backend!`.
mod cases {
    use super::super::{agent, agt};
    use super::TestDb;

    pub async fn live_agents_come_with_their_key_hashes_recently_seen_first(db: TestDb) {
        let store = db.open().await;
        assert!(store.live_agents(10).await.unwrap().is_empty());
        let mut agents = Vec::new();
        for n in 1..=4 {
            agents.push(agent(&store, n).await);
        }
        // Seen: agt_2 last, then agt_4; agt_1 and agt_3 never.
        store
            .touch_agents(vec![(agt("agt_4"), 1_000), (agt("agt_2"), 2_000)])
            .await
            .unwrap();
        assert!(store.revoke_agent(&agt("agt_3")).await.unwrap());

        let live = store.live_agents(10).await.unwrap();
        let hashes: Vec<&str> = live.iter().map(|(hash, _)| hash.as_str()).collect();
        assert_eq!(hashes, ["h2", "h4", "h1"], "revoked agt_3 is left out");
        let by_hash = |hash: &str| live.iter().find(|(h, _)| h == hash).unwrap().1.clone();
        assert_eq!(by_hash("h1"), agents[0]);
        assert_eq!(by_hash("h2"), agents[1]);
        assert_eq!(by_hash("h4"), agents[3]);

        let capped = store.live_agents(2).await.unwrap();
        let hashes: Vec<&str> = capped.iter().map(|(hash, _)| hash.as_str()).collect();
        assert_eq!(
            hashes,
            ["h2", "h4"],
            "the limit keeps the most recently seen"
        );
        assert!(store.live_agents(0).await.unwrap().is_empty());
        store.close().await;
    }
}

on_every_backend!(live_agents_come_with_their_key_hashes_recently_seen_first);
