//! How a session ends, and what a close from the relay means.

use std::time::Duration;

use lobster_shared::wire::{ErrorFrame, close_code};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;

use crate::exit::Fatal;

/// How one session (connect, ready, events) ended.
#[derive(Debug)]
pub enum SessionEnd {
    /// Ctrl-C (or a closed stdout) and the drain is done: exit.
    Stopped,
    /// The connection was lost or never made: try again.
    Dropped {
        /// Why, for the line on stderr.
        reason: String,
        /// How long the session stayed up after `ready`; `None` if it never got there.
        up_for: Option<Duration>,
        /// The relay said it is restarting (close code 1012).
        restarting: bool,
    },
    /// Do not try again: bad key, revoked agent, protocol mismatch.
    Fatal(anyhow::Error),
}

impl SessionEnd {
    /// A drop before `ready`.
    pub fn failed(reason: impl Into<String>) -> Self {
        Self::Dropped {
            reason: reason.into(),
            up_for: None,
            restarting: false,
        }
    }

    /// The relay closed the session saying it is restarting.
    pub fn restarting(reason: impl Into<String>) -> Self {
        Self::Dropped {
            reason: reason.into(),
            up_for: None,
            restarting: true,
        }
    }
}

/// What a close frame from the relay means. `last_error` is the `error`
/// frame that came just before it, if any, whose message is more specific.
pub fn on_close(frame: Option<&CloseFrame>, last_error: Option<&ErrorFrame>) -> SessionEnd {
    let code = frame.map(|frame| u16::from(frame.code));
    let said = last_error.map(|err| err.message.clone()).or_else(|| {
        frame
            .map(|f| f.reason.to_string())
            .filter(|r| !r.is_empty())
    });
    // Adds what the relay said, unless it only repeats our own words.
    let with = |text: &str| match &said {
        Some(said) if !repeats(text, said) => format!("{text}: {said}"),
        _ => text.to_owned(),
    };
    match code {
        Some(close_code::UNAUTHORIZED) => SessionEnd::Fatal(
            Fatal::auth(
                with("the relay refused the API key (close code 4001)"),
                "check --api-key / LOBSTER_RELAY_API_KEY, or ask the relay admin for a new key",
            )
            .into(),
        ),
        Some(close_code::REVOKED) => SessionEnd::Fatal(
            Fatal::auth(
                with("this agent was revoked (close code 4003)"),
                "ask the relay admin for a new agent and key (`lobster-relay admin create-agent`)",
            )
            .into(),
        ),
        Some(close_code::RESTARTING) => SessionEnd::restarting(with("the relay is restarting")),
        Some(close_code::PROTOCOL_VIOLATION) => SessionEnd::failed(with(
            "the relay reported a protocol violation (close code 4008)",
        )),
        Some(code) => SessionEnd::failed(with(&format!(
            "the relay closed the connection (code {code})"
        ))),
        None => SessionEnd::failed(with("the relay closed the connection")),
    }
}

/// True when every word of `said` is already a word of `text`.
fn repeats(text: &str, said: &str) -> bool {
    let text = text.to_lowercase();
    let words: Vec<&str> = text.split(|c: char| !c.is_alphanumeric()).collect();
    said.to_lowercase()
        .split(|c: char| !c.is_alphanumeric())
        .filter(|word| !word.is_empty())
        .all(|word| words.contains(&word))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exit::ExitCode;
    use crate::report::exit_code;
    use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

    fn close(code: u16, reason: &'static str) -> CloseFrame {
        CloseFrame {
            code: CloseCode::from(code),
            reason: reason.into(),
        }
    }

    fn fatal_code(end: SessionEnd) -> Option<ExitCode> {
        match end {
            SessionEnd::Fatal(err) => Some(exit_code(&err)),
            _ => None,
        }
    }

    #[test]
    fn unauthorized_and_revoked_are_fatal_auth_failures() {
        assert_eq!(
            fatal_code(on_close(Some(&close(4001, "")), None)),
            Some(ExitCode::Auth)
        );
        assert_eq!(
            fatal_code(on_close(Some(&close(4003, "")), None)),
            Some(ExitCode::Auth)
        );
    }

    #[test]
    fn everything_else_reconnects() {
        for code in [1000, 1001, 1006, 1011, 1012, 4008, 4999] {
            assert!(
                fatal_code(on_close(Some(&close(code, "")), None)).is_none(),
                "{code}"
            );
        }
        assert!(fatal_code(on_close(None, None)).is_none());
    }

    #[test]
    fn the_error_frame_explains_the_close() {
        let error = ErrorFrame {
            code: "agent_revoked".into(),
            message: "revoked by admin".into(),
        };
        let SessionEnd::Fatal(err) = on_close(Some(&close(4003, "bye")), Some(&error)) else {
            panic!("not fatal");
        };
        assert!(err.to_string().ends_with("revoked by admin"), "{err}");
        let SessionEnd::Dropped { reason, .. } = on_close(Some(&close(1012, "deploy")), None)
        else {
            panic!("not dropped");
        };
        assert_eq!(reason, "the relay is restarting: deploy");
        let SessionEnd::Dropped { reason, .. } =
            on_close(Some(&close(1012, "relay restarting")), None)
        else {
            panic!("not dropped");
        };
        assert_eq!(reason, "the relay is restarting");
    }
}
