//! Exit codes and the errors that choose them.
//!
//! Commands return `anyhow::Result`; [`report`] turns an error into the
//! one-or-two-line message on stderr and the exit code listed in
//! `docs/cli.md` ("Output and exit codes").

use std::io::{self, Write as _};

use crate::api::ApiError;
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

/// The exit code for an error, looking through its whole chain.
pub fn exit_code(err: &anyhow::Error) -> ExitCode {
    for cause in err.chain() {
        if let Some(fatal) = cause.downcast_ref::<Fatal>() {
            return fatal.code;
        }
        if cause.is::<lobster_server::ConfigError>() {
            return ExitCode::Usage;
        }
        if let Some(api) = cause.downcast_ref::<ApiError>()
            && (api.is_auth() || matches!(api, ApiError::ProxyAuth { .. }))
        {
            return ExitCode::Auth;
        }
    }
    ExitCode::Failure
}

/// An error and its sources as one line, `outer: inner: root`, skipping
/// a source whose text repeats the previous one.
pub fn error_chain(err: &dyn std::error::Error) -> String {
    let mut parts: Vec<String> = vec![err.to_string()];
    let mut source = err.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if parts.last().is_none_or(|last| !last.contains(&text)) {
            parts.push(text);
        }
        source = cause.source();
    }
    parts.join(": ")
}

/// True when the error comes from writing to a closed stdout (`| head -1`).
pub fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<io::Error>()
            .is_some_and(|io| io.kind() == io::ErrorKind::BrokenPipe)
    })
}

/// Prints the error on stderr as `error: ...` plus an optional next step,
/// and returns the exit code. A broken stdout pipe is not an error.
pub fn report(err: &anyhow::Error) -> ExitCode {
    if is_broken_pipe(err) {
        return ExitCode::Success;
    }
    let mut stderr = io::stderr().lock();
    let _ = writeln!(stderr, "error: {err:#}");
    let next_step = err
        .chain()
        .find_map(|cause| cause.downcast_ref::<Fatal>())
        .and_then(|fatal| fatal.next_step.as_deref())
        .or_else(|| {
            err.chain()
                .find_map(|cause| cause.downcast_ref::<ApiError>())
                .and_then(ApiError::next_step)
        });
    if let Some(next_step) = next_step {
        let _ = writeln!(stderr, "  {next_step}");
    }
    exit_code(err)
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context as _;

    #[test]
    fn fatal_errors_keep_their_code_through_context() {
        let err = Err::<(), _>(Fatal::auth("key rejected", "get a new key"))
            .context("connecting")
            .unwrap_err();
        assert_eq!(exit_code(&err), ExitCode::Auth);
        assert_eq!(exit_code(&anyhow::anyhow!("boom")), ExitCode::Failure);
    }

    #[test]
    fn broken_pipes_are_recognised_through_context() {
        let io = io::Error::new(io::ErrorKind::BrokenPipe, "pipe");
        let err = Err::<(), _>(io).context("writing").unwrap_err();
        assert!(is_broken_pipe(&err));
        assert_eq!(report(&err), ExitCode::Success);
    }
}
