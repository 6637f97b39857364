//! The lobster-relay server: takes webhooks at a public URL, verifies and
//! stores them durably, and pushes them to agents over WebSockets until they
//! are acked.
//!
//! Layout (docs/architecture.md walks one event through it):
//! - [`config`]: flags, env and TOML file, validated into a [`Config`].
//! - [`routes`]: every route and the layers requests pass; [`state`]: the
//!   [`AppState`] handlers and sessions share.
//! - [`api`]: the HTTP API handlers and the JSON error edge.
//! - [`session`]: one agent's session, over a WebSocket, Server-Sent Events
//!   or long-poll, and the loop behind all three.
//! - [`store`]: the durable store, one contract (`store::Backend`) that
//!   SQLite (group commit) and PostgreSQL implement, and its push path to
//!   live sessions.
//! - [`agent_directory`]: agent lookups for handlers, through
//!   [`agent_cache`] (agents by relay id and key hash, kept until a
//!   revocation).
//! - [`workspaces`]: signature verifiers per workspace, cached; sealing
//!   their secrets with [`crypto`] (AES-256-GCM).
//! - [`hub`]: in-memory wake-ups (`wake`) and revocation for live
//!   sessions; [`bus`]: the same across instances, over Redis pub/sub.
//! - [`last_seen`]: agents' last connection times, written in batches.
//! - [`presence`]: which agents have a session here, told to the other
//!   instances (push delivery steps aside for them).
//! - [`dashboard`]: the admin dashboard at `/dashboard`.
//! - [`metrics`]: `GET /metrics` and the figures behind it.
//! - [`callback`]: push delivery's HTTP client and its address policy (its
//!   session is `session::callback`).
//! - [`retry`]: the retry policy.
//! - `startup`: logging, the admin token, the listening socket.
//! - `serve`: the accept loop (plain or TLS, header and handshake timeouts,
//!   `--max-connections`) over any [`Listener`] of streams.
//! - [`tls`]: the served certificate, reloaded on SIGHUP and file change.
//!
//! [`main`] is what the `lobster-relay server` command calls; it binds the
//! socket and hands it to [`run`] with a shutdown token. [`run`] is the seam
//! for serving with a listener and a shutdown of one's own: the end-to-end
//! tests run the real binary on port 0, and `server/tests/` runs the relay
//! in-process on a [`Listener`] of `tokio::io::duplex` pipes.

// Module docs link to the private modules and types they describe: the
// links resolve in `cargo doc --document-private-items`, the view meant
// for the engineers of this crate.
#![allow(rustdoc::private_intra_doc_links)]

pub mod agent_cache;
pub mod agent_directory;
pub mod api;
pub mod bus;
pub mod callback;
pub mod config;
pub mod crypto;
pub mod dashboard;
pub mod hub;
pub mod last_seen;
pub mod metrics;
#[cfg(test)]
mod openapi;
pub mod presence;
pub mod retry;
pub mod routes;
mod serve;
pub mod session;
mod startup;
pub mod state;
pub mod store;
pub mod tls;
mod wake;
pub mod workspaces;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use config::{Config, ConfigError, Settings};
pub use serve::Listener;

use crate::bus::Bus;
use crate::config::Database;
use crate::hub::Hub;
use crate::state::AppState;
use crate::store::Store;

/// How long open sessions get to close after the drain starts.
const DRAIN_LIMIT: Duration = Duration::from_secs(10);
/// How often a shared store is polled for revocations made elsewhere.
const REVOCATION_POLL: Duration = Duration::from_secs(2);
/// How often the queue depth gauge is refreshed from the store.
const QUEUE_GAUGE_EVERY: Duration = Duration::from_secs(5);
/// How often retention and the dedup window are enforced.
const SWEEP_EVERY: Duration = Duration::from_secs(60);

/// Runs the relay in the foreground until SIGINT or SIGTERM, then drains.
pub async fn main(args: Settings) -> anyhow::Result<()> {
    let config = Config::load(args).map_err(|err| ConfigError(format!("{err:#}")))?;
    startup::init_logging(config.log_format);
    let listener = startup::bind(&config.listen).await?;
    let shutdown = CancellationToken::new();
    tokio::spawn(startup::cancel_on_signal(shutdown.clone()));
    run(config, listener, shutdown).await
}

