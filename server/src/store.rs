//! The durable store: the only module that knows sled.
//!
//! One sled tree holds everything under key prefixes, so every group commit is
//! a single atomic `apply_batch` followed by one explicit `flush` (fsync):
//!
//! - `L` + u64 BE: the event log, one record per event, in order;
//! - `M` + name: metadata (format version, health probe);
//! - `S` + sha256(token): login sessions;
//! - `A` + ticket id: tickets of past days;
//! - `R` + day: reports of past days.
//!
//! The latest state snapshot lives in a tree of its own (`snapshot`): it is
//! large, and sled rewrites a whole leaf when one of its values changes, so it
//! must not share a leaf with the log's tail. It is redundant (the log alone
//! rebuilds the state), so it is written after the batch it covers.
//!
//! sled recovers a log cut short (a bad copy, a failing card) to its last
//! intact entry without a word, so the store also keeps, beside sled's files,
//! `db/luot-durable-index`: the highest log index acknowledged so far,
//! overwritten in place after every commit (fsynced with each snapshot). A
//! log that ends before that index stops start-up instead of serving a queue
//! that silently lost tickets. The file moves with the `db` directory, so a
//! restored database carries its own.
//!
//! Nothing here decides queue rules. The hub calls `commit` and answers only
//! after it returned `Ok`: acknowledged means flushed.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::engine::{Event, StateSnapshot};

/// Version of the on-disk layout. A newer binary migrates older data; an
/// older binary refuses newer data.
pub const FORMAT_VERSION: u32 = 1;
const BACKUP_MAGIC: &[u8] = b"LUOT-BACKUP 1\n";
/// Where the snapshot tree's value travels inside a backup file.
const SNAPSHOT_BACKUP_KEY: &[u8] = b"Xsnapshot";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the data store failed: {0}")]
    Sled(#[from] sled::Error),
    #[error(
        "the data store is damaged ({0}); restore it from a backup with `luot-server restore --from FILE`"
    )]
    Corrupt(String),
    #[error(
        "the data store was written by a newer luot (format {0}, this binary reads {FORMAT_VERSION}); upgrade luot-server"
    )]
    TooNew(u32),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("the data store is closed after an I/O error and could not be reopened yet")]
    Closed,
}

/// One record of the event log.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Record {
    /// The public sequence number; `None` for private events (feedback).
    pub seq: Option<u64>,
    pub event: Event,
}

/// A stored snapshot of the engine state.
#[derive(Serialize, Deserialize)]
pub struct StoredSnapshot {
    /// The last log index the snapshot includes.
    pub index: u64,
    /// The last public seq it includes.
    pub seq: u64,
    pub state: StateSnapshot,
}

/// A login session as stored.
#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct Session {
    pub username: String,
    pub expires_at: i64,
}

/// Writes collected by the hub for one group commit.
#[derive(Default)]
pub struct WriteBatch {
    batch: sled::Batch,
    pub records: usize,
    keys: Vec<Vec<u8>>,
    /// The highest log index in the batch.
    top: Option<u64>,
}

impl WriteBatch {
    fn put(&mut self, key: Vec<u8>, value: Vec<u8>) {
        self.batch.insert(key.clone(), value);
        self.keys.push(key);
    }
    pub fn record(&mut self, index: u64, rec: &Record) {
        self.top = self.top.max(Some(index));
        self.put(log_key(index), json(rec));
        self.records += 1;
    }
    pub fn session(&mut self, token_hash: &str, s: &Session) {
        self.put(prefixed(b'S', token_hash.as_bytes()), json(s));
    }
    pub fn archive_ticket(&mut self, id: &str, t: &crate::engine::TicketRec) {
        self.put(prefixed(b'A', id.as_bytes()), json(t));
    }
    pub fn report(&mut self, day: &str, r: &luot_protocol::DailyReport) {
        self.put(prefixed(b'R', day.as_bytes()), json(r));
    }
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

fn json<T: Serialize>(v: &T) -> Vec<u8> {
    serde_json::to_vec(v).unwrap_or_default()
}

fn prefixed(p: u8, rest: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + rest.len());
    k.push(p);
    k.extend_from_slice(rest);
    k
}

