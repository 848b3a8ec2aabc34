//! The sled backend, the embedded default: one directory (`data_dir/db`),
//! no set-up. The only file that knows sled.
//!
//! One sled tree holds everything under the key prefixes of `backup.rs`
//! (`L` log, `M` metadata (`Mlineage`: rule 112's lineage), `S` sessions,
//! `A` past tickets, `R` past reports, `V` past visits reports, `K` day keys,
//! `W` + seq webhook bodies, `H` + id webhook cursors),
//! so every group commit is a single atomic `apply_batch` followed by one
//! explicit `flush` (fsync). The latest snapshot lives in a tree of its own
//! (`snapshot`): it is large, and sled rewrites a whole leaf when one of its
//! values changes, so it must not share a leaf with the log's tail.
//!
//! sled recovers a log cut short (a bad copy, a failing card) to its last
//! intact entry without a word, so the store also keeps, beside sled's files,
//! `db/luot-durable-index`: the highest log position acknowledged so far,
//! overwritten in place after every commit (fsynced with each snapshot). A
//! log that ends before it stops start-up instead of serving a queue that
//! silently lost tickets. The file moves with the `db` directory, so a
//! restored database carries its own.
//!
//! sled refuses every write once one failed (a full disk, say): `recover`
//! closes and reopens the database and removes whatever of the failed batch
//! reached the log, so a failed write is never stored.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, RwLock};
use std::time::Duration;

use luot_protocol::{DailyReport, VisitsReport};

use super::backup::{self, SNAPSHOT_KEY, log_index, log_key, prefixed};
use super::{
    Appended, FORMAT_VERSION, HookBody, HookCursor, LineageEntry, Loaded, Record, Recovered,
    Session, Store, StoreError, StoredSnapshot, WriteBatch, json, new_epoch,
};
use crate::engine::TicketRec;

const MARK_FILE: &str = "luot-durable-index";

impl From<::sled::Error> for StoreError {
    fn from(e: ::sled::Error) -> StoreError {
        match e {
            ::sled::Error::Io(io) => StoreError::Io(io),
            ::sled::Error::Corruption { .. } => StoreError::Corrupt(e.to_string()),
            other => StoreError::Failed(other.to_string()),
        }
    }
}

struct Trees {
    db: ::sled::Db,
    snapshots: ::sled::Tree,
}

/// Where the log ends: the next position and the last public seq.
#[derive(Clone, Copy, Debug)]
struct Head {
    next_index: u64,
    last_seq: u64,
}

/// The sled store. Its handles sit behind a lock so that after an I/O error
/// the store can close and reopen the database and carry on when space
/// returns.
pub struct SledStore {
    trees: RwLock<Option<Trees>>,
    dir: PathBuf,
    /// `db/luot-durable-index`, and the position it held when the store opened.
    mark: Mutex<Option<std::fs::File>>,
    mark_at_open: Option<u64>,
    /// Where the log ends (read from the database when unknown).
    head: Mutex<Option<Head>>,
    /// The first position of an append that failed, until `recover`.
    failed_at: Mutex<Option<u64>>,
}

/// Opens the durable-index file and reads what it holds.
fn open_mark(dir: &Path) -> (Option<std::fs::File>, Option<u64>) {
    let path = dir.join("db").join(MARK_FILE);
    let seen = std::fs::read_to_string(&path)
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok());
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| tracing::warn!(error = %e, path = %path.display(), "cannot write the durable-index file"))
        .ok();
    (file, seen)
}

fn open_trees(dir: &Path) -> Result<Trees, StoreError> {
    // A store just closed in this process (a reopen after an I/O error, a
    // restore followed by a start) may hold sled's file lock for a moment
    // longer, until its snapshot thread has let go: wait for it briefly.
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    let db = loop {
        match ::sled::Config::new()
            .path(dir.join("db"))
            .cache_capacity(16 * 1024 * 1024)
            .flush_every_ms(None)
            .open()
        {
            Err(::sled::Error::Io(e))
                if e.to_string().contains("could not acquire lock")
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(20));
            }
            other => break other?,
        }
    };
    let snapshots = db.open_tree("snapshot")?;
    Ok(Trees { db, snapshots })
}

