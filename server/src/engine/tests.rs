//! Unit and property tests of the queue rules.

use std::collections::HashSet;

use chrono::TimeZone;
use proptest::prelude::*;

use super::test_site::{config, counter};
use super::*;
use crate::config::SiteConfig;

fn site_with(ratio: u32, digits: u8) -> Arc<Site> {
    let (mut cfg, _) = demo_like();
    cfg.priority.ratio = ratio;
    cfg.services[0].digits = digits;
    Site::from_config(&cfg)
}

fn demo_like() -> (SiteConfig, ()) {
    let ctr = |id: &str, s: &[&str]| counter(id, &format!("Quầy {id}"), s);
    let cfg = config(
        &[("a", "A"), ("b", "B")],
        &[ctr("c1", &["a"]), ctr("c2", &["a", "b"]), ctr("c3", &["b"])],
    );
    (cfg, ())
}

/// 2026-11-22 07:00 in Asia/Ho_Chi_Minh plus `mins` minutes.
fn t(mins: i64) -> Millis {
    chrono_tz::Asia::Ho_Chi_Minh
        .with_ymd_and_hms(2026, 11, 22, 7, 0, 0)
        .unwrap()
        .timestamp_millis()
        + mins * 60_000
}

struct Fx {
    st: State,
    log: Vec<Event>,
    n: u32,
}

impl Fx {
    fn new(site: Arc<Site>) -> Fx {
        Fx {
            st: State::new(site),
            log: vec![],
            n: 0,
        }
    }
    fn run(&mut self, cmd: Command, now: Millis) -> Result<Subject, Rejection> {
        let a = self.st.apply(cmd, now);
        self.log.extend(a.events);
        a.result.unwrap()
    }
    fn issue(&mut self, service: &str, priority: Option<&str>, now: Millis) -> TicketRec {
        self.n += 1;
        let id = format!("tk_{}", self.n);
        let r = self.run(
            Command::Issue {
                scope: "device:k".into(),
                request_id: format!("r{}", self.n),
                service: service.into(),
                priority: priority.map(|p| p.to_string()),
                ticket_id: id.clone(),
                identity: None,
                limited: false,
                external_ref: None,
                fresh: crate::engine::identity::Fresh([0; 32]),
            },
            now,
        );
        assert_eq!(r, Ok(Subject::Ticket(id.clone())));
        self.st.ticket(&id).unwrap().clone()
    }
    fn next(&mut self, counter: &str, now: Millis) -> Result<TicketRec, Rejection> {
        match self.run(
            Command::Next {
                counter: counter.into(),
                by: Some("u".into()),
            },
            now,
        )? {
            Subject::Ticket(id) => Ok(self.st.ticket(&id).unwrap().clone()),
            other => panic!("{other:?}"),
        }
    }
    /// A ticket as clients see it now.
    fn view(&self, id: &str) -> luot_protocol::Ticket {
        self.st.render_ticket(self.st.ticket(id).unwrap())
    }
    fn simple(
        &mut self,
        f: fn(String, Option<String>) -> Command,
        counter: &str,
        now: Millis,
    ) -> Result<Subject, Rejection> {
        self.run(f(counter.into(), Some("u".into())), now)
    }
}

impl State {
    /// Whether a normal step waits in a service's shared line (not busy).
    fn normal_waiting(&self, s: usize) -> bool {
        let normal = self.site.normal_bucket();
        self.lines.get(lines::LineKey::Shared(s)).is_some_and(|l| {
            l.waiting
                .range((normal, i64::MIN, 0, 0)..)
                .any(|(_, r)| !self.busy(r.0))
        })
    }
}

fn done(counter: String, by: Option<String>) -> Command {
    Command::Done { counter, by }
}
fn recall(counter: String, by: Option<String>) -> Command {
    Command::Recall { counter, by }
}
fn close(counter: String, by: Option<String>) -> Command {
    Command::Close { counter, by }
}

