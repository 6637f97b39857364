//! In-memory routing between ingest and live sessions.
//!
//! The store is the source of truth; the hub only says "look again" to the
//! sessions of an agent when one of its events is stored, and lets the admin
//! API close an agent's sessions when it is revoked. Losing a wake-up costs
//! latency, never an event: sessions also re-check on timers.
//!
//! It also caps an agent's sessions: the upgrade handler reserves a place
//! ([`Hub::try_reserve`]) before answering `101`, and the session's
//! [`Hub::register`] takes it, so concurrent upgrades cannot overshoot the
//! cap. A reservation whose upgrade never completes lapses after
//! [`RESERVATION_TTL`].

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lobster_shared::ids::{AgentId, SessionId};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::agent_cache::AgentCache;
pub use crate::wake::Wake;
use crate::wake::WakeSender;

#[derive(Default)]
pub struct Hub {
    agents: Mutex<HashMap<AgentId, AgentRoute>>,
    /// Agent lookups; every revocation passes through [`Hub::revoke`].
    cache: AgentCache,
    /// Notified when an agent's first own session opens here or its last
    /// closes (`crate::presence` tells other instances).
    pub presence_changed: tokio::sync::Notify,
}

/// How long a reserved session place waits for its session to register.
pub const RESERVATION_TTL: Duration = Duration::from_secs(10);

/// The transport of a push-delivery session (`session::callback`). It
/// yields to every other kind: it does not count as the agent being
/// connected, nor against `--max-sessions-per-agent`.
pub const CALLBACK_TRANSPORT: &str = "callback";

struct AgentRoute {
    wake: WakeSender,
    /// Each session with its revocation token and transport: a list, since
    /// an agent mostly has one (a map's smallest table is four slots).
    sessions: Vec<(SessionId, CancellationToken, &'static str)>,
    /// Upgrades answered whose sessions have not registered yet.
    reserved: VecDeque<Instant>,
    /// How many of `sessions` are the agent's own (not callbacks), for
    /// push delivery to step aside while the agent is connected. Made when
    /// a callback session first asks: a watch channel is a few hundred
    /// bytes, and most agents have no callback.
    connected: Option<watch::Sender<usize>>,
}

impl AgentRoute {
    fn new() -> Self {
        AgentRoute {
            wake: WakeSender::default(),
            sessions: Vec::new(),
            reserved: VecDeque::new(),
            connected: None,
        }
    }

    fn is_idle(&self) -> bool {
        self.sessions.is_empty()
            && self.reserved.is_empty()
            && self
                .connected
                .as_ref()
                .is_none_or(|tx| tx.receiver_count() == 0)
    }

    /// Tells a callback session watching this agent how many of its own
    /// sessions are live.
    fn tell_connected(&self) {
        if let Some(tx) = &self.connected {
            tx.send_replace(self.connected_count());
        }
    }

    /// The agent's own sessions, callbacks left out.
    fn connected_count(&self) -> usize {
        self.sessions
            .iter()
            .filter(|(_, _, transport)| *transport != CALLBACK_TRANSPORT)
            .count()
    }
}

/// A session's registration; leaving the hub happens on drop.
pub struct Registration {
    hub: Arc<Hub>,
    agent_id: AgentId,
    session_id: SessionId,
    /// Changes whenever a new event for the agent is stored.
    pub wake: Wake,
    /// Cancelled when the agent is revoked, and when the relay stops.
    pub revoked: CancellationToken,
}

impl Hub {
    /// Registers a session; `transport` is how it is connected
    /// (`websocket`, `sse`, `poll`), for the admin views. Its revocation
    /// token is a child of `stop` (the relay's shutdown), so the session
    /// waits on one token for both.
    pub fn register(
        self: &Arc<Self>,
        agent_id: &AgentId,
        session_id: &SessionId,
        transport: &'static str,
        stop: &CancellationToken,
    ) -> Registration {
        let mut agents = self.lock();
        let route = agents
            .entry(agent_id.clone())
            .or_insert_with(AgentRoute::new);
        if transport != CALLBACK_TRANSPORT {
            route.reserved.pop_front();
            if route.reserved.is_empty() {
                // Its buffer would stay for as long as the session.
                route.reserved = VecDeque::new();
            }
        }
        let revoked = stop.child_token();
        if route.sessions.capacity() == 0 {
            route.sessions.reserve_exact(1);
        }
        route
            .sessions
            .push((session_id.clone(), revoked.clone(), transport));
        if transport != CALLBACK_TRANSPORT {
            route.tell_connected();
            if route.connected_count() == 1 {
                self.presence_changed.notify_one();
            }
        }
        Registration {
            hub: self.clone(),
            agent_id: agent_id.clone(),
            session_id: session_id.clone(),
            wake: route.wake.subscribe(),
            revoked,
        }
    }

