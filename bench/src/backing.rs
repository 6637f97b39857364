//! The services behind a scaled-out relay, for `cross`: a throwaway
//! database in an existing PostgreSQL server, and a private `redis-server`.
//! Both are removed when the run ends.

use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context as _, bail};
use tokio::process::{Child, Command};

/// How long a spawned `redis-server` may take to listen.
const REDIS_LIMIT: Duration = Duration::from_secs(10);

/// An empty database created for one run; [`Database::drop_it`] removes it.
pub struct Database {
    /// The server's URL, used for `CREATE` and `DROP`.
    server: String,
    name: String,
    /// The URL of the new database, for `--database`.
    pub url: String,
}

impl Database {
    /// Creates `bench_cross_<random>` on the server at `server_url` (any
    /// database URL of it, e.g. `postgres://postgres@127.0.0.1:5432/postgres`).
    pub async fn create(server_url: &str) -> anyhow::Result<Database> {
        let name = format!("bench_cross_{:016x}", rand::random::<u64>());
        let url = with_database(server_url, &name)?;
        psql(server_url, &format!("CREATE DATABASE {name}")).await?;
        Ok(Database {
            server: server_url.to_owned(),
            name,
            url,
        })
    }

    /// Drops the database; the relays using it must have stopped.
    pub async fn drop_it(self) -> anyhow::Result<()> {
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        psql(&self.server, &sql).await
    }
}

/// `url` with its database name replaced by `name`, query kept.
fn with_database(url: &str, name: &str) -> anyhow::Result<String> {
    if !url.starts_with("postgres://") && !url.starts_with("postgresql://") {
        bail!("the PostgreSQL URL must start with postgres://, got {url:?}");
    }
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let rest = &base[base.find("://").map_or(0, |i| i + 3)..];
    let host = rest.split_once('/').map_or(rest, |(host, _)| host);
    if host.is_empty() {
        bail!("the PostgreSQL URL has no host: {url:?}");
    }
    let scheme = &base[..base.len() - rest.len()];
    Ok(match query {
        Some(query) => format!("{scheme}{host}/{name}?{query}"),
        None => format!("{scheme}{host}/{name}"),
    })
}

/// The host part of a PostgreSQL URL, without user or password, for output.
pub fn server_host(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = rest.split(['/', '?']).next().unwrap_or_default();
    authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host)
}

async fn psql(url: &str, sql: &str) -> anyhow::Result<()> {
    let out = Command::new("psql")
        .arg(url)
        .args(["-v", "ON_ERROR_STOP=1", "-q", "-c", sql])
        .stdin(Stdio::null())
        .output()
        .await
        .context("cannot run psql (apt-get install postgresql-client)")?;
    if !out.status.success() {
        bail!(
            "psql {sql:?} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// A `redis-server` on a free loopback port, without persistence; killed
/// when dropped.
pub struct Redis {
    pub url: String,
    _child: Child,
}

impl Redis {
    pub async fn start() -> anyhow::Result<Redis> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let mut child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .context("cannot run redis-server (apt-get install redis-server)")?;
        let deadline = tokio::time::Instant::now() + REDIS_LIMIT;
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            if let Some(status) = child.try_wait()? {
                bail!("redis-server on port {port} exited at start: {status}");
            }
            if tokio::time::Instant::now() > deadline {
                bail!("redis-server did not listen on port {port} within {REDIS_LIMIT:?}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(Redis {
            url: format!("redis://127.0.0.1:{port}"),
            _child: child,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_the_database_and_keeps_the_query() {
        let at = |url| with_database(url, "b").unwrap();
        assert_eq!(
            at("postgres://postgres@127.0.0.1:5432/postgres"),
            "postgres://postgres@127.0.0.1:5432/b"
        );
        assert_eq!(at("postgres://h"), "postgres://h/b");
        assert_eq!(
            at("postgresql://u:p@h/db?sslmode=disable"),
            "postgresql://u:p@h/b?sslmode=disable"
        );
        assert!(with_database("mysql://h/db", "b").is_err());
        assert!(with_database("postgres:///db", "b").is_err());
        assert_eq!(server_host("postgres://u:secret@h:5432/db?x=1"), "h:5432");
    }
}
