//! Visits with several stops and the console's actions (§9–10): unit tests
//! of each rule and property tests of random days with visits.

use std::collections::HashMap;

use chrono::TimeZone;
use luot_protocol::{EventKind, TicketStatus};
use proptest::prelude::*;

use super::test_site::{config, counter};
use super::*;
use crate::config::Policy;

/// A hospital in small: registration (`reg`), an exam room (`kham` at
/// `p13` and `p14`), lab (`xn` at `q34`, `q35`), X-ray (`xq` at `p38` only).
fn clinic(policy: Policy, returning_ratio: u32) -> Arc<Site> {
    let mut cfg = config(
        &[("reg", "A"), ("kham", "C"), ("xn", "M"), ("xq", "N")],
        &[
            counter("q1", "Quầy 1", &["reg"]),
            counter("p13", "Phòng 13", &["kham"]),
            counter("p14", "Phòng 14", &["kham"]),
            counter("q34", "Quầy 34", &["xn", "xq"]),
            counter("q35", "Quầy 35", &["xn"]),
            counter("p38", "Phòng 38", &["xq"]),
        ],
    );
    cfg.queue.policy = policy;
    cfg.queue.returning_ratio = returning_ratio;
    cfg.queue.min_calls_before_no_show = 1;
    Site::from_config(&cfg)
}

/// 2026-11-22 07:00 in Asia/Ho_Chi_Minh plus `s` seconds.
fn at(s: i64) -> Millis {
    chrono_tz::Asia::Ho_Chi_Minh
        .with_ymd_and_hms(2026, 11, 22, 7, 0, 0)
        .unwrap()
        .timestamp_millis()
        + s * 1000
}

struct Day {
    st: State,
    log: Vec<Event>,
    wire: Vec<Option<luot_protocol::WireEvent>>,
    n: u32,
    now: Millis,
}

impl Day {
    fn new(site: Arc<Site>) -> Day {
        Day {
            st: State::new(site),
            log: vec![],
            wire: vec![],
            n: 0,
            now: at(0),
        }
    }

    fn run(&mut self, cmd: Command) -> Result<Subject, Rejection> {
        self.now += 1000;
        let a = self.st.apply(cmd, self.now);
        self.log.extend(a.events);
        self.wire.extend(a.wire);
        a.result.unwrap()
    }

    fn issue(&mut self, service: &str, priority: Option<&str>) -> String {
        self.n += 1;
        let id = format!("tk_{}", self.n);
        let r = self.run(Command::Issue {
            scope: "device:k".into(),
            request_id: format!("r{}", self.n),
            service: service.into(),
            priority: priority.map(String::from),
            ticket_id: id.clone(),
            identity: None,
            limited: false,
            external_ref: None,
            fresh: crate::engine::identity::Fresh([0; 32]),
        });
        assert_eq!(r, Ok(Subject::Ticket(id.clone())));
        id
    }

    fn act(
        &mut self,
        counter: &str,
        f: impl FnOnce(String, Option<String>) -> Command,
    ) -> Result<String, Rejection> {
        match self.run(f(counter.into(), Some("bs".into())))? {
            Subject::Ticket(id) => Ok(id),
            other => panic!("{other:?}"),
        }
    }

    fn next(&mut self, counter: &str) -> Result<String, Rejection> {
        self.act(counter, |counter, by| Command::Next { counter, by })
    }

    fn done(&mut self, counter: &str) -> Result<String, Rejection> {
        self.act(counter, |counter, by| Command::Done { counter, by })
    }

    fn send(
        &mut self,
        counter: &str,
        stops: &[(&str, Option<&str>, u32)],
        back: bool,
    ) -> Result<String, Rejection> {
        let stops = stops
            .iter()
            .map(|(s, c, stage)| StopReq {
                service: s.to_string(),
                counter: c.map(String::from),
                stage: Some(*stage),
            })
            .collect();
        self.act(counter, |counter, by| Command::Send {
            counter,
            by,
            stops,
            return_here: back,
            ticket: None,
        })
    }

    fn view(&self, id: &str) -> luot_protocol::Ticket {
        self.st.render_ticket(self.st.ticket(id).unwrap())
    }

    fn last_kind(&self) -> EventKind {
        self.wire.last().unwrap().as_ref().unwrap().kind
    }
}

fn number(id: &str) -> Named {
    Named::Id(id.into())
}

