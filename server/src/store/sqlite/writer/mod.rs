//! The single writer thread and its group commit.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::Connection;
use tokio::sync::{mpsc, oneshot};

use crate::store::StoreError;

mod job;
mod sync;

pub(in crate::store::sqlite) use job::{Durability, Settle, Undo};
use job::{Job, TypedJob, run_cached};
use sync::{Committed, Syncer};

/// Most jobs one transaction takes; bounds latency under a flood.
const MAX_BATCH: usize = 4096;
/// How long a batch of [`Durability::Lazy`] jobs alone waits for company
/// before it commits by itself.
const LAZY_WAIT: Duration = Duration::from_millis(5);

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
        Self::start_with(conn, LAZY_WAIT)
    }

    /// [`Writer::start`] with another wait for lazy batches (tests).
    ///
    /// The connection commits with `synchronous=NORMAL` from here on: the
    /// fsync a durable batch needs is the syncer thread's (see `sync.rs`).
    fn start_with(conn: Connection, lazy_wait: Duration) -> Result<Writer, StoreError> {
        let wal = match conn.path() {
            Some(path) if !path.is_empty() => PathBuf::from(format!("{path}-wal")),
            _ => {
                return Err(StoreError::Database(
                    "the writer needs a database file, not an in-memory database".into(),
                ));
            }
        };
        conn.execute_batch("PRAGMA synchronous = NORMAL")?;
        let (msgs, rx) = mpsc::unbounded_channel();
        let failing = Arc::new(AtomicBool::new(false));
        let syncer = Syncer::start(wal, failing.clone())?;
        let health = failing.clone();
        let handle = std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || write_loop(conn, rx, &health, syncer, lazy_wait))
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
        self.submit_undo(durability, Undo::Job, work)
    }

    /// Like [`Writer::submit_with`], for the hot path: without a savepoint
    /// of its own (see [`Undo::Batch`]).
    pub(super) fn submit_hot<T, F>(
        &self,
        durability: Durability,
        work: F,
    ) -> impl Future<Output = Result<T, StoreError>> + Send + use<T, F>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        self.submit_undo(durability, Undo::Batch, work)
    }

    fn submit_undo<T, F>(
        &self,
        durability: Durability,
        undo: Undo,
        work: F,
    ) -> impl Future<Output = Result<T, StoreError>> + Send + use<T, F>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        self.submit_settled(durability, undo, move |c| {
            work(c).map(|value| (value, None))
        })
    }

    /// Like [`Writer::submit_with`], with the scope of a failure chosen by
    /// `undo`; the [`Settle`] that `work` may return learns whether its
    /// transaction committed before the caller does.
    pub(super) fn submit_settled<T, F>(
        &self,
        durability: Durability,
        undo: Undo,
        work: F,
    ) -> impl Future<Output = Result<T, StoreError>> + Send + use<T, F>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<(T, Option<Settle>), StoreError> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job = Box::new(TypedJob {
            durability,
            undo,
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

fn write_loop(
    conn: Connection,
    mut msgs: mpsc::UnboundedReceiver<Msg>,
    failing: &AtomicBool,
    mut syncer: Syncer,
    lazy_wait: Duration,
) {
    let mut batch: Vec<Box<dyn Job>> = Vec::with_capacity(64);
    let mut stop = None;
    // Only for the timed wait of lazy batches.
    let timer = match tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
    {
        Ok(timer) => Some(timer),
        Err(err) => {
            tracing::warn!(error = %err, "no timer for the writer: acks commit without waiting for company");
            None
        }
    };
    while stop.is_none() {
        match msgs.blocking_recv() {
            Some(Msg::Job(job)) => batch.push(job),
            Some(Msg::Stop(done)) => stop = Some(done),
            None => break,
        }
        take_queued(&mut msgs, &mut batch, &mut stop);
        if let Some(timer) = &timer {
            wait_for_company(timer, lazy_wait, &mut msgs, &mut batch, &mut stop);
        }
        if batch.is_empty() {
            continue;
        }
        let durable = batch
            .iter()
            .any(|job| job.durability() == Durability::Fsync);
        let commit = run_batch(&conn, &mut batch);
        if durable && commit.is_ok() {
            crate::metrics::commit_batch(batch.len());
        }
        failing.store(commit.is_err(), Ordering::Relaxed);
        let jobs = std::mem::replace(&mut batch, Vec::with_capacity(64));
        syncer.finish(Committed {
            jobs,
            commit,
            durable,
        });
    }
    // Everything committed is answered before the checkpoint and the stop.
    syncer.stop();
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

/// Adds every job already queued to the batch, up to [`MAX_BATCH`].
fn take_queued(
    msgs: &mut mpsc::UnboundedReceiver<Msg>,
    batch: &mut Vec<Box<dyn Job>>,
    stop: &mut Option<oneshot::Sender<()>>,
) {
    while stop.is_none() && batch.len() < MAX_BATCH {
        match msgs.try_recv() {
            Ok(Msg::Job(job)) => batch.push(job),
            Ok(Msg::Stop(done)) => *stop = Some(done),
            Err(_) => break,
        }
    }
}

/// A batch of [`Durability::Lazy`] jobs only waits up to `wait` (see
/// [`LAZY_WAIT`]) for more; the first job someone waits on ends the wait.
fn wait_for_company(
    timer: &tokio::runtime::Runtime,
    wait: Duration,
    msgs: &mut mpsc::UnboundedReceiver<Msg>,
    batch: &mut Vec<Box<dyn Job>>,
    stop: &mut Option<oneshot::Sender<()>>,
) {
    let lazy = |batch: &[Box<dyn Job>]| {
        !batch.is_empty() && batch.iter().all(|j| j.durability() == Durability::Lazy)
    };
    if !lazy(batch) {
        return;
    }
    let deadline = tokio::time::Instant::now() + wait;
    while stop.is_none() && batch.len() < MAX_BATCH && lazy(batch) {
        // The timeout is made inside `block_on`: its timer needs the runtime.
        let next = timer.block_on(async { tokio::time::timeout_at(deadline, msgs.recv()).await });
        match next {
            Ok(Some(Msg::Job(job))) => batch.push(job),
            Ok(Some(Msg::Stop(done))) => *stop = Some(done),
            Ok(None) | Err(_) => return,
        }
    }
    take_queued(msgs, batch, stop);
}

fn run_batch(conn: &Connection, batch: &mut [Box<dyn Job>]) -> Result<(), StoreError> {
    run_cached(conn, "BEGIN IMMEDIATE")?;
    for job in batch.iter_mut() {
        if let Err(err) = job.run(conn) {
            tracing::error!(error = %err, jobs = batch.len(), "a write failed; the batch is rolled back");
            // The failure may have ended the transaction already.
            let _ = conn.execute_batch("ROLLBACK");
            return Err(err);
        }
    }
    if let Err(err) = run_cached(conn, "COMMIT") {
        tracing::error!(error = %err, jobs = batch.len(), "commit failed; the batch is rolled back");
        let _ = conn.execute_batch("ROLLBACK");
        return Err(err);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A writer over a fresh table `t(v)`, and a way to read it back.
    fn writer() -> (Writer, tempfile::TempDir) {
        writer_with(LAZY_WAIT)
    }

    fn writer_with(lazy_wait: Duration) -> (Writer, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let conn = Connection::open(dir.path().join("w.db")).unwrap();
        conn.execute_batch("PRAGMA journal_mode = WAL; CREATE TABLE t (v INTEGER NOT NULL)")
            .unwrap();
        (Writer::start_with(conn, lazy_wait).unwrap(), dir)
    }

    /// A job that notes when it runs and when its batch has settled.
    fn noted(
        writer: &Writer,
        durability: Durability,
        name: &'static str,
        log: &Arc<Mutex<Vec<String>>>,
    ) -> impl Future<Output = Result<(), StoreError>> + use<> {
        let log = log.clone();
        writer.submit_settled(durability, Undo::Batch, move |_| {
            log.lock().unwrap().push(format!("run {name}"));
            let settle: Settle =
                Box::new(move |_| log.lock().unwrap().push(format!("settled {name}")));
            Ok(((), Some(settle)))
        })
    }

    #[tokio::test]
    async fn lazy_jobs_wait_for_the_next_job_and_commit_with_it() {
        let (writer, _dir) = writer_with(Duration::from_secs(30));
        let log = Arc::new(Mutex::new(Vec::new()));
        let started = std::time::Instant::now();
        let ack = noted(&writer, Durability::Lazy, "ack", &log);
        // Long enough for the writer to have taken the ack alone.
        tokio::time::sleep(Duration::from_millis(50)).await;
        let ingest = noted(&writer, Durability::Fsync, "ingest", &log);
        let (ack, ingest) = tokio::join!(ack, ingest);
        ack.unwrap();
        ingest.unwrap();
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the ingest ended the wait"
        );
        assert_eq!(
            *log.lock().unwrap(),
            ["run ack", "run ingest", "settled ack", "settled ingest"],
            "one batch"
        );
        writer.close().await;
    }

    #[tokio::test]
    async fn lazy_jobs_alone_commit_after_the_wait() {
        let (writer, dir) = writer_with(Duration::from_millis(20));
        writer
            .submit_settled(Durability::Lazy, Undo::Batch, |c| {
                insert(5)(c).map(|()| ((), None))
            })
            .await
            .unwrap();
        assert_eq!(values(&dir), vec![5]);
        writer.close().await;
    }

    fn values(dir: &tempfile::TempDir) -> Vec<i64> {
        let conn = Connection::open(dir.path().join("w.db")).unwrap();
        let mut stmt = conn.prepare("SELECT v FROM t ORDER BY v").unwrap();
        stmt.query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    fn insert(v: i64) -> impl FnOnce(&Connection) -> Result<(), StoreError> {
        move |c| {
            c.execute("INSERT INTO t (v) VALUES (?1)", [v])?;
            Ok(())
        }
    }

    /// Writes `v`, then fails halfway (NULL into a NOT NULL column).
    fn insert_then_fail(v: i64) -> impl FnOnce(&Connection) -> Result<(), StoreError> {
        move |c| {
            insert(v)(c)?;
            c.execute("INSERT INTO t (v) VALUES (NULL)", [])?;
            Ok(())
        }
    }

    type Work = Box<dyn FnOnce(&Connection) -> Result<(), StoreError> + Send>;

    /// Runs `jobs` as one batch: the writer is held inside a first job
    /// until all of them are queued (they join its batch or make the next
    /// one; either way they share one).
    async fn one_batch(writer: &Writer, jobs: Vec<(Undo, Work)>) -> Vec<Result<(), StoreError>> {
        let (queued, wait) = std::sync::mpsc::channel::<()>();
        let gate = writer.submit(move |_| {
            let _ = wait.recv();
            Ok(())
        });
        let answers: Vec<_> = jobs
            .into_iter()
            .map(|(undo, work)| {
                writer.submit_settled(Durability::Fsync, undo, move |c| {
                    work(c).map(|()| ((), None))
                })
            })
            .collect();
        queued.send(()).unwrap();
        // The gate shares a batch with the jobs if the writer took them
        // before it started the gate: then it fails with them.
        let _ = gate.await;
        futures_util::future::join_all(answers).await
    }

    #[tokio::test]
    async fn a_hot_job_that_fails_rolls_back_its_whole_batch() {
        let (writer, dir) = writer();
        let answers = one_batch(
            &writer,
            vec![
                (Undo::Batch, Box::new(insert(1))),
                (Undo::Batch, Box::new(insert_then_fail(2))),
                (Undo::Job, Box::new(insert(3))),
            ],
        )
        .await;
        assert!(answers.iter().all(Result::is_err), "{answers:?}");
        assert_eq!(values(&dir), Vec::<i64>::new());
        // The writer goes on with the next batch.
        writer.submit(insert(4)).await.unwrap();
        assert_eq!(values(&dir), vec![4]);
        writer.close().await;
    }

    #[tokio::test]
    async fn a_job_with_a_savepoint_fails_alone() {
        let (writer, dir) = writer();
        let answers = one_batch(
            &writer,
            vec![
                (Undo::Batch, Box::new(insert(1))),
                (Undo::Job, Box::new(insert_then_fail(2))),
                (Undo::Batch, Box::new(insert(3))),
            ],
        )
        .await;
        let ok: Vec<bool> = answers.iter().map(Result::is_ok).collect();
        assert_eq!(ok, vec![true, false, true]);
        assert_eq!(
            values(&dir),
            vec![1, 3],
            "the failed job's own write is undone"
        );
        writer.close().await;
    }
}
