//! Process-level set-up: logging, the listening socket, signals, the admin
//! token, and the first-start hint.

use std::io::IsTerminal as _;
use std::path::Path;
use std::sync::OnceLock;

use anyhow::Context;
use lobster_shared::{Secret, ids};
use tokio::net::{TcpListener, TcpSocket};
use tokio_util::sync::CancellationToken;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

use crate::config::{Config, LogFormat};

/// Pending connections the kernel may hold: reconnect storms of thousands
/// of agents must not drop SYNs (tokio's default is 1024).
const LISTEN_BACKLOG: u32 = 8192;

/// The crates whose records `RUST_LOG` may open up to `trace`: ours. Every
/// other target is capped at `info` whatever `RUST_LOG` says, because
/// dependencies log request data below that level: `tokio_postgres::query`
/// prints statement parameters (stored webhook headers, so signatures) at
/// `debug`, and hyper, h2, tungstenite, rustls, reqwest, redis and rusqlite
/// print headers, frames, commands or handshake messages at `debug`/`trace`.
const OWN_TARGETS: [&str; 4] = [
    "lobster_server",
    "lobster_shared",
    "lobster_cli",
    "lobster_relay",
];

/// The format the process-wide subscriber writes, once `init_logging` has
/// installed one: the first-start banner follows it. The subscriber is
/// process-wide, so this is too.
static ACTIVE_FORMAT: OnceLock<LogFormat> = OnceLock::new();

