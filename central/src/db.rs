//! Central's PostgreSQL: the schema (tables `luot_central_*`, created when
//! missing), a Batch stored in one transaction (rule 114), login sessions,
//! configuration versions, site status and what the reports read.
//!
//! The only module that speaks SQL. It decides nothing about a Batch itself:
//! `ingest::decide` does, from what this module reads under the site's row
//! lock. Any database failure is a `DbError`, which the HTTP layer answers
//! 503 `unavailable`.

use std::collections::HashMap;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, FixedOffset, Utc};
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio_postgres::NoTls;

use crate::config::{SiteEntry, Store};
use crate::ingest::{self, Batch, Decision, Fingerprint, LineageEntry, Valid};

/// A database failure: unreachable, down, or a statement refused.
#[derive(Debug, thiserror::Error)]
#[error("database: {0}")]
pub struct DbError(pub String);

impl From<tokio_postgres::Error> for DbError {
    fn from(e: tokio_postgres::Error) -> DbError {
        DbError(e.to_string())
    }
}

impl From<deadpool_postgres::PoolError> for DbError {
    fn from(e: deadpool_postgres::PoolError) -> DbError {
        DbError(e.to_string())
    }
}

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS luot_central_sites (
    site_id text PRIMARY KEY,
    epoch text,
    acked_seq bigint NOT NULL DEFAULT 0,
    lineage jsonb NOT NULL DEFAULT '[]',
    head_seq bigint NOT NULL DEFAULT 0,
    oldest_seq bigint,
    node text,
    luot_version text,
    config jsonb,
    last_contact_at timestamptz,
    lag_s double precision
);
CREATE TABLE IF NOT EXISTS luot_central_events (
    site_id text NOT NULL,
    epoch text NOT NULL,
    seq bigint NOT NULL,
    at timestamptz NOT NULL,
    at_text text NOT NULL,
    kind text NOT NULL,
    ticket text,
    day text,
    body jsonb NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (site_id, epoch, seq)
);
CREATE INDEX IF NOT EXISTS luot_central_events_seq ON luot_central_events (site_id, seq);
CREATE INDEX IF NOT EXISTS luot_central_events_days ON luot_central_events (site_id, kind) WHERE kind = 'day_started';
CREATE TABLE IF NOT EXISTS luot_central_ratings (
    site_id text NOT NULL,
    ticket text NOT NULL,
    epoch text NOT NULL,
    after_seq bigint NOT NULL,
    at timestamptz NOT NULL,
    rating smallint NOT NULL,
    PRIMARY KEY (site_id, ticket)
);
CREATE TABLE IF NOT EXISTS luot_central_missing (
    site_id text NOT NULL,
    epoch text NOT NULL,
    from_seq bigint NOT NULL,
    to_seq bigint NOT NULL,
    PRIMARY KEY (site_id, epoch, from_seq)
);
CREATE TABLE IF NOT EXISTS luot_central_configs (
    site_id text NOT NULL,
    version bigint NOT NULL,
    sha256 text NOT NULL,
    toml text NOT NULL,
    note text,
    created_at timestamptz NOT NULL DEFAULT now(),
    created_by text NOT NULL,
    PRIMARY KEY (site_id, version)
);
CREATE TABLE IF NOT EXISTS luot_central_sessions (
    token_sha256 text PRIMARY KEY,
    username text NOT NULL,
    expires_at timestamptz NOT NULL
);
"#;

/// A pool of connections to central's database.
#[derive(Clone)]
pub struct Db {
    pool: Pool,
}

/// The answer to a Batch.
#[derive(Clone, Debug, PartialEq)]
pub struct Ingested {
    pub decision: Decision,
    /// Events new to central (a replay adds none).
    pub inserted: u64,
    /// The newest configuration version central holds for the site.
    pub config_version: Option<u64>,
    /// Seconds from the newest event's `at` to its receipt, when it had one.
    pub lag_s: Option<f64>,
}

