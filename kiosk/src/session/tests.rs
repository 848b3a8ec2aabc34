//! The session's rules, in-process: time is simulated, the server is frames
//! written with luot-protocol's types, and what the session sends is read
//! back as `ClientMessage`.

#![allow(clippy::unwrap_used)]

use std::collections::{HashMap, HashSet};

use luot_protocol::{
    BoardCounter, BoardState, EventKind, TicketStatus, WelcomeService, WelcomeSite, WireEvent,
};
use proptest::prelude::*;

use super::*;

const DEADLINE: Duration = Duration::from_secs(8);

fn ticket(id: &str, number: &str) -> Ticket {
    Ticket {
        id: id.into(),
        number: number.into(),
        service: "kham-noi".into(),
        priority: None,
        status: TicketStatus::Waiting,
        counter: None,
        issued_at: "2026-11-22T07:30:00+07:00".into(),
        called_at: None,
        finished_at: None,
        day: "2026-11-22".into(),
        position: Some(1),
        estimated_wait_s: None,
        calls: 0,
        reason: None,
        visit: None,
        appointment: None,
        external_ref: None,
    }
}

fn welcome_frame() -> ServerMessage {
    ServerMessage::Welcome {
        role: "kiosk".into(),
        server_time: "2026-11-22T07:30:00+07:00".into(),
        site: WelcomeSite {
            name: "Bệnh viện Đa khoa".into(),
            public_url: "http://luot.test".into(),
        },
        services: vec![WelcomeService {
            id: "kham-noi".into(),
            name: "Khám Nội".into(),
            prefix: "A".into(),
            capacity: Default::default(),
        }],
        name: Some("kiosk-sanh-a".into()),
    }
}

fn issued(request_id: &str, t: Ticket) -> ServerMessage {
    ServerMessage::Issued {
        request_id: request_id.into(),
        ticket: t,
        slot_at: None,
    }
}

fn error(request_id: Option<&str>, code: &str) -> ServerMessage {
    ServerMessage::Error {
        request_id: request_id.map(String::from),
        error: ErrorDetail {
            code: code.into(),
            message: "Không được".into(),
            extra: Default::default(),
        },
    }
}

/// A session and a simulated clock.
struct Kiosk {
    s: Session,
    now: Instant,
}

impl Kiosk {
    fn new() -> Kiosk {
        Kiosk::seeded(7)
    }

    fn seeded(seed: u64) -> Kiosk {
        let now = Instant::now();
        Kiosk {
            s: Session::new("kiosk-token".into(), seed, now),
            now,
        }
    }

    fn advance(&mut self, d: Duration) {
        self.now += d;
        self.s.handle_timeout(self.now);
    }

    /// Waits out the backoff (if any) and connects; returns what was sent.
    fn connect(&mut self) -> Vec<ClientMessage> {
        if self.s.wants() == Want::Wait {
            let wait = self.s.poll_timeout() - self.now;
            self.advance(wait);
        }
        assert_eq!(self.s.wants(), Want::Dial);
        self.s.on_connected(self.now);
        self.sent()
    }

    fn connect_and_welcome(&mut self) -> Vec<ClientMessage> {
        let mut sent = self.connect();
        sent.extend(self.receive(welcome_frame()));
        sent
    }

    fn receive(&mut self, msg: ServerMessage) -> Vec<ClientMessage> {
        let text = serde_json::to_string(&msg).unwrap();
        self.s.on_message(&text, self.now);
        self.sent()
    }

    fn press(&mut self, request_id: &str) -> Vec<ClientMessage> {
        let deadline = self.now + DEADLINE;
        self.s
            .issue(request_id.into(), "kham-noi".into(), None, None, deadline);
        self.sent()
    }

    fn drop_connection(&mut self) {
        self.s.on_disconnected(self.now, "cut");
    }

    /// Frames sent, read back as the server would read them.
    fn sent(&mut self) -> Vec<ClientMessage> {
        std::iter::from_fn(|| self.s.poll_transmit())
            .map(|t| serde_json::from_str(&t).unwrap())
            .collect()
    }

    fn events(&mut self) -> Vec<Event> {
        std::iter::from_fn(|| self.s.poll_event()).collect()
    }

    fn answers(&mut self) -> Vec<(String, Result<Ticket, IssueError>)> {
        self.events()
            .into_iter()
            .filter_map(|e| match e {
                Event::Answer { request_id, answer } => {
                    Some((request_id, answer.map(|i| i.ticket)))
                }
                _ => None,
            })
            .collect()
    }
}

fn issues(sent: &[ClientMessage]) -> Vec<&str> {
    sent.iter()
        .filter_map(|m| match m {
            ClientMessage::Issue { request_id, .. } => Some(request_id.as_str()),
            _ => None,
        })
        .collect()
}