#[test]
fn numbers_are_prefixed_padded_and_widen_past_the_last() {
    let mut f = Fx::new(site_with(3, 1));
    let numbers: Vec<String> = (0..11).map(|i| f.issue("a", None, t(i)).number).collect();
    assert_eq!(numbers[0], "A1");
    assert_eq!(numbers[8], "A9");
    assert_eq!(numbers[9], "A10");
    assert_eq!(numbers[10], "A11");
    let b = f.issue("b", None, t(20));
    assert_eq!(b.number, "B001");
}

#[test]
fn first_command_starts_the_day_and_day_begins_at_day_starts_at() {
    let mut f = Fx::new(site_with(3, 3));
    f.issue("a", None, t(0));
    assert!(matches!(f.log[0], Event::DayStarted { .. }));
    assert_eq!(f.st.day().unwrap().to_string(), "2026-11-22");
    // 04:59 next morning still belongs to the 22nd.
    let before = t(21 * 60 + 59);
    assert_eq!(f.st.site().day_of(before).to_string(), "2026-11-22");
    assert!(!f.st.rollover_due(before));
    assert!(f.st.rollover_due(t(22 * 60)));
}

#[test]
fn rollover_closes_yesterday_as_no_show_and_restarts_numbering() {
    let mut f = Fx::new(site_with(3, 3));
    let a1 = f.issue("a", None, t(0));
    f.issue("a", None, t(1));
    f.next("c1", t(2)).unwrap();
    let a = f.st.apply(Command::Tick, t(22 * 60 + 1));
    assert_eq!(a.events.len(), 1);
    assert!(
        matches!(&a.events[0], Event::DayStarted { day, .. } if day.to_string() == "2026-11-23")
    );
    let arch = &a.archives[0];
    assert_eq!(arch.day.to_string(), "2026-11-22");
    assert!(
        arch.tickets
            .iter()
            .all(|t| super::render::ticket_status(t) == TicketStatus::NoShow)
    );
    assert!(
        f.st.ticket(&a1.id).is_none(),
        "yesterday's ticket does not leak into today"
    );
    assert_eq!(f.st.waiting_count(0), 0);
    assert!(f.st.serving(0).is_none());
    let n = f.issue("a", None, t(22 * 60 + 2));
    assert_eq!(n.number, "A001");
    assert_eq!(n.day.to_string(), "2026-11-23");
}

#[test]
fn idempotent_issue_and_reuse() {
    let mut f = Fx::new(site_with(3, 3));
    let issue = |service: &str, id: &str| Command::Issue {
        scope: "device:k".into(),
        request_id: "same".into(),
        service: service.into(),
        priority: None,
        ticket_id: id.into(),
        identity: None,
        limited: false,
        external_ref: None,
        fresh: crate::engine::identity::Fresh([0; 32]),
    };
    assert_eq!(
        f.run(issue("a", "x1"), t(0)),
        Ok(Subject::Ticket("x1".into()))
    );
    assert_eq!(
        f.run(issue("a", "x2"), t(1)),
        Ok(Subject::Replayed("x1".into()))
    );
    assert_eq!(
        f.run(issue("b", "x3"), t(2)),
        Err(Rejection::RequestIdReused)
    );
    assert_eq!(f.st.waiting_count(0) + f.st.waiting_count(1), 1);
    // Another scope may use the same request_id.
    let other = Command::Issue {
        scope: "user:le".into(),
        request_id: "same".into(),
        service: "b".into(),
        priority: None,
        ticket_id: "x4".into(),
        identity: None,
        limited: false,
        external_ref: None,
        fresh: crate::engine::identity::Fresh([0; 32]),
    };
    assert_eq!(f.run(other, t(3)), Ok(Subject::Ticket("x4".into())));
}

