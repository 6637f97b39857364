//! SQLite backend: one writer thread with group commit, a pool of readers.
//!
//! Every write is a job sent to the writer thread. The thread takes whatever
//! jobs are queued (no fixed wait), runs them in one `BEGIN IMMEDIATE`
//! transaction (each inside a savepoint of its own, except the hot path's:
//! see `writer::Undo`), commits once with `synchronous=NORMAL`, and hands
//! the batch to the fsync threads (`writer/sync.rs`), which sync the WAL
//! and only then answer each job, in commit order, while the writer goes
//! on. So a burst of N webhooks costs one fsync, and no caller hears
//! "stored" before its commit is on disk. A batch holding
//! only leases, acks and `last_seen` commits without the fsync (a power cut
//! could undo it, which means redelivery, never loss), and one of only acks
//! and `last_seen` first waits a few ms to join other jobs. Jobs run in the
//! order they were submitted (a property of this backend, not of the
//! store's contract: sessions order their own writes). A claim for an
//! agent with nothing waiting skips the writer altogether (`queued`).
//!
//! Layout: `backend` (the [`Backend`] implementation: where each operation
//! runs), `writer/` (the thread and its group commit), `queries`, `leases`
//! (SQL of the hot path), `callbacks`, `workspaces`, `dashboard`,
//! `agent_keys` (their SQL), `schema` and `files` (the database file, its lock and
//! permissions), `queued` (which agents may have events waiting), `dedup`
//! (replay protection's recent keys, in memory).

mod agent_keys;
mod backend;
mod callbacks;
mod dashboard;
mod dedup;
pub(crate) mod files;
mod leases;
mod queries;
mod queued;
mod schema;
mod workspaces;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::future::Either;
use lobster_shared::ids::EventId;
use rusqlite::Connection;

use super::push::{Port, Ports};
use super::*;
use queued::Queued;
use schema::{SCHEMA_VERSION, migrate};
use writer::{Durability, Settle, Undo, Writer};

/// The SQLite store. Cheap to clone.
#[derive(Clone)]
pub struct SqliteStore {
    writer: Writer,
    readers: Arc<Readers>,
    retry: RetryPolicy,
    /// Live sessions a new event can be leased to as it is stored.
    ports: Arc<Ports>,
    /// One relay per database file; released by `close` (or with the process).
    lock: Arc<Mutex<Option<files::DatabaseLock>>>,
    clock: Clock,
    /// Agents that may have events waiting: a claim for any other agent
    /// finds nothing and skips the writer.
    queued: Arc<Queued>,
    /// The dedup keys of the last ten minutes (replay protection).
    recent: dedup::SharedRecent,
}

struct Readers {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
    /// Reads at once. WAL readers never wait on each other, but without a
    /// bound a burst of reconnecting agents opens a connection and a
    /// blocking thread for each of them.
    permits: Arc<tokio::sync::Semaphore>,
}

const MAX_READERS: usize = 8;
/// Prepared statements kept per connection. rusqlite's default (16) is
/// fewer than the writer uses, so its least recently used statements were
/// parsed again and again under load.
const STATEMENT_CACHE: usize = 128;

/// Settings every connection gets, the writer's and the readers'.
///
/// The query planner stability guarantee (QPSG) keeps cached statements
/// cached. Without it SQLite marks a statement to be planned again when a
/// value bound in `col = ?` or `LIMIT ?` changes, and rusqlite's cache
/// clears the bindings of every statement it takes back, which expires such
/// a statement outright: every lease, ack and dedup lookup was parsed and
/// planned anew (a fifth of the relay's CPU while 10,000 agents
/// reconnected). Our plans never depend on bound values (there is no
/// ANALYZE data to choose by), so nothing is lost.
fn tune(conn: &mut Connection) -> Result<(), StoreError> {
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    conn.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
        true,
    )?;
    Ok(())
}