/// One site's row of `GET /sites`, as stored.
#[derive(Clone, Debug)]
pub struct SiteState {
    pub id: String,
    pub epoch: Option<String>,
    pub acked_seq: u64,
    pub lineage: Vec<LineageEntry>,
    pub head_seq: u64,
    pub node: Option<String>,
    pub luot_version: Option<String>,
    pub config: Option<ingest::ConfigState>,
    pub last_contact_at: Option<DateTime<Utc>>,
    pub lag_s: Option<f64>,
    pub missing: Vec<(u64, u64)>,
    pub orphaned_events: u64,
    pub config_latest: Option<u64>,
}

/// A stored configuration version.
#[derive(Clone, Debug)]
pub struct ConfigVersion {
    pub version: u64,
    pub sha256: String,
    pub toml: String,
    pub note: Option<String>,
    pub created_at: DateTime<Utc>,
    pub created_by: String,
}

/// An event of a report's range, in the current lineage.
#[derive(Clone, Debug)]
pub struct StoredEvent {
    pub seq: u64,
    /// When the site stored it, as the site wrote it.
    pub at: String,
    pub kind: String,
    pub day: Option<String>,
    pub body: serde_json::Value,
}

/// A rating as stored.
#[derive(Clone, Debug)]
pub struct StoredRating {
    pub ticket: String,
    pub after_seq: u64,
    pub rating: u8,
}

