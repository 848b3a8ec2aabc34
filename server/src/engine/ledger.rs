//! What §11 counts, as data with its indexes: the bookings kept (days ahead
//! and the last 90, rule 77) with their codes, request ids, seats per
//! session and slot, the persons still holding one, and the day keys of
//! person hashes (rule 81); and the day's tickets per session and per person
//! (rules 73, 74, 82). Plain bookkeeping: whether anything is allowed is
//! decided in `capacity.rs` and `appointments.rs`. A leaf: it imports
//! nothing of the engine (times are milliseconds since the epoch, as
//! `Millis` elsewhere).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{Duration, NaiveDate};
use luot_protocol::AppointmentStatus;
use serde::{Deserialize, Serialize};

use super::identity::DayKey;

/// How many days after its day a booking is kept (rule 77).
pub const KEEP_DAYS: i64 = 90;

/// A booking as the engine keeps it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct AppointmentRec {
    pub id: String,
    pub code: String,
    pub service: String,
    pub session: String,
    pub day: NaiveDate,
    pub slot_at: i64,
    pub status: AppointmentStatus,
    /// The earlier of the class sent and the one derived for its day.
    pub priority: Option<String>,
    /// The class as sent (a replay must send the same).
    #[serde(default)]
    pub sent_priority: Option<String>,
    #[serde(default)]
    pub external_ref: Option<String>,
    /// Booked with an identity.
    pub identity: bool,
    /// The person's hash under its day's key; erased once its day ends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub person: Option<String>,
    #[serde(default)]
    pub ticket: Option<String>,
    pub booked_by: String,
    /// The `request_id` scope of its maker (`device:…`, `user:…`).
    pub scope: String,
    pub request_id: String,
    pub created_at: i64,
}

/// Seats of one session on one day taken by bookings.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SessionBookings {
    /// Not cancelled (rule 76's quota).
    pub taken: u32,
    /// Still `booked`.
    pub booked: u32,
    pub checked_in: u32,
}

/// (service, day, session).
type SessionKey = (String, NaiveDate, String);

/// The bookings kept, with their indexes, and the day keys.
#[derive(Clone, Debug, Default)]
pub struct Bookings {
    by_id: HashMap<String, AppointmentRec>,
    by_code: HashMap<String, String>,
    /// (scope, request_id) → booking id.
    idem: HashMap<(String, String), String>,
    sessions: HashMap<SessionKey, SessionBookings>,
    /// Bookings not cancelled per (service, slot).
    slots: HashMap<(String, i64), u32>,
    /// Bookings still `booked` per (day, person).
    persons: HashMap<(NaiveDate, String), u32>,
    /// Bookings still `booked`, by slot: the next to expire first.
    pending: BTreeSet<(i64, String)>,
    keys: BTreeMap<NaiveDate, DayKey>,
}

impl Bookings {
    pub fn get(&self, id: &str) -> Option<&AppointmentRec> {
        self.by_id.get(id)
    }

    pub fn by_code(&self, code: &str) -> Option<&AppointmentRec> {
        self.by_code.get(code).and_then(|id| self.by_id.get(id))
    }

    pub fn code_taken(&self, code: &str) -> bool {
        self.by_code.contains_key(code)
    }

    /// The booking a `request_id` of `scope` made.
    pub fn replay(&self, scope: &str, request_id: &str) -> Option<&AppointmentRec> {
        let id = self
            .idem
            .get(&(scope.to_string(), request_id.to_string()))?;
        self.by_id.get(id)
    }

    pub fn all(&self) -> impl Iterator<Item = &AppointmentRec> {
        self.by_id.values()
    }

    pub fn session(&self, service: &str, day: NaiveDate, session: &str) -> SessionBookings {
        let key = (service.to_string(), day, session.to_string());
        self.sessions.get(&key).copied().unwrap_or_default()
    }

    pub fn slot_taken(&self, service: &str, slot_at: i64) -> u32 {
        let key = (service.to_string(), slot_at);
        self.slots.get(&key).copied().unwrap_or(0)
    }

    /// A person's bookings still `booked` on `day` (rule 82).
    pub fn person_booked(&self, day: NaiveDate, person: &str) -> u32 {
        let key = (day, person.to_string());
        self.persons.get(&key).copied().unwrap_or(0)
    }

