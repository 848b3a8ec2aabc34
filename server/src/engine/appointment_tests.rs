//! Unit and property tests of §11 in the engine: sessions and caps (rules
//! 73–75), bookings and their windows (76, 77), check-in and its place in
//! the queue (78, 79), identity and the per-person cap (80–82), expiry,
//! replays, and the day start that erases hashes and keys.

use std::collections::HashSet;

use chrono::{NaiveTime, TimeZone};
use luot_protocol::{AppointmentStatus, Identity};
use proptest::prelude::*;

use super::identity::{Fresh, damm_valid};
use super::*;
use crate::config::{IdentityRule, Priority, Service, Session, SiteConfig, WalkIns};

/// 2026-11-22 07:00 in Asia/Ho_Chi_Minh plus `mins` minutes.
fn t(mins: i64) -> Millis {
    chrono_tz::Asia::Ho_Chi_Minh
        .with_ymd_and_hms(2026, 11, 22, 7, 0, 0)
        .unwrap()
        .timestamp_millis()
        + mins * 60_000
}

fn hm(h: u32, m: u32) -> NaiveTime {
    NaiveTime::from_hms_opt(h, m, 0).unwrap()
}

fn session(id: &str, start: NaiveTime, end: NaiveTime, cap: Option<u32>, quota: u32) -> Session {
    Session {
        id: id.into(),
        start,
        end,
        cap,
        appointment_quota: quota,
        slot_minutes: 30,
        slot_capacity: Some(2),
    }
}

/// Service `a`: `sang` 07:00–11:30 (cap 10, 4 kept for bookings, slots of
/// 30 min taking 2), `chieu` 13:30–16:30 (cap 5, no bookings); daily cap
/// 14. Service `b`: no sessions, no caps. At most 2 per person.
fn config() -> SiteConfig {
    let mut cfg = SiteConfig::parse(
        "t.toml",
        "[site]\nname = \"T\"\n[[services]]\nid = \"a\"\nname = \"A\"\nprefix = \"A\"\n",
    )
    .expect("minimal config");
    let svc = |id: &str, p: &str| Service {
        id: id.into(),
        name: format!("Dịch vụ {id}"),
        prefix: p.into(),
        digits: 3,
        daily_cap: None,
        walk_ins: WalkIns::All,
        identity: IdentityRule::Optional,
        sessions: Vec::new(),
    };
    let mut a = svc("a", "A");
    a.daily_cap = Some(14);
    a.sessions = vec![
        session("sang", hm(7, 0), hm(11, 30), Some(10), 4),
        session("chieu", hm(13, 30), hm(16, 30), Some(5), 0),
    ];
    cfg.services = vec![a, svc("b", "B")];
    cfg.counters = vec![crate::config::Counter {
        id: "c1".into(),
        name: "Quầy 1".into(),
        services: vec!["a".into(), "b".into()],
        policy: None,
        returning_ratio: None,
    }];
    cfg.priority = Priority {
        ratio: 2,
        classes: ["emergency", "child_under_6", "pregnant", "age_75_plus"]
            .map(String::from)
            .into(),
    };
    cfg.identity.max_tickets_per_person_per_day = 2;
    cfg
}

fn person(id: &str, birth: &str) -> Identity {
    Identity {
        id_number: id.into(),
        birth_date: birth.into(),
    }
}

const ADULT: &str = "1980-05-05";

struct Fx {
    st: State,
    log: Vec<Event>,
    n: u32,
}

impl Fx {
    fn new(cfg: &SiteConfig) -> Fx {
        Fx {
            st: State::new(Site::from_config(cfg)),
            log: vec![],
            n: 0,
        }
    }

    fn fresh(&mut self) -> Fresh {
        self.n += 1;
        let mut b = [0u8; 32];
        b[..4].copy_from_slice(&self.n.to_le_bytes());
        b[4] = 0xa5;
        Fresh(b)
    }

    fn run(&mut self, cmd: Command, now: Millis) -> Result<Subject, Rejection> {
        let a = self.st.apply(cmd, now);
        self.log.extend(a.events);
        a.result.unwrap()
    }

