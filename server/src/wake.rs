//! An agent's wake-up signal: "new work is stored, look again".
//!
//! A counter and one [`Notify`], shared by the hub's route of the agent
//! and each of its sessions. It does what a `tokio::sync::watch::<u64>`
//! did here in a fifth of the memory: a watch channel keeps nine
//! `Notify`s (eight for its receivers, spread to lower contention), about
//! 350 bytes per connected agent, and an agent has one or two sessions.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::Notify;

#[derive(Default)]
struct Shared {
    version: AtomicU64,
    notify: Notify,
}

/// The hub's end: wakes every session of the agent.
#[derive(Default)]
pub(crate) struct WakeSender(Arc<Shared>);

impl WakeSender {
    pub(crate) fn wake(&self) {
        self.0.version.fetch_add(1, Ordering::AcqRel);
        self.0.notify.notify_waiters();
    }

    pub(crate) fn subscribe(&self) -> Wake {
        Wake {
            seen: self.0.version.load(Ordering::Acquire),
            shared: self.0.clone(),
        }
    }
}

/// A session's end: whether a wake-up came since it last looked.
#[derive(Clone)]
pub struct Wake {
    shared: Arc<Shared>,
    seen: u64,
}

impl Wake {
    /// Whether a wake-up came since [`Self::mark_seen`].
    pub fn has_changed(&self) -> bool {
        self.shared.version.load(Ordering::Acquire) != self.seen
    }

    /// Takes every wake-up so far as seen.
    pub fn mark_seen(&mut self) {
        self.seen = self.shared.version.load(Ordering::Acquire);
    }

    /// Resolves once a wake-up comes that was not seen yet (at once if one
    /// already did), and marks it seen. Cancel safe.
    pub async fn changed(&mut self) {
        loop {
            let notified = self.shared.notify.notified();
            let mut notified = std::pin::pin!(notified);
            // Registered before the look, so a wake-up between the look
            // and the wait is not lost.
            notified.as_mut().enable();
            let now = self.shared.version.load(Ordering::Acquire);
            if now != self.seen {
                self.seen = now;
                return;
            }
            notified.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn a_wake_up_reaches_every_waiting_and_later_session() {
        let sender = WakeSender::default();
        let mut a = sender.subscribe();
        let mut b = sender.subscribe();
        assert!(!a.has_changed());
        let waiting = tokio::spawn(async move {
            a.changed().await;
            a
        });
        tokio::task::yield_now().await;
        sender.wake();
        let a = tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .expect("the waiting session wakes")
            .unwrap();
        assert!(!a.has_changed(), "changed() marks it seen");
        // `b` was not waiting when it came: it still sees it.
        assert!(b.has_changed());
        b.changed().await;
        assert!(!b.has_changed());
        let mut c = sender.subscribe();
        assert!(!c.has_changed(), "a new session starts from now");
        sender.wake();
        sender.wake();
        c.changed().await;
        assert!(!c.has_changed(), "two wake-ups are one look");
    }
}
