//! Which agents may have events waiting, so that a claim for an agent with
//! none is answered at once instead of as a job on the writer thread.
//!
//! Every session claims when it opens, and after a restart that is every
//! agent at once: 10,000 reconnecting agents were 10,000 writer jobs, each
//! several statements, although most agents had nothing queued. On SQLite
//! this process is the only writer, so it can know: an agent may have
//! waiting events (pending or leased) only if it had some when the store
//! opened, or if an insert or a replay has queued one since. Nothing else
//! makes an event pending: nacks, releases and expired leases only move an
//! event back that was already there.
//!
//! The set only grows while the relay runs (an agent that had events once
//! keeps being claimed for as before); it starts over, exact, at the next
//! start. A set too large costs a claim; one too small would strand
//! events, so agents are added before their insert or replay is queued.
//!
//! The push path's ordering rests on this too: a session that learns here
//! that nothing waits marks its port caught up under the same lock as an
//! insert adds its agent, so an insert either comes after (and finds the
//! port caught up: pushed, in order) or before (and the session claims it
//! from the store as before).

use std::collections::HashSet;
use std::sync::Mutex;

use rusqlite::Connection;

use crate::store::StoreError;
use crate::store::push::Port;

/// Agents that may have pending or leased events.
#[derive(Default)]
pub(super) struct Queued {
    agents: Mutex<HashSet<String>>,
}

impl Queued {
    /// The agents with pending or leased events in the database (read after
    /// the start-up release, so leased ones are pending by then).
    pub(super) fn load(conn: &Connection) -> Result<Self, StoreError> {
        let mut stmt = conn.prepare(
            "SELECT agent_id FROM events WHERE status = 'pending'
             UNION SELECT agent_id FROM events WHERE status = 'delivering'",
        )?;
        let agents = stmt
            .query_map([], |r| r.get::<_, String>(0))?
            .collect::<Result<HashSet<_>, _>>()?;
        Ok(Queued {
            agents: Mutex::new(agents),
        })
    }

    /// `agent_id` may have events waiting from now on. Call before the
    /// write that queues them is submitted.
    pub(super) fn add(&self, agent_id: &str) {
        let mut agents = self.lock();
        if !agents.contains(agent_id) {
            agents.insert(agent_id.to_owned());
        }
    }

    /// True when `agent_id` has nothing waiting: the claim would find
    /// nothing. The session's port (if any, and with a free slot) is then
    /// caught up, marked before any later insert of the agent can run.
    pub(super) fn nothing_for(&self, agent_id: &str, port: Option<&Port>) -> bool {
        let agents = self.lock();
        if agents.contains(agent_id) {
            return false;
        }
        if let Some(port) = port
            && port.free() > 0
        {
            port.set_caught_up(true);
        }
        true
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.agents.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use lobster_shared::ids::SessionId;

    use super::*;

    fn db() -> Connection {
        let mut c = Connection::open_in_memory().unwrap();
        super::super::migrate(&mut c).unwrap();
        for (id, agent, status) in [
            ("evt_1", "agt_pending", "pending"),
            ("evt_2", "agt_leased", "delivering"),
            ("evt_3", "agt_done", "delivered"),
            ("evt_4", "agt_failed", "failed"),
        ] {
            c.execute(
                "INSERT INTO events (id, agent_id, event_type, received_at, status, next_attempt_at, updated_at)
                 VALUES (?1, ?2, 't', 0, ?3, 0, 0)",
                [id, agent, status],
            )
            .unwrap();
        }
        c
    }

    /// After a restart, agents with pending or leased events are claimed
    /// for; those with only finished events (or none) are not.
    #[test]
    fn agents_with_waiting_events_are_loaded() {
        let queued = Queued::load(&db()).unwrap();
        assert!(!queued.nothing_for("agt_pending", None));
        assert!(!queued.nothing_for("agt_leased", None));
        assert!(queued.nothing_for("agt_done", None));
        assert!(queued.nothing_for("agt_failed", None));
        assert!(queued.nothing_for("agt_unknown", None));
    }

    /// An insert or a replay adds the agent; it is then claimed for.
    #[test]
    fn an_added_agent_is_claimed_for() {
        let queued = Queued::load(&db()).unwrap();
        queued.add("agt_failed");
        assert!(!queued.nothing_for("agt_failed", None));
    }

    /// With nothing waiting, the session's port is caught up (new events
    /// are pushed to it), unless it has no free slot.
    #[test]
    fn nothing_waiting_marks_a_port_with_free_slots_caught_up() {
        let queued = Queued::default();
        let port = Port::new(&SessionId::from_stored("ses_1"), false, 30_000, 4);
        assert!(queued.nothing_for("agt_1", Some(&port)));
        assert!(port.is_caught_up());
        let full = Port::new(&SessionId::from_stored("ses_2"), false, 30_000, 1);
        full.take_all();
        assert!(queued.nothing_for("agt_1", Some(&full)));
        assert!(!full.is_caught_up());
    }
}
