//! The store's contract, one test module for every backend: each test runs
//! against sled on a real disk, against a real PostgreSQL (a throwaway
//! server, `luot-pgtest`; each test a site of its own in one database) and
//! against the in-memory store.

use chrono::NaiveDate;

use super::memory::MemStore;
use super::sled::SledStore;
use super::*;
use crate::engine::Event;

pub(crate) fn ev(n: i64) -> Event {
    Event::DayStarted {
        day: NaiveDate::from_ymd_opt(2026, 11, 22).unwrap(),
        at: n,
    }
}

/// Appends `n` public records numbered after `after_seq`.
pub(crate) fn append(s: &dyn Store, after_seq: u64, n: u64) -> Appended {
    let mut b = WriteBatch::new(after_seq);
    for i in 1..=n {
        b.records.push(Record {
            seq: Some(after_seq + i),
            event: ev((after_seq + i) as i64),
        });
    }
    s.append(&b).unwrap()
}

/// A PostgreSQL store of a new site in the shared test server's database,
/// taken over by this server (it writes).
pub(crate) fn pg_store() -> super::postgres::PgStore {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    static DB: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let url = DB.get_or_init(|| luot_pgtest::shared().fresh_database());
    let site = format!(
        "t{}-{}",
        std::process::id(),
        N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    );
    let pg = crate::config::store::Postgres {
        url: url.clone(),
        password_file: None,
    };
    // The node is named after the site, so a test can end its own
    // connections (they are `luot-<node>` in pg_stat_activity).
    let s = super::postgres::PgStore::open(&site, &pg, &site, None).unwrap();
    let head = s.status().unwrap().head.unwrap();
    assert!(s.claim(&head).unwrap());
    s
}

/// Runs `test` against each backend: sled in a temporary directory,
/// PostgreSQL, memory.
fn each(test: impl Fn(&dyn Store)) {
    let dir = tempfile::tempdir().unwrap();
    test(&SledStore::open(dir.path()).unwrap());
    test(&pg_store());
    test(&MemStore::new());
}

fn seqs(records: &[Record]) -> Vec<Option<u64>> {
    records.iter().map(|r| r.seq).collect()
}

#[test]
fn appended_records_load_in_order_with_their_seq() {
    each(|s| {
        append(s, 0, 3);
        let mut b = WriteBatch::new(3);
        b.records.push(Record {
            seq: None,
            event: ev(0),
        });
        b.records.push(Record {
            seq: Some(4),
            event: ev(4),
        });
        s.append(&b).unwrap();
        let l = s.load().unwrap();
        assert_eq!(seqs(&l.records), [Some(1), Some(2), Some(3), None, Some(4)]);
        assert_eq!(l.index, Some(4));
    });
}

#[test]
fn a_batch_after_the_wrong_seq_or_with_a_gap_is_refused_and_stores_nothing() {
    each(|s| {
        append(s, 0, 2);
        let mut b = WriteBatch::new(1);
        b.records.push(Record {
            seq: Some(2),
            event: ev(2),
        });
        let e = s.append(&b).unwrap_err();
        assert!(
            matches!(
                e,
                StoreError::Conflict {
                    expected: 1,
                    found: 2
                }
            ),
            "{e}"
        );
        let mut gap = WriteBatch::new(2);
        gap.records.push(Record {
            seq: Some(4),
            event: ev(4),
        });
        assert!(s.append(&gap).is_err());
        assert_eq!(s.load().unwrap().records.len(), 2);
        // The log still takes the right next batch.
        append(s, 2, 1);
        assert_eq!(s.load().unwrap().records.len(), 3);
    });
}

#[test]
fn read_from_a_seq_gives_the_public_records_after_it() {
    each(|s| {
        for k in 0..10 {
            append(s, k * 5, 5);
            let mut private = WriteBatch::new((k + 1) * 5);
            private.records.push(Record {
                seq: None,
                event: ev(0),
            });
            s.append(&private).unwrap();
        }
        let got = s.read_from(17, 4).unwrap();
        assert_eq!(seqs(&got), [Some(18), Some(19), Some(20), Some(21)]);
        assert_eq!(s.read_from(49, 10).unwrap().len(), 1);
        assert!(s.read_from(50, 10).unwrap().is_empty());
        assert_eq!(s.read_from(0, 100).unwrap().len(), 50);
    });
}

