//! The durable store, behind the `Store` trait: what the hub needs to keep
//! the queue safe, independent of where it is kept. `sled.rs` is the
//! embedded default (one directory, no set-up); `memory.rs` keeps everything
//! in memory for tests and can fail on purpose.
//!
//! The surface is what any backend must offer (a PostgreSQL one included):
//!
//! - `append`: one group commit, atomically, after a known `seq` (the store
//!   refuses a batch whose `after_seq` is not its last), durable when it
//!   returns `Ok`; a commit whose result cannot be known is reported as
//!   `StoreError::OutcomeUnknown`, and `recover` then says what happened;
//! - `load` (the latest snapshot and every record after it) and `read_from`
//!   (the public records after a `seq`), to rebuild and to follow the log;
//! - snapshots, which only shorten start-up (the log is the truth);
//! - login sessions, the tickets and reports (daily and visits) of past days;
//! - `backup` in one backend-neutral format (`backup.rs`), and restore.
//!
//! Day keys of person hashes (rule 81) are kept apart from the log, in the
//! same atomic commit: a batch adds the keys it made and, when a day starts,
//! erases every key of a day before it, so nothing links a person across
//! days. They never go into a backup.
//!
//! The request-id table (`(scope, request_id)` → ticket, rule 24) is durable
//! through the log itself: every `TicketIssued` record carries its scope and
//! request id, and snapshots carry the table, so every backend keeps it
//! exactly as long as it keeps tickets, in the same atomic commit.
//!
//! Webhooks (rules 89–90, 112): the store keeps its lineage (a list of
//! `(epoch, first_seq)`: `[(new, 1)]` when made, `restore` appends `(new,
//! last seq + 1)`), an outbox of webhook bodies (each event a webhook takes,
//! as it is POSTed, written in the same atomic commit as the event) and each
//! webhook's cursor (its last acknowledged seq). Bodies go once every webhook
//! is past them or after 7 days (`prune_hooks`). Neither bodies nor cursors
//! go into a backup: after a restore each webhook starts after the restored
//! log's last event.
//!
//! Nothing here decides queue rules, and nothing outside `store/` knows which
//! backend runs.

pub mod backup;
pub mod memory;
pub mod postgres;
pub mod sled;
#[cfg(test)]
mod tests;

use std::io::Write;

use chrono::NaiveDate;
use luot_protocol::{DailyReport, VisitsReport};
use serde::{Deserialize, Serialize};

use crate::engine::{Event, StateSnapshot, TicketRec};

/// A replicated store's facts for `/api/v1/ha` (rule 106).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Replication {
    /// `postgres`, or `None` for the embedded store.
    pub kind: Option<&'static str>,
    /// This server's term (0 before it took the store over).
    pub term: Option<u64>,
    /// 0 when all WAL received is replayed, else seconds since the last
    /// replayed transaction; `None` on a primary.
    pub replica_lag_s: Option<f64>,
    /// The synchronous standby's `application_name`; `None` on a replica or
    /// when acknowledged events are on one machine.
    pub sync_standby: Option<String>,
}

/// One entry of a store's lineage (rule 112): events from `first_seq` on
/// (until the next entry) belong to `epoch`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct LineageEntry {
    pub epoch: String,
    pub first_seq: u64,
}

/// A fresh epoch: `ep_` + 22 URL-safe base64 characters (128 random bits).
pub fn new_epoch() -> String {
    use base64::Engine;
    let bits: [u8; 16] = rand::random();
    format!(
        "ep_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bits)
    )
}

/// The epoch event `seq` belongs to: the last entry with `first_seq` ≤ seq.
pub fn epoch_of(lineage: &[LineageEntry], seq: u64) -> Option<&str> {
    lineage
        .iter()
        .rev()
        .find(|e| e.first_seq <= seq)
        .map(|e| e.epoch.as_str())
}

/// A webhook body waiting in the outbox (rule 89): written with its event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HookBody {
    pub seq: u64,
    /// When it was committed (ms since the Unix epoch), for the 7-day rule.
    pub at: i64,
    /// The event's kind, as on the wire (`ticket_called`).
    pub kind: String,
    /// The JSON body, byte for byte as it is POSTed.
    pub body: Vec<u8>,
}

impl HookBody {
    /// The stored value: `at` (8 bytes, big-endian), the kind's length (1
    /// byte), the kind, the body.
    pub fn encode(&self) -> Vec<u8> {
        let kind = &self.kind.as_bytes()[..self.kind.len().min(255)];
        let mut v = Vec::with_capacity(9 + kind.len() + self.body.len());
        v.extend_from_slice(&self.at.to_be_bytes());
        v.push(kind.len() as u8);
        v.extend_from_slice(kind);
        v.extend_from_slice(&self.body);
        v
    }

