//! A store kept in memory, for tests: the hub's group commit, failure and
//! recovery are tested against it without a disk, and the store tests run
//! against it and sled alike. It can fail on purpose (`fail_next`), including
//! the case a real database has and sled never reports: a write whose
//! outcome is unknown but which did land.

use std::collections::{BTreeMap, HashMap, VecDeque};

use chrono::NaiveDate;
use std::io::Write;
use std::sync::Mutex;

use luot_protocol::{DailyReport, VisitsReport};

use super::backup::{self, SNAPSHOT_KEY, log_key, prefixed};
use super::{
    Appended, HookBody, HookCursor, LineageEntry, Loaded, Record, Recovered, Session, Store,
    StoreError, StoredSnapshot, WriteBatch, json, new_epoch,
};
use crate::engine::TicketRec;

/// A failure to inject into the next `append`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// The write fails and nothing is stored.
    Refuse,
    /// The outcome is unknown; `landed` says whether it was stored.
    Unknown { landed: bool },
}

#[derive(Default)]
struct Inner {
    /// (position, record), oldest first.
    log: Vec<(u64, Record)>,
    next_index: u64,
    last_seq: u64,
    snapshot: Option<StoredSnapshot>,
    sessions: HashMap<String, Session>,
    archived: HashMap<String, TicketRec>,
    reports: BTreeMap<String, DailyReport>,
    visits: BTreeMap<String, VisitsReport>,
    day_keys: BTreeMap<NaiveDate, [u8; 32]>,
    faults: VecDeque<Fault>,
    /// `recover` calls that fail before one succeeds.
    recover_failures: usize,
    /// The outcome `recover` reports for the last failed append.
    in_doubt: Option<Recovered>,
    appends: usize,
    /// Rule 112; made on first use.
    lineage: Vec<LineageEntry>,
    hooks: BTreeMap<u64, HookBody>,
    cursors: HashMap<String, HookCursor>,
}

#[derive(Default)]
pub struct MemStore {
    inner: Mutex<Inner>,
}

impl MemStore {
    pub fn new() -> MemStore {
        MemStore::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The next appends fail as given, one fault each.
    pub fn fail_next(&self, faults: &[Fault]) {
        self.lock().faults.extend(faults);
    }

    /// The next `n` calls of `recover` fail (a disk that is still full).
    pub fn fail_recover(&self, n: usize) {
        self.lock().recover_failures = n;
    }

    /// Successful appends so far (group commits).
    pub fn appends(&self) -> usize {
        self.lock().appends
    }

    /// The days whose keys are kept.
    pub fn key_days(&self) -> Vec<NaiveDate> {
        self.lock().day_keys.keys().copied().collect()
    }

    /// Every record stored, in order.
    pub fn records(&self) -> Vec<Record> {
        self.lock().log.iter().map(|(_, r)| r.clone()).collect()
    }

    fn store(inner: &mut Inner, batch: &WriteBatch) -> Option<u64> {
        let mut last = None;
        for r in &batch.records {
            inner.log.push((inner.next_index, r.clone()));
            last = Some(inner.next_index);
            inner.next_index += 1;
        }
        inner.last_seq = batch.last_seq();
        for (h, s) in &batch.sessions {
            inner.sessions.insert(h.clone(), s.clone());
        }
        for t in &batch.archived {
            inner.archived.insert(t.id.clone(), t.clone());
        }
        for (d, r) in &batch.reports {
            inner.reports.insert(d.clone(), r.clone());
        }
        for (d, r) in &batch.visits {
            inner.visits.insert(d.clone(), r.clone());
        }
        if let Some(day) = batch.drop_keys_before {
            inner.day_keys.retain(|d, _| *d >= day);
        }
        inner.day_keys.extend(batch.day_keys.iter().copied());
        for h in &batch.hooks {
            inner.hooks.insert(h.seq, h.clone());
        }
        last
    }

    /// The lineage, made `[(new, 1)]` on first use.
    fn lineage_of(inner: &mut Inner) -> &[LineageEntry] {
        if inner.lineage.is_empty() {
            inner.lineage.push(LineageEntry {
                epoch: new_epoch(),
                first_seq: 1,
            });
        }
        &inner.lineage
    }
}

impl Store for MemStore {
    fn load(&self) -> Result<Loaded, StoreError> {
        let inner = self.lock();
        let after = inner.snapshot.as_ref().map(|s| s.index);
        let records: Vec<Record> = inner
            .log
            .iter()
            .filter(|(i, _)| after.is_none_or(|a| *i > a))
            .map(|(_, r)| r.clone())
            .collect();
        Ok(Loaded {
            snapshot: inner.snapshot.clone(),
            records,
            index: inner.next_index.checked_sub(1),
            day_keys: inner.day_keys.iter().map(|(d, k)| (*d, *k)).collect(),
        })
    }

    fn append(&self, batch: &WriteBatch) -> Result<Appended, StoreError> {
        batch.check_numbering()?;
        let mut inner = self.lock();
        if batch.after_seq != inner.last_seq {
            return Err(StoreError::Conflict {
                expected: batch.after_seq,
                found: inner.last_seq,
            });
        }
        match inner.faults.pop_front() {
            Some(Fault::Refuse) => {
                inner.in_doubt = Some(Recovered::NotCommitted);
                Err(StoreError::Failed("injected failure".into()))
            }
            Some(Fault::Unknown { landed }) => {
                if landed {
                    Self::store(&mut inner, batch);
                }
                inner.in_doubt = Some(if landed {
                    Recovered::Committed
                } else {
                    Recovered::NotCommitted
                });
                Err(StoreError::OutcomeUnknown(
                    "injected: connection lost".into(),
                ))
            }
            None => {
                inner.appends += 1;
                let last = Self::store(&mut inner, batch);
                Ok(Appended {
                    index: last.or(inner.next_index.checked_sub(1)),
                })
            }
        }
    }

