//! Exec mode: run a shell command per event.
//!
//! `sh -c CMD` (`cmd /C` on Windows) gets the raw body on stdin and
//! `LOBSTER_EVENT_ID`, `LOBSTER_EVENT_TYPE`, `LOBSTER_EVENT_ATTEMPT` in its
//! environment; exit status 0 acks, anything else nacks with the status as
//! the reason.
//!
//! The command inherits our stdout and stderr. In exec mode lobster-relay
//! itself writes nothing to stdout, so stdout carries exactly what the
//! commands print (`--exec 'jq -c .data' > out.jsonl` works), and our status
//! lines stay on stderr. A command that does not read its stdin is fine: the
//! body write stops when it exits.

use std::process::{ExitStatus, Stdio};

use tokio::io::AsyncWriteExt as _;
use tokio::process::Command;

use super::outcome::Outcome;
use crate::agent::frame::Event;

/// Runs the `--exec` command.
pub struct Executor {
    command: String,
}

impl Executor {
    /// An executor for `command`, a shell command line.
    pub fn new(command: String) -> Self {
        Self { command }
    }

    /// The command line as given.
    pub fn command(&self) -> &str {
        &self.command
    }

    /// Runs the command for one event and waits for it to exit.
    pub async fn run(&self, frame: &Event) -> Outcome {
        let body = match frame.raw_body() {
            Ok(body) => body,
            Err(err) => {
                return Outcome::Failed {
                    reason: err.to_string(),
                };
            }
        };
        let mut child = match shell(&self.command)
            .env("LOBSTER_EVENT_ID", frame.id.as_str())
            .env("LOBSTER_EVENT_TYPE", frame.event_type.as_str())
            .env("LOBSTER_EVENT_ATTEMPT", frame.attempt.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::inherit())
            .stderr(Stdio::inherit())
            .spawn()
        {
            Ok(child) => child,
            Err(err) => {
                return Outcome::Failed {
                    reason: format!("could not start the shell: {err}"),
                };
            }
        };
        let stdin = child.stdin.take();
        let feed = async move {
            if let Some(mut stdin) = stdin {
                // A command that exits without reading makes this fail with
                // a broken pipe; its exit status is what counts.
                let _ = stdin.write_all(&body).await;
            }
        };
        let ((), status) = tokio::join!(feed, child.wait());
        match status {
            Ok(status) if status.success() => Outcome::Done {
                status: "exit 0".to_owned(),
            },
            Ok(status) => Outcome::Failed {
                reason: describe(status),
            },
            Err(err) => Outcome::Failed {
                reason: format!("could not wait for the command: {err}"),
            },
        }
    }
}

#[cfg(unix)]
fn shell(command: &str) -> Command {
    let mut shell = Command::new("sh");
    shell.arg("-c").arg(command);
    shell
}

#[cfg(not(unix))]
fn shell(command: &str) -> Command {
    let mut shell = Command::new("cmd");
    shell.arg("/C").arg(command);
    shell
}

/// `exit status 3` or `killed by signal 9`.
fn describe(status: ExitStatus) -> String {
    if let Some(code) = status.code() {
        return format!("exit status {code}");
    }
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt as _;
        if let Some(signal) = status.signal() {
            return format!("killed by signal {signal}");
        }
    }
    format!("ended with {status}")
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use lobster_shared::wire::{BodyEncoding, EventFrame};

    fn frame(body: &[u8]) -> Event {
        let (body, body_encoding) = EventFrame::encode_body(body);
        crate::agent::frame::shared(EventFrame {
            id: "evt_9".into(),
            event_type: "order.paid".into(),
            received_at: String::new(),
            attempt: 4,
            headers: vec![],
            body,
            body_encoding,
            replay: false,
        })
    }

    #[tokio::test]
    async fn the_body_and_environment_reach_the_command() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let command = format!(
            "cat > '{0}' && printf '%s %s %s' \"$LOBSTER_EVENT_ID\" \"$LOBSTER_EVENT_TYPE\" \
             \"$LOBSTER_EVENT_ATTEMPT\" > '{0}.env'",
            out.display()
        );
        let outcome = Executor::new(command).run(&frame(&[0xff, 0, b'x'])).await;
        assert_eq!(
            outcome,
            Outcome::Done {
                status: "exit 0".into()
            }
        );
        assert_eq!(std::fs::read(&out).unwrap(), [0xff, 0, b'x']);
        let env = std::fs::read_to_string(dir.path().join("out.env")).unwrap();
        assert_eq!(env, "evt_9 order.paid 4");
        assert_eq!(frame(b"").body_encoding, BodyEncoding::Utf8);
    }

    #[tokio::test]
    async fn a_failing_command_nacks_with_its_status() {
        let outcome = Executor::new("exit 3".into()).run(&frame(b"{}")).await;
        assert_eq!(
            outcome,
            Outcome::Failed {
                reason: "exit status 3".into()
            }
        );
        let outcome = Executor::new("kill -9 $$".into()).run(&frame(b"{}")).await;
        assert_eq!(
            outcome,
            Outcome::Failed {
                reason: "killed by signal 9".into()
            }
        );
    }

    #[tokio::test]
    async fn a_command_that_ignores_a_large_body_still_acks() {
        let outcome = Executor::new("true".into())
            .run(&frame(&vec![b'a'; 4 << 20]))
            .await;
        assert_eq!(
            outcome,
            Outcome::Done {
                status: "exit 0".into()
            }
        );
    }
}
