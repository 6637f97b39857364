//! Replay protection on SQLite: the dedup keys of the last ten minutes,
//! looked up in memory, kept on disk in each event's own row.
//!
//! The keys used to be a table of their own, keyed by (agent, key). A key
//! is a signature's message id or a hash of the body: random, so every
//! insert landed on a different leaf of that B-tree, and each leaf became a
//! WAL frame of its own, written again by the next checkpoint. That one
//! insert was more than half of the writer's work per webhook (measured:
//! 15.8 KB written per event with it, 5.8 KB without; docs/performance-history.md).
//!
//! Now an event's row carries its key's 128-bit hash and the end of its
//! window (`dedup_key`, `dedup_until`, schema 8), written with the row in
//! the same page, and the writer thread looks keys up in [`Recent`]. At
//! start-up `Recent` is filled from the rows still in their window
//! (through the partial index `events_dedup`, which covers the two columns
//! and grows in window order: one appended entry per event), and from the
//! `dedup` table, which now holds only keys whose event the sweep
//! deleted inside their window (a `--retention` under ten minutes) and the
//! keys of databases written before schema 8.
//!
//! Memory: an entry is the key's hash, the event's row number and the end
//! of its window (about 55 bytes with the map's and the queue's overhead,
//! twice that while the map grows): 33 MB at a sustained 1,000 webhooks a
//! second. Entries leave as their window ends. A duplicate is rare, so the
//! original event's id is read from its row only then.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use rusqlite::{Connection, OptionalExtension as _, params};
use sha2::{Digest as _, Sha256};

use super::writer::Settle;
use crate::store::{Millis, StoreError};

/// Prefix of `dedup.key` for keys the table holds as their hash.
const HASHED: &str = "h:";

/// The hash an agent's dedup key is known by.
pub(super) fn key_hash(agent_id: &str, key: &str) -> u128 {
    let digest = Sha256::new()
        .chain_update(agent_id.as_bytes())
        .chain_update([0u8])
        .chain_update(key.as_bytes())
        .finalize();
    let mut first = [0u8; 16];
    first.copy_from_slice(&digest[..16]);
    u128::from_be_bytes(first)
}

/// The form of a hash in the `dedup` table's `key` column (the sweep
/// writes it in SQL: `'h:' || lower(hex(dedup_key))`).
fn hashed_key(hash: u128) -> String {
    format!("{HASHED}{hash:032x}")
}

/// The id of the event that [`Recent::find`] answered for this agent's
/// `key`: from its row, else from the `dedup` table; `None` if neither
/// holds it any more.
pub(super) fn original_id(
    c: &Connection,
    seq: i64,
    agent_id: &str,
    key: &str,
    hash: u128,
) -> Result<Option<String>, StoreError> {
    if seq != IN_TABLE {
        let id = c
            .prepare_cached("SELECT id FROM events WHERE seq = ?1")?
            .query_row(params![seq], |r| r.get(0))
            .optional()?;
        if id.is_some() {
            return Ok(id);
        }
    }
    Ok(c.prepare_cached(
        "SELECT event_id FROM dedup WHERE agent_id = ?1 AND key IN (?2, ?3)
             ORDER BY expires_at DESC LIMIT 1",
    )?
    .query_row(params![agent_id, key, hashed_key(hash)], |r| r.get(0))
    .optional()?)
}

/// The keys whose window is open, and the event each one names.
#[derive(Default)]
pub(super) struct Recent {
    seen: HashMap<u128, Seen>,
    /// Keys in insertion order (so in order of their windows' ends), to
    /// let them go as their windows end.
    order: VecDeque<u128>,
}

#[derive(Clone, Copy)]
struct Seen {
    /// The event's row (`events.seq`); [`IN_TABLE`] for a key read from
    /// the `dedup` table, whose row names the event.
    seq: i64,
    until: Millis,
}

/// [`Seen::seq`] of a key whose event the `dedup` table names.
pub(super) const IN_TABLE: i64 = 0;

/// [`Recent`] shared by the writer thread's jobs and their settles.
#[derive(Clone, Default)]
pub(super) struct SharedRecent(Arc<Mutex<Recent>>);