#[test]
fn a_doctor_sends_to_lab_and_xray_and_the_patient_returns_ahead_of_new_ones() {
    let mut d = Day::new(clinic(Policy::Preference, 0));
    let p = d.issue("kham", None);
    let newcomer = d.issue("kham", None);
    assert_eq!(d.next("p13").unwrap(), p);
    // Lab anywhere, X-ray in Phòng 38 only, then back to Phòng 13.
    d.send("p13", &[("xn", None, 1), ("xq", Some("p38"), 1)], true)
        .unwrap();
    assert_eq!(d.last_kind(), EventKind::TicketSent);
    let v = d.view(&p);
    let steps = v.visit.as_ref().unwrap().steps.clone();
    let shape: Vec<_> = steps
        .iter()
        .map(|s| {
            (
                s.stage,
                s.service.as_str(),
                s.status,
                s.returning,
                s.place.as_str(),
            )
        })
        .collect();
    assert_eq!(
        shape,
        [
            (1, "kham", TicketStatus::Done, false, "Phòng 13"),
            (2, "xn", TicketStatus::Waiting, false, "Dịch vụ xn"),
            (2, "xq", TicketStatus::Waiting, false, "Phòng 38"),
            (3, "kham", TicketStatus::Pending, true, "Phòng 13"),
        ]
    );
    assert_eq!(v.number, "C001", "the number follows the visit");
    assert_eq!(
        (v.status, v.service.as_str()),
        (TicketStatus::Waiting, "xn")
    );
    // Called for the X-ray: busy for the lab meanwhile.
    assert_eq!(d.next("p38").unwrap(), p);
    assert!(d.view(&p).visit.unwrap().steps[1].busy);
    assert_eq!(
        d.next("q35"),
        Err(Rejection::QueueEmpty),
        "busy: not callable"
    );
    d.done("p38").unwrap();
    assert_eq!(d.last_kind(), EventKind::StepFinished);
    assert_eq!(d.next("q35").unwrap(), p, "the lab, in either order");
    d.done("q35").unwrap();
    // Back to Phòng 13, ahead of the patient who came before.
    let back = d.view(&p).visit.unwrap().steps[3].clone();
    assert_eq!(
        (back.status, back.counter.as_deref()),
        (TicketStatus::Waiting, Some("p13"))
    );
    let board = d.st.board(0);
    let kham = board.services.iter().find(|s| s.id == "kham").unwrap();
    assert_eq!(kham.returning.len(), 1);
    assert_eq!(kham.next_numbers, ["C002"], "the shared line only");
    assert_eq!(
        d.next("p14").unwrap(),
        newcomer,
        "another room cannot call it"
    );
    assert_eq!(d.next("p13").unwrap(), p);
    assert!(d.st.board(0).recent_calls[0].returning);
    d.done("p13").unwrap();
    assert_eq!(d.last_kind(), EventKind::TicketDone);
    let v = d.view(&p);
    assert_eq!(v.status, TicketStatus::Done);
    assert!(v.finished_at.is_some());
}

#[test]
fn send_checks_its_body_in_the_contracts_order() {
    let mut d = Day::new(clinic(Policy::Preference, 0));
    d.issue("kham", None);
    d.next("p13").unwrap();
    let bad = |d: &mut Day, stops: &[(&str, Option<&str>, u32)]| d.send("p13", stops, false);
    assert!(matches!(bad(&mut d, &[]), Err(Rejection::BadRequest(_))));
    assert!(matches!(
        bad(&mut d, &[("xn", None, 5)]),
        Err(Rejection::BadRequest(_))
    ));
    assert!(
        matches!(
            bad(&mut d, &[("xn", None, 2)]),
            Err(Rejection::BadRequest(_))
        ),
        "a gap"
    );
    assert!(matches!(
        bad(&mut d, &[("xn", None, 1), ("xn", None, 2)]),
        Err(Rejection::BadRequest(_))
    ));
    // 404s come after the 400s of the shape, in body order.
    assert_eq!(
        bad(&mut d, &[("nope", None, 1)]),
        Err(Rejection::UnknownService)
    );
    assert_eq!(
        bad(&mut d, &[("xn", Some("q99"), 1)]),
        Err(Rejection::UnknownCounter)
    );
    // Then a counter that does not serve the stop's service.
    assert!(matches!(
        bad(&mut d, &[("xn", Some("p38"), 1)]),
        Err(Rejection::BadRequest(_))
    ));
    assert!(bad(&mut d, &[("xn", Some("q34"), 1)]).is_ok());
    // A retry finds nothing called (rule 68).
    assert_eq!(
        bad(&mut d, &[("xn", None, 1)]),
        Err(Rejection::NothingCalled)
    );
}