    fn issue_as(
        &mut self,
        limited: bool,
        service: &str,
        priority: Option<&str>,
        identity: Option<Identity>,
        now: Millis,
    ) -> Result<String, Rejection> {
        let fresh = self.fresh();
        let cmd = Command::Issue {
            scope: if limited { "device:k" } else { "user:le" }.into(),
            request_id: format!("r{}", self.n),
            service: service.into(),
            priority: priority.map(String::from),
            ticket_id: format!("tk_{}", self.n),
            identity,
            limited,
            external_ref: None,
            fresh,
        };
        match self.run(cmd, now)? {
            Subject::Ticket(id) => Ok(id),
            other => panic!("{other:?}"),
        }
    }

    fn kiosk(&mut self, service: &str, now: Millis) -> Result<String, Rejection> {
        self.issue_as(true, service, None, None, now)
    }

    fn book_rid(
        &mut self,
        rid: &str,
        slot_at: Millis,
        who: Option<Identity>,
        now: Millis,
    ) -> Result<Subject, Rejection> {
        let (fresh, code_seed) = (self.fresh(), self.fresh());
        let cmd = BookCmd {
            scope: "device:his".into(),
            request_id: rid.into(),
            by: "his".into(),
            service: "a".into(),
            slot_at,
            priority: None,
            external_ref: Some("HIS-1".into()),
            identity: who,
            appointment_id: format!("ap_{}", self.n),
            fresh,
            code_seed,
        };
        self.run(Command::Book(Box::new(cmd)), now)
    }

    fn book(
        &mut self,
        slot_at: Millis,
        who: Option<Identity>,
        now: Millis,
    ) -> Result<String, Rejection> {
        let rid = format!("b{}", self.n + 1);
        match self.book_rid(&rid, slot_at, who, now)? {
            Subject::Booking(id) => Ok(id),
            other => panic!("{other:?}"),
        }
    }

    fn check_in_rid(
        &mut self,
        rid: &str,
        booking: Booking,
        who: Option<Identity>,
        kiosk: bool,
        now: Millis,
    ) -> Result<Subject, Rejection> {
        let fresh = self.fresh();
        let cmd = CheckInCmd {
            scope: "device:k".into(),
            request_id: rid.into(),
            booking,
            identity: who,
            only: None,
            kiosk,
            ticket_id: format!("tk_{}", self.n),
            fresh,
        };
        self.run(Command::CheckIn(Box::new(cmd)), now)
    }

    fn check_in(
        &mut self,
        id: &str,
        who: Option<Identity>,
        kiosk: bool,
        now: Millis,
    ) -> Result<String, Rejection> {
        let rid = format!("c{}", self.n + 1);
        match self.check_in_rid(&rid, Booking::Id(id.into()), who, kiosk, now)? {
            Subject::Ticket(t) => Ok(t),
            other => panic!("{other:?}"),
        }
    }

    fn next(&mut self, now: Millis) -> Option<String> {
        let cmd = Command::Next {
            counter: "c1".into(),
            by: None,
        };
        match self.run(cmd, now) {
            Ok(Subject::Ticket(id)) => Some(id),
            _ => None,
        }
    }

    fn status(&self, id: &str) -> AppointmentStatus {
        self.st.appointment(id).unwrap().status
    }

    fn remaining(&self, now: Millis) -> Option<u32> {
        self.st.capacity(0, now).remaining
    }
}