/// Checks (or, in a new database, writes) the format record.
fn check_format(t: &Trees, existed: bool) -> Result<(), StoreError> {
    match t.db.get(b"Mformat")? {
        // A database that was there before must still say what it is: sled
        // opens a damaged or truncated one as empty, and an empty queue that
        // silently replaces a day's tickets is the worst outcome.
        None if existed => Err(StoreError::Corrupt(
            "the database has no format record (damaged or truncated)".into(),
        )),
        None => {
            t.db.insert(b"Mformat", FORMAT_VERSION.to_string().as_bytes())?;
            t.db.flush()?;
            Ok(())
        }
        Some(v) => {
            let v: u32 = std::str::from_utf8(&v)
                .ok()
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| StoreError::Corrupt("format version".into()))?;
            if v > FORMAT_VERSION {
                return Err(StoreError::TooNew(v));
            }
            Ok(())
        }
    }
}

/// A store without a lineage (new, or written before there was one) gets
/// `[(new epoch, 1)]` (rule 112).
fn ensure_lineage(t: &Trees) -> Result<(), StoreError> {
    if t.db.get(LINEAGE_KEY)?.is_none() {
        let lineage = vec![LineageEntry {
            epoch: new_epoch(),
            first_seq: 1,
        }];
        t.db.insert(LINEAGE_KEY, json(&lineage))?;
        t.db.flush()?;
    }
    Ok(())
}

const LINEAGE_KEY: &[u8] = b"Mlineage";

fn hook_key(seq: u64) -> Vec<u8> {
    prefixed(b'W', &seq.to_be_bytes())
}

fn hook_seq(key: &[u8]) -> Result<u64, StoreError> {
    key.get(1..)
        .and_then(|k| k.try_into().ok())
        .map(u64::from_be_bytes)
        .ok_or_else(|| StoreError::Corrupt("webhook body key".into()))
}

fn parse<T: serde::de::DeserializeOwned>(v: &[u8], what: &str) -> Result<T, StoreError> {
    serde_json::from_slice(v).map_err(|e| StoreError::Corrupt(format!("{what}: {e}")))
}

impl SledStore {
    /// Opens (or creates) the store in `dir` (the database is `dir/db`).
    pub fn open(dir: &Path) -> Result<SledStore, StoreError> {
        std::fs::create_dir_all(dir)?;
        let existed = std::fs::metadata(dir.join("db").join("db")).is_ok_and(|m| m.len() > 0);
        let trees = open_trees(dir)?;
        check_format(&trees, existed)?;
        ensure_lineage(&trees)?;
        let (mark, mark_at_open) = open_mark(dir);
        Ok(SledStore {
            trees: RwLock::new(Some(trees)),
            dir: dir.to_path_buf(),
            mark: Mutex::new(mark),
            mark_at_open,
            head: Mutex::new(None),
            failed_at: Mutex::new(None),
        })
    }

    fn with<T>(&self, f: impl FnOnce(&Trees) -> Result<T, StoreError>) -> Result<T, StoreError> {
        let guard = self.trees.read().map_err(|_| StoreError::Closed)?;
        match guard.as_ref() {
            Some(t) => f(t),
            None => Err(StoreError::Closed),
        }
    }

    /// Closes and reopens the database (after an I/O error).
    fn reopen(&self) -> Result<(), StoreError> {
        let mut guard = self.trees.write().map_err(|_| StoreError::Closed)?;
        *guard = None; // sled releases its files when the last handle goes
        *guard = Some(open_trees(&self.dir)?);
        Ok(())
    }

