//! The fsync behind the writer: committed batches wait here for the WAL to
//! reach the disk, while the writer goes on with the next batch.
//!
//! Measured with `lobster-bench store` (64 webhooks in flight, one
//! session acking): 7,000–7,500 events/s stored and delivered with the
//! fsync inside `COMMIT`, 10,800–11,100 with one fsync thread, 12,100 with
//! three; with 16 in flight 2,700 → 6,800/s. The pass that moved the fsync
//! off the writer: "Issue 13, eighth pass" in docs/performance-history.md.
//!
//! The writer commits with `synchronous=NORMAL`: SQLite writes the
//! transaction's WAL frames and returns without an fsync. A batch that
//! holds a job wanting [`Durability::Fsync`](super::Durability::Fsync) is
//! then handed to these threads: one of them calls `fdatasync` on the WAL
//! file, and only afterwards are the batch's jobs answered (and their
//! settles run, which push stored events to sessions). One fsync covers
//! every batch committed before it began, so batches that commit while
//! every thread is syncing share the next one; and the writer's next
//! transaction no longer waits for the disk: commits and the disk's
//! flushes overlap.
//!
//! Why this is as safe as `synchronous=FULL`: `fdatasync` on any handle of
//! a file flushes all of that file's data written before it, and the WAL
//! frames of a committed transaction are written (to the page cache)
//! before `COMMIT` returns, so once the fsync returns the transaction is on
//! disk as it would be after a `FULL` commit. What `NORMAL` leaves out, the
//! fsync at each commit, these threads do; SQLite itself still syncs the
//! WAL before each checkpoint copies it into the database. Nothing is
//! answered before its fsync: a caller told "stored" can rely on it across
//! a power cut.
//!
//! Answers keep the order of their batches: a batch that needs no fsync
//! (acks, leases) waits behind earlier ones that do, so a lease never
//! hands out an event whose insert is not yet on disk.

use std::collections::{BTreeMap, VecDeque};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;

use super::job::Job;
use crate::store::StoreError;

/// A committed (or failed) batch, waiting to be answered.
pub(super) struct Committed {
    pub(super) jobs: Vec<Box<dyn Job>>,
    /// The commit's outcome.
    pub(super) commit: Result<(), StoreError>,
    /// Whether a job of the batch is answered only once on disk.
    pub(super) durable: bool,
}

/// The writer's end of the fsync threads.
pub(super) struct Syncer {
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
}

/// Fsyncs under way at once, at most. One `fdatasync` of the WAL takes a
/// few milliseconds (the device's flush), and on ext4 several issued
/// together finish in about the time of one: a batch committed while an
/// fsync is under way starts its own at once instead of waiting for it.
const SYNC_THREADS: usize = 3;

struct Shared {
    wal: PathBuf,
    /// The WAL's handle, opened at the first sync (see [`wal_file`]).
    file: std::sync::OnceLock<File>,
    queue: Mutex<Queue>,
    arrived: Condvar,
    /// Held while answering: batches are answered in commit order.
    answering: Mutex<()>,
    failing: Arc<AtomicBool>,
    /// Batches handed over and not yet answered.
    waiting: AtomicUsize,
}

#[derive(Default)]
struct Queue {
    /// Committed batches no thread has taken yet, numbered in commit order.
    batches: VecDeque<(u64, Committed)>,
    next: u64,
    /// Synced (or failed) batches waiting for an earlier one.
    done: BTreeMap<u64, (Committed, Result<(), StoreError>)>,
    next_answer: u64,
    closed: bool,
}

impl Syncer {
    /// Starts the threads that sync the WAL at `wal` (the database's path
    /// with `-wal` appended); `failing` is raised when an fsync fails.
    pub(super) fn start(wal: PathBuf, failing: Arc<AtomicBool>) -> Result<Syncer, StoreError> {
        let shared = Arc::new(Shared {
            wal,
            file: std::sync::OnceLock::new(),
            queue: Mutex::new(Queue::default()),
            arrived: Condvar::new(),
            answering: Mutex::new(()),
            failing,
            waiting: AtomicUsize::new(0),
        });
        let mut syncer = Syncer {
            shared: shared.clone(),
            threads: Vec::new(),
        };
        for _ in 0..SYNC_THREADS {
            let shared = shared.clone();
            let thread = std::thread::Builder::new()
                .name("sqlite-sync".into())
                .spawn(move || shared.run())
                .map_err(|e| StoreError::Database(format!("cannot start an fsync thread: {e}")))?;
            syncer.threads.push(thread);
        }
        Ok(syncer)
    }

    /// Answers the batch: at once when it needs no fsync and nothing
    /// before it is still waiting for one, otherwise after its fsync.
    pub(super) fn finish(&self, batch: Committed) {
        let alone = !batch.durable || batch.commit.is_err();
        if alone && self.shared.waiting.load(Ordering::Acquire) == 0 {
            answer(batch.jobs, &batch.commit);
            return;
        }
        let mut queue = self.shared.lock();
        if queue.closed {
            drop(queue);
            answer(batch.jobs, &Err(StoreError::Closed));
            return;
        }
        self.shared.waiting.fetch_add(1, Ordering::AcqRel);
        let number = queue.next;
        queue.next += 1;
        queue.batches.push_back((number, batch));
        drop(queue);
        self.shared.arrived.notify_one();
    }