#[test]
fn a_ticket_counts_in_the_running_session_else_the_next_and_none_after_the_last() {
    let mut f = Fx::new(&config());
    let early = f.kiosk("a", t(-60)).unwrap();
    let noon = f.kiosk("a", t(5 * 60)).unwrap();
    assert_eq!(
        f.st.ticket(&early).unwrap().session.as_deref(),
        Some("sang")
    );
    assert_eq!(
        f.st.ticket(&noon).unwrap().session.as_deref(),
        Some("chieu")
    );
    assert_eq!(f.kiosk("a", t(10 * 60)), Err(Rejection::ServiceClosed));
    assert_eq!(f.remaining(t(10 * 60)), Some(0), "closed: hết số");
    let staff = f.issue_as(false, "a", None, None, t(10 * 60)).unwrap();
    assert_eq!(
        f.st.ticket(&staff).unwrap().session.as_deref(),
        Some("chieu"),
        "a staff ticket after the last session counts in the last"
    );
    // A service without sessions never closes and is uncapped.
    assert!(f.kiosk("b", t(10 * 60)).is_ok());
    assert_eq!(f.st.capacity(1, t(10 * 60)).remaining, None);
}

#[test]
fn a_full_session_refuses_kiosks_with_its_end_and_seats_held_for_bookings_come_back() {
    let mut f = Fx::new(&config());
    // Before 07:00 the 4 seats of the quota are held: 10 − 4 = 6 walk-ins.
    for _ in 0..6 {
        f.kiosk("a", t(-30)).unwrap();
    }
    assert_eq!(f.remaining(t(-30)), Some(0));
    let end = f.st.site().fmt_time(t(270));
    assert_eq!(
        f.kiosk("a", t(-30)),
        Err(Rejection::ServiceFull {
            next_open_at: Some(end)
        })
    );
    assert!(
        f.issue_as(false, "a", None, None, t(-30)).is_ok(),
        "caps never refuse staff; it counts"
    );
    // Once the session began, unbooked seats are no longer held.
    assert_eq!(f.remaining(t(1)), Some(3));
    for _ in 0..3 {
        f.kiosk("a", t(1)).unwrap();
    }
    assert!(matches!(
        f.kiosk("a", t(2)),
        Err(Rejection::ServiceFull { .. })
    ));
    // The afternoon takes 5 more, but the daily cap (14) stops at 4.
    for _ in 0..4 {
        f.kiosk("a", t(6 * 60 + 40)).unwrap();
    }
    assert_eq!(
        f.kiosk("a", t(6 * 60 + 40)),
        Err(Rejection::ServiceFull { next_open_at: None }),
        "the daily cap: no later opening"
    );
    assert_eq!(f.remaining(t(6 * 60 + 40)), Some(0));
}

#[test]
fn walk_in_refusals_come_in_the_contract_s_order() {
    let mut cfg = config();
    cfg.services[0].walk_ins = WalkIns::None;
    cfg.services[0].identity = IdentityRule::Required;
    let mut f = Fx::new(&cfg);
    assert_eq!(f.kiosk("a", t(10 * 60)), Err(Rejection::ServiceClosed));
    assert_eq!(f.kiosk("a", t(30)), Err(Rejection::AppointmentRequired));
    let mut cfg = config();
    cfg.services[0].walk_ins = WalkIns::Priority;
    cfg.services[0].identity = IdentityRule::Required;
    cfg.services[0].sessions[0].cap = Some(1);
    let mut f = Fx::new(&cfg);
    assert_eq!(f.kiosk("a", t(30)), Err(Rejection::AppointmentRequired));
    assert_eq!(
        f.issue_as(true, "a", Some("pregnant"), None, t(30)),
        Err(Rejection::IdentityRequired)
    );
    // An elderly person's class is derived from the card: no class sent.
    let old = person("001040000001", "1940-01-01");
    f.issue_as(false, "a", None, Some(old.clone()), t(30))
        .unwrap();
    f.issue_as(false, "a", None, Some(old.clone()), t(30))
        .unwrap();
    assert_eq!(
        f.issue_as(true, "a", None, Some(old), t(30)),
        Err(Rejection::PersonLimit),
        "person_limit before service_full"
    );
    let other = person("001040000002", "1940-01-01");
    assert!(matches!(
        f.issue_as(true, "a", None, Some(other), t(30)),
        Err(Rejection::ServiceFull { .. })
    ));
}

