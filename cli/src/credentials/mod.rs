//! Where the agent's API key comes from, and where `login` keeps it.
//!
//! Lookup order: `--api-key`, `LOBSTER_RELAY_API_KEY`, the OS keyring
//! (`keyring`), `credentials.toml` in the config dir (`file`). Keys are
//! stored per relay URL, so several relays can be logged in at once.
//! `LOBSTER_RELAY_KEYRING=off` keeps the OS keyring out of it entirely
//! (tests, or machines where its prompts get in the way).

pub mod file;
pub mod keyring;

use std::fmt;
use std::path::PathBuf;

use crate::exit::Fatal;
use crate::ui::Ui;
use lobster_shared::Secret;

/// Where the API key in use came from (`status` shows it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// `--api-key`.
    Flag,
    /// `LOBSTER_RELAY_API_KEY`.
    Env,
    /// The OS keyring, stored there by `login`.
    Keyring,
    /// `credentials.toml`, stored there by `login`.
    File(PathBuf),
}

impl KeySource {
    /// The short name used in `--json` output.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Flag => "flag",
            Self::Env => "env",
            Self::Keyring => "keyring",
            Self::File(_) => "file",
        }
    }
}

impl fmt::Display for KeySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Flag => f.write_str("--api-key flag"),
            Self::Env => f.write_str("LOBSTER_RELAY_API_KEY environment variable"),
            Self::Keyring => write!(f, "OS keyring (service {})", keyring::SERVICE),
            Self::File(path) => write!(f, "{}", path.display()),
        }
    }
}

/// What a lookup needs to know.
pub struct Lookup<'a> {
    /// The key given on the command line or in the environment, and which.
    pub given: Option<(&'a Secret, KeySource)>,
    /// The relay URL as stored (`config::relay_text`).
    pub account: &'a str,
    /// False with `LOBSTER_RELAY_KEYRING=off`.
    pub use_keyring: bool,
    /// `credentials.toml`.
    pub file: PathBuf,
    /// A hint for the "not logged in" error: the login command to run.
    pub login_command: String,
}

/// The API key to use and where it came from, or an authentication failure
/// (exit code 3) that says how to provide one.
pub async fn lookup(request: Lookup<'_>, ui: &Ui) -> anyhow::Result<(Secret, KeySource)> {
    if let Some((key, source)) = request.given {
        let key = key.expose().trim();
        if !key.is_empty() {
            return Ok((Secret::new(key), source));
        }
    }
    let mut keyring_trouble = None;
    if request.use_keyring {
        match keyring::get(request.account).await {
            Ok(Some(key)) => return Ok((Secret::new(key), KeySource::Keyring)),
            Ok(None) => {}
            Err(keyring::KeyringError::Unavailable(why)) => {
                ui.detail(format!("no OS keyring: {why}"));
            }
            Err(keyring::KeyringError::Failed(why)) => {
                ui.detail(format!("not using the OS keyring: {why}"));
                keyring_trouble = Some(why);
            }
        }
    }
    if let Some(key) = file::get(&request.file, request.account)? {
        if crate::files::readable_by_others(&request.file) {
            ui.always(format!(
                "warning: {} is readable by other users; run `chmod 600 {}`",
                request.file.display(),
                request.file.display()
            ));
        }
        return Ok((Secret::new(key), KeySource::File(request.file)));
    }
    let mut next = format!(
        "run `{}`, or pass --api-key / set LOBSTER_RELAY_API_KEY",
        request.login_command
    );
    if let Some(why) = keyring_trouble {
        next.push_str(&format!(" ({why})"));
    }
    Err(Fatal::auth(format!("not logged in to {}", request.account), next).into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exit::ExitCode;
    use crate::report::exit_code;

    fn request<'a>(given: Option<(&'a Secret, KeySource)>, dir: &tempfile::TempDir) -> Lookup<'a> {
        Lookup {
            given,
            account: "http://127.0.0.1:9",
            use_keyring: false,
            file: dir.path().join("credentials.toml"),
            login_command: "lobster-relay login --relay http://127.0.0.1:9".into(),
        }
    }

    #[tokio::test]
    async fn a_given_key_wins_over_the_file() {
        let dir = tempfile::tempdir().unwrap();
        file::set(
            &dir.path().join("credentials.toml"),
            "http://127.0.0.1:9",
            "from-file",
        )
        .unwrap();
        let flag = Secret::new(" from-flag ");
        let (key, source) = lookup(request(Some((&flag, KeySource::Flag)), &dir), &Ui::silent())
            .await
            .unwrap();
        assert_eq!((key.expose(), source), ("from-flag", KeySource::Flag));
        let (key, source) = lookup(request(None, &dir), &Ui::silent()).await.unwrap();
        assert_eq!(key.expose(), "from-file");
        assert_eq!(source.name(), "file");
    }

    #[tokio::test]
    async fn no_key_anywhere_is_exit_3_with_the_login_command() {
        let dir = tempfile::tempdir().unwrap();
        let blank = Secret::new("  ");
        let err = lookup(request(Some((&blank, KeySource::Env)), &dir), &Ui::silent())
            .await
            .unwrap_err();
        assert_eq!(exit_code(&err), ExitCode::Auth);
        let fatal = err.downcast_ref::<Fatal>().unwrap();
        assert!(
            fatal
                .message
                .contains("not logged in to http://127.0.0.1:9")
        );
        assert!(
            fatal
                .next_step
                .as_deref()
                .unwrap()
                .contains("lobster-relay login --relay http://127.0.0.1:9")
        );
    }
}
