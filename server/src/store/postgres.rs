//! The PostgreSQL backend (§13, rules 100–103, 109–110): the only file that
//! knows PostgreSQL. Several sites may share one database; every row is
//! keyed by `site_id`.
//!
//! Tables (made on first use):
//! - `luot_head(site_id, seq, term, beat, writer, writer_url, beat_at,
//!   format)`: where the log ends and who writes it. Every group commit is
//!   one transaction that starts with `UPDATE luot_head SET seq = $new, beat
//!   = beat + 1, beat_at = now() WHERE site_id = $site AND seq = $old AND
//!   term = $term`; no row touched means another server writes (or the log
//!   moved), and nothing is written (rule 102).
//! - `luot_events(site_id, seq, term, at, body)`: every public event as the
//!   log keeps it (scope and request id included), never pruned.
//! - `luot_private(site_id, idx, after_seq, body)`: the log's private
//!   records (feedback, alert contacts, …), numbered 1, 2, … per site, each
//!   placed after the public event `after_seq`.
//! - `luot_kv(site_id, kind, key, value)`: everything else under the backup
//!   file's prefixes (`S` sessions, `A` past tickets, `R` and `V` past
//!   reports, `K` day keys, `M` lineage, `H` webhook cursors, `X` the latest
//!   snapshot).
//! - `luot_hooks(site_id, seq, at, kind, body)`: the webhook outbox.
//!
//! A record's position (`Appended::index`, what snapshots cover) is the
//! public seq reached at it plus the private records up to it, less one: the
//! same numbering sled gives a log it made, derived here instead of stored.
//!
//! A commit whose outcome cannot be known (the connection lost, an error
//! once `COMMIT` was sent) is `OutcomeUnknown`; `recover` reconnects and
//! reads the head `FOR UPDATE` (rule 103): this server's term and the new
//! seq mean committed, the old seq means not, anything else means another
//! server writes now (`NotPrimary`).

use std::io::Write;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use luot_protocol::{DailyReport, VisitsReport};
use postgres::error::SqlState;
use postgres::{Client, IsolationLevel, NoTls, Statement};

use super::backup::{self, SNAPSHOT_KEY, log_index, log_key, prefixed};
use super::{
    Appended, FORMAT_VERSION, HookBody, HookCursor, LineageEntry, Loaded, Record, Recovered,
    Session, Store, StoreError, StoredSnapshot, WriteBatch, json, new_epoch,
};
use crate::config::store::Postgres;
use crate::engine::{Event, TicketRec};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS luot_head (
    site_id text PRIMARY KEY,
    seq bigint NOT NULL,
    term bigint NOT NULL,
    beat bigint NOT NULL,
    writer text,
    writer_url text,
    beat_at timestamptz,
    format integer NOT NULL
);
CREATE TABLE IF NOT EXISTS luot_events (
    site_id text NOT NULL,
    seq bigint NOT NULL,
    term bigint NOT NULL,
    at timestamptz NOT NULL,
    body jsonb NOT NULL,
    PRIMARY KEY (site_id, seq)
);
CREATE TABLE IF NOT EXISTS luot_private (
    site_id text NOT NULL,
    idx bigint NOT NULL,
    after_seq bigint NOT NULL,
    body jsonb NOT NULL,
    PRIMARY KEY (site_id, idx)
);
CREATE TABLE IF NOT EXISTS luot_kv (
    site_id text NOT NULL,
    kind text NOT NULL,
    key text NOT NULL,
    value bytea NOT NULL,
    PRIMARY KEY (site_id, kind, key)
);
CREATE TABLE IF NOT EXISTS luot_hooks (
    site_id text NOT NULL,
    seq bigint NOT NULL,
    at bigint NOT NULL,
    kind text NOT NULL,
    body bytea NOT NULL,
    PRIMARY KEY (site_id, seq)
);
";

/// Makes the tables when missing. Two servers (or tests) making them at
/// once would collide in PostgreSQL's catalog, so one waits for the other.
fn make_schema(c: &mut Client) -> Result<(), StoreError> {
    let mut t = c.transaction()?;
    t.execute("SELECT pg_advisory_xact_lock(7410700)", &[])?;
    t.batch_execute(SCHEMA)?;
    t.commit()?;
    Ok(())
}

/// The head row as read (rule 101).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeadRow {
    pub seq: u64,
    pub term: u64,
    pub beat: u64,
    pub writer: Option<String>,
    pub writer_url: Option<String>,
    /// `beat_at` as RFC 3339, when set.
    pub beat_at: Option<String>,
}

/// What this server's PostgreSQL says of itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Status {
    /// `pg_is_in_recovery()`: a replica (or not yet promoted).
    pub in_recovery: bool,
    /// The site's head row; `None` before the store was made.
    pub head: Option<HeadRow>,
}

/// Where this server's log ends, as it knows it.
#[derive(Clone, Copy, Debug, Default)]
struct Tail {
    seq: u64,
    /// Private records stored (the highest `idx`).
    privates: u64,
    /// This server's term; 0 until it took the store over (`claim`).
    term: u64,
}

impl Tail {
    fn index(&self) -> Option<u64> {
        (self.seq + self.privates).checked_sub(1)
    }
}

/// A commit whose outcome `recover` must find out.
#[derive(Clone, Copy, Debug)]
struct InFlight {
    old: u64,
    after: Tail,
}

/// The connection the hub writes through, with its prepared statements.
struct Writer {
    client: Client,
    head: Statement,
    events: Statement,
    privates: Statement,
    kv: Statement,
    hooks: Statement,
}

impl Writer {
    fn prepare(mut client: Client) -> Result<Writer, StoreError> {
        Ok(Writer {
            head: client.prepare(
                "UPDATE luot_head SET seq = $1, beat = beat + 1, beat_at = now() \
                 WHERE site_id = $2 AND seq = $3 AND term = $4",
            )?,
            events: client.prepare(
                "INSERT INTO luot_events (site_id, seq, term, at, body) \
                 SELECT $1, s, $2, now(), b::jsonb FROM unnest($3::bigint[], $4::text[]) AS t(s, b)",
            )?,
            privates: client.prepare(
                "INSERT INTO luot_private (site_id, idx, after_seq, body) \
                 SELECT $1, i, a, b::jsonb FROM unnest($2::bigint[], $3::bigint[], $4::text[]) AS t(i, a, b)",
            )?,
            kv: client.prepare(
                "INSERT INTO luot_kv (site_id, kind, key, value) \
                 SELECT $1, k, n, v FROM unnest($2::text[], $3::text[], $4::bytea[]) AS t(k, n, v) \
                 ON CONFLICT (site_id, kind, key) DO UPDATE SET value = EXCLUDED.value",
            )?,
            hooks: client.prepare(
                "INSERT INTO luot_hooks (site_id, seq, at, kind, body) \
                 SELECT $1, s, a, k, b FROM unnest($2::bigint[], $3::bigint[], $4::text[], $5::bytea[]) AS t(s, a, k, b)",
            )?,
            client,
        })
    }
}

