//! The Batch a site ships (rules 112–114) and what central decides about it,
//! pure: the 400s of a Batch that is not well formed (events not consecutive,
//! outside their lineage entry), then, against what central already holds for
//! the Batch's epoch, whether it is taken (and which range it lists as
//! `missing`), a `gap` or a `seq_conflict`.
//!
//! Owns the rules of rule 114 that need no database. Never does I/O: `db.rs`
//! reads what is held, asks `decide`, and writes.

use std::collections::HashMap;

use chrono::{DateTime, FixedOffset};
use serde::{Deserialize, Serialize};

/// The most events one Batch may hold (rule 112).
pub const MAX_EVENTS: usize = 1000;

/// One entry of a site's lineage: events from `first_seq` up to the next
/// entry's `first_seq` − 1 belong to `epoch`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct LineageEntry {
    pub epoch: String,
    pub first_seq: u64,
}

/// One shipped event: its `seq`, when it was stored, and the `event` body a
/// display connection gets (rule 113), kept as JSON so that kinds central
/// does not know are kept too.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct BatchEvent {
    pub seq: u64,
    pub at: String,
    pub event: serde_json::Value,
}

/// A rating without its comment (rule 113).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Rating {
    pub after_seq: u64,
    pub at: String,
    pub ticket: String,
    pub rating: u8,
}

/// `config` of a Batch (rule 118).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
pub struct ConfigState {
    #[serde(default)]
    pub applied: Option<u64>,
    #[serde(default)]
    pub pending: Option<u64>,
    #[serde(default)]
    pub rejected: Option<serde_json::Value>,
}

/// What `POST /ingest` carries (rule 112; §14's example). Fields a newer
/// site adds are ignored.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Batch {
    pub site_id: String,
    #[serde(default)]
    pub node: Option<String>,
    #[serde(default)]
    pub luot_version: Option<String>,
    pub head_seq: u64,
    pub lineage: Vec<LineageEntry>,
    pub epoch: String,
    #[serde(default)]
    pub oldest_seq: Option<u64>,
    #[serde(default)]
    pub config: Option<ConfigState>,
    #[serde(default)]
    pub events: Vec<BatchEvent>,
    #[serde(default)]
    pub ratings: Vec<Rating>,
}

/// What makes two events at one seq the same (rule 114): `at` (as an
/// instant, to the microsecond PostgreSQL keeps), `kind` and the ticket.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fingerprint {
    pub at_us: i64,
    pub kind: String,
    pub ticket: Option<String>,
}

/// A well-formed event: its fields as central indexes them.
#[derive(Clone, Debug)]
pub struct Checked {
    pub seq: u64,
    pub at: DateTime<FixedOffset>,
    pub kind: String,
    pub ticket: Option<String>,
    /// `day` of a `day_started`.
    pub day: Option<String>,
}

impl Checked {
    pub fn fingerprint(&self) -> Fingerprint {
        Fingerprint {
            at_us: self.at.timestamp_micros(),
            kind: self.kind.clone(),
            ticket: self.ticket.clone(),
        }
    }
}

/// A Batch that passed `check`: its entry and each event's index fields.
#[derive(Clone, Debug)]
pub struct Valid {
    /// The `first_seq` of the Batch's epoch in its lineage.
    pub entry_first: u64,
    /// The first seq of the next entry, if any.
    pub entry_end: Option<u64>,
    pub events: Vec<Checked>,
}

/// Parses an RFC 3339 time.
pub fn parse_time(s: &str) -> Option<DateTime<FixedOffset>> {
    DateTime::parse_from_rfc3339(s).ok()
}

/// An epoch as rule 112 makes them: `ep_` and URL-safe base64 (accepted
/// from 1 to 64 characters after the prefix).
fn valid_epoch(e: &str) -> bool {
    e.strip_prefix("ep_").is_some_and(|r| {
        (1..=64).contains(&r.len())
            && r.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    })
}

