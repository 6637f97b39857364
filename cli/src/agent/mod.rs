//! An agent's connection to the relay, shared by `listen` and `wait`:
//! opening a session over the WebSocket, SSE or long-poll, the `ready`
//! handshake, sending answers, how a session ends, and reconnecting.
//!
//! - `transport`: opening a session over any transport, with `auto`'s
//!   fallback (`connect` opens the WebSocket itself, through a proxy if
//!   one is set).
//! - `writer`: the WebSocket's sending half (acks, nacks, pings, close).
//! - `frame`: reading frames into events whose strings share the frame's
//!   bytes ([`frame::Event`]).
//! - `close`: how a session ended ([`close::SessionEnd`]) and what a close
//!   from the relay means.
//! - `reconnect`, `backoff`: sessions again and again, with jittered
//!   delays, until the command has what it waits for.
//!
//! What a command does with the events (forward, print, run; or print
//! one and exit) stays in the command's module.

/// The reconnect delays, from the shared crate (the bench's agents use them too).
pub(crate) use lobster_shared::backoff;
pub(crate) mod close;
pub(crate) mod connect;
pub(crate) mod frame;
pub(crate) mod reconnect;
pub(crate) mod transport;
pub(crate) mod writer;

use lobster_shared::wire::{PROTOCOL_VERSION, Ready};

use crate::exit::{ExitCode, Fatal};

/// Fatal (exit code 3) when the relay speaks another protocol version.
pub fn check_protocol(ready: &Ready) -> Result<(), anyhow::Error> {
    if ready.protocol == PROTOCOL_VERSION {
        return Ok(());
    }
    Err(Fatal {
        code: ExitCode::Auth,
        message: format!(
            "the relay speaks protocol version {}, this lobster-relay speaks {PROTOCOL_VERSION}",
            ready.protocol
        ),
        next_step: Some("upgrade lobster-relay to a release that matches the relay".into()),
    }
    .into())
}