    /// Removes log records from `index` on (ones never acknowledged) and flushes.
    fn truncate_log_from(&self, index: u64) -> Result<usize, StoreError> {
        self.with(|t| {
            let mut batch = ::sled::Batch::default();
            let mut n = 0;
            for k in t.db.range(log_key(index)..log_key(u64::MAX)).keys() {
                batch.remove(k?);
                n += 1;
            }
            t.db.apply_batch(batch)?;
            t.db.flush()?;
            Ok(n)
        })
    }

    /// Where the log ends, read from the database.
    fn read_head(t: &Trees) -> Result<Head, StoreError> {
        let mut next_index = None;
        for kv in t.db.range(log_key(0)..log_key(u64::MAX)).rev() {
            let (k, v) = kv?;
            let index = log_index(&k)?;
            next_index.get_or_insert(index + 1);
            if let Some(seq) = parse::<Record>(&v, "log record")?.seq {
                return Ok(Head {
                    next_index: next_index.unwrap_or(index + 1),
                    last_seq: seq,
                });
            }
        }
        #[derive(serde::Deserialize)]
        struct SnapHead {
            index: u64,
            seq: u64,
        }
        let snap: Option<SnapHead> = match t.snapshots.get(b"latest")? {
            Some(v) => Some(parse(&v, "snapshot")?),
            None => None,
        };
        Ok(Head {
            next_index: next_index
                .or(snap.as_ref().map(|s| s.index + 1))
                .unwrap_or(0),
            last_seq: snap.map_or(0, |s| s.seq),
        })
    }

    fn head(&self) -> Result<Head, StoreError> {
        let mut head = self.head.lock().map_err(|_| StoreError::Closed)?;
        if let Some(h) = *head {
            return Ok(h);
        }
        let h = self.with(Self::read_head)?;
        *head = Some(h);
        Ok(h)
    }

    /// Notes `index` as acknowledged: one small in-place write, no fsync
    /// (the page cache survives a crash of the process; `sync_mark` makes it
    /// durable against power loss from time to time).
    fn note_durable(&self, index: u64) {
        use std::os::unix::fs::FileExt;
        if let Ok(guard) = self.mark.lock()
            && let Some(f) = guard.as_ref()
        {
            let _ = f.write_all_at(format!("{index:020}\n").as_bytes(), 0);
        }
    }

    fn sync_mark(&self) {
        if let Ok(guard) = self.mark.lock()
            && let Some(f) = guard.as_ref()
        {
            let _ = f.sync_data();
        }
    }

    fn load_from(t: &Trees) -> Result<Loaded, StoreError> {
        let snapshot: Option<StoredSnapshot> = match t.snapshots.get(b"latest")? {
            Some(v) => Some(parse(&v, "snapshot")?),
            None => None,
        };
        let mut index = snapshot.as_ref().map(|s| s.index);
        let from = index.map_or(0, |i| i + 1);
        let mut records = Vec::new();
        for kv in t.db.range(log_key(from)..log_key(u64::MAX)) {
            let (k, v) = kv?;
            let i = log_index(&k)?;
            if let Some(prev) = index
                && i != prev + 1
            {
                return Err(StoreError::Corrupt(format!(
                    "event log jumps from record {prev} to {i}"
                )));
            }
            records.push(parse(&v, &format!("log record {i}"))?);
            index = Some(i);
        }
        Ok(Loaded {
            snapshot,
            records,
            index,
            day_keys: Self::day_keys(t)?,
        })
    }

    /// The day keys kept (`K` + day), rule 81.
    fn day_keys(t: &Trees) -> Result<Vec<(chrono::NaiveDate, [u8; 32])>, StoreError> {
        let mut out = Vec::new();
        for kv in t.db.scan_prefix(b"K") {
            let (k, v) = kv?;
            let day = std::str::from_utf8(&k[1..])
                .ok()
                .and_then(|d| d.parse().ok())
                .ok_or_else(|| StoreError::Corrupt("day key".into()))?;
            let key: [u8; 32] = v
                .as_ref()
                .try_into()
                .map_err(|_| StoreError::Corrupt("day key".into()))?;
            out.push((day, key));
        }
        Ok(out)
    }