/// Rule 114's 400s: a lineage that is not one, an epoch not in it, too many
/// events, events not consecutive or outside their entry, an event without
/// a time or a kind, a rating out of 1..5. The message says what is wrong.
pub fn check(b: &Batch) -> Result<Valid, String> {
    if b.lineage.is_empty() {
        return Err("lineage is empty: a store's lineage has at least one entry".into());
    }
    for (i, e) in b.lineage.iter().enumerate() {
        if !valid_epoch(&e.epoch) {
            return Err(format!(
                "lineage[{i}].epoch \"{}\" is not an epoch (ep_ and URL-safe base64)",
                e.epoch
            ));
        }
        if e.first_seq == 0 {
            return Err(format!("lineage[{i}].first_seq must be at least 1"));
        }
        if i > 0 && e.first_seq <= b.lineage[i - 1].first_seq {
            return Err(format!(
                "lineage[{i}].first_seq {} is not above the entry before it ({})",
                e.first_seq,
                b.lineage[i - 1].first_seq
            ));
        }
        if b.lineage[..i].iter().any(|x| x.epoch == e.epoch) {
            return Err(format!("lineage[{i}]: epoch {} is listed twice", e.epoch));
        }
    }
    let Some(k) = b.lineage.iter().position(|e| e.epoch == b.epoch) else {
        return Err(format!("epoch {} is not in the lineage", b.epoch));
    };
    let entry_first = b.lineage[k].first_seq;
    let entry_end = b.lineage.get(k + 1).map(|e| e.first_seq);
    if b.oldest_seq == Some(0) {
        return Err("oldest_seq must be at least 1".into());
    }
    if b.events.len() > MAX_EVENTS {
        return Err(format!(
            "a Batch holds at most {MAX_EVENTS} events, this one {}",
            b.events.len()
        ));
    }
    let mut events = Vec::with_capacity(b.events.len());
    for (i, e) in b.events.iter().enumerate() {
        if i > 0 && e.seq != b.events[i - 1].seq + 1 {
            return Err(format!(
                "events are not consecutive: seq {} follows {}",
                e.seq,
                b.events[i - 1].seq
            ));
        }
        if e.seq < entry_first || entry_end.is_some_and(|end| e.seq >= end) {
            return Err(format!(
                "event seq {} is outside its lineage entry ({} from {}{})",
                e.seq,
                b.epoch,
                entry_first,
                entry_end
                    .map(|x| format!(" to {}", x - 1))
                    .unwrap_or_default()
            ));
        }
        let Some(at) = parse_time(&e.at) else {
            return Err(format!(
                "event seq {}: at \"{}\" is not RFC 3339",
                e.seq, e.at
            ));
        };
        let Some(kind) = e.event.get("kind").and_then(|k| k.as_str()) else {
            return Err(format!("event seq {}: event has no kind", e.seq));
        };
        let ticket = e
            .event
            .get("ticket")
            .and_then(|t| t.get("id"))
            .and_then(|i| i.as_str())
            .map(str::to_string);
        let day = (kind == "day_started")
            .then(|| {
                e.event
                    .get("day")
                    .and_then(|d| d.as_str())
                    .map(str::to_string)
            })
            .flatten();
        events.push(Checked {
            seq: e.seq,
            at,
            kind: kind.to_string(),
            ticket,
            day,
        });
    }
    for (i, r) in b.ratings.iter().enumerate() {
        if !(1..=5).contains(&r.rating) {
            return Err(format!("ratings[{i}].rating {} is not 1..5", r.rating));
        }
        if r.ticket.is_empty() || r.ticket.len() > 128 {
            return Err(format!("ratings[{i}].ticket must be 1-128 characters"));
        }
        if parse_time(&r.at).is_none() {
            return Err(format!("ratings[{i}].at \"{}\" is not RFC 3339", r.at));
        }
    }
    Ok(Valid {
        entry_first,
        entry_end,
        events,
    })
}

/// What central does with a valid Batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Take it: insert every event (those held already are skipped by
    /// `ON CONFLICT DO NOTHING`), record `missing` if any; answer
    /// `acked_seq`.
    Take {
        acked_seq: u64,
        missing: Option<(u64, u64)>,
    },
    /// 409 `gap`: its first seq is above `acked_seq` + 1.
    Gap { acked_seq: u64 },
    /// 409 `seq_conflict`: central holds `seq` with another `at`, `kind` or
    /// ticket, and keeps its own.
    Conflict { seq: u64 },
}

