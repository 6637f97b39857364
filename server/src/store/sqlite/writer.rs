//! The single writer thread and its group commit.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use rusqlite::Connection;
use tokio::sync::{mpsc, oneshot};

use crate::store::StoreError;

/// Most jobs one transaction takes; bounds latency under a flood.
const MAX_BATCH: usize = 4096;

/// How much a job's commit must survive.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Durability {
    /// On disk before the caller hears back (`synchronous=FULL`): accepted
    /// events, nacks, admin changes.
    Fsync,
    /// Survives a crash of the process but maybe not of the machine
    /// (`synchronous=NORMAL` in WAL mode). For leases, acks and `last_seen`:
    /// losing one only means an event is delivered again. The next fsync'd
    /// commit makes it durable too, since WAL frames are synced in order.
    Relaxed,
}

/// A write waiting for the writer thread.
trait Job: Send {
    fn durability(&self) -> Durability;
    /// Runs inside the open transaction; the result is kept until commit.
    fn run(&mut self, conn: &Connection);
    /// Answers the caller once the transaction's fate is known.
    fn finish(self: Box<Self>, commit: Result<(), StoreError>);
}

/// Told, on the writer thread and in job order, whether the transaction
/// holding a job's work committed: for effects outside the database that
/// must follow it (a pushed event, slots to give back).
pub(super) type Settle = Box<dyn FnOnce(bool) + Send>;

struct TypedJob<T, F> {
    durability: Durability,
    work: Option<F>,
    result: Option<Result<(T, Option<Settle>), StoreError>>,
    reply: oneshot::Sender<Result<T, StoreError>>,
}

impl<T, F> Job for TypedJob<T, F>
where
    T: Send,
    F: FnOnce(&Connection) -> Result<(T, Option<Settle>), StoreError> + Send,
{
    fn durability(&self) -> Durability {
        self.durability
    }

    fn run(&mut self, conn: &Connection) {
        if let Some(work) = self.work.take() {
            self.result = Some(in_savepoint(conn, work));
        }
    }

    fn finish(self: Box<Self>, commit: Result<(), StoreError>) {
        let answer = match (commit, self.result) {
            (Ok(()), Some(Ok((value, settle)))) => {
                if let Some(settle) = settle {
                    settle(true);
                }
                Ok(value)
            }
            (Err(err), Some(Ok((_, Some(settle))))) => {
                settle(false);
                Err(err)
            }
            (_, Some(Err(err))) => Err(err),
            (Err(err), _) => Err(err),
            (Ok(()), None) => Err(StoreError::Database("job was not run".into())),
        };
        let _ = self.reply.send(answer);
    }
}

/// One job's failure rolls back only that job, not the batch it shares.
fn in_savepoint<T>(
    conn: &Connection,
    work: impl FnOnce(&Connection) -> Result<(T, Option<Settle>), StoreError>,
) -> Result<(T, Option<Settle>), StoreError> {
    run_cached(conn, "SAVEPOINT job")?;
    let result = work(conn);
    if result.is_err() {
        run_cached(conn, "ROLLBACK TO job")?;
    }
    if let Err(err) = run_cached(conn, "RELEASE job") {
        if let Ok((_, Some(settle))) = result {
            settle(false);
        }
        return Err(err);
    }
    result
}

/// Runs a statement without parameters from the connection's statement
/// cache: the per-job savepoints are not parsed again for every job.
fn run_cached(conn: &Connection, sql: &str) -> Result<(), StoreError> {
    conn.prepare_cached(sql)?.execute([])?;
    Ok(())
}

/// What the writer thread receives.
enum Msg {
    Job(Box<dyn Job>),
    /// Exit after the batch holding this; answered when the thread is done.
    Stop(oneshot::Sender<()>),
}

/// Handle to the writer thread. Cheap to clone.
#[derive(Clone)]
pub(super) struct Writer {
    msgs: mpsc::UnboundedSender<Msg>,
    thread: Arc<Mutex<Option<JoinHandle<()>>>>,
    /// The last commit failed (a full disk, an I/O error); cleared by the
    /// next one that succeeds.
    failing: Arc<AtomicBool>,
}