    /// Erases the keys of days before `day` in batch `b` (rule 81).
    fn drop_keys(
        t: &Trees,
        b: &mut ::sled::Batch,
        day: chrono::NaiveDate,
    ) -> Result<(), StoreError> {
        for (d, _) in Self::day_keys(t)? {
            if d < day {
                b.remove(prefixed(b'K', d.to_string().as_bytes()));
            }
        }
        Ok(())
    }

    /// The sled batch of `batch`, the keys it writes and its last position.
    fn sled_batch(
        batch: &WriteBatch,
        next_index: u64,
    ) -> (::sled::Batch, Vec<Vec<u8>>, Option<u64>) {
        let mut b = ::sled::Batch::default();
        let mut keys = Vec::new();
        let mut put = |k: Vec<u8>, v: Vec<u8>| {
            b.insert(k.clone(), v);
            keys.push(k);
        };
        let mut last = None;
        for (i, r) in batch.records.iter().enumerate() {
            let index = next_index + i as u64;
            put(log_key(index), json(r));
            last = Some(index);
        }
        for (hash, s) in &batch.sessions {
            put(prefixed(b'S', hash.as_bytes()), json(s));
        }
        for t in &batch.archived {
            put(prefixed(b'A', t.id.as_bytes()), json(t));
        }
        for (day, r) in &batch.reports {
            put(prefixed(b'R', day.as_bytes()), json(r));
        }
        for (day, r) in &batch.visits {
            put(prefixed(b'V', day.as_bytes()), json(r));
        }
        for (day, k) in &batch.day_keys {
            put(prefixed(b'K', day.to_string().as_bytes()), k.to_vec());
        }
        for h in &batch.hooks {
            put(hook_key(h.seq), h.encode());
        }
        (b, keys, last)
    }

    /// The seq of the first public record at position `index` or later.
    fn seq_from(t: &Trees, index: u64) -> Result<Option<u64>, StoreError> {
        for kv in t.db.range(log_key(index)..log_key(u64::MAX)) {
            let (_, v) = kv?;
            if let Some(s) = parse::<Record>(&v, "log record")?.seq {
                return Ok(Some(s));
            }
        }
        Ok(None)
    }

    /// The first log position whose public records all have a seq above
    /// `seq` (a binary search: seqs rise with positions).
    fn first_index_after(t: &Trees, seq: u64) -> Result<u64, StoreError> {
        let bounds = |rec: Option<Result<(::sled::IVec, ::sled::IVec), ::sled::Error>>| {
            rec.transpose()?.map(|(k, _)| log_index(&k)).transpose()
        };
        let mut log = t.db.range(log_key(0)..log_key(u64::MAX));
        let (Some(mut lo), Some(last)) = (bounds(log.next())?, bounds(log.next_back())?) else {
            return Ok(0);
        };
        let mut hi = last + 1;
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if Self::seq_from(t, mid)?.is_none_or(|s| s > seq) {
                hi = mid;
            } else {
                lo = mid + 1;
            }
        }
        Ok(lo)
    }

    fn get<T: serde::de::DeserializeOwned>(&self, key: Vec<u8>) -> Result<Option<T>, StoreError> {
        self.with(|t| Ok(t.db.get(key)?))?
            .map(|v| parse(&v, "stored value"))
            .transpose()
    }
}

impl Store for SledStore {
    fn load(&self) -> Result<Loaded, StoreError> {
        let loaded = self.with(Self::load_from)?;
        if let Some(mark) = self.mark_at_open
            && loaded.index.is_none_or(|l| l < mark)
        {
            return Err(StoreError::Corrupt(format!(
                "the event log ends at record {} but record {mark} had been stored and acknowledged: \
                 the database was truncated or damaged",
                loaded.index.map_or("(none)".to_string(), |l| l.to_string())
            )));
        }
        Ok(loaded)
    }