    /// Bookings still `booked` whose slot is at or before `slot_at`, in order.
    pub fn booked_until(&self, slot_at: i64) -> Vec<String> {
        self.pending
            .iter()
            .take_while(|(at, _)| *at <= slot_at)
            .map(|(_, id)| id.clone())
            .collect()
    }

    pub fn key(&self, day: NaiveDate) -> Option<&DayKey> {
        self.keys.get(&day)
    }

    /// The keys kept, as the store would give them back at start-up.
    #[cfg(test)]
    pub fn keys_for_test(&self) -> Vec<(NaiveDate, DayKey)> {
        self.keys.iter().map(|(d, k)| (*d, *k)).collect()
    }

    pub fn set_key(&mut self, day: NaiveDate, key: DayKey) {
        self.keys.insert(day, key);
    }

    pub fn insert(&mut self, rec: AppointmentRec) {
        self.by_code.insert(rec.code.clone(), rec.id.clone());
        let idem = (rec.scope.clone(), rec.request_id.clone());
        self.idem.insert(idem, rec.id.clone());
        self.account(&rec, 1);
        self.by_id.insert(rec.id.clone(), rec);
    }

    /// Changes a booking's status (and its ticket once checked in).
    pub fn set_status(&mut self, id: &str, status: AppointmentStatus, ticket: Option<&str>) {
        let Some(mut rec) = self.by_id.remove(id) else {
            return;
        };
        self.account(&rec, -1);
        rec.status = status;
        if let Some(t) = ticket {
            rec.ticket = Some(t.to_string());
        }
        self.account(&rec, 1);
        self.by_id.insert(rec.id.clone(), rec);
    }

    /// Adds (`sign` 1) or takes away (-1) what a booking counts.
    fn account(&mut self, rec: &AppointmentRec, sign: i32) {
        let add = |n: &mut u32| *n = n.saturating_add_signed(sign);
        let key = (rec.service.clone(), rec.day, rec.session.clone());
        let s = self.sessions.entry(key).or_default();
        match rec.status {
            AppointmentStatus::Cancelled => {}
            AppointmentStatus::Booked => {
                add(&mut s.taken);
                add(&mut s.booked);
            }
            AppointmentStatus::CheckedIn => {
                add(&mut s.taken);
                add(&mut s.checked_in);
            }
            AppointmentStatus::Expired => add(&mut s.taken),
        }
        if rec.status != AppointmentStatus::Cancelled {
            add(self
                .slots
                .entry((rec.service.clone(), rec.slot_at))
                .or_default());
        }
        if rec.status != AppointmentStatus::Booked {
            return;
        }
        let pending = (rec.slot_at, rec.id.clone());
        if sign > 0 {
            self.pending.insert(pending);
        } else {
            self.pending.remove(&pending);
        }
        if let Some(p) = &rec.person {
            add(self.persons.entry((rec.day, p.clone())).or_default());
        }
    }

    /// A new day (rule 77, 81): bookings more than 90 days old are erased,
    /// past days' bookings lose their person hash, past days' keys go.
    pub fn start_day(&mut self, day: NaiveDate) {
        let oldest = day - Duration::days(KEEP_DAYS);
        let past: Vec<String> = self
            .by_id
            .values()
            .filter(|r| r.day < day && (r.day < oldest || r.person.is_some()))
            .map(|r| r.id.clone())
            .collect();
        for id in past {
            let Some(mut rec) = self.by_id.remove(&id) else {
                continue;
            };
            self.account(&rec, -1);
            if rec.day < oldest {
                self.by_code.remove(&rec.code);
                self.idem
                    .remove(&(rec.scope.clone(), rec.request_id.clone()));
                continue;
            }
            rec.person = None;
            self.account(&rec, 1);
            self.by_id.insert(id, rec);
        }
        self.sessions.retain(|(_, d, _), _| *d >= oldest);
        self.persons.retain(|(d, _), n| *d >= day && *n > 0);
        self.keys.retain(|d, _| *d >= day);
    }
}

/// The day's tickets as §11 counts them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counted {
    /// (service, session) → tickets counted in it.
    sessions: HashMap<(String, String), u32>,
    /// Service → tickets issued for it.
    services: HashMap<String, u32>,
    /// Person hash → tickets issued or checked in with it.
    persons: HashMap<String, u32>,
}