#[test]
fn hello_first_and_no_issue_before_welcome() {
    let mut k = Kiosk::new();
    k.s.printer(PrinterStatus::Ok);
    assert!(k.press("r1").is_empty(), "nothing is sent while offline");
    let sent = k.connect();
    assert_eq!(
        sent,
        vec![ClientMessage::Hello {
            token: Some("kiosk-token".into()),
            since: None
        }]
    );
    assert!(k.press("r2").is_empty(), "no issue before welcome");
    let sent = k.receive(welcome_frame());
    assert_eq!(
        sent[0],
        ClientMessage::DeviceStatus {
            printer: PrinterStatus::Ok
        }
    );
    assert_eq!(issues(&sent), ["r1", "r2"]);
    let ev = k.events();
    assert_eq!(
        held_up(&ev),
        ["r1", "r2"],
        "pressed with no welcome: please wait"
    );
    assert!(
        ev.iter()
            .any(|e| matches!(e, Event::Welcome(w) if w.service_name("kham-noi") == "Khám Nội"))
    );
    assert!(k.s.is_ready());
}

#[test]
fn the_issue_frame_is_the_contracts() {
    let mut k = Kiosk::new();
    k.connect_and_welcome();
    k.s.issue(
        "kiosk-sanh-a-000173".into(),
        "kham-noi".into(),
        None,
        None,
        k.now + DEADLINE,
    );
    let text = k.s.poll_transmit().unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        v,
        serde_json::json!({"type": "issue", "request_id": "kiosk-sanh-a-000173", "service": "kham-noi", "priority": null})
    );
}

#[test]
fn an_unanswered_issue_is_sent_again_once_per_connection() {
    let mut k = Kiosk::new();
    k.connect_and_welcome();
    assert_eq!(issues(&k.press("r1")), ["r1"]);
    // A second welcome on the same connection sends nothing again.
    assert!(issues(&k.receive(welcome_frame())).is_empty());
    for _ in 0..3 {
        k.drop_connection();
        assert!(k.sent().is_empty(), "nothing is sent while down");
        let sent = k.connect_and_welcome();
        assert_eq!(issues(&sent), ["r1"], "once, with the same request_id");
    }
}

#[test]
fn an_issued_ticket_is_reported_once_even_when_answered_twice() {
    let mut k = Kiosk::new();
    k.connect_and_welcome();
    k.press("r1");
    k.drop_connection();
    k.connect_and_welcome();
    // The server answers both the first send and the resend.
    k.receive(issued("r1", ticket("t1", "A001")));
    k.receive(issued("r1", ticket("t1", "A001")));
    let answers = k.answers();
    assert_eq!(answers, vec![("r1".into(), Ok(ticket("t1", "A001")))]);
    // And after another reconnect it is not sent again.
    k.drop_connection();
    assert!(issues(&k.connect_and_welcome()).is_empty());
}

#[test]
fn an_issue_past_its_deadline_is_forgotten_and_a_late_ticket_never_reported() {
    let mut k = Kiosk::new();
    k.connect_and_welcome();
    k.press("r1");
    k.advance(DEADLINE - Duration::from_millis(1));
    assert!(k.answers().is_empty(), "still waiting");
    k.advance(Duration::from_millis(1));
    assert_eq!(k.answers(), vec![("r1".into(), Err(IssueError::Timeout))]);
    k.receive(issued("r1", ticket("t1", "A001")));
    assert!(k.answers().is_empty(), "the late ticket is dropped");
    k.drop_connection();
    assert!(
        issues(&k.connect_and_welcome()).is_empty(),
        "and not resent"
    );
}

#[test]
fn an_error_with_a_request_id_refuses_only_that_issue() {
    let mut k = Kiosk::new();
    k.connect_and_welcome();
    k.press("r1");
    k.press("r2");
    k.receive(error(Some("r1"), "unknown_service"));
    let answers = k.answers();
    assert!(matches!(
        answers.as_slice(),
        [(r, Err(IssueError::Refused { code, .. }))] if r == "r1" && code == "unknown_service"
    ));
    k.receive(issued("r2", ticket("t2", "A002")));
    assert_eq!(k.answers(), vec![("r2".into(), Ok(ticket("t2", "A002")))]);
}