    pub fn decode(seq: u64, v: &[u8]) -> Result<HookBody, StoreError> {
        let bad = || StoreError::Corrupt(format!("webhook body {seq}"));
        let at = i64::from_be_bytes(v.get(..8).and_then(|b| b.try_into().ok()).ok_or_else(bad)?);
        let n = *v.get(8).ok_or_else(bad)? as usize;
        let kind = v.get(9..9 + n).ok_or_else(bad)?;
        Ok(HookBody {
            seq,
            at,
            kind: String::from_utf8(kind.to_vec()).map_err(|_| bad())?,
            body: v[9 + n..].to_vec(),
        })
    }
}

/// Where a webhook stands (rule 90), kept durable by the store.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
pub struct HookCursor {
    /// Every event up to this seq is acknowledged or not of its kinds: a
    /// restart resumes after it.
    pub after: u64,
    /// The last acknowledged seq; `None` before the first.
    pub acked: Option<u64>,
    /// Events it takes from this seq on were dropped after 7 days: its next
    /// delivery says so (`skipped_from`).
    #[serde(default)]
    pub skipped_from: Option<u64>,
}

/// Version of the stored layout. A newer binary migrates older data; an
/// older binary refuses newer data.
pub const FORMAT_VERSION: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The write did not happen (known): nothing of the batch is stored.
    #[error("the data store failed: {0}")]
    Failed(String),
    /// The write may or may not have happened (a flush that failed halfway, a
    /// lost connection after COMMIT was sent); `Store::recover` tells which.
    #[error("the data store may not have stored the last write: {0}")]
    OutcomeUnknown(String),
    /// A batch appended after a `seq` that is not the store's last: someone
    /// else wrote, or the hub lost track. Nothing was written.
    #[error(
        "the data store's log ends at seq {found}, not at seq {expected} as this server thought"
    )]
    Conflict { expected: u64, found: u64 },
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
    /// Another server writes the store now, or this one's database is a
    /// replica (rules 102–104): this server must not write.
    #[error("this server does not write the store: {0}")]
    NotPrimary(String),
    /// The database would acknowledge what it may lose (rule 100).
    #[error("{0}")]
    Unsafe(String),
    /// A backup of another `[site] id` (rule 110).
    #[error("the backup is of site \"{0}\", not of this site")]
    WrongSite(String),
}

/// One record of the event log.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Record {
    /// The public sequence number; `None` for private events (feedback).
    pub seq: Option<u64>,
    pub event: Event,
}

/// A stored snapshot of the engine state.
#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct StoredSnapshot {
    /// The store's position of the last record it includes (`Appended::index`).
    pub index: u64,
    /// The last public seq it includes.
    pub seq: u64,
    pub state: StateSnapshot,
}

/// A login session as stored.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Session {
    pub username: String,
    pub expires_at: i64,
}

/// What one group commit writes, all or nothing.
#[derive(Default, Debug)]
pub struct WriteBatch {
    /// The last public seq before this batch: the store refuses the batch
    /// unless its log ends there (`StoreError::Conflict`).
    pub after_seq: u64,
    /// Log records in order; public ones numbered `after_seq + 1, + 2, …`.
    pub records: Vec<Record>,
    /// Login sessions by the sha256 of their token.
    pub sessions: Vec<(String, Session)>,
    /// Tickets of a day that just ended.
    pub archived: Vec<TicketRec>,
    /// Reports of days that just ended, by day.
    pub reports: Vec<(String, DailyReport)>,
    /// Visits reports (rule 58) of days that just ended, by day.
    pub visits: Vec<(String, VisitsReport)>,
    /// Day keys made by this batch (rule 81).
    pub day_keys: Vec<(NaiveDate, [u8; 32])>,
    /// A day started: erase the keys of every day before this one.
    pub drop_keys_before: Option<NaiveDate>,
    /// Webhook bodies of this batch's events (rule 89), in seq order.
    pub hooks: Vec<HookBody>,
}

impl WriteBatch {
    pub fn new(after_seq: u64) -> WriteBatch {
        WriteBatch {
            after_seq,
            ..WriteBatch::default()
        }
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
            && self.sessions.is_empty()
            && self.archived.is_empty()
            && self.reports.is_empty()
            && self.visits.is_empty()
            && self.day_keys.is_empty()
            && self.drop_keys_before.is_none()
            && self.hooks.is_empty()
    }

    /// The last public seq once the batch is stored.
    pub fn last_seq(&self) -> u64 {
        self.records
            .iter()
            .rev()
            .find_map(|r| r.seq)
            .unwrap_or(self.after_seq)
    }

    /// Checks that the public records are numbered on from `after_seq`
    /// without a gap (every backend refuses anything else).
    pub fn check_numbering(&self) -> Result<(), StoreError> {
        let seqs = self.records.iter().filter_map(|r| r.seq);
        for (expect, seq) in (self.after_seq + 1..).zip(seqs) {
            if seq != expect {
                return Err(StoreError::Corrupt(format!(
                    "a batch numbered seq {seq} where {expect} was due"
                )));
            }
        }
        Ok(())
    }
}