/// Serves on `listener` until `shutdown` is cancelled; then stops accepting,
/// closes sessions with 1012, commits every queued write, and returns.
///
/// `listener` is a [`TcpListener`](tokio::net::TcpListener), or any
/// [`Listener`]: the server's own tests serve on in-memory pipes.
pub async fn run<L: Listener>(
    config: Config,
    listener: L,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let bound = listener
        .local_addr()
        .context("listener has no local address")?;
    let public_url = config.public_url_for(bound);
    store::sqlite::files::create_private_dir(&config.data_dir).with_context(|| {
        format!(
            "cannot create the data dir {}: pass --data-dir DIR",
            config.data_dir.display()
        )
    })?;
    // Before anything is opened: a bad certificate is a start-up error.
    let certs = match &config.tls {
        Some(files) => Some(tls::CertStore::load(files)?),
        None => None,
    };
    let store = open_store(&config).await?;
    let hub = Arc::new(Hub::default());
    // Beside the rest of start-up and serving: connects meanwhile read their
    // agent from the store, as without it.
    tokio::spawn(warm_agents(hub.clone(), store.clone()));
    let workspaces = Arc::new(workspaces::Workspaces::open(store.clone(), &config).await?);
    let admin_token = startup::admin_token(&config)?;
    if config.signing_keys.is_empty() {
        tracing::warn!(
            "signature scheme is none: anyone who knows a webhook URL can post to it; use only for local development"
        );
    } else {
        // How many, never which: the values stay out of every log.
        tracing::info!(
            scheme = %config.scheme,
            secrets = config.signing_keys.len(),
            "webhooks to the default workspace verify with {} secret(s)",
            config.signing_keys.len()
        );
    }
    for warning in config.secret_warnings() {
        tracing::warn!("{warning}");
    }
    if store.agent_count().await? == 0 {
        startup::print_first_steps(&public_url, &admin_token);
    }
    let bus = Bus::connect(hub, config.redis_url.as_deref(), shutdown.clone()).await?;
    let callback_client = callback::CallbackClient::new(
        config.callback_policy.clone(),
        config.callback_ca_cert.as_deref(),
        config.ack_timeout,
    )?;
    let state = AppState::new(state::Shared {
        agents: Arc::new(agent_directory::AgentDirectory::new(
            store.clone(),
            bus.hub().clone(),
        )),
        store: store.clone(),
        bus,
        public_url: public_url.clone().into(),
        admin_token: admin_token.secret,
        workspaces,
        limits: Arc::new(
            api::Limits::new(config.agent_rate_limit, config.global_rate_limit)
                .with_failure_limit(config.auth_failure_limit, config.trusted_proxies.clone()),
        ),
        backlog: Arc::new(api::backlog::BacklogCap::new(config.agent_max_pending)),
        config: Arc::new(config),
        shutdown: shutdown.clone(),
        sessions: TaskTracker::new(),
        http_sessions: Default::default(),
        last_seen: Default::default(),
        callbacks: Arc::new(session::Callbacks::new(callback_client)),
    });
    let sweeper = tokio::spawn(sweep(state.clone()));
    let gauge = tokio::spawn(gauge_queue(state.clone()));
    let last_seen = state.last_seen.clone();
    let seen_writer = tokio::spawn({
        let (last_seen, store, shutdown) =
            (last_seen.clone(), state.store.clone(), shutdown.clone());
        async move { last_seen.run(store, shutdown).await }
    });
    if state.store.is_shared() {
        tokio::spawn(watch_revocations(state.clone()));
    }
    let presence = state.store.is_shared().then(|| {
        tokio::spawn(presence::run(
            state.bus.hub().clone(),
            state.store.clone(),
            shutdown.clone(),
        ))
    });
    tokio::spawn(sync_callbacks(state.clone()));
    let serving = serve::Serving {
        tls: match &certs {
            Some(certs) => {
                tokio::spawn(certs.clone().watch(shutdown.clone()));
                Some(tokio_rustls::TlsAcceptor::from(certs.server_config()?))
            }
            None => None,
        },
        header_timeout: state.config.header_timeout,
        max_connections: state
            .config
            .max_connections
            .unwrap_or_else(serve::default_max_connections),
    };
    tracing::info!(addr = %bound, url = %public_url, tls = certs.is_some(), max_connections = serving.max_connections, "relay listening");
    let sessions = state.sessions.clone();
    serve::serve(listener, routes::router(state), serving, shutdown.clone()).await;
    tracing::info!("draining: no new connections; closing sessions");
    sessions.close();
    if tokio::time::timeout(DRAIN_LIMIT, sessions.wait())
        .await
        .is_err()
    {
        tracing::warn!("some sessions did not close in time");
    }
    sweeper.abort();
    gauge.abort();
    let _ = seen_writer.await;
    if let Some(presence) = presence {
        let _ = presence.await;
    }
    last_seen.flush(&store).await;
    store.close().await;
    tracing::info!("relay stopped");
    Ok(())
}