#[test]
fn a_snapshot_shortens_the_load_and_pruning_keeps_what_it_does_not_cover() {
    each(|s| {
        append(s, 0, 5);
        let at = append(s, 5, 5);
        let state = crate::engine::State::new(crate::engine::Site::from_config(
            &crate::config::demo_site().0,
        ))
        .to_snapshot();
        s.write_snapshot(&StoredSnapshot {
            index: at.index.unwrap(),
            seq: 10,
            state,
        })
        .unwrap();
        append(s, 10, 2);
        let l = s.load().unwrap();
        assert_eq!(l.snapshot.as_ref().map(|s| s.seq), Some(10));
        assert_eq!(seqs(&l.records), [Some(11), Some(12)]);
        // Up to 3 of the records the snapshot covers may go (PostgreSQL
        // keeps every event, rule 101), never one it does not cover.
        let pruned = s.prune_log(at.index.unwrap(), 3).unwrap();
        assert!(pruned <= 3, "{pruned}");
        assert_eq!(s.read_from(0, 100).unwrap().len(), 12 - pruned);
        assert_eq!(seqs(&s.load().unwrap().records), [Some(11), Some(12)]);
    });
}

#[test]
fn sessions_archives_and_reports_are_kept_with_the_batch() {
    each(|s| {
        let mut b = WriteBatch::new(0);
        let session = |u: &str, exp| Session {
            username: u.into(),
            expires_at: exp,
        };
        b.sessions.push(("old".into(), session("a", 100)));
        b.sessions.push(("new".into(), session("b", 10_000)));
        b.reports.push((
            "2026-11-21".into(),
            crate::report::daily(&crate::config::demo_site().0, "2026-11-21", &[]),
        ));
        b.visits.push((
            "2026-11-21".into(),
            crate::report::visits(&crate::config::demo_site().0, "2026-11-21", &[]),
        ));
        s.append(&b).unwrap();
        assert_eq!(s.session("new").unwrap(), Some(session("b", 10_000)));
        assert_eq!(s.prune_sessions(5_000).unwrap(), 1);
        assert!(s.session("old").unwrap().is_none());
        assert_eq!(
            s.archived_report("2026-11-21").unwrap().map(|r| r.day),
            Some("2026-11-21".to_string())
        );
        assert!(s.archived_report("2026-11-20").unwrap().is_none());
        let visits = s.archived_visits("2026-11-21").unwrap().unwrap();
        assert_eq!(visits.day, "2026-11-21");
        assert_eq!(visits.visits.len(), 5, "four limits and the all-row");
        assert!(s.archived_visits("2026-11-20").unwrap().is_none());
        assert!(s.archived_ticket("tk_none").unwrap().is_none());
    });
}

#[test]
fn a_backup_of_either_store_restores_into_sled() {
    each(|s| {
        append(s, 0, 20);
        let mut buf = Vec::new();
        s.backup(&mut buf).unwrap();
        let dir = tempfile::tempdir().unwrap();
        sled::restore(&mut buf.as_slice(), &dir.path().join("r")).unwrap();
        let r = SledStore::open(&dir.path().join("r")).unwrap();
        assert_eq!(r.load().unwrap().records, s.load().unwrap().records);
        append(&r, 20, 1);
    });
}

#[test]
fn committed_records_survive_a_reopen_of_sled() {
    let dir = tempfile::tempdir().unwrap();
    {
        let s = SledStore::open(dir.path()).unwrap();
        append(&s, 0, 5);
    }
    let s = SledStore::open(dir.path()).unwrap();
    assert_eq!(s.load().unwrap().records[4].seq, Some(5));
    // The head is read back from disk: the next batch follows seq 5.
    append(&s, 5, 1);
}