/// Rule 114 against what is held: `held_max` the highest seq held for the
/// Batch's epoch, `held` the fingerprints of held events at the Batch's
/// seqs.
pub fn decide(
    b: &Batch,
    v: &Valid,
    held_max: Option<u64>,
    held: &HashMap<u64, Fingerprint>,
) -> Decision {
    let acked = held_max.unwrap_or(v.entry_first - 1);
    let (Some(first), Some(last)) = (v.events.first(), v.events.last()) else {
        return Decision::Take {
            acked_seq: acked,
            missing: None,
        };
    };
    let mut missing = None;
    if first.seq > acked + 1 {
        let oldest = b.oldest_seq.unwrap_or(1);
        if first.seq == v.entry_first.max(oldest) {
            missing = Some((acked + 1, first.seq - 1));
        } else {
            return Decision::Gap { acked_seq: acked };
        }
    }
    for e in &v.events {
        if let Some(h) = held.get(&e.seq)
            && *h != e.fingerprint()
        {
            return Decision::Conflict { seq: e.seq };
        }
    }
    Decision::Take {
        acked_seq: acked.max(last.seq),
        missing,
    }
}

/// Which lineage entry holds `seq`: the last with `first_seq` ≤ seq.
pub fn entry_of(lineage: &[LineageEntry], seq: u64) -> Option<&LineageEntry> {
    lineage.iter().rev().find(|e| e.first_seq <= seq)
}