    fn append(&self, batch: &WriteBatch) -> Result<Appended, StoreError> {
        batch.check_numbering()?;
        let head = self.head()?;
        if batch.after_seq != head.last_seq {
            return Err(StoreError::Conflict {
                expected: batch.after_seq,
                found: head.last_seq,
            });
        }
        let (mut b, keys, last) = Self::sled_batch(batch, head.next_index);
        if let Ok(mut f) = self.failed_at.lock() {
            *f = Some(head.next_index);
        }
        self.with(|t| {
            if let Some(day) = batch.drop_keys_before {
                Self::drop_keys(t, &mut b, day)?;
            }
            if let Err(e) = t.db.apply_batch(b) {
                let mut undo = ::sled::Batch::default();
                for k in keys {
                    undo.remove(k);
                }
                let _ = t.db.apply_batch(undo);
                return Err(StoreError::Failed(e.to_string()));
            }
            t.db.flush()
                .map_err(|e| StoreError::OutcomeUnknown(e.to_string()))?;
            Ok(())
        })?;
        if let Ok(mut f) = self.failed_at.lock() {
            *f = None;
        }
        if let Ok(mut h) = self.head.lock() {
            *h = Some(Head {
                next_index: head.next_index + batch.records.len() as u64,
                last_seq: batch.last_seq(),
            });
        }
        if let Some(i) = last {
            self.note_durable(i);
        }
        Ok(Appended {
            index: last.or(head.next_index.checked_sub(1)),
        })
    }

    fn read_from(&self, seq: u64, max: usize) -> Result<Vec<Record>, StoreError> {
        self.with(|t| {
            let from = Self::first_index_after(t, seq)?;
            let mut out = Vec::new();
            for kv in t.db.range(log_key(from)..log_key(u64::MAX)) {
                let (_, v) = kv?;
                let r: Record = parse(&v, "log record")?;
                if r.seq.is_some_and(|s| s > seq) {
                    out.push(r);
                    if out.len() >= max {
                        break;
                    }
                }
            }
            Ok(out)
        })
    }

    fn recover(&self) -> Result<Recovered, StoreError> {
        self.reopen()?;
        let failed = self
            .failed_at
            .lock()
            .map_err(|_| StoreError::Closed)?
            .take();
        if let Some(index) = failed {
            let removed = self.truncate_log_from(index)?;
            if removed > 0 {
                tracing::warn!(removed, "removed log records of a write that failed");
            }
        }
        if let Ok(mut h) = self.head.lock() {
            *h = None;
        }
        // Webhook bodies of the failed batch go too: their seqs will be
        // numbered again, for other events.
        self.with(|t| {
            let last = Self::read_head(t)?.last_seq;
            let mut batch = ::sled::Batch::default();
            for k in t.db.range(hook_key(last + 1)..hook_key(u64::MAX)).keys() {
                batch.remove(k?);
            }
            t.db.apply_batch(batch)?;
            t.db.flush()?;
            Ok(())
        })?;
        Ok(Recovered::NotCommitted)
    }

    fn write_snapshot(&self, snap: &StoredSnapshot) -> Result<(), StoreError> {
        self.with(|t| {
            t.snapshots.insert(b"latest", json(snap))?;
            t.snapshots.flush()?;
            Ok(())
        })?;
        self.sync_mark();
        Ok(())
    }

    fn prune_log(&self, index: u64, max: usize) -> Result<usize, StoreError> {
        self.with(|t| {
            let keys: Vec<_> =
                t.db.range(log_key(0)..log_key(index))
                    .keys()
                    .filter_map(|k| k.ok())
                    .take(max)
                    .collect();
            let mut batch = ::sled::Batch::default();
            let n = keys.len();
            for k in keys {
                batch.remove(k);
            }
            t.db.apply_batch(batch)?;
            Ok(n)
        })
    }

    fn session(&self, token_hash: &str) -> Result<Option<Session>, StoreError> {
        self.get(prefixed(b'S', token_hash.as_bytes()))
    }

