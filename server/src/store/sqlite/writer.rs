//! The single writer thread and its group commit.

use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use rusqlite::Connection;
use tokio::sync::{mpsc, oneshot};

use crate::store::StoreError;

/// Most jobs one transaction takes; bounds latency under a flood.
const MAX_BATCH: usize = 4096;

/// A write waiting for the writer thread.
trait Job: Send {
    /// Runs inside the open transaction; the result is kept until commit.
    fn run(&mut self, conn: &Connection);
    /// Answers the caller once the transaction's fate is known.
    fn finish(self: Box<Self>, commit: Result<(), StoreError>);
}

struct TypedJob<T, F> {
    work: Option<F>,
    result: Option<Result<T, StoreError>>,
    reply: oneshot::Sender<Result<T, StoreError>>,
}

impl<T, F> Job for TypedJob<T, F>
where
    T: Send,
    F: FnOnce(&Connection) -> Result<T, StoreError> + Send,
{
    fn run(&mut self, conn: &Connection) {
        if let Some(work) = self.work.take() {
            self.result = Some(in_savepoint(conn, work));
        }
    }

    fn finish(self: Box<Self>, commit: Result<(), StoreError>) {
        let answer = match (commit, self.result) {
            (Ok(()), Some(result)) => result,
            (Err(err), _) => Err(err),
            (Ok(()), None) => Err(StoreError::Database("job was not run".into())),
        };
        let _ = self.reply.send(answer);
    }
}

/// One job's failure rolls back only that job, not the batch it shares.
fn in_savepoint<T>(
    conn: &Connection,
    work: impl FnOnce(&Connection) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    conn.execute_batch("SAVEPOINT job")?;
    let result = work(conn);
    match &result {
        Ok(_) => conn.execute_batch("RELEASE job")?,
        Err(_) => conn.execute_batch("ROLLBACK TO job; RELEASE job")?,
    }
    result
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
}

impl Writer {
    pub(super) fn start(conn: Connection) -> Result<Writer, StoreError> {
        let (msgs, rx) = mpsc::unbounded_channel();
        let handle = std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || write_loop(conn, rx))
            .map_err(|e| StoreError::Database(format!("cannot start the writer thread: {e}")))?;
        Ok(Writer {
            msgs,
            thread: Arc::new(Mutex::new(Some(handle))),
        })
    }

    /// Queues `work` now (so jobs keep the caller's order) and resolves with
    /// its result once the transaction holding it has committed.
    pub(super) fn submit<T, F>(
        &self,
        work: F,
    ) -> impl Future<Output = Result<T, StoreError>> + Send + use<T, F>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job = Box::new(TypedJob {
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

fn write_loop(conn: Connection, mut msgs: mpsc::UnboundedReceiver<Msg>) {
    let mut batch: Vec<Box<dyn Job>> = Vec::with_capacity(64);
    let mut stop = None;
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
        let commit = run_batch(&conn, &mut batch);
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

fn run_batch(conn: &Connection, batch: &mut [Box<dyn Job>]) -> Result<(), StoreError> {
    conn.execute_batch("BEGIN IMMEDIATE")?;
    for job in batch.iter_mut() {
        job.run(conn);
    }
    if let Err(err) = conn.execute_batch("COMMIT") {
        tracing::error!(error = %err, jobs = batch.len(), "commit failed; the batch is rolled back");
        let _ = conn.execute_batch("ROLLBACK");
        return Err(err.into());
    }
    Ok(())
}
