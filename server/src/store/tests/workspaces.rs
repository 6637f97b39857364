//! Stored workspaces on every backend, and the upgrade of a database made
//! before they existed.

use super::fixture;
use fixture::TestDb;

/// The case functions, named for `on_every_backend!`.
mod cases {
    use lobster_shared::ids::WorkspaceName;

    use super::super::agt;
    use super::TestDb;
    use crate::store::workspaces::StoredWorkspace;

    fn ws(name: &str) -> WorkspaceName {
        WorkspaceName::parse(name).unwrap()
    }

    fn workspace(name: &str) -> StoredWorkspace {
        StoredWorkspace {
            name: ws(name),
            signature_scheme: "github".into(),
            secrets: vec!["v1:AAAA".into(), "plain:second".into()],
            version: 1,
            created_at: 1_700_000_000_000,
        }
    }

    pub async fn workspaces_are_created_once_and_listed(db: TestDb) {
        let store = db.open().await;
        assert!(store.create_workspace(workspace("acme")).await.unwrap());
        assert!(!store.create_workspace(workspace("acme")).await.unwrap());
        assert!(store.create_workspace(workspace("beta")).await.unwrap());
        let listed = store.list_workspaces().await.unwrap();
        let names: Vec<&str> = listed.iter().map(|w| w.name.as_str()).collect();
        assert_eq!(names, ["acme", "beta"]);
        assert_eq!(
            store.workspace(&ws("acme")).await.unwrap(),
            Some(workspace("acme"))
        );
        assert_eq!(store.workspace_version(&ws("acme")).await.unwrap(), Some(1));
        assert_eq!(store.workspace(&ws("nope")).await.unwrap(), None);
        assert_eq!(store.workspace_version(&ws("nope")).await.unwrap(), None);
        store.close().await;
    }

    pub async fn replacing_secrets_bumps_the_version_and_survives_reopen(db: TestDb) {
        let store = db.open().await;
        store.create_workspace(workspace("acme")).await.unwrap();
        let new = vec!["plain:third".to_owned()];
        let replaced = store.replace_workspace_secrets(&ws("acme"), new.clone());
        assert_eq!(replaced.await.unwrap(), Some(2));
        let missing = store.replace_workspace_secrets(&ws("nope"), new.clone());
        assert_eq!(missing.await.unwrap(), None);
        store.close().await;

        let store = db.open().await;
        let found = store.workspace(&ws("acme")).await.unwrap().unwrap();
        assert_eq!((found.secrets, found.version), (new, 2));
        store.close().await;
    }

    /// A database written by a build without workspaces (schema 1) is
    /// upgraded on open and keeps its agents.
    pub async fn a_schema_1_database_is_upgraded(db: TestDb) {
        match &db {
            TestDb::Sqlite(dir) => {
                let conn = rusqlite::Connection::open(dir.path().join("relay.db")).unwrap();
                conn.execute_batch(include_str!("../sqlite/schema.sql"))
                    .unwrap();
                conn.execute_batch(
                    "INSERT INTO agents (agent_id, name, workspace, relay_id, key_hash, created_at)
                     VALUES ('agt_old', 'old', 'default', 'rly_old', 'hash_old', 1);
                     PRAGMA user_version = 1;",
                )
                .unwrap();
            }
            TestDb::Postgres(pg) => {
                let client = super::fixture::connect(&pg.url).await;
                client
                    .batch_execute(include_str!("../postgres/schema.sql"))
                    .await
                    .unwrap();
                client
                    .batch_execute(
                        "CREATE TABLE schema_version (version INTEGER PRIMARY KEY, applied_at BIGINT NOT NULL);
                         INSERT INTO schema_version VALUES (1, 1);
                         INSERT INTO agents (agent_id, name, workspace, relay_id, key_hash, created_at)
                         VALUES ('agt_old', 'old', 'default', 'rly_old', 'hash_old', 1);",
                    )
                    .await
                    .unwrap();
            }
        }
        let store = db.open().await;
        let agent = store
            .agent_by_relay_id(&lobster_shared::ids::RelayId::from_stored("rly_old"))
            .await
            .unwrap();
        assert_eq!(agent.map(|a| a.agent_id), Some(agt("agt_old")));
        assert!(store.create_workspace(workspace("acme")).await.unwrap());
        store.close().await;
        // Opening again finds schema 2 and changes nothing.
        let store = db.open().await;
        assert_eq!(store.list_workspaces().await.unwrap().len(), 1);
        store.close().await;
    }
}

on_every_backend!(
    workspaces_are_created_once_and_listed,
    replacing_secrets_bumps_the_version_and_survives_reopen,
    a_schema_1_database_is_upgraded,
);
