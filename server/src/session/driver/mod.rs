//! The session loop: leases, pushes, answers, timeouts.
//!
//! Layout: this file is the loop; `answers` applies the agent's acks and
//! nacks; `writes` keeps the order of the session's writes.

mod answers;
mod writes;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use lobster_shared::ids::{EventId, SessionId};
use lobster_shared::wire::{PROTOCOL_VERSION, Ready, RelayMessage};
use tokio::time::{Instant, sleep_until};

use super::link::{Ending, Inbound, Link};
use crate::state::AppState;
use crate::store::push::Port;
use crate::store::{Agent, ClaimRequest, Delivery, Millis, now_ms};
use writes::Writes;

/// A poll session with no poll waiting and no request for this long ends.
pub(super) const AWAY_LIMIT: Duration = Duration::from_secs(30);

/// How long to wait before asking a failing store again.
const STORE_RETRY: Duration = Duration::from_secs(1);
/// Most acks stored in one write.
const ACK_BATCH: usize = 256;
/// Most queued agent frames handled before the loop looks at its other work.
const MAX_DRAIN: usize = 1024;
/// Most pushed events sent in one flush.
const MAX_PUSH_BATCH: usize = 256;

/// One session over `link`, to run until it ends; it then hands its leases
/// back. The session is built here, outside the future: an async fn keeps
/// a copy of each argument moved into it for its whole life, so every level
/// of nesting would store the session's state again, for as long as an
/// idle agent stays connected (6 KB a session before, 2 KB now). No span
/// either (its fields stayed as long): the log lines carry the ids.
pub(super) fn run<L: Link + 'static>(
    link: L,
    state: AppState,
    agent: Arc<Agent>,
    session_id: SessionId,
    patterns: Vec<String>,
    transport: &'static str,
) -> impl Future<Output = ()> + Send + 'static {
    let session = Session::new::<L>(state, agent, session_id, patterns);
    session.run(link, transport)
}

struct Session {
    state: AppState,
    agent: Arc<Agent>,
    session_id: SessionId,
    patterns: Vec<String>,
    /// Event id -> when its lease runs out.
    in_flight: HashMap<EventId, Instant>,
    /// Free delivery slots, and where new events arrive straight from
    /// their commit (see `store::push`).
    port: std::sync::Arc<Port>,
    acks: Vec<EventId>,
    /// Acks under way, which some writes wait for.
    writes: Writes,
    /// The last claim failed: it may have leased events (PostgreSQL can
    /// commit and lose the answer) that this session never sent.
    claim_in_doubt: bool,
}

impl Session {
    fn new<L: Link>(
        state: AppState,
        agent: Arc<Agent>,
        session_id: SessionId,
        patterns: Vec<String>,
    ) -> Self {
        // A filtered port takes no pushes: the session claims everything.
        let port = Port::new(
            &session_id,
            !patterns.is_empty() || L::PULL,
            state.config.ack_timeout.as_millis() as Millis,
            state.config.max_in_flight as usize,
        );
        Session {
            state,
            agent,
            session_id,
            patterns,
            in_flight: HashMap::new(),
            port,
            acks: Vec::new(),
            writes: Writes::default(),
            claim_in_doubt: false,
        }
    }

    async fn run<L: Link>(mut self, mut link: L, transport: &'static str) {
        tracing::info!(agent_id = %self.agent.agent_id, session_id = %self.session_id, transport, "session opened");
        crate::metrics::session_opened();
        let ending = self.serve(&mut link, transport).await;
        // Boxed: the goodbye runs once, so an idle session's future need
        // not be as large as it.
        Box::pin(async move {
            link.finish(&ending).await;
            self.finish(ending).await;
        })
        .await;
        crate::metrics::session_closed();
    }