#[test]
fn replay_is_recognised_across_the_day_start() {
    let mut f = Fx::new(site_with(3, 3));
    let issue = |id: &str| Command::Issue {
        scope: "device:k".into(),
        request_id: "r".into(),
        service: "a".into(),
        priority: None,
        ticket_id: id.into(),
        identity: None,
        limited: false,
        external_ref: None,
        fresh: crate::engine::identity::Fresh([0; 32]),
    };
    f.run(issue("x1"), t(21 * 60 + 59)).unwrap();
    assert_eq!(
        f.run(issue("x2"), t(22 * 60 + 1)),
        Ok(Subject::Replayed("x1".into()))
    );
}

#[test]
fn unknown_service_priority_counter() {
    let mut f = Fx::new(site_with(3, 3));
    let r = f.run(
        Command::Issue {
            scope: "s".into(),
            request_id: "r".into(),
            service: "zz".into(),
            priority: None,
            ticket_id: "x".into(),
            identity: None,
            limited: false,
            external_ref: None,
            fresh: crate::engine::identity::Fresh([0; 32]),
        },
        t(0),
    );
    assert_eq!(r, Err(Rejection::UnknownService));
    let r = f.run(
        Command::Issue {
            scope: "s".into(),
            request_id: "r".into(),
            service: "a".into(),
            priority: Some("vip".into()),
            ticket_id: "x".into(),
            identity: None,
            limited: false,
            external_ref: None,
            fresh: crate::engine::identity::Fresh([0; 32]),
        },
        t(0),
    );
    assert!(matches!(r, Err(Rejection::BadRequest(_))));
    assert_eq!(f.next("nope", t(0)), Err(Rejection::UnknownCounter));
    assert_eq!(f.next("c1", t(0)), Err(Rejection::QueueEmpty));
}

#[test]
fn priority_ratio_then_one_normal() {
    let mut f = Fx::new(site_with(2, 3));
    for i in 0..4 {
        f.issue("a", None, t(i));
    }
    for i in 0..4 {
        f.issue("a", Some("pregnant"), t(10 + i));
    }
    let order: Vec<bool> = (0..8)
        .map(|i| f.next("c1", t(20 + i)).unwrap().priority.is_some())
        .collect();
    assert_eq!(
        order,
        vec![true, true, false, true, true, false, false, false]
    );
}

#[test]
fn earlier_class_first_then_oldest_across_services() {
    let mut f = Fx::new(site_with(3, 3));
    let p_b = f.issue("b", Some("pregnant"), t(0));
    let e_b = f.issue("b", Some("emergency"), t(1));
    let e_a = f.issue("a", Some("emergency"), t(2));
    let n_b = f.issue("b", None, t(3));
    let n_a = f.issue("a", None, t(4));
    // c2 serves a then b.
    assert_eq!(f.next("c2", t(5)).unwrap().id, e_b.id);
    assert_eq!(f.next("c2", t(6)).unwrap().id, e_a.id);
    assert_eq!(f.next("c2", t(7)).unwrap().id, p_b.id);
    // ratio 3 reached: a normal one, from the first service in c2's order.
    assert_eq!(f.next("c2", t(8)).unwrap().id, n_a.id);
    assert_eq!(f.next("c2", t(9)).unwrap().id, n_b.id);
}

#[test]
fn next_finishes_the_called_ticket_first() {
    let mut f = Fx::new(site_with(3, 3));
    let a = f.issue("a", None, t(0));
    f.issue("a", None, t(1));
    f.next("c1", t(2)).unwrap();
    let before = f.log.len();
    f.next("c1", t(7)).unwrap();
    assert!(matches!(&f.log[before], Event::TicketDone { id, .. } if *id == a.id));
    assert!(matches!(&f.log[before + 1], Event::TicketCalled { .. }));
    assert_eq!(f.view(&a.id).status, TicketStatus::Done);
    // An empty queue refuses and leaves the called ticket alone.
    let cur = f.st.serving(0).unwrap().id.clone();
    assert_eq!(f.next("c1", t(8)), Err(Rejection::QueueEmpty));
    assert_eq!(f.st.serving(0).unwrap().id, cur);
}