#[test]
fn stages_run_in_order_and_later_stages_move_back() {
    let mut d = Day::new(clinic(Policy::Preference, 0));
    let p = d.issue("kham", None);
    d.next("p13").unwrap();
    // Pay first (registration desk here), then the lab.
    d.send("p13", &[("reg", None, 1), ("xn", None, 2)], true)
        .unwrap();
    let stages = |d: &Day| -> Vec<(u32, String, TicketStatus)> {
        d.view(&p)
            .visit
            .unwrap()
            .steps
            .iter()
            .map(|s| (s.stage, s.service.clone(), s.status))
            .collect()
    };
    assert_eq!(
        stages(&d)[1..],
        [
            (2, "reg".into(), TicketStatus::Waiting),
            (3, "xn".into(), TicketStatus::Pending),
            (4, "kham".into(), TicketStatus::Pending),
        ]
    );
    d.next("q1").unwrap();
    // The cashier sends on to X-ray before the lab: steps after stage 2 move back.
    d.send("q1", &[("xq", None, 1)], false).unwrap();
    assert_eq!(
        stages(&d)[1..],
        [
            (2, "reg".into(), TicketStatus::Done),
            (3, "xq".into(), TicketStatus::Waiting),
            (4, "xn".into(), TicketStatus::Pending),
            (5, "kham".into(), TicketStatus::Pending),
        ]
    );
}

#[test]
fn call_hold_resume_requeue_and_cancel() {
    let mut d = Day::new(clinic(Policy::Preference, 0));
    let a = d.issue("reg", None);
    let b = d.issue("reg", None);
    let c = d.issue("reg", None);
    // Call a chosen number, ahead of the line.
    let call = |d: &mut Day, n: Named| {
        d.act("q1", |counter, by| Command::Call {
            counter,
            by,
            ticket: n,
        })
    };
    assert_eq!(call(&mut d, Named::Number("A002".into())), Ok(b.clone()));
    assert_eq!(
        call(&mut d, number(&b)),
        Ok(b.clone()),
        "already called here: 200"
    );
    let n = d.log.len();
    assert_eq!(call(&mut d, number(&b)), Ok(b.clone()));
    assert_eq!(d.log.len(), n, "and nothing emitted");
    // Park it: the counter may call again at once.
    let hold = |d: &mut Day| {
        d.act("q1", |counter, by| Command::Hold {
            counter,
            by,
            reason: "Thiếu bản sao thẻ BHYT".into(),
            ticket: None,
        })
    };
    hold(&mut d).unwrap();
    assert_eq!(d.last_kind(), EventKind::TicketHeld);
    let v = d.view(&b);
    assert_eq!(
        (v.status, v.reason.as_deref()),
        (TicketStatus::Held, Some("Thiếu bản sao thẻ BHYT"))
    );
    assert_eq!(d.st.board(0).counters[0].held, ["A002"]);
    assert_eq!(d.next("q1").unwrap(), a);
    // Another counter cannot call a ticket held here.
    assert_eq!(
        d.act("p13", |counter, by| Command::Call {
            counter,
            by,
            ticket: number(&b)
        }),
        Err(Rejection::TicketBusy)
    );
    // Resume: called at once, the called one finished first.
    assert_eq!(call(&mut d, number(&b)), Ok(b.clone()));
    assert_eq!(d.view(&a).status, TicketStatus::Done);
    let v = d.view(&b);
    assert_eq!(
        (v.status, v.reason, v.calls),
        (TicketStatus::Called, None, 1)
    );
    // No-show, then back within the grace period, ahead of the line.
    d.act("q1", |counter, by| Command::NoShow { counter, by })
        .unwrap();
    let requeue = |d: &mut Day, front| {
        d.act("q1", |counter, by| Command::Requeue {
            counter,
            by,
            ticket: number(&b),
            front,
        })
    };
    assert_eq!(requeue(&mut d, true), Ok(b.clone()));
    assert_eq!(d.last_kind(), EventKind::TicketRequeued);
    assert_eq!(d.view(&b).position, Some(1));
    assert_eq!(
        requeue(&mut d, true),
        Err(Rejection::NotRequeueable),
        "a retry"
    );
    assert_eq!(d.next("q1").unwrap(), b);
    // Cancel with a reason; again is 200 and emits nothing.
    let cancel = |d: &mut Day, t: Option<Named>| {
        d.act("q1", |counter, by| Command::Cancel {
            counter,
            by,
            reason: "Sai dịch vụ".into(),
            ticket: t,
        })
    };
    assert_eq!(cancel(&mut d, None), Ok(b.clone()));
    assert_eq!(d.last_kind(), EventKind::TicketCancelled);
    let v = d.view(&b);
    assert_eq!(
        (v.status, v.reason.as_deref()),
        (TicketStatus::Cancelled, Some("Sai dịch vụ"))
    );
    let n = d.log.len();
    assert_eq!(cancel(&mut d, Some(number(&b))), Ok(b.clone()));
    assert_eq!(d.log.len(), n);
    assert!(d.st.serving(0).is_none(), "the counter is free");
    // A waiting ticket this counter may call can be cancelled too.
    assert_eq!(cancel(&mut d, Some(number(&c))), Ok(c.clone()));
    assert_eq!(d.st.waiting_count(0), 0);
}