/// Installs the process-wide subscriber: `RUST_LOG` (default `info`) filters,
/// and third-party targets never pass `info` (see `OWN_TARGETS`).
pub fn init_logging(format: Option<LogFormat>) {
    let format = format.unwrap_or_else(default_format);
    let filter = EnvFilter::try_from_env("RUST_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let cap = dependency_cap(filter.max_level_hint().unwrap_or(LevelFilter::TRACE));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // A separate global filter rather than directives appended to the
    // EnvFilter: there the most specific directive wins, so
    // `RUST_LOG=tokio_postgres::query=debug` would beat `tokio_postgres=info`.
    // A layer that says no vetoes the event whatever the EnvFilter says.
    let result = match format {
        LogFormat::Json => builder
            .json()
            .flatten_event(false)
            .finish()
            .with(cap)
            .try_init(),
        LogFormat::Pretty => builder
            .with_ansi(std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none())
            .finish()
            .with(cap)
            .try_init(),
    };
    // An error means a subscriber was already installed (tests running
    // several relays in one process); that one keeps its format.
    if result.is_ok() {
        let _ = ACTIVE_FORMAT.set(format);
    }
}

/// `pretty` on a terminal, else `json` (`--log-format` unset).
fn default_format() -> LogFormat {
    if std::io::stderr().is_terminal() {
        LogFormat::Pretty
    } else {
        LogFormat::Json
    }
}

/// Our targets up to `own_max` (what `RUST_LOG` asks for at most, so the cap
/// does not raise the global level hint); everything else up to `info`.
fn dependency_cap(own_max: LevelFilter) -> Targets {
    OWN_TARGETS.iter().fold(
        Targets::new().with_default(LevelFilter::INFO.min(own_max)),
        |targets, own| targets.with_target(*own, own_max),
    )
}

/// Binds with SO_REUSEADDR (a restarted relay gets its port back at once)
/// and a large backlog.
pub async fn bind(listen: &str) -> anyhow::Result<TcpListener> {
    let addrs: Vec<_> = tokio::net::lookup_host(listen)
        .await
        .with_context(|| {
            format!("--listen {listen:?} is not an address: use HOST:PORT, e.g. 127.0.0.1:8080")
        })?
        .collect();
    let mut last_err = None;
    for addr in addrs {
        let socket = if addr.is_ipv4() {
            TcpSocket::new_v4()
        } else {
            TcpSocket::new_v6()
        }?;
        socket.set_reuseaddr(true)?;
        match socket
            .bind(addr)
            .and_then(|()| socket.listen(LISTEN_BACKLOG))
        {
            Ok(listener) => return Ok(listener),
            Err(err) => last_err = Some((addr, err)),
        }
    }
    match last_err {
        Some((addr, err)) => Err(err).with_context(|| {
            format!("cannot listen on {addr}: is another relay running? choose another --listen")
        }),
        None => anyhow::bail!("--listen {listen:?} resolved to no address"),
    }
}

/// Cancels `token` on the first SIGINT or SIGTERM.
pub async fn cancel_on_signal(token: CancellationToken) {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(err) => {
                    tracing::warn!(error = %err, "cannot listen for SIGTERM");
                    let _ = ctrl_c.await;
                    token.cancel();
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
    tracing::info!("signal received; draining");
    token.cancel();
}

/// The admin token and whether it was generated by this start.
pub struct AdminToken {
    pub secret: Secret,
    pub generated: bool,
}

/// The configured token, else the one stored in the data dir, else a new
/// one written there with mode 0600.
pub fn admin_token(config: &Config) -> anyhow::Result<AdminToken> {
    if let Some(secret) = &config.admin_token {
        return Ok(AdminToken {
            secret: secret.clone(),
            generated: false,
        });
    }
    let path = config.data_dir.join("admin_token");
    if let Ok(text) = std::fs::read_to_string(&path) {
        let text = text.trim();
        if !text.is_empty() {
            return Ok(AdminToken {
                secret: Secret::new(text),
                generated: false,
            });
        }
    }
    let secret = ids::admin_token();
    write_private(&path, secret.expose())
        .with_context(|| format!("cannot store the admin token in {}", path.display()))?;
    tracing::info!(path = %path.display(), "generated an admin token");
    Ok(AdminToken {
        secret,
        generated: true,
    })
}

fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    file.write_all(text.as_bytes())?;
    file.write_all(b"\n")?;
    file.sync_all()
}

/// On an empty database: what to do next, as a command to paste. A block of
/// text for a human with the pretty log; one `info` record with the command
/// (and a generated token) as fields with the JSON log, which must stay
/// JSON Lines.
pub fn print_first_steps(public_url: &str, token: &AdminToken) {
    let token_arg = if token.generated {
        token.secret.expose()
    } else {
        "$RELAY_ADMIN_TOKEN"
    };
    let command = format!(
        "lobster-relay admin create-agent my-agent --relay {public_url} --admin-token {token_arg}"
    );
    let format = ACTIVE_FORMAT.get().copied().unwrap_or_else(default_format);
    match format {
        LogFormat::Json if token.generated => tracing::warn!(
            create_agent = %command,
            admin_token = %token.secret.expose(),
            "no agents yet; admin_token is shown once (it is stored in the data dir); create an agent with create_agent"
        ),
        LogFormat::Json => {
            tracing::info!(create_agent = %command, "no agents yet; create one with create_agent")
        }
        LogFormat::Pretty => {
            let shown = if token.generated {
                format!(
                    "Admin token (shown once, stored in the data dir): {}\n",
                    token.secret.expose()
                )
            } else {
                String::new()
            };
            eprintln!("\n{shown}No agents yet. Create one with:\n\n  {command}\n");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing::Level;

    #[test]
    fn dependencies_stop_at_info_while_ours_follow_rust_log() {
        let cap = dependency_cap(LevelFilter::TRACE);
        assert!(cap.would_enable("lobster_server::session", &Level::TRACE));
        assert!(cap.would_enable("lobster_shared::signature", &Level::DEBUG));
        assert!(cap.would_enable("tokio_postgres::query", &Level::INFO));
        for target in [
            "tokio_postgres::query",
            "hyper::proto::h1",
            "tungstenite",
            "rustls",
        ] {
            assert!(!cap.would_enable(target, &Level::DEBUG), "{target}");
            assert!(!cap.would_enable(target, &Level::TRACE), "{target}");
        }
        // RUST_LOG=warn: the cap asks for nothing more than that.
        let quiet = dependency_cap(LevelFilter::WARN);
        assert!(!quiet.would_enable("tokio_postgres", &Level::INFO));
        assert!(!quiet.would_enable("lobster_server", &Level::INFO));
        assert!(quiet.would_enable("lobster_server", &Level::WARN));
    }
}
