//! Handing a just-stored event straight to a live session.
//!
//! Each session of this instance attaches a [`Port`]: its free delivery
//! slots (`max_in_flight` minus what it holds) and a channel into its loop.
//! On SQLite, the writer thread leases a new event to a port *in the same
//! insert* that stores it (status `delivering`, the session's lease), and
//! after the commit sends it down the port's channel: one write per event
//! on the hot path, no claim query, no wake-up. Everything a port cannot
//! take (no free slot, a filtered session, a session with older events
//! still waiting in the store) is stored `pending` and found by the
//! session's claim as before.
//!
//! Order: a port takes new events only while it is *caught up*, which its
//! last claim sets when it found no more due events than it could take. An
//! insert that finds no port for its agent clears the flag on all of them
//! (its event now waits in the store), so later events cannot overtake it.
//! Claims and inserts both run on the writer thread, one after the other,
//! so the flag is never stale between them.
//!
//! Capacity: slots are taken by inserts and claims (on the writer thread)
//! and given back by the session when an event is acked, nacked or its
//! lease runs out, so a session never holds more than `max_in_flight`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;

use super::{Delivery, Millis};

/// One session's place in the push path.
pub struct Port {
    session_id: String,
    /// Sessions with an `?events=` filter take no pushes: they claim.
    filtered: bool,
    /// The lease an event pushed here gets (the ack timeout).
    lease_ms: Millis,
    free: AtomicUsize,
    caught_up: AtomicBool,
    tx: mpsc::UnboundedSender<Delivery>,
}

impl std::fmt::Debug for Port {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Port")
            .field("session_id", &self.session_id)
            .field("free", &self.free())
            .field("caught_up", &self.is_caught_up())
            .finish()
    }
}

impl Port {
    /// A port with `slots` free slots, and the receiving end for its session.
    pub fn new(
        session_id: &str,
        filtered: bool,
        lease_ms: Millis,
        slots: usize,
    ) -> (Arc<Port>, mpsc::UnboundedReceiver<Delivery>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let port = Port {
            session_id: session_id.to_owned(),
            filtered,
            lease_ms,
            free: AtomicUsize::new(slots),
            caught_up: AtomicBool::new(false),
            tx,
        };
        (Arc::new(port), rx)
    }

    pub fn session_id(&self) -> &str {
        &self.session_id
    }

    pub fn lease_ms(&self) -> Millis {
        self.lease_ms
    }

    /// Slots not holding an event.
    pub fn free(&self) -> usize {
        self.free.load(Ordering::Acquire)
    }

    /// An event this session held was acked, nacked or timed out.
    pub fn give_back(&self, slots: usize) {
        self.free.fetch_add(slots, Ordering::AcqRel);
    }

    /// Takes every free slot (a claim leases into them and gives back the
    /// rest).
    pub fn take_all(&self) -> usize {
        self.free.swap(0, Ordering::AcqRel)
    }

    /// Whether no due event of the agent waits in the store for this
    /// session: new ones may then be pushed without overtaking one.
    pub fn is_caught_up(&self) -> bool {
        self.caught_up.load(Ordering::Acquire)
    }

    /// Set by a claim: `true` when it found fewer due events than it could
    /// take.
    pub fn set_caught_up(&self, caught_up: bool) {
        self.caught_up.store(caught_up, Ordering::Release);
    }

    fn try_take_one(&self) -> bool {
        self.free
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1))
            .is_ok()
    }

    /// Hands a committed, leased event to the session. If the session has
    /// just ended, its release (queued after this commit) returns the
    /// event to the queue.
    pub fn push(&self, delivery: Delivery) {
        let _ = self.tx.send(delivery);
    }
}

/// The ports of this instance's sessions, by agent.
#[derive(Default)]
pub struct Ports {
    agents: Mutex<HashMap<String, Vec<Arc<Port>>>>,
}

impl Ports {
    pub fn attach(&self, agent_id: &str, port: Arc<Port>) {
        self.lock()
            .entry(agent_id.to_owned())
            .or_default()
            .push(port);
    }

    /// Called before the session releases its leases, so that no insert
    /// leases to it afterwards.
    pub fn detach(&self, agent_id: &str, session_id: &str) {
        let mut agents = self.lock();
        if let Some(ports) = agents.get_mut(agent_id) {
            ports.retain(|p| p.session_id != session_id);
            if ports.is_empty() {
                agents.remove(agent_id);
            }
        }
    }

    /// A slot for a new event of `agent_id`: on the caught-up, unfiltered
    /// port with the most free slots. With none, every port of the agent
    /// stops being caught up (the event will wait in the store).
    pub fn take_slot(&self, agent_id: &str) -> Option<Arc<Port>> {
        let agents = self.lock();
        let ports = agents.get(agent_id)?;
        let best = ports
            .iter()
            .filter(|p| !p.filtered && p.is_caught_up() && !p.tx.is_closed())
            .max_by_key(|p| p.free());
        if let Some(port) = best
            && port.try_take_one()
        {
            return Some(port.clone());
        }
        for port in ports {
            port.set_caught_up(false);
        }
        None
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Vec<Arc<Port>>>> {
        self.agents.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_go_to_caught_up_unfiltered_ports_and_a_miss_clears_caught_up() {
        let ports = Ports::default();
        let (a, _rx_a) = Port::new("ses_a", false, 30_000, 1);
        let (filtered, _rx_f) = Port::new("ses_f", true, 30_000, 5);
        ports.attach("agt_1", a.clone());
        ports.attach("agt_1", filtered.clone());
        assert!(ports.take_slot("agt_1").is_none(), "not caught up yet");
        a.set_caught_up(true);
        filtered.set_caught_up(true);
        let port = ports.take_slot("agt_1").expect("a slot");
        assert_eq!(port.session_id(), "ses_a");
        assert_eq!(a.free(), 0);
        // Full: the event waits in the store, so later ones must too.
        assert!(ports.take_slot("agt_1").is_none());
        assert!(!a.is_caught_up() && !filtered.is_caught_up());
        a.give_back(1);
        assert!(ports.take_slot("agt_1").is_none(), "a claim must run first");
        assert!(ports.take_slot("agt_other").is_none());
    }

    #[test]
    fn a_detached_or_dropped_session_takes_nothing() {
        let ports = Ports::default();
        let (a, rx) = Port::new("ses_a", false, 30_000, 4);
        a.set_caught_up(true);
        ports.attach("agt_1", a.clone());
        drop(rx);
        assert!(ports.take_slot("agt_1").is_none(), "its loop is gone");
        ports.detach("agt_1", "ses_a");
        assert!(ports.lock().is_empty());
    }

    #[test]
    fn take_all_and_give_back_keep_the_count() {
        let (a, _rx) = Port::new("ses_a", false, 30_000, 10);
        assert_eq!(a.take_all(), 10);
        assert_eq!(a.free(), 0);
        assert!(!a.try_take_one());
        a.give_back(3);
        assert!(a.try_take_one());
        assert_eq!(a.free(), 2);
    }
}
