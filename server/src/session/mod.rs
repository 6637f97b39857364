//! Agent sessions: one session loop, three transports.
//!
//! The loop (`driver::Session`) leases events from the store up to
//! `max_in_flight`, hands them to its transport, and applies the agent's
//! acks and nacks. It looks for work when the hub says an event was stored,
//! when capacity frees up, when a retry or an expired lease comes due, and
//! never otherwise. Leases, ack timeouts, revocation, the `events` filter
//! and competing sessions are the loop's, so every transport gives the same
//! guarantee; a transport ([`Link`](link::Link)) only carries frames.
//!
//! Layout:
//! - [`websocket`]: `GET /api/v1/agent/connect`, frames both ways.
//! - [`sse`]: `GET /api/v1/agent/stream`, frames down a Server-Sent Events
//!   stream; answers come by `POST`.
//! - [`poll`](mod@poll): `GET /api/v1/agent/poll`, a long-poll per batch of events;
//!   answers come by `POST`.
//! - [`callback`]: push delivery, a server-side session that POSTs each
//!   event to the agent's callback URL while the agent is not connected.
//! - [`link`]: the [`Link`](link::Link) trait a transport implements; [`driver`]: the
//!   loop.
//! - [`http`]: `POST /api/v1/agent/stream/{session_id}/acks`;
//!   [`registry`]: the HTTP sessions of this instance by id.
//! - [`reserve`]: `--max-sessions-per-agent`; [`patterns`]: `?events=`.
//!
//! Nothing here imports this file: the transports import each other's
//! modules directly, and only [`crate::routes`] uses the re-exports.

mod callback;
mod driver;
mod http;
mod link;
mod patterns;
mod poll;
pub(crate) mod registry;
mod reserve;
mod sse;
mod websocket;

pub use callback::{Callbacks, SYNC_EVERY as CALLBACK_SYNC_EVERY, Target as CallbackTarget};
pub use http::post_answers;
pub use poll::poll;
pub use sse::stream;
pub use websocket::{ConnectParams, connect};
