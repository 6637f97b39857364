//! WAL checkpoints beside the writer, not in its path.
//!
//! SQLite's automatic checkpoint runs inside the `COMMIT` that takes the
//! WAL past 1,000 pages: that commit then fsyncs the WAL, copies its pages
//! into the database and fsyncs the database, and the writer does nothing
//! else meanwhile (about 9% of its time in a profile, and a stall of two
//! fsyncs every few hundred webhooks).
//!
//! Here the writer's connection has no automatic checkpoint. Its WAL hook
//! counts the WAL's pages after each commit and, every 1,000 new
//! pages, wakes a thread of our own that runs a `PASSIVE` checkpoint on a
//! connection of its own: the copying and both fsyncs happen there, while
//! the writer goes on committing.
//!
//! A `PASSIVE` checkpoint copies only the pages committed before it began,
//! and the WAL starts over (its next frames written from the top of the
//! file) only when a write transaction begins with every page copied; a
//! writer that never pauses would so grow it without end. So once the WAL
//! holds 8,000 pages (32 MiB) the writer runs one `PASSIVE` checkpoint
//! itself between two batches: by then the thread has copied nearly all
//! of it, so that checkpoint copies only the last pages, and the next
//! transaction starts the WAL over. If the thread is checkpointing at that
//! moment, SQLite says busy: the thread then starts no other checkpoint
//! until the writer's has run, which it tries again after its next batch.
//! (Without that turn the writer rarely found the thread idle: its WAL
//! grew to 8,000 pages where it should have started over at 100, in the
//! unit test below.)
//!
//! Durability is SQLite's own: whichever connection checkpoints, SQLite
//! fsyncs the WAL before copying and the database before it counts the
//! pages as copied, and the WAL never starts over before that. A
//! checkpoint that fails (a full disk) leaves the pages in the WAL, which
//! stays the record; the next one tries again.

use std::os::raw::c_int;
use std::path::Path;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

use rusqlite::Connection;

use crate::store::StoreError;

/// When checkpoints run, in WAL pages (4 KiB each).
#[derive(Debug, Clone, Copy)]
pub(super) struct Thresholds {
    /// New pages after which the thread checkpoints.
    pub(super) copy_every: i32,
    /// Pages after which the writer itself checkpoints so that the WAL can
    /// start over.
    pub(super) restart_at: i32,
}

impl Thresholds {
    /// The thread every 1,000 pages (SQLite's default for its automatic
    /// checkpoint); the WAL starts over past 8,000 (32 MiB).
    pub(super) const DEFAULT: Thresholds = Thresholds {
        copy_every: 1000,
        restart_at: 8000,
    };
}

/// The checkpoint thread, and what the writer's WAL hook tells it.
pub(super) struct Checkpointer {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
    at: Thresholds,
    /// WAL pages before the writer's next try at a checkpoint of its own.
    retry_at: i32,
}

#[derive(Default)]
struct Shared {
    /// The WAL's pages after the writer's last commit.
    pages: AtomicI32,
    wanted: Mutex<Wanted>,
    wake: Condvar,
}

#[derive(Default)]
struct Wanted {
    checkpoint: bool,
    stop: bool,
    /// The writer waits to checkpoint itself: the thread holds off.
    writers_turn: bool,
}

impl Checkpointer {
    /// Starts the thread on a connection of its own to `path`, and hooks
    /// the writer's connection `writer` to it (which turns off SQLite's
    /// automatic checkpoint on that connection).
    pub(super) fn start(
        writer: &mut Connection,
        path: &Path,
        at: Thresholds,
    ) -> Result<Self, StoreError> {
        let conn = Connection::open(path)?;
        // The checkpoint's fsyncs: the WAL before copying, the database
        // after.
        conn.execute_batch("PRAGMA synchronous = NORMAL")?;
        let shared = Arc::new(Shared::default());
        let hook = shared.clone();
        let mut nudged_at = 0;
        writer.wal_hook(Some(move |_: &mut rusqlite::hooks::Wal, pages: c_int| {
            hook.pages.store(pages, Ordering::Relaxed);
            if pages < nudged_at {
                // The WAL started over.
                nudged_at = 0;
            }
            if pages - nudged_at >= at.copy_every {
                nudged_at = pages;
                hook.nudge();
            }
            Ok(())
        }))?;
        let state = shared.clone();
        let thread = std::thread::Builder::new()
            .name("sqlite-checkpoint".into())
            .spawn(move || run(&conn, &state))
            .map_err(|e| {
                StoreError::Database(format!("cannot start the checkpoint thread: {e}"))
            })?;
        Ok(Checkpointer {
            shared,
            thread: Some(thread),
            at,
            retry_at: at.restart_at,
        })
    }

    /// Between two batches: once the WAL holds `restart_at` pages, the
    /// writer's own checkpoint on `writer`, so that its next transaction
    /// starts the WAL over. Busy (the thread is checkpointing) is tried
    /// again after the next batch; a checkpoint that could not copy
    /// everything (a reader still on old pages) after another
    /// `copy_every` pages.
    pub(super) fn restart_if_due(&mut self, writer: &Connection) {
        let pages = self.shared.pages.load(Ordering::Relaxed);
        if pages < self.at.restart_at {
            self.retry_at = self.at.restart_at;
            return;
        }
        if pages < self.retry_at {
            return;
        }
        let outcome = passive(writer);
        if matches!(outcome, Ok(Outcome { busy: true, .. })) {
            // The thread is checkpointing: it starts no other until the
            // writer's turn is over, so the writer's next try gets through.
            self.shared.lock().writers_turn = true;
            return;
        }
        self.retry_at = pages + self.at.copy_every;
        self.shared.lock().writers_turn = false;
        self.shared.wake.notify_one();
        if let Err(err) = outcome {
            tracing::warn!(error = %err, "WAL checkpoint failed; the WAL keeps the pages and the next checkpoint tries again");
        }
    }

