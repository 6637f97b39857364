//! The dispatcher: starts a handler per event, at most N at once.
//!
//! Events come in arrival order from the reader. Each one waits for a
//! permit of the listener-wide semaphore (FIFO), so with `--concurrency 1`
//! an event starts only after the previous one was answered: strict order.
//! The reader never waits here, so pings keep flowing while handlers are
//! slow. Events not yet started when the session ends or Ctrl-C comes are
//! dropped unanswered, and a line says how many: the relay hands them out
//! again (to this listener once it reconnects, or to another), so starting
//! them anyway would only deliver them twice.

use std::sync::Arc;

use futures_util::StreamExt as _;
use futures_util::stream::FuturesUnordered;
use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::handler::Handler;
use crate::agent::frame::Event;
use crate::agent::writer::Outgoing;
use crate::ui::plural;

/// What the dispatcher shares with the rest of the listener.
#[derive(Clone)]
pub struct Dispatch {
    /// Handles events.
    pub handler: Arc<Handler>,
    /// One permit per event that may be handled at once (`--concurrency`).
    pub permits: Arc<Semaphore>,
    /// Every dispatcher, across sessions (each finishes the handlers it
    /// started, even after its session), so Ctrl-C can wait for them.
    pub tracker: TaskTracker,
    /// Cancelled on Ctrl-C: no new event starts.
    pub stop: CancellationToken,
}

impl Dispatch {
    /// Starts handlers for `events` until the channel closes, `session` is
    /// cancelled or `stop` is, then waits for the handlers already started.
    /// Answers go to `outgoing`.
    ///
    /// The handlers run inside this future (one `FuturesUnordered`), not as
    /// a task each: the listener runs on one thread, so a task per event
    /// bought nothing but its spawn, scheduling and `Arc` clones. Run it as
    /// a task of `tracker` so Ctrl-C waits for it.
    pub async fn run(
        self,
        mut events: mpsc::UnboundedReceiver<Event>,
        outgoing: mpsc::Sender<Outgoing>,
        session: CancellationToken,
    ) {
        let ui = self.handler.ui().clone();
        // Whatever way this ends, events still queued here were received but
        // never started: drop them and say so. The relay delivers them again.
        let dropped = |waiting: Option<&Event>, events: &mpsc::UnboundedReceiver<Event>| {
            let n = events.len() + usize::from(waiting.is_some());
            if n > 0 {
                ui.status(format!(
                    "{} received but not started {} dropped; the relay delivers {} again.",
                    plural(n as u64, "event"),
                    if n == 1 { "was" } else { "were" },
                    if n == 1 { "it" } else { "them" },
                ));
            }
        };
        let handler = &*self.handler;
        let outgoing = &outgoing;
        let mut running = FuturesUnordered::new();
        'taking: loop {
            let frame = tokio::select! {
                biased;
                () = self.stop.cancelled() => break dropped(None, &events),
                () = session.cancelled() => break dropped(None, &events),
                Some(()) = running.next() => continue,
                next = events.recv() => match next {
                    Some(frame) => frame,
                    None => break,
                },
            };
            // Waits in the semaphore's queue (FIFO across sessions) while
            // the handlers already running go on, and release permits.
            let acquire = self.permits.clone().acquire_owned();
            tokio::pin!(acquire);
            let permit = loop {
                tokio::select! {
                    biased;
                    () = self.stop.cancelled() => break 'taking dropped(Some(&frame), &events),
                    () = session.cancelled() => break 'taking dropped(Some(&frame), &events),
                    Some(()) = running.next() => {}
                    permit = &mut acquire => match permit {
                        Ok(permit) => break permit,
                        Err(_) => break 'taking,
                    },
                }
            };
            // The permit and the end of the session can come together.
            if session.is_cancelled() || self.stop.is_cancelled() {
                break dropped(Some(&frame), &events);
            }
            handler.announce(&frame);
            running.push(async move {
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
        // Nothing more starts; the handlers already started finish (their
        // side effects should, even when their answers can no longer go).
        drop(events);
        while running.next().await.is_some() {}
    }
}
