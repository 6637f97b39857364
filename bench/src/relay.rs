//! The relay under test: a `lobster-relay server` child started on a free
//! loopback port with a throwaway data dir, or one already running. A
//! spawned relay can be restarted on the same port and data dir.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use base64::Engine as _;
use lobster_shared::signature::SigningKey;
use serde::Deserialize;
use tempfile::TempDir;
use tokio::io::{AsyncBufReadExt as _, AsyncRead, BufReader, Lines};
use tokio::process::{Child, Command};

use crate::stats::Setup;

const START_LIMIT: Duration = Duration::from_secs(20);
const STOP_LIMIT: Duration = Duration::from_secs(5);

/// Where the relay comes from.
#[derive(Debug, Clone, clap::Args)]
pub struct RelayArgs {
    /// The `lobster-relay` binary [default: next to this one]; `compare`
    /// takes it more than once (each meets the same load, labelled by file name)
    #[arg(long, global = true, value_name = "PATH")]
    pub relay_bin: Vec<PathBuf>,
    /// Use this running relay instead of starting one
    #[arg(long, global = true, value_name = "URL", requires_all = ["admin_token", "webhook_secret"])]
    pub relay_url: Option<String>,
    /// Admin token of the running relay (with --relay-url)
    #[arg(long, global = true, value_name = "TOKEN")]
    pub admin_token: Option<String>,
    /// Webhook signing secret of the running relay (with --relay-url)
    #[arg(long, global = true, value_name = "SECRET")]
    pub webhook_secret: Option<String>,
}

impl RelayArgs {
    /// The `lobster-relay` binary to run (the server, or `listen`).
    pub fn bin(&self) -> anyhow::Result<PathBuf> {
        match &self.relay_bin[..] {
            [] => {}
            [bin] => return given_bin(bin),
            _ => bail!("--relay-bin more than once is for `compare`; give one binary here"),
        }
        let exe = std::env::current_exe().context("cannot find this executable's path")?;
        let bin = exe.with_file_name("lobster-relay");
        if !bin.exists() {
            // Built by the same profile as this binary: `cargo run -p
            // lobster-bench` builds only the bench, not the relay.
            let profile = match exe.parent().and_then(Path::file_name) {
                Some(dir) if dir == "debug" => "",
                _ => "--release ",
            };
            bail!(
                "no lobster-relay binary at {}; run `cargo build {profile}-p lobster-relay` or pass --relay-bin PATH",
                bin.display()
            );
        }
        Ok(bin)
    }

    /// `compare`'s binaries, each with a label: its file name, numbered when
    /// two share one; the default binary alone when none was given.
    pub fn labelled_bins(&self) -> anyhow::Result<Vec<(String, PathBuf)>> {
        let bins = if self.relay_bin.is_empty() {
            vec![self.bin()?]
        } else {
            self.relay_bin
                .iter()
                .map(|b| given_bin(b))
                .collect::<anyhow::Result<_>>()?
        };
        Ok(label_by_file_name(bins))
    }
}

fn given_bin(bin: &Path) -> anyhow::Result<PathBuf> {
    if !bin.is_file() {
        bail!("--relay-bin {}: no such file", bin.display());
    }
    Ok(bin.to_owned())
}

/// Labels paths by file name, `name#2`, `name#3`... for repeats.
fn label_by_file_name(bins: Vec<PathBuf>) -> Vec<(String, PathBuf)> {
    let names: Vec<String> = bins
        .iter()
        .map(|b| {
            b.file_name().map_or_else(
                || b.display().to_string(),
                |n| n.to_string_lossy().into_owned(),
            )
        })
        .collect();
    names
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let before = names[..i].iter().filter(|n| *n == name).count();
            if before == 0 {
                name.clone()
            } else {
                format!("{name}#{}", before + 1)
            }
        })
        .zip(bins)
        .collect()
}

/// A created agent, with the key that is shown only once.
#[derive(Debug, Clone, Deserialize)]
pub struct Agent {
    pub api_key: String,
    pub webhook_url: String,
}

/// The relay the run talks to.
pub struct Relay {
    pub url: String,
    pub key: SigningKey,
    admin_token: String,
    child: Option<Child>,
    /// What a restart needs to start the same relay again.
    spawned: Option<Spawned>,
    pub log: Arc<LogWatch>,
    http: reqwest::Client,
}

/// A spawned relay's command line, kept for restarts.
struct Spawned {
    bin: PathBuf,
    data_dir: TempDir,
    secret: String,
    /// Server flags beyond the harness's own (`--database`, `--redis`, ...).
    extra: Vec<String>,
}

/// What a relay this harness starts is given. Instances that share a
/// database share one `Launch`'s secret and admin token, so an agent
/// created on one is usable on all.
#[derive(Debug, Clone)]
pub struct Launch {
    pub secret: String,
    pub admin_token: String,
    /// Server flags beyond the harness's own.
    pub extra: Vec<String>,
}

