//! `lobster-relay server` as a child process on a loopback port.

use std::ffi::OsString;
use std::path::Path;
use std::process::ExitStatus;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use base64::Engine as _;
use tempfile::TempDir;

use crate::output::OutputLog;
use crate::process::Proc;

/// The admin token every test relay is started with.
pub const ADMIN_TOKEN: &str = "e2e-admin-token-0123456789";

/// Upper bound for a relay to start listening; startup is normally far faster.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// How often a restart on a fixed port is tried before giving up: the port
/// may be briefly held, or taken by another test's ephemeral socket.
const BIND_ATTEMPTS: usize = 20;

/// The `whsec_` secret of the `default` workspace of every test relay.
pub fn webhook_secret() -> String {
    let key = b"lobster-e2e webhook key, 32 byte";
    format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode(key)
    )
}

/// How to start a relay; `RelayOpts::default()` is the plain case.
#[derive(Debug, Clone, Default)]
pub struct RelayOpts {
    /// Extra `server` flags, e.g. `["--max-body", "1KiB"]`.
    pub args: Vec<String>,
    /// Extra environment variables.
    pub env: Vec<(String, String)>,
    /// A fixed port instead of 0.
    pub port: Option<u16>,
    /// A data dir to reuse (another relay's), instead of a fresh one.
    pub data_dir: Option<Arc<TempDir>>,
    /// Serve TLS with these (cert, key) files; the harness's client trusts
    /// `ca_cert` and [`Relay::url`] is `https://`.
    pub tls: Option<TlsOpts>,
}

/// A relay's TLS files and the CA that issued them.
#[derive(Debug, Clone)]
pub struct TlsOpts {
    pub cert: std::path::PathBuf,
    pub key: std::path::PathBuf,
    pub ca_cert: std::path::PathBuf,
}

impl RelayOpts {
    /// Adds server flags.
    pub fn args<I: IntoIterator<Item = S>, S: Into<String>>(mut self, args: I) -> Self {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Adds an environment variable.
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_owned(), value.to_owned()));
        self
    }
}

/// A running relay with its own data dir; killed when dropped.
#[derive(Debug)]
pub struct Relay {
    opts: RelayOpts,
    data_dir: Arc<TempDir>,
    port: u16,
    proc: Proc,
    /// Stderr of earlier runs (before restarts), oldest first.
    earlier: Vec<OutputLog>,
    pub(crate) http: reqwest::Client,
}

impl Relay {
    /// Starts a relay and waits until it listens.
    pub async fn start(mut opts: RelayOpts) -> anyhow::Result<Self> {
        if crate::services::e2e_backend_is_postgres()
            && !opts.args.iter().any(|a| a == "--database")
        {
            let url = crate::services::fresh_database().await?;
            opts.args.extend(["--database".to_owned(), url]);
        }
        let data_dir = match &opts.data_dir {
            Some(dir) => dir.clone(),
            None => Arc::new(tempfile::tempdir().context("creating the relay's data dir")?),
        };
        if let Some(tls) = &opts.tls {
            opts.args.extend([
                "--tls-cert".to_owned(),
                tls.cert.display().to_string(),
                "--tls-key".to_owned(),
                tls.key.display().to_string(),
            ]);
        }
        let (proc, port) = launch(&opts, &data_dir, opts.port).await?;
        let mut http = reqwest::Client::builder().no_proxy();
        if let Some(tls) = &opts.tls {
            let pem = std::fs::read(&tls.ca_cert).context("reading the test CA")?;
            http = http.tls_certs_merge(reqwest::Certificate::from_pem_bundle(&pem)?);
        }
        let http = http.build()?;
        Ok(Self {
            opts,
            data_dir,
            port,
            proc,
            earlier: Vec::new(),
            http,
        })
    }

    /// `http://127.0.0.1:PORT` (`https://` with TLS), no trailing slash.
    pub fn url(&self) -> String {
        let scheme = if self.opts.tls.is_some() {
            "https"
        } else {
            "http"
        };
        format!("{scheme}://127.0.0.1:{}", self.port)
    }

    /// The harness's HTTP client for this relay (trusting its test CA).
    pub fn http_client(&self) -> reqwest::Client {
        self.http.clone()
    }

    /// Sends a signal by name (`HUP`, `TERM`) to the current run.
    pub fn signal(&self, signal: &str) -> anyhow::Result<()> {
        self.proc.signal(signal)
    }

