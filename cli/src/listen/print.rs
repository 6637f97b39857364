//! Print mode: each event as one JSON line on stdout, flushed before the ack.
//!
//! The line is the whole `event` frame as the relay sent it (`"type":"event"`
//! included), so `jq` and `while read` loops see the contract's fields.
//! Events are printed one at a time in arrival order, whatever
//! `--concurrency` says. When
//! stdout is closed (`lobster-relay listen | head -1`) the event is left
//! unanswered and the listener stops quietly with exit code 0; the relay
//! hands the event out again later.

use std::io;

use lobster_shared::wire::RelayMessage;
use tokio_util::sync::CancellationToken;

use super::outcome::Outcome;
use crate::agent::frame::{self, Event};
use crate::ui::print_data;

/// Writes events to stdout.
pub struct Printer {
    stop: CancellationToken,
}

impl Printer {
    /// A printer that cancels `stop` when stdout is closed.
    pub fn new(stop: CancellationToken) -> Self {
        Self { stop }
    }

    /// Prints one event and says whether it reached stdout.
    pub async fn print(&self, event: &Event) -> Outcome {
        let line = RelayMessage::Event(frame::owned(event.clone())).to_json();
        // The std lock keeps concurrent lines whole; the blocking pool keeps
        // a slow reader of the pipe from stalling the runtime.
        let written = tokio::task::spawn_blocking(move || print_data(line)).await;
        match written {
            Ok(Ok(())) => Outcome::Done {
                status: "printed".to_owned(),
            },
            Ok(Err(err)) if err.kind() == io::ErrorKind::BrokenPipe => {
                self.stop.cancel();
                Outcome::Abandoned
            }
            Ok(Err(err)) => Outcome::Failed {
                reason: format!("could not write to stdout: {err}"),
            },
            Err(err) => Outcome::Failed {
                reason: format!("could not write to stdout: {err}"),
            },
        }
    }
}