impl SharedRecent {
    pub(super) fn lock(&self) -> MutexGuard<'_, Recent> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Reads the keys still in their window at `now`: from the `dedup`
    /// table, then from the events' rows.
    pub(super) fn load(conn: &Connection, now: Millis) -> Result<Self, StoreError> {
        let mut recent = Recent::default();
        let mut table =
            conn.prepare("SELECT agent_id, key, expires_at FROM dedup WHERE expires_at > ?1")?;
        let rows = table.query_map(params![now], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, Millis>(2)?,
            ))
        })?;
        for row in rows {
            let (agent_id, key, until) = row?;
            let hash = key
                .strip_prefix(HASHED)
                .and_then(|hex| u128::from_str_radix(hex, 16).ok())
                .unwrap_or_else(|| key_hash(&agent_id, &key));
            recent.remember(hash, IN_TABLE, until);
        }
        // Through the partial index `events_dedup`, in window order: a key
        // given twice keeps its latest event.
        let mut events = conn.prepare(
            "SELECT dedup_key, seq, dedup_until FROM events
             WHERE dedup_key IS NOT NULL AND dedup_until > ?1 ORDER BY dedup_until",
        )?;
        let mut rows = events.query(params![now])?;
        while let Some(row) = rows.next()? {
            let key: Vec<u8> = row.get(0)?;
            if let Ok(bytes) = <[u8; 16]>::try_from(key.as_slice()) {
                recent.remember(u128::from_be_bytes(bytes), row.get(1)?, row.get(2)?);
            }
        }
        Ok(SharedRecent(Arc::new(Mutex::new(recent))))
    }
}

impl Recent {
    /// The row of the event that `hash` names ([`IN_TABLE`]: the `dedup`
    /// table's), if its window is still open at `now`.
    pub(super) fn find(&mut self, hash: u128, now: Millis) -> Option<i64> {
        self.forget_ended(now);
        self.seen
            .get(&hash)
            .filter(|seen| seen.until > now)
            .map(|seen| seen.seq)
    }

    /// `hash` names the event in row `seq` until `until`.
    pub(super) fn remember(&mut self, hash: u128, seq: i64, until: Millis) {
        self.seen.insert(hash, Seen { seq, until });
        self.order.push_back(hash);
    }

    /// Undoes [`Recent::remember`] of row `seq` (its insert rolled back).
    fn forget(&mut self, hash: u128, seq: i64) {
        if self.seen.get(&hash).is_some_and(|seen| seen.seq == seq) {
            self.seen.remove(&hash);
        }
    }