#[test]
fn the_age_class_comes_from_the_card_and_the_earlier_class_wins() {
    let mut f = Fx::new(&config());
    let old = person("001040000001", "1940-01-01");
    let child = person("001020000001", "2022-01-01");
    let a = f
        .issue_as(true, "b", None, Some(old.clone()), t(0))
        .unwrap();
    let b = f
        .issue_as(true, "b", Some("emergency"), Some(child), t(0))
        .unwrap();
    let c = f
        .issue_as(true, "b", None, Some(person("001080000001", ADULT)), t(0))
        .unwrap();
    assert_eq!(
        f.st.ticket(&a).unwrap().priority.as_deref(),
        Some("age_75_plus")
    );
    assert_eq!(
        f.st.ticket(&b).unwrap().priority.as_deref(),
        Some("emergency")
    );
    assert_eq!(f.st.ticket(&c).unwrap().priority, None);
    // Nothing of the person but a hash is kept, in the state or the log.
    let log = serde_json::to_string(&f.log).unwrap();
    assert!(!log.contains("001040000001") && !log.contains("1940-01-01"));
    assert!(
        f.st.ticket(&a)
            .unwrap()
            .person
            .as_ref()
            .is_some_and(|p| p.len() == 64)
    );
}

#[test]
fn the_person_cap_counts_tickets_and_bookings_of_the_day() {
    let mut f = Fx::new(&config());
    let me = person("001080000001", ADULT);
    let booking = f.book(t(60), Some(me.clone()), t(-60)).unwrap();
    f.issue_as(true, "b", None, Some(me.clone()), t(-60))
        .unwrap();
    assert_eq!(
        f.issue_as(true, "b", None, Some(me.clone()), t(-60)),
        Err(Rejection::PersonLimit)
    );
    assert_eq!(
        f.book(t(90), Some(me.clone()), t(-60)),
        Err(Rejection::PersonLimit)
    );
    // Tomorrow is another day (and another key).
    assert!(f.book(t(24 * 60 + 60), Some(me.clone()), t(-60)).is_ok());
    // Checked in, the booking becomes a ticket: still two holdings.
    f.check_in(&booking, Some(me.clone()), true, t(40)).unwrap();
    assert_eq!(
        f.issue_as(true, "b", None, Some(me.clone()), t(41)),
        Err(Rejection::PersonLimit)
    );
    assert!(
        f.issue_as(false, "b", None, Some(me), t(41)).is_ok(),
        "staff: never refused"
    );
}

#[test]
fn booking_windows_codes_and_replays() {
    let mut f = Fx::new(&config());
    assert_eq!(f.book(t(10), None, t(-60)), Err(Rejection::UnknownSlot));
    assert_eq!(
        f.book(t(6 * 60 + 30), None, t(-60)),
        Err(Rejection::UnknownSlot),
        "no quota"
    );
    assert_eq!(
        f.book(t(15 * 24 * 60), None, t(-60)),
        Err(Rejection::BookingClosed)
    );
    assert_eq!(
        f.book(t(-24 * 60 + 60), None, t(-60)),
        Err(Rejection::BookingClosed)
    );
    assert_eq!(
        f.book(t(60), None, t(1)),
        Err(Rejection::BookingClosed),
        "the session began"
    );
    let a = f.book(t(60), None, t(-60)).unwrap();
    f.book(t(60), None, t(-60)).unwrap();
    assert_eq!(f.book(t(60), None, t(-60)), Err(Rejection::SlotFull));
    f.book(t(90), None, t(-60)).unwrap();
    f.book(t(120), None, t(-60)).unwrap();
    assert_eq!(
        f.book(t(150), None, t(-60)),
        Err(Rejection::SlotFull),
        "the quota of 4"
    );
    // The same request id: the same booking; a changed field: 409.
    let rid = f.st.appointment(&a).unwrap().request_id.clone();
    assert_eq!(
        f.book_rid(&rid, t(60), None, t(-59)),
        Ok(Subject::BookingReplayed(a.clone()))
    );
    assert_eq!(
        f.book_rid(&rid, t(90), None, t(-59)),
        Err(Rejection::RequestIdReused)
    );
    let codes: HashSet<String> = f.st.book.all().map(|r| r.code.clone()).collect();
    assert_eq!(codes.len(), 4);
    assert!(codes.iter().all(|c| c.len() == 8 && damm_valid(c)));
    assert_eq!(
        f.st.render_appointment(f.st.appointment(&a).unwrap()).qr,
        format!("{}/a/{a}", f.st.site().public_url)
    );
}

