//! Handing a just-stored event straight to a live session.
//!
//! Each session of this instance attaches a [`Port`]: its free delivery
//! slots (`max_in_flight` minus what it holds) and a queue into its loop.
//! On SQLite, the writer thread leases a new event to a port *in the same
//! insert* that stores it (status `delivering`, the session's lease), and
//! after the commit puts it in the port's queue: one write per event
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

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use lobster_shared::ids::{AgentId, SessionId};
use tokio::sync::Notify;

use super::{Delivery, Millis};

/// One session's place in the push path.
pub struct Port {
    session_id: SessionId,
    /// Sessions with an `?events=` filter take no pushes: they claim.
    filtered: bool,
    /// The lease an event pushed here gets (the ack timeout).
    lease_ms: Millis,
    free: AtomicUsize,
    caught_up: AtomicBool,
    /// Set when the session's loop has ended: nothing is pushed to it.
    closed: AtomicBool,
    /// Events pushed from their commit, waiting for the session's loop. A
    /// plain queue rather than an mpsc channel: an idle session's queue
    /// allocates nothing, where tokio's channel allocates a block of 32
    /// deliveries up front (3.5 KB for every connected agent).
    queue: Mutex<VecDeque<Delivery>>,
    arrived: Notify,
}

/// Capacity a drained queue keeps; a burst's larger buffer is given back.
const KEEP_QUEUE: usize = 16;

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
    /// A port with `slots` free slots.
    pub fn new(
        session_id: &SessionId,
        filtered: bool,
        lease_ms: Millis,
        slots: usize,
    ) -> Arc<Port> {
        Arc::new(Port {
            session_id: session_id.clone(),
            filtered,
            lease_ms,
            free: AtomicUsize::new(slots),
            caught_up: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            queue: Mutex::new(VecDeque::new()),
            arrived: Notify::new(),
        })
    }

    pub fn session_id(&self) -> &SessionId {
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
        if self.is_closed() {
            return;
        }
        self.lock_queue().push_back(delivery);
        self.arrived.notify_one();
    }

    /// Waits for a pushed event and takes it with up to `max - 1` more
    /// already waiting. Cancel-safe: nothing is taken until it returns.
    pub async fn pushed(&self, max: usize) -> Vec<Delivery> {
        loop {
            let batch = self.take_pushed(max.max(1));
            if !batch.is_empty() {
                return batch;
            }
            // A push between the look above and this wait leaves a permit,
            // so the wait returns at once.
            self.arrived.notified().await;
        }
    }

    /// Takes up to `max` pushed events waiting now (none if none are).
    pub fn take_pushed(&self, max: usize) -> Vec<Delivery> {
        let mut queue = self.lock_queue();
        let n = queue.len().min(max);
        let batch: Vec<Delivery> = queue.drain(..n).collect();
        if queue.is_empty() && queue.capacity() > KEEP_QUEUE {
            queue.shrink_to(KEEP_QUEUE);
        }
        batch
    }

    /// The session's loop has ended: later pushes are dropped (its release
    /// returns their events to the queue) and no slot goes to it.
    pub fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.lock_queue().clear();
    }

    fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    fn lock_queue(&self) -> std::sync::MutexGuard<'_, VecDeque<Delivery>> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The ports of this instance's sessions, by agent.
#[derive(Default)]
pub struct Ports {
    agents: Mutex<HashMap<AgentId, Vec<Arc<Port>>>>,
}

impl Ports {
    pub fn attach(&self, agent_id: &AgentId, port: Arc<Port>) {
        self.lock().entry(agent_id.clone()).or_default().push(port);
    }

    /// Called before the session releases its leases, so that no insert
    /// leases to it afterwards.
    pub fn detach(&self, agent_id: &AgentId, session_id: &SessionId) {
        let mut agents = self.lock();
        if let Some(ports) = agents.get_mut(agent_id) {
            ports.retain(|p| &p.session_id != session_id);
            if ports.is_empty() {
                agents.remove(agent_id);
            }
        }
    }