impl From<postgres::Error> for StoreError {
    fn from(e: postgres::Error) -> StoreError {
        if e.code() == Some(&SqlState::READ_ONLY_SQL_TRANSACTION) {
            return StoreError::NotPrimary("the PostgreSQL server is read-only (a replica)".into());
        }
        StoreError::Failed(pg_message(&e))
    }
}

/// PostgreSQL's own words for an error (its `Display` says only "db error").
fn pg_message(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("PostgreSQL: {} ({})", db.message(), db.code().code()),
        None => format!("PostgreSQL: {e}"),
    }
}

fn corrupt(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("{what}: {e}"))
}

fn i64_of(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn u64_of(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

/// Opens a connection and checks that commits wait for the disk (and, with
/// a synchronous standby, for it): rule 100.
fn connect(cfg: &postgres::Config) -> Result<Client, StoreError> {
    let mut client = cfg.connect(NoTls).map_err(|e| {
        StoreError::Failed(format!("cannot connect to PostgreSQL: {}", pg_message(&e)))
    })?;
    let row = client.query_one("SHOW synchronous_commit", &[])?;
    let value: String = row.get(0);
    if value != "on" && value != "remote_apply" {
        return Err(StoreError::Unsafe(format!(
            "PostgreSQL's synchronous_commit is \"{value}\" in luot's session; luot needs \"on\" \
             or \"remote_apply\" so that an acknowledged ticket is on disk \
             (set synchronous_commit = on in postgresql.conf, or for the luot role)"
        )));
    }
    Ok(client)
}

/// The PostgreSQL store of one site.
pub struct PgStore {
    site: String,
    node: String,
    node_url: Option<String>,
    config: postgres::Config,
    writer: Mutex<Option<Writer>>,
    /// Spare connections for reads and small writes off the hub's thread.
    pool: Mutex<Vec<Client>>,
    tail: Mutex<Tail>,
    in_flight: Mutex<Option<InFlight>>,
    /// When the last commit or beat succeeded (rule 102, `/healthz`).
    last_ok: Mutex<Option<Instant>>,
}

impl PgStore {
    /// Connects, makes the tables when missing (on a primary), and reads
    /// where the site's log ends. A store not yet made is made with this
    /// node as its writer and term 1 when the server is out of recovery.
    /// The store takes commits only after `claim`.
    pub fn open(
        site: &str,
        pg: &Postgres,
        node: &str,
        node_url: Option<&str>,
    ) -> Result<PgStore, StoreError> {
        let mut config: postgres::Config = pg.url.parse().map_err(|_| {
            StoreError::Failed("store.url is not a PostgreSQL connection string".into())
        })?;
        if let Some(pw) = pg.password()? {
            config.password(pw);
        }
        config.connect_timeout(Duration::from_secs(5));
        config.application_name(&format!("luot-{node}"));
        // "relation … already exists, skipping" and such are not news.
        config.options("-c client_min_messages=warning");
        // A connection that stops answering counts as lost (rule 103).
        config.keepalives_idle(Duration::from_secs(5));
        let store = PgStore {
            site: site.to_string(),
            node: node.to_string(),
            node_url: node_url.map(str::to_string),
            config,
            writer: Mutex::new(None),
            pool: Mutex::new(Vec::new()),
            tail: Mutex::new(Tail::default()),
            in_flight: Mutex::new(None),
            last_ok: Mutex::new(None),
        };
        store.with_client(|c| store.ensure(c))?;
        store.read_tail()?;
        Ok(store)
    }

    /// The site's id.
    pub fn site(&self) -> &str {
        &self.site
    }

    /// Makes the tables, the head row and the lineage when missing (only on
    /// a server out of recovery: a replica gets them by replication).
    fn ensure(&self, c: &mut Client) -> Result<(), StoreError> {
        let in_recovery: bool = c.query_one("SELECT pg_is_in_recovery()", &[])?.get(0);
        if in_recovery {
            return Ok(());
        }
        make_schema(c)?;
        let mut t = c.transaction()?;
        let made = t.execute(
            "INSERT INTO luot_head (site_id, seq, term, beat, writer, writer_url, beat_at, format) \
             VALUES ($1, 0, 1, 0, $2, $3, now(), $4) ON CONFLICT (site_id) DO NOTHING",
            &[
                &self.site,
                &self.node,
                &self.node_url,
                &(FORMAT_VERSION as i32),
            ],
        )?;
        if made == 1 {
            let lineage = vec![LineageEntry {
                epoch: new_epoch(),
                first_seq: 1,
            }];
            t.execute(
                "INSERT INTO luot_kv (site_id, kind, key, value) VALUES ($1, 'M', 'lineage', $2) \
                 ON CONFLICT DO NOTHING",
                &[&self.site, &json(&lineage)],
            )?;
            tracing::info!(site = %self.site, "a new store made in PostgreSQL");
        }
        t.commit()?;
        Ok(())
    }

    /// Reads where the log ends (not the term: that is this server's own).
    fn read_tail(&self) -> Result<(), StoreError> {
        let (seq, privates, format) = self.with_client(|c| {
            let tables: bool = c
                .query_one("SELECT to_regclass('luot_head') IS NOT NULL", &[])?
                .get(0);
            if !tables {
                // A replica of a primary that never ran luot: nothing yet.
                return Ok((0, 0, FORMAT_VERSION as i32));
            }
            let head = c.query_opt(
                "SELECT seq, format FROM luot_head WHERE site_id = $1",
                &[&self.site],
            )?;
            let (seq, format) = match head {
                Some(r) => (u64_of(r.get(0)), r.get::<_, i32>(1)),
                None => (0, FORMAT_VERSION as i32),
            };
            let privates: i64 = c
                .query_one(
                    "SELECT coalesce(max(idx), 0) FROM luot_private WHERE site_id = $1",
                    &[&self.site],
                )?
                .get(0);
            Ok((seq, u64_of(privates), format))
        })?;
        if format > FORMAT_VERSION as i32 {
            return Err(StoreError::TooNew(format as u32));
        }
        let mut tail = self.tail.lock().map_err(|_| StoreError::Closed)?;
        tail.seq = seq;
        tail.privates = privates;
        Ok(())
    }

    /// Runs `f` on a spare connection (made when none is free); a
    /// connection that failed is dropped.
    fn with_client<T>(
        &self,
        mut f: impl FnMut(&mut Client) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let spare = self.pool.lock().map_err(|_| StoreError::Closed)?.pop();
        let (mut client, pooled) = match spare {
            Some(c) if !c.is_closed() => (c, true),
            _ => (connect(&self.config)?, false),
        };
        let mut r = f(&mut client);
        if pooled && client.is_closed() && r.is_err() {
            // A spare that died while it waited (PostgreSQL restarted, the
            // connection was ended): once more on a new connection.
            client = connect(&self.config)?;
            r = f(&mut client);
        }
        let broken = client.is_closed()
            || matches!(
                &r,
                Err(StoreError::Failed(_) | StoreError::OutcomeUnknown(_))
            );
        if !broken
            && let Ok(mut pool) = self.pool.lock()
            && pool.len() < 8
        {
            pool.push(client);
        }
        r
    }

    /// What this server's PostgreSQL says now: in recovery or not, and the
    /// head row (rules 104, 106).
    pub fn status(&self) -> Result<Status, StoreError> {
        self.with_client(|c| {
            let in_recovery: bool = c.query_one("SELECT pg_is_in_recovery()", &[])?.get(0);
            let head = self.head_row(c)?;
            Ok(Status { in_recovery, head })
        })
    }

    fn head_row(&self, c: &mut Client) -> Result<Option<HeadRow>, StoreError> {
        let row = c
            .query_opt(
                "SELECT seq, term, beat, writer, writer_url, \
             to_char(beat_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"') \
             FROM luot_head WHERE site_id = $1",
                &[&self.site],
            )
            .map_err(|e| {
                // A replica that has not replicated the tables yet.
                if e.code() == Some(&SqlState::UNDEFINED_TABLE) {
                    StoreError::NotPrimary(
                        "the site's tables are not in this PostgreSQL yet".into(),
                    )
                } else {
                    e.into()
                }
            })?;
        Ok(row.map(|r| HeadRow {
            seq: u64_of(r.get(0)),
            term: u64_of(r.get(1)),
            beat: u64_of(r.get(2)),
            writer: r.get(3),
            writer_url: r.get(4),
            beat_at: r.get(5),
        }))
    }

    /// Takes the store over (rule 104): `term + 1`, `beat + 1`, this node as
    /// `writer`, where `seq` and `term` are still as read. `Ok(false)` when
    /// they moved (read on and try again).
    pub fn claim(&self, read: &HeadRow) -> Result<bool, StoreError> {
        let term = read.term + 1;
        let n = self.with_client(|c| {
            Ok(c.execute(
                "UPDATE luot_head SET term = $1, beat = beat + 1, writer = $2, writer_url = $3, \
                 beat_at = now() WHERE site_id = $4 AND seq = $5 AND term = $6",
                &[
                    &i64_of(term),
                    &self.node,
                    &self.node_url,
                    &self.site,
                    &i64_of(read.seq),
                    &i64_of(read.term),
                ],
            )?)
        })?;
        if n != 1 {
            return Ok(false);
        }
        self.read_tail()?;
        let mut tail = self.tail.lock().map_err(|_| StoreError::Closed)?;
        tail.term = term;
        drop(tail);
        self.note_ok();
        tracing::info!(site = %self.site, node = %self.node, term, seq = read.seq, "this server writes the store now");
        Ok(true)
    }

    /// This server's term (0 before `claim`).
    pub fn term(&self) -> u64 {
        self.tail.lock().map(|t| t.term).unwrap_or(0)
    }

    /// An idle primary's beat (rule 102): the head `UPDATE` alone, which
    /// never changes `seq`. `NotPrimary` when no row was touched.
    fn beat_now(&self) -> Result<(), StoreError> {
        let tail = *self.tail.lock().map_err(|_| StoreError::Closed)?;
        let mut guard = self.writer.lock().map_err(|_| StoreError::Closed)?;
        let w = self.writer_conn(&mut guard)?;
        let n = w
            .client
            .execute(
                &w.head,
                &[
                    &i64_of(tail.seq),
                    &self.site,
                    &i64_of(tail.seq),
                    &i64_of(tail.term),
                ],
            )
            .map_err(|e| {
                let e: StoreError = e.into();
                *guard = None;
                e
            })?;
        if n != 1 {
            return Err(StoreError::NotPrimary(
                "another server writes the store now (luot_head moved)".into(),
            ));
        }
        drop(guard);
        self.note_ok();
        Ok(())
    }

    fn note_ok(&self) {
        if let Ok(mut t) = self.last_ok.lock() {
            *t = Some(Instant::now());
        }
    }

    /// The hub's connection, made when there is none.
    fn writer_conn<'a>(&self, guard: &'a mut Option<Writer>) -> Result<&'a mut Writer, StoreError> {
        if guard.as_ref().is_none_or(|w| w.client.is_closed()) {
            *guard = Some(Writer::prepare(connect(&self.config)?)?);
        }
        guard.as_mut().ok_or(StoreError::Closed)
    }

    /// One group commit's transaction (rule 102).
    fn write(&self, w: &mut Writer, batch: &WriteBatch, tail: Tail) -> Result<Tail, StoreError> {
        let new = batch.last_seq();
        let mut t = w.client.transaction()?;
        let n = t.execute(
            &w.head,
            &[
                &i64_of(new),
                &self.site,
                &i64_of(batch.after_seq),
                &i64_of(tail.term),
            ],
        )?;
        if n != 1 {
            let row = t.query_opt(
                "SELECT seq, term FROM luot_head WHERE site_id = $1",
                &[&self.site],
            )?;
            drop(t);
            return Err(match row.map(|r| (u64_of(r.get(0)), u64_of(r.get(1)))) {
                Some((_, term)) if term != tail.term => StoreError::NotPrimary(format!(
                    "another server writes the store now (term {term}, this server's {})",
                    tail.term
                )),
                Some((found, _)) => StoreError::Conflict {
                    expected: batch.after_seq,
                    found,
                },
                None => StoreError::NotPrimary("the site's head row is gone".into()),
            });
        }
        let mut after = tail;
        after.seq = new;
        let (mut seqs, mut bodies) = (Vec::new(), Vec::new());
        let (mut idxs, mut afters, mut pbodies) = (Vec::new(), Vec::new(), Vec::new());
        let mut last = batch.after_seq;
        for r in &batch.records {
            let body = serde_json::to_string(&r.event).map_err(|e| corrupt("an event", e))?;
            match r.seq {
                Some(s) => {
                    seqs.push(i64_of(s));
                    bodies.push(body);
                    last = s;
                }
                None => {
                    after.privates += 1;
                    idxs.push(i64_of(after.privates));
                    afters.push(i64_of(last));
                    pbodies.push(body);
                }
            }
        }
        if !seqs.is_empty() {
            t.execute(&w.events, &[&self.site, &i64_of(tail.term), &seqs, &bodies])?;
        }
        if !idxs.is_empty() {
            t.execute(&w.privates, &[&self.site, &idxs, &afters, &pbodies])?;
        }
        let kv = kv_rows(batch);
        if !kv.0.is_empty() {
            t.execute(&w.kv, &[&self.site, &kv.0, &kv.1, &kv.2])?;
        }
        if let Some(day) = batch.drop_keys_before {
            t.execute(
                "DELETE FROM luot_kv WHERE site_id = $1 AND kind = 'K' AND key < $2",
                &[&self.site, &day.to_string()],
            )?;
        }
        if !batch.hooks.is_empty() {
            let seqs: Vec<i64> = batch.hooks.iter().map(|h| i64_of(h.seq)).collect();
            let ats: Vec<i64> = batch.hooks.iter().map(|h| h.at).collect();
            let kinds: Vec<&str> = batch.hooks.iter().map(|h| h.kind.as_str()).collect();
            let bodies: Vec<&[u8]> = batch.hooks.iter().map(|h| h.body.as_slice()).collect();
            t.execute(&w.hooks, &[&self.site, &seqs, &ats, &kinds, &bodies])?;
        }
        // From here on the outcome may be unknown.
        if let Ok(mut f) = self.in_flight.lock() {
            *f = Some(InFlight {
                old: batch.after_seq,
                after,
            });
        }
        t.commit().map_err(|e| match e.code() {
            // PostgreSQL answered, so it is known: not stored.
            Some(code)
                if *code != SqlState::ADMIN_SHUTDOWN && *code != SqlState::CRASH_SHUTDOWN =>
            {
                if let Ok(mut f) = self.in_flight.lock() {
                    *f = None;
                }
                StoreError::Failed(pg_message(&e))
            }
            _ => StoreError::OutcomeUnknown(pg_message(&e)),
        })?;
        if let Ok(mut f) = self.in_flight.lock() {
            *f = None;
        }
        Ok(after)
    }

    fn kv_get(&self, kind: &str, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.with_client(|c| {
            Ok(c.query_opt(
                "SELECT value FROM luot_kv WHERE site_id = $1 AND kind = $2 AND key = $3",
                &[&self.site, &kind, &key],
            )?
            .map(|r| r.get(0)))
        })
    }

    fn kv_json<T: serde::de::DeserializeOwned>(
        &self,
        kind: &str,
        key: &str,
    ) -> Result<Option<T>, StoreError> {
        self.kv_get(kind, key)?
            .map(|v| serde_json::from_slice(&v).map_err(|e| corrupt("a stored value", e)))
            .transpose()
    }

    fn kv_put(&self, kind: &str, key: &str, value: &[u8]) -> Result<(), StoreError> {
        self.with_client(|c| {
            c.execute(
                "INSERT INTO luot_kv (site_id, kind, key, value) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (site_id, kind, key) DO UPDATE SET value = EXCLUDED.value",
                &[&self.site, &kind, &key, &value],
            )?;
            Ok(())
        })
    }

    /// Reads the log after a snapshot (or all of it) in one consistent view.
    fn load_in(&self, c: &mut Client) -> Result<Loaded, StoreError> {
        let mut t = c
            .build_transaction()
            .isolation_level(IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()?;
        let snapshot: Option<StoredSnapshot> = t
            .query_opt(
                "SELECT value FROM luot_kv WHERE site_id = $1 AND kind = 'X' AND key = 'latest'",
                &[&self.site],
            )?
            .map(|r| {
                serde_json::from_slice(r.get::<_, &[u8]>(0)).map_err(|e| corrupt("the snapshot", e))
            })
            .transpose()?;
        let (from_seq, from_index) = match &snapshot {
            Some(s) => (i64_of(s.seq), i64_of(s.index)),
            None => (0, -1),
        };
        let publics = t.query(
            "SELECT seq, body::text FROM luot_events WHERE site_id = $1 AND seq > $2 ORDER BY seq",
            &[&self.site, &from_seq],
        )?;
        let privates = t.query(
            "SELECT idx, after_seq, body::text FROM luot_private \
             WHERE site_id = $1 AND after_seq + idx - 1 > $2 ORDER BY idx",
            &[&self.site, &from_index],
        )?;
        let keys = t.query(
            "SELECT key, value FROM luot_kv WHERE site_id = $1 AND kind = 'K'",
            &[&self.site],
        )?;
        let head = t
            .query_opt(
                "SELECT seq FROM luot_head WHERE site_id = $1",
                &[&self.site],
            )?
            .map_or(0, |r| u64_of(r.get(0)));
        let max_private: i64 = t
            .query_one(
                "SELECT coalesce(max(idx), 0) FROM luot_private WHERE site_id = $1",
                &[&self.site],
            )?
            .get(0);
        t.commit()?;
        let mut records = Vec::with_capacity(publics.len() + privates.len());
        let mut privates = privates.into_iter().peekable();
        let mut expect = u64_of(from_seq) + 1;
        let private_rec = |r: postgres::Row| -> Result<Record, StoreError> {
            let body: &str = r.get(2);
            Ok(Record {
                seq: None,
                event: serde_json::from_str::<Event>(body)
                    .map_err(|e| corrupt("a private record", e))?,
            })
        };
        for p in publics {
            let seq = u64_of(p.get(0));
            if seq != expect {
                return Err(StoreError::Corrupt(format!(
                    "the event log jumps from seq {} to {seq}",
                    expect - 1
                )));
            }
            expect += 1;
            while privates.peek().is_some_and(|r| u64_of(r.get(1)) < seq) {
                if let Some(r) = privates.next() {
                    records.push(private_rec(r)?);
                }
            }
            let body: &str = p.get(1);
            records.push(Record {
                seq: Some(seq),
                event: serde_json::from_str(body)
                    .map_err(|e| corrupt(&format!("event {seq}"), e))?,
            });
        }
        for r in privates {
            records.push(private_rec(r)?);
        }
        if expect - 1 != head {
            return Err(StoreError::Corrupt(format!(
                "luot_head says the log ends at seq {head} but luot_events ends at seq {}",
                expect - 1
            )));
        }
        let mut day_keys = Vec::new();
        for k in keys {
            let day = k
                .get::<_, &str>(0)
                .parse()
                .map_err(|e| corrupt("a day key", e))?;
            let key: [u8; 32] = k
                .get::<_, &[u8]>(1)
                .try_into()
                .map_err(|e| corrupt("a day key", e))?;
            day_keys.push((day, key));
        }
        let index = Tail {
            seq: head,
            privates: u64_of(max_private),
            term: 0,
        }
        .index();
        Ok(Loaded {
            snapshot,
            records,
            index,
            day_keys,
        })
    }

    /// Every row of the site as backup entries (`backup.rs`), in one
    /// `REPEATABLE READ READ ONLY` transaction (rule 110).
    fn backup_in(&self, c: &mut Client, out: &mut dyn Write) -> Result<u64, StoreError> {
        let mut t = c
            .build_transaction()
            .isolation_level(IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()?;
        let mut w = backup::Writer::new(out)?;
        w.entry(b"Mformat", FORMAT_VERSION.to_string().as_bytes())?;
        w.entry(b"Msite", self.site.as_bytes())?;
        for r in t.query(
            "SELECT kind, key, value FROM luot_kv WHERE site_id = $1 AND kind IN ('S','A','R','V','M','X') \
             ORDER BY kind, key",
            &[&self.site],
        )? {
            let kind: &str = r.get(0);
            let key: &str = r.get(1);
            let value: &[u8] = r.get(2);
            if kind == "X" {
                w.entry(SNAPSHOT_KEY, value)?;
            } else {
                w.entry(&prefixed(kind.as_bytes()[0], key.as_bytes()), value)?;
            }
        }
        let privates = t.query(
            "SELECT after_seq, body::text FROM luot_private WHERE site_id = $1 ORDER BY idx",
            &[&self.site],
        )?;
        let first: Option<i64> = t
            .query_one(
                "SELECT min(seq) FROM luot_events WHERE site_id = $1",
                &[&self.site],
            )?
            .get(0);
        // Positions as `Appended::index` counts them: seq reached plus
        // privates so far, less one.
        let mut reached = u64_of(first.unwrap_or(1)).saturating_sub(1);
        let mut n_private = 0u64;
        let mut privates = privates.into_iter().peekable();
        let portal = t.bind(
            "SELECT seq, body::text FROM luot_events WHERE site_id = $1 ORDER BY seq",
            &[&self.site],
        )?;
        loop {
            let rows = t.query_portal(&portal, 5_000)?;
            if rows.is_empty() {
                break;
            }
            for p in rows {
                let seq = u64_of(p.get(0));
                while privates.peek().is_some_and(|r| u64_of(r.get(0)) < seq) {
                    if let Some(r) = privates.next() {
                        private_entry(&mut w, &r, reached, &mut n_private)?;
                    }
                }
                reached = seq;
                let body: &str = p.get(1);
                let event: Event =
                    serde_json::from_str(body).map_err(|e| corrupt(&format!("event {seq}"), e))?;
                let index = (reached + n_private).saturating_sub(1);
                w.entry(
                    &log_key(index),
                    &json(&Record {
                        seq: Some(seq),
                        event,
                    }),
                )?;
            }
        }
        for r in privates {
            private_entry(&mut w, &r, reached, &mut n_private)?;
        }
        t.commit()?;
        w.finish()
    }

    /// Whether the database holds this site already (rule 109).
    pub fn holds_site(&self) -> Result<bool, StoreError> {
        self.with_client(|c| {
            let events: bool = c
                .query_one(
                    "SELECT EXISTS (SELECT 1 FROM luot_events WHERE site_id = $1) \
                     OR EXISTS (SELECT 1 FROM luot_private WHERE site_id = $1) \
                     OR EXISTS (SELECT 1 FROM luot_kv WHERE site_id = $1 AND kind IN ('S','A','R','V','X'))",
                    &[&self.site],
                )?
                .get(0);
            Ok(events)
        })
    }

    /// Replaces every row of the site with a backup's entries (and the day
    /// keys given), in one transaction: `migrate` (rule 109: lineage kept,
    /// term 1) and `restore` (rule 110: a new epoch after the backup's last
    /// seq, term + 1). Returns the public events' count and seq range.
    pub fn import(
        &self,
        entries: backup::Entries,
        day_keys: &[(chrono::NaiveDate, [u8; 32])],
        restore: bool,
    ) -> Result<Imported, StoreError> {
        let mut log = Vec::new();
        let mut kv = (
            Vec::<String>::new(),
            Vec::<String>::new(),
            Vec::<Vec<u8>>::new(),
        );
        let mut snapshot = None;
        let mut lineage: Vec<LineageEntry> = Vec::new();
        for (k, v) in entries {
            if k == SNAPSHOT_KEY {
                snapshot = Some(v);
                continue;
            }
            match k.first() {
                Some(b'L') => log.push((log_index(&k)?, v)),
                Some(b'M') if &k[1..] == b"lineage" => {
                    lineage = serde_json::from_slice(&v).map_err(|e| corrupt("the lineage", e))?;
                }
                Some(b'M') if &k[1..] == b"site" => {
                    let theirs = String::from_utf8_lossy(&v).to_string();
                    if theirs != self.site {
                        return Err(StoreError::WrongSite(theirs));
                    }
                }
                Some(b'M') => {}
                Some(p @ (b'S' | b'A' | b'R' | b'V')) => {
                    kv.0.push((*p as char).to_string());
                    kv.1.push(String::from_utf8_lossy(&k[1..]).to_string());
                    kv.2.push(v);
                }
                _ => {}
            }
        }
        log.sort_by_key(|(i, _)| *i);
        let mut seqs = Vec::new();
        let mut bodies = Vec::new();
        let (mut idxs, mut pbodies) = (Vec::new(), Vec::new());
        let mut last = None::<u64>;
        // Each private record's position in the backup, to place the
        // snapshot among them, and the public seq before it (none: before
        // the first public record the backup holds).
        let mut private_positions = Vec::new();
        let mut before = Vec::new();
        for (index, v) in &log {
            let r: Record = serde_json::from_slice(v).map_err(|e| corrupt("a log record", e))?;
            let body = serde_json::to_string(&r.event).map_err(|e| corrupt("an event", e))?;
            match r.seq {
                Some(s) => {
                    if let Some(l) = last
                        && s != l + 1
                    {
                        return Err(StoreError::Corrupt(format!(
                            "the backup's log jumps from seq {l} to {s}"
                        )));
                    }
                    seqs.push(i64_of(s));
                    bodies.push(body);
                    last = Some(s);
                }
                None => {
                    idxs.push(i64_of(idxs.len() as u64 + 1));
                    private_positions.push(*index);
                    pbodies.push(body);
                    before.push(last);
                }
            }
        }
        let first = seqs.first().map(|f| u64_of(*f).saturating_sub(1));
        let afters: Vec<i64> = before
            .into_iter()
            .map(|b| i64_of(b.or(first).unwrap_or(0)))
            .collect();
        // The snapshot's position, counted as this store counts.
        let snapshot = match snapshot {
            Some(v) => {
                let mut s: StoredSnapshot =
                    serde_json::from_slice(&v).map_err(|e| corrupt("the snapshot", e))?;
                let covered = private_positions.iter().filter(|p| **p <= s.index).count() as u64;
                s.index = (s.seq + covered).saturating_sub(1);
                Some(json(&s))
            }
            None => None,
        };
        let last_seq = last.or_else(|| {
            snapshot
                .as_ref()
                .and_then(|v| serde_json::from_slice::<StoredSnapshot>(v).ok())
                .map(|s| s.seq)
        });
        let head_seq = last_seq.unwrap_or(0);
        if lineage.is_empty() {
            lineage.push(LineageEntry {
                epoch: new_epoch(),
                first_seq: 1,
            });
        }
        if restore {
            lineage.push(LineageEntry {
                epoch: new_epoch(),
                first_seq: head_seq + 1,
            });
        }
        kv.0.push("M".into());
        kv.1.push("lineage".into());
        kv.2.push(json(&lineage));
        if let Some(s) = snapshot {
            kv.0.push("X".into());
            kv.1.push("latest".into());
            kv.2.push(s);
        }
        for (day, key) in day_keys {
            kv.0.push("K".into());
            kv.1.push(day.to_string());
            kv.2.push(key.to_vec());
        }
        let site = self.site.clone();
        self.with_client(|c| {
            make_schema(c)?;
            let mut t = c.transaction()?;
            let old: Option<i64> = t
                .query_opt(
                    "SELECT term FROM luot_head WHERE site_id = $1 FOR UPDATE",
                    &[&site],
                )?
                .map(|r| r.get(0));
            for table in ["luot_events", "luot_private", "luot_kv", "luot_hooks"] {
                t.execute(&format!("DELETE FROM {table} WHERE site_id = $1"), &[&site])?;
            }
            let term = if restore { old.unwrap_or(0) + 1 } else { 1 };
            t.execute(
                "INSERT INTO luot_head (site_id, seq, term, beat, writer, writer_url, beat_at, format) \
                 VALUES ($1, $2, $3, 0, NULL, NULL, NULL, $4) \
                 ON CONFLICT (site_id) DO UPDATE SET seq = EXCLUDED.seq, term = EXCLUDED.term, \
                 beat = luot_head.beat + 1, writer = NULL, writer_url = NULL, beat_at = NULL, \
                 format = EXCLUDED.format",
                &[&site, &i64_of(head_seq), &term, &(FORMAT_VERSION as i32)],
            )?;
            for (s, b) in seqs.chunks(5_000).zip(bodies.chunks(5_000)) {
                t.execute(
                    "INSERT INTO luot_events (site_id, seq, term, at, body) \
                     SELECT $1, s, $2, now(), b::jsonb FROM unnest($3::bigint[], $4::text[]) AS t(s, b)",
                    &[&site, &term, &s.to_vec(), &b.to_vec()],
                )?;
            }
            if !idxs.is_empty() {
                t.execute(
                    "INSERT INTO luot_private (site_id, idx, after_seq, body) \
                     SELECT $1, i, a, b::jsonb FROM unnest($2::bigint[], $3::bigint[], $4::text[]) AS t(i, a, b)",
                    &[&site, &idxs, &afters, &pbodies],
                )?;
            }
            t.execute(
                "INSERT INTO luot_kv (site_id, kind, key, value) \
                 SELECT $1, k, n, v FROM unnest($2::text[], $3::text[], $4::bytea[]) AS t(k, n, v)",
                &[&site, &kv.0, &kv.1, &kv.2],
            )?;
            t.commit()?;
            Ok(())
        })?;
        self.read_tail()?;
        Ok(Imported {
            events: seqs.len() as u64,
            first: seqs.first().map(|s| u64_of(*s)),
            last: seqs.last().map(|s| u64_of(*s)),
        })
    }

    /// Seconds since `beat_at` by the database's clock (rule 110's 3 s).
    pub fn beat_age_s(&self) -> Result<Option<f64>, StoreError> {
        self.with_client(|c| {
            Ok(c.query_opt(
                "SELECT extract(epoch FROM now() - beat_at)::float8 FROM luot_head WHERE site_id = $1",
                &[&self.site],
            )?
            .and_then(|r| r.get::<_, Option<f64>>(0)))
        })
    }
}

/// A private record's backup entry, at its position after `reached` and the
/// privates before it.
fn private_entry(
    w: &mut backup::Writer<'_>,
    r: &postgres::Row,
    reached: u64,
    n_private: &mut u64,
) -> Result<(), StoreError> {
    *n_private += 1;
    let body: &str = r.get(1);
    let event: Event = serde_json::from_str(body).map_err(|e| corrupt("a private record", e))?;
    let index = (reached + *n_private).saturating_sub(1);
    w.entry(&log_key(index), &json(&Record { seq: None, event }))
}

impl Drop for PgStore {
    /// A synchronous client ends its connection by blocking on its own
    /// runtime, which panics inside another runtime: the last handle of a
    /// server's store goes when its async `serve` returns, so the
    /// connections are closed on a thread of their own.
    fn drop(&mut self) {
        let writer = self.writer.get_mut().ok().and_then(|w| w.take());
        let pool = self.pool.get_mut().map(std::mem::take).unwrap_or_default();
        let _ = std::thread::spawn(move || drop((writer, pool))).join();
    }
}

/// What `import` wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Imported {
    pub events: u64,
    pub first: Option<u64>,
    pub last: Option<u64>,
}

/// The `luot_kv` rows of a batch: (kinds, keys, values).
fn kv_rows(batch: &WriteBatch) -> (Vec<&'static str>, Vec<String>, Vec<Vec<u8>>) {
    let mut rows = (Vec::new(), Vec::new(), Vec::new());
    let mut put = |kind: &'static str, key: String, value: Vec<u8>| {
        rows.0.push(kind);
        rows.1.push(key);
        rows.2.push(value);
    };
    for (hash, s) in &batch.sessions {
        put("S", hash.clone(), json(s));
    }
    for t in &batch.archived {
        put("A", t.id.clone(), json(t));
    }
    for (day, r) in &batch.reports {
        put("R", day.clone(), json(r));
    }
    for (day, r) in &batch.visits {
        put("V", day.clone(), json(r));
    }
    for (day, k) in &batch.day_keys {
        put("K", day.to_string(), k.to_vec());
    }
    rows
}

