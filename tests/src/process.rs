//! One run of the `lobster-relay` binary: spawned with a clean environment,
//! its output drained, killed when dropped.

use std::ffi::OsString;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use anyhow::{Context as _, bail};
use tokio::process::{Child, Command};

use crate::binary::relay_bin;
use crate::output::OutputLog;

/// How long output is awaited after an exit.
const OUTPUT_DRAIN: Duration = Duration::from_secs(5);

/// Variables of the caller's environment that would change what the binary
/// does (a proxy for loopback, another relay's settings, a log filter that
/// hides the lines the harness waits for).
fn leaks_into_child(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    upper.starts_with("RELAY_")
        || upper.starts_with("LOBSTER_RELAY_")
        || upper.ends_with("_PROXY")
        || matches!(
            upper.as_str(),
            "RUST_LOG"
                | "DATABASE_URL"
                | "REDIS_URL"
                | "WEBHOOK_SECRET"
                | "CLICOLOR"
                | "CLICOLOR_FORCE"
        )
}

/// How to spawn beyond the arguments and environment.
#[derive(Debug, Clone, Default)]
pub struct SpawnOpts {
    /// Written to stdin, which is then closed; `None`: stdin is `/dev/null`.
    pub stdin: Option<Vec<u8>>,
    /// Leave `NO_COLOR` unset (it is set by default, for plain logs).
    pub allow_color: bool,
    /// Run this program instead of the binary (e.g. `script` wrapping it).
    pub program: Option<std::path::PathBuf>,
}

/// A running `lobster-relay` process.
#[derive(Debug)]
pub struct Proc {
    name: String,
    child: Child,
    pub stdout: OutputLog,
    pub stderr: OutputLog,
}

impl Proc {
    /// Runs `lobster-relay ARGS` with `envs` set on top of a cleaned
    /// environment; `name` labels it in failure messages.
    pub fn spawn(name: &str, args: &[OsString], envs: &[(String, String)]) -> anyhow::Result<Self> {
        Self::spawn_opts(name, args, envs, SpawnOpts::default())
    }

    /// [`Self::spawn`] with stdin, colour and program choices.
    pub fn spawn_opts(
        name: &str,
        args: &[OsString],
        envs: &[(String, String)],
        opts: SpawnOpts,
    ) -> anyhow::Result<Self> {
        let program = opts
            .program
            .clone()
            .unwrap_or_else(|| relay_bin().to_owned());
        let mut cmd = Command::new(&program);
        for (key, _) in std::env::vars_os() {
            if key.to_str().is_some_and(leaks_into_child) {
                cmd.env_remove(key);
            }
        }
        if opts.allow_color {
            cmd.env_remove("NO_COLOR");
        } else {
            cmd.env("NO_COLOR", "1");
        }
        cmd.args(args)
            .envs(envs.iter().map(|(k, v)| (k, v)))
            .stdin(if opts.stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = cmd
            .spawn()
            .with_context(|| format!("spawning {}", program.display()))?;
        if let (Some(input), Some(mut stdin)) = (opts.stdin, child.stdin.take()) {
            tokio::spawn(async move {
                use tokio::io::AsyncWriteExt as _;
                let _ = stdin.write_all(&input).await;
                // Dropping stdin closes it: the child sees the end.
            });
        }
        let stdout = OutputLog::capture(
            format!("{name} stdout"),
            child.stdout.take().context("stdout is piped")?,
        );
        let stderr = OutputLog::capture(
            format!("{name} stderr"),
            child.stderr.take().context("stderr is piped")?,
        );
        Ok(Self {
            name: name.to_owned(),
            child,
            stdout,
            stderr,
        })
    }

    /// The process id, while it has not been reaped.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Sends a signal by name (`TERM`, `INT`) with the system's `kill`.
    pub fn signal(&self, signal: &str) -> anyhow::Result<()> {
        let pid = self
            .pid()
            .with_context(|| format!("{} already exited", self.name))?;
        let status = std::process::Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(pid.to_string())
            .status()
            .context("running kill")?;
        if !status.success() {
            bail!("kill -{signal} {pid} failed: {status}");
        }
        Ok(())
    }

    /// SIGKILL, then reaps the process.
    pub async fn kill9(&mut self) -> anyhow::Result<ExitStatus> {
        self.child.start_kill().ok();
        self.child.wait().await.context("reaping a killed process")
    }

    /// Waits for the process to exit by itself, then for its output to be
    /// read to the end (bounded: a grandchild may hold the pipes open).
    pub async fn wait_exit(&mut self, timeout: Duration) -> anyhow::Result<ExitStatus> {
        match tokio::time::timeout(timeout, self.child.wait()).await {
            Ok(status) => {
                let status = status?;
                self.stdout.wait_closed(OUTPUT_DRAIN).await;
                self.stderr.wait_closed(OUTPUT_DRAIN).await;
                Ok(status)
            }
            Err(_) => bail!(
                "{} still running after {timeout:?}; last stderr lines:\n{}",
                self.name,
                self.stderr.tail(20)
            ),
        }
    }

    /// The exit status if the process has exited.
    pub fn try_exit(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Waits for a stderr line containing `needle`, failing early if the
    /// process closes stderr (exits) first.
    pub async fn wait_for_stderr(&self, needle: &str, timeout: Duration) -> anyhow::Result<String> {
        self.stderr.wait_for(needle, timeout).await
    }
}
