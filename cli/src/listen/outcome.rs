//! What became of one event, and the answer it makes to the relay.

use lobster_shared::wire::AgentMessage;

/// What became of one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Handled; acked. `status` is what the event line shows
    /// (`200 POST http://localhost:3000/hooks`, `exit 0`).
    Done { status: String },
    /// Not for this listener (`--events`, no route); acked so it is not retried.
    Skipped { why: String },
    /// Failed; nacked with this reason, and the relay retries it by its policy.
    Failed { reason: String },
    /// Neither acked nor nacked (stdout is gone); the relay hands it out
    /// again once this session closes.
    Abandoned,
}

impl Outcome {
    /// The answer to send to the relay, if any.
    pub fn reply(&self, id: &str) -> Option<AgentMessage> {
        let id = id.to_owned();
        match self {
            Self::Done { .. } | Self::Skipped { .. } => Some(AgentMessage::Ack { id }),
            Self::Failed { reason } => Some(AgentMessage::Nack {
                id,
                reason: reason.clone(),
            }),
            Self::Abandoned => None,
        }
    }
}