impl Store for PgStore {
    fn load(&self) -> Result<Loaded, StoreError> {
        self.with_client(|c| self.load_in(c))
    }

    fn append(&self, batch: &WriteBatch) -> Result<Appended, StoreError> {
        batch.check_numbering()?;
        let tail = *self.tail.lock().map_err(|_| StoreError::Closed)?;
        if tail.term == 0 {
            return Err(StoreError::NotPrimary(
                "this server has not taken the store over".into(),
            ));
        }
        if batch.after_seq != tail.seq {
            return Err(StoreError::Conflict {
                expected: batch.after_seq,
                found: tail.seq,
            });
        }
        let mut guard = self.writer.lock().map_err(|_| StoreError::Closed)?;
        let w = self.writer_conn(&mut guard)?;
        match self.write(w, batch, tail) {
            Ok(after) => {
                drop(guard);
                if let Ok(mut t) = self.tail.lock() {
                    *t = after;
                }
                self.note_ok();
                Ok(Appended {
                    index: after.index(),
                })
            }
            Err(e) => {
                if guard.as_ref().is_some_and(|w| w.client.is_closed()) {
                    *guard = None;
                }
                // A connection lost before COMMIT was sent: PostgreSQL rolls
                // the transaction back, so nothing is stored.
                Err(e)
            }
        }
    }

