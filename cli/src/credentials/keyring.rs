//! The OS keyring: Secret Service on Linux and BSD (pure-Rust D-Bus, no C
//! library), Keychain on macOS, Credential Manager on Windows; service
//! `lobster-relay`, account = the relay URL.
//!
//! Keyring calls block on D-Bus or the OS, may wait for an unlock prompt
//! forever, and the Secret Service client can panic when called on a tokio
//! worker thread. So each call runs on a plain thread of its own, outside
//! the runtime, and the caller waits for it with a timeout; a call that does
//! not answer in time is left behind (it ends with the process) and counts
//! as "no keyring".

use std::fmt;
use std::panic::AssertUnwindSafe;
use std::time::Duration;

use keyring::{Entry, Error};

/// The keyring service name of every entry (`docs/cli.md`, "Where the relay and the key come from").
pub const SERVICE: &str = "lobster-relay";

/// How long a keyring call may take, unlock prompt included.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// Why the OS keyring could not be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyringError {
    /// There is no keyring here (no Secret Service on D-Bus, say).
    Unavailable(String),
    /// There is one, but the call failed or did not answer in time.
    Failed(String),
}

impl fmt::Display for KeyringError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unavailable(why) | Self::Failed(why) => f.write_str(why),
        }
    }
}

/// The API key stored for `account`, or `None`.
pub async fn get(account: &str) -> Result<Option<String>, KeyringError> {
    let account = account.to_owned();
    off_runtime(
        move || match Entry::new(SERVICE, &account)?.get_password() {
            Ok(key) => Ok(Some(key)),
            Err(Error::NoEntry) => Ok(None),
            Err(err) => Err(err),
        },
    )
    .await
}

/// Stores `key` for `account`, and reads it back to be sure it is there.
pub async fn set(account: &str, key: &str) -> Result<(), KeyringError> {
    let (account, key) = (account.to_owned(), key.to_owned());
    off_runtime(move || {
        let entry = Entry::new(SERVICE, &account)?;
        entry.set_password(&key)?;
        Ok(entry.get_password()? == key)
    })
    .await?
    .then_some(())
    .ok_or_else(|| {
        KeyringError::Failed("the OS keyring did not keep the key (it read back different)".into())
    })
}

/// Deletes the key of `account`; false when there was none.
pub async fn delete(account: &str) -> Result<bool, KeyringError> {
    let account = account.to_owned();
    off_runtime(
        move || match Entry::new(SERVICE, &account)?.delete_credential() {
            Ok(()) => Ok(true),
            Err(Error::NoEntry) => Ok(false),
            Err(err) => Err(err),
        },
    )
    .await
}

/// Runs `op` on its own thread and waits for it at most [`TIMEOUT`].
async fn off_runtime<T, F>(op: F) -> Result<T, KeyringError>
where
    T: Send + 'static,
    F: FnOnce() -> keyring::Result<T> + Send + 'static,
{
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("keyring".into())
        .spawn(move || {
            let result = std::panic::catch_unwind(AssertUnwindSafe(op));
            let _ = tx.send(result);
        })
        .map_err(|err| {
            KeyringError::Failed(format!(
                "could not start a thread for the OS keyring: {err}"
            ))
        })?;
    let failed = |why: &str| Err(KeyringError::Failed(why.to_owned()));
    match tokio::time::timeout(TIMEOUT, rx).await {
        Ok(Ok(Ok(Ok(value)))) => Ok(value),
        Ok(Ok(Ok(Err(err)))) => Err(describe(&err)),
        Ok(Ok(Err(_))) => failed("the OS keyring client crashed"),
        Ok(Err(_)) => failed("the OS keyring client ended without an answer"),
        Err(_) => failed(&format!(
            "the OS keyring did not answer within {}s (is it locked?)",
            TIMEOUT.as_secs()
        )),
    }
}

/// A keyring error as one short line.
fn describe(err: &Error) -> KeyringError {
    match err {
        Error::NoDefaultStore => KeyringError::Unavailable(match Entry::store_status() {
            Err(why) => one_line(&format!("no OS keyring is available: {why}")),
            Ok(()) => "no OS keyring is available".to_owned(),
        }),
        Error::NoStorageAccess(why) => {
            KeyringError::Failed(one_line(&format!("the OS keyring refused access: {why}")))
        }
        other => KeyringError::Failed(one_line(&format!("the OS keyring failed: {other}"))),
    }
}

fn one_line(text: &str) -> String {
    const MAX: usize = 200;
    // The stores' wrappers add nothing a user can act on.
    let text = text
        .replace("Platform failure: ", "")
        .replace("zbus error: ", "");
    let first = text.lines().next().unwrap_or_default();
    match first.char_indices().nth(MAX) {
        Some((at, _)) => format!("{}...", &first[..at]),
        None => first.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panicking_call_is_an_error_not_a_crash() {
        let result: Result<(), _> = off_runtime(|| panic!("boom")).await;
        assert_eq!(
            result.unwrap_err(),
            KeyringError::Failed("the OS keyring client crashed".into())
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_hanging_call_times_out() {
        let (_keep, hold) = std::sync::mpsc::channel::<()>();
        let result: Result<(), _> = off_runtime(move || {
            let _ = hold.recv();
            Ok(())
        })
        .await;
        assert!(result.unwrap_err().to_string().contains("did not answer"));
    }

    #[test]
    fn errors_read_as_one_short_line() {
        let long = Error::Invalid("x".repeat(500), "line one\nline two".into());
        let text = describe(&long).to_string();
        assert!(!text.contains('\n'), "{text}");
        assert!(text.len() < 260, "{text}");
        assert_eq!(
            one_line("no OS keyring: Platform failure: zbus error: Failed to connect"),
            "no OS keyring: Failed to connect"
        );
    }
}
