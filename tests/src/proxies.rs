//! Real HTTP proxies on loopback for the proxy tests: `tinyproxy` from the
//! Debian package, with a config of the test's own and a log the test reads
//! to prove the traffic went through it.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context as _, bail};
use tempfile::TempDir;
use tokio::process::{Child, Command};

use crate::eventually;

/// How a [`Tinyproxy`] is set up.
#[derive(Debug, Clone, Default)]
pub struct TinyproxyOpts {
    /// The only ports it opens CONNECT tunnels to (else it answers 403).
    pub connect_ports: Vec<u16>,
    /// `BasicAuth USER PASSWORD`: without them it answers 407.
    pub basic_auth: Option<(String, String)>,
}

/// A private `tinyproxy` on `127.0.0.1:PORT`; killed when dropped.
pub struct Tinyproxy {
    port: u16,
    dir: TempDir,
    _child: Child,
}

/// Whether `tinyproxy` is installed; tests that need it print a notice and
/// pass without it (CI installs it: `.ci/run`).
pub fn tinyproxy_installed() -> bool {
    std::process::Command::new("tinyproxy")
        .arg("-v")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

/// False (after a notice) when tinyproxy is missing: the test then passes
/// without running. CI installs it (`.ci/run`).
pub fn have_tinyproxy(test: &str) -> bool {
    let found = tinyproxy_installed();
    if !found {
        skipped(test, "tinyproxy");
    }
    found
}

/// As [`have_tinyproxy`], for squid.
pub fn have_squid(test: &str) -> bool {
    let found = squid_installed();
    if !found {
        skipped(test, "squid");
    }
    found
}

/// The skip notice, written to the real stderr: the test harness hides
/// what `eprintln!` prints in a passing test.
fn skipped(test: &str, program: &str) {
    use std::io::Write as _;
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED {test}: {program} is not installed (apt-get install {program})"
    );
}