    fn read_from(&self, seq: u64, max: usize) -> Result<Vec<Record>, StoreError> {
        self.with_client(|c| {
            let rows = c.query(
                "SELECT seq, body::text FROM luot_events WHERE site_id = $1 AND seq > $2 \
                 ORDER BY seq LIMIT $3",
                &[&self.site, &i64_of(seq), &i64_of(max as u64)],
            )?;
            rows.into_iter()
                .map(|r| {
                    let seq = u64_of(r.get(0));
                    let body: &str = r.get(1);
                    Ok(Record {
                        seq: Some(seq),
                        event: serde_json::from_str(body)
                            .map_err(|e| corrupt(&format!("event {seq}"), e))?,
                    })
                })
                .collect()
        })
    }

    fn recover(&self) -> Result<Recovered, StoreError> {
        // A fresh connection: the old one may be gone or mid-transaction.
        if let Ok(mut w) = self.writer.lock() {
            *w = None;
        }
        let flight = self
            .in_flight
            .lock()
            .map_err(|_| StoreError::Closed)?
            .take();
        let tail = *self.tail.lock().map_err(|_| StoreError::Closed)?;
        let (in_recovery, row) = self.with_client(|c| {
            let in_recovery: bool = c.query_one("SELECT pg_is_in_recovery()", &[])?.get(0);
            if in_recovery {
                return Ok((true, None));
            }
            let mut t = c.transaction()?;
            // FOR UPDATE waits out a commit still in flight.
            let row = t
                .query_opt(
                    "SELECT seq, term FROM luot_head WHERE site_id = $1 FOR UPDATE",
                    &[&self.site],
                )?
                .map(|r| (u64_of(r.get(0)), u64_of(r.get(1))));
            t.rollback()?;
            Ok((false, row))
        })?;
        if in_recovery {
            return Err(StoreError::NotPrimary(
                "the PostgreSQL server is in recovery".into(),
            ));
        }
        let Some((seq, term)) = row else {
            return Err(StoreError::NotPrimary("the site's head row is gone".into()));
        };
        if term != tail.term {
            return Err(StoreError::NotPrimary(format!(
                "another server writes the store now (term {term})"
            )));
        }
        match flight {
            Some(f) if seq == f.after.seq && f.after.seq != f.old => {
                if let Ok(mut t) = self.tail.lock() {
                    *t = f.after;
                }
                Ok(Recovered::Committed)
            }
            Some(f) if seq == f.old => {
                // Private records of a batch without public ones leave the
                // seq alone: count what is there.
                self.read_tail()?;
                let stored = self.tail.lock().map(|t| t.privates).unwrap_or(0);
                if f.after.seq == f.old
                    && stored == f.after.privates
                    && f.after.privates > tail.privates
                {
                    return Ok(Recovered::Committed);
                }
                Ok(Recovered::NotCommitted)
            }
            None if seq == tail.seq => {
                self.read_tail()?;
                Ok(Recovered::NotCommitted)
            }
            _ => Err(StoreError::NotPrimary(format!(
                "the store's log ends at seq {seq}, which this server did not write"
            ))),
        }
    }

