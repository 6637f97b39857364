//! Push delivery: a server-side session for an agent with a callback URL.
//!
//! While an agent has a callback and none of its own sessions is live on
//! this instance, a callback session runs for it: the same session loop as
//! every transport (leases, `max_in_flight`, ack timeout, retry policy,
//! attempt records, revocation), over a [`Link`] whose "send" POSTs the
//! event to the callback URL and whose answers are the POSTs' outcomes: a
//! 2xx is an ack, anything else a nack with the reason, a timeout a nack.
//!
//! Precedence: when a session of the agent opens on this instance (`listen`,
//! an SDK, SSE, long-poll), the callback session ends at once and hands its
//! leases back, as a closing session does; it starts again when the last of
//! them closes. The hub tells it ([`crate::hub::Hub::watch_connected`]).
//! Sessions on *other* instances sharing PostgreSQL count too, as those
//! instances mark them ([`crate::presence`]): read every
//! [`crate::presence::EVERY`], so a callback yields to a session on another
//! instance within that, and resumes within it after the session closed.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lobster_shared::ids::{AgentId, EventId, SessionId};
use lobster_shared::signature::SigningKey;
use lobster_shared::wire::{AgentMessage, RelayMessage};
use reqwest::Url;
use tokio::sync::watch;
use tokio::task::{AbortHandle, JoinError, JoinSet};
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

use super::driver::run;
use super::link::{Ending, Inbound, Link};
use crate::callback::{CallbackClient, decode_urls};
use crate::crypto;
use crate::hub::CALLBACK_TRANSPORT;
use crate::state::AppState;
use crate::store::callbacks::StoredCallback;
use crate::store::{Agent, Delivery};

/// A callback session that ends sooner than this after it started waits
/// this long before the next one, so a fault cannot spin.
const RESTART_PAUSE: Duration = Duration::from_secs(1);
/// How often a shared store is read for callbacks set through other
/// instances.
pub const SYNC_EVERY: Duration = Duration::from_secs(10);

/// Where an agent's events go, opened from the store.
pub struct Target {
    /// Tried in order; never empty.
    pub urls: Vec<Url>,
    pub key: SigningKey,
}

impl Target {
    /// Opens a stored callback with the relay's encryption key.
    pub fn open(
        key: Option<&crypto::EncryptionKey>,
        stored: &StoredCallback,
    ) -> Result<Target, String> {
        let agent_id = &stored.agent.agent_id;
        let url = crypto::open(
            key,
            &stored.url,
            &crypto::callback_identity(agent_id.as_str(), "url"),
        )
        .map_err(|e| e.to_string())?;
        let secret = crypto::open(
            key,
            &stored.secret,
            &crypto::callback_identity(agent_id.as_str(), "secret"),
        )
        .map_err(|e| e.to_string())?;
        Ok(Target {
            urls: decode_urls(url.expose())?,
            key: SigningKey::parse(secret.expose()).map_err(|e| e.to_string())?,
        })
    }
}

/// This instance's push deliveries: one supervisor task per agent with a
/// callback.
pub struct Callbacks {
    client: CallbackClient,
    /// Agent id -> the stored version its supervisor delivers for, and what
    /// stops it.
    running: Mutex<HashMap<AgentId, (i64, CancellationToken)>>,
}

impl Callbacks {
    pub fn new(client: CallbackClient) -> Self {
        Callbacks {
            client,
            running: Mutex::new(HashMap::new()),
        }
    }

    pub fn client(&self) -> &CallbackClient {
        &self.client
    }

    /// Whether a supervisor delivers for `agent_id` here.
    pub fn is_running(&self, agent_id: &str) -> bool {
        self.lock().contains_key(agent_id)
    }