    /// Reserves a session place for `agent_id` if it has fewer than `max`
    /// sessions and reservations; the next [`Self::register`] takes it.
    pub fn try_reserve(&self, agent_id: &AgentId, max: usize) -> bool {
        let mut agents = self.lock();
        let route = agents
            .entry(agent_id.clone())
            .or_insert_with(AgentRoute::new);
        let now = Instant::now();
        route
            .reserved
            .retain(|at| now.duration_since(*at) < RESERVATION_TTL);
        if route.connected_count() + route.reserved.len() >= max {
            if route.is_idle() {
                agents.remove(agent_id);
            }
            return false;
        }
        route.reserved.push_back(now);
        true
    }

    /// Gives back a reservation whose upgrade was refused.
    pub fn unreserve(&self, agent_id: &AgentId) {
        let mut agents = self.lock();
        if let Some(route) = agents.get_mut(agent_id) {
            route.reserved.pop_back();
            if route.is_idle() {
                agents.remove(agent_id);
            }
        }
    }

    /// Tells the agent's sessions, if any, that new work is stored.
    pub fn wake(&self, agent_id: &AgentId) {
        if let Some(route) = self.lock().get(agent_id) {
            route.wake.wake();
        }
    }

    /// Tells every session to look again (after wake-ups may have been lost).
    pub fn wake_all(&self) {
        for route in self.lock().values() {
            route.wake.wake();
        }
    }

    /// Closes every session of a revoked agent.
    pub fn revoke(&self, agent_id: &AgentId) {
        self.cache.invalidate();
        if let Some(route) = self.lock().get(agent_id) {
            for (_, token, _) in &route.sessions {
                token.cancel();
            }
        }
    }

    /// Agents by relay id and key hash, forgotten on any revocation.
    pub fn agents(&self) -> &AgentCache {
        &self.cache
    }

    /// The agent's own live sessions on this instance (callbacks left out).
    pub fn online_sessions(&self, agent_id: &AgentId) -> usize {
        self.lock()
            .get(agent_id)
            .map_or(0, AgentRoute::connected_count)
    }

    /// Follows how many of the agent's own sessions (callbacks left out)
    /// are live on this instance.
    pub fn watch_connected(&self, agent_id: &AgentId) -> watch::Receiver<usize> {
        let mut agents = self.lock();
        let route = agents
            .entry(agent_id.clone())
            .or_insert_with(AgentRoute::new);
        let count = route.connected_count();
        route
            .connected
            .get_or_insert_with(|| watch::channel(count).0)
            .subscribe()
    }

    /// Forgets an agent's route if nothing uses it any more (after a
    /// [`Self::watch_connected`] receiver was dropped).
    pub fn tidy(&self, agent_id: &AgentId) {
        let mut agents = self.lock();
        if agents.get(agent_id).is_some_and(AgentRoute::is_idle) {
            agents.remove(agent_id);
        }
    }

    /// The agents with at least one of their own sessions live here.
    pub fn connected_agents(&self) -> Vec<AgentId> {
        self.lock()
            .iter()
            .filter(|(_, route)| route.connected_count() > 0)
            .map(|(agent_id, _)| agent_id.clone())
            .collect()
    }