#[test]
fn only_an_issued_frame_for_a_sent_issue_gives_a_ticket() {
    let mut k = Kiosk::new();
    k.press("r1"); // waiting, never sent yet
    k.connect();
    // Before welcome the issue is not sent, so no answer can be for it.
    k.receive(issued("r1", ticket("t1", "A001")));
    k.receive(welcome_frame());
    let t = ticket("t9", "A009");
    let board = [
        ServerMessage::Event {
            seq: 5,
            event: WireEvent {
                kind: EventKind::TicketIssued,
                ticket: Some(t.clone()),
                counter: None,
                counter_name: None,
                service_name: Some("Khám Nội".into()),
                day: None,
                from_service: None,
                at: None,
                services: None,
                step: None,
                appointment: None,
            },
        },
        ServerMessage::Snapshot {
            seq: 5,
            state: BoardState {
                day: "2026-11-22".into(),
                services: vec![],
                counters: vec![BoardCounter {
                    id: "quay-1".into(),
                    name: "Quầy 1".into(),
                    open: true,
                    serving: Some(t.clone()),
                    services: vec![],
                    held: vec![],
                }],
                recent_calls: vec![],
            },
        },
        issued("someone-else", t.clone()),
        error(None, "bad_request"),
    ];
    for m in board {
        k.receive(m);
    }
    k.s.on_message("not json", k.now);
    k.s.on_message(r#"{"type":"issued","request_id":"r1"}"#, k.now);
    assert!(k.answers().is_empty(), "no ticket from anything but issued");
    assert!(k.s.is_ready(), "and the link stays up");
    k.receive(issued("r1", ticket("t1", "A001")));
    assert_eq!(k.answers(), vec![("r1".into(), Ok(ticket("t1", "A001")))]);
}

#[test]
fn printer_status_is_sent_when_it_changes_and_after_each_welcome() {
    let mut k = Kiosk::new();
    k.connect_and_welcome();
    k.s.printer(PrinterStatus::PaperLow);
    let low = ClientMessage::DeviceStatus {
        printer: PrinterStatus::PaperLow,
    };
    assert_eq!(k.sent(), vec![low.clone()]);
    k.drop_connection();
    k.s.printer(PrinterStatus::PaperOut);
    assert!(k.sent().is_empty());
    let out = ClientMessage::DeviceStatus {
        printer: PrinterStatus::PaperOut,
    };
    let sent = k.connect_and_welcome();
    assert_eq!(sent[1..], [out], "the latest status, after hello");
}

#[test]
fn a_refused_token_stops_and_waits_the_longest_backoff() {
    let mut k = Kiosk::new();
    k.press("r1");
    k.connect();
    assert!(k.receive(error(None, "unauthorized")).is_empty());
    let refused: Vec<_> = k
        .events()
        .into_iter()
        .filter(|e| !matches!(e, Event::HeldUp { .. }))
        .collect();
    assert!(
        matches!(refused.as_slice(), [Event::TokenRefused { code, .. }] if code == "unauthorized")
    );
    assert_eq!(k.s.wants(), Want::Wait, "the connection is dropped");
    let wait = k.s.poll_timeout() - k.now;
    assert!(wait >= BACKOFF_MAX / 2 && wait < BACKOFF_MAX, "{wait:?}");
    assert!(!k.s.is_ready());
}

// ------------------------------------------------- rule 107: `unavailable`

fn held_up(events: &[Event]) -> Vec<&str> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::HeldUp { request_id } => Some(request_id.as_str()),
            _ => None,
        })
        .collect()
}

#[test]
fn an_unavailable_answer_is_sent_again_1_s_later_with_the_same_request_id() {
    let mut k = Kiosk::new();
    k.connect_and_welcome();
    k.events();
    assert_eq!(issues(&k.press("r1")), ["r1"]);
    assert!(
        held_up(&k.events()).is_empty(),
        "not held up while it goes out"
    );
    k.receive(error(Some("r1"), UNAVAILABLE));
    let ev = k.events();
    assert_eq!(held_up(&ev), ["r1"], "the kiosk shows please wait: {ev:?}");
    assert!(
        !ev.iter().any(|e| matches!(e, Event::Answer { .. })),
        "unavailable is no answer for the press"
    );
    assert_eq!(
        k.s.poll_timeout(),
        k.now + RETRY_UNAVAILABLE,
        "a timer, not a sleep"
    );
    k.advance(RETRY_UNAVAILABLE - Duration::from_millis(1));
    assert!(k.sent().is_empty(), "not before 1 s");
    k.advance(Duration::from_millis(1));
    let again = k.sent();
    assert_eq!(issues(&again), ["r1"], "the same request_id, after 1 s");
    assert_eq!(again, issue_frame("r1"), "the very same frame");
    // Unavailable again: again 1 s later; held up is reported once only.
    k.receive(error(Some("r1"), UNAVAILABLE));
    k.advance(RETRY_UNAVAILABLE);
    assert_eq!(issues(&k.sent()), ["r1"]);
    assert!(held_up(&k.events()).is_empty());
    // No answer: nothing more is sent on this connection.
    k.advance(Duration::from_secs(3));
    assert!(k.sent().is_empty(), "resent only after an unavailable");
    // The primary answers (twice, say): one answer.
    k.receive(issued("r1", ticket("t1", "A001")));
    k.receive(issued("r1", ticket("t1", "A001")));
    assert_eq!(k.answers(), vec![("r1".into(), Ok(ticket("t1", "A001")))]);
    k.advance(Duration::from_secs(2));
    assert!(k.sent().is_empty(), "answered: never sent again");
}