    /// Makes the supervisors match the stored callbacks: starts new and
    /// changed ones, stops removed ones (cleared, or agent revoked).
    pub async fn sync(&self, state: &AppState) {
        let stored = match state.store.list_callbacks().await {
            Ok(stored) => stored,
            Err(err) => {
                tracing::warn!(error = %err, "cannot read callbacks; push delivery keeps its current targets");
                return;
            }
        };
        let mut running = self.lock();
        let wanted: HashMap<&str, &StoredCallback> = stored
            .iter()
            .map(|c| (c.agent.agent_id.as_str(), c))
            .collect();
        running.retain(|agent_id, (version, stop)| {
            let keep = wanted
                .get(agent_id.as_str())
                .is_some_and(|c| c.version == *version);
            if !keep {
                stop.cancel();
            }
            keep
        });
        for callback in stored.iter() {
            if running.contains_key(&callback.agent.agent_id) {
                continue;
            }
            let target = match Target::open(state.config.encryption_key.as_ref(), callback) {
                Ok(target) => target,
                Err(err) => {
                    tracing::warn!(agent_id = %callback.agent.agent_id, error = %err, "cannot open the agent's callback; no push delivery for it");
                    continue;
                }
            };
            let stop = CancellationToken::new();
            running.insert(
                callback.agent.agent_id.clone(),
                (callback.version, stop.clone()),
            );
            state.sessions.spawn(supervise(
                state.clone(),
                callback.agent.clone(),
                Arc::new(target),
                stop,
            ));
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<AgentId, (i64, CancellationToken)>> {
        self.running.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Runs callback sessions for `agent` whenever none of its own sessions is
/// live here, until `stop`, shutdown, or the agent's revocation.
async fn supervise(state: AppState, agent: Agent, target: Arc<Target>, stop: CancellationToken) {
    let hub = state.bus.hub().clone();
    let mut connected = hub.watch_connected(&agent.agent_id);
    let mut elsewhere = watch_elsewhere(&state, &agent.agent_id, stop.clone());
    tracing::info!(agent_id = %agent.agent_id, host = target.urls[0].host_str().unwrap_or(""), urls = target.urls.len(), "push delivery on");
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = state.shutdown.cancelled() => break,
            seen = connected.wait_for(|n| *n == 0) => if seen.is_err() { break },
        }
        if *elsewhere.borrow_and_update() {
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = state.shutdown.cancelled() => break,
                _ = elsewhere.changed() => {}
            }
            continue;
        }
        let started = tokio::time::Instant::now();
        let link = CallbackLink {
            client: state.callbacks.client().clone(),
            target: target.clone(),
            queued: Vec::new(),
            running: JoinSet::new(),
            handles: HashMap::new(),
            connected: connected.clone(),
            elsewhere: elsewhere.clone(),
            stop: stop.clone(),
        };
        let session_id = SessionId::generate();
        // Its POSTs' log lines say whose they are (an agent's own sessions
        // keep no span: see `driver::run`).
        let span =
            tracing::info_span!("session", agent_id = %agent.agent_id, session_id = %session_id);
        run(
            link,
            state.clone(),
            std::sync::Arc::new(agent.clone()),
            session_id,
            Vec::new(),
            CALLBACK_TRANSPORT,
        )
        .instrument(span)
        .await;
        if stop.is_cancelled() || state.shutdown.is_cancelled() {
            break;
        }
        // Revoked (the session ended for it): nothing more to push.
        if let Ok(None) = state.store.callback(&agent.agent_id).await {
            break;
        }
        if started.elapsed() < RESTART_PAUSE {
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = state.shutdown.cancelled() => break,
                _ = tokio::time::sleep(RESTART_PAUSE) => {}
            }
        }
    }
    drop(connected);
    hub.tidy(&agent.agent_id);
    tracing::info!(agent_id = %agent.agent_id, "push delivery off");
}

/// A callback as a transport: each event is a POST; its outcome is the
/// agent's answer.
struct CallbackLink {
    client: CallbackClient,
    target: Arc<Target>,
    /// Fed events not yet POSTed (until the loop flushes).
    queued: Vec<Delivery>,
    /// POSTs under way: `(event id, outcome)`.
    running: JoinSet<(EventId, Result<(), String>)>,
    handles: HashMap<EventId, AbortHandle>,
    /// The agent's own sessions here; the callback yields when one opens.
    connected: watch::Receiver<usize>,
    /// Whether one is connected to another instance (shared stores).
    elsewhere: watch::Receiver<bool>,
    /// Cancelled when the callback is cleared or replaced.
    stop: CancellationToken,
}