    /// The transports of the agent's sessions, sorted (one per session).
    pub fn session_transports(&self, agent_id: &AgentId) -> Vec<&'static str> {
        let mut transports: Vec<&'static str> = self
            .lock()
            .get(agent_id)
            .map(|r| r.sessions.iter().map(|(_, _, t)| *t).collect())
            .unwrap_or_default();
        transports.sort_unstable();
        transports
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<AgentId, AgentRoute>> {
        self.agents.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut agents = self.hub.lock();
        if let Some(route) = agents.get_mut(&self.agent_id) {
            let at = route
                .sessions
                .iter()
                .position(|(id, ..)| *id == self.session_id);
            if let Some((_, _, transport)) = at.map(|at| route.sessions.swap_remove(at))
                && transport != CALLBACK_TRANSPORT
            {
                route.tell_connected();
                if route.connected_count() == 0 {
                    self.hub.presence_changed.notify_one();
                }
            }
            if route.is_idle() {
                agents.remove(&self.agent_id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Ids as the tests name them.
    fn agt(id: &str) -> AgentId {
        AgentId::from_stored(id)
    }

    fn ses(id: &str) -> SessionId {
        SessionId::from_stored(id)
    }

    fn stop() -> CancellationToken {
        CancellationToken::new()
    }

    #[test]
    fn wakes_reach_registered_sessions_and_revoke_cancels_them() {
        let hub = Arc::new(Hub::default());
        let mut a = hub.register(&agt("agt_1"), &ses("ses_a"), "websocket", &stop());
        let b = hub.register(&agt("agt_1"), &ses("ses_b"), "sse", &stop());
        assert_eq!(hub.online_sessions(&agt("agt_1")), 2);
        assert_eq!(hub.session_transports(&agt("agt_1")), ["sse", "websocket"]);
        hub.wake(&agt("agt_1"));
        assert!(a.wake.has_changed());
        a.wake.mark_seen();
        hub.wake(&agt("agt_other"));
        assert!(!a.wake.has_changed());
        hub.revoke(&agt("agt_1"));
        assert!(a.revoked.is_cancelled() && b.revoked.is_cancelled());
        drop(a);
        assert_eq!(hub.online_sessions(&agt("agt_1")), 1);
        drop(b);
        assert_eq!(hub.online_sessions(&agt("agt_1")), 0);
    }

    #[test]
    fn callback_sessions_are_not_the_agent_being_connected() {
        let hub = Arc::new(Hub::default());
        let mut connected = hub.watch_connected(&agt("agt_1"));
        let push = hub.register(&agt("agt_1"), &ses("ses_cb"), CALLBACK_TRANSPORT, &stop());
        assert_eq!(*connected.borrow_and_update(), 0);
        assert_eq!(hub.online_sessions(&agt("agt_1")), 0);
        assert!(
            hub.try_reserve(&agt("agt_1"), 1),
            "a callback takes no place"
        );
        let own = hub.register(&agt("agt_1"), &ses("ses_ws"), "websocket", &stop());
        assert!(connected.has_changed().unwrap());
        assert_eq!(*connected.borrow_and_update(), 1);
        assert_eq!(
            hub.session_transports(&agt("agt_1")),
            ["callback", "websocket"]
        );
        drop(own);
        assert_eq!(*connected.borrow_and_update(), 0);
        drop(push);
        drop(connected);
        hub.tidy(&agt("agt_1"));
        assert!(hub.lock().is_empty());
    }

    #[test]
    fn reservations_cap_sessions_and_are_taken_by_register() {
        let hub = Arc::new(Hub::default());
        assert!(hub.try_reserve(&agt("agt_1"), 2));
        assert!(hub.try_reserve(&agt("agt_1"), 2));
        assert!(
            !hub.try_reserve(&agt("agt_1"), 2),
            "two places are reserved"
        );
        assert!(
            hub.try_reserve(&agt("agt_2"), 2),
            "other agents have their own cap"
        );
        let a = hub.register(&agt("agt_1"), &ses("ses_a"), "websocket", &stop());
        assert!(
            !hub.try_reserve(&agt("agt_1"), 2),
            "one session and one reservation"
        );
        hub.unreserve(&agt("agt_1"));
        assert!(hub.try_reserve(&agt("agt_1"), 2));
        let b = hub.register(&agt("agt_1"), &ses("ses_b"), "sse", &stop());
        assert!(!hub.try_reserve(&agt("agt_1"), 2));
        drop(a);
        assert!(hub.try_reserve(&agt("agt_1"), 2));
        hub.unreserve(&agt("agt_1"));
        drop(b);
        hub.unreserve(&agt("agt_2"));
        assert!(hub.lock().is_empty(), "nothing is kept for idle agents");
    }
}