    fn write_snapshot(&self, snap: &StoredSnapshot) -> Result<(), StoreError> {
        self.kv_put("X", "latest", &json(snap))
    }

    fn prune_log(&self, _index: u64, _max: usize) -> Result<usize, StoreError> {
        // Rule 101: luot_events is never pruned.
        Ok(0)
    }

    fn session(&self, token_hash: &str) -> Result<Option<Session>, StoreError> {
        self.kv_json("S", token_hash)
    }

    fn prune_sessions(&self, now: i64) -> Result<usize, StoreError> {
        self.with_client(|c| {
            let rows = c.query(
                "SELECT key, value FROM luot_kv WHERE site_id = $1 AND kind = 'S'",
                &[&self.site],
            )?;
            let expired: Vec<String> = rows
                .iter()
                .filter(|r| {
                    serde_json::from_slice::<Session>(r.get::<_, &[u8]>(1))
                        .map(|s| s.expires_at < now)
                        .unwrap_or(true)
                })
                .map(|r| r.get::<_, String>(0))
                .collect();
            if !expired.is_empty() {
                c.execute(
                    "DELETE FROM luot_kv WHERE site_id = $1 AND kind = 'S' AND key = ANY($2)",
                    &[&self.site, &expired],
                )?;
            }
            Ok(expired.len())
        })
    }