#[test]
fn closed_counter_keeps_its_called_ticket() {
    let mut f = Fx::new(site_with(3, 3));
    f.issue("a", None, t(0));
    f.issue("a", None, t(0));
    f.next("c1", t(1)).unwrap();
    assert_eq!(
        f.simple(close, "c1", t(2)),
        Ok(Subject::Counter("c1".into()))
    );
    assert_eq!(f.next("c1", t(3)), Err(Rejection::CounterClosed));
    assert!(f.simple(recall, "c1", t(3)).is_ok());
    assert!(f.simple(done, "c1", t(4)).is_ok());
    assert_eq!(f.simple(done, "c1", t(4)), Err(Rejection::NothingCalled));
    let n = f.log.len();
    assert!(f.simple(close, "c1", t(5)).is_ok());
    assert_eq!(f.log.len(), n, "closing a closed counter changes nothing");
}

#[test]
fn transfer_keeps_number_and_goes_front_or_back() {
    let mut f = Fx::new(site_with(3, 3));
    let b1 = f.issue("b", None, t(0));
    let b2 = f.issue("b", None, t(1));
    let a = f.issue("a", None, t(2));
    let called = f.next("c1", t(3)).unwrap();
    assert_eq!(called.id, a.id);
    f.run(
        Command::Transfer {
            counter: "c1".into(),
            by: None,
            service: "b".into(),
            front: true,
        },
        t(4),
    )
    .unwrap();
    let moved = f.view(&a.id);
    assert_eq!(moved.number, a.number);
    assert_eq!(moved.status, TicketStatus::Waiting);
    assert_eq!(moved.counter, None);
    assert_eq!(moved.called_at, None);
    assert_eq!(moved.position, Some(1));
    assert_eq!(f.view(&b1.id).position, Some(2));
    assert!(f.st.serving(0).is_none());
    assert_eq!(f.next("c3", t(5)).unwrap().id, a.id);
    // Back of the queue.
    f.run(
        Command::Transfer {
            counter: "c3".into(),
            by: None,
            service: "b".into(),
            front: false,
        },
        t(6),
    )
    .unwrap();
    assert_eq!(f.view(&a.id).position, Some(3));
    assert_eq!(f.next("c3", t(7)).unwrap().id, b1.id);
    assert_eq!(f.next("c3", t(8)).unwrap().id, b2.id);
    assert_eq!(f.next("c3", t(9)).unwrap().id, a.id);
}

#[test]
fn position_and_estimate() {
    let mut f = Fx::new(site_with(3, 3));
    for i in 0..4 {
        f.issue("b", None, t(i));
    }
    let w = f.issue("b", None, t(4));
    assert_eq!(f.view(&w.id).position, Some(5));
    let p = f.issue("b", Some("pregnant"), t(5));
    assert_eq!(f.view(&p.id).position, Some(1));
    assert_eq!(f.view(&w.id).position, Some(6));
    assert_eq!(f.st.render_ticket(&p).estimated_wait_s, None);
    // Three tickets served at c3, 4 minutes each.
    for k in 0..3 {
        f.next("c3", t(10 + 4 * k)).unwrap();
    }
    f.simple(done, "c3", t(22)).unwrap();
    // Serving b: c2 and c3 are open. Mean 4 min = 240 s.
    let wt = f.st.ticket(&w.id).unwrap();
    let pos = f.view(&w.id).position.unwrap();
    assert_eq!(pos, 3);
    assert_eq!(f.st.render_ticket(wt).estimated_wait_s, Some(3 * 240 / 2));
    f.simple(close, "c2", t(23)).unwrap();
    f.simple(close, "c3", t(23)).unwrap();
    assert_eq!(
        f.st.render_ticket(f.st.ticket(&w.id).unwrap())
            .estimated_wait_s,
        None
    );
}

#[test]
fn next_numbers_follow_the_ratio() {
    let mut f = Fx::new(site_with(2, 3));
    for i in 0..3 {
        f.issue("a", None, t(i));
    }
    for i in 0..3 {
        f.issue("a", Some("emergency"), t(i));
    }
    assert_eq!(
        f.st.next_numbers(0, 5),
        vec!["A004", "A005", "A001", "A006", "A002"]
    );
}