    /// The current run's process id.
    pub fn pid(&self) -> Option<u32> {
        self.proc.pid()
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn data_dir(&self) -> &Path {
        self.data_dir.path()
    }

    /// The data dir, to start another relay on it after this one is gone.
    pub fn data_dir_handle(&self) -> Arc<TempDir> {
        self.data_dir.clone()
    }

    /// The current run's stderr.
    pub fn stderr(&self) -> &OutputLog {
        &self.proc.stderr
    }

    /// Whether any run's stderr so far has a line containing `needle`.
    pub fn stderr_contains(&self, needle: &str) -> bool {
        self.earlier
            .iter()
            .chain([&self.proc.stderr])
            .any(|log| log.contains(needle))
    }

    /// Waits for a line containing `needle` on the current run's stderr.
    pub async fn wait_for_stderr(&self, needle: &str, timeout: Duration) -> anyhow::Result<String> {
        self.proc.wait_for_stderr(needle, timeout).await
    }

    /// SIGKILL: the crash case. Returns once the process is reaped.
    pub async fn kill9(&mut self) -> anyhow::Result<()> {
        self.proc.kill9().await?;
        Ok(())
    }

    /// SIGTERM: asks for a graceful drain. See [`Self::wait_exit`].
    pub fn terminate(&self) -> anyhow::Result<()> {
        self.proc.signal("TERM")
    }

    /// Waits for the relay to exit by itself.
    pub async fn wait_exit(&mut self, timeout: Duration) -> anyhow::Result<ExitStatus> {
        self.proc.wait_exit(timeout).await
    }

    /// Starts the relay again on the same port and data dir, killing the
    /// current run first if it still runs.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        if self.proc.try_exit().is_none() {
            self.proc.kill9().await?;
        }
        let (proc, _) = launch(&self.opts, &self.data_dir, Some(self.port)).await?;
        let old = std::mem::replace(&mut self.proc, proc);
        self.earlier.push(old.stderr.clone());
        Ok(())
    }
}

/// Spawns `server` and waits for `relay listening`; on a fixed port, retries
/// while the process exits before listening (port busy).
async fn launch(
    opts: &RelayOpts,
    data_dir: &TempDir,
    port: Option<u16>,
) -> anyhow::Result<(Proc, u16)> {
    let mut args: Vec<OsString> = vec![
        "server".into(),
        "--listen".into(),
        format!("127.0.0.1:{}", port.unwrap_or(0)).into(),
        "--data-dir".into(),
        data_dir.path().into(),
        "--webhook-secret".into(),
        webhook_secret().into(),
        "--admin-token".into(),
        ADMIN_TOKEN.into(),
    ];
    args.extend(opts.args.iter().map(OsString::from));
    let mut env = vec![("RELAY_LOG_FORMAT".to_owned(), "json".to_owned())];
    env.extend(opts.env.iter().cloned());

    let attempts = if port.is_some() { BIND_ATTEMPTS } else { 1 };
    let mut last_err = None;
    for _ in 0..attempts {
        let mut proc = Proc::spawn("relay", &args, &env)?;
        match proc.wait_for_stderr("relay listening", START_TIMEOUT).await {
            Ok(line) => {
                let bound = parse_port(&line).with_context(|| {
                    format!("no http://127.0.0.1:PORT in the listening line: {line}")
                })?;
                if port.is_some_and(|want| want != bound) {
                    bail!("relay listens on {bound}, not on the requested port {port:?}");
                }
                return Ok((proc, bound));
            }
            Err(err) => {
                // Still running but silent: retrying would not help.
                if proc.try_exit().is_none() {
                    return Err(err.context("relay did not start listening"));
                }
                last_err = Some(err);
            }
        }
    }
    Err(last_err
        .expect("at least one attempt")
        .context("relay exited before listening"))
}

/// The port in the first `127.0.0.1:PORT` with a non-zero port, preferring
/// one written as a URL (`http://127.0.0.1:PORT`).
pub fn parse_port(line: &str) -> Option<u16> {
    let ports = |prefix: &str| {
        line.match_indices(prefix)
            .filter_map(|(at, _)| {
                let rest = &line[at + prefix.len()..];
                let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
                digits.parse::<u16>().ok().filter(|port| *port != 0)
            })
            .next()
    };
    ports("http://127.0.0.1:")
        .or_else(|| ports("https://127.0.0.1:"))
        .or_else(|| ports("127.0.0.1:"))
}

#[cfg(test)]
mod tests {
    use super::parse_port;

    #[test]
    fn port_comes_from_the_listening_line() {
        let json = r#"{"level":"INFO","fields":{"message":"relay listening","listen":"127.0.0.1:0","url":"http://127.0.0.1:41234"}}"#;
        assert_eq!(parse_port(json), Some(41234));
        assert_eq!(
            parse_port("relay listening addr=127.0.0.1:5000"),
            Some(5000)
        );
        assert_eq!(
            parse_port("relay listening on http://127.0.0.1:8080/"),
            Some(8080)
        );
        assert_eq!(parse_port("relay listening 127.0.0.1:0"), None);
    }
}