    fn archived_ticket(&self, id: &str) -> Result<Option<TicketRec>, StoreError> {
        self.kv_json("A", id)
    }

    fn archived_report(&self, day: &str) -> Result<Option<DailyReport>, StoreError> {
        self.kv_json("R", day)
    }

    fn archived_visits(&self, day: &str) -> Result<Option<VisitsReport>, StoreError> {
        self.kv_json("V", day)
    }

    fn backup(&self, out: &mut dyn Write) -> Result<u64, StoreError> {
        self.with_client(|c| self.backup_in(c, out))
    }

    fn beat(&self) -> Result<(), StoreError> {
        self.beat_now()
    }

    fn replication(&self) -> Result<super::Replication, StoreError> {
        let term = self.term();
        self.with_client(|c| {
            let in_recovery: bool = c.query_one("SELECT pg_is_in_recovery()", &[])?.get(0);
            let (replica_lag_s, sync_standby) = if in_recovery {
                let lag: Option<f64> = c
                    .query_one(
                        "SELECT CASE WHEN pg_last_wal_receive_lsn() IS NOT DISTINCT FROM pg_last_wal_replay_lsn() \
                         THEN 0 ELSE extract(epoch FROM now() - pg_last_xact_replay_timestamp())::float8 END",
                        &[],
                    )?
                    .get(0);
                (Some(lag.unwrap_or(0.0)), None)
            } else {
                let sync = c
                    .query_opt(
                        "SELECT application_name FROM pg_stat_replication \
                         WHERE sync_state = 'sync' ORDER BY application_name LIMIT 1",
                        &[],
                    )?
                    .map(|r| r.get::<_, String>(0));
                (None, sync)
            };
            Ok(super::Replication {
                kind: Some("postgres"),
                term: Some(term),
                replica_lag_s,
                sync_standby,
            })
        })
    }

