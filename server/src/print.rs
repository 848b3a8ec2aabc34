//! Print jobs (rules 66, 67 and 88): `POST /tickets/{id}/print` asks a
//! kiosk or desk printer to print a ticket as it is now (a reprint), and
//! `print_at` on an issue or check-in asks it to print the new ticket (a
//! job that is not a reprint, `reprint: false` in its `print` frame). A job lives in
//! memory only: it has no `seq`, is not durable and dies with a restart.
//!
//! `PrintJobs` is the job table, pure (the time is passed in): the replay of
//! a `request_id` (scoped to the caller, as rule 24 says), the order of the
//! refusals that depend on it, which jobs a kiosk still owes an answer to
//! (resent after each of its `hello`s for `RESEND_FOR`) and the answers.
//! `Prints` adds what the websocket side needs: the table behind a lock and
//! the reply channels of the kiosks' connections, by device id.
//!
//! It never reads a ticket or a device's status itself (`app.rs` asks the
//! hub and passes in the facts), never touches the store, and never decides
//! who may print.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::extract::ws::Utf8Bytes;
use tokio::sync::mpsc;

/// How long an unanswered job is sent again after each `hello` (rule 88).
pub const RESEND_FOR: Duration = Duration::from_secs(10 * 60);
/// How long a `request_id` is recognised as a replay (as rule 24's issue).
pub const REPLAY_FOR: Duration = Duration::from_secs(24 * 60 * 60);
/// Most jobs remembered at once; the oldest go first beyond it.
const MAX_JOBS: usize = 100_000;

/// Why a print request is refused, in the order they are checked after
/// the 404s.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The same `request_id` with another ticket or kiosk.
    RequestIdReused,
    /// The ticket is done, no-show, cancelled or of a past day.
    TicketClosed,
    /// The kiosk is not connected, or its printer cannot print.
    KioskUnavailable,
}

/// What a print request does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    pub print_id: String,
    /// False for a replay of the same `request_id`: nothing new to send.
    pub created: bool,
}

/// The facts about a request that the table does not hold.
#[derive(Debug, Clone)]
pub struct PrintOrder {
    /// Who asks (`Principal::scope`), for the replay of `request_id`.
    pub scope: String,
    pub request_id: String,
    pub ticket: String,
    pub kiosk: String,
    /// The ticket is done, no-show, cancelled or of a past day.
    pub closed: bool,
    /// The kiosk is connected and its printer reports `ok` or `paper_low`.
    pub available: bool,
    /// A `/print` job (rule 67's reprint), or false for a new ticket's
    /// `print_at` (§7's ticket).
    pub reprint: bool,
}

/// What became of a kiosk's `printed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// The job's first answer: it is no longer sent.
    Recorded,
    /// The job was answered before (a kiosk that reconnected answers again).
    Again,
    /// No job of that id for this kiosk.
    Unknown,
}

#[derive(Debug, Clone)]
struct Job {
    ticket: String,
    kiosk: String,
    /// The kiosk's answer: whether it printed.
    answer: Option<bool>,
    /// See `PrintOrder::reprint`.
    reprint: bool,
}

/// The in-memory job table (see the module doc). Pure.
#[derive(Debug, Default)]
pub struct PrintJobs {
    jobs: HashMap<String, Job>,
    /// (scope, request_id) → print_id.
    requests: HashMap<(String, String), String>,
    /// Every job in order of creation, with its request key, for pruning.
    order: VecDeque<(Instant, String, (String, String))>,
}