/// The frame of an issue `rid` for `kham-noi`, as first sent.
fn issue_frame(rid: &str) -> Vec<ClientMessage> {
    vec![ClientMessage::Issue {
        request_id: rid.into(),
        service: "kham-noi".into(),
        priority: None,
        identity: None,
    }]
}

#[test]
fn an_unavailable_issue_is_sent_again_after_a_reconnect_and_not_twice() {
    let mut k = Kiosk::new();
    k.connect_and_welcome();
    k.press("r1");
    k.receive(error(Some("r1"), UNAVAILABLE));
    // The server becomes a standby: close 1012 before the 1 s is up.
    k.advance(Duration::from_millis(300));
    k.drop_connection();
    k.advance(Duration::from_millis(700));
    assert!(k.sent().is_empty(), "nothing is sent while down");
    // A standby answers hello `unavailable` (and closes 1013).
    k.connect();
    assert!(k.receive(error(None, UNAVAILABLE)).is_empty());
    assert!(
        !k.events()
            .iter()
            .any(|e| matches!(e, Event::TokenRefused { .. })),
        "a standby is not a refused token"
    );
    assert_eq!(k.s.wants(), Want::Wait);
    // The new primary welcomes: the issue goes out once, right away.
    let sent = k.connect_and_welcome();
    assert_eq!(issues(&sent), ["r1"], "after the reconnect's welcome");
    k.advance(RETRY_UNAVAILABLE * 2);
    assert!(k.sent().is_empty(), "and not again 1 s later");
    k.receive(issued("r1", ticket("t1", "A001")));
    assert_eq!(k.answers(), vec![("r1".into(), Ok(ticket("t1", "A001")))]);
}

#[test]
fn a_hello_answered_unavailable_reconnects_with_the_usual_backoff() {
    let mut k = Kiosk::new();
    let mut base = BACKOFF_MIN;
    for _ in 0..6 {
        k.connect();
        k.receive(error(None, UNAVAILABLE));
        assert_eq!(k.s.wants(), Want::Wait);
        let w = k.s.poll_timeout() - k.now;
        assert!(w >= base / 2 && w < base, "{w:?} for a backoff of {base:?}");
        base = (base * 2).min(BACKOFF_MAX);
    }
    assert!(k.events().is_empty(), "no token refused, never welcomed");
}

#[test]
fn unavailable_until_the_deadline_gives_up_and_a_late_ticket_is_dropped() {
    let mut k = Kiosk::new();
    k.connect_and_welcome();
    k.press("r1");
    let start = k.now;
    let mut sends = 1;
    while k.now < start + DEADLINE {
        k.receive(error(Some("r1"), UNAVAILABLE));
        k.advance(RETRY_UNAVAILABLE);
        sends += issues(&k.sent()).len();
    }
    assert_eq!(sends, 8, "sent at 0, 1, … 7 s; given up at 8 s");
    assert_eq!(k.answers(), vec![("r1".into(), Err(IssueError::Timeout))]);
    // The answer of an outcome unknown comes late: dropped, never a ticket.
    k.receive(issued("r1", ticket("t1", "A001")));
    k.receive(error(Some("r1"), UNAVAILABLE));
    k.advance(Duration::from_secs(2));
    assert!(k.answers().is_empty(), "the late ticket is dropped");
    assert!(k.sent().is_empty(), "and the press is not sent again");
    k.drop_connection();
    assert!(issues(&k.connect_and_welcome()).is_empty());
}

#[test]
fn an_error_other_than_unavailable_is_final() {
    for code in [
        "forbidden",
        "unknown_service",
        "bad_request",
        "service_full",
    ] {
        let mut k = Kiosk::new();
        k.connect_and_welcome();
        k.press("r1");
        k.receive(error(Some("r1"), code));
        assert!(
            matches!(k.answers().as_slice(), [(_, Err(IssueError::Refused { code: c, .. }))] if c == code),
            "{code}"
        );
        k.advance(Duration::from_secs(3));
        assert!(k.sent().is_empty(), "{code}: no resend");
        k.drop_connection();
        assert!(issues(&k.connect_and_welcome()).is_empty(), "{code}");
    }
}

#[test]
fn a_press_with_no_connection_is_held_up_at_once() {
    let mut k = Kiosk::new();
    k.press("r1");
    assert_eq!(held_up(&k.events()), ["r1"]);
    k.connect_and_welcome();
    k.press("r2");
    assert!(held_up(&k.events()).is_empty(), "r2 goes out at once");
    k.drop_connection();
    assert_eq!(held_up(&k.events()), ["r2"], "r1 was reported before");
}