    fn prune_sessions(&self, now: i64) -> Result<usize, StoreError> {
        self.with(|t| {
            let mut batch = ::sled::Batch::default();
            let mut n = 0;
            for (k, v) in t.db.scan_prefix(b"S").filter_map(|kv| kv.ok()) {
                let expired = serde_json::from_slice::<Session>(&v)
                    .map(|s| s.expires_at < now)
                    .unwrap_or(true);
                if expired {
                    batch.remove(k);
                    n += 1;
                }
            }
            t.db.apply_batch(batch)?;
            Ok(n)
        })
    }

    fn archived_ticket(&self, id: &str) -> Result<Option<TicketRec>, StoreError> {
        self.get(prefixed(b'A', id.as_bytes()))
    }

    fn archived_report(&self, day: &str) -> Result<Option<DailyReport>, StoreError> {
        self.get(prefixed(b'R', day.as_bytes()))
    }

    fn archived_visits(&self, day: &str) -> Result<Option<VisitsReport>, StoreError> {
        self.get(prefixed(b'V', day.as_bytes()))
    }

    fn backup(&self, out: &mut dyn Write) -> Result<u64, StoreError> {
        self.with(|t| {
            let mut w = backup::Writer::new(out)?;
            for kv in t.db.iter() {
                let (k, v) = kv?;
                // Day keys never leave the data directory (rule 81);
                // webhook bodies and cursors neither: after a restore each
                // webhook starts after the restored log (rule 90).
                if k.as_ref() != b"Mhealth"
                    && !k.starts_with(b"K")
                    && !k.starts_with(b"W")
                    && !k.starts_with(b"H")
                {
                    w.entry(&k, &v)?;
                }
            }
            if let Some(v) = t.snapshots.get(b"latest")? {
                w.entry(SNAPSHOT_KEY, &v)?;
            }
            w.finish()
        })
    }

    fn probe(&self) -> Result<(), StoreError> {
        self.with(|t| {
            t.db.insert(b"Mhealth", chrono::Utc::now().to_rfc3339().as_bytes())?;
            t.db.flush()?;
            Ok(())
        })
    }

    fn lineage(&self) -> Result<Vec<LineageEntry>, StoreError> {
        match self.with(|t| Ok(t.db.get(LINEAGE_KEY)?))? {
            Some(v) => parse(&v, "lineage"),
            None => Err(StoreError::Corrupt("the store has no lineage".into())),
        }
    }

    fn hook_bodies(&self, seq: u64, max: usize) -> Result<Vec<HookBody>, StoreError> {
        self.with(|t| {
            let mut out = Vec::new();
            let from = hook_key(seq.saturating_add(1));
            for kv in t.db.range(from..hook_key(u64::MAX)).take(max) {
                let (k, v) = kv?;
                out.push(HookBody::decode(hook_seq(&k)?, &v)?);
            }
            Ok(out)
        })
    }

    fn hook_cursor(&self, id: &str) -> Result<Option<HookCursor>, StoreError> {
        self.get(prefixed(b'H', id.as_bytes()))
    }

    fn put_hook_cursor(
        &self,
        id: &str,
        cursor: &HookCursor,
        durable: bool,
    ) -> Result<(), StoreError> {
        self.with(|t| {
            t.db.insert(prefixed(b'H', id.as_bytes()), json(cursor))?;
            if durable {
                t.db.flush()?;
            }
            Ok(())
        })
    }

    fn prune_hooks(
        &self,
        through: u64,
        before: i64,
        max: usize,
    ) -> Result<Vec<(u64, String)>, StoreError> {
        self.with(|t| {
            let mut batch = ::sled::Batch::default();
            let mut dropped = Vec::new();
            for kv in t.db.range(hook_key(0)..hook_key(u64::MAX)).take(max) {
                let (k, v) = kv?;
                let seq = hook_seq(&k)?;
                if seq > through {
                    let h = HookBody::decode(seq, &v)?;
                    if h.at >= before {
                        break;
                    }
                    dropped.push((seq, h.kind));
                }
                batch.remove(k);
            }
            t.db.apply_batch(batch)?;
            Ok(dropped)
        })
    }
}

