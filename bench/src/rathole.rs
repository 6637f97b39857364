//! rathole, a TCP tunnel that stores nothing, as `compare`'s peer: a server
//! and a client process on loopback whose one service forwards to the sink.
//! The harness writes both TOML configs itself.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use tempfile::TempDir;
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::process::{Child, Command};

use crate::relay::{LogWatch, stop_child};

const READY_LIMIT: Duration = Duration::from_secs(15);

/// `--rathole-bin`, else `rathole` on PATH, else in `cargo install`'s bin
/// dir; the reason when there is none.
pub fn find(given: Option<&Path>) -> Result<PathBuf, String> {
    if let Some(bin) = given {
        return if bin.is_file() {
            Ok(bin.to_owned())
        } else {
            Err(format!("--rathole-bin {}: no such file", bin.display()))
        };
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    let cargo_bin = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| Path::new(&home).join(".cargo")))
        .map(|home| home.join("bin"));
    std::env::split_paths(&path)
        .chain(cargo_bin)
        .map(|dir| dir.join("rathole"))
        .find(|bin| bin.is_file())
        .ok_or_else(|| {
            // rathole 0.5.0's lockfile pins a `time` that current Rust
            // rejects, so `--locked` fails to build.
            "no rathole on PATH or in ~/.cargo/bin (`cargo install rathole --no-default-features --features server,client`, without --locked; or pass --rathole-bin PATH)".to_owned()
        })
}

/// A running rathole server and client.
pub struct Rathole {
    /// Where the tunnel's public end listens.
    pub addr: String,
    server: Child,
    client: Child,
    log: Arc<LogWatch>,
    _dir: TempDir,
}

impl Rathole {
    /// Starts a server and a client of `bin` whose service forwards to
    /// `local` (host:port), and waits until a request through it is answered
    /// by `probe_url`'s path.
    pub async fn start(bin: &Path, local: &str, probe_path: &str) -> anyhow::Result<Rathole> {
        let dir = tempfile::tempdir().context("cannot create a temporary dir")?;
        let control = free_port()?;
        let public = free_port()?;
        let token = format!("{:032x}", rand::random::<u128>());
        let server_toml = dir.path().join("server.toml");
        let client_toml = dir.path().join("client.toml");
        std::fs::write(&server_toml, server_config(control, public, &token))?;
        std::fs::write(&client_toml, client_config(control, local, &token))?;
        let log = Arc::new(LogWatch::default());
        let mut server = spawn(bin, "--server", &server_toml, &log)?;
        // A client started before the server listens logs an error and
        // retries: harmless, but it would show up in every run's notes.
        if let Err(err) = wait_listening(control, &mut server).await {
            let _ = stop_child(&mut server, "TERM").await;
            let (_, _, lines) = log.snapshot();
            bail!("{err:#}; rathole said:\n  {}", lines.join("\n  "));
        }
        let client = spawn(bin, "--client", &client_toml, &log)?;
        let rathole = Rathole {
            addr: format!("127.0.0.1:{public}"),
            server,
            client,
            log,
            _dir: dir,
        };
        rathole.wait_ready(probe_path).await?;
        Ok(rathole)
    }