#[test]
fn a_visits_report_travels_in_a_backup() {
    each(|s| {
        let mut b = WriteBatch::new(0);
        let cfg = crate::config::demo_site().0;
        b.visits.push((
            "2026-11-21".into(),
            crate::report::visits(&cfg, "2026-11-21", &[]),
        ));
        s.append(&b).unwrap();
        let mut buf = Vec::new();
        s.backup(&mut buf).unwrap();
        let dir = tempfile::tempdir().unwrap();
        sled::restore(&mut buf.as_slice(), &dir.path().join("r")).unwrap();
        let r = SledStore::open(&dir.path().join("r")).unwrap();
        assert_eq!(
            r.archived_visits("2026-11-21").unwrap(),
            s.archived_visits("2026-11-21").unwrap()
        );
        assert!(r.archived_visits("2026-11-21").unwrap().is_some());
    });
}

#[test]
fn day_keys_load_back_go_with_their_day_and_never_into_a_backup() {
    each(|s| {
        let d = |n: u32| NaiveDate::from_ymd_opt(2026, 11, n).unwrap();
        let mut b = WriteBatch::new(0);
        b.day_keys = vec![(d(22), [7; 32]), (d(24), [9; 32])];
        b.records.push(Record {
            seq: Some(1),
            event: ev(1),
        });
        s.append(&b).unwrap();
        let mut keys = s.load().unwrap().day_keys;
        keys.sort();
        assert_eq!(keys, [(d(22), [7; 32]), (d(24), [9; 32])]);
        let mut out = Vec::new();
        s.backup(&mut out).unwrap();
        let needle = [7u8; 32];
        assert!(
            !out.windows(32).any(|w| w == needle),
            "a day key in a backup"
        );
        // The commit that starts the 23rd erases the 22nd's key.
        let mut b = WriteBatch::new(1);
        b.drop_keys_before = Some(d(23));
        b.day_keys = vec![(d(23), [8; 32])];
        s.append(&b).unwrap();
        let mut keys = s.load().unwrap().day_keys;
        keys.sort();
        assert_eq!(keys, [(d(23), [8; 32]), (d(24), [9; 32])]);
    });
}