impl Counted {
    pub fn add(&mut self, service: &str, session: Option<&str>, person: Option<&str>) {
        *self.services.entry(service.to_string()).or_default() += 1;
        if let Some(s) = session {
            *self
                .sessions
                .entry((service.to_string(), s.to_string()))
                .or_default() += 1;
        }
        if let Some(p) = person {
            *self.persons.entry(p.to_string()).or_default() += 1;
        }
    }

    pub fn in_session(&self, service: &str, session: &str) -> u32 {
        let key = (service.to_string(), session.to_string());
        self.sessions.get(&key).copied().unwrap_or(0)
    }

    pub fn of_service(&self, service: &str) -> u32 {
        self.services.get(service).copied().unwrap_or(0)
    }

    pub fn of_person(&self, person: &str) -> u32 {
        self.persons.get(person).copied().unwrap_or(0)
    }
}

/// What a walk-in asks, for rule 75's checks.
pub struct WalkIn<'a> {
    pub limited: bool,
    pub priority: Option<&'a str>,
    pub identity: bool,
    pub person: Option<&'a str>,
}

/// The filters of `GET /appointments`.
pub struct ListFilter<'a> {
    pub day: NaiveDate,
    pub service: Option<&'a str>,
    pub status: Option<AppointmentStatus>,
    pub external_ref: Option<&'a str>,
    /// An integration's scope: only the bookings it made.
    pub only: Option<&'a str>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(id: &str, day: &str, slot_at: i64, person: Option<&str>) -> AppointmentRec {
        AppointmentRec {
            id: id.into(),
            code: format!("c{id}"),
            service: "a".into(),
            session: "sang".into(),
            day: NaiveDate::parse_from_str(day, "%Y-%m-%d").unwrap(),
            slot_at,
            status: AppointmentStatus::Booked,
            priority: None,
            sent_priority: None,
            external_ref: None,
            identity: person.is_some(),
            person: person.map(String::from),
            ticket: None,
            booked_by: "his".into(),
            scope: "device:his".into(),
            request_id: format!("r{id}"),
            created_at: 0,
        }
    }

    #[test]
    fn seats_follow_the_status_of_each_booking() {
        let mut b = Bookings::default();
        let day = NaiveDate::from_ymd_opt(2026, 11, 22).unwrap();
        b.insert(rec("1", "2026-11-22", 10, Some("p")));
        b.insert(rec("2", "2026-11-22", 10, None));
        b.insert(rec("3", "2026-11-22", 20, None));
        let s = b.session("a", day, "sang");
        assert_eq!((s.taken, s.booked, s.checked_in), (3, 3, 0));
        assert_eq!(b.slot_taken("a", 10), 2);
        assert_eq!(b.person_booked(day, "p"), 1);
        b.set_status("1", AppointmentStatus::CheckedIn, Some("tk"));
        b.set_status("2", AppointmentStatus::Cancelled, None);
        let s = b.session("a", day, "sang");
        assert_eq!((s.taken, s.booked, s.checked_in), (2, 1, 1));
        assert_eq!(
            b.slot_taken("a", 10),
            1,
            "a cancelled booking frees its seat"
        );
        assert_eq!(b.person_booked(day, "p"), 0, "checked in: a ticket now");
        assert_eq!(b.booked_until(15), Vec::<String>::new());
        assert_eq!(b.booked_until(20), vec!["3".to_string()]);
        assert_eq!(b.get("1").unwrap().ticket.as_deref(), Some("tk"));
    }

    #[test]
    fn a_new_day_erases_old_bookings_hashes_and_keys() {
        let mut b = Bookings::default();
        b.insert(rec("old", "2026-08-01", 1, None));
        b.insert(rec("past", "2026-11-21", 2, Some("p")));
        b.insert(rec("ahead", "2026-11-25", 3, Some("q")));
        let day = NaiveDate::from_ymd_opt(2026, 11, 22).unwrap();
        b.set_key(day - Duration::days(1), [1; 32]);
        b.set_key(day, [2; 32]);
        b.start_day(day);
        assert!(
            b.get("old").is_none() && !b.code_taken("cold"),
            "erased after 90 days"
        );
        assert!(b.replay("device:his", "rold").is_none());
        assert_eq!(
            b.get("past").unwrap().person,
            None,
            "the hash goes with its day"
        );
        assert!(b.get("ahead").unwrap().person.is_some());
        assert!(b.key(day - Duration::days(1)).is_none());
        assert!(b.key(day).is_some());
    }
}