#[test]
fn numbering_goes_on_from_the_stored_value_not_the_text() {
    let mut f = Fx::new(site_with(3, 3));
    let a = f.issue("a", None, t(0));
    assert_eq!((a.number.as_str(), a.n), ("A001", 1));
    // A record written before `n` existed (and before visits: one step's
    // fields at the top level) still continues its numbering.
    let v1 = format!(
        r#"{{"kind":"ticket_issued","scope":"device:k","request_id":"old","ticket":{{
            "id":"tk_old","number":"A041","service":"a","issued_service":"a","priority":null,
            "status":"waiting","counter":null,"issued_at":{},"called_at":null,
            "first_called_at":null,"finished_at":null,"day":"2026-11-22","order":7,
            "front":false,"finished_by":null,"rating":null,"comment":null}}}}"#,
        t(0)
    );
    let old: Event = serde_json::from_str(&v1).unwrap();
    let Event::TicketIssued { ticket, .. } = &old else {
        panic!()
    };
    assert_eq!((ticket.n, ticket.steps.len()), (41, 1));
    assert_eq!(ticket.steps[0].status, TicketStatus::Waiting);
    f.st.apply_event(&old);
    assert_eq!(f.view("tk_old").position, Some(2), "it waits in line");
    assert_eq!(f.issue("a", None, t(1)).number, "A042");
    // A stored value wins over a text that no longer parses the same way
    // (say, after the prefix changed).
    let mut renamed = a.clone();
    renamed.id = "tk_renamed".into();
    renamed.number = "XN0099".into();
    renamed.n = 99;
    f.st.apply_event(&Event::TicketIssued {
        ticket: renamed,
        scope: "device:k".into(),
        request_id: "renamed".into(),
    });
    assert_eq!(f.issue("a", None, t(2)).number, "A100");
}

#[test]
fn feedback_only_once_and_only_when_done() {
    let mut f = Fx::new(site_with(3, 3));
    let a = f.issue("a", None, t(0));
    let fb = |r| Command::Feedback {
        ticket: a.id.clone(),
        rating: r,
        comment: None,
    };
    assert_eq!(f.run(fb(5), t(1)), Err(Rejection::NotServed));
    f.next("c1", t(1)).unwrap();
    assert_eq!(f.run(fb(5), t(1)), Err(Rejection::NotServed));
    f.simple(done, "c1", t(2)).unwrap();
    assert!(matches!(f.run(fb(6), t(3)), Err(Rejection::BadRequest(_))));
    assert!(f.run(fb(4), t(3)).is_ok());
    assert_eq!(f.run(fb(4), t(3)), Err(Rejection::AlreadyRated));
    assert!(!f.log.last().unwrap().is_public());
}

// ------------------------------------------------------------ properties

#[derive(Debug, Clone)]
enum Op {
    Issue(usize, Option<usize>),
    Next(usize),
    Recall(usize),
    Done(usize),
    NoShow(usize),
    Transfer(usize, usize, bool),
    Open(usize),
    Close(usize),
    Feedback(usize, u8),
    /// Advance the clock by this many minutes.
    Wait(u16),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0..2usize, prop::option::weighted(0.4, 0..2usize)).prop_map(|(s, p)| Op::Issue(s, p)),
        5 => (0..3usize).prop_map(Op::Next),
        1 => (0..3usize).prop_map(Op::Recall),
        2 => (0..3usize).prop_map(Op::Done),
        1 => (0..3usize).prop_map(Op::NoShow),
        1 => (0..3usize, 0..2usize, any::<bool>()).prop_map(|(c, s, f)| Op::Transfer(c, s, f)),
        1 => (0..3usize).prop_map(Op::Open),
        1 => (0..3usize).prop_map(Op::Close),
        1 => (0..40usize, 1..=5u8).prop_map(|(i, r)| Op::Feedback(i, r)),
        2 => (0..400u16).prop_map(Op::Wait),
    ]
}