/// A batch of `n` public records after `after_seq`, each with a webhook
/// body stored at `at`.
fn append_hooked(s: &dyn Store, after_seq: u64, n: u64, at: i64) {
    let mut b = WriteBatch::new(after_seq);
    for seq in after_seq + 1..=after_seq + n {
        b.records.push(Record {
            seq: Some(seq),
            event: ev(seq as i64),
        });
        b.hooks.push(HookBody {
            seq,
            at,
            kind: "ticket_called".into(),
            body: format!(r#"{{"seq":{seq},"x":"Khám Nội"}}"#).into_bytes(),
        });
    }
    s.append(&b).unwrap();
}

#[test]
fn a_new_store_has_one_epoch_from_seq_1_and_a_restore_appends_one() {
    each(|s| {
        let l = s.lineage().unwrap();
        assert_eq!(l.len(), 1);
        assert_eq!(l[0].first_seq, 1);
        assert!(
            l[0].epoch.starts_with("ep_") && l[0].epoch.len() == 25,
            "{l:?}"
        );
        // The same lineage each time it is asked.
        assert_eq!(s.lineage().unwrap(), l);
        append(s, 0, 7);
        let mut buf = Vec::new();
        s.backup(&mut buf).unwrap();
        let dir = tempfile::tempdir().unwrap();
        sled::restore(&mut buf.as_slice(), &dir.path().join("r")).unwrap();
        let r = SledStore::open(&dir.path().join("r")).unwrap();
        let rl = r.lineage().unwrap();
        assert_eq!(rl.len(), 2, "{rl:?}");
        assert_eq!(rl[0], l[0], "the backup's lineage is kept");
        assert_eq!(
            rl[1].first_seq, 8,
            "the new epoch starts after the backup's last seq"
        );
        assert_ne!(rl[1].epoch, l[0].epoch);
        assert_eq!(epoch_of(&rl, 7), Some(l[0].epoch.as_str()));
        assert_eq!(epoch_of(&rl, 8), Some(rl[1].epoch.as_str()));
    });
}

#[test]
fn webhook_bodies_commit_with_their_events_and_go_when_every_webhook_is_past_or_after_7_days() {
    each(|s| {
        append_hooked(s, 0, 5, 1_000);
        append_hooked(s, 5, 3, 9_000);
        let all = s.hook_bodies(0, 100).unwrap();
        assert_eq!(
            all.iter().map(|h| h.seq).collect::<Vec<_>>(),
            [1, 2, 3, 4, 5, 6, 7, 8]
        );
        assert_eq!(all[2].body, r#"{"seq":3,"x":"Khám Nội"}"#.as_bytes());
        assert_eq!(all[2].kind, "ticket_called");
        assert_eq!(all[2].at, 1_000);
        let after = s.hook_bodies(6, 1).unwrap();
        assert_eq!(after.len(), 1);
        assert_eq!(after[0].seq, 7);
        // Every webhook is past 2: 1 and 2 go, nothing is reported dropped.
        assert!(s.prune_hooks(2, 0, 100).unwrap().is_empty());
        assert_eq!(s.hook_bodies(0, 100).unwrap()[0].seq, 3);
        // Bodies stored before 5_000 go even if a webhook needs them.
        let dropped = s.prune_hooks(2, 5_000, 100).unwrap();
        assert_eq!(dropped, [3, 4, 5].map(|q| (q, "ticket_called".to_string())));
        assert_eq!(s.hook_bodies(0, 100).unwrap()[0].seq, 6);
        // Never in a backup.
        let mut out = Vec::new();
        s.backup(&mut out).unwrap();
        let needle = r#""x":"Khám Nội""#.as_bytes();
        assert!(
            !out.windows(needle.len()).any(|w| w == needle),
            "a webhook body in a backup"
        );
    });
}

#[test]
fn a_webhook_cursor_is_kept_and_never_restored_from_a_backup() {
    each(|s| {
        assert_eq!(s.hook_cursor("his").unwrap(), None);
        let c = HookCursor {
            after: 12,
            acked: Some(11),
            skipped_from: None,
        };
        s.put_hook_cursor("his", &c, true).unwrap();
        assert_eq!(s.hook_cursor("his").unwrap(), Some(c));
        assert_eq!(s.hook_cursor("lis").unwrap(), None);
        let mut buf = Vec::new();
        s.backup(&mut buf).unwrap();
        let dir = tempfile::tempdir().unwrap();
        sled::restore(&mut buf.as_slice(), &dir.path().join("r")).unwrap();
        let r = SledStore::open(&dir.path().join("r")).unwrap();
        assert_eq!(
            r.hook_cursor("his").unwrap(),
            None,
            "a restore starts webhooks afresh"
        );
    });
}

#[test]
fn a_webhook_cursor_survives_a_reopen_of_sled() {
    let dir = tempfile::tempdir().unwrap();
    let c = HookCursor {
        after: 40,
        acked: Some(40),
        skipped_from: Some(3),
    };
    let epoch = {
        let s = SledStore::open(dir.path()).unwrap();
        s.put_hook_cursor("his", &c, true).unwrap();
        s.lineage().unwrap()
    };
    let s = SledStore::open(dir.path()).unwrap();
    assert_eq!(s.hook_cursor("his").unwrap(), Some(c));
    assert_eq!(s.lineage().unwrap(), epoch, "reopening keeps the epoch");
}

#[test]
fn a_snapshot_between_private_records_loads_exactly_what_it_does_not_cover() {
    each(|s| {
        let private = |after: u64| {
            let mut b = WriteBatch::new(after);
            b.records.push(Record {
                seq: None,
                event: ev(-(after as i64)),
            });
            b
        };
        append(s, 0, 3);
        // Two private records after seq 3, in two commits, the snapshot
        // taken between them.
        let at = s.append(&private(3)).unwrap();
        let state = crate::engine::State::new(crate::engine::Site::from_config(
            &crate::config::demo_site().0,
        ))
        .to_snapshot();
        s.write_snapshot(&StoredSnapshot {
            index: at.index.unwrap(),
            seq: 3,
            state,
        })
        .unwrap();
        let second = s.append(&private(3)).unwrap();
        assert_eq!(second.index, at.index.map(|i| i + 1));
        append(s, 3, 1);
        let l = s.load().unwrap();
        assert_eq!(seqs(&l.records), [None, Some(4)]);
        assert_eq!(l.index, second.index.map(|i| i + 1));
    });
}