#[test]
fn requeue_only_within_the_grace_period_and_no_show_needs_its_calls() {
    let site = {
        let mut s = Arc::into_inner(clinic(Policy::Preference, 0)).unwrap();
        s.min_calls = 2;
        Arc::new(s)
    };
    let mut d = Day::new(site);
    let a = d.issue("reg", None);
    d.next("q1").unwrap();
    let no_show = |d: &mut Day| d.act("q1", |counter, by| Command::NoShow { counter, by });
    assert_eq!(no_show(&mut d), Err(Rejection::TooFewCalls));
    d.act("q1", |counter, by| Command::Recall { counter, by })
        .unwrap();
    assert_eq!(no_show(&mut d), Ok(a.clone()));
    d.now += 16 * 60_000; // past the 15 minutes of grace
    let r = d.act("q1", |counter, by| Command::Requeue {
        counter,
        by,
        ticket: number(&a),
        front: true,
    });
    assert_eq!(r, Err(Rejection::NotRequeueable));
}

#[test]
fn longest_wait_lets_no_service_starve_and_ratios_hold() {
    let mut d = Day::new(clinic(Policy::LongestWait, 0));
    let x = d.issue("xq", None);
    let l = d.issue("xn", None);
    // Quầy 34 prefers the lab, but the X-ray patient waited longer.
    assert_eq!(d.next("q34").unwrap(), x);
    assert_eq!(d.next("q34").unwrap(), l);
    let mut p = Day::new(clinic(Policy::Preference, 0));
    let x = p.issue("xq", None);
    let l = p.issue("xn", None);
    assert_eq!(p.next("q34").unwrap(), l, "preference: its first service");
    assert_eq!(p.next("q34").unwrap(), x);
}

#[test]
fn a_returning_ratio_lets_new_patients_in() {
    let mut d = Day::new(clinic(Policy::Preference, 1));
    let back = [d.issue("kham", None), d.issue("kham", None)];
    for id in &back {
        assert_eq!(&d.next("p13").unwrap(), id);
        d.send("p13", &[("xn", None, 1)], true).unwrap();
    }
    for id in &back {
        assert_eq!(&d.next("q35").unwrap(), id);
        d.done("q35").unwrap();
    }
    let new = d.issue("kham", None);
    // Ratio 1: one returning patient, then one other, then returning again.
    assert_eq!(d.next("p13").unwrap(), back[0]);
    assert_eq!(d.next("p13").unwrap(), new);
    assert_eq!(d.next("p13").unwrap(), back[1]);
}