fn u(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

fn i(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

impl Db {
    /// A pool for `[store]` (no connection is made yet).
    pub fn new(store: &Store) -> anyhow::Result<Db> {
        let mut cfg = tokio_postgres::Config::from_str(&store.url)
            .map_err(|e| anyhow::anyhow!("store.url is not a libpq connection string: {e}"))?;
        if let Some(pw) = store.password()? {
            cfg.password(pw);
        }
        cfg.connect_timeout(Duration::from_secs(3));
        if cfg.get_application_name().is_none() {
            cfg.application_name("luot-central");
        }
        let mgr = Manager::from_config(
            cfg,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Verified,
            },
        );
        let pool = Pool::builder(mgr)
            .max_size(8)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(Duration::from_secs(5)))
            .create_timeout(Some(Duration::from_secs(5)))
            .recycle_timeout(Some(Duration::from_secs(2)))
            .build()
            .map_err(|e| anyhow::anyhow!("cannot make the connection pool: {e}"))?;
        Ok(Db { pool })
    }

    /// Creates the tables that are missing and a row for each configured
    /// site.
    pub async fn init(&self, sites: &[SiteEntry]) -> Result<(), DbError> {
        let c = self.pool.get().await?;
        // Two central processes starting at once must not race on CREATE.
        c.batch_execute(&format!(
            "SELECT pg_advisory_lock(7117); {SCHEMA} SELECT pg_advisory_unlock(7117);"
        ))
        .await?;
        for s in sites {
            c.execute(
                "INSERT INTO luot_central_sites (site_id) VALUES ($1) ON CONFLICT DO NOTHING",
                &[&s.id],
            )
            .await?;
        }
        Ok(())
    }

    /// Whether the database takes a write now (`/healthz`).
    pub async fn writable(&self) -> Result<(), DbError> {
        let c = self.pool.get().await?;
        let row = c.query_one("SELECT pg_is_in_recovery()", &[]).await?;
        let recovery: bool = row.get(0);
        if recovery {
            return Err(DbError("the database is a read-only replica".into()));
        }
        Ok(())
    }

    /// Stores a valid Batch in one transaction (rule 114) and answers.
    pub async fn ingest(&self, b: &Batch, v: &Valid) -> Result<Ingested, DbError> {
        let mut c = self.pool.get().await?;
        let tx = c.transaction().await?;
        let site = &b.site_id;
        tx.execute(
            "INSERT INTO luot_central_sites (site_id) VALUES ($1) ON CONFLICT DO NOTHING",
            &[site],
        )
        .await?;
        tx.query_one(
            "SELECT 1 FROM luot_central_sites WHERE site_id = $1 FOR UPDATE",
            &[site],
        )
        .await?;
        let row = tx
            .query_one(
                "SELECT max(seq) FROM luot_central_events WHERE site_id = $1 AND epoch = $2",
                &[site, &b.epoch],
            )
            .await?;
        let held_max: Option<i64> = row.get(0);
        let mut held = HashMap::new();
        if let (Some(f), Some(l)) = (v.events.first(), v.events.last()) {
            for r in tx
                .query(
                    "SELECT seq, at, kind, ticket FROM luot_central_events \
                     WHERE site_id = $1 AND epoch = $2 AND seq BETWEEN $3 AND $4",
                    &[site, &b.epoch, &i(f.seq), &i(l.seq)],
                )
                .await?
            {
                let at: DateTime<Utc> = r.get(1);
                held.insert(
                    u(r.get(0)),
                    Fingerprint {
                        at_us: at.timestamp_micros(),
                        kind: r.get(2),
                        ticket: r.get(3),
                    },
                );
            }
        }
        let decision = ingest::decide(b, v, held_max.map(u), &held);
        let config_json = b.config.as_ref().and_then(|c| serde_json::to_value(c).ok());
        let mut inserted = 0;
        let mut lag_s = None;
        if let Decision::Take { acked_seq, missing } = &decision {
            if !v.events.is_empty() {
                inserted = insert_events(&tx, b, v).await?;
            }
            if !b.ratings.is_empty() {
                insert_ratings(&tx, b).await?;
            }
            if let Some((a, z)) = missing {
                tx.execute(
                    "INSERT INTO luot_central_missing (site_id, epoch, from_seq, to_seq) \
                     VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
                    &[site, &b.epoch, &i(*a), &i(*z)],
                )
                .await?;
            }
            if let Some(last) = v.events.last() {
                let now = Utc::now();
                let ms = (now - last.at.with_timezone(&Utc)).num_milliseconds();
                lag_s = Some((ms.max(0) as f64) / 1000.0);
            }
            let lineage = serde_json::to_value(&b.lineage).unwrap_or_default();
            tx.execute(
                "UPDATE luot_central_sites SET epoch = $2, acked_seq = $3, lineage = $4, \
                 head_seq = $5, oldest_seq = $6, node = $7, luot_version = $8, config = $9, \
                 last_contact_at = now(), lag_s = COALESCE($10, lag_s) WHERE site_id = $1",
                &[
                    site,
                    &b.epoch,
                    &i(*acked_seq),
                    &lineage,
                    &i(b.head_seq),
                    &b.oldest_seq.map(i),
                    &b.node,
                    &b.luot_version,
                    &config_json,
                    &lag_s,
                ],
            )
            .await?;
        } else {
            // A 409 is still contact: the site and its head are as it says.
            tx.execute(
                "UPDATE luot_central_sites SET head_seq = $2, node = $3, luot_version = $4, \
                 config = $5, last_contact_at = now() WHERE site_id = $1",
                &[site, &i(b.head_seq), &b.node, &b.luot_version, &config_json],
            )
            .await?;
        }
        let row = tx
            .query_one(
                "SELECT max(version) FROM luot_central_configs WHERE site_id = $1",
                &[site],
            )
            .await?;
        let config_version: Option<i64> = row.get(0);
        tx.commit().await?;
        Ok(Ingested {
            decision,
            inserted,
            config_version: config_version.map(u),
            lag_s,
        })
    }

    /// The status of every site named (in that order).
    pub async fn sites(&self, ids: &[String]) -> Result<Vec<SiteState>, DbError> {
        let c = self.pool.get().await?;
        let mut out = Vec::new();
        for id in ids {
            let row = c
                .query_opt(
                    "SELECT epoch, acked_seq, lineage, head_seq, node, luot_version, config, \
                     last_contact_at, lag_s FROM luot_central_sites WHERE site_id = $1",
                    &[id],
                )
                .await?;
            let Some(row) = row else {
                out.push(SiteState {
                    id: id.clone(),
                    epoch: None,
                    acked_seq: 0,
                    lineage: vec![],
                    head_seq: 0,
                    node: None,
                    luot_version: None,
                    config: None,
                    last_contact_at: None,
                    lag_s: None,
                    missing: vec![],
                    orphaned_events: 0,
                    config_latest: None,
                });
                continue;
            };
            let lineage: serde_json::Value = row.get(2);
            let lineage: Vec<LineageEntry> = serde_json::from_value(lineage).unwrap_or_default();
            let config: Option<serde_json::Value> = row.get(6);
            let missing = c
                .query(
                    "SELECT from_seq, to_seq FROM luot_central_missing WHERE site_id = $1 \
                     ORDER BY from_seq",
                    &[id],
                )
                .await?
                .iter()
                .map(|r| (u(r.get(0)), u(r.get(1))))
                .collect();
            let total: i64 = c
                .query_one(
                    "SELECT count(*) FROM luot_central_events WHERE site_id = $1",
                    &[id],
                )
                .await?
                .get(0);
            let inside = in_lineage_count(&c, id, &lineage, 0, None).await?;
            let latest: Option<i64> = c
                .query_one(
                    "SELECT max(version) FROM luot_central_configs WHERE site_id = $1",
                    &[id],
                )
                .await?
                .get(0);
            out.push(SiteState {
                id: id.clone(),
                epoch: row.get(0),
                acked_seq: u(row.get(1)),
                lineage,
                head_seq: u(row.get(3)),
                node: row.get(4),
                luot_version: row.get(5),
                config: config.and_then(|c| serde_json::from_value(c).ok()),
                last_contact_at: row.get(7),
                lag_s: row.get(8),
                missing,
                orphaned_events: u(total).saturating_sub(inside),
                config_latest: latest.map(u),
            });
        }
        Ok(out)
    }

    // ------------------------------------------------------------ sessions

    pub async fn create_session(
        &self,
        token_sha256: &str,
        username: &str,
        expires_at: DateTime<Utc>,
    ) -> Result<(), DbError> {
        let c = self.pool.get().await?;
        c.execute(
            "INSERT INTO luot_central_sessions (token_sha256, username, expires_at) VALUES ($1, $2, $3)",
            &[&token_sha256, &username, &expires_at],
        )
        .await?;
        c.execute(
            "DELETE FROM luot_central_sessions WHERE expires_at < now() - interval '1 day'",
            &[],
        )
        .await?;
        Ok(())
    }

    /// The username of a session that has not expired.
    pub async fn session(&self, token_sha256: &str) -> Result<Option<String>, DbError> {
        let c = self.pool.get().await?;
        let row = c
            .query_opt(
                "SELECT username FROM luot_central_sessions WHERE token_sha256 = $1 AND expires_at > now()",
                &[&token_sha256],
            )
            .await?;
        Ok(row.map(|r| r.get(0)))
    }

    // ------------------------------------------------------ configurations

    /// Stores the next version of `site`'s configuration; `check` validates
    /// the text under the version's number (it runs under the site's row
    /// lock, so two posts cannot take one number).
    pub async fn add_config<E>(
        &self,
        site: &str,
        toml: &str,
        note: Option<&str>,
        created_by: &str,
        check: impl FnOnce(u64) -> Result<(), E>,
    ) -> Result<Result<(u64, String), E>, DbError> {
        let mut c = self.pool.get().await?;
        let tx = c.transaction().await?;
        tx.execute(
            "INSERT INTO luot_central_sites (site_id) VALUES ($1) ON CONFLICT DO NOTHING",
            &[&site],
        )
        .await?;
        tx.query_one(
            "SELECT 1 FROM luot_central_sites WHERE site_id = $1 FOR UPDATE",
            &[&site],
        )
        .await?;
        let latest: Option<i64> = tx
            .query_one(
                "SELECT max(version) FROM luot_central_configs WHERE site_id = $1",
                &[&site],
            )
            .await?
            .get(0);
        let version = latest.map(u).unwrap_or(0) + 1;
        if let Err(e) = check(version) {
            return Ok(Err(e));
        }
        let sha = luot_server::secret::sha256_hex(toml);
        tx.execute(
            "INSERT INTO luot_central_configs (site_id, version, sha256, toml, note, created_by) \
             VALUES ($1, $2, $3, $4, $5, $6)",
            &[&site, &i(version), &sha, &toml, &note, &created_by],
        )
        .await?;
        tx.commit().await?;
        Ok(Ok((version, sha)))
    }

    /// A version of `site`'s configuration: `version`, else the newest.
    pub async fn config(
        &self,
        site: &str,
        version: Option<u64>,
    ) -> Result<Option<ConfigVersion>, DbError> {
        let c = self.pool.get().await?;
        let sql = "SELECT version, sha256, toml, note, created_at, created_by \
                   FROM luot_central_configs WHERE site_id = $1";
        let row = match version {
            Some(v) => {
                c.query_opt(&format!("{sql} AND version = $2"), &[&site, &i(v)])
                    .await?
            }
            None => {
                c.query_opt(&format!("{sql} ORDER BY version DESC LIMIT 1"), &[&site])
                    .await?
            }
        };
        Ok(row.map(|r| ConfigVersion {
            version: u(r.get(0)),
            sha256: r.get(1),
            toml: r.get(2),
            note: r.get(3),
            created_at: r.get(4),
            created_by: r.get(5),
        }))
    }

    // ------------------------------------------------------------- reports

    /// The site's current lineage.
    pub async fn lineage(&self, site: &str) -> Result<Vec<LineageEntry>, DbError> {
        let c = self.pool.get().await?;
        let row = c
            .query_opt(
                "SELECT lineage FROM luot_central_sites WHERE site_id = $1",
                &[&site],
            )
            .await?;
        Ok(row
            .and_then(|r| serde_json::from_value(r.get::<_, serde_json::Value>(0)).ok())
            .unwrap_or_default())
    }

    /// The `day_started` events of the current lineage: (seq, day), by seq.
    pub async fn day_starts(
        &self,
        site: &str,
        lineage: &[LineageEntry],
    ) -> Result<Vec<(u64, String)>, DbError> {
        let c = self.pool.get().await?;
        let rows = c
            .query(
                "SELECT epoch, seq, day FROM luot_central_events \
                 WHERE site_id = $1 AND kind = 'day_started' ORDER BY seq",
                &[&site],
            )
            .await?;
        Ok(rows
            .iter()
            .filter(|r| {
                let seq = u(r.get(1));
                ingest::entry_of(lineage, seq).is_some_and(|e| e.epoch == r.get::<_, &str>(0))
            })
            .map(|r| {
                (
                    u(r.get(1)),
                    r.get::<_, Option<String>>(2).unwrap_or_default(),
                )
            })
            .collect())
    }

    /// The events of the current lineage with seq in `lo..hi` (hi None: to
    /// the end), by seq.
    pub async fn events(
        &self,
        site: &str,
        lineage: &[LineageEntry],
        lo: u64,
        hi: Option<u64>,
    ) -> Result<Vec<StoredEvent>, DbError> {
        let c = self.pool.get().await?;
        let rows = c
            .query(
                "SELECT epoch, seq, kind, day, body, at_text FROM luot_central_events \
                 WHERE site_id = $1 AND seq >= $2 AND seq < $3 ORDER BY seq",
                &[&site, &i(lo), &i(hi.unwrap_or(u64::MAX))],
            )
            .await?;
        Ok(rows
            .iter()
            .filter(|r| {
                let seq = u(r.get(1));
                ingest::entry_of(lineage, seq).is_some_and(|e| e.epoch == r.get::<_, &str>(0))
            })
            .map(|r| StoredEvent {
                seq: u(r.get(1)),
                at: r.get(5),
                kind: r.get(2),
                day: r.get(3),
                body: r.get(4),
            })
            .collect())
    }

    /// How many events of the current lineage central holds in `lo..hi`.
    pub async fn held(
        &self,
        site: &str,
        lineage: &[LineageEntry],
        lo: u64,
        hi: Option<u64>,
    ) -> Result<u64, DbError> {
        let c = self.pool.get().await?;
        in_lineage_count(&c, site, lineage, lo, hi).await
    }

    /// Ratings whose `after_seq` is in `lo..hi`.
    pub async fn ratings(
        &self,
        site: &str,
        lo: u64,
        hi: Option<u64>,
    ) -> Result<Vec<StoredRating>, DbError> {
        let c = self.pool.get().await?;
        let rows = c
            .query(
                "SELECT ticket, after_seq, rating FROM luot_central_ratings \
                 WHERE site_id = $1 AND after_seq >= $2 AND after_seq < $3",
                &[&site, &i(lo), &i(hi.unwrap_or(u64::MAX))],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| StoredRating {
                ticket: r.get(0),
                after_seq: u(r.get(1)),
                rating: u8::try_from(r.get::<_, i16>(2)).unwrap_or(0),
            })
            .collect())
    }
}

