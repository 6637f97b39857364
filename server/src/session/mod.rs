//! Agent sessions: one session loop, three transports.
//!
//! The loop (`driver::Session`) leases events from the store up to
//! `max_in_flight`, hands them to its transport, and applies the agent's
//! acks and nacks. It looks for work when the hub says an event was stored,
//! when capacity frees up, when a retry or an expired lease comes due, and
//! never otherwise. Leases, ack timeouts, revocation, the `events` filter
//! and competing sessions are the loop's, so every transport gives the same
//! guarantee; a transport ([`Link`]) only carries frames.
//!
//! Layout:
//! - [`websocket`]: `GET /api/v1/agent/connect`, frames both ways.
//! - [`sse`]: `GET /api/v1/agent/stream`, frames down a Server-Sent Events
//!   stream; answers come by `POST`.
//! - [`poll`]: `GET /api/v1/agent/poll`, a long-poll per batch of events;
//!   answers come by `POST`.
//! - [`callback`]: push delivery, a server-side session that POSTs each
//!   event to the agent's callback URL while the agent is not connected.
//! - [`link`]: the [`Link`] trait a transport implements; [`driver`]: the
//!   loop.
//! - [`http`]: the HTTP sessions of this instance by id, and
//!   `POST /api/v1/agent/stream/{session_id}/acks`.

mod callback;
mod driver;
mod http;
mod link;
mod poll;
mod sse;
mod websocket;

use crate::api::ApiError;

pub use callback::{Callbacks, SYNC_EVERY as CALLBACK_SYNC_EVERY, Target as CallbackTarget};
use driver::run;
pub use http::{HttpSessions, post_answers};
pub(crate) use link::{AnswerBatch, BatchOutcome, Ending, Inbound, Link};
pub use poll::poll;
pub use sse::stream;
pub use websocket::{ConnectParams, connect};

/// Validates `?events=` globs: `*` and `?` wildcards over a safe alphabet.
pub fn parse_patterns(text: &str) -> Result<Vec<String>, ApiError> {
    let patterns: Vec<String> = text
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(str::to_owned)
        .collect();
    let valid = |p: &String| {
        p.len() <= 200
            && p.chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-:/*?".contains(c))
    };
    if patterns.len() > 32 || !patterns.iter().all(valid) {
        return Err(ApiError::bad_request(
            "invalid_events_filter",
            "events must be up to 32 comma-separated patterns of letters, digits, . _ - : / and the wildcards * ?",
        ));
    }
    Ok(patterns)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_filters_accept_globs_and_refuse_glob_classes() {
        assert_eq!(
            parse_patterns("message.*, ping").unwrap(),
            vec!["message.*", "ping"]
        );
        assert!(parse_patterns("").unwrap().is_empty());
        assert!(parse_patterns("a[bc]").is_err());
        assert!(parse_patterns("drop table;").is_err());
        assert!(parse_patterns(&vec!["a"; 33].join(",")).is_err());
    }
}
