//! Call-order for the writes of one session.
//!
//! The store promises that a caller's writes apply in call order even when
//! it does not await them: a session fires its acks off and then releases
//! its leases when it closes, and the release must not overtake the acks
//! (the events would be handed out again). Writes here run concurrently on
//! a pool, so each session's writes form a lane: a write takes its place
//! when it is called and starts when the one before it has finished. Writes
//! of different sessions do not wait for each other.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

/// The last write of each lane that has one in flight. Cheap to clone.
#[derive(Clone, Default)]
pub(super) struct Lanes {
    state: Arc<Mutex<State>>,
}

#[derive(Default)]
struct State {
    /// Numbers every write, to tell a lane's last write from older ones.
    turns: u64,
    last: HashMap<String, Place>,
}

/// The latest write of a lane: finishes when `done` resolves.
struct Place {
    turn: u64,
    done: oneshot::Receiver<()>,
}

/// A write's place in its lane. Dropping it (when the write is finished,
/// failed or cancelled) lets the next write of the lane start.
pub(super) struct Turn {
    lanes: Lanes,
    lane: String,
    turn: u64,
    before: Option<oneshot::Receiver<()>>,
    _finished: oneshot::Sender<()>,
}

impl Lanes {
    /// Queues a write in `lane` now, behind the lane's previous write.
    pub(super) fn enter(&self, lane: &str) -> Turn {
        let (finished, done) = oneshot::channel();
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.turns += 1;
        let turn = state.turns;
        let before = state
            .last
            .insert(lane.to_owned(), Place { turn, done })
            .map(|place| place.done);
        Turn {
            lanes: self.clone(),
            lane: lane.to_owned(),
            turn,
            before,
            _finished: finished,
        }
    }
}

impl Turn {
    /// Waits until the lane's previous write has finished.
    pub(super) async fn wait(&mut self) {
        if let Some(before) = self.before.take() {
            // An error only means that write was dropped: it is over too.
            let _ = before.await;
        }
    }
}

impl Drop for Turn {
    fn drop(&mut self) {
        // Forget the lane when this was its last write, so lanes of closed
        // sessions do not pile up.
        let mut state = self.lanes.state.lock().unwrap_or_else(|e| e.into_inner());
        if state
            .last
            .get(&self.lane)
            .is_some_and(|p| p.turn == self.turn)
        {
            state.last.remove(&self.lane);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn a_lane_runs_in_call_order_and_forgets_itself() {
        let lanes = Lanes::default();
        let (log, _) = tokio::sync::broadcast::channel::<u32>(8);
        let mut first = lanes.enter("ses_1");
        let mut second = lanes.enter("ses_1");
        let mut other = lanes.enter("ses_2");
        let late = {
            let log = log.clone();
            tokio::spawn(async move {
                second.wait().await;
                let _ = log.send(2);
            })
        };
        let mut seen = log.subscribe();
        other.wait().await; // another lane does not wait
        first.wait().await;
        tokio::time::sleep(Duration::from_millis(10)).await;
        let _ = log.send(1);
        drop(first);
        late.await.unwrap();
        assert_eq!((seen.recv().await, seen.recv().await), (Ok(1), Ok(2)));
        drop(other);
        assert!(lanes.state.lock().unwrap().last.is_empty());
    }
}