#[test]
fn check_in_refusals_come_in_order_and_a_check_in_is_one_commit() {
    let mut f = Fx::new(&config());
    let me = person("001080000001", ADULT);
    let a = f.book(t(60), Some(me.clone()), t(-60)).unwrap();
    let opens = f.st.site().fmt_time(t(30));
    assert_eq!(
        f.check_in(&a, Some(me.clone()), true, t(29)),
        Err(Rejection::TooEarly {
            checkin_opens_at: opens
        })
    );
    assert_eq!(
        f.check_in(&a, None, true, t(30)),
        Err(Rejection::IdentityRequired)
    );
    let stranger = person("001080000009", ADULT);
    assert_eq!(
        f.check_in(&a, Some(stranger), false, t(30)),
        Err(Rejection::IdentityMismatch)
    );
    assert_eq!(
        f.check_in("ap_nope", None, true, t(30)),
        Err(Rejection::UnknownAppointment)
    );
    let before = f.log.len();
    let ticket = f.check_in(&a, None, false, t(30)).unwrap();
    let kinds: Vec<&str> = f.log[before..]
        .iter()
        .map(|e| match e {
            Event::TicketIssued { .. } => "ticket_issued",
            Event::AppointmentCheckedIn { .. } => "appointment_checked_in",
            _ => "other",
        })
        .collect();
    assert_eq!(kinds, ["ticket_issued", "appointment_checked_in"]);
    let number = f.st.ticket(&ticket).unwrap().number.clone();
    assert_eq!(
        f.check_in(&a, None, false, t(31)),
        Err(Rejection::AlreadyCheckedIn {
            number: number.clone()
        })
    );
    let rec = f.st.ticket(&ticket).unwrap();
    assert_eq!(
        (rec.appointment.as_deref(), rec.external_ref.as_deref()),
        (Some(a.as_str()), Some("HIS-1"))
    );
    assert_eq!(f.status(&a), AppointmentStatus::CheckedIn);
    // Cancelled and expired bookings.
    let b = f.book(t(120), None, t(-60)).unwrap();
    let cancel = |id: &str| Command::CancelBooking {
        id: id.into(),
        only: None,
        by: None,
    };
    assert_eq!(f.run(cancel(&b), t(0)), Ok(Subject::Booking(b.clone())));
    assert_eq!(
        f.run(cancel(&b), t(0)),
        Ok(Subject::Booking(b.clone())),
        "again: 200"
    );
    assert_eq!(
        f.check_in(&b, None, false, t(100)),
        Err(Rejection::AppointmentCancelled)
    );
    let c = f.book(t(90), None, t(-60)).unwrap();
    assert_eq!(
        f.check_in(&c, None, false, t(105)),
        Err(Rejection::AppointmentExpired)
    );
    assert_eq!(
        f.run(cancel(&a), t(40)),
        Err(Rejection::AlreadyCheckedIn { number })
    );
}

#[test]
fn check_in_replays_answer_the_same_ticket_and_refuse_another_booking() {
    let mut f = Fx::new(&config());
    let a = f.book(t(60), None, t(-60)).unwrap();
    let b = f.book(t(90), None, t(-60)).unwrap();
    let code = f.st.appointment(&a).unwrap().code.clone();
    let first = f
        .check_in_rid("k-1", Booking::Code(code.clone()), None, true, t(40))
        .unwrap();
    let Subject::Ticket(ticket) = first else {
        panic!()
    };
    assert_eq!(
        f.check_in_rid("k-1", Booking::Id(a.clone()), None, true, t(41)),
        Ok(Subject::Replayed(ticket))
    );
    assert_eq!(
        f.check_in_rid("k-1", Booking::Id(b), None, true, t(70)),
        Err(Rejection::RequestIdReused)
    );
    // An issue may not reuse a check-in's request id either.
    let cmd = Command::Issue {
        scope: "device:k".into(),
        request_id: "k-1".into(),
        service: "a".into(),
        priority: None,
        ticket_id: "tk_x".into(),
        identity: None,
        limited: true,
        external_ref: None,
        fresh: Fresh([0; 32]),
    };
    assert_eq!(f.run(cmd, t(42)), Err(Rejection::RequestIdReused));
}