#[test]
fn a_check_in_answered_unavailable_takes_the_same_path() {
    let mut k = Kiosk::new();
    k.connect_and_welcome();
    k.events();
    k.s.check_in(
        "c1".into(),
        Booking::Code("40817269".into()),
        Some(person()),
        k.now + DEADLINE,
    );
    let first = k.sent();
    k.receive(error(Some("c1"), UNAVAILABLE));
    assert_eq!(held_up(&k.events()), ["c1"]);
    k.advance(RETRY_UNAVAILABLE);
    assert_eq!(k.sent(), first, "the same check-in, identity included");
    k.drop_connection();
    assert_eq!(check_ins(&k.connect_and_welcome()), ["c1"]);
    k.advance(DEADLINE);
    assert_eq!(k.answers(), vec![("c1".into(), Err(IssueError::Timeout))]);
}

/// The waits between failed dials: jittered, doubling from 0.5 s to 10 s.
fn dial_failures(k: &mut Kiosk, n: usize) -> Vec<Duration> {
    (0..n)
        .map(|_| {
            k.connect();
            k.drop_connection();
            k.s.poll_timeout() - k.now
        })
        .collect()
}

#[test]
fn backoff_doubles_to_10_s_and_resets_after_a_welcome() {
    let mut k = Kiosk::new();
    let waits = dial_failures(&mut k, 8);
    let mut base = BACKOFF_MIN;
    for w in waits {
        assert!(w >= base / 2 && w < base, "{w:?} for a backoff of {base:?}");
        base = (base * 2).min(BACKOFF_MAX);
    }
    k.connect_and_welcome();
    k.drop_connection();
    let w = k.s.poll_timeout() - k.now;
    assert!(w < BACKOFF_MIN, "{w:?}: back to 0.5 s after a good welcome");
}

#[test]
fn kiosks_with_other_seeds_do_not_reconnect_in_step() {
    let a = dial_failures(&mut Kiosk::seeded(1), 6);
    let b = dial_failures(&mut Kiosk::seeded(2), 6);
    assert_ne!(a, b);
    assert_eq!(
        a,
        dial_failures(&mut Kiosk::seeded(1), 6),
        "the seed decides"
    );
}

#[test]
fn silence_of_45_s_drops_the_connection() {
    let mut k = Kiosk::new();
    k.connect_and_welcome();
    k.events();
    k.advance(Duration::from_secs(30));
    k.s.on_heard(k.now); // a ping
    k.advance(SILENCE - Duration::from_secs(1));
    assert_eq!(k.s.wants(), Want::Open);
    k.advance(Duration::from_secs(1));
    assert_eq!(k.s.wants(), Want::Wait);
    assert_eq!(k.events(), vec![Event::Down]);
}

#[test]
fn a_dial_or_a_welcome_that_takes_too_long_is_given_up() {
    let mut k = Kiosk::new();
    assert_eq!(k.s.wants(), Want::Dial);
    k.advance(CONNECT_TIMEOUT);
    assert_eq!(k.s.wants(), Want::Wait, "dial timed out");
    k.connect();
    k.advance(CONNECT_TIMEOUT);
    assert_eq!(k.s.wants(), Want::Wait, "no welcome in time");
    assert!(k.events().is_empty(), "never welcomed, so never down");
}

// ------------------------------------------------------------- property test

#[derive(Debug, Clone)]
enum Step {
    Press,
    Advance(u64),
    Dial(bool),
    Welcome,
    Cut,
    /// The server answers the n-th issue it received (any, again or late).
    Answer(usize, u8),
    Refuse(usize),
    /// The server answers the n-th issue it received `unavailable`.
    Unavailable(usize),
    /// An `issued` for a request no kiosk made.
    Stray,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => Just(Step::Press),
        3 => (0u64..4000).prop_map(Step::Advance),
        3 => any::<bool>().prop_map(Step::Dial),
        2 => Just(Step::Welcome),
        2 => Just(Step::Cut),
        5 => (any::<usize>(), 0u8..3).prop_map(|(i, v)| Step::Answer(i, v)),
        1 => any::<usize>().prop_map(Step::Refuse),
        3 => any::<usize>().prop_map(Step::Unavailable),
        1 => Just(Step::Stray),
    ]
}

/// A server that answers whatever it received, in any order, any number of
/// times, and remembers every ticket it sent for each request.
#[derive(Default)]
struct World {
    pressed: Vec<String>,
    received: Vec<String>,
    issued: HashSet<(String, String)>,
    answered: HashSet<String>,
    printed: HashSet<String>,
    /// Request ids sent on the current connection, once it is welcomed.
    this_conn: Option<HashSet<String>>,
    /// Requests answered `unavailable` on the current connection, and when:
    /// each may (and must, 1 s later) be sent on it once more.
    unavailable: HashMap<String, Instant>,
    open: bool,
}