    /// Answers everything handed over so far, then stops the threads.
    pub(super) fn stop(&mut self) {
        self.shared.lock().closed = true;
        self.shared.arrived.notify_all();
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

impl Drop for Syncer {
    fn drop(&mut self) {
        self.stop();
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// One fsync thread: takes every batch waiting, syncs once for all of
    /// them, and answers whatever is next in commit order.
    fn run(&self) {
        loop {
            let mut queue = self.lock();
            while queue.batches.is_empty() && !queue.closed {
                queue = self.arrived.wait(queue).unwrap_or_else(|e| e.into_inner());
            }
            if queue.batches.is_empty() {
                return;
            }
            // Every batch committed by now is in the page cache: one fsync
            // makes all of them durable.
            let group: Vec<(u64, Committed)> = queue.batches.drain(..).collect();
            drop(queue);
            let synced = if group.iter().any(|(_, b)| b.durable && b.commit.is_ok()) {
                self.sync()
            } else {
                Ok(())
            };
            if let Err(err) = &synced {
                tracing::error!(error = %err, batches = group.len(), "fsync of the WAL failed; its writes are answered as failed");
                self.failing.store(true, Ordering::Relaxed);
            }
            let mut queue = self.lock();
            for (number, batch) in group {
                queue.done.insert(number, (batch, synced.clone()));
            }
            let mut ready = Vec::new();
            loop {
                let next = queue.next_answer;
                let Some(entry) = queue.done.remove(&next) else {
                    break;
                };
                ready.push(entry);
                queue.next_answer += 1;
            }
            // Taken before the queue is let go: a thread that drains later
            // batches answers after this one.
            let answering = self.answering.lock().unwrap_or_else(|e| e.into_inner());
            drop(queue);
            for (batch, synced) in ready {
                answer(batch.jobs, &batch.commit.and(synced));
                self.waiting.fetch_sub(1, Ordering::AcqRel);
            }
            drop(answering);
        }
    }

    /// `fdatasync` on the WAL.
    fn sync(&self) -> Result<(), StoreError> {
        let io = |e: std::io::Error| {
            StoreError::Database(format!("fsync of {}: {e}", self.wal.display()))
        };
        let file = match self.file.get() {
            Some(file) => file,
            None => {
                let opened = wal_file(&self.wal).map_err(io)?;
                self.file.get_or_init(|| opened)
            }
        };
        file.sync_data().map_err(io)
    }
}

fn answer(jobs: Vec<Box<dyn Job>>, outcome: &Result<(), StoreError>) {
    for job in jobs {
        job.finish(outcome.clone());
    }
}

/// The WAL, opened once (the WAL exists once a transaction has committed)
/// and kept: SQLite reuses the file while the writer's connection is open,
/// from its start after a checkpoint, and never replaces it. Kept also
/// because Linux reports a failed write-back once to each handle open at
/// the time: a new handle would not hear of it. Its directory is synced
/// once, so that the file's entry survives a power cut too.
fn wal_file(wal: &Path) -> std::io::Result<File> {
    let file = File::open(wal)?;
    let dir = wal
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    File::open(dir)?.sync_all()?;
    Ok(file)
}

#[cfg(test)]
mod tests {
    use rusqlite::Connection;

    use super::super::Durability;
    use super::*;

    /// A job that notes, when answered, its name and whether it was stored.
    struct Noted {
        name: usize,
        log: Arc<Mutex<Vec<(usize, bool)>>>,
    }

    impl Job for Noted {
        fn durability(&self) -> Durability {
            Durability::Fsync
        }

        fn run(&mut self, _: &Connection) -> Result<(), StoreError> {
            Ok(())
        }

        fn finish(self: Box<Self>, commit: Result<(), StoreError>) {
            self.log.lock().unwrap().push((self.name, commit.is_ok()));
        }
    }

    fn batch(name: usize, durable: bool, log: &Arc<Mutex<Vec<(usize, bool)>>>) -> Committed {
        let log = log.clone();
        Committed {
            jobs: vec![Box::new(Noted { name, log })],
            commit: Ok(()),
            durable,
        }
    }

    /// Batches needing an fsync and batches needing none, handed over as
    /// fast as the writer can: every one is answered, in commit order,
    /// whichever thread synced it.
    #[test]
    fn batches_are_answered_in_commit_order() {
        let dir = tempfile::tempdir().unwrap();
        let wal = dir.path().join("relay.db-wal");
        std::fs::write(&wal, b"frames").unwrap();
        let failing = Arc::new(AtomicBool::new(false));
        let mut syncer = Syncer::start(wal, failing.clone()).unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        for name in 0..300 {
            syncer.finish(batch(name, name % 3 != 2, &log));
        }
        syncer.stop();
        let answered = log.lock().unwrap().clone();
        let expected: Vec<(usize, bool)> = (0..300).map(|name| (name, true)).collect();
        assert_eq!(answered, expected);
        assert!(!failing.load(Ordering::Relaxed));
    }

    /// A batch whose fsync fails is answered with the failure, not as
    /// stored, and the store reports itself failing.
    #[test]
    fn a_failed_fsync_fails_its_batch() {
        let dir = tempfile::tempdir().unwrap();
        let wal = dir.path().join("gone").join("relay.db-wal");
        let failing = Arc::new(AtomicBool::new(false));
        let mut syncer = Syncer::start(wal, failing.clone()).unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        syncer.finish(batch(0, true, &log));
        syncer.stop();
        assert_eq!(*log.lock().unwrap(), [(0, false)]);
        assert!(failing.load(Ordering::Relaxed));
    }

    /// Handed over after the stop, a batch is answered as not stored.
    #[test]
    fn a_stopped_syncer_answers_closed() {
        let dir = tempfile::tempdir().unwrap();
        let failing = Arc::new(AtomicBool::new(false));
        let mut syncer = Syncer::start(dir.path().join("relay.db-wal"), failing).unwrap();
        syncer.stop();
        let log = Arc::new(Mutex::new(Vec::new()));
        syncer.finish(batch(0, true, &log));
        assert_eq!(*log.lock().unwrap(), [(0, false)]);
    }
}