/// Each entry's range `[first_seq, end)` (`end` None for the last).
pub fn ranges(lineage: &[LineageEntry]) -> Vec<(&str, u64, Option<u64>)> {
    lineage
        .iter()
        .enumerate()
        .map(|(i, e)| {
            (
                e.epoch.as_str(),
                e.first_seq,
                lineage.get(i + 1).map(|n| n.first_seq),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const E1: &str = "ep_AAAAAAAAAAAAAAAAAAAAAA";
    const E2: &str = "ep_BBBBBBBBBBBBBBBBBBBBBB";

    fn ev(seq: u64, kind: &str, ticket: &str) -> BatchEvent {
        BatchEvent {
            seq,
            at: format!("2026-11-22T07:{:02}:00+07:00", seq % 60),
            event: json!({"kind": kind, "ticket": {"id": ticket}}),
        }
    }

    fn batch(epoch: &str, seqs: std::ops::RangeInclusive<u64>) -> Batch {
        Batch {
            site_id: "bv".into(),
            node: None,
            luot_version: None,
            head_seq: *seqs.end(),
            lineage: vec![
                LineageEntry {
                    epoch: E1.into(),
                    first_seq: 1,
                },
                LineageEntry {
                    epoch: E2.into(),
                    first_seq: 101,
                },
            ],
            epoch: epoch.into(),
            oldest_seq: Some(1),
            config: None,
            events: seqs
                .map(|s| ev(s, "ticket_issued", &format!("h_{s}")))
                .collect(),
            ratings: vec![],
        }
    }

    fn held_of(b: &Batch) -> HashMap<u64, Fingerprint> {
        let v = check(b).expect("valid");
        v.events.iter().map(|e| (e.seq, e.fingerprint())).collect()
    }

    #[test]
    fn the_next_events_are_taken() {
        let b = batch(E1, 1..=10);
        let v = check(&b).expect("valid");
        assert_eq!(
            decide(&b, &v, None, &HashMap::new()),
            Decision::Take {
                acked_seq: 10,
                missing: None
            }
        );
        let b2 = batch(E1, 11..=20);
        let v2 = check(&b2).expect("valid");
        assert_eq!(
            decide(&b2, &v2, Some(10), &HashMap::new()),
            Decision::Take {
                acked_seq: 20,
                missing: None
            }
        );
    }

    #[test]
    fn a_replay_is_taken_and_changes_nothing() {
        let b = batch(E1, 1..=10);
        let v = check(&b).expect("valid");
        assert_eq!(
            decide(&b, &v, Some(10), &held_of(&b)),
            Decision::Take {
                acked_seq: 10,
                missing: None
            }
        );
        // Overlapping: 5..15 when 1..10 is held.
        let b2 = batch(E1, 5..=15);
        let v2 = check(&b2).expect("valid");
        assert_eq!(
            decide(&b2, &v2, Some(10), &held_of(&b)),
            Decision::Take {
                acked_seq: 15,
                missing: None
            }
        );
    }

    #[test]
    fn a_batch_after_a_hole_is_a_gap() {
        let b = batch(E1, 20..=30);
        let v = check(&b).expect("valid");
        assert_eq!(
            decide(&b, &v, Some(10), &HashMap::new()),
            Decision::Gap { acked_seq: 10 }
        );
        // An epoch never heard of starts at its first_seq − 1.
        let b = batch(E2, 105..=110);
        let v = check(&b).expect("valid");
        assert_eq!(
            decide(&b, &v, None, &HashMap::new()),
            Decision::Gap { acked_seq: 100 }
        );
    }

    #[test]
    fn a_site_that_holds_nothing_earlier_is_taken_with_missing() {
        let mut b = batch(E1, 50..=60);
        b.oldest_seq = Some(50);
        let v = check(&b).expect("valid");
        assert_eq!(
            decide(&b, &v, None, &HashMap::new()),
            Decision::Take {
                acked_seq: 60,
                missing: Some((1, 49))
            }
        );
        assert_eq!(
            decide(&b, &v, Some(20), &HashMap::new()),
            Decision::Take {
                acked_seq: 60,
                missing: Some((21, 49))
            }
        );
        // Not starting at oldest_seq: still a gap.
        b.oldest_seq = Some(40);
        assert_eq!(
            decide(&b, &v, Some(20), &HashMap::new()),
            Decision::Gap { acked_seq: 20 }
        );
    }

    #[test]
    fn another_event_at_a_held_seq_is_a_conflict() {
        let held = held_of(&batch(E1, 1..=10));
        let mut b = batch(E1, 8..=12);
        b.events[1].event = json!({"kind": "ticket_called", "ticket": {"id": "h_9"}});
        let v = check(&b).expect("valid");
        assert_eq!(
            decide(&b, &v, Some(10), &held),
            Decision::Conflict { seq: 9 }
        );
        let mut b = batch(E1, 8..=12);
        b.events[2].at = "2026-11-22T08:00:00+07:00".into();
        let v = check(&b).expect("valid");
        assert_eq!(
            decide(&b, &v, Some(10), &held),
            Decision::Conflict { seq: 10 }
        );
        let mut b = batch(E1, 8..=12);
        b.events[0].event = json!({"kind": "ticket_issued", "ticket": {"id": "h_other"}});
        let v = check(&b).expect("valid");
        assert_eq!(
            decide(&b, &v, Some(10), &held),
            Decision::Conflict { seq: 8 }
        );
        // The same instant written with another offset is the same `at`.
        let mut b = batch(E1, 8..=8);
        b.events[0].at = "2026-11-22T00:08:00Z".into();
        let v = check(&b).expect("valid");
        assert!(matches!(
            decide(&b, &v, Some(10), &held),
            Decision::Take { .. }
        ));
    }

    #[test]
    fn malformed_batches_are_refused() {
        let mut b = batch(E1, 1..=3);
        b.events[2].seq = 5;
        assert!(check(&b).unwrap_err().contains("not consecutive"));
        let b = batch(E1, 99..=102);
        assert!(check(&b).unwrap_err().contains("outside its lineage entry"));
        let b = batch(E2, 100..=102);
        assert!(check(&b).unwrap_err().contains("outside"));
        let mut b = batch(E1, 1..=1);
        b.epoch = "ep_nope".into();
        assert!(check(&b).unwrap_err().contains("not in the lineage"));
        let mut b = batch(E1, 1..=1);
        b.lineage[1].first_seq = 1;
        assert!(check(&b).unwrap_err().contains("not above"));
        let mut b = batch(E1, 1..=1);
        b.events[0].event = json!({"ticket": null});
        assert!(check(&b).unwrap_err().contains("no kind"));
        let b = batch(E1, 1..=1001);
        assert!(check(&b).is_err());
    }

    #[test]
    fn entries_hold_their_seqs() {
        let b = batch(E1, 1..=1);
        assert_eq!(
            entry_of(&b.lineage, 100).map(|e| e.epoch.as_str()),
            Some(E1)
        );
        assert_eq!(
            entry_of(&b.lineage, 101).map(|e| e.epoch.as_str()),
            Some(E2)
        );
        assert_eq!(
            ranges(&b.lineage),
            vec![(E1, 1, Some(101)), (E2, 101, None)]
        );
    }
}
