//! `lobster-relay listen` as a child process.

use std::ffi::OsString;
use std::process::ExitStatus;
use std::time::Duration;

use anyhow::Context as _;
use tempfile::TempDir;

use crate::output::OutputLog;
use crate::process::Proc;

/// The stderr line `listen` prints once connected.
pub const READY_LINE: &str = "Ready! Your webhook URL is";

/// Upper bound for `listen` to connect.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// A running `lobster-relay listen`; killed when dropped.
#[derive(Debug)]
pub struct Listener {
    proc: Proc,
    stdout_cursor: usize,
    /// Its own config dir, so no user config or keyring entry leaks in.
    _config_dir: TempDir,
}

impl Listener {
    /// Runs `lobster-relay listen --relay URL --api-key KEY ARGS`; does not
    /// wait for it to connect (see [`Self::wait_ready`]).
    pub async fn start(relay_url: &str, api_key: &str, args: &[&str]) -> anyhow::Result<Self> {
        Self::start_with_env(relay_url, api_key, args, &[]).await
    }

    /// [`Self::start`] with extra environment variables.
    pub async fn start_with_env(
        relay_url: &str,
        api_key: &str,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> anyhow::Result<Self> {
        let config_dir = tempfile::tempdir().context("creating the listener's config dir")?;
        let mut argv: Vec<OsString> = vec![
            "listen".into(),
            "--relay".into(),
            relay_url.into(),
            "--api-key".into(),
            api_key.into(),
        ];
        argv.extend(args.iter().map(OsString::from));
        let config_path = config_dir
            .path()
            .to_str()
            .context("temp dir path is UTF-8")?;
        let mut env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        env.push((
            "LOBSTER_RELAY_CONFIG_DIR".to_owned(),
            config_path.to_owned(),
        ));
        let proc = Proc::spawn("listener", &argv, &env)?;
        Ok(Self {
            proc,
            stdout_cursor: 0,
            _config_dir: config_dir,
        })
    }

    /// Starts a listener and waits until it is ready.
    pub async fn ready(relay_url: &str, api_key: &str, args: &[&str]) -> anyhow::Result<Self> {
        let listener = Self::start(relay_url, api_key, args).await?;
        listener.wait_ready().await?;
        Ok(listener)
    }

    /// Waits for `Ready! Your webhook URL is ...`; returns the URL (without
    /// the ` (via SSE: ...)` a fallback adds; [`Self::wait_ready_line`]
    /// has it).
    pub async fn wait_ready(&self) -> anyhow::Result<String> {
        let line = self.wait_ready_line().await?;
        let after = &line[line.find(READY_LINE).map_or(0, |at| at + READY_LINE.len())..];
        let url = after.split(" (via ").next().unwrap_or(after);
        Ok(url.trim().trim_end_matches('.').trim().to_owned())
    }

    /// Waits for the Ready line; returns it whole.
    pub async fn wait_ready_line(&self) -> anyhow::Result<String> {
        self.proc
            .wait_for_stderr(READY_LINE, READY_TIMEOUT)
            .await
            .context("listen never got ready")
    }

    /// The next stdout line not yet returned by this method.
    pub async fn next_stdout_line(&mut self, timeout: Duration) -> anyhow::Result<String> {
        self.proc
            .stdout
            .next_line(&mut self.stdout_cursor, timeout)
            .await?
            .context("listen closed its stdout")
    }

    pub fn stdout(&self) -> &OutputLog {
        &self.proc.stdout
    }

    pub fn stderr(&self) -> &OutputLog {
        &self.proc.stderr
    }

    /// SIGINT, as Ctrl-C sends.
    pub fn interrupt(&self) -> anyhow::Result<()> {
        self.proc.signal("INT")
    }

    /// SIGSTOP: the process freezes as on a laptop whose lid closed.
    pub fn pause(&self) -> anyhow::Result<()> {
        self.proc.signal("STOP")
    }

    /// SIGCONT after [`Self::pause`].
    pub fn resume(&self) -> anyhow::Result<()> {
        self.proc.signal("CONT")
    }

    pub async fn kill9(&mut self) -> anyhow::Result<()> {
        self.proc.kill9().await?;
        Ok(())
    }

    /// Waits for the listener to exit by itself.
    pub async fn wait_exit(&mut self, timeout: Duration) -> anyhow::Result<ExitStatus> {
        self.proc.wait_exit(timeout).await
    }

    /// The exit status if it has exited.
    pub fn try_exit(&mut self) -> Option<ExitStatus> {
        self.proc.try_exit()
    }
}