#[test]
fn events_carry_their_step_and_exactly_the_services_they_changed() {
    let mut d = Day::new(clinic(Policy::Preference, 0));
    let p = d.issue("kham", None);
    d.next("p13").unwrap();
    let called = d.wire.last().unwrap().clone().unwrap();
    let changed: Vec<_> = called
        .services
        .unwrap()
        .iter()
        .map(|s| s.id.clone())
        .collect();
    assert_eq!(changed, ["kham"]);
    assert_eq!(called.step, None, "no visit yet");
    d.send("p13", &[("xn", None, 1)], true).unwrap();
    let sent = d.wire.last().unwrap().clone().unwrap();
    assert_eq!(sent.step, Some(0), "the step sent from");
    let changed: Vec<_> = sent
        .services
        .unwrap()
        .iter()
        .map(|s| s.id.clone())
        .collect();
    assert_eq!(
        changed,
        ["xn"],
        "kham's entries did not change: its return is pending"
    );
    d.next("q35").unwrap();
    d.done("q35").unwrap();
    let fin = d.wire.last().unwrap().clone().unwrap();
    assert_eq!((fin.kind, fin.step), (EventKind::StepFinished, Some(1)));
    let changed: Vec<_> = fin.services.unwrap().iter().map(|s| s.id.clone()).collect();
    assert_eq!(changed, ["kham"], "the return joined kham's returning list");
    assert_eq!(
        d.view(&p).visit.unwrap().steps[2].status,
        TicketStatus::Waiting
    );
}

// ------------------------------------------------------------ properties

#[derive(Debug, Clone)]
enum Op {
    Issue(usize, bool),
    Next(usize),
    Done(usize),
    NoShow(usize),
    Recall(usize),
    /// From a counter: stops (service, bound, one stage later than the
    /// previous stop) and whether to come back.
    Send(usize, Vec<(usize, bool, bool)>, bool),
    Call(usize, usize),
    Hold(usize),
    Requeue(usize, usize, bool),
    Cancel(usize, Option<usize>),
    Transfer(usize, usize),
    Close(usize),
    Open(usize),
    Wait(u16),
}

const SERVICES: [&str; 4] = ["reg", "kham", "xn", "xq"];
const COUNTERS: [&str; 6] = ["q1", "p13", "p14", "q34", "q35", "p38"];
/// A counter that serves each service, for bound stops.
const HOME: [&str; 4] = ["q1", "p14", "q35", "p38"];

fn op() -> impl Strategy<Value = Op> {
    let c = 0..COUNTERS.len();
    let s = 0..SERVICES.len();
    prop_oneof![
        5 => (s.clone(), prop::bool::weighted(0.2)).prop_map(|(s, p)| Op::Issue(s, p)),
        6 => c.clone().prop_map(Op::Next),
        3 => c.clone().prop_map(Op::Done),
        1 => c.clone().prop_map(Op::NoShow),
        1 => c.clone().prop_map(Op::Recall),
        3 => (c.clone(), prop::collection::vec((s.clone(), any::<bool>(), any::<bool>()), 1..4), any::<bool>())
            .prop_map(|(c, st, b)| Op::Send(c, st, b)),
        1 => (c.clone(), 0..30usize).prop_map(|(c, t)| Op::Call(c, t)),
        1 => c.clone().prop_map(Op::Hold),
        1 => (c.clone(), 0..30usize, any::<bool>()).prop_map(|(c, t, f)| Op::Requeue(c, t, f)),
        1 => (c.clone(), prop::option::of(0..30usize)).prop_map(|(c, t)| Op::Cancel(c, t)),
        1 => (c.clone(), s).prop_map(|(c, s)| Op::Transfer(c, s)),
        1 => c.clone().prop_map(Op::Close),
        1 => c.prop_map(Op::Open),
        1 => (0..90u16).prop_map(Op::Wait),
    ]
}