impl Launch {
    /// A fresh webhook secret and admin token, no extra flags.
    pub fn fresh() -> Launch {
        Launch {
            secret: format!(
                "whsec_{}",
                base64::engine::general_purpose::STANDARD.encode(rand::random::<[u8; 24]>())
            ),
            admin_token: format!("bench_{:032x}", rand::random::<u128>()),
            extra: Vec::new(),
        }
    }
}

/// How long each step of a restart took, from the signal.
#[derive(Debug, Clone)]
pub struct Restart {
    /// The old process had exited.
    pub exited: Duration,
    /// The new one said `relay listening`.
    pub listening: Duration,
    /// How the old process ended.
    pub exit: String,
}

impl Relay {
    pub async fn start(args: &RelayArgs) -> anyhow::Result<Relay> {
        let http = admin_client()?;
        if let Some(url) = &args.relay_url {
            let secret = args.webhook_secret.clone().unwrap_or_default();
            return Ok(Relay {
                url: url.trim_end_matches('/').to_owned(),
                key: SigningKey::parse(&secret).context("--webhook-secret is not usable")?,
                admin_token: args.admin_token.clone().unwrap_or_default(),
                child: None,
                spawned: None,
                log: Arc::default(),
                http,
            });
        }
        Relay::spawn(&args.bin()?, Launch::fresh()).await
    }

    /// Starts `lobster-relay server` from `bin` on a free loopback port with
    /// a throwaway data dir.
    pub async fn spawn(bin: &Path, launch: Launch) -> anyhow::Result<Relay> {
        let http = admin_client()?;
        let Launch {
            secret,
            admin_token,
            extra,
        } = launch;
        let spawned = Spawned {
            bin: bin.to_owned(),
            data_dir: tempfile::tempdir().context("cannot create a temporary data dir")?,
            secret,
            extra,
        };
        let log = Arc::new(LogWatch::default());
        let (child, addr) = spawned.spawn("127.0.0.1:0", &admin_token, &log).await?;
        Ok(Relay {
            url: format!("http://{addr}"),
            key: SigningKey::parse(&spawned.secret)?,
            admin_token,
            child: Some(child),
            spawned: Some(spawned),
            log,
            http,
        })
    }

    /// The spawned relay's process id; `None` for an external relay.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(Child::id)
    }

    /// Stops the spawned relay with `kill -SIGNAL` and starts it again on
    /// the same port and data dir, as an operator's restart would.
    pub async fn restart(&mut self, signal: &str) -> anyhow::Result<Restart> {
        let (Some(child), Some(spawned)) = (self.child.as_mut(), self.spawned.as_ref()) else {
            bail!("only a relay this harness started can be restarted (not --relay-url)");
        };
        let signalled = Instant::now();
        let exit = stop_child(child, signal).await?;
        let exited = signalled.elapsed();
        let listen = self.url.trim_start_matches("http://").to_owned();
        let (child, addr) = spawned.spawn(&listen, &self.admin_token, &self.log).await?;
        let listening = signalled.elapsed();
        self.child = Some(child);
        if format!("http://{addr}") != self.url {
            bail!("the restarted relay listens on {addr}, not {}", self.url);
        }
        Ok(Restart {
            exited,
            listening,
            exit,
        })
    }

    /// Notes where the relay is and how it stores events.
    pub fn describe(&self, setup: &mut Setup) {
        if let Some(spawned) = self.spawned.as_ref().filter(|s| !s.extra.is_empty()) {
            setup.add("relay", format!("spawned at {}", self.url));
            setup.add("relay_flags", spawned.extra.join(" "));
        } else if self.child.is_some() {
            setup.add("relay", format!("spawned at {}", self.url));
            setup.add(
                "durability",
                "sqlite in a temp dir, defaults: 202 after the group commit and its WAL fsync",
            );
        } else {
            setup.add("relay", format!("external at {}", self.url));
            setup.add("durability", "as configured on the external relay");
        }
    }

    pub async fn create_agent(&self, name: &str) -> anyhow::Result<Agent> {
        let url = format!("{}/api/v1/admin/agents", self.url);
        let response = self
            .http
            .post(&url)
            .bearer_auth(&self.admin_token)
            .json(&serde_json::json!({ "name": name }))
            .send()
            .await
            .with_context(|| format!("POST {url} failed"))?;
        let status = response.status();
        if status != reqwest::StatusCode::CREATED {
            let body = response.text().await.unwrap_or_default();
            bail!("creating agent {name}: expected 201, got {status}: {body}");
        }
        response.json().await.context("the create-agent answer")
    }

    /// Stops a spawned relay with SIGTERM, then SIGKILL if it lingers.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(child) = self.child.as_mut() {
            stop_child(child, "TERM").await?;
        }
        Ok(())
    }
}