impl SqliteStore {
    pub fn open(path: &Path, retry: RetryPolicy, clock: Clock) -> Result<Self, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            files::create_private_dir(dir).map_err(|e| {
                StoreError::Database(format!("cannot create {}: {e}", dir.display()))
            })?;
        }
        let lock = files::lock(path)?;
        files::create_private_file(path)
            .map_err(|e| StoreError::Database(format!("cannot create {}: {e}", path.display())))?;
        for warning in files::permission_warnings(path) {
            tracing::warn!("{warning}");
        }
        let mut conn = Connection::open(path)?;
        tune(&mut conn)?;
        conn.execute_batch(
            "PRAGMA journal_mode = WAL;
             PRAGMA synchronous = FULL;
             PRAGMA temp_store = MEMORY;
             PRAGMA busy_timeout = 5000;",
        )?;
        migrate(&mut conn)?;
        leases::release_all_leases(&conn, now_ms())?;
        let queued = Queued::load(&conn)?;
        let recent = dedup::SharedRecent::load(&conn, clock.now())?;
        Ok(SqliteStore {
            writer: Writer::start(conn)?,
            readers: Arc::new(Readers {
                path: path.to_owned(),
                idle: Mutex::new(Vec::new()),
                permits: Arc::new(tokio::sync::Semaphore::new(MAX_READERS)),
            }),
            retry,
            ports: Arc::new(Ports::default()),
            lock: Arc::new(Mutex::new(Some(lock))),
            clock,
            queued: Arc::new(queued),
            recent,
        })
    }

    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let readers = self.readers.clone();
        let permit = readers
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| StoreError::Closed)?;
        tokio::task::spawn_blocking(move || {
            let conn = readers.take()?;
            let result = f(&conn);
            readers.put(conn);
            drop(permit);
            result
        })
        .await
        .map_err(|e| StoreError::Database(format!("reader task failed: {e}")))?
    }

    /// Stores the event; if a session of its agent is caught up and has a
    /// free slot, leased to it in the same insert and pushed to it once
    /// committed.
    fn insert_event(
        &self,
        event: NewEvent,
    ) -> impl Future<Output = Result<Inserted, StoreError>> + Send + use<> {
        let clock = self.clock.clone();
        let ports = self.ports.clone();
        let recent = self.recent.clone();
        // Hashed here, off the writer thread.
        let hash = event
            .dedup_key
            .as_deref()
            .map(|key| dedup::key_hash(event.agent_id.as_str(), key));
        self.queued.add(event.agent_id.as_str());
        self.writer
            .submit_settled(Durability::Fsync, Undo::Batch, move |c| {
                let now = clock.now();
                let dedup = hash.map(|hash| (hash, now + DEDUP_WINDOW_MS));
                let seen = hash.and_then(|hash| Some((hash, recent.lock().find(hash, now)?)));
                if let Some((hash, seq)) = seen {
                    let key = event.dedup_key.as_deref().unwrap_or_default();
                    let agent_id = event.agent_id.as_str();
                    if let Some(id) = dedup::original_id(c, seq, agent_id, key, hash)? {
                        return Ok((Inserted::Duplicate(EventId::from_stored(id)), None));
                    }
                    // Neither its row nor the table names the event any
                    // more: storing it again may repeat it, never lose it.
                }
                let id = event.id.clone();
                let (inserted, seq, settle) = match ports.take_slot(&event.agent_id) {
                    None => {
                        let seq = queries::store_event(c, &event, None, dedup)?;
                        (Inserted::New(id.clone()), seq, None)
                    }
                    Some(port) => {
                        let lease = (port.session_id().as_str(), now + port.lease_ms());
                        let seq = match queries::store_event(c, &event, Some(lease), dedup) {
                            Ok(seq) => seq,
                            Err(err) => {
                                port.give_back(1);
                                return Err(err);
                            }
                        };
                        let pushed = Inserted::Pushed(id.clone());
                        (pushed, seq, Some(push_when_committed(port, event)))
                    }
                };
                let Some((hash, until)) = dedup else {
                    return Ok((inserted, settle));
                };
                // Later jobs of this batch see the key at once; a rollback
                // takes it back.
                recent.lock().remember(hash, seq, until);
                let settle = dedup::forget_unless_committed(recent, hash, seq, settle);
                Ok((inserted, Some(settle)))
            })
    }

    /// Leases due events into the session's free slots (or up to `limit`
    /// without a port).
    fn claim(
        &self,
        req: ClaimRequest,
    ) -> impl Future<Output = Result<Claim, StoreError>> + Send + use<> {
        if req.requeue_except.is_none()
            && self
                .queued
                .nothing_for(req.agent_id.as_str(), req.port.as_deref())
        {
            return Either::Left(std::future::ready(Ok(Claim {
                deliveries: Vec::new(),
                next_due: None,
                more: false,
            })));
        }
        let clock = self.clock.clone();
        let max_attempts = self.retry.max_attempts;
        Either::Right(
            self.writer
                .submit_settled(Durability::Relaxed, Undo::Batch, move |c| {
                    let now = clock.now();
                    let Some(port) = req.port.clone() else {
                        return Ok((leases::claim(c, &req, max_attempts, now)?, None));
                    };
                    let limit = port.take_all();
                    let claim = match leases::claim_up_to(c, &req, limit, max_attempts, now) {
                        Ok(claim) => claim,
                        Err(err) => {
                            port.give_back(limit);
                            return Err(err);
                        }
                    };
                    let leased = claim.deliveries.len();
                    port.give_back(limit - leased);
                    if limit > 0 {
                        port.set_caught_up(!claim.more);
                    }
                    // Rolled back: the slots it leased into are free after all.
                    let settle: Settle = Box::new(move |committed| {
                        if !committed {
                            port.give_back(leased);
                            port.set_caught_up(false);
                        }
                    });
                    Ok((claim, Some(settle)))
                }),
        )
    }

    fn replay(
        &self,
        agent_id: &str,
        id: &str,
    ) -> impl Future<Output = Result<ReplayOutcome, StoreError>> + Send + use<> {
        let clock = self.clock.clone();
        self.queued.add(agent_id);
        let (agent_id, id) = (agent_id.to_owned(), id.to_owned());
        self.writer
            .submit(move |c| queries::replay(c, &agent_id, &id, clock.now()))
    }
}

/// After the commit, the session gets the event; after a rollback, its slot
/// back.
fn push_when_committed(port: Arc<Port>, event: NewEvent) -> Settle {
    Box::new(move |committed| {
        if !committed {
            port.give_back(1);
            return;
        }
        port.push(Delivery {
            id: event.id,
            event_type: event.event_type,
            received_at: event.received_at,
            attempt: 1,
            headers: event.headers,
            body: event.body,
            replay: false,
        });
    })
}

impl Readers {
    fn take(&self) -> Result<Connection, StoreError> {
        if let Some(conn) = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop() {
            return Ok(conn);
        }
        let mut conn = Connection::open_with_flags(
            &self.path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(Duration::from_secs(5))?;
        tune(&mut conn)?;
        Ok(conn)
    }

    fn put(&self, conn: Connection) {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < MAX_READERS {
            idle.push(conn);
        }
    }
}