impl CallbackLink {
    fn outcome(
        &mut self,
        done: Result<(EventId, Result<(), String>), JoinError>,
    ) -> Option<Inbound> {
        // An aborted POST's lease ran out (the loop already counted it).
        let (id, outcome) = done.ok()?;
        self.handles.remove(&id);
        // Answers take the agents' path, as the frames they would send.
        let id = id.into_string();
        Some(Inbound::Message(match outcome {
            Ok(()) => AgentMessage::Ack { id },
            Err(reason) => {
                tracing::info!(event_id = %id, reason = %reason, "callback delivery failed");
                AgentMessage::Nack { id, reason }
            }
        }))
    }
}

/// Resolves when one of the agent's own sessions is live here.
async fn agent_connected(connected: &mut watch::Receiver<usize>) {
    if connected.wait_for(|n| *n > 0).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// Resolves when a session of the agent is connected to another instance.
async fn connected_elsewhere(elsewhere: &mut watch::Receiver<bool>) {
    if elsewhere.wait_for(|online| *online).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// Follows whether a session of the agent is connected to another instance
/// (read from a shared store every [`crate::presence::EVERY`]; never on
/// SQLite), until `stop`.
fn watch_elsewhere(
    state: &AppState,
    agent_id: &AgentId,
    stop: CancellationToken,
) -> watch::Receiver<bool> {
    let (tx, rx) = watch::channel(false);
    if !state.store.is_shared() {
        // Closed at `false`: the supervisor never waits on it, and
        // `connected_elsewhere` never resolves.
        return rx;
    }
    let (store, shutdown, agent_id) = (
        state.store.clone(),
        state.shutdown.clone(),
        agent_id.to_owned(),
    );
    tokio::spawn(async move {
        let mut every = tokio::time::interval(crate::presence::EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = shutdown.cancelled() => break,
                _ = every.tick() => {}
            }
            match store.connected_elsewhere(&agent_id).await {
                Ok(online) => {
                    tx.send_if_modified(|was| std::mem::replace(was, online) != online);
                }
                Err(err) => {
                    tracing::debug!(agent_id = %agent_id, error = %err, "cannot read where the agent is connected");
                }
            }
        }
    });
    rx
}

impl Link for CallbackLink {
    async fn feed_event(&mut self, _id: &EventId, _json: String) -> Result<(), String> {
        unreachable!("a callback is fed deliveries, never frames")
    }

    async fn feed(&mut self, delivery: Delivery) -> Result<(), String> {
        self.queued.push(delivery);
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), String> {
        for delivery in self.queued.drain(..) {
            let (client, target) = (self.client.clone(), self.target.clone());
            let id = delivery.id.clone();
            let handle = self.running.spawn(async move {
                let outcome = client.deliver(&target.urls, &target.key, &delivery).await;
                (delivery.id, outcome)
            });
            self.handles.insert(id, handle);
        }
        Ok(())
    }

    async fn send(&mut self, _message: &RelayMessage) -> Result<(), String> {
        Ok(())
    }

    async fn next(&mut self) -> Option<Inbound> {
        tokio::select! {
            Some(done) = self.running.join_next(), if !self.running.is_empty() => self.outcome(done),
            _ = agent_connected(&mut self.connected) => {
                Some(Inbound::Gone("a session of the agent opened; it takes precedence over the callback".into()))
            }
            _ = connected_elsewhere(&mut self.elsewhere) => {
                Some(Inbound::Gone("a session of the agent is connected to another relay instance; it takes precedence over the callback".into()))
            }
            _ = self.stop.cancelled() => Some(Inbound::Gone("the callback was cleared or replaced".into())),
        }
    }

    fn try_next(&mut self) -> Option<Option<Inbound>> {
        let done = self.running.try_join_next()?;
        Some(self.outcome(done))
    }

    fn expired(&mut self, ids: &[EventId]) {
        for id in ids {
            if let Some(handle) = self.handles.remove(id) {
                handle.abort();
            }
        }
    }

    /// POSTs still under way are abandoned; their events' leases are
    /// released by the loop and delivered again.
    async fn finish(&mut self, _ending: &Ending) {
        self.running.abort_all();
        self.handles.clear();
    }
}