    /// Lets keys go from the front while their windows have ended. A key
    /// given again after its window sits at the front until its new window
    /// ends too, holding back the keys behind it at most that long.
    fn forget_ended(&mut self, now: Millis) {
        while let Some(&hash) = self.order.front() {
            match self.seen.get(&hash) {
                Some(seen) if seen.until > now => break,
                Some(_) => {
                    self.seen.remove(&hash);
                }
                None => {}
            }
            self.order.pop_front();
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.seen.len()
    }
}

/// `settle`, and then, if the insert that remembered `hash` for row `seq`
/// rolled back, forgetting it: a sender's retry must not be called a
/// duplicate of an event that was never stored.
pub(super) fn forget_unless_committed(
    recent: SharedRecent,
    hash: u128,
    seq: i64,
    settle: Option<Settle>,
) -> Settle {
    Box::new(move |committed| {
        if !committed {
            recent.lock().forget(hash, seq);
        }
        if let Some(settle) = settle {
            settle(committed);
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_names_its_event_until_its_window_ends() {
        let mut recent = Recent::default();
        let hash = key_hash("agt_1", "msg_1");
        recent.remember(hash, 1, 1_000);
        assert_eq!(recent.find(hash, 999), Some(1));
        assert_eq!(recent.find(hash, 1_000), None);
        assert_eq!(recent.len(), 0, "an ended window frees its entry");
    }

    #[test]
    fn keys_are_per_agent() {
        assert_ne!(key_hash("agt_1", "msg"), key_hash("agt_2", "msg"));
        // The separator keeps ("ab", "c") and ("a", "bc") apart.
        assert_ne!(key_hash("ab", "c"), key_hash("a", "bc"));
    }

    #[test]
    fn a_key_given_again_after_its_window_keeps_its_new_event() {
        let mut recent = Recent::default();
        let hash = key_hash("agt_1", "k");
        let other = key_hash("agt_1", "other");
        recent.remember(hash, 1, 1_000);
        recent.remember(other, 2, 1_200);
        assert_eq!(recent.find(hash, 1_500), None);
        recent.remember(hash, 3, 2_500);
        // The old entry's end passes without taking the new one.
        assert_eq!(recent.find(hash, 2_000), Some(3));
        assert_eq!(recent.len(), 1, "the other key's window ended");
        assert_eq!(recent.find(hash, 2_500), None);
        assert_eq!(recent.len(), 0);
    }

    #[test]
    fn a_rolled_back_insert_is_forgotten() {
        let recent = SharedRecent::default();
        let hash = key_hash("agt_1", "k");
        recent.lock().remember(hash, 1, 1_000);
        forget_unless_committed(recent.clone(), hash, 1, None)(false);
        assert_eq!(recent.lock().find(hash, 0), None);
        recent.lock().remember(hash, 2, 1_000);
        forget_unless_committed(recent.clone(), hash, 2, None)(true);
        assert_eq!(recent.lock().find(hash, 0), Some(2));
    }

    /// After a restart: keys from the rows of the window and from the
    /// `dedup` table (hashed by the sweep, or raw from before schema 8).
    #[test]
    fn start_up_reads_rows_and_the_table() {
        let mut c = Connection::open_in_memory().unwrap();
        super::super::migrate(&mut c).unwrap();
        let now: Millis = 10_000_000;
        let row = |id: &str, key: Option<u128>, until: Option<Millis>, received: Millis| {
            c.execute(
                "INSERT INTO events (id, agent_id, event_type, received_at, status,
                                     next_attempt_at, updated_at, dedup_key, dedup_until)
                 VALUES (?1, 'agt_1', 't', ?2, 'delivered', 0, 0, ?3, ?4)",
                params![id, received, key.map(|k| k.to_be_bytes().to_vec()), until],
            )
            .unwrap();
        };
        row("evt_old", Some(1), Some(now - 1), now - 700_000);
        row("evt_open", Some(2), Some(now + 5_000), now - 595_000);
        row("evt_none", None, None, now - 1_000);
        let sweep = key_hash("agt_1", "swept");
        c.execute(
            "INSERT INTO dedup (agent_id, key, event_id, expires_at) VALUES
                 ('agt_1', ?1, 'evt_swept', ?2), ('agt_1', 'legacy', 'evt_legacy', ?2),
                 ('agt_1', 'gone', 'evt_gone', ?3)",
            params![hashed_key(sweep), now + 1_000, now],
        )
        .unwrap();
        let open_seq: i64 = c
            .query_row("SELECT seq FROM events WHERE id = 'evt_open'", [], |r| {
                r.get(0)
            })
            .unwrap();
        let recent = SharedRecent::load(&c, now).unwrap();
        let mut recent = recent.lock();
        assert_eq!(recent.find(2, now), Some(open_seq));
        assert_eq!(recent.find(1, now), None, "window ended");
        assert_eq!(recent.find(sweep, now), Some(IN_TABLE));
        assert_eq!(
            recent.find(key_hash("agt_1", "legacy"), now),
            Some(IN_TABLE)
        );
        assert_eq!(recent.find(key_hash("agt_1", "gone"), now), None);
    }

    /// Start-up reads the keys from the partial index alone, never the
    /// rows with their bodies.
    #[test]
    fn start_up_reads_the_covering_index() {
        let mut c = Connection::open_in_memory().unwrap();
        super::super::migrate(&mut c).unwrap();
        let plan: String = c
            .query_row(
                "EXPLAIN QUERY PLAN SELECT dedup_key, seq, dedup_until FROM events
                 WHERE dedup_key IS NOT NULL AND dedup_until > 1 ORDER BY dedup_until",
                [],
                |r| r.get(3),
            )
            .unwrap();
        assert!(plan.contains("USING COVERING INDEX events_dedup"), "{plan}");
    }
}
