//! What the writer runs: jobs, how much each commit must survive, and what
//! a failure undoes.

use rusqlite::Connection;
use tokio::sync::oneshot;

use crate::store::StoreError;

/// How much a job's commit must survive.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(in crate::store::sqlite) enum Durability {
    /// On disk before the caller hears back (the WAL synced after the
    /// commit, as `synchronous=FULL` would: see `sync.rs`): accepted
    /// events, nacks, admin changes.
    Fsync,
    /// Survives a crash of the process but maybe not of the machine
    /// (`synchronous=NORMAL` in WAL mode). For leases, acks and `last_seen`:
    /// losing one only means an event is delivered again. The next fsync'd
    /// commit makes it durable too, since WAL frames are synced in order.
    Relaxed,
    /// Like `Relaxed`, for writes no one waits on (acks, `last_seen`): a
    /// batch of only these waits up to [`LAZY_WAIT`](super::LAZY_WAIT) for other jobs and
    /// commits with them. Acks would otherwise cost a commit of their own
    /// between two ingest commits, rewriting the same pages: at 3,000
    /// events/s the writer made about one commit per two events.
    Lazy,
}

/// What a job's failure undoes.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(in crate::store::sqlite) enum Undo {
    /// Only the job's own writes: it runs inside a savepoint, so a failure
    /// that is an answer (a name taken, a row missing) leaves the rest of
    /// the batch to commit. A savepoint has SQLite copy every page the job
    /// changes into its statement journal first.
    Job,
    /// The whole batch: no savepoint. For the hot path (an event stored, a
    /// lease, acks), whose writes fail only when the database does (a full
    /// disk, an I/O error), when the batch would not commit anyway. Every
    /// job in the batch then fails and its settle hears `false`.
    Batch,
}

/// A write waiting for the writer thread.
pub(super) trait Job: Send {
    fn durability(&self) -> Durability;
    /// Runs inside the open transaction; the result is kept until commit.
    /// `Err` means the batch must be rolled back: the job has no savepoint
    /// and failed halfway.
    fn run(&mut self, conn: &Connection) -> Result<(), StoreError>;
    /// Answers the caller once the transaction's fate is known.
    fn finish(self: Box<Self>, commit: Result<(), StoreError>);
}

/// Told, on the writer thread and in job order, whether the transaction
/// holding a job's work committed: for effects outside the database that
/// must follow it (a pushed event, slots to give back).
pub(in crate::store::sqlite) type Settle = Box<dyn FnOnce(bool) + Send>;

pub(super) struct TypedJob<T, F> {
    pub(super) durability: Durability,
    pub(super) undo: Undo,
    pub(super) work: Option<F>,
    pub(super) result: Option<Result<(T, Option<Settle>), StoreError>>,
    pub(super) reply: oneshot::Sender<Result<T, StoreError>>,
}

impl<T, F> Job for TypedJob<T, F>
where
    T: Send,
    F: FnOnce(&Connection) -> Result<(T, Option<Settle>), StoreError> + Send,
{
    fn durability(&self) -> Durability {
        self.durability
    }

    fn run(&mut self, conn: &Connection) -> Result<(), StoreError> {
        let Some(work) = self.work.take() else {
            return Ok(());
        };
        let result = match self.undo {
            Undo::Job => in_savepoint(conn, work),
            Undo::Batch => work(conn),
        };
        let poisoned = match (&result, self.undo) {
            (Err(err), Undo::Batch) => Err(err.clone()),
            _ => Ok(()),
        };
        self.result = Some(result);
        poisoned
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
pub(super) fn run_cached(conn: &Connection, sql: &str) -> Result<(), StoreError> {
    conn.prepare_cached(sql)?.execute([])?;
    Ok(())
}