#[test]
fn a_check_in_waits_behind_tickets_placed_at_or_before_its_slot_and_ahead_of_later_ones() {
    let mut f = Fx::new(&config());
    let early = f.book(t(60), None, t(-60)).unwrap();
    let late = f.book(t(90), None, t(-60)).unwrap();
    let w1 = f.kiosk("a", t(50)).unwrap();
    let c_early = f.check_in(&early, None, true, t(35)).unwrap();
    let w2 = f.kiosk("a", t(95)).unwrap();
    let c_late = f.check_in(&late, None, true, t(100)).unwrap();
    let w3 = f.kiosk("a", t(101)).unwrap();
    let placed = f.st.ticket(&c_early).unwrap().steps[0].clone();
    assert_eq!(
        (placed.place_at, placed.waiting_since),
        (t(60), Some(t(60)))
    );
    let order: Vec<String> = (0..5).filter_map(|_| f.next(t(102))).collect();
    assert_eq!(order, [w1, c_early, c_late, w2, w3]);
}

#[test]
fn a_booking_not_checked_in_expires_on_the_tick_and_frees_its_seat() {
    let mut f = Fx::new(&config());
    let a = f.book(t(60), None, t(-60)).unwrap();
    let held_before = f.st.held(0, f.st.today(t(0)), 0, t(0));
    f.run(Command::Tick, t(74)).unwrap();
    assert_eq!(f.status(&a), AppointmentStatus::Booked);
    f.run(Command::Tick, t(75)).unwrap();
    assert_eq!(f.status(&a), AppointmentStatus::Expired);
    assert!(matches!(
        f.log.last(),
        Some(Event::AppointmentExpired { .. })
    ));
    assert_eq!(
        (held_before, f.st.held(0, f.st.today(t(76)), 0, t(76))),
        (1, 0)
    );
    let cancel = Command::CancelBooking {
        id: a,
        only: None,
        by: None,
    };
    assert_eq!(f.run(cancel, t(80)), Err(Rejection::AppointmentExpired));
}

#[test]
fn an_integration_sees_only_its_own_bookings() {
    let mut f = Fx::new(&config());
    let a = f.book(t(60), None, t(-60)).unwrap();
    let cancel = Command::CancelBooking {
        id: a.clone(),
        only: Some("device:other".into()),
        by: None,
    };
    assert_eq!(f.run(cancel, t(0)), Err(Rejection::UnknownAppointment));
    let list = |only| ListFilter {
        day: f.st.today(t(0)),
        service: None,
        status: None,
        external_ref: Some("HIS-1"),
        only,
    };
    assert_eq!(f.st.appointments(&list(Some("device:other"))).len(), 0);
    assert_eq!(f.st.appointments(&list(Some("device:his"))).len(), 1);
}

#[test]
fn a_new_day_erases_the_day_s_hashes_and_keys_and_keeps_bookings_ahead() {
    let mut f = Fx::new(&config());
    let me = person("001080000001", ADULT);
    let today = f.book(t(60), Some(me.clone()), t(-60)).unwrap();
    let ahead = f
        .book(t(2 * 24 * 60 + 60), Some(me.clone()), t(-60))
        .unwrap();
    let tk = f.issue_as(true, "b", None, Some(me), t(0)).unwrap();
    let day = f.st.today(t(0));
    assert!(f.st.book.key(day).is_some());
    let applied = f.st.apply(Command::Tick, t(24 * 60));
    let archived = &applied.archives[0].tickets;
    assert!(
        archived
            .iter()
            .find(|x| x.id == tk)
            .unwrap()
            .person
            .is_none()
    );
    assert!(f.st.book.key(day).is_none(), "yesterday's key is gone");
    assert!(f.st.appointment(&today).unwrap().person.is_none());
    assert!(f.st.appointment(&ahead).unwrap().person.is_some());
    // 91 days on, the old booking is erased.
    f.st.apply(Command::Tick, t(91 * 24 * 60));
    assert!(f.st.appointment(&today).is_none());
}