    fn probe(&self) -> Result<(), StoreError> {
        // Rule 102: writable means the last commit or beat succeeded
        // within 2 s.
        let fresh = self
            .last_ok
            .lock()
            .ok()
            .and_then(|t| *t)
            .is_some_and(|t| t.elapsed() <= Duration::from_secs(2));
        if fresh {
            Ok(())
        } else {
            Err(StoreError::Failed(
                "no commit or beat of this server reached PostgreSQL in the last 2 s".into(),
            ))
        }
    }

    fn lineage(&self) -> Result<Vec<LineageEntry>, StoreError> {
        self.kv_json("M", "lineage")?
            .ok_or_else(|| StoreError::Corrupt("the store has no lineage".into()))
    }

    fn hook_bodies(&self, seq: u64, max: usize) -> Result<Vec<HookBody>, StoreError> {
        self.with_client(|c| {
            Ok(c.query(
                "SELECT seq, at, kind, body FROM luot_hooks WHERE site_id = $1 AND seq > $2 \
                     ORDER BY seq LIMIT $3",
                &[&self.site, &i64_of(seq), &i64_of(max as u64)],
            )?
            .into_iter()
            .map(|r| HookBody {
                seq: u64_of(r.get(0)),
                at: r.get(1),
                kind: r.get(2),
                body: r.get(3),
            })
            .collect())
        })
    }

    fn hook_cursor(&self, id: &str) -> Result<Option<HookCursor>, StoreError> {
        self.kv_json("H", id)
    }

    fn put_hook_cursor(
        &self,
        id: &str,
        cursor: &HookCursor,
        _durable: bool,
    ) -> Result<(), StoreError> {
        self.kv_put("H", id, &json(cursor))
    }