impl World {
    fn run(&mut self, k: &mut Kiosk, s: &Step) {
        match s {
            Step::Press => {
                let rid = format!("r{}", self.pressed.len());
                self.pressed.push(rid.clone());
                if self.pressed.len() % 3 == 2 {
                    // Every third request a check-in: the same rules.
                    let booking = Booking::Appointment(format!("ap_{rid}"));
                    k.s.check_in(rid, booking, None, k.now + DEADLINE);
                } else {
                    k.s.issue(rid, "kham-noi".into(), None, None, k.now + DEADLINE);
                }
            }
            Step::Advance(ms) => k.advance(Duration::from_millis(*ms)),
            Step::Dial(true) => k.s.on_connected(k.now),
            Step::Dial(false) | Step::Cut => k.drop_connection(),
            Step::Welcome => self.say(k, welcome_frame()),
            Step::Answer(i, v) if !self.received.is_empty() => {
                let rid = self.received[i % self.received.len()].clone();
                let t = ticket(&format!("{rid}-{v}"), "A001");
                self.issued.insert((rid.clone(), t.id.clone()));
                self.say(k, issued(&rid, t));
            }
            Step::Refuse(i) if !self.received.is_empty() => {
                let rid = self.received[i % self.received.len()].clone();
                self.say(k, error(Some(&rid), "bad_request"));
            }
            Step::Unavailable(i) if !self.received.is_empty() => {
                let rid = self.received[i % self.received.len()].clone();
                if self.this_conn.is_some() && !self.answered.contains(&rid) {
                    self.unavailable.insert(rid.clone(), k.now);
                }
                self.say(k, error(Some(&rid), UNAVAILABLE));
            }
            Step::Stray => self.say(k, issued("stray", ticket("stray", "A999"))),
            Step::Answer(..) | Step::Refuse(_) | Step::Unavailable(_) => {}
        }
    }

    fn say(&mut self, k: &mut Kiosk, msg: ServerMessage) {
        let text = serde_json::to_string(&msg).unwrap();
        k.s.on_message(&text, k.now);
    }

    /// Moves frames from the kiosk to the server and checks what it sends.
    fn transmit(&mut self, k: &mut Kiosk) -> Result<(), TestCaseError> {
        if k.s.wants() != Want::Open {
            self.open = false;
            self.this_conn = None;
            self.unavailable.clear();
            prop_assert!(k.s.poll_transmit().is_none(), "a frame with no connection");
            return Ok(());
        }
        if k.s.is_ready() && self.this_conn.is_none() {
            self.this_conn = Some(HashSet::new());
        }
        for m in k.sent() {
            match m {
                ClientMessage::Hello { .. } => {
                    prop_assert!(!self.open, "one hello per connection");
                    self.open = true;
                }
                ClientMessage::Issue { request_id, .. }
                | ClientMessage::CheckIn { request_id, .. } => {
                    let sent = self.this_conn.as_mut();
                    prop_assert!(sent.is_some(), "an issue before welcome");
                    let fresh = sent.is_some_and(|s| s.insert(request_id.clone()));
                    if !fresh {
                        // Again on one connection: only 1 s after `unavailable`.
                        let after = self.unavailable.remove(&request_id);
                        prop_assert!(
                            after.is_some_and(|t| k.now >= t + RETRY_UNAVAILABLE),
                            "{} sent twice on one connection, not 1 s after unavailable",
                            request_id
                        );
                    }
                    self.received.push(request_id);
                }
                ClientMessage::DeviceStatus { .. } => {}
                ClientMessage::Printed { .. } => prop_assert!(false, "an answer to no print job"),
            }
        }
        Ok(())
    }

    fn check_answers(&mut self, k: &mut Kiosk) -> Result<(), TestCaseError> {
        for (rid, answer) in k.answers() {
            prop_assert!(
                self.pressed.contains(&rid),
                "an answer to no press: {}",
                rid
            );
            prop_assert!(self.answered.insert(rid.clone()), "{} answered twice", rid);
            if let Ok(t) = answer {
                let real = self.issued.contains(&(rid.clone(), t.id.clone()));
                prop_assert!(real, "ticket {} was not the server's for {}", t.id, rid);
                prop_assert!(self.printed.insert(t.id.clone()), "{} printed twice", t.id);
            }
        }
        Ok(())
    }