#[test]
fn capacity_and_bookings_survive_replay_and_snapshot() {
    let mut f = Fx::new(&config());
    let me = person("001080000001", ADULT);
    let a = f.book(t(60), Some(me.clone()), t(-60)).unwrap();
    f.book(t(90), None, t(-60)).unwrap();
    f.kiosk("a", t(-50)).unwrap();
    f.check_in(&a, Some(me.clone()), true, t(40)).unwrap();
    let mut replayed = State::new(f.st.site().clone());
    for (day, key) in f.st.book.keys_for_test() {
        replayed.apply_event(&Event::DayKey {
            day,
            key: Fresh(key),
        });
    }
    for e in f.log.iter().filter(|e| e.is_public()) {
        replayed.apply_event(e);
    }
    assert_eq!(replayed.to_snapshot(), f.st.to_snapshot());
    assert_eq!(replayed.board(t(41)), f.st.board(t(41)));
    let back = State::from_snapshot(f.st.site().clone(), f.st.to_snapshot());
    assert_eq!(back.board(t(41)), f.st.board(t(41)));
    // The key is not in the snapshot, so the replayed holdings need it from the store.
    let snap = serde_json::to_string(&f.st.to_snapshot()).unwrap();
    assert!(!snap.contains("001080000001"));
}

// ------------------------------------------------------------ properties

#[derive(Debug, Clone)]
enum Op {
    Kiosk(usize),
    Staff(usize),
    Book(usize, usize),
    Cancel(usize),
    CheckIn(usize),
    Next,
    Wait(u16),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        5 => (0..3usize).prop_map(Op::Kiosk),
        1 => (0..3usize).prop_map(Op::Staff),
        3 => (0..9usize, 0..3usize).prop_map(|(s, p)| Op::Book(s, p)),
        1 => (0..30usize).prop_map(Op::Cancel),
        3 => (0..30usize).prop_map(Op::CheckIn),
        3 => Just(Op::Next),
        2 => (0..40u16).prop_map(Op::Wait),
    ]
}