fn log_key(index: u64) -> Vec<u8> {
    prefixed(b'L', &index.to_be_bytes())
}

/// What the store holds at start-up.
pub struct Loaded {
    pub snapshot: Option<StoredSnapshot>,
    /// Records after the snapshot, with their log index.
    pub records: Vec<(u64, Record)>,
}

struct Trees {
    db: sled::Db,
    snapshots: sled::Tree,
}

/// The store. Its sled handles sit behind a lock so that after an I/O error
/// (sled refuses all writes once one failed, say on a full disk) the hub can
/// close and reopen the database and carry on when space returns.
pub struct Store {
    trees: std::sync::RwLock<Option<Trees>>,
    dir: PathBuf,
    /// `db/luot-durable-index`, and the index it held when the store opened.
    mark: std::sync::Mutex<Option<std::fs::File>>,
    mark_at_open: Option<u64>,
}

const MARK_FILE: &str = "luot-durable-index";

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
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    let db = loop {
        match sled::Config::new()
            .path(dir.join("db"))
            .cache_capacity(16 * 1024 * 1024)
            .flush_every_ms(None)
            .open()
        {
            Err(sled::Error::Io(e))
                if e.to_string().contains("could not acquire lock")
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            other => break other?,
        }
    };
    let snapshots = db.open_tree("snapshot")?;
    Ok(Trees { db, snapshots })
}