    /// Waits for a checkpoint under way to end, then stops the thread.
    pub(super) fn stop(mut self) {
        self.shared.lock().stop = true;
        self.shared.wake.notify_one();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        if self.thread.is_some() {
            self.shared.lock().stop = true;
            self.shared.wake.notify_one();
        }
    }
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Wanted> {
        self.wanted.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn nudge(&self) {
        self.lock().checkpoint = true;
        self.wake.notify_one();
    }
}

fn run(conn: &Connection, shared: &Shared) {
    loop {
        {
            let mut wanted = shared.lock();
            let due = |w: &Wanted| w.checkpoint && !w.writers_turn;
            while !due(&wanted) && !wanted.stop {
                wanted = shared.wake.wait(wanted).unwrap_or_else(|e| e.into_inner());
            }
            if wanted.stop {
                return;
            }
            wanted.checkpoint = false;
        }
        if let Err(err) = passive(conn) {
            tracing::warn!(error = %err, "WAL checkpoint failed; the WAL keeps the pages and the next checkpoint tries again");
        }
    }
}

/// How a `PASSIVE` checkpoint went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Outcome {
    /// Another checkpoint held the lock: nothing was done.
    pub(super) busy: bool,
    /// Pages in the WAL, and how many of them are now in the database.
    pub(super) pages: i64,
    pub(super) copied: i64,
}

/// Copies what the WAL holds into the database, without waiting for
/// anyone: SQLite reports a concurrent checkpoint as busy.
pub(super) fn passive(conn: &Connection) -> Result<Outcome, StoreError> {
    let (busy, pages, copied) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| {
        Ok((
            row.get::<_, i64>(0)?,
            row.get::<_, i64>(1)?,
            row.get::<_, i64>(2)?,
        ))
    })?;
    Ok(Outcome {
        busy: busy != 0,
        pages,
        copied,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMALL: Thresholds = Thresholds {
        copy_every: 20,
        restart_at: 100,
    };

    fn wal_pages(dir: &Path) -> u64 {
        let len = std::fs::metadata(dir.join("c.db-wal")).map_or(0, |m| m.len());
        len / 4096
    }

    /// A writer that never pauses, readers beside it: every commit
    /// succeeds, the WAL starts over again and again (its file stays
    /// small), and the database ends with every row.
    #[test]
    fn the_wal_starts_over_under_a_writer_that_never_pauses() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.db");
        let mut writer = Connection::open(&path).unwrap();
        writer
            .execute_batch(
                "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;
                 PRAGMA busy_timeout = 5000;
                 CREATE TABLE t (v INTEGER NOT NULL, pad BLOB NOT NULL)",
            )
            .unwrap();
        let mut checkpointer = Checkpointer::start(&mut writer, &path, SMALL).unwrap();
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let reader = {
            let (path, stop) = (path.clone(), stop.clone());
            std::thread::spawn(move || {
                let conn = Connection::open(&path).unwrap();
                conn.busy_timeout(std::time::Duration::from_secs(5))
                    .unwrap();
                let mut reads = 0;
                while !stop.load(Ordering::Relaxed) {
                    let _: Option<i64> = conn
                        .query_row("SELECT max(rowid) FROM t", [], |r| r.get(0))
                        .unwrap();
                    reads += 1;
                    std::thread::sleep(std::time::Duration::from_millis(1));
                }
                reads
            })
        };
        let (mut restarts, mut last, mut largest, mut total) = (0, 0, 0, 0);
        for v in 0..4000 {
            writer
                .execute("INSERT INTO t (v, pad) VALUES (?1, zeroblob(3000))", [v])
                .unwrap();
            let pages = checkpointer.shared.pages.load(Ordering::Relaxed);
            if pages < last {
                restarts += 1;
                total += pages;
            } else {
                total += pages - last;
            }
            last = pages;
            largest = largest.max(wal_pages(dir.path()));
            checkpointer.restart_if_due(&writer);
        }
        stop.store(true, Ordering::Relaxed);
        assert!(reader.join().unwrap() > 0);
        checkpointer.stop();
        // About 12,000 pages written in all; SQLite's automatic
        // checkpoint on the writer keeps its WAL at a few hundred.
        assert!(restarts >= 10, "the WAL started over {restarts} times");
        assert!(
            largest < 20 * SMALL.restart_at as u64,
            "the WAL grew to {largest} of {total} pages written"
        );
        let count: i64 = writer
            .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(count, 4000);
    }

    #[test]
    fn the_thread_copies_the_wal_into_the_database() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.db");
        let mut writer = Connection::open(&path).unwrap();
        writer
            .execute_batch("PRAGMA journal_mode = WAL; CREATE TABLE t (pad BLOB NOT NULL)")
            .unwrap();
        let checkpointer = Checkpointer::start(&mut writer, &path, SMALL).unwrap();
        for _ in 0..30 {
            writer
                .execute("INSERT INTO t (pad) VALUES (zeroblob(8000))", [])
                .unwrap();
        }
        // The thread was nudged past 20 pages; a checkpoint of our own
        // then finds the pages it copied (or is busy while it copies).
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        loop {
            let outcome = passive(&Connection::open(&path).unwrap()).unwrap();
            let db = std::fs::metadata(&path).unwrap().len();
            if !outcome.busy && db > 30 * 8000 {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{outcome:?}, {db} bytes"
            );
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        checkpointer.stop();
    }
}