impl PrintJobs {
    /// A print request: a replay answers the same `print_id` (or
    /// `RequestIdReused` when it names another ticket or kiosk) before the
    /// 409s of rule 88; else `TicketClosed`, then `KioskUnavailable`, else
    /// a new job under `print_id`.
    pub fn request(
        &mut self,
        order: PrintOrder,
        print_id: String,
        now: Instant,
    ) -> Result<Accepted, Refusal> {
        self.prune(now);
        let key = (order.scope, order.request_id);
        if let Some(id) = self.requests.get(&key) {
            let job = &self.jobs[id];
            if job.ticket != order.ticket || job.kiosk != order.kiosk {
                return Err(Refusal::RequestIdReused);
            }
            return Ok(Accepted {
                print_id: id.clone(),
                created: false,
            });
        }
        if order.closed {
            return Err(Refusal::TicketClosed);
        }
        if !order.available {
            return Err(Refusal::KioskUnavailable);
        }
        self.jobs.insert(
            print_id.clone(),
            Job {
                ticket: order.ticket,
                kiosk: order.kiosk,
                answer: None,
                reprint: order.reprint,
            },
        );
        self.requests.insert(key.clone(), print_id.clone());
        self.order.push_back((now, print_id.clone(), key));
        Ok(Accepted {
            print_id,
            created: true,
        })
    }

    /// The jobs `kiosk` still owes an answer to and that are younger than
    /// `RESEND_FOR`, oldest first: `(print_id, ticket id)`.
    pub fn pending(&self, kiosk: &str, now: Instant) -> Vec<(String, String)> {
        self.order
            .iter()
            .filter(|(created, _, _)| now.saturating_duration_since(*created) < RESEND_FOR)
            .filter_map(|(_, id, _)| {
                let job = self.jobs.get(id)?;
                (job.kiosk == kiosk && job.answer.is_none())
                    .then(|| (id.clone(), job.ticket.clone()))
            })
            .collect()
    }

    /// `kiosk` answered `print_id`. Only the kiosk the job is for may.
    pub fn answered(&mut self, kiosk: &str, print_id: &str, ok: bool) -> Answer {
        match self.jobs.get_mut(print_id) {
            Some(job) if job.kiosk == kiosk => match job.answer {
                Some(_) => Answer::Again,
                None => {
                    job.answer = Some(ok);
                    Answer::Recorded
                }
            },
            _ => Answer::Unknown,
        }
    }

    /// The answer `kiosk` gave for `print_id`, if any.
    pub fn answer(&self, print_id: &str) -> Option<bool> {
        self.jobs.get(print_id).and_then(|j| j.answer)
    }

    /// Whether `print_id` is a reprint (true for a job it does not know).
    pub fn reprint(&self, print_id: &str) -> bool {
        self.jobs.get(print_id).is_none_or(|j| j.reprint)
    }

    /// The job a `request_id` of `scope` made, if it is still kept.
    pub fn made_by(&self, scope: &str, request_id: &str) -> Option<String> {
        self.requests
            .get(&(scope.to_string(), request_id.to_string()))
            .cloned()
    }

    /// Forgets jobs older than `REPLAY_FOR`, and the oldest beyond `MAX_JOBS`.
    fn prune(&mut self, now: Instant) {
        while let Some((created, _, _)) = self.order.front() {
            let old = now.saturating_duration_since(*created) >= REPLAY_FOR;
            if !old && self.order.len() < MAX_JOBS {
                break;
            }
            if let Some((_, id, key)) = self.order.pop_front() {
                self.jobs.remove(&id);
                self.requests.remove(&key);
            }
        }
    }
}

/// A reply channel of one kiosk connection.
type Conn = (u64, mpsc::Sender<Utf8Bytes>);

/// The job table and the kiosks' connections, shared by HTTP and the
/// websocket.
#[derive(Default)]
pub struct Prints {
    jobs: Mutex<PrintJobs>,
    conns: Mutex<HashMap<String, Vec<Conn>>>,
    next_conn: AtomicU64,
}

impl Prints {
    /// See `PrintJobs::request`.
    pub fn request(
        &self,
        order: PrintOrder,
        print_id: String,
        now: Instant,
    ) -> Result<Accepted, Refusal> {
        match self.jobs.lock() {
            Ok(mut jobs) => jobs.request(order, print_id, now),
            Err(_) => Err(Refusal::KioskUnavailable),
        }
    }

    /// See `PrintJobs::pending`.
    pub fn pending(&self, kiosk: &str, now: Instant) -> Vec<(String, String)> {
        self.jobs
            .lock()
            .map(|j| j.pending(kiosk, now))
            .unwrap_or_default()
    }