impl Writer {
    pub(super) fn start(conn: Connection) -> Result<Writer, StoreError> {
        let (msgs, rx) = mpsc::unbounded_channel();
        let failing = Arc::new(AtomicBool::new(false));
        let health = failing.clone();
        let handle = std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || write_loop(conn, rx, &health))
            .map_err(|e| StoreError::Database(format!("cannot start the writer thread: {e}")))?;
        Ok(Writer {
            msgs,
            thread: Arc::new(Mutex::new(Some(handle))),
            failing,
        })
    }

    /// Whether the last commit failed.
    pub(super) fn failing(&self) -> bool {
        self.failing.load(Ordering::Relaxed)
    }

    /// Queues `work` now (so jobs keep the caller's order) and resolves with
    /// its result once the transaction holding it is on disk.
    pub(super) fn submit<T, F>(
        &self,
        work: F,
    ) -> impl Future<Output = Result<T, StoreError>> + Send + use<T, F>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        self.submit_with(Durability::Fsync, work)
    }

    /// Like [`Writer::submit`], answering once the transaction holding
    /// `work` is as durable as `durability` asks.
    pub(super) fn submit_with<T, F>(
        &self,
        durability: Durability,
        work: F,
    ) -> impl Future<Output = Result<T, StoreError>> + Send + use<T, F>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        self.submit_settled(durability, move |c| work(c).map(|value| (value, None)))
    }

    /// Like [`Writer::submit_with`]; the [`Settle`] that `work` may return
    /// learns whether its transaction committed before the caller does.
    pub(super) fn submit_settled<T, F>(
        &self,
        durability: Durability,
        work: F,
    ) -> impl Future<Output = Result<T, StoreError>> + Send + use<T, F>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<(T, Option<Settle>), StoreError> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job = Box::new(TypedJob {
            durability,
            work: Some(work),
            result: None,
            reply,
        });
        let queued = self.msgs.send(Msg::Job(job)).is_ok();
        async move {
            if !queued {
                return Err(StoreError::Closed);
            }
            answer.await.unwrap_or(Err(StoreError::Closed))
        }
    }

    /// Lets the thread commit everything queued so far, then joins it. Jobs
    /// submitted afterwards fail with [`StoreError::Closed`].
    pub(super) async fn close(&self) {
        let (done, stopped) = oneshot::channel();
        if self.msgs.send(Msg::Stop(done)).is_ok() {
            let _ = stopped.await;
        }
        let handle = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(handle) = handle {
            let _ = tokio::task::spawn_blocking(move || handle.join()).await;
        }
    }
}

fn write_loop(conn: Connection, mut msgs: mpsc::UnboundedReceiver<Msg>, failing: &AtomicBool) {
    let mut batch: Vec<Box<dyn Job>> = Vec::with_capacity(64);
    let mut stop = None;
    // The connection opens with `synchronous=FULL` (see `SqliteStore::open`).
    let mut sync = SyncMode { full: true };
    while stop.is_none() {
        match msgs.blocking_recv() {
            Some(Msg::Job(job)) => batch.push(job),
            Some(Msg::Stop(done)) => stop = Some(done),
            None => break,
        }
        while stop.is_none() && batch.len() < MAX_BATCH {
            match msgs.try_recv() {
                Ok(Msg::Job(job)) => batch.push(job),
                Ok(Msg::Stop(done)) => stop = Some(done),
                Err(_) => break,
            }
        }
        if batch.is_empty() {
            continue;
        }
        let durable = batch
            .iter()
            .any(|job| job.durability() == Durability::Fsync);
        let commit = sync
            .set(&conn, durable)
            .and_then(|()| run_batch(&conn, &mut batch));
        if durable && commit.is_ok() {
            crate::metrics::commit_batch(batch.len());
        }
        failing.store(commit.is_err(), Ordering::Relaxed);
        for job in batch.drain(..) {
            job.finish(commit.clone());
        }
    }
    msgs.close();
    while let Ok(msg) = msgs.try_recv() {
        match msg {
            Msg::Job(job) => job.finish(Err(StoreError::Closed)),
            Msg::Stop(done) => drop(done.send(())),
        }
    }
    if let Err(err) = conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)") {
        tracing::warn!(error = %err, "checkpoint at shutdown failed");
    }
    drop(conn);
    if let Some(done) = stop {
        let _ = done.send(());
    }
}

/// The connection's current `synchronous` setting, changed only between
/// transactions and only when a batch needs the other one.
struct SyncMode {
    full: bool,
}

impl SyncMode {
    fn set(&mut self, conn: &Connection, full: bool) -> Result<(), StoreError> {
        if self.full != full {
            let pragma = if full {
                "PRAGMA synchronous = FULL"
            } else {
                "PRAGMA synchronous = NORMAL"
            };
            conn.execute_batch(pragma)?;
            self.full = full;
        }
        Ok(())
    }
}

fn run_batch(conn: &Connection, batch: &mut [Box<dyn Job>]) -> Result<(), StoreError> {
    run_cached(conn, "BEGIN IMMEDIATE")?;
    for job in batch.iter_mut() {
        job.run(conn);
    }
    if let Err(err) = run_cached(conn, "COMMIT") {
        tracing::error!(error = %err, jobs = batch.len(), "commit failed; the batch is rolled back");
        let _ = conn.execute_batch("ROLLBACK");
        return Err(err);
    }
    Ok(())
}