async fn open_store(config: &Config) -> anyhow::Result<Store> {
    match &config.database {
        Database::Sqlite(path) => Store::open_sqlite(path, config.retry)
            .with_context(|| format!("cannot open the database {}", path.display())),
        Database::Postgres(url) => Store::open_postgres(url, config.retry)
            .await
            .context("cannot open the PostgreSQL database: check --database / DATABASE_URL and that the server is up"),
    }
}

/// Loads the live agents into the agent cache (`AgentCache::warm`).
async fn warm_agents(hub: Arc<Hub>, store: Store) {
    let started = std::time::Instant::now();
    match hub.agents().warm(&store).await {
        Ok(agents) => tracing::info!(
            agents,
            ms = started.elapsed().as_millis() as u64,
            "agent cache warmed"
        ),
        Err(err) => {
            tracing::warn!(error = %err, "cannot warm the agent cache; agents are read on first use")
        }
    }
}

/// On a shared store, agents may be revoked through another instance whose
/// broadcast we missed: poll the database so sessions here close too.
async fn watch_revocations(state: AppState) {
    let mut since = store::now_ms() - REVOCATION_POLL.as_millis() as i64;
    let mut every = tokio::time::interval(REVOCATION_POLL);
    loop {
        tokio::select! {
            _ = state.shutdown.cancelled() => return,
            _ = every.tick() => {}
        }
        // Overlap the windows a little: clocks of instances differ.
        let now = store::now_ms();
        match state.store.revoked_since(since - 2_000).await {
            Ok(agents) => {
                agents
                    .iter()
                    .for_each(|agent_id| state.bus.hub().revoke(agent_id));
                since = now;
            }
            Err(err) => tracing::warn!(error = %err, "cannot poll revocations"),
        }
    }
}

/// Starts push delivery for the stored callbacks; on a shared store, looks
/// again every few seconds for callbacks set or cleared through other
/// instances.
async fn sync_callbacks(state: AppState) {
    state.callbacks.sync(&state).await;
    if !state.store.is_shared() {
        return;
    }
    let mut every = tokio::time::interval(session::CALLBACK_SYNC_EVERY);
    every.tick().await;
    loop {
        tokio::select! {
            _ = state.shutdown.cancelled() => return,
            _ = every.tick() => {}
        }
        state.callbacks.sync(&state).await;
    }
}

/// Periodic housekeeping: retention, the dedup window, limiter memory.
async fn sweep(state: AppState) {
    let mut every = tokio::time::interval(SWEEP_EVERY);
    loop {
        tokio::select! {
            _ = state.shutdown.cancelled() => return,
            _ = every.tick() => {}
        }
        state.limits.trim();
        state.backlog.trim();
        let config = &state.config;
        match state
            .store
            .sweep(config.retention, config.failed_retention)
            .await
        {
            Ok(0) => {}
            Ok(rows) => tracing::info!(rows, "retention sweep"),
            Err(err) => tracing::warn!(error = %err, "retention sweep failed"),
        }
    }
}

/// Keeps `lobster_queue_depth` current: one count query every few seconds.
async fn gauge_queue(state: AppState) {
    let mut every = tokio::time::interval(QUEUE_GAUGE_EVERY);
    loop {
        tokio::select! {
            _ = state.shutdown.cancelled() => return,
            _ = every.tick() => {}
        }
        match state.store.queue_depth().await {
            Ok(depth) => metrics::queue_depth(depth),
            Err(err) => tracing::debug!(error = %err, "cannot count the queue"),
        }
    }
}