async fn in_lineage_count(
    c: &deadpool_postgres::Object,
    site: &str,
    lineage: &[LineageEntry],
    lo: u64,
    hi: Option<u64>,
) -> Result<u64, DbError> {
    let mut n = 0;
    for (epoch, first, end) in ingest::ranges(lineage) {
        let a = first.max(lo);
        let z = match (end, hi) {
            (Some(x), Some(y)) => x.min(y),
            (Some(x), None) | (None, Some(x)) => x,
            (None, None) => u64::MAX,
        };
        if a >= z {
            continue;
        }
        let count: i64 = c
            .query_one(
                "SELECT count(*) FROM luot_central_events \
                 WHERE site_id = $1 AND epoch = $2 AND seq >= $3 AND seq < $4",
                &[&site, &epoch, &i(a), &i(z)],
            )
            .await?
            .get(0);
        n += u(count);
    }
    Ok(n)
}

async fn insert_events(
    tx: &deadpool_postgres::Transaction<'_>,
    b: &Batch,
    v: &Valid,
) -> Result<u64, DbError> {
    let seqs: Vec<i64> = v.events.iter().map(|e| i(e.seq)).collect();
    let ats: Vec<DateTime<FixedOffset>> = v.events.iter().map(|e| e.at).collect();
    let at_texts: Vec<&str> = b.events.iter().map(|e| e.at.as_str()).collect();
    let kinds: Vec<&str> = v.events.iter().map(|e| e.kind.as_str()).collect();
    let tickets: Vec<Option<&str>> = v.events.iter().map(|e| e.ticket.as_deref()).collect();
    let days: Vec<Option<&str>> = v.events.iter().map(|e| e.day.as_deref()).collect();
    let bodies: Vec<&serde_json::Value> = b.events.iter().map(|e| &e.event).collect();
    let n = tx
        .execute(
            "INSERT INTO luot_central_events (site_id, epoch, seq, at, at_text, kind, ticket, day, body) \
             SELECT $1, $2, * FROM UNNEST($3::bigint[], $4::timestamptz[], $5::text[], $6::text[], \
             $7::text[], $8::text[], $9::jsonb[]) ON CONFLICT (site_id, epoch, seq) DO NOTHING",
            &[
                &b.site_id, &b.epoch, &seqs, &ats, &at_texts, &kinds, &tickets, &days, &bodies,
            ],
        )
        .await?;
    Ok(n)
}

async fn insert_ratings(tx: &deadpool_postgres::Transaction<'_>, b: &Batch) -> Result<(), DbError> {
    let tickets: Vec<&str> = b.ratings.iter().map(|r| r.ticket.as_str()).collect();
    let after: Vec<i64> = b.ratings.iter().map(|r| i(r.after_seq)).collect();
    let ats: Vec<DateTime<FixedOffset>> = b
        .ratings
        .iter()
        .filter_map(|r| ingest::parse_time(&r.at))
        .collect();
    let ratings: Vec<i16> = b.ratings.iter().map(|r| i16::from(r.rating)).collect();
    tx.execute(
        "INSERT INTO luot_central_ratings (site_id, epoch, ticket, after_seq, at, rating) \
         SELECT $1, $2, * FROM UNNEST($3::text[], $4::bigint[], $5::timestamptz[], $6::smallint[]) \
         ON CONFLICT (site_id, ticket) DO NOTHING",
        &[&b.site_id, &b.epoch, &tickets, &after, &ats, &ratings],
    )
    .await?;
    Ok(())
}
