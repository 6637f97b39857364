//! PostgreSQL and Redis for the tests that need them.
//!
//! `scripts/test.sh` starts one PostgreSQL cluster for the whole run and
//! exports `LOBSTER_TEST_POSTGRES_URL`; every test gets a fresh database in
//! it. Tests that stop or restart a service start a private one: a
//! [`Redis`] or [`Postgres`] here, killed when dropped.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context as _, bail};
use tempfile::TempDir;
use tokio::process::{Child, Command};

/// Which store the end-to-end relays use: `LOBSTER_E2E_BACKEND=postgres`
/// runs the whole suite on PostgreSQL; anything else on SQLite.
pub fn e2e_backend_is_postgres() -> bool {
    std::env::var("LOBSTER_E2E_BACKEND").is_ok_and(|v| v == "postgres")
}

/// The shared cluster's URL, or an error that says how to get one.
pub fn shared_postgres_url() -> anyhow::Result<String> {
    std::env::var("LOBSTER_TEST_POSTGRES_URL").context(
        "LOBSTER_TEST_POSTGRES_URL is not set: run the suite with scripts/test.sh, \
         which starts PostgreSQL (apt-get install postgresql)",
    )
}

/// Creates an empty database in the shared cluster; returns its URL.
pub async fn fresh_database() -> anyhow::Result<String> {
    let base = shared_postgres_url()?;
    create_database(&base).await
}

async fn create_database(base: &str) -> anyhow::Result<String> {
    let name = format!(
        "e2e_{}",
        lobster_shared::ids::SessionId::generate().as_str()[4..].to_lowercase()
    );
    // Tests create their databases at the same moment; a busy server may
    // refuse one for a moment, so try a few times before failing.
    let mut attempt = 0;
    loop {
        attempt += 1;
        let out = Command::new("psql")
            .arg(base)
            .args(["-v", "ON_ERROR_STOP=1", "-q", "-c"])
            .arg(format!("CREATE DATABASE {name}"))
            .output()
            .await
            .context("running psql (apt-get install postgresql-client)")?;
        if out.status.success() {
            break;
        }
        let stderr = String::from_utf8_lossy(&out.stderr);
        if attempt >= 5 || stderr.contains("already exists") {
            bail!("CREATE DATABASE failed (attempt {attempt}): {stderr}");
        }
        eprintln!("CREATE DATABASE failed (attempt {attempt}), retrying: {stderr}");
        tokio::time::sleep(std::time::Duration::from_millis(200 * attempt)).await;
    }
    let (prefix, _) = base.rsplit_once('/').context("database URL has no path")?;
    Ok(format!("{prefix}/{name}"))
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

async fn wait_for_port(port: u16, what: &str) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    loop {
        tick.tick().await;
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            bail!("{what} did not listen on port {port} within 30 s");
        }
    }
}

/// A private `redis-server` on a loopback port; killed on drop.
pub struct Redis {
    port: u16,
    child: Option<Child>,
}

impl Redis {
    pub async fn start() -> anyhow::Result<Self> {
        let mut redis = Redis {
            port: free_port()?,
            child: None,
        };
        redis.resume().await?;
        Ok(redis)
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kills the server (the outage case).
    pub async fn stop(&mut self) -> anyhow::Result<()> {
        if let Some(mut child) = self.child.take() {
            child.kill().await?;
        }
        Ok(())
    }

    /// Starts it again on the same port.
    pub async fn resume(&mut self) -> anyhow::Result<()> {
        let child = Command::new("redis-server")
            .args([
                "--port",
                &self.port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .context("starting redis-server (apt-get install redis-server)")?;
        self.child = Some(child);
        wait_for_port(self.port, "redis-server").await
    }
}

/// A private PostgreSQL cluster, for tests that stop or restart it.
pub struct Postgres {
    dir: TempDir,
    bin: PathBuf,
    port: u16,
}

impl Postgres {
    pub async fn start() -> anyhow::Result<Self> {
        let bin = pg_bindir()?;
        let dir = tempfile::Builder::new()
            .prefix("lobster-e2e-pg")
            .tempdir()?;
        if is_root() {
            run(Command::new("chown").arg("postgres").arg(dir.path())).await?;
        }
        let data = dir.path().join("data");
        run(as_postgres(&bin.join("initdb")).arg("-D").arg(&data).args([
            "-U",
            "postgres",
            "--auth=trust",
        ]))
        .await?;
        let pg = Postgres {
            dir,
            bin,
            port: free_port()?,
        };
        pg.resume().await?;
        Ok(pg)
    }

    /// A fresh database in this cluster.
    pub async fn fresh_database(&self) -> anyhow::Result<String> {
        create_database(&format!(
            "postgres://postgres@127.0.0.1:{}/postgres",
            self.port
        ))
        .await
    }

    /// Stops the server at once (no checkpoint), as a crash would.
    pub async fn stop(&self) -> anyhow::Result<()> {
        run(self.pg_ctl().args(["-m", "immediate", "stop"])).await
    }

    pub async fn resume(&self) -> anyhow::Result<()> {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1",
            self.port,
            self.dir.path().display()
        );
        let log = self.dir.path().join("postgres.log");
        run(self
            .pg_ctl()
            .arg("-l")
            .arg(log)
            .args(["-w", "-t", "60", "-o", &options, "start"]))
        .await
    }

    fn pg_ctl(&self) -> Command {
        let mut cmd = as_postgres(&self.bin.join("pg_ctl"));
        cmd.arg("-D").arg(self.dir.path().join("data"));
        cmd
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let mut cmd = std::process::Command::new(if is_root() { "runuser" } else { "sh" });
        let pg_ctl = self.bin.join("pg_ctl");
        let data = self.dir.path().join("data");
        if is_root() {
            cmd.args(["-u", "postgres", "--"]).arg(pg_ctl);
        } else {
            cmd = std::process::Command::new(pg_ctl);
        }
        let _ = cmd
            .arg("-D")
            .arg(data)
            .args(["-m", "immediate", "stop"])
            .output();
    }
}

fn is_root() -> bool {
    std::env::var("USER").is_ok_and(|u| u == "root")
        || std::fs::metadata("/proc/self")
            .is_ok_and(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
}

fn as_postgres(program: &std::path::Path) -> Command {
    if is_root() {
        let mut cmd = Command::new("runuser");
        cmd.args(["-u", "postgres", "--"]).arg(program);
        cmd
    } else {
        Command::new(program)
    }
}

async fn run(cmd: &mut Command) -> anyhow::Result<()> {
    let out = cmd
        .output()
        .await
        .with_context(|| format!("running {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

fn pg_bindir() -> anyhow::Result<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .context("PostgreSQL server binaries not found: apt-get install postgresql")?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|p| p.join("initdb").exists())
        .collect();
    dirs.sort();
    dirs.pop()
        .context("no /usr/lib/postgresql/*/bin/initdb: apt-get install postgresql")
}
