//! Exit codes and the errors that choose them.
//!
//! Commands return `anyhow::Result`; `report::report` turns an error into
//! the one-or-two-line message on stderr and the exit code listed in
//! `docs/cli.md` ("Output and exit codes"). This module knows no command
//! and no client: everything may import it.

use std::io;

use crate::proxy::Proxy;

/// The process exit codes (`docs/cli.md`, "Output and exit codes").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitCode {
    /// Everything went as asked.
    Success = 0,
    /// A runtime failure: unreachable relay, API error, I/O error.
    Failure = 1,
    /// Bad flags or arguments (clap exits with 2 by itself).
    Usage = 2,
    /// The relay refused the credentials, or the protocol does not match.
    Auth = 3,
    /// `wait` gave up: no matching event within `--timeout` (as timeout(1)).
    Timeout = 124,
    /// A second Ctrl-C stopped the process at once.
    Interrupted = 130,
}

impl From<ExitCode> for std::process::ExitCode {
    fn from(code: ExitCode) -> Self {
        std::process::ExitCode::from(code as u8)
    }
}

/// A failure that needs a specific exit code and a next step for the user.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Fatal {
    /// The exit code the process ends with.
    pub code: ExitCode,
    /// What failed, in one line.
    pub message: String,
    /// What to do about it, printed on its own line.
    pub next_step: Option<String>,
}

impl Fatal {
    /// An authentication failure (exit code 3) with what to do about it.
    pub fn auth(message: impl Into<String>, next_step: impl Into<String>) -> Self {
        Self {
            code: ExitCode::Auth,
            message: message.into(),
            next_step: Some(next_step.into()),
        }
    }

    /// A usage error (exit code 2) found after clap had parsed the flags.
    pub fn usage(message: impl Into<String>, next_step: impl Into<String>) -> Self {
        Self {
            code: ExitCode::Usage,
            message: message.into(),
            next_step: Some(next_step.into()),
        }
    }

    /// The first connection to `relay` (through the proxy `via`, if any)
    /// could not be made (exit code 1): `listen` and `wait` say so at once
    /// rather than retrying a relay that may never have been there.
    pub fn relay_unreachable(relay: &str, reason: &str, via: Option<&Proxy>) -> Self {
        let check = "check --relay (or LOBSTER_RELAY_URL, or `lobster-relay login`) and that the relay is running";
        Self {
            code: ExitCode::Failure,
            message: format!("cannot reach the relay at {relay}: {reason}"),
            next_step: Some(match via {
                None => check.into(),
                Some(proxy) => format!(
                    "{check}; and the proxy in {} too, or bypass it with NO_PROXY",
                    proxy.var
                ),
            }),
        }
    }
}

/// True when the error comes from writing to a closed stdout (`| head -1`).
pub fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<io::Error>()
            .is_some_and(|io| io.kind() == io::ErrorKind::BrokenPipe)
    })
}