    /// After a welcome, every unanswered press was sent on this connection,
    /// and each answered `unavailable` on it again from 1 s after.
    fn check_resent(&self, k: &Kiosk) -> Result<(), TestCaseError> {
        if let (true, Some(sent)) = (k.s.is_ready(), &self.this_conn) {
            for rid in self.pressed.iter().filter(|r| !self.answered.contains(*r)) {
                prop_assert!(sent.contains(rid), "{} not sent on this connection", rid);
            }
            for (rid, t) in &self.unavailable {
                let due = k.now >= *t + RETRY_UNAVAILABLE;
                prop_assert!(
                    !due || self.answered.contains(rid),
                    "{} not sent again 1 s after unavailable",
                    rid
                );
            }
        }
        Ok(())
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    #[test]
    fn every_press_gets_one_answer_and_only_real_tickets(steps in prop::collection::vec(step(), 1..200)) {
        let mut k = Kiosk::new();
        let mut w = World::default();
        for s in &steps {
            w.run(&mut k, s);
            w.transmit(&mut k)?;
            w.check_answers(&mut k)?;
            w.check_resent(&k)?;
        }
        k.advance(DEADLINE);
        w.check_answers(&mut k)?;
        let all: HashSet<String> = w.pressed.iter().cloned().collect();
        prop_assert_eq!(&w.answered, &all, "every press got its one answer");
    }
}

fn print_frame(print_id: &str) -> ServerMessage {
    ServerMessage::Print {
        print_id: print_id.into(),
        ticket: ticket("tk_1", "A015"),
        service_name: Some("Khám Nội".into()),
        at: Some("2026-11-22T09:12:00+07:00".into()),
        slot_at: None,
        reprint: true,
    }
}

fn jobs(events: Vec<Event>) -> Vec<String> {
    events
        .into_iter()
        .filter_map(|e| match e {
            Event::Print(j) => Some(j.print_id),
            _ => None,
        })
        .collect()
}

#[test]
fn print_jobs_are_reported_each_time_and_answered_on_a_welcomed_connection() {
    let mut k = Kiosk::new();
    // Before welcome a print frame is not taken.
    k.connect();
    k.receive(print_frame("pr_0"));
    assert!(jobs(k.events()).is_empty());
    k.receive(welcome_frame());
    k.events();
    assert!(k.receive(print_frame("pr_1")).is_empty());
    let ev = k.events();
    assert!(
        matches!(&ev[0], Event::Print(j) if j.ticket.number == "A015"
            && j.service_name.as_deref() == Some("Khám Nội")
            && j.at.as_deref() == Some("2026-11-22T09:12:00+07:00")),
        "{ev:?}"
    );
    // The server sends it again (after a hello): it is reported again;
    // printing once is the owner's rule (it keeps print_ids on disk).
    k.receive(print_frame("pr_1"));
    assert_eq!(jobs(k.events()), ["pr_1"]);
    k.s.printed("pr_1".into(), true);
    assert_eq!(
        k.sent(),
        vec![ClientMessage::Printed {
            print_id: "pr_1".into(),
            ok: true
        }]
    );
    // An answer while offline is not kept: the server resends the job.
    k.drop_connection();
    k.s.printed("pr_2".into(), false);
    let sent = k.connect_and_welcome();
    assert!(
        !sent
            .iter()
            .any(|m| matches!(m, ClientMessage::Printed { .. })),
        "{sent:?}"
    );
}

#[test]
fn a_job_resent_after_a_reconnect_is_reported_and_answered_on_the_new_connection() {
    let mut k = Kiosk::new();
    k.connect_and_welcome();
    k.events();
    k.receive(print_frame("pr_1"));
    assert_eq!(jobs(k.events()), ["pr_1"]);
    // The connection drops before the kiosk answers.
    k.drop_connection();
    k.s.printed("pr_1".into(), true);
    assert!(k.sent().is_empty(), "nothing goes out while offline");
    // After the next hello the server sends the job again.
    k.connect_and_welcome();
    k.events();
    k.receive(print_frame("pr_1"));
    assert_eq!(jobs(k.events()), ["pr_1"], "reported again");
    k.s.printed("pr_1".into(), true);
    // The answer on the wire is the contract's frame.
    let text = k.s.poll_transmit().unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        v,
        serde_json::json!({"type": "printed", "print_id": "pr_1", "ok": true})
    );
}

// ------------------------------------------------------------ check-in (§11)

fn person() -> Identity {
    Identity {
        id_number: "001099012345".into(),
        birth_date: "1950-03-01".into(),
    }
}

fn check_ins(sent: &[ClientMessage]) -> Vec<&str> {
    sent.iter()
        .filter_map(|m| match m {
            ClientMessage::CheckIn { request_id, .. } => Some(request_id.as_str()),
            _ => None,
        })
        .collect()
}