/// A stored batch: the store's position of its last record, for snapshots.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    pub index: Option<u64>,
}

/// What the store holds at start-up.
#[derive(Debug)]
pub struct Loaded {
    pub snapshot: Option<StoredSnapshot>,
    /// Records after the snapshot, in order.
    pub records: Vec<Record>,
    /// The store's position of the last record (or of the snapshot's).
    pub index: Option<u64>,
    /// The day keys kept (today's and days ahead).
    pub day_keys: Vec<(NaiveDate, [u8; 32])>,
}

/// What became of a write that failed (`Store::recover`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recovered {
    /// It is stored after all: answer it as done.
    Committed,
    /// Nothing of it is stored (any part that reached the disk was removed).
    NotCommitted,
}

/// A durable store of one site's queue (see the module doc).
pub trait Store: Send + Sync {
    /// The latest snapshot and every record after it; refuses a log that
    /// lost acknowledged records.
    fn load(&self) -> Result<Loaded, StoreError>;
    /// Stores a batch atomically after `batch.after_seq` and makes it durable.
    fn append(&self, batch: &WriteBatch) -> Result<Appended, StoreError>;
    /// Up to `max` public records with a seq above `seq`, in order (those the
    /// store still holds: old records go once a snapshot covers them).
    fn read_from(&self, seq: u64, max: usize) -> Result<Vec<Record>, StoreError>;
    /// After a failed `append`: makes the store usable again and says
    /// whether that write is stored. A store that can take back what reached
    /// the disk (sled) does so; one that cannot know (a lost database
    /// connection) reads what is there.
    fn recover(&self) -> Result<Recovered, StoreError>;
    /// Saves a snapshot; only ever one whose records are all stored.
    fn write_snapshot(&self, snap: &StoredSnapshot) -> Result<(), StoreError>;
    /// Removes up to `max` log records at positions before `index` (ones a
    /// stored snapshot covers).
    fn prune_log(&self, index: u64, max: usize) -> Result<usize, StoreError>;
    fn session(&self, token_hash: &str) -> Result<Option<Session>, StoreError>;
    /// Removes sessions that expired before `now` (ms since the epoch).
    fn prune_sessions(&self, now: i64) -> Result<usize, StoreError>;
    fn archived_ticket(&self, id: &str) -> Result<Option<TicketRec>, StoreError>;
    fn archived_report(&self, day: &str) -> Result<Option<DailyReport>, StoreError>;
    /// The visits report (rule 58) stored when `day` ended.
    fn archived_visits(&self, day: &str) -> Result<Option<VisitsReport>, StoreError>;
    /// Writes a consistent backup (`backup.rs`); returns the entries written.
    fn backup(&self, out: &mut dyn Write) -> Result<u64, StoreError>;
    /// Proves the store is writable now (for `/healthz`).
    fn probe(&self) -> Result<(), StoreError>;
    /// An idle primary's proof of life (rule 102); nothing for a store only
    /// one server writes.
    fn beat(&self) -> Result<(), StoreError> {
        Ok(())
    }
    /// What the store knows of its replication (rule 106); nothing for an
    /// embedded store.
    fn replication(&self) -> Result<Replication, StoreError> {
        Ok(Replication::default())
    }
    /// The lineage (rule 112), oldest entry first; never empty.
    fn lineage(&self) -> Result<Vec<LineageEntry>, StoreError>;
    /// Up to `max` webhook bodies with a seq above `seq`, in order.
    fn hook_bodies(&self, seq: u64, max: usize) -> Result<Vec<HookBody>, StoreError>;
    /// A webhook's cursor; `None` for a webhook never seen.
    fn hook_cursor(&self, id: &str) -> Result<Option<HookCursor>, StoreError>;
    /// Writes a webhook's cursor. `durable`: on disk before it returns;
    /// otherwise with the next commit or `sync` (a cursor lost to a crash
    /// only makes a delivery repeat).
    fn put_hook_cursor(
        &self,
        id: &str,
        cursor: &HookCursor,
        durable: bool,
    ) -> Result<(), StoreError>;
    /// Removes up to `max` webhook bodies, oldest first: those with a seq up
    /// to `through` (every webhook is past them) and those stored before
    /// `before` (ms; rule 90's 7 days). Returns the seq and kind of each
    /// removed above `through` (some webhook still needed it).
    fn prune_hooks(
        &self,
        through: u64,
        before: i64,
        max: usize,
    ) -> Result<Vec<(u64, String)>, StoreError>;
}

pub(crate) fn json<T: Serialize>(v: &T) -> Vec<u8> {
    serde_json::to_vec(v).unwrap_or_default()
}