/// Runs `ops` from 06:00 and checks rule 74 after each accepted kiosk
/// walk-in and rule 76's quota and slot capacity after each booking.
fn run_caps(ops: &[Op]) -> Result<Fx, TestCaseError> {
    let mut f = Fx::new(&config());
    let mut now = t(-60);
    let mut bookings: Vec<String> = vec![];
    let people = ["001080000001", "001080000002", "001080000003"];
    for o in ops {
        match o {
            Op::Kiosk(p) => {
                let who = person(people[*p], ADULT);
                if let Ok(id) = f.issue_as(true, "a", None, Some(who), now) {
                    let day = f.st.today(now);
                    let sessions = &f.st.site().services[0].sessions;
                    let counted_in = f.st.ticket(&id).unwrap().session.clone().unwrap();
                    let k = sessions.iter().position(|x| x.id == counted_in).unwrap();
                    let counted = f.st.counted.in_session("a", &counted_in);
                    let cap = sessions[k].cap.unwrap();
                    prop_assert!(counted + f.st.held(0, day, k, now) <= cap);
                    let held: u32 = (0..2).map(|k| f.st.held(0, day, k, now)).sum();
                    prop_assert!(f.st.counted.of_service("a") + held <= 14);
                }
            }
            Op::Staff(p) => {
                let who = person(people[*p], ADULT);
                f.issue_as(false, "a", None, Some(who), now).unwrap();
            }
            Op::Book(slot, p) => {
                let who = person(people[*p], ADULT);
                if let Ok(id) = f.book(t(30 * *slot as i64), Some(who), now) {
                    bookings.push(id);
                    let s = f.st.book.session("a", f.st.today(now), "sang");
                    prop_assert!(s.taken <= 4);
                }
            }
            Op::Cancel(i) => {
                if let Some(id) = bookings.get(*i) {
                    let cmd = Command::CancelBooking {
                        id: id.clone(),
                        only: None,
                        by: None,
                    };
                    let _ = f.run(cmd, now);
                }
            }
            Op::CheckIn(i) => {
                if let Some(id) = bookings.get(*i).cloned() {
                    let _ = f.check_in(&id, None, false, now);
                }
            }
            Op::Next => {
                f.next(now);
            }
            Op::Wait(m) => {
                now += i64::from(*m) * 60_000;
                f.run(Command::Tick, now).unwrap();
            }
        }
        for at in (0..9).map(|k| t(30 * k)) {
            prop_assert!(f.st.book.slot_taken("a", at) <= 2);
        }
    }
    Ok(f)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn no_kiosk_walk_in_goes_over_a_cap_and_bookings_stay_within_their_slots(
        ops in prop::collection::vec(op(), 1..200)
    ) {
        let f = run_caps(&ops)?;
        // Replay rebuilds the same state, bookings and counts included.
        let mut replayed = State::new(f.st.site().clone());
        for (day, key) in f.st.book.keys_for_test() {
            replayed.apply_event(&Event::DayKey { day, key: Fresh(key) });
        }
        for e in f.log.iter().filter(|e| e.is_public()) {
            replayed.apply_event(e);
        }
        prop_assert_eq!(replayed.to_snapshot(), f.st.to_snapshot());
    }

    /// Rule 79 and no starvation: with no priority classes, counters call
    /// in place-time order, so a walk-in issued at T is called before any
    /// check-in whose slot is after T, however early that check-in came.
    #[test]
    fn check_ins_are_called_by_slot_and_walk_ins_are_never_passed_by_later_slots(
        arrivals in prop::collection::vec((0..8usize, 0..120i64, any::<bool>()), 1..40)
    ) {
        let mut cfg = config();
        cfg.services[0].sessions[0].cap = None;
        cfg.services[0].daily_cap = None;
        cfg.services[0].sessions[0].slot_capacity = Some(40);
        cfg.services[0].sessions[0].appointment_quota = 80;
        cfg.identity.max_tickets_per_person_per_day = 0;
        let mut f = Fx::new(&cfg);
        // (time of the event, is a booking's check-in, slot)
        let mut events: Vec<(Millis, bool, Millis)> = arrivals
            .iter()
            .map(|&(slot, offset, booked)| {
                let slot_at = t(30 * slot as i64);
                if booked {
                    // Check-in anywhere in its window [slot − 30, slot + 15).
                    (slot_at - 30 * 60_000 + (offset % 45) * 60_000, true, slot_at)
                } else {
                    let at = t(offset * 2);
                    (at, false, at)
                }
            })
            .collect();
        let mut ids = vec![];
        for e in &mut events {
            if e.1 {
                let id = f.book(e.2, None, t(-120)).unwrap();
                ids.push(Some(id));
            } else {
                ids.push(None);
            }
        }
        let mut order: Vec<usize> = (0..events.len()).collect();
        order.sort_by_key(|&i| events[i].0);
        let mut placed: Vec<(Millis, usize, String)> = vec![];
        for (seq, &i) in order.iter().enumerate() {
            let (at, booked, slot) = events[i];
            let ticket = match &ids[i] {
                Some(id) if booked => f.check_in(id, None, true, at).unwrap(),
                _ => f.kiosk("a", at).unwrap(),
            };
            placed.push((slot, seq, ticket));
        }
        let end = order.last().map(|&i| events[i].0).unwrap_or(0);
        let called: Vec<String> = (0..placed.len()).filter_map(|_| f.next(end)).collect();
        placed.sort();
        let expected: Vec<String> = placed.into_iter().map(|p| p.2).collect();
        prop_assert_eq!(called, expected);
    }
}