    /// Polls a GET through the tunnel until it is answered: the server
    /// accepts on the public port before the client's control channel is up.
    async fn wait_ready(&self, probe_path: &str) -> anyhow::Result<()> {
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(2))
            .build()?;
        let url = format!("http://{}{probe_path}", self.addr);
        let started = Instant::now();
        loop {
            let last = match http.get(&url).send().await {
                Ok(response) if response.status().is_success() => return Ok(()),
                Ok(response) => format!("answered {}", response.status()),
                Err(err) => format!("{err}"),
            };
            if started.elapsed() > READY_LIMIT {
                let (_, _, lines) = self.log.snapshot();
                bail!(
                    "the rathole tunnel did not answer {url} within {READY_LIMIT:?} ({last}); rathole said:\n  {}",
                    lines.join("\n  ")
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Stops both processes; returns what they logged at warn or above.
    pub async fn stop(mut self) -> Vec<String> {
        let mut notes = Vec::new();
        for (name, child) in [("client", &mut self.client), ("server", &mut self.server)] {
            if let Err(err) = stop_child(child, "TERM").await {
                notes.push(format!("rathole {name}: {err:#}"));
            }
        }
        let (_, notable, first) = self.log.snapshot();
        if notable > 0 {
            notes.push(format!("rathole: {notable} warnings or errors"));
            notes.extend(first.into_iter().map(|l| format!("rathole: {l}")));
        }
        notes
    }
}

/// Polls until a socket listens on 127.0.0.1:`port`, or the server exits.
/// It reads `/proc/net/tcp` rather than connecting: a connection that sends
/// no hello makes the server log an error.
async fn wait_listening(port: u16, server: &mut Child) -> anyhow::Result<()> {
    let started = Instant::now();
    loop {
        let table =
            std::fs::read_to_string("/proc/net/tcp").context("cannot read /proc/net/tcp")?;
        if listens(&table, port) {
            return Ok(());
        }
        if let Some(status) = server.try_wait()? {
            bail!("the rathole server exited ({status}) before listening on port {port}");
        }
        if started.elapsed() > READY_LIMIT {
            bail!("the rathole server did not listen on port {port} within {READY_LIMIT:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Whether `/proc/net/tcp` shows a socket listening (state `0A`) on
/// 127.0.0.1:`port`.
fn listens(table: &str, port: u16) -> bool {
    let local = format!("0100007F:{port:04X}");
    table.lines().skip(1).any(|line| {
        let mut fields = line.split_whitespace().skip(1);
        fields.next() == Some(local.as_str()) && fields.nth(1) == Some("0A")
    })
}

fn spawn(bin: &Path, mode: &str, config: &Path, log: &Arc<LogWatch>) -> anyhow::Result<Child> {
    let mut child = Command::new(bin)
        .arg(mode)
        .arg(config)
        // Warnings and errors only: a line per connection would cost the
        // tunnel time the relay does not spend.
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("cannot run {} {mode}", bin.display()))?;
    let stdout = child.stdout.take().expect("stdout is piped");
    let _drained = log.clone().drain(BufReader::new(stdout).lines(), |_| true);
    Ok(child)
}

/// A port free at the time of asking (rathole takes ports, not sockets; a
/// loopback port taken by someone else in between makes start-up fail
/// visibly, not measure the wrong thing).
fn free_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("cannot bind 127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

fn server_config(control: u16, public: u16, token: &str) -> String {
    format!(
        "[server]\nbind_addr = \"127.0.0.1:{control}\"\ndefault_token = \"{token}\"\n\n\
         [server.services.sink]\nbind_addr = \"127.0.0.1:{public}\"\n"
    )
}

fn client_config(control: u16, local: &str, token: &str) -> String {
    format!(
        "[client]\nremote_addr = \"127.0.0.1:{control}\"\ndefault_token = \"{token}\"\n\n\
         [client.services.sink]\nlocal_addr = \"{local}\"\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_binary_says_how_to_get_one() {
        let err = find(Some(Path::new("/nonexistent/rathole"))).unwrap_err();
        assert!(
            err.contains("--rathole-bin /nonexistent/rathole: no such file"),
            "{err}"
        );
    }

    #[test]
    fn reads_listening_sockets_from_proc() {
        let table = "  sl  local_address rem_address   st tx_queue rx_queue\n   \
            0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000\n   \
            1: 0100007F:1F91 0100007F:C350 01 00000000:00000000 00:00000000 00000000\n";
        assert!(listens(table, 8080));
        assert!(!listens(table, 8081), "established, not listening");
        assert!(!listens(table, 9000));
    }

    #[test]
    fn a_real_listener_shows_up() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let table = std::fs::read_to_string("/proc/net/tcp").unwrap();
        assert!(listens(&table, port));
        drop(listener);
        let table = std::fs::read_to_string("/proc/net/tcp").unwrap();
        assert!(!listens(&table, port));
    }

    #[test]
    fn configs_name_the_same_service_and_token() {
        let server = server_config(7000, 7001, "t0k");
        let client = client_config(7000, "127.0.0.1:9000", "t0k");
        assert!(server.contains("[server.services.sink]\nbind_addr = \"127.0.0.1:7001\""));
        assert!(client.contains("[client.services.sink]\nlocal_addr = \"127.0.0.1:9000\""));
        assert!(client.contains("remote_addr = \"127.0.0.1:7000\""));
        assert!(
            server.contains("default_token = \"t0k\"")
                && client.contains("default_token = \"t0k\"")
        );
    }
}
