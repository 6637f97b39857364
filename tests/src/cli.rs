//! The agent commands of the CLI (`login`, `status`, `events`, `wait`, ...)
//! run to completion against a relay, each user with a config dir of its own.

use std::ffi::OsString;
use std::path::Path;
use std::process::ExitStatus;
use std::time::Duration;

use anyhow::Context as _;
use serde_json::Value;
use tempfile::TempDir;

use crate::process::{Proc, SpawnOpts};

/// Upper bound for one command to finish.
const RUN_TIMEOUT: Duration = Duration::from_secs(60);

/// What a finished command left behind.
#[derive(Debug, Clone)]
pub struct Run {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// The exit code (`-1` if killed by a signal).
    pub fn code(&self) -> i32 {
        self.status.code().unwrap_or(-1)
    }

    /// Panics unless the exit code is `code`; shows the output if not.
    #[track_caller]
    pub fn expect_code(&self, code: i32) -> &Self {
        assert_eq!(
            self.code(),
            code,
            "exit code\nstdout:\n{}\nstderr:\n{}",
            self.stdout,
            self.stderr
        );
        self
    }

    /// stdout as one JSON value.
    #[track_caller]
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|err| panic!("stdout is not JSON ({err}):\n{}", self.stdout))
    }
}

/// One user of the CLI: a config dir of their own, and extra environment.
/// The OS keyring is off (`LOBSTER_RELAY_KEYRING=off`) unless a test turns
/// it back on with [`CliUser::with_keyring_unreachable`].
#[derive(Debug)]
pub struct CliUser {
    config_dir: TempDir,
    env: Vec<(String, String)>,
    allow_color: bool,
}

impl CliUser {
    pub fn new() -> anyhow::Result<Self> {
        let config_dir = tempfile::tempdir().context("creating a config dir")?;
        let mut user = Self {
            config_dir,
            env: Vec::new(),
            allow_color: false,
        };
        let dir = user.config_dir().display().to_string();
        user.env.push(("LOBSTER_RELAY_CONFIG_DIR".into(), dir));
        user.env
            .push(("LOBSTER_RELAY_KEYRING".into(), "off".into()));
        Ok(user)
    }

    /// Turns the OS keyring on, pointing the Secret Service client at a
    /// D-Bus address that does not exist: the "headless Linux" case, with
    /// no risk of touching the keyring of the machine running the tests.
    pub fn with_keyring_unreachable(mut self) -> Self {
        self.env.retain(|(key, _)| key != "LOBSTER_RELAY_KEYRING");
        let nowhere = self.config_dir().join("no-such-bus");
        self.env.push((
            "DBUS_SESSION_BUS_ADDRESS".into(),
            format!("unix:path={}", nowhere.display()),
        ));
        self
    }

    /// Adds an environment variable to every run.
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_owned(), value.to_owned()));
        self
    }

    /// Leaves `NO_COLOR` unset, as on a user's machine.
    pub fn allow_color(mut self) -> Self {
        self.allow_color = true;
        self
    }

    pub fn config_dir(&self) -> &Path {
        self.config_dir.path()
    }

    /// Runs `lobster-relay ARGS` to completion.
    pub async fn run(&self, args: &[&str]) -> anyhow::Result<Run> {
        self.run_opts(args, None).await
    }

    /// Runs `lobster-relay ARGS` with `stdin` as its input.
    pub async fn run_with_stdin(&self, args: &[&str], stdin: &[u8]) -> anyhow::Result<Run> {
        self.run_opts(args, Some(stdin.to_vec())).await
    }

    /// Starts `lobster-relay ARGS` and leaves it running (`listen`, `wait`).
    pub fn spawn(&self, name: &str, args: &[&str]) -> anyhow::Result<Proc> {
        let opts = SpawnOpts {
            allow_color: self.allow_color,
            ..SpawnOpts::default()
        };
        Proc::spawn_opts(name, &argv(args), &self.env, opts)
    }

    async fn run_opts(&self, args: &[&str], stdin: Option<Vec<u8>>) -> anyhow::Result<Run> {
        let opts = SpawnOpts {
            stdin,
            allow_color: self.allow_color,
            program: None,
        };
        let name = args.first().copied().unwrap_or("lobster-relay");
        let mut proc = Proc::spawn_opts(name, &argv(args), &self.env, opts)?;
        let status = proc.wait_exit(RUN_TIMEOUT).await?;
        Ok(Run {
            status,
            stdout: proc.stdout.lines().join("\n"),
            stderr: proc.stderr.lines().join("\n"),
        })
    }
}

fn argv(args: &[&str]) -> Vec<OsString> {
    args.iter().map(OsString::from).collect()
}