struct Run {
    f: Fx,
    /// The clock after the last operation.
    now: Millis,
    issued: Vec<(NaiveDate, String, String)>,
    calls: Vec<(String, bool, bool)>,
}

fn run_ops(ratio: u32, ops: &[Op]) -> Run {
    let site = site_with(ratio, 2);
    let services = ["a", "b"];
    let counters = ["c1", "c2", "c3"];
    let classes = ["emergency", "pregnant"];
    let mut f = Fx::new(site);
    let mut now = t(0);
    let mut issued = vec![];
    let mut calls = vec![];
    for op in ops {
        now += 1000;
        let by = Some("u".to_string());
        let cmd = match op {
            Op::Issue(s, p) => {
                f.n += 1;
                Command::Issue {
                    scope: "device:k".into(),
                    request_id: format!("r{}", f.n % 50),
                    service: services[*s].into(),
                    priority: p.map(|p| classes[p].to_string()),
                    ticket_id: format!("tk_{}", f.n),
                    identity: None,
                    limited: false,
                    external_ref: None,
                    fresh: crate::engine::identity::Fresh([0; 32]),
                }
            }
            Op::Next(c) => Command::Next {
                counter: counters[*c].into(),
                by,
            },
            Op::Recall(c) => Command::Recall {
                counter: counters[*c].into(),
                by,
            },
            Op::Done(c) => Command::Done {
                counter: counters[*c].into(),
                by,
            },
            Op::NoShow(c) => Command::NoShow {
                counter: counters[*c].into(),
                by,
            },
            Op::Transfer(c, s, front) => Command::Transfer {
                counter: counters[*c].into(),
                by,
                service: services[*s].into(),
                front: *front,
            },
            Op::Open(c) => Command::Open {
                counter: counters[*c].into(),
                by,
            },
            Op::Close(c) => Command::Close {
                counter: counters[*c].into(),
                by,
            },
            Op::Feedback(i, r) => Command::Feedback {
                ticket: format!("tk_{i}"),
                rating: *r,
                comment: None,
            },
            Op::Wait(m) => {
                now += *m as i64 * 60_000;
                Command::Tick
            }
        };
        // Before a call: was a normal ticket waiting for this counter?
        let normal_waiting = if let Command::Next { counter, .. } = &cmd {
            let c = f.st.site().counter_idx(counter).unwrap();
            f.st.site().counters[c]
                .services
                .iter()
                .any(|&s| f.st.normal_waiting(s))
        } else {
            false
        };
        // Rule 36: a ticket transferred to the front goes before the ratio.
        let front_call = if let Command::Next { counter, .. } = &cmd {
            let c = f.st.site().counter_idx(counter).unwrap();
            f.st.pick_next(c)
                .is_some_and(|(i, k)| f.st.tickets[i].steps[k].front)
        } else {
            false
        };
        let is_next = matches!(cmd, Command::Next { .. });
        let counter = if let Command::Next { counter, .. } = &cmd {
            counter.clone()
        } else {
            String::new()
        };
        let a = f.st.apply(cmd, now);
        for e in &a.events {
            if let Event::TicketIssued { ticket, .. } = e {
                issued.push((
                    ticket.day,
                    ticket.issued_service.clone(),
                    ticket.number.clone(),
                ));
            }
            if let Event::DayStarted { .. } = e {
                calls.push((String::new(), false, false)); // runs restart with the day
            }
            if let Event::TicketCalled { id, .. } = e {
                let t = f.st.ticket(id).unwrap();
                calls.push((
                    counter.clone(),
                    t.priority.is_some(),
                    normal_waiting && !front_call,
                ));
            }
        }
        if is_next {
            assert!(a.result.is_some());
        }
        f.log.extend(a.events);
    }
    Run {
        f,
        now,
        issued,
        calls,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// Rule 23 and rule 18 are one rule: the board's next numbers of a
    /// service are exactly what a counter serving only it calls, in order.
    #[test]
    fn next_numbers_are_what_calling_next_takes(ops in prop::collection::vec(op(), 1..200)) {
        let r = run_ops(2, &ops);
        for (s, counter) in [(0usize, "c1"), (1, "c3")] {
            let predicted = r.f.st.next_numbers(s, 5);
            let mut st = r.f.st.clone();
            let c = st.site().counter_idx(counter).unwrap();
            st.counters[c].open = true;
            st.counters[c].run = 0;
            let mut called = vec![];
            while called.len() < 5 {
                let a = st.apply(Command::Next { counter: counter.into(), by: None }, r.now);
                match a.result {
                    Some(Ok(Subject::Ticket(id))) => called.push(st.ticket(&id).unwrap().number.clone()),
                    _ => break,
                }
            }
            prop_assert_eq!(predicted, called, "service {}", s);
        }
    }

    #[test]
    fn numbers_unique_per_service_and_day(ops in prop::collection::vec(op(), 1..300)) {
        let r = run_ops(3, &ops);
        let mut seen = HashSet::new();
        for key in &r.issued {
            prop_assert!(seen.insert(key.clone()), "number reused: {key:?}");
        }
    }

    #[test]
    fn replaying_the_log_rebuilds_the_same_state(ops in prop::collection::vec(op(), 1..300)) {
        let r = run_ops(2, &ops);
        let mut replayed = State::new(r.f.st.site().clone());
        for e in &r.f.log {
            replayed.apply_event(e);
        }
        prop_assert_eq!(replayed.to_snapshot(), r.f.st.to_snapshot());
        prop_assert_eq!(replayed.board(0), r.f.st.board(0));
        // And through a snapshot.
        let back = State::from_snapshot(r.f.st.site().clone(), r.f.st.to_snapshot());
        prop_assert_eq!(back.to_snapshot(), r.f.st.to_snapshot());
        prop_assert_eq!(back.board(0), r.f.st.board(0));
        for t in r.f.st.tickets() {
            prop_assert_eq!(back.render_ticket(t), r.f.st.render_ticket(t));
        }
    }

    #[test]
    fn normal_tickets_never_starve(ratio in 1u32..4, ops in prop::collection::vec(op(), 1..300)) {
        let r = run_ops(ratio, &ops);
        // Per counter: never more than `ratio` priority calls in a row while a
        // normal ticket was waiting for that counter.
        let mut run: HashMap<String, u32> = HashMap::new();
        for (counter, prio, normal_waiting) in &r.calls {
            if counter.is_empty() {
                run.clear();
                continue;
            }
            let k = run.entry(counter.clone()).or_default();
            if *prio {
                if *normal_waiting {
                    prop_assert!(*k < ratio, "counter {counter} starved normal tickets");
                }
                *k += 1;
            } else {
                *k = 0;
            }
        }
    }

    #[test]
    fn transfer_keeps_the_number(ops in prop::collection::vec(op(), 1..200)) {
        let r = run_ops(3, &ops);
        let mut numbers: HashMap<String, String> = HashMap::new();
        for e in &r.f.log {
            if let Event::TicketIssued { ticket, .. } = e {
                numbers.insert(ticket.id.clone(), ticket.number.clone());
            }
        }
        for t in r.f.st.tickets() {
            prop_assert_eq!(Some(&t.number), numbers.get(&t.id));
        }
    }

    #[test]
    fn positions_are_a_permutation(ops in prop::collection::vec(op(), 1..200)) {
        let r = run_ops(3, &ops);
        for s in ["a", "b"] {
            let mut pos: Vec<u32> = r.f.st.tickets().iter()
                .map(|t| r.f.st.render_ticket(t))
                .filter(|t| t.service == s && t.status == TicketStatus::Waiting)
                .map(|t| t.position.unwrap())
                .collect();
            pos.sort();
            let want: Vec<u32> = (1..=pos.len() as u32).collect();
            prop_assert_eq!(pos, want);
        }
    }
}