fn command(op: &Op, n: &mut u32) -> Command {
    let by = Some("bs".to_string());
    let ctr = |c: usize| COUNTERS[c].to_string();
    let tk = |i: usize| Named::Id(format!("tk_{}", i + 1));
    match op {
        Op::Issue(s, p) => {
            *n += 1;
            Command::Issue {
                scope: "device:k".into(),
                request_id: format!("r{n}"),
                service: SERVICES[*s].into(),
                priority: p.then(|| "pregnant".to_string()),
                ticket_id: format!("tk_{n}"),
                identity: None,
                limited: false,
                external_ref: None,
                fresh: crate::engine::identity::Fresh([0; 32]),
            }
        }
        Op::Next(c) => Command::Next {
            counter: ctr(*c),
            by,
        },
        Op::Done(c) => Command::Done {
            counter: ctr(*c),
            by,
        },
        Op::NoShow(c) => Command::NoShow {
            counter: ctr(*c),
            by,
        },
        Op::Recall(c) => Command::Recall {
            counter: ctr(*c),
            by,
        },
        Op::Send(c, stops, back) => Command::Send {
            counter: ctr(*c),
            by,
            stops: stops
                .iter()
                .scan(0u32, |stage, (s, bound, later)| {
                    *stage = if *stage == 0 || *later {
                        *stage + 1
                    } else {
                        *stage
                    };
                    Some(StopReq {
                        service: SERVICES[*s].into(),
                        counter: bound.then(|| HOME[*s].to_string()),
                        stage: Some(*stage),
                    })
                })
                .collect(),
            return_here: *back,
            ticket: None,
        },
        Op::Call(c, t) => Command::Call {
            counter: ctr(*c),
            by,
            ticket: tk(*t),
        },
        Op::Hold(c) => Command::Hold {
            counter: ctr(*c),
            by,
            reason: "đi photo giấy tờ".into(),
            ticket: None,
        },
        Op::Requeue(c, t, f) => Command::Requeue {
            counter: ctr(*c),
            by,
            ticket: tk(*t),
            front: *f,
        },
        Op::Cancel(c, t) => Command::Cancel {
            counter: ctr(*c),
            by,
            reason: "huỷ".into(),
            ticket: t.map(tk),
        },
        Op::Transfer(c, s) => Command::Transfer {
            counter: ctr(*c),
            by,
            service: SERVICES[*s].into(),
            front: false,
        },
        Op::Close(c) => Command::Close {
            counter: ctr(*c),
            by,
        },
        Op::Open(c) => Command::Open {
            counter: ctr(*c),
            by,
        },
        Op::Wait(_) => Command::Tick,
    }
}

/// What must hold after every command.
fn check_invariants(
    st: &State,
    numbers: &mut HashMap<String, String>,
) -> Result<(), TestCaseError> {
    let mut waiting = vec![0u32; st.site.services.len()];
    for (i, t) in st.tickets.iter().enumerate() {
        // A visit's number never changes.
        let first = numbers
            .entry(t.id.clone())
            .or_insert_with(|| t.number.clone());
        prop_assert_eq!(&*first, &t.number);
        // A busy patient is never called twice at once.
        let called = t
            .steps
            .iter()
            .filter(|s| s.status == TicketStatus::Called)
            .count();
        prop_assert!(called <= 1, "{} called {} times at once", t.number, called);
        for (k, s) in t.steps.iter().enumerate() {
            match s.status {
                TicketStatus::Waiting => {
                    waiting[st.site.service_idx(&s.service).unwrap()] += 1;
                    let (key, place) = st.line_of((i, k)).unwrap();
                    prop_assert_eq!(
                        st.lines.get(key).and_then(|l| l.waiting.get(&place)),
                        Some(&(i, k))
                    );
                }
                TicketStatus::Called => {
                    let c = st.site.counter_idx(s.counter.as_deref().unwrap()).unwrap();
                    prop_assert_eq!(st.counters[c].serving, Some((i, k)));
                }
                TicketStatus::Pending => {
                    let earlier_open = t
                        .steps
                        .iter()
                        .any(|o| o.stage < s.stage && o.status.is_open());
                    prop_assert!(earlier_open, "a pending step with nothing open before it");
                }
                _ => {}
            }
        }
    }
    for (s, n) in waiting.iter().enumerate() {
        prop_assert_eq!(st.waiting_count(s), *n, "waiting in {}", SERVICES[s]);
    }
    Ok(())
}