    /// Agent answers are read here rather than in a task of their own: one
    /// task and no channel per session keeps an idle agent's footprint small.
    async fn serve<L: Link>(&mut self, link: &mut L, transport: &'static str) -> Ending {
        let registration = self.state.bus.hub().register(
            &self.agent.agent_id,
            &self.session_id,
            transport,
            &self.state.shutdown,
        );
        let mut wake = registration.wake.clone();
        let port = self.port.clone();
        if let Some(ports) = self.state.store.ports() {
            ports.attach(&self.agent.agent_id, self.port.clone());
        }
        self.touch();
        // On a shared store a wake-up can be lost (another instance, Redis
        // down): look again on this timer. None on SQLite.
        let mut rescan = self.state.config.rescan.map(|every| {
            let mut rescan = tokio::time::interval(every);
            rescan.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            rescan
        });
        if let Err(reason) = link.send(&self.ready()).await {
            return Ending::Gone(reason);
        }
        let mut want_work = true;
        let mut next_due: Option<Instant> = None;
        loop {
            if want_work && self.capacity(link) > 0 {
                wake.mark_seen();
                match self.lease_and_push(link).await {
                    Ok((more, due)) => (want_work, next_due) = (more, due),
                    Err(LeaseError::Store) => {
                        (want_work, next_due) = (false, Some(Instant::now() + STORE_RETRY))
                    }
                    Err(LeaseError::Link(reason)) => return Ending::Gone(reason),
                }
            }
            let lease_deadline = self.in_flight.values().min().copied();
            let away_until = self.away_until(link);
            let link_deadline = link.deadline();
            // One timer for the four deadlines: each `Sleep` is part of
            // this future, which an idle session keeps for its whole life.
            let timer = [next_due, lease_deadline, away_until, link_deadline]
                .into_iter()
                .flatten()
                .min();
            tokio::select! {
                // One wait for both: the token is a child of the shutdown's.
                _ = registration.revoked.cancelled() => {
                    return if self.state.shutdown.is_cancelled() {
                        Ending::Shutdown
                    } else {
                        Ending::Revoked
                    };
                }
                inbound = link.next() => {
                    // Take every answer already here before leasing again, so
                    // one lease fills all the slots they freed (one store
                    // round trip per batch of acks, not per ack).
                    let mut next = Some(inbound);
                    for _ in 0..MAX_DRAIN {
                        let Some(inbound) = next else { break };
                        match inbound {
                            Some(Inbound::Message(message)) => {
                                want_work |= self.apply(message).await;
                                if self.acks.len() >= ACK_BATCH {
                                    self.flush_acks();
                                }
                            }
                            Some(Inbound::Batch(batch)) => want_work |= self.apply_batch(batch).await,
                            Some(Inbound::Wants) => want_work = true,
                            Some(Inbound::Violation(reason)) => return Ending::Violation(reason),
                            Some(Inbound::Closed) => return Ending::ClosedByAgent,
                            Some(Inbound::Gone(reason)) => return Ending::Gone(reason),
                            None => {}
                        }
                        next = link.try_next();
                    }
                    self.flush_acks();
                }
                batch = port.pushed(MAX_PUSH_BATCH) => {
                    if let Err(reason) = self.send_events(link, batch).await {
                        return Ending::Gone(reason);
                    }
                }
                () = wake.changed() => want_work = true,
                () = tick(&mut rescan) => want_work = true,
                _ = sleep_until(timer.unwrap_or_else(Instant::now)), if timer.is_some() => {
                    let now = Instant::now();
                    if away_until.is_some_and(|at| at <= now) {
                        return Ending::Gone("the agent stopped polling".into());
                    }
                    if lease_deadline.is_some_and(|at| at <= now) {
                        self.expire(link);
                        want_work = true;
                    }
                    if next_due.is_some_and(|at| at <= now) {
                        (want_work, next_due) = (true, None);
                    }
                    if link_deadline.is_some_and(|at| at <= now)
                        && let Err(reason) = link.at_deadline().await
                    {
                        return Ending::Gone(reason);
                    }
                }
            }
        }
    }

    /// How many events to lease now.
    fn capacity<L: Link>(&self, link: &L) -> usize {
        let free = self.port.free();
        link.demand().map_or(free, |want| want.min(free))
    }

    /// When a transport whose agent is away ends the session: after
    /// [`AWAY_LIMIT`], and not before the last of its leases ran out
    /// (an agent still handling an event is not away).
    fn away_until<L: Link>(&self, link: &L) -> Option<Instant> {
        let since = link.away_since()?;
        let last_lease = self.in_flight.values().max().copied();
        Some((since + AWAY_LIMIT).max(last_lease.unwrap_or(since)))
    }

    /// Frees the slots of events whose lease ran out.
    fn expire<L: Link>(&mut self, link: &mut L) {
        let now = Instant::now();
        let expired: Vec<EventId> = self
            .in_flight
            .iter()
            .filter(|(_, until)| **until <= now)
            .map(|(id, _)| id.clone())
            .collect();
        for id in &expired {
            self.in_flight.remove(id);
            crate::metrics::event_ack_timeout();
        }
        link.expired(&expired);
        self.port.give_back(expired.len());
    }

    fn ready(&self) -> RelayMessage {
        RelayMessage::Ready(Ready {
            session_id: self.session_id.to_string(),
            agent_id: self.agent.agent_id.to_string(),
            relay_id: self.agent.relay_id.to_string(),
            webhook_url: self.state.webhook_url(&self.agent.relay_id),
            max_in_flight: self.state.config.max_in_flight,
            ack_timeout_ms: self.state.config.ack_timeout.as_millis() as u64,
            protocol: PROTOCOL_VERSION,
        })
    }