impl Store {
    /// Opens (or creates) the store in `dir`.
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        std::fs::create_dir_all(dir)?;
        // A database that was there before must still say what it is: sled
        // opens a damaged or truncated one as empty, and an empty queue that
        // silently replaces a day's tickets is the worst outcome.
        let existed = std::fs::metadata(dir.join("db").join("db")).is_ok_and(|m| m.len() > 0);
        let trees = open_trees(dir)?;
        match trees.db.get(b"Mformat")? {
            None if existed => {
                return Err(StoreError::Corrupt(
                    "the database has no format record (damaged or truncated)".into(),
                ));
            }
            None => {
                trees
                    .db
                    .insert(b"Mformat", FORMAT_VERSION.to_string().as_bytes())?;
                trees.db.flush()?;
            }
            Some(v) => {
                let v: u32 = std::str::from_utf8(&v)
                    .ok()
                    .and_then(|s| s.parse().ok())
                    .ok_or_else(|| StoreError::Corrupt("format version".into()))?;
                if v > FORMAT_VERSION {
                    return Err(StoreError::TooNew(v));
                }
            }
        }
        let (mark, mark_at_open) = open_mark(dir);
        Ok(Store {
            trees: std::sync::RwLock::new(Some(trees)),
            dir: dir.to_path_buf(),
            mark: std::sync::Mutex::new(mark),
            mark_at_open,
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
    pub fn reopen(&self) -> Result<(), StoreError> {
        let mut guard = self.trees.write().map_err(|_| StoreError::Closed)?;
        *guard = None; // sled releases its files when the last handle goes
        *guard = Some(open_trees(&self.dir)?);
        Ok(())
    }

    /// Removes log records from `index` on (ones that were never
    /// acknowledged) and flushes.
    pub fn truncate_log_from(&self, index: u64) -> Result<usize, StoreError> {
        self.with(|t| {
            let mut batch = sled::Batch::default();
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

    /// Reads the latest snapshot and every log record after it.
    /// Refuses a log that ends before the last index acknowledged.
    pub fn load(&self) -> Result<Loaded, StoreError> {
        let loaded = self.with(Self::load_from)?;
        let last = loaded
            .records
            .last()
            .map(|r| r.0)
            .or(loaded.snapshot.as_ref().map(|s| s.index));
        if let Some(mark) = self.mark_at_open
            && last.is_none_or(|l| l < mark)
        {
            return Err(StoreError::Corrupt(format!(
                "the event log ends at record {} but record {mark} had been stored and acknowledged: \
                 the database was truncated or damaged",
                last.map_or("(none)".to_string(), |l| l.to_string())
            )));
        }
        Ok(loaded)
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
            Some(v) => Some(
                serde_json::from_slice(&v)
                    .map_err(|e| StoreError::Corrupt(format!("snapshot: {e}")))?,
            ),
            None => None,
        };
        let from = snapshot.as_ref().map(|s| s.index + 1).unwrap_or(0);
        let mut records = Vec::new();
        for kv in t.db.range(log_key(from)..log_key(u64::MAX)) {
            let (k, v) = kv?;
            let index = u64::from_be_bytes(
                k[1..]
                    .try_into()
                    .map_err(|_| StoreError::Corrupt("log key".into()))?,
            );
            let rec: Record = serde_json::from_slice(&v)
                .map_err(|e| StoreError::Corrupt(format!("log record {index}: {e}")))?;
            records.push((index, rec));
        }
        Ok(Loaded { snapshot, records })
    }

    /// Writes a batch atomically and flushes it to disk. Returns the flush time.
    /// On failure the batch's keys are removed again, so nothing that was
    /// not acknowledged can surface later.
    pub fn commit(&self, batch: WriteBatch) -> Result<Duration, StoreError> {
        let keys = batch.keys;
        let top = batch.top;
        let took = self.with(|t| {
            let t0 = Instant::now();
            let result =
                t.db.apply_batch(batch.batch)
                    .and_then(|_| t.db.flush().map(|_| ()));
            match result {
                Ok(()) => Ok(t0.elapsed()),
                Err(e) => {
                    let mut undo = sled::Batch::default();
                    for k in keys {
                        undo.remove(k);
                    }
                    let _ = t.db.apply_batch(undo);
                    Err(e.into())
                }
            }
        })?;
        if let Some(i) = top {
            self.note_durable(i);
        }
        Ok(took)
    }

    /// Writes a state snapshot and flushes it. Call only after the batch it
    /// covers is committed.
    pub fn write_snapshot(&self, snap: &StoredSnapshot) -> Result<(), StoreError> {
        self.with(|t| {
            t.snapshots.insert(b"latest", json(snap))?;
            t.snapshots.flush()?;
            Ok(())
        })?;
        self.sync_mark();
        Ok(())
    }

    /// Removes log records older than `before`, at most `max` of them.
    /// Only for records a durable snapshot already covers.
    pub fn prune_log(&self, before: u64, max: usize) -> Result<usize, StoreError> {
        self.with(|t| {
            let keys: Vec<_> =
                t.db.range(log_key(0)..log_key(before))
                    .keys()
                    .filter_map(|k| k.ok())
                    .take(max)
                    .collect();
            let mut batch = sled::Batch::default();
            let n = keys.len();
            for k in keys {
                batch.remove(k);
            }
            t.db.apply_batch(batch)?;
            Ok(n)
        })
    }

    /// Proves the store is writable (for `/healthz`).
    pub fn probe(&self) -> Result<(), StoreError> {
        self.with(|t| {
            t.db.insert(b"Mhealth", chrono::Utc::now().to_rfc3339().as_bytes())?;
            t.db.flush()?;
            Ok(())
        })
    }

    pub fn session(&self, token_hash: &str) -> Result<Option<Session>, StoreError> {
        self.with(|t| {
            Ok(t.db
                .get(prefixed(b'S', token_hash.as_bytes()))?
                .and_then(|v| serde_json::from_slice(&v).ok()))
        })
    }

    /// Removes expired login sessions (there are few: one per login).
    pub fn prune_sessions(&self, now: i64) -> Result<usize, StoreError> {
        self.with(|t| {
            let mut batch = sled::Batch::default();
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

    pub fn archived_ticket(&self, id: &str) -> Option<crate::engine::TicketRec> {
        self.with(|t| Ok(t.db.get(prefixed(b'A', id.as_bytes()))?))
            .ok()
            .flatten()
            .and_then(|v| serde_json::from_slice(&v).ok())
    }

    pub fn archived_report(&self, day: &str) -> Option<luot_protocol::DailyReport> {
        self.with(|t| Ok(t.db.get(prefixed(b'R', day.as_bytes()))?))
            .ok()
            .flatten()
            .and_then(|v| serde_json::from_slice(&v).ok())
    }

    /// Writes a consistent copy of the whole store. The caller guarantees no
    /// write happens meanwhile (the hub calls it between batches).
    pub fn backup_to(&self, out: &mut dyn Write) -> Result<u64, StoreError> {
        self.with(|t| Self::backup_from(t, out))
    }

    fn backup_from(t: &Trees, out: &mut dyn Write) -> Result<u64, StoreError> {
        let mut hasher = Sha256::new();
        let mut write = |buf: &[u8], out: &mut dyn Write| -> std::io::Result<()> {
            hasher.update(buf);
            out.write_all(buf)
        };
        write(BACKUP_MAGIC, out)?;
        let mut n: u64 = 0;
        // The snapshot goes under a reserved key of the main tree's key space.
        let snap = t
            .snapshots
            .get(b"latest")?
            .map(|v| (sled::IVec::from(SNAPSHOT_BACKUP_KEY), v));
        for kv in
            t.db.iter()
                .map(|kv| kv.map_err(StoreError::from))
                .chain(snap.map(Ok))
        {
            let (k, v) = kv?;
            if k.as_ref() == b"Mhealth" {
                continue;
            }
            write(&(k.len() as u32).to_be_bytes(), out)?;
            write(&k, out)?;
            write(&(v.len() as u32).to_be_bytes(), out)?;
            write(&v, out)?;
            n += 1;
        }
        // Trailer: a zero-length key marks the end, then the count and the checksum.
        write(&0u32.to_be_bytes(), out)?;
        write(&n.to_be_bytes(), out)?;
        let digest = hasher.finalize();
        out.write_all(&digest)?;
        out.flush()?;
        Ok(n)
    }
}

/// Restores a backup into a fresh store at `dir`, which must not exist.
/// Verifies the checksum before anything is written.
pub fn restore_backup(input: &mut dyn Read, dir: &Path) -> Result<u64, StoreError> {
    let mut all = Vec::new();
    input.read_to_end(&mut all)?;
    let bad = |m: &str| StoreError::Corrupt(format!("backup file: {m}"));
    if all.len() < BACKUP_MAGIC.len() + 4 + 8 + 32 || !all.starts_with(BACKUP_MAGIC) {
        return Err(bad("not a luot backup"));
    }
    let (body, digest) = all.split_at(all.len() - 32);
    if Sha256::digest(body).as_slice() != digest {
        return Err(bad("checksum mismatch (truncated or damaged)"));
    }
    let mut entries = Vec::new();
    let mut p = BACKUP_MAGIC.len();
    let take = |p: &mut usize, n: usize| -> Result<&[u8], StoreError> {
        let s = body.get(*p..*p + n).ok_or_else(|| bad("truncated"))?;
        *p += n;
        Ok(s)
    };
    loop {
        let klen = u32::from_be_bytes(take(&mut p, 4)?.try_into().unwrap_or_default()) as usize;
        if klen == 0 {
            break;
        }
        let k = take(&mut p, klen)?.to_vec();
        let vlen = u32::from_be_bytes(take(&mut p, 4)?.try_into().unwrap_or_default()) as usize;
        let v = take(&mut p, vlen)?.to_vec();
        entries.push((k, v));
    }
    let n = u64::from_be_bytes(take(&mut p, 8)?.try_into().unwrap_or_default());
    if n != entries.len() as u64 || p != body.len() {
        return Err(bad("entry count mismatch"));
    }
    let store = Store::open(dir)?;
    store.with(|t| {
        let mut batch = sled::Batch::default();
        for (k, v) in entries {
            if k == SNAPSHOT_BACKUP_KEY {
                t.snapshots.insert(b"latest", v)?;
            } else {
                batch.insert(k, v);
            }
        }
        t.db.apply_batch(batch)?;
        t.db.flush()?;
        t.snapshots.flush()?;
        Ok(())
    })?;
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;

    fn ev(n: i64) -> Event {
        Event::DayStarted {
            day: NaiveDate::from_ymd_opt(2026, 11, 22).unwrap(),
            at: n,
        }
    }

    #[test]
    fn a_log_that_lost_acknowledged_records_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let commit = |s: &Store, range: std::ops::Range<u64>| {
            let mut b = WriteBatch::default();
            for i in range {
                b.record(
                    i,
                    &Record {
                        seq: Some(i + 1),
                        event: ev(i as i64),
                    },
                );
            }
            s.commit(b).unwrap();
        };
        {
            let s = Store::open(dir.path()).unwrap();
            commit(&s, 0..5);
            commit(&s, 5..10);
        }
        // Intact: loads.
        assert_eq!(
            Store::open(dir.path())
                .unwrap()
                .load()
                .unwrap()
                .records
                .len(),
            10
        );
        // The last four records vanish, as when sled recovers a cut log.
        {
            let s = Store::open(dir.path()).unwrap();
            s.with(|t| {
                for i in 6..10 {
                    t.db.remove(log_key(i))?;
                }
                t.db.flush()?;
                Ok(())
            })
            .unwrap();
        }
        let err = Store::open(dir.path())
            .unwrap()
            .load()
            .err()
            .expect("refused");
        let msg = err.to_string();
        assert!(msg.contains("ends at record 5 but record 9"), "{msg}");
    }

    #[test]
    fn committed_records_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = Store::open(dir.path()).unwrap();
            let mut b = WriteBatch::default();
            for i in 0..5 {
                b.record(
                    i,
                    &Record {
                        seq: Some(i + 1),
                        event: ev(i as i64),
                    },
                );
            }
            s.commit(b).unwrap();
        }
        let s = Store::open(dir.path()).unwrap();
        let l = s.load().unwrap();
        assert_eq!(l.records.len(), 5);
        assert_eq!(l.records[4].1.seq, Some(5));
    }

    #[test]
    fn newer_data_is_refused_with_a_clear_message() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = Store::open(dir.path()).unwrap();
            s.with(|t| {
                t.db.insert(b"Mformat", b"2")?;
                t.db.flush()?;
                Ok(())
            })
            .unwrap();
        }
        let e = Store::open(dir.path()).err().expect("refused");
        assert!(matches!(e, StoreError::TooNew(2)));
        assert!(e.to_string().contains("newer luot"), "{e}");
    }

    #[test]
    fn expired_sessions_are_pruned() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        let mut b = WriteBatch::default();
        b.session(
            "old",
            &Session {
                username: "a".into(),
                expires_at: 100,
            },
        );
        b.session(
            "new",
            &Session {
                username: "b".into(),
                expires_at: 10_000,
            },
        );
        s.commit(b).unwrap();
        assert_eq!(s.prune_sessions(5_000).unwrap(), 1);
        assert!(s.session("old").unwrap().is_none());
        assert!(s.session("new").unwrap().is_some());
    }

    #[test]
    fn backup_restores_byte_for_byte_and_detects_damage() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("a")).unwrap();
        let mut b = WriteBatch::default();
        for i in 0..100 {
            b.record(
                i,
                &Record {
                    seq: Some(i + 1),
                    event: ev(i as i64),
                },
            );
        }
        s.commit(b).unwrap();
        let mut buf = Vec::new();
        assert!(s.backup_to(&mut buf).unwrap() >= 100);
        let restored = dir.path().join("b");
        restore_backup(&mut buf.as_slice(), &restored).unwrap();
        let r = Store::open(&restored).unwrap().load().unwrap();
        assert_eq!(r.records, s.load().unwrap().records);
        let mut damaged = buf.clone();
        let mid = damaged.len() / 2;
        damaged[mid] ^= 1;
        assert!(restore_backup(&mut damaged.as_slice(), &dir.path().join("c")).is_err());
        let truncated = &buf[..buf.len() - 10];
        assert!(restore_backup(&mut &truncated[..], &dir.path().join("d")).is_err());
    }
}
