//! The order of one session's writes.
//!
//! The store does not order writes in flight (`store::Backend`): two
//! writes under way at once may apply in either order. So the session
//! orders its own, by awaiting where the order matters:
//!
//! - Acks are stored in the background and the loop never waits for them.
//!   Nor do they wait for each other: acks of different events commute, and
//!   acking an event twice changes nothing.
//! - Claims and nacks are awaited by the loop, so each is stored before
//!   the session's next write.
//! - A write that an ack in flight could undo, or be undone by, first waits
//!   until every earlier ack is stored ([`Writes::settled`]): the release
//!   when the session ends (it would return acked events to the queue, and
//!   another session would get them again), a claim in doubt (it takes back
//!   every lease not in flight, and an acked event no longer is), and a
//!   nack of an event not in flight (an agent answering one event twice,
//!   or late: its answers apply in the order it gave them). A nack of an
//!   event in flight cannot be acked already, so it does not wait.
//!
//! The cost is one counter per session, made with its first ack: an ack
//! adds no task or allocation of its own, and nothing waits unless an ack
//! is still under way.

use lobster_shared::ids::{AgentId, EventId, SessionId};
use tokio::task::JoinHandle;
use tokio_util::task::TaskTracker;

use crate::state::AppState;
use crate::store::StoreError;

/// The session's acks under way.
#[derive(Default)]
pub(super) struct Writes {
    /// Closed from the start, so that `wait` means "until none is under
    /// way"; `None` until the session's first ack (an idle session keeps
    /// no counter).
    acks: Option<TaskTracker>,
}

impl Writes {
    /// Stores acks in the background, as a task of the relay's sessions
    /// (shutdown waits for it); the handle says whether they were stored.
    pub(super) fn ack(
        &mut self,
        state: &AppState,
        agent_id: &AgentId,
        session_id: &SessionId,
        ids: Vec<EventId>,
    ) -> JoinHandle<bool> {
        let write = state.store.ack(agent_id, session_id, ids);
        let tracked = self.acks().track_future(log_failure(write, "ack"));
        state.sessions.spawn(tracked)
    }

    fn acks(&mut self) -> &TaskTracker {
        self.acks.get_or_insert_with(|| {
            let acks = TaskTracker::new();
            acks.close();
            acks
        })
    }

    /// Resolves once every ack started so far is stored (or failed).
    pub(super) async fn settled(&self) {
        if let Some(acks) = &self.acks {
            acks.wait().await;
        }
    }
}

/// Runs a store write; returns whether it succeeded.
pub(super) async fn log_failure(
    write: impl Future<Output = Result<(), StoreError>>,
    what: &'static str,
) -> bool {
    match write.await {
        Ok(()) => true,
        Err(err) => {
            tracing::warn!(error = %err, "{what} not stored; the event will be delivered again");
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::sync::oneshot;

    use super::*;

    /// `settled` waits for every ack under way, and for nothing else.
    #[tokio::test]
    async fn settled_waits_for_the_acks_under_way() {
        let mut writes = Writes::default();
        tokio::time::timeout(Duration::from_secs(1), writes.settled())
            .await
            .expect("no ack yet: nothing to wait for");
        let acks = writes.acks().clone();
        let (first_done, first) = oneshot::channel::<()>();
        let (second_done, second) = oneshot::channel::<()>();
        tokio::spawn(acks.track_future(first));
        tokio::spawn(acks.track_future(second));
        let mut settled = Box::pin(writes.settled());
        first_done.send(()).unwrap();
        assert!(
            tokio::time::timeout(Duration::from_millis(50), &mut settled)
                .await
                .is_err(),
            "one ack is still under way"
        );
        second_done.send(()).unwrap();
        tokio::time::timeout(Duration::from_secs(1), settled)
            .await
            .expect("both acks are stored");
    }
}
