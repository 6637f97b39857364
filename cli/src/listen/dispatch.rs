//! The dispatcher: starts a handler task per event, at most N at once.
//!
//! Events come in arrival order from the reader. Each one waits for a
//! permit of the listener-wide semaphore (FIFO), so with `--concurrency 1`
//! an event starts only after the previous one was answered: strict order.
//! The reader never waits here, so pings keep flowing while handlers are
//! slow. Events not yet started when the session ends or Ctrl-C comes are
//! dropped unanswered; the relay hands them out again.

use std::sync::Arc;

use lobster_shared::wire::EventFrame;
use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::handler::Handler;
use super::writer::Outgoing;

/// What the dispatcher shares with the rest of the listener.
#[derive(Clone)]
pub struct Dispatch {
    /// Handles events.
    pub handler: Arc<Handler>,
    /// One permit per event that may be handled at once (`--concurrency`).
    pub permits: Arc<Semaphore>,
    /// Every handler task, across sessions, so Ctrl-C can wait for them.
    pub tracker: TaskTracker,
    /// Cancelled on Ctrl-C: no new event starts.
    pub stop: CancellationToken,
}

impl Dispatch {
    /// Starts handlers for `events` until the channel closes, `session` is
    /// cancelled or `stop` is. Answers go to `outgoing`.
    pub async fn run(
        self,
        mut events: mpsc::UnboundedReceiver<EventFrame>,
        outgoing: mpsc::Sender<Outgoing>,
        session: CancellationToken,
    ) {
        loop {
            let frame = tokio::select! {
                biased;
                () = self.stop.cancelled() => return,
                () = session.cancelled() => return,
                next = events.recv() => match next {
                    Some(frame) => frame,
                    None => return,
                },
            };
            let permit = tokio::select! {
                biased;
                () = self.stop.cancelled() => return,
                () = session.cancelled() => return,
                permit = self.permits.clone().acquire_owned() => match permit {
                    Ok(permit) => permit,
                    Err(_) => return,
                },
            };
            let handler = self.handler.clone();
            let outgoing = outgoing.clone();
            self.tracker.spawn(async move {
                if let Some(reply) = handler.handle(&frame).await
                    && outgoing.send(Outgoing::Reply(reply)).await.is_err()
                {
                    handler.ui().detail(format!(
                        "the answer for {} was not sent: the connection was lost; \
                         the relay will deliver the event again",
                        frame.id
                    ));
                }
                // Released only once the answer is queued, so with one
                // permit the answers go out in arrival order.
                drop(permit);
            });
        }
    }
}
