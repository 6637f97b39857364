//! Stored callbacks on every backend: set, replace, list, clear; a revoked
//! agent's callback is never listed; they survive a reopen.

use super::fixture;
use fixture::TestDb;

/// The case functions, named for `on_every_backend!`.
mod cases {
    use super::super::{agent, agt};
    use super::TestDb;
    use crate::store::Agent;

    pub async fn callbacks_are_set_replaced_listed_and_cleared(db: TestDb) {
        let store = db.open().await;
        let one = agent(&store, 1).await;
        let two = agent(&store, 2).await;
        assert_eq!(store.callback(&agt("agt_1")).await.unwrap(), None);
        let set = store.set_callback(&agt("agt_1"), "v1:url1".into(), "v1:sec1".into());
        assert_eq!(set.await.unwrap(), 1);
        let set = store.set_callback(&agt("agt_2"), "v1:url2".into(), "v1:sec2".into());
        assert_eq!(set.await.unwrap(), 1);
        let replaced = store.set_callback(&agt("agt_1"), "v1:url1b".into(), "v1:sec1b".into());
        assert_eq!(
            replaced.await.unwrap(),
            2,
            "a replacement bumps the version"
        );
        let found = store.callback(&agt("agt_1")).await.unwrap().unwrap();
        assert_eq!(found.agent, one);
        assert_eq!(
            (found.url.as_str(), found.secret.as_str(), found.version),
            ("v1:url1b", "v1:sec1b", 2)
        );
        assert!(found.updated_at >= found.created_at);
        let listed = store.list_callbacks().await.unwrap();
        let agents: Vec<&Agent> = listed.iter().map(|c| &c.agent).collect();
        assert_eq!(agents, [&one, &two]);
        store.close().await;

        let store = db.open().await;
        assert_eq!(store.list_callbacks().await.unwrap().len(), 2, "kept");
        assert!(store.revoke_agent(&agt("agt_2")).await.unwrap());
        assert_eq!(
            store.callback(&agt("agt_2")).await.unwrap(),
            None,
            "revoked"
        );
        assert_eq!(store.list_callbacks().await.unwrap().len(), 1);
        assert!(store.clear_callback(&agt("agt_1")).await.unwrap());
        assert!(!store.clear_callback(&agt("agt_1")).await.unwrap());
        assert_eq!(store.callback(&agt("agt_1")).await.unwrap(), None);
        assert!(store.list_callbacks().await.unwrap().is_empty());
        store.close().await;
    }
}

on_every_backend!(callbacks_are_set_replaced_listed_and_cleared);