    /// Leases what is due into the free slots (or what the transport asks
    /// for) and sends it. Returns whether more may be waiting right now, and
    /// when something else comes due.
    async fn lease_and_push<L: Link>(
        &mut self,
        link: &mut L,
    ) -> Result<(bool, Option<Instant>), LeaseError> {
        let ack_timeout = self.state.config.ack_timeout;
        // A pull transport's port takes no pushes, so its slots change only
        // here and in this loop: taking `limit` of them cannot race.
        let demand = link.demand();
        let (port, limit) = match demand {
            None => (Some(self.port.clone()), 0),
            Some(want) => {
                let free = self.port.take_all();
                let limit = want.min(free);
                self.port.give_back(free - limit);
                (None, limit)
            }
        };
        if self.claim_in_doubt {
            // It takes back what is not in flight: not what was acked.
            self.writes.settled().await;
        }
        let claim = self
            .state
            .store
            .claim(ClaimRequest {
                agent_id: self.agent.agent_id.clone(),
                session_id: self.session_id.clone(),
                limit,
                lease_ms: ack_timeout.as_millis() as Millis,
                patterns: self.patterns.clone(),
                port,
                requeue_except: self
                    .claim_in_doubt
                    .then(|| self.in_flight.keys().cloned().collect()),
            })
            .await;
        let leased = claim.as_ref().map_or(0, |c| c.deliveries.len());
        if demand.is_some() {
            self.port.give_back(limit - leased);
        }
        self.claim_in_doubt = claim.is_err();
        let claim = claim.map_err(|err| {
            tracing::warn!(agent_id = %self.agent.agent_id, session_id = %self.session_id, error = %err, "cannot lease events; retrying");
            LeaseError::Store
        })?;
        let more = claim.more;
        let due = claim.next_due.map(|at| {
            let wait = Duration::from_millis((at - now_ms()).max(0) as u64);
            Instant::now() + wait
        });
        self.send_events(link, claim.deliveries)
            .await
            .map_err(LeaseError::Link)?;
        Ok((more, due))
    }

    /// Sends leased events (their slots are taken) as event frames.
    async fn send_events<L: Link>(
        &mut self,
        link: &mut L,
        deliveries: Vec<Delivery>,
    ) -> Result<(), String> {
        if deliveries.is_empty() {
            // A pull transport may answer a request with nothing.
            return if L::PULL { link.flush().await } else { Ok(()) };
        }
        let deadline = Instant::now() + self.state.config.ack_timeout;
        for delivery in deliveries {
            let id = delivery.id.clone();
            crate::metrics::event_delivered();
            link.feed(delivery).await?;
            self.in_flight.insert(id, deadline);
        }
        link.flush().await
    }

    /// Hands leased events back once the transport said goodbye.
    async fn finish(mut self, ending: Ending) {
        let (agent_id, session_id) = (&self.agent.agent_id, &self.session_id);
        match &ending {
            Ending::Violation(detail) | Ending::Gone(detail) => {
                tracing::info!(%agent_id, %session_id, reason = ?detail, "session closed")
            }
            Ending::ClosedByAgent => {
                tracing::info!(%agent_id, %session_id, "session closed by the agent")
            }
            Ending::Revoked => {
                tracing::info!(%agent_id, %session_id, "session closed: agent revoked")
            }
            Ending::Shutdown => {
                tracing::info!(%agent_id, %session_id, "session closed: relay shutting down")
            }
        }
        self.flush_acks();
        // Before the release: no insert may lease to this session after it.
        if let Some(ports) = self.state.store.ports() {
            ports.detach(&self.agent.agent_id, &self.session_id);
        }
        self.port.close();
        // An ack applied after the release would find its event back in
        // the queue, and perhaps with another session already.
        self.writes.settled().await;
        let release = self
            .state
            .store
            .release(&self.agent.agent_id, &self.session_id);
        self.touch();
        match release.await {
            // The released events are due now: the agent's other sessions
            // (or one that opened while this one was closing, whose claim
            // saw them still leased) take them at once, not at lease expiry.
            Ok(()) => self.state.bus.wake(&self.agent.agent_id),
            Err(err) => {
                tracing::warn!(agent_id = %self.agent.agent_id, session_id = %self.session_id, error = %err, "could not release leases; they return when the ack timeout passes")
            }
        }
    }
}

/// The next tick of `interval`; never without one.
async fn tick(interval: &mut Option<tokio::time::Interval>) {
    match interval {
        Some(interval) => drop(interval.tick().await),
        None => std::future::pending().await,
    }
}

enum LeaseError {
    Store,
    Link(String),
}