/// Restores a backup into a fresh store at `dir`, which must not exist yet.
/// Verifies the whole file before anything is written.
pub fn restore(input: &mut dyn Read, dir: &Path) -> Result<u64, StoreError> {
    let entries = backup::read(input)?;
    let n = entries.len() as u64;
    let store = SledStore::open(dir)?;
    store.with(|t| {
        let mut batch = ::sled::Batch::default();
        for (k, v) in entries {
            if k == SNAPSHOT_KEY {
                t.snapshots.insert(b"latest", v)?;
            } else {
                batch.insert(k, v);
            }
        }
        t.db.apply_batch(batch)?;
        // Rule 112: the backup's lineage, then a new epoch from the seq
        // after its last event.
        let last = SledStore::read_head(t)?.last_seq;
        let mut lineage: Vec<LineageEntry> = match t.db.get(LINEAGE_KEY)? {
            Some(v) => parse(&v, "lineage")?,
            None => Vec::new(),
        };
        lineage.push(LineageEntry {
            epoch: new_epoch(),
            first_seq: last + 1,
        });
        t.db.insert(LINEAGE_KEY, json(&lineage))?;
        t.db.flush()?;
        t.snapshots.flush()?;
        Ok(())
    })?;
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::tests::append;

    #[test]
    fn a_log_that_lost_acknowledged_records_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = SledStore::open(dir.path()).unwrap();
            append(&s, 0, 5);
            append(&s, 5, 5);
        }
        // Intact: loads.
        let s = SledStore::open(dir.path()).unwrap();
        assert_eq!(s.load().unwrap().records.len(), 10);
        // The last four records vanish, as when sled recovers a cut log.
        s.with(|t| {
            for i in 6..10 {
                t.db.remove(log_key(i))?;
            }
            t.db.flush()?;
            Ok(())
        })
        .unwrap();
        drop(s);
        let err = SledStore::open(dir.path())
            .unwrap()
            .load()
            .expect_err("refused");
        let msg = err.to_string();
        assert!(msg.contains("ends at record 5 but record 9"), "{msg}");
    }

    #[test]
    fn pruning_removes_the_oldest_covered_records_up_to_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let s = SledStore::open(dir.path()).unwrap();
        let at = append(&s, 0, 10);
        assert_eq!(s.prune_log(at.index.unwrap(), 3).unwrap(), 3);
        let left = s.read_from(0, 100).unwrap();
        assert_eq!(left.len(), 7);
        assert_eq!(left[0].seq, Some(4));
    }

    #[test]
    fn newer_data_is_refused_with_a_clear_message() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = SledStore::open(dir.path()).unwrap();
            s.with(|t| {
                t.db.insert(b"Mformat", b"2")?;
                t.db.flush()?;
                Ok(())
            })
            .unwrap();
        }
        let e = SledStore::open(dir.path()).err().expect("refused");
        assert!(matches!(e, StoreError::TooNew(2)));
        assert!(e.to_string().contains("newer luot"), "{e}");
    }

    #[test]
    fn a_restored_backup_is_the_same_store_and_damage_is_detected() {
        let dir = tempfile::tempdir().unwrap();
        let s = SledStore::open(&dir.path().join("a")).unwrap();
        append(&s, 0, 100);
        let mut buf = Vec::new();
        assert!(s.backup(&mut buf).unwrap() >= 100);
        let restored = dir.path().join("b");
        restore(&mut buf.as_slice(), &restored).unwrap();
        let r = SledStore::open(&restored).unwrap();
        assert_eq!(r.load().unwrap().records, s.load().unwrap().records);
        // The restored store continues after the backup's last seq.
        append(&r, 100, 1);
        let mut damaged = buf.clone();
        let mid = damaged.len() / 2;
        damaged[mid] ^= 1;
        assert!(restore(&mut damaged.as_slice(), &dir.path().join("c")).is_err());
        let truncated = &buf[..buf.len() - 10];
        assert!(restore(&mut &truncated[..], &dir.path().join("d")).is_err());
    }
}