#[test]
fn the_check_in_frames_are_the_contracts() {
    let mut k = Kiosk::new();
    k.connect_and_welcome();
    let deadline = k.now + DEADLINE;
    k.s.check_in(
        "kiosk-sanh-a-000174".into(),
        Booking::Appointment("ap_5Jq2".into()),
        None,
        deadline,
    );
    k.s.check_in(
        "kiosk-sanh-a-000175".into(),
        Booking::Code("40817269".into()),
        Some(person()),
        deadline,
    );
    k.s.issue(
        "kiosk-sanh-a-000176".into(),
        "kham-noi".into(),
        None,
        Some(person()),
        deadline,
    );
    let frames: Vec<serde_json::Value> = std::iter::from_fn(|| k.s.poll_transmit())
        .map(|t| serde_json::from_str(&t).unwrap())
        .collect();
    // Fields not given are absent or null, which the server reads alike.
    let without_nulls = |v: &serde_json::Value| -> serde_json::Value {
        let mut o = v.as_object().unwrap().clone();
        o.retain(|k, v| !v.is_null() || k == "priority");
        serde_json::Value::Object(o)
    };
    assert_eq!(
        without_nulls(&frames[0]),
        serde_json::json!({"type": "check_in", "request_id": "kiosk-sanh-a-000174", "appointment": "ap_5Jq2"})
    );
    assert_eq!(
        without_nulls(&frames[1]),
        serde_json::json!({"type": "check_in", "request_id": "kiosk-sanh-a-000175", "code": "40817269",
            "identity": {"id_number": "001099012345", "birth_date": "1950-03-01"}})
    );
    assert_eq!(
        without_nulls(&frames[2]),
        serde_json::json!({"type": "issue", "request_id": "kiosk-sanh-a-000176", "service": "kham-noi", "priority": null,
            "identity": {"id_number": "001099012345", "birth_date": "1950-03-01"}})
    );
}

#[test]
fn a_check_in_is_sent_again_with_its_identity_and_answered_once_with_its_slot() {
    let mut k = Kiosk::new();
    k.connect_and_welcome();
    k.s.check_in(
        "c1".into(),
        Booking::Appointment("ap_1".into()),
        Some(person()),
        k.now + DEADLINE,
    );
    let first = k.sent();
    assert_eq!(check_ins(&first), ["c1"]);
    k.drop_connection();
    let again = k.connect_and_welcome();
    assert_eq!(check_ins(&again), ["c1"], "the same request_id once more");
    assert!(
        again.iter().any(
            |m| matches!(m, ClientMessage::CheckIn { identity: Some(i), .. } if *i == person())
        ),
        "with the same identity"
    );
    let slot = "2026-11-22T08:30:00+07:00";
    let answer = ServerMessage::Issued {
        request_id: "c1".into(),
        ticket: ticket("t1", "A001"),
        slot_at: Some(slot.into()),
    };
    k.receive(answer.clone());
    k.receive(answer);
    let ev = k.events();
    let answers: Vec<_> = ev
        .iter()
        .filter_map(|e| match e {
            Event::Answer { request_id, answer } => Some((request_id.clone(), answer.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(answers.len(), 1, "one answer: {ev:?}");
    let issued = answers[0].1.clone().unwrap();
    assert_eq!(issued.ticket.number, "A001");
    assert_eq!(issued.slot_at.as_deref(), Some(slot));
    k.drop_connection();
    assert!(
        check_ins(&k.connect_and_welcome()).is_empty(),
        "answered: not sent again"
    );
}

#[test]
fn a_refused_check_in_carries_the_errors_extra_fields() {
    let mut k = Kiosk::new();
    k.connect_and_welcome();
    k.s.check_in(
        "c1".into(),
        Booking::Code("40817269".into()),
        None,
        k.now + DEADLINE,
    );
    k.sent();
    let mut extra = serde_json::Map::new();
    extra.insert(
        "checkin_opens_at".into(),
        "2026-11-22T08:00:00+07:00".into(),
    );
    k.receive(ServerMessage::Error {
        request_id: Some("c1".into()),
        error: ErrorDetail {
            code: "too_early".into(),
            message: "Chưa đến giờ".into(),
            extra: extra.clone(),
        },
    });
    assert_eq!(
        k.answers(),
        vec![(
            "c1".into(),
            Err(IssueError::Refused {
                code: "too_early".into(),
                message: "Chưa đến giờ".into(),
                extra
            })
        )]
    );
}

#[test]
fn the_welcome_gives_the_sites_time() {
    let mut k = Kiosk::new();
    k.connect_and_welcome();
    let w = k.s.welcome().unwrap().clone();
    let later = k.now + Duration::from_secs(90);
    assert_eq!(
        w.server_now(later).unwrap().to_rfc3339(),
        "2026-11-22T07:31:30+07:00",
        "the server's clock at the welcome, moved on by the kiosk's"
    );
}