impl Spawned {
    /// Starts `lobster-relay server` on `listen` and waits until it listens;
    /// its stderr then drains into `log`.
    async fn spawn(
        &self,
        listen: &str,
        admin_token: &str,
        log: &Arc<LogWatch>,
    ) -> anyhow::Result<(Child, String)> {
        let bin = &self.bin;
        let mut child = Command::new(bin)
            .args([
                "server",
                "--listen",
                listen,
                "--agent-rate-limit",
                "1000000/s",
                // The ingest benchmark stores events no agent takes: past
                // the default cap of 100,000 the relay would answer 429.
                "--agent-max-pending",
                "1000000000",
            ])
            .arg("--data-dir")
            .arg(self.data_dir.path())
            .args([
                "--webhook-secret",
                &self.secret,
                "--admin-token",
                admin_token,
            ])
            .args(&self.extra)
            .env("RELAY_LOG_FORMAT", "json")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot run {}", bin.display()))?;
        let stderr = child.stderr.take().expect("stderr is piped");
        let mut lines = BufReader::new(stderr).lines();
        let ready = tokio::time::timeout(START_LIMIT, wait_for(&mut lines, "relay listening"));
        let line = ready
            .await
            .context("the relay did not say `relay listening` within 20 s")??;
        let addr = listening_addr(&line)
            .with_context(|| format!("no 127.0.0.1 address in the relay's line: {line}"))?;
        let _drained = log.clone().drain(lines, |l| {
            l.contains("\"level\":\"WARN\"") || l.contains("\"level\":\"ERROR\"")
        });
        Ok((child, addr))
    }
}

/// The client for admin calls.
fn admin_client() -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
}

/// Sends `kill -SIGNAL` to a child this harness started and waits for it.
pub async fn stop_child(child: &mut Child, signal: &str) -> anyhow::Result<String> {
    if let Some(pid) = child.id() {
        let _ = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(pid.to_string())
            .status()
            .await;
    }
    match tokio::time::timeout(STOP_LIMIT, child.wait()).await {
        Ok(status) => Ok(status?.to_string()),
        Err(_) => {
            child.kill().await?;
            Ok(format!(
                "did not exit within {STOP_LIMIT:?} of SIG{signal}; killed"
            ))
        }
    }
}

/// Reads lines until one contains `needle`; fails at end of stream, naming
/// the last lines, which say why the process stopped.
pub async fn wait_for<R>(lines: &mut Lines<BufReader<R>>, needle: &str) -> anyhow::Result<String>
where
    R: AsyncRead + Unpin,
{
    let mut last = Vec::new();
    while let Some(line) = lines.next_line().await? {
        if line.contains(needle) {
            return Ok(line);
        }
        last.push(line);
        if last.len() > 5 {
            last.remove(0);
        }
    }
    bail!(
        "the process ended before saying {needle:?}; its last lines:\n{}",
        last.join("\n")
    )
}

fn listening_addr(line: &str) -> Option<String> {
    let start = line.find("127.0.0.1:")?;
    let rest = &line[start + "127.0.0.1:".len()..];
    let port: String = rest.chars().take_while(char::is_ascii_digit).collect();
    (!port.is_empty()).then(|| format!("127.0.0.1:{port}"))
}

/// Keeps a child's stderr flowing and remembers its notable lines.
#[derive(Default)]
pub struct LogWatch {
    state: Mutex<(u64, u64, Vec<String>)>,
}

const SAMPLES: usize = 5;

impl LogWatch {
    /// Drains `lines` in the background; lines for which `notable` holds are
    /// counted and the first few kept.
    pub fn drain<R>(
        self: Arc<Self>,
        mut lines: Lines<BufReader<R>>,
        notable: fn(&str) -> bool,
    ) -> tokio::task::JoinHandle<()>
    where
        R: AsyncRead + Unpin + Send + 'static,
    {
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                let mut state = self.state.lock().expect("log lock");
                state.0 += 1;
                if notable(&line) {
                    state.1 += 1;
                    if state.2.len() < SAMPLES {
                        state.2.push(line);
                    }
                }
            }
        })
    }

    /// (lines, notable lines, first notable lines)
    pub fn snapshot(&self) -> (u64, u64, Vec<String>) {
        self.state.lock().expect("log lock").clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binaries_are_labelled_by_file_name() {
        let bins = [
            "/a/lobster-relay-before",
            "/b/lobster-relay",
            "/c/lobster-relay",
        ]
        .map(PathBuf::from)
        .to_vec();
        let labels: Vec<String> = label_by_file_name(bins)
            .into_iter()
            .map(|(l, _)| l)
            .collect();
        assert_eq!(
            labels,
            ["lobster-relay-before", "lobster-relay", "lobster-relay#2"]
        );
    }

    #[test]
    fn finds_the_port_in_the_json_line() {
        let line = r#"{"fields":{"message":"relay listening","addr":"127.0.0.1:45279"}}"#;
        assert_eq!(listening_addr(line).as_deref(), Some("127.0.0.1:45279"));
        assert_eq!(listening_addr("relay listening"), None);
    }
}