    fn prune_hooks(
        &self,
        through: u64,
        before: i64,
        max: usize,
    ) -> Result<Vec<(u64, String)>, StoreError> {
        self.with_client(|c| {
            let rows = c.query(
                "SELECT seq, at, kind FROM luot_hooks WHERE site_id = $1 ORDER BY seq LIMIT $2",
                &[&self.site, &i64_of(max as u64)],
            )?;
            let mut gone = Vec::new();
            let mut dropped = Vec::new();
            for r in rows {
                let seq = u64_of(r.get(0));
                if seq > through {
                    let at: i64 = r.get(1);
                    if at >= before {
                        break;
                    }
                    dropped.push((seq, r.get::<_, String>(2)));
                }
                gone.push(i64_of(seq));
            }
            if !gone.is_empty() {
                c.execute(
                    "DELETE FROM luot_hooks WHERE site_id = $1 AND seq = ANY($2)",
                    &[&self.site, &gone],
                )?;
            }
            Ok(dropped)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::tests::{append, pg_store};

    fn reopen(s: &PgStore, node: &str) -> PgStore {
        let pg = Postgres {
            url: s.config_url(),
            password_file: None,
        };
        PgStore::open(&s.site, &pg, node, Some("http://127.0.0.1:9")).unwrap()
    }

    impl PgStore {
        fn config_url(&self) -> String {
            let c = &self.config;
            let host = match &c.get_hosts()[0] {
                postgres::config::Host::Tcp(h) => h.clone(),
                postgres::config::Host::Unix(p) => p.display().to_string(),
            };
            format!(
                "host={host} port={} user={} dbname={}",
                c.get_ports()[0],
                c.get_user().unwrap_or("postgres"),
                c.get_dbname().unwrap_or("postgres")
            )
        }
    }

    #[test]
    fn a_server_whose_store_was_taken_over_writes_nothing_more() {
        let a = pg_store();
        append(&a, 0, 3);
        let b = reopen(&a, "test-b");
        let head = b.status().unwrap().head.unwrap();
        assert_eq!(
            (head.seq, head.writer.as_deref()),
            (3, Some(a.node.as_str()))
        );
        assert!(b.claim(&head).unwrap());
        // The old writer's next commit and beat touch no row: it must stop.
        let mut batch = WriteBatch::new(3);
        batch.records.push(Record {
            seq: Some(4),
            event: crate::store::tests::ev(4),
        });
        assert!(matches!(a.append(&batch), Err(StoreError::NotPrimary(_))));
        assert!(matches!(a.beat_now(), Err(StoreError::NotPrimary(_))));
        // The new one goes on from seq 3; nothing of the refused batch is there.
        assert_eq!(b.load().unwrap().records.len(), 3);
        append(&b, 3, 2);
        let head = b.status().unwrap().head.unwrap();
        assert_eq!(head.seq, 5);
        assert_eq!(head.term, 3, "made with 1, claimed by a (2), then by b (3)");
        assert_eq!(head.writer.as_deref(), Some("test-b"));
        assert_eq!(head.writer_url.as_deref(), Some("http://127.0.0.1:9"));
        // A claim on a head that moved since it was read is refused.
        let stale = HeadRow { seq: 3, ..head };
        assert!(!a.claim(&stale).unwrap());
    }

    #[test]
    fn a_lost_connection_loses_no_acknowledged_event_and_the_log_goes_on() {
        let s = pg_store();
        append(&s, 0, 2);
        // PostgreSQL ends every connection of luot's: the next commit fails
        // before anything is sent, and is known not stored.
        luot_pgtest::shared().psql(
            "postgres",
            &format!(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE application_name = 'luot-{}'",
                s.node
            ),
        );
        let mut batch = WriteBatch::new(2);
        batch.records.push(Record {
            seq: Some(3),
            event: crate::store::tests::ev(3),
        });
        match s.append(&batch) {
            Ok(_) => {} // the pool's spare was gone, the writer reconnected in time
            Err(e) => {
                assert!(!matches!(e, StoreError::NotPrimary(_)), "{e}");
                assert_eq!(s.recover().unwrap(), Recovered::NotCommitted);
                s.append(&batch).unwrap();
            }
        }
        let l = s.load().unwrap();
        assert_eq!(
            l.records.iter().map(|r| r.seq).collect::<Vec<_>>(),
            [Some(1), Some(2), Some(3)]
        );
        // An outcome in doubt that did land is found by reading the head.
        *s.in_flight.lock().unwrap() = Some(InFlight {
            old: 3,
            after: Tail {
                seq: 4,
                privates: 0,
                term: s.term(),
            },
        });
        append(&s, 3, 1);
        *s.in_flight.lock().unwrap() = Some(InFlight {
            old: 3,
            after: Tail {
                seq: 4,
                privates: 0,
                term: s.term(),
            },
        });
        assert_eq!(s.recover().unwrap(), Recovered::Committed);
    }

    #[test]
    fn a_database_that_would_not_wait_for_the_disk_is_refused_by_name() {
        let pg = luot_pgtest::shared();
        let url = pg.fresh_database();
        let db = url.rsplit("dbname=").next().unwrap().to_string();
        pg.psql(
            "postgres",
            &format!("ALTER DATABASE \"{db}\" SET synchronous_commit = off"),
        );
        let cfg = Postgres {
            url,
            password_file: None,
        };
        let e = PgStore::open("x", &cfg, "a", None).err().expect("refused");
        let msg = e.to_string();
        assert!(
            msg.contains("synchronous_commit") && msg.contains("\"off\""),
            "{msg}"
        );
    }

    #[test]
    fn a_sled_backup_imports_with_its_seqs_snapshot_and_lineage() {
        let dir = tempfile::tempdir().unwrap();
        let sled = crate::store::sled::SledStore::open(dir.path()).unwrap();
        append(&sled, 0, 4);
        let mut b = WriteBatch::new(4);
        b.records.push(Record {
            seq: None,
            event: crate::store::tests::ev(0),
        });
        b.sessions.push((
            "tok".into(),
            Session {
                username: "le.thu".into(),
                expires_at: i64::MAX,
            },
        ));
        sled.append(&b).unwrap();
        append(&sled, 4, 2);
        let mut out = Vec::new();
        sled.backup(&mut out).unwrap();
        let lineage = sled.lineage().unwrap();

        let pg = pg_store();
        let entries = backup::read(&mut out.as_slice()).unwrap();
        let got = pg.import(entries.clone(), &[], false).unwrap();
        assert_eq!((got.events, got.first, got.last), (6, Some(1), Some(6)));
        assert_eq!(pg.lineage().unwrap(), lineage, "migrate keeps the lineage");
        assert_eq!(pg.load().unwrap().records, sled.load().unwrap().records);
        assert_eq!(pg.load().unwrap().index, sled.load().unwrap().index);
        assert!(pg.session("tok").unwrap().is_some());
        let head = pg.status().unwrap().head.unwrap();
        assert_eq!((head.seq, head.term), (6, 1));
        // A restore adds an epoch after the backup's last seq and a term.
        pg.import(entries, &[], true).unwrap();
        let l = pg.lineage().unwrap();
        assert_eq!(l.len(), 2);
        assert_eq!(l[1].first_seq, 7);
        assert_eq!(pg.status().unwrap().head.unwrap().term, 2);
        // Taken over, it goes on from seq 6.
        let head = pg.status().unwrap().head.unwrap();
        assert!(pg.claim(&head).unwrap());
        append(&pg, 6, 1);
        // A backup of another site is refused.
        let mut other = Vec::new();
        pg_store().backup(&mut other).unwrap();
        let e = pg
            .import(backup::read(&mut other.as_slice()).unwrap(), &[], true)
            .unwrap_err();
        assert!(matches!(e, StoreError::WrongSite(_)), "{e}");
    }
}