/// The (place time, join) of the normal steps counter `c` could call now.
fn oldest_normal(st: &State, c: usize) -> Option<(Millis, u64)> {
    let normal = st.site.normal_bucket();
    st.tickets
        .iter()
        .enumerate()
        .flat_map(|(i, t)| t.steps.iter().enumerate().map(move |(k, s)| ((i, k), s)))
        .filter(|(r, s)| {
            s.status == TicketStatus::Waiting
                && !st.busy(r.0)
                && !s.returning
                && st.line_of(*r).is_some_and(|(key, p)| {
                    p.0 == normal
                        && match key {
                            lines::LineKey::Shared(sv) => {
                                st.site.counters[c].services.contains(&sv)
                            }
                            lines::LineKey::Bound { counter, .. } => counter == c,
                        }
                })
        })
        .map(|(_, s)| (s.place_at, s.join))
        .min()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Random days of visits: invariants after every command, no overtaking
    /// under the longest-wait policy, the priority ratio under both policies, and replay (of the whole log or of any
    /// prefix, as after a crash at that point) rebuilds the live state.
    #[test]
    fn random_visits_keep_every_rule(
        ops in prop::collection::vec(op(), 1..250),
        longest in any::<bool>(),
        cut in 0usize..250,
    ) {
        let policy = if longest { Policy::LongestWait } else { Policy::Preference };
        let mut d = Day::new(clinic(policy, 0));
        let mut numbers = HashMap::new();
        let mut n = 0;
        let mut at_cut = None;
        // Priority calls in a row at each counter, by rule 18 and 53: a
        // returning call leaves it, a priority call adds one, any other
        // call (and a new day) starts it again.
        let mut runs = [0u32; COUNTERS.len()];
        for (i, op) in ops.iter().enumerate() {
            if let Op::Wait(m) = op {
                d.now += *m as i64 * 60_000;
            }
            let cmd = command(op, &mut n);
            let normal_next = match &cmd {
                Command::Next { counter, .. } => {
                    let c = d.st.site.counter_idx(counter).unwrap();
                    Some((c, oldest_normal(&d.st, c)))
                }
                _ => None,
            };
            let before = d.log.len();
            let _ = d.run(cmd);
            check_invariants(&d.st, &mut numbers)?;
            for e in &d.log[before..] {
                match e {
                    Event::DayStarted { .. } => runs = [0; COUNTERS.len()],
                    Event::TicketCalled { id, counter, step, .. } => {
                        let c = d.st.site.counter_idx(counter).unwrap();
                        let t = d.st.ticket(id).unwrap();
                        let returning = t.steps[*step].returning;
                        let front = was_front(&d.log[..before], id, *step);
                        // The priority ratio holds: calling next takes no
                        // more than `ratio` (2) priority patients in a row
                        // while a normal patient waits for this counter.
                        if let Some((nc, Some(_))) = normal_next
                            && nc == c
                            && t.priority.is_some()
                            && !returning
                            && !front
                        {
                            prop_assert!(runs[c] < 2, "{}: a third priority call in a row at {} while a normal patient waits", t.number, counter);
                        }
                        if !returning {
                            runs[c] = if t.priority.is_some() { runs[c] + 1 } else { 0 };
                        }
                    }
                    _ => {}
                }
            }
            // Longest wait: a plain normal call never takes a step younger
            // than a normal step the counter could call (no overtaking).
            if let (true, Some((_, Some(oldest)))) = (longest, normal_next) {
                for e in &d.log[before..] {
                    if let Event::TicketCalled { id, step, .. } = e {
                        let t = d.st.ticket(id).unwrap();
                        let s = &t.steps[*step];
                        if t.priority.is_none() && !s.returning && !was_front(&d.log[..before], id, *step) {
                            prop_assert!((s.place_at, s.join) <= oldest, "{} overtook an older normal step", t.number);
                        }
                    }
                }
            }
            if i == cut {
                at_cut = Some((d.log.len(), d.st.to_snapshot()));
            }
        }
        let mut replayed = State::new(d.st.site.clone());
        for e in &d.log {
            replayed.apply_event(e);
        }
        prop_assert_eq!(replayed.to_snapshot(), d.st.to_snapshot());
        prop_assert_eq!(replayed.board(0), d.st.board(0));
        for t in d.st.tickets() {
            prop_assert_eq!(replayed.render_ticket(t), d.st.render_ticket(t));
        }
        let back = State::from_snapshot(d.st.site.clone(), d.st.to_snapshot());
        prop_assert_eq!(back.board(0), d.st.board(0));
        if let Some((len, snap)) = at_cut {
            let mut prefix = State::new(d.st.site.clone());
            for e in &d.log[..len] {
                prefix.apply_event(e);
            }
            prop_assert_eq!(prefix.to_snapshot(), snap);
        }
    }
}

/// Whether the step joined ahead (front) before this call.
fn was_front(log: &[Event], id: &str, step: usize) -> bool {
    log.iter()
        .rev()
        .find_map(|e| match e {
            Event::TicketRequeued {
                id: i,
                step: s,
                front,
                ..
            } if i == id && *s == step => Some(*front),
            Event::TicketTransferred {
                id: i,
                step: s,
                front,
                ..
            } if i == id && *s == step => Some(*front),
            _ => None,
        })
        .unwrap_or(false)
}
