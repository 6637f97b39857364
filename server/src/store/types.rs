//! What the store takes and returns, independent of the backend.

use bytes::Bytes;
use lobster_shared::ids::{AgentId, EventId, RelayId, SessionId, WorkspaceName};

/// Milliseconds since the Unix epoch, the store's clock.
pub type Millis = i64;

/// Now, in [`Millis`].
pub fn now_ms() -> Millis {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as Millis)
        .unwrap_or_default()
}

/// How long a dedup key is remembered (contract: 10 minutes).
pub const DEDUP_WINDOW_MS: Millis = 10 * 60 * 1000;

/// An agent as authentication and routing need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Agent {
    pub agent_id: AgentId,
    pub name: String,
    pub workspace: WorkspaceName,
    pub relay_id: RelayId,
}

/// An agent with what the admin listing shows.
#[derive(Debug, Clone)]
pub struct AgentStats {
    pub agent: Agent,
    pub created_at: Millis,
    pub last_seen: Option<Millis>,
    pub pending_events: u64,
}

/// A new agent; the key is stored only as its hash.
#[derive(Debug, Clone)]
pub struct NewAgent {
    pub agent: Agent,
    pub key_hash: String,
}

/// A webhook to store.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub id: EventId,
    pub agent_id: AgentId,
    pub event_type: String,
    pub received_at: Millis,
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
    /// Replay protection key; `None` for synthetic events.
    pub dedup_key: Option<String>,
}

/// Result of [`super::Backend::insert_event`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inserted {
    New(EventId),
    /// The original event's id.
    Duplicate(EventId),
    /// Stored and leased to a live session of this instance, which has it
    /// already (see [`super::push`]): nobody needs waking.
    Pushed(EventId),
}

/// A session asking for work.
#[derive(Debug, Clone)]
pub struct ClaimRequest {
    pub agent_id: AgentId,
    pub session_id: SessionId,
    pub limit: usize,
    /// How long the lease lasts (the ack timeout).
    pub lease_ms: Millis,
    /// Glob patterns on `event_type`; empty means all.
    pub patterns: Vec<String>,
    /// The session's port: the claim leases into its free slots (`limit`
    /// is then ignored) and says whether the session is caught up.
    pub port: Option<std::sync::Arc<super::push::Port>>,
    /// After a claim whose outcome is unknown (the store failed mid-way;
    /// PostgreSQL may have committed it with its answer lost): every lease
    /// of this session except these events (the ones it has sent) goes back
    /// to the queue, open to this session again, before the claim. Without
    /// it such an event stays leased to a session that never got it, and
    /// once expired is never offered to that session again.
    pub requeue_except: Option<Vec<EventId>>,
}

/// One leased event, ready to become an `event` frame.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub id: EventId,
    pub event_type: String,
    pub received_at: Millis,
    pub attempt: u32,
    pub headers: Vec<(String, String)>,
    /// Shared with the webhook's request when pushed straight from the
    /// insert: no copy of the body on the way to the session.
    pub body: Bytes,
    /// Queued again by an explicit replay and not acked since.
    pub replay: bool,
}

/// Result of a claim.
#[derive(Debug, Clone, Default)]
pub struct Claim {
    /// In acceptance order.
    pub deliveries: Vec<Delivery>,
    /// The earliest future time at which more of this agent's events become
    /// due (a retry or an expiring lease), if any. A store may leave it out
    /// when `more` is set: the caller claims again as soon as it has room.
    pub next_due: Option<Millis>,
    /// The claim filled every slot it had: more may be due right now.
    pub more: bool,
}

/// Event status (`docs/api-reference.md`, "Events and delivery").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventStatus {
    Pending,
    Delivering,
    Delivered,
    Failed,
    Expired,
    Skipped,
}

impl EventStatus {
    pub const ALL: [EventStatus; 6] = [
        Self::Pending,
        Self::Delivering,
        Self::Delivered,
        Self::Failed,
        Self::Expired,
        Self::Skipped,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Delivering => "delivering",
            Self::Delivered => "delivered",
            Self::Failed => "failed",
            Self::Expired => "expired",
            Self::Skipped => "skipped",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

/// A page of an agent's events, newest first.
#[derive(Debug, Clone)]
pub struct EventQuery {
    pub agent_id: AgentId,
    pub status: Option<EventStatus>,
    pub limit: usize,
    /// Only events older than this event id (an id the agent has no event
    /// of counts as none).
    pub before: Option<EventId>,
}

/// A line of the event listing.
#[derive(Debug, Clone)]
pub struct EventSummary {
    pub id: EventId,
    pub event_type: String,
    pub status: String,
    pub received_at: Millis,
    pub attempts: u32,
}

/// One delivery attempt's outcome.
#[derive(Debug, Clone)]
pub struct AttemptRecord {
    pub attempt: u32,
    pub at: Millis,
    pub session_id: Option<SessionId>,
    pub outcome: String,
    pub error: Option<String>,
}

/// An event with everything the detail view shows.
#[derive(Debug, Clone)]
pub struct EventDetail {
    pub summary: EventSummary,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub history: Vec<AttemptRecord>,
}

/// Result of a replay request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplayOutcome {
    Queued,
    NotFound,
    /// It is leased to a session right now; replaying would deliver it twice.
    InFlight,
}
