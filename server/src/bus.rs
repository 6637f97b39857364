//! Wake-ups between relay instances.
//!
//! [`Bus::Local`] serves one instance: the hub alone. [`Bus::Redis`] also
//! publishes every wake-up and revocation on Redis pub/sub and applies what
//! other instances publish. Pub/sub may drop messages and Redis may be down;
//! that costs latency, never events: sessions on a shared store re-scan the
//! database on a timer, and revocations are also polled from the database.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use futures_util::StreamExt as _;
use lobster_shared::ids::AgentId;
use redis::aio::ConnectionManager;
use tokio_util::sync::CancellationToken;

use crate::hub::Hub;

const WAKE_CHANNEL: &str = "lobster-relay:wake";
const REVOKE_CHANNEL: &str = "lobster-relay:revoke";
/// A publish or ping that takes longer than this is abandoned.
const REDIS_TIMEOUT: Duration = Duration::from_millis(500);
const RESUBSCRIBE_MAX_DELAY: Duration = Duration::from_secs(5);

#[derive(Clone)]
pub enum Bus {
    Local(Arc<Hub>),
    Redis(RedisBus),
}

#[derive(Clone)]
pub struct RedisBus {
    hub: Arc<Hub>,
    /// Set once Redis first answered; until then nothing is published (the
    /// database re-scan carries wake-ups) and `/readyz` says Redis is down.
    publisher: Arc<OnceLock<ConnectionManager>>,
}

impl Bus {
    /// With a Redis URL: connects, and subscribes in a background task that
    /// lives until `shutdown`. A malformed URL is a start-up error; Redis
    /// being down is not: an instance restarted during a Redis outage must
    /// come up and deliver (by the database re-scan) like a running one
    /// does, and connects to Redis in the background once it answers.
    pub async fn connect(
        hub: Arc<Hub>,
        redis_url: Option<&str>,
        shutdown: CancellationToken,
    ) -> anyhow::Result<Bus> {
        let Some(url) = redis_url else {
            return Ok(Bus::Local(hub));
        };
        let client = redis::Client::open(url).map_err(|e| {
            anyhow::anyhow!("--redis {url:?} is not a Redis URL ({e}): use redis://HOST:PORT")
        })?;
        let publisher = Arc::new(OnceLock::new());
        match connect_publisher(&client).await {
            Ok(manager) => {
                let _ = publisher.set(manager);
            }
            Err(err) => {
                tracing::warn!(redis = %url, error = %err, "Redis is not answering; starting without it: sessions find new work by re-scanning the database until it does");
                tokio::spawn(connect_later(
                    client.clone(),
                    publisher.clone(),
                    shutdown.clone(),
                ));
            }
        }
        tokio::spawn(subscribe_loop(client, hub.clone(), shutdown));
        Ok(Bus::Redis(RedisBus { hub, publisher }))
    }

    pub fn hub(&self) -> &Arc<Hub> {
        match self {
            Bus::Local(hub) => hub,
            Bus::Redis(bus) => &bus.hub,
        }
    }

    /// New work is stored for `agent_id`: tell its sessions, here and elsewhere.
    pub fn wake(&self, agent_id: &AgentId) {
        self.hub().wake(agent_id);
        if let Bus::Redis(bus) = self {
            bus.publish(WAKE_CHANNEL, agent_id);
        }
    }

    /// `agent_id` was revoked: close its sessions, here and elsewhere.
    pub fn revoke(&self, agent_id: &AgentId) {
        self.hub().revoke(agent_id);
        if let Bus::Redis(bus) = self {
            bus.publish(REVOKE_CHANNEL, agent_id);
        }
    }

    /// For `/readyz`: `None` without Redis, else whether it answers.
    pub async fn ping(&self) -> Option<Result<(), String>> {
        let Bus::Redis(bus) = self else { return None };
        let Some(conn) = bus.publisher.get() else {
            return Some(Err("not connected yet".into()));
        };
        let mut conn = conn.clone();
        let ping = redis::cmd("PING");
        Some(
            match tokio::time::timeout(REDIS_TIMEOUT, ping.query_async::<String>(&mut conn)).await {
                Ok(Ok(_)) => Ok(()),
                Ok(Err(e)) => Err(e.to_string()),
                Err(_) => Err("no answer in 500 ms".into()),
            },
        )
    }
}