    /// See `PrintJobs::answered`.
    pub fn answered(&self, kiosk: &str, print_id: &str, ok: bool) -> Answer {
        self.jobs
            .lock()
            .map(|mut j| j.answered(kiosk, print_id, ok))
            .unwrap_or(Answer::Unknown)
    }

    /// The answer given for `print_id`, if any.
    pub fn answer(&self, print_id: &str) -> Option<bool> {
        self.jobs.lock().ok().and_then(|j| j.answer(print_id))
    }

    /// See `PrintJobs::reprint`.
    pub fn reprint(&self, print_id: &str) -> bool {
        self.jobs
            .lock()
            .map(|j| j.reprint(print_id))
            .unwrap_or(true)
    }

    /// See `PrintJobs::made_by`.
    pub fn made_by(&self, scope: &str, request_id: &str) -> Option<String> {
        self.jobs
            .lock()
            .ok()
            .and_then(|j| j.made_by(scope, request_id))
    }

    /// A kiosk's connection said hello: jobs for `kiosk` go to `tx` too
    /// until `detach`. Returns the handle to detach it with.
    pub fn attach(&self, kiosk: &str, tx: mpsc::Sender<Utf8Bytes>) -> u64 {
        let id = self.next_conn.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut conns) = self.conns.lock() {
            conns.entry(kiosk.to_string()).or_default().push((id, tx));
        }
        id
    }

    /// The connection `id` of `kiosk` ended or speaks for someone else now.
    pub fn detach(&self, kiosk: &str, id: u64) {
        if let Ok(mut conns) = self.conns.lock()
            && let Some(list) = conns.get_mut(kiosk)
        {
            list.retain(|(c, _)| *c != id);
            if list.is_empty() {
                conns.remove(kiosk);
            }
        }
    }

    /// The reply channels of `kiosk`'s open connections.
    pub fn connections(&self, kiosk: &str) -> Vec<mpsc::Sender<Utf8Bytes>> {
        self.conns
            .lock()
            .ok()
            .and_then(|c| {
                c.get(kiosk)
                    .map(|l| l.iter().map(|(_, tx)| tx.clone()).collect())
            })
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order(request_id: &str, ticket: &str, kiosk: &str) -> PrintOrder {
        PrintOrder {
            scope: "user:le.thu".into(),
            request_id: request_id.into(),
            ticket: ticket.into(),
            kiosk: kiosk.into(),
            closed: false,
            available: true,
            reprint: true,
        }
    }

    #[test]
    fn a_replay_answers_the_same_print_id_and_makes_no_second_job() {
        let mut t = PrintJobs::default();
        let t0 = Instant::now();
        let a = t
            .request(order("r1", "tk_a", "k1"), "pr_1".into(), t0)
            .unwrap();
        assert_eq!(
            a,
            Accepted {
                print_id: "pr_1".into(),
                created: true
            }
        );
        // Even once the kiosk went away and the ticket closed, the replay
        // is the same job.
        let mut again = order("r1", "tk_a", "k1");
        again.available = false;
        again.closed = true;
        let b = t
            .request(again, "pr_2".into(), t0 + Duration::from_secs(5))
            .unwrap();
        assert_eq!(
            b,
            Accepted {
                print_id: "pr_1".into(),
                created: false
            }
        );
        assert_eq!(t.pending("k1", t0).len(), 1, "one job, not two");
        // The scope is the caller: another user's r1 is a new job.
        let mut other = order("r1", "tk_a", "k1");
        other.scope = "user:tran.an".into();
        assert!(t.request(other, "pr_3".into(), t0).unwrap().created);
        // The same request_id for another ticket or kiosk is refused.
        assert_eq!(
            t.request(order("r1", "tk_b", "k1"), "pr_4".into(), t0),
            Err(Refusal::RequestIdReused)
        );
        assert_eq!(
            t.request(order("r1", "tk_a", "k2"), "pr_4".into(), t0),
            Err(Refusal::RequestIdReused)
        );
    }

    #[test]
    fn refusals_come_in_rule_88s_order_and_issue_nothing() {
        let mut t = PrintJobs::default();
        let t0 = Instant::now();
        let mut o = order("r1", "tk_a", "k1");
        o.closed = true;
        o.available = false;
        assert_eq!(
            t.request(o.clone(), "pr_1".into(), t0),
            Err(Refusal::TicketClosed)
        );
        o.closed = false;
        assert_eq!(
            t.request(o.clone(), "pr_1".into(), t0),
            Err(Refusal::KioskUnavailable)
        );
        assert!(t.pending("k1", t0).is_empty(), "nothing was issued");
        // A refused request_id is not taken: it works once the kiosk is back.
        o.available = true;
        assert!(t.request(o, "pr_1".into(), t0).unwrap().created);
    }

    #[test]
    fn jobs_are_resent_for_ten_minutes_until_answered_by_their_kiosk() {
        let mut t = PrintJobs::default();
        let t0 = Instant::now();
        t.request(order("r1", "tk_a", "k1"), "pr_1".into(), t0)
            .unwrap();
        t.request(
            order("r2", "tk_b", "k1"),
            "pr_2".into(),
            t0 + Duration::from_secs(1),
        )
        .unwrap();
        t.request(order("r3", "tk_c", "k2"), "pr_3".into(), t0)
            .unwrap();
        let ids = |v: Vec<(String, String)>| v.into_iter().map(|(p, _)| p).collect::<Vec<_>>();
        assert_eq!(ids(t.pending("k1", t0)), ["pr_1", "pr_2"], "oldest first");
        assert_eq!(
            t.pending("k1", t0)[0],
            ("pr_1".to_string(), "tk_a".to_string())
        );
        // Another kiosk cannot answer k1's job.
        assert_eq!(t.answered("k2", "pr_1", true), Answer::Unknown);
        assert_eq!(t.answered("k1", "pr_1", true), Answer::Recorded);
        assert_eq!(t.answered("k1", "pr_1", true), Answer::Again);
        assert_eq!(t.answer("pr_1"), Some(true));
        assert_eq!(t.answered("k1", "pr_9", true), Answer::Unknown);
        assert_eq!(ids(t.pending("k1", t0)), ["pr_2"]);
        // A failed print is an answer too: it is not sent again.
        assert_eq!(t.answered("k2", "pr_3", false), Answer::Recorded);
        assert_eq!(t.answer("pr_3"), Some(false));
        assert!(t.pending("k2", t0).is_empty());
        // After ten minutes an unanswered job is no longer sent.
        let later = t0 + RESEND_FOR + Duration::from_millis(999);
        assert_eq!(ids(t.pending("k1", later)), ["pr_2"]);
        assert!(t.pending("k1", later + Duration::from_secs(1)).is_empty());
    }

    #[test]
    fn replays_are_forgotten_after_a_day() {
        let mut t = PrintJobs::default();
        let t0 = Instant::now();
        t.request(order("r1", "tk_a", "k1"), "pr_1".into(), t0)
            .unwrap();
        let replay = t
            .request(
                order("r1", "tk_a", "k1"),
                "pr_2".into(),
                t0 + REPLAY_FOR - Duration::from_secs(1),
            )
            .unwrap();
        assert!(!replay.created);
        let fresh = t
            .request(order("r1", "tk_a", "k1"), "pr_2".into(), t0 + REPLAY_FOR)
            .unwrap();
        assert_eq!(fresh.print_id, "pr_2");
        assert!(fresh.created);
        assert_eq!(t.answer("pr_1"), None);
        assert_eq!(t.answered("k1", "pr_1", true), Answer::Unknown);
    }

    #[tokio::test]
    async fn connections_are_found_by_kiosk_until_detached() {
        let p = Prints::default();
        let (tx1, _rx1) = mpsc::channel(1);
        let (tx2, _rx2) = mpsc::channel(1);
        let a = p.attach("k1", tx1);
        let b = p.attach("k1", tx2);
        assert_ne!(a, b);
        assert_eq!(p.connections("k1").len(), 2);
        assert!(p.connections("k2").is_empty());
        p.detach("k1", a);
        assert_eq!(p.connections("k1").len(), 1);
        p.detach("k1", b);
        assert!(p.connections("k1").is_empty());
    }
}