    /// A slot for a new event of `agent_id`: on the caught-up, unfiltered
    /// port with the most free slots. With none, every port of the agent
    /// stops being caught up (the event will wait in the store).
    pub fn take_slot(&self, agent_id: &AgentId) -> Option<Arc<Port>> {
        let agents = self.lock();
        let ports = agents.get(agent_id)?;
        let best = ports
            .iter()
            .filter(|p| !p.filtered && p.is_caught_up() && !p.is_closed())
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

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<AgentId, Vec<Arc<Port>>>> {
        self.agents.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use lobster_shared::ids::EventId;

    use super::*;

    /// Ids as tests name them (the store trusts what it is handed).
    fn agent(id: &str) -> AgentId {
        AgentId::from_stored(id)
    }

    fn session(id: &str) -> SessionId {
        SessionId::from_stored(id)
    }

    #[test]
    fn slots_go_to_caught_up_unfiltered_ports_and_a_miss_clears_caught_up() {
        let ports = Ports::default();
        let a = Port::new(&session("ses_a"), false, 30_000, 1);
        let filtered = Port::new(&session("ses_f"), true, 30_000, 5);
        ports.attach(&agent("agt_1"), a.clone());
        ports.attach(&agent("agt_1"), filtered.clone());
        assert!(
            ports.take_slot(&agent("agt_1")).is_none(),
            "not caught up yet"
        );
        a.set_caught_up(true);
        filtered.set_caught_up(true);
        let port = ports.take_slot(&agent("agt_1")).expect("a slot");
        assert_eq!(port.session_id().as_str(), "ses_a");
        assert_eq!(a.free(), 0);
        // Full: the event waits in the store, so later ones must too.
        assert!(ports.take_slot(&agent("agt_1")).is_none());
        assert!(!a.is_caught_up() && !filtered.is_caught_up());
        a.give_back(1);
        assert!(
            ports.take_slot(&agent("agt_1")).is_none(),
            "a claim must run first"
        );
        assert!(ports.take_slot(&agent("agt_other")).is_none());
    }

    #[test]
    fn a_detached_or_dropped_session_takes_nothing() {
        let ports = Ports::default();
        let a = Port::new(&session("ses_a"), false, 30_000, 4);
        a.set_caught_up(true);
        ports.attach(&agent("agt_1"), a.clone());
        a.close();
        assert!(
            ports.take_slot(&agent("agt_1")).is_none(),
            "its loop is gone"
        );
        ports.detach(&agent("agt_1"), &session("ses_a"));
        assert!(ports.lock().is_empty());
    }

    #[test]
    fn take_all_and_give_back_keep_the_count() {
        let a = Port::new(&session("ses_a"), false, 30_000, 10);
        assert_eq!(a.take_all(), 10);
        assert_eq!(a.free(), 0);
        assert!(!a.try_take_one());
        a.give_back(3);
        assert!(a.try_take_one());
        assert_eq!(a.free(), 2);
    }

    #[tokio::test]
    async fn pushed_events_wait_in_the_queue_and_wake_the_session_in_batches() {
        let a = Port::new(&session("ses_a"), false, 30_000, 10);
        let waiter = {
            let a = a.clone();
            tokio::spawn(async move { a.pushed(2).await })
        };
        tokio::task::yield_now().await;
        for i in 0..3 {
            a.push(delivery(&format!("evt_{i}")));
        }
        let first = tokio::time::timeout(std::time::Duration::from_secs(5), waiter)
            .await
            .expect("the push wakes the waiting session")
            .unwrap();
        let ids: Vec<_> = first.iter().map(|d| d.id.as_str()).collect();
        assert_eq!(ids, ["evt_0", "evt_1"], "in order, at most the batch");
        let rest = a.pushed(10).await;
        assert_eq!(rest[0].id, "evt_2");
        // Closed: pushes are dropped, the release requeues their events.
        a.close();
        a.push(delivery("evt_3"));
        assert!(a.take_pushed(10).is_empty());
    }

    fn delivery(id: &str) -> Delivery {
        Delivery {
            id: EventId::from_stored(id),
            event_type: "test".into(),
            received_at: 0,
            attempt: 1,
            headers: Vec::new(),
            body: bytes::Bytes::new(),
            replay: false,
        }
    }
}