impl RedisBus {
    /// Fire and forget: the caller (an HTTP answer) never waits on Redis.
    fn publish(&self, channel: &'static str, agent_id: &AgentId) {
        let Some(conn) = self.publisher.get() else {
            return; // not connected yet: the database re-scan finds the work
        };
        let mut conn = conn.clone();
        let agent_id = agent_id.clone();
        tokio::spawn(async move {
            let mut publish = redis::cmd("PUBLISH");
            publish.arg(channel).arg(agent_id.as_str());
            match tokio::time::timeout(REDIS_TIMEOUT, publish.query_async::<i64>(&mut conn)).await {
                Ok(Ok(_)) => {}
                Ok(Err(err)) => tracing::debug!(error = %err, channel, "redis publish failed"),
                Err(_) => tracing::debug!(channel, "redis publish timed out"),
            }
        });
    }
}

/// A connection manager (it reconnects by itself once made), or why Redis
/// did not answer within 5 s.
async fn connect_publisher(client: &redis::Client) -> anyhow::Result<ConnectionManager> {
    let config = redis::aio::ConnectionManagerConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(2)))
        .set_response_timeout(Some(REDIS_TIMEOUT));
    tokio::time::timeout(
        Duration::from_secs(5),
        client.get_connection_manager_with_config(config),
    )
    .await
    .map_err(|_| anyhow::anyhow!("no answer in 5 s"))?
    .map_err(|e| anyhow::anyhow!("{e}"))
}

/// Tries again, with backoff, until Redis answers or the relay stops.
async fn connect_later(
    client: redis::Client,
    publisher: Arc<OnceLock<ConnectionManager>>,
    shutdown: CancellationToken,
) {
    let mut delay = Duration::from_millis(250);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(delay) => {}
        }
        if let Ok(manager) = connect_publisher(&client).await {
            let _ = publisher.set(manager);
            tracing::info!("connected to Redis");
            return;
        }
        delay = (delay * 2).min(RESUBSCRIBE_MAX_DELAY);
    }
}

/// Applies what other instances publish; resubscribes with backoff after
/// any failure and then wakes every local session, since wake-ups may have
/// been missed while disconnected.
async fn subscribe_loop(client: redis::Client, hub: Arc<Hub>, shutdown: CancellationToken) {
    let mut delay = Duration::from_millis(100);
    let mut first = true;
    loop {
        let outcome = tokio::select! {
            _ = shutdown.cancelled() => return,
            outcome = subscribe_once(&client, &hub, first) => outcome,
        };
        first = false;
        match outcome {
            Ok(()) => delay = Duration::from_millis(100),
            Err(err) => {
                tracing::warn!(error = %err, retry_in_ms = delay.as_millis() as u64, "redis subscription lost; sessions fall back to re-scanning")
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(delay) => {}
        }
        delay = (delay * 2).min(RESUBSCRIBE_MAX_DELAY);
    }
}

async fn subscribe_once(client: &redis::Client, hub: &Hub, first: bool) -> redis::RedisResult<()> {
    let mut pubsub = client.get_async_pubsub().await?;
    pubsub.subscribe(&[WAKE_CHANNEL, REVOKE_CHANNEL]).await?;
    if !first {
        tracing::info!("redis subscription restored");
        hub.wake_all();
    }
    let mut messages = pubsub.on_message();
    while let Some(message) = messages.next().await {
        // Published by relay instances; anything else names no agent here.
        let Ok(agent_id) = message.get_payload::<String>() else {
            continue;
        };
        let Ok(agent_id) = AgentId::parse(&agent_id) else {
            continue;
        };
        match message.get_channel_name() {
            WAKE_CHANNEL => hub.wake(&agent_id),
            REVOKE_CHANNEL => hub.revoke(&agent_id),
            _ => {}
        }
    }
    Err(redis::RedisError::from((
        redis::ErrorKind::Io,
        "subscription stream ended",
    )))
}
