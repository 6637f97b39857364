//! What the agent answers, applied: acks batched and stored without
//! waiting, nacks stored before the next lease (in the order `writes`
//! keeps), and posted batches (SSE, long-poll) answered with whether their
//! writes were stored.

use lobster_shared::ids::EventId;
use lobster_shared::wire::AgentMessage;
use tokio::task::JoinHandle;

use super::Session;
use super::writes::log_failure;
use crate::session::link::{AnswerBatch, BatchOutcome};

impl Session {
    /// Applies an ack or nack; returns whether capacity was freed. Acks are
    /// batched and not awaited (a lost ack only means a redelivery); a nack
    /// is awaited so that the next lease sees its retry time.
    pub(super) async fn apply(&mut self, message: AgentMessage) -> bool {
        match message {
            AgentMessage::Ack { id } => self.ack(id),
            AgentMessage::Nack { id, reason } => self.nack(id, reason).await.0,
        }
    }

    /// `id` is the agent's text, checked here: one that is no event id
    /// acks nothing, as an id of no event of the session always did.
    pub(super) fn ack(&mut self, id: String) -> bool {
        crate::metrics::event_acked();
        let Ok(id) = EventId::parse_owned(id) else {
            return false;
        };
        let freed = self.in_flight.remove(&id).is_some();
        self.acks.push(id);
        if freed {
            self.port.give_back(1);
        }
        // A caught-up session gets new events pushed into the slot;
        // only one that may have events waiting in the store asks.
        // (A pull transport's port is never caught up: it claims with no
        // port.)
        freed && !self.port.is_caught_up()
    }

    /// Returns whether capacity was freed and whether the nack was stored.
    /// `id` is the agent's text, checked here: one that is no event id
    /// nacks nothing (and nothing is stored), as an id of no event of the
    /// session always did.
    pub(super) async fn nack(&mut self, id: String, reason: String) -> (bool, bool) {
        crate::metrics::event_nacked();
        let Ok(id) = EventId::parse(&id) else {
            tracing::debug!(session_id = %self.session_id, event_id = %id, reason = ?reason, "nack");
            self.flush_acks();
            return (false, true);
        };
        let freed = self.in_flight.remove(&id).is_some();
        if freed {
            self.port.give_back(1);
        }
        tracing::debug!(session_id = %self.session_id, event_id = %id, reason = ?reason, "nack");
        self.flush_acks();
        if !freed {
            // Answered already, or late: after the acks under way.
            self.writes.settled().await;
        }
        let nack = self
            .state
            .store
            .nack(&self.agent.agent_id, &self.session_id, &id, &reason);
        (freed, log_failure(nack, "nack").await)
    }

    /// Applies a posted batch, acks first, and answers it with the acks'
    /// store write to await.
    pub(super) async fn apply_batch(&mut self, batch: AnswerBatch) -> bool {
        let (acked, nacked) = (batch.acks.len(), batch.nacks.len());
        let mut freed = false;
        self.flush_acks();
        for id in batch.acks {
            freed |= self.ack(id);
        }
        let acks_stored = self.store_acks();
        let mut nacks_stored = true;
        for (id, reason) in batch.nacks {
            let (nack_freed, stored) = self.nack(id, reason).await;
            freed |= nack_freed;
            nacks_stored &= stored;
        }
        let _ = batch.reply.send(BatchOutcome {
            acked,
            nacked,
            acks_stored,
            nacks_stored,
        });
        freed
    }

    /// Records `last_seen`, written with others within a second.
    pub(super) fn touch(&self) {
        self.state.last_seen.record(&self.agent.agent_id);
    }

    pub(super) fn flush_acks(&mut self) {
        self.store_acks();
    }

    /// Stores the pending acks in the background; the handle says whether
    /// they were stored.
    pub(super) fn store_acks(&mut self) -> Option<JoinHandle<bool>> {
        if self.acks.is_empty() {
            return None;
        }
        let ids = std::mem::take(&mut self.acks);
        Some(
            self.writes
                .ack(&self.state, &self.agent.agent_id, &self.session_id, ids),
        )
    }
}
