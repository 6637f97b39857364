//! The end of a failed command: its message on stderr and its exit code,
//! read from the error chain (a [`Fatal`], a configuration error, the
//! relay refusing the key).

use std::io::{self, Write as _};

use crate::api::ApiError;
use crate::exit::{ExitCode, Fatal, is_broken_pipe};

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
