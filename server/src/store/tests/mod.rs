//! Store tests. The cases in `cases` run on every backend, each on a fresh
//! database: `store::tests::sqlite::NAME` and `store::tests::postgres::NAME`.
//! `instances` holds what only a shared store can show (several instances
//! on one PostgreSQL).
//!
//! The PostgreSQL tests need a server: `LOBSTER_TEST_POSTGRES_URL` (set by
//! scripts/test.sh). Without it they fail, saying how to start one.

mod cases;
mod fixture;

use lobster_shared::ids::{AgentId, RelayId, SessionId, WorkspaceName};

use crate::store::{Agent, NewAgent, Store};

/// The ids the cases name (the store trusts the ids it is handed).
pub fn agt(id: &str) -> AgentId {
    AgentId::from_stored(id)
}

pub fn ses(id: &str) -> SessionId {
    SessionId::from_stored(id)
}

/// Creates the agent `agt_N` (relay id `rly_N`, key hash `hN`).
pub async fn agent(store: &Store, n: u32) -> Agent {
    let agent = Agent {
        agent_id: agt(&format!("agt_{n}")),
        name: format!("a{n}"),
        workspace: WorkspaceName::default_workspace(),
        relay_id: RelayId::from_stored(format!("rly_{n}")),
    };
    store
        .create_agent(NewAgent {
            agent: agent.clone(),
            key_hash: format!("h{n}"),
        })
        .await
        .unwrap();
    agent
}

mod instances;
mod push;

/// One `#[tokio::test]` per case and backend.
macro_rules! on_every_backend {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $case() {
                    super::cases::$case(super::fixture::TestDb::sqlite().await).await;
                }
            )*
        }

        mod postgres {
            $(
                #[tokio::test]
                async fn $case() {
                    super::cases::$case(super::fixture::TestDb::postgres().await).await;
                }
            )*
        }
    };
}

on_every_backend!(
    concurrent_inserts_all_survive_reopen,
    a_repeated_dedup_key_returns_the_original_id,
    a_dedup_key_outlives_a_restart_for_its_window,
    claims_hand_out_in_acceptance_order_to_one_session_each,
    a_claim_in_doubt_takes_back_what_the_session_never_got,
    ack_delivers_nack_retries_then_fails,
    expired_leases_and_closed_sessions_return_events,
    the_history_records_every_outcome_in_order,
    leases_that_keep_timing_out_fail_after_the_last_attempt,
    dropped_writes_still_apply_and_close_waits_for_them,
    patterns_filter_by_event_type,
    only_star_and_question_mark_are_wildcards,
    replay_requeues_a_delivered_event_keeping_its_id,
    a_timed_out_lease_is_never_offered_again_to_its_session,
    replays_are_marked_until_acked,
    a_replayed_failed_event_gets_a_fresh_retry_budget,
    failed_events_are_kept_for_their_own_retention,
    a_restart_releases_leases_only_on_an_unshared_store,
    listings_page_newest_first_and_filter_by_status,
    sweeps_expire_then_forget_old_events,
    agents_are_found_by_key_hash_and_relay_id_until_revoked,
    writes_after_close_fail_cleanly,
);

mod agents;
mod callbacks;
mod workspaces;