    fn read_from(&self, seq: u64, max: usize) -> Result<Vec<Record>, StoreError> {
        let inner = self.lock();
        Ok(inner
            .log
            .iter()
            .filter(|(_, r)| r.seq.is_some_and(|s| s > seq))
            .take(max)
            .map(|(_, r)| r.clone())
            .collect())
    }

    fn recover(&self) -> Result<Recovered, StoreError> {
        let mut inner = self.lock();
        if inner.recover_failures > 0 {
            inner.recover_failures -= 1;
            return Err(StoreError::Closed);
        }
        Ok(inner.in_doubt.take().unwrap_or(Recovered::NotCommitted))
    }

    fn write_snapshot(&self, snap: &StoredSnapshot) -> Result<(), StoreError> {
        self.lock().snapshot = Some(snap.clone());
        Ok(())
    }

    fn prune_log(&self, index: u64, max: usize) -> Result<usize, StoreError> {
        let mut inner = self.lock();
        let n = inner
            .log
            .iter()
            .take_while(|(i, _)| *i < index)
            .count()
            .min(max);
        inner.log.drain(..n);
        Ok(n)
    }

    fn session(&self, token_hash: &str) -> Result<Option<Session>, StoreError> {
        Ok(self.lock().sessions.get(token_hash).cloned())
    }

    fn prune_sessions(&self, now: i64) -> Result<usize, StoreError> {
        let mut inner = self.lock();
        let before = inner.sessions.len();
        inner.sessions.retain(|_, s| s.expires_at >= now);
        Ok(before - inner.sessions.len())
    }

    fn archived_ticket(&self, id: &str) -> Result<Option<TicketRec>, StoreError> {
        Ok(self.lock().archived.get(id).cloned())
    }

    fn archived_report(&self, day: &str) -> Result<Option<DailyReport>, StoreError> {
        Ok(self.lock().reports.get(day).cloned())
    }

    fn archived_visits(&self, day: &str) -> Result<Option<VisitsReport>, StoreError> {
        Ok(self.lock().visits.get(day).cloned())
    }

    fn backup(&self, out: &mut dyn Write) -> Result<u64, StoreError> {
        let mut inner = self.lock();
        let mut w = backup::Writer::new(out)?;
        w.entry(b"Mformat", super::FORMAT_VERSION.to_string().as_bytes())?;
        for (i, r) in &inner.log {
            w.entry(&log_key(*i), &json(r))?;
        }
        for (h, s) in &inner.sessions {
            w.entry(&prefixed(b'S', h.as_bytes()), &json(s))?;
        }
        for (id, t) in &inner.archived {
            w.entry(&prefixed(b'A', id.as_bytes()), &json(t))?;
        }
        for (d, r) in &inner.reports {
            w.entry(&prefixed(b'R', d.as_bytes()), &json(r))?;
        }
        for (d, r) in &inner.visits {
            w.entry(&prefixed(b'V', d.as_bytes()), &json(r))?;
        }
        // Webhook bodies and cursors never go into a backup (rule 90).
        w.entry(b"Mlineage", &json(&Self::lineage_of(&mut inner)))?;
        if let Some(s) = &inner.snapshot {
            w.entry(SNAPSHOT_KEY, &json(s))?;
        }
        w.finish()
    }

    fn probe(&self) -> Result<(), StoreError> {
        if self.lock().recover_failures > 0 {
            return Err(StoreError::Closed);
        }
        Ok(())
    }

    fn lineage(&self) -> Result<Vec<LineageEntry>, StoreError> {
        Ok(Self::lineage_of(&mut self.lock()).to_vec())
    }

    fn hook_bodies(&self, seq: u64, max: usize) -> Result<Vec<HookBody>, StoreError> {
        let inner = self.lock();
        Ok(inner
            .hooks
            .range(seq.saturating_add(1)..)
            .take(max)
            .map(|(_, h)| h.clone())
            .collect())
    }

    fn hook_cursor(&self, id: &str) -> Result<Option<HookCursor>, StoreError> {
        Ok(self.lock().cursors.get(id).cloned())
    }

    fn put_hook_cursor(
        &self,
        id: &str,
        cursor: &HookCursor,
        _durable: bool,
    ) -> Result<(), StoreError> {
        self.lock().cursors.insert(id.to_string(), cursor.clone());
        Ok(())
    }

    fn prune_hooks(
        &self,
        through: u64,
        before: i64,
        max: usize,
    ) -> Result<Vec<(u64, String)>, StoreError> {
        let mut inner = self.lock();
        let mut gone = Vec::new();
        let mut dropped = Vec::new();
        for (seq, h) in inner.hooks.iter().take(max) {
            if *seq > through {
                if h.at >= before {
                    break;
                }
                dropped.push((*seq, h.kind.clone()));
            }
            gone.push(*seq);
        }
        for seq in gone {
            inner.hooks.remove(&seq);
        }
        Ok(dropped)
    }
}