impl Tinyproxy {
    /// Starts it and waits until it accepts connections.
    pub async fn start(opts: TinyproxyOpts) -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("lobster-e2e-tinyproxy")
            .tempdir()?;
        // tinyproxy cannot listen on port 0: take a free port and release it.
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let log = dir.path().join("tinyproxy.log");
        let mut conf = format!(
            "Port {port}\nListen 127.0.0.1\nTimeout 60\nLogFile \"{}\"\nLogLevel Info\n\
             MaxClients 50\nAllow 127.0.0.1\n",
            log.display()
        );
        for connect_port in &opts.connect_ports {
            conf.push_str(&format!("ConnectPort {connect_port}\n"));
        }
        if let Some((user, password)) = &opts.basic_auth {
            conf.push_str(&format!("BasicAuth {user} {password}\n"));
        }
        let conf_path = dir.path().join("tinyproxy.conf");
        std::fs::write(&conf_path, conf)?;
        let child = Command::new("tinyproxy")
            .arg("-d")
            .arg("-c")
            .arg(&conf_path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .context("starting tinyproxy (apt-get install tinyproxy)")?;
        let proxy = Self {
            port,
            dir,
            _child: child,
        };
        proxy
            .wait_for_log("Starting main loop", Duration::from_secs(30))
            .await
            .context("tinyproxy did not start")?;
        Ok(proxy)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// `http://USER:PASSWORD@127.0.0.1:PORT`.
    pub fn url_with(&self, user: &str, password: &str) -> String {
        format!("http://{user}:{password}@127.0.0.1:{}", self.port)
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("tinyproxy.log")
    }

    /// Its log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Waits until its log has a line containing `needle`; returns the line.
    pub async fn wait_for_log(&self, needle: &str, timeout: Duration) -> anyhow::Result<String> {
        eventually(&format!("{needle:?} in the tinyproxy log"), timeout, || {
            let log = self.log();
            async move {
                match log.lines().find(|line| line.contains(needle)) {
                    Some(line) => Ok(line.to_owned()),
                    None => bail!("not yet; log:\n{log}"),
                }
            }
        })
        .await
    }

    /// The `CONNECT host:port` requests it received, in order.
    pub fn connects(&self) -> Vec<String> {
        self.log()
            .lines()
            .filter_map(|line| line.split_once("): CONNECT ").map(|(_, rest)| rest))
            .filter_map(|rest| rest.split_whitespace().next())
            .map(str::to_owned)
            .collect()
    }
}

/// Whether `squid` is installed; as [`tinyproxy_installed`].
pub fn squid_installed() -> bool {
    std::process::Command::new("squid")
        .arg("-v")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

/// A private `squid` on `127.0.0.1:PORT` that tunnels CONNECT only to
/// `connect_port` and forwards plain HTTP; no cache; killed when dropped.
/// Its access log gets a tunnel's line when the tunnel closes.
pub struct Squid {
    port: u16,
    dir: TempDir,
    _child: Child,
}

impl Squid {
    pub async fn start(connect_port: u16) -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("lobster-e2e-squid")
            .tempdir()?;
        // Squid started as root writes its logs as its own user.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777))?;
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let d = dir.path().display();
        let conf = format!(
            "http_port 127.0.0.1:{port}\n\
             pid_filename {d}/squid.pid\n\
             access_log stdio:{d}/access.log squid\n\
             cache_log {d}/cache.log\n\
             coredump_dir {d}\n\
             cache deny all\n\
             cache_mem 8 MB\n\
             pinger_enable off\n\
             shutdown_lifetime 0 seconds\n\
             acl relay_port port {connect_port}\n\
             acl CONNECT method CONNECT\n\
             acl loopback src 127.0.0.1/32\n\
             http_access deny CONNECT !relay_port\n\
             http_access allow loopback\n\
             http_access deny all\n"
        );
        let conf_path = dir.path().join("squid.conf");
        std::fs::write(&conf_path, conf)?;
        let child = Command::new("squid")
            .arg("-N")
            .arg("-f")
            .arg(&conf_path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .context("starting squid (apt-get install squid)")?;
        let squid = Self {
            port,
            dir,
            _child: child,
        };
        accepting("squid", port, &squid.dir.path().join("cache.log")).await?;
        Ok(squid)
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Its access log so far.
    pub fn access_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("access.log")).unwrap_or_default()
    }

    /// Waits until its access log has a line containing `needle`.
    pub async fn wait_for_access(&self, needle: &str, timeout: Duration) -> anyhow::Result<String> {
        eventually(
            &format!("{needle:?} in squid's access log"),
            timeout,
            || {
                let log = self.access_log();
                async move {
                    match log.lines().find(|line| line.contains(needle)) {
                        Some(line) => Ok(line.to_owned()),
                        None => bail!("not yet; log:\n{log}"),
                    }
                }
            },
        )
        .await
    }
}

/// Whether `nginx` is installed; as [`tinyproxy_installed`].
pub fn nginx_installed() -> bool {
    std::process::Command::new("nginx")
        .arg("-v")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

/// As [`have_tinyproxy`], for nginx.
pub fn have_nginx(test: &str) -> bool {
    let found = nginx_installed();
    if !found {
        skipped(test, "nginx");
    }
    found
}

/// A private `nginx` on `127.0.0.1:PORT` in front of a relay, set up as a
/// careless reverse proxy often is: it does not pass WebSocket upgrades
/// (the `Upgrade` header is hop-by-hop, and nothing sets it again) and it
/// buffers answers, ignoring `X-Accel-Buffering: no`, so a stream's first
/// bytes sit in its buffers. Killed when dropped.
pub struct Nginx {
    port: u16,
    dir: TempDir,
    _child: Child,
}

impl Nginx {
    pub async fn start_buffering(upstream_port: u16) -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("lobster-e2e-nginx")
            .tempdir()?;
        let free = || -> anyhow::Result<u16> {
            Ok(std::net::TcpListener::bind("127.0.0.1:0")?
                .local_addr()?
                .port())
        };
        let (port, inner) = (free()?, free()?);
        let d = dir.path().display();
        let conf = format!(
            "daemon off;\n\
             master_process off;\n\
             error_log {d}/error.log info;\n\
             pid {d}/nginx.pid;\n\
             events {{ worker_connections 256; }}\n\
             http {{\n\
               access_log {d}/access.log;\n\
               client_body_temp_path {d}/body;\n\
               proxy_temp_path {d}/proxy;\n\
               fastcgi_temp_path {d}/fastcgi;\n\
               uwsgi_temp_path {d}/uwsgi;\n\
               scgi_temp_path {d}/scgi;\n\
               server {{\n\
                 listen 127.0.0.1:{port};\n\
                 location / {{\n\
                   proxy_pass http://127.0.0.1:{inner};\n\
                   proxy_http_version 1.1;\n\
                   proxy_set_header Accept-Encoding gzip;\n\
                   gunzip on;\n\
                   proxy_read_timeout 120s;\n\
                 }}\n\
               }}\n\
               server {{\n\
                 listen 127.0.0.1:{inner};\n\
                 gzip on;\n\
                 gzip_proxied any;\n\
                 gzip_min_length 0;\n\
                 gzip_types text/event-stream application/json;\n\
                 location / {{\n\
                   proxy_pass http://127.0.0.1:{upstream_port};\n\
                   proxy_http_version 1.1;\n\
                   proxy_ignore_headers X-Accel-Buffering;\n\
                   proxy_read_timeout 120s;\n\
                 }}\n\
               }}\n\
             }}\n"
        );
        let conf_path = dir.path().join("nginx.conf");
        std::fs::write(&conf_path, conf)?;
        let child = Command::new("nginx")
            .arg("-p")
            .arg(dir.path())
            .arg("-c")
            .arg(&conf_path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .context("starting nginx (apt-get install nginx)")?;
        let nginx = Self {
            port,
            dir,
            _child: child,
        };
        accepting("nginx", port, &nginx.dir.path().join("error.log")).await?;
        Ok(nginx)
    }

    /// `http://127.0.0.1:PORT`: the relay, as seen through nginx.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Its access log so far (a request's line is written when it ends).
    pub fn access_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("access.log")).unwrap_or_default()
    }
}

/// Waits until a proxy accepts connections on `port`; if it never does,
/// the error holds its own log (`log`).
async fn accepting(name: &str, port: u16, log: &std::path::Path) -> anyhow::Result<()> {
    eventually(
        &format!("{name} to accept connections"),
        Duration::from_secs(30),
        || async {
            tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .map(drop)
                .map_err(anyhow::Error::from)
        },
    )
    .await
    .with_context(|| {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        format!("{name} did not start; {}:\n{text}", log.display())
    })?;
    Ok(())
}
