//! The queue engine: pure state and rules, no I/O.
//!
//! `State::apply(command, now)` validates a command against the current state,
//! produces the events it causes and applies them; `State::apply_event` is the
//! only code that mutates state, so replaying the event log rebuilds exactly
//! the same state. This module owns numbering, the day reset, the priority
//! ratio, transfer, positions and wait estimates. It never reads a clock,
//! a socket, a disk or a random number generator: the caller passes `now` and
//! fresh ticket ids in.
//!
//! This file holds the types, `State`'s accessors, `apply` and the snapshots;
//! `commands.rs` decides commands (one `decide_*` per command), `events.rs`
//! applies events (one `on_*` per event), `order.rs` is the call order and
//! `render.rs` the wire views.

mod commands;
mod events;
mod order;
pub mod render;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

use chrono::{DateTime, Duration, NaiveDate, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;
use luot_protocol::TicketStatus;
use serde::{Deserialize, Serialize};

use crate::config::SiteConfig;

/// Milliseconds since the Unix epoch, UTC.
pub type Millis = i64;

/// How many done tickets the wait estimate averages over (rule 20).
pub const ESTIMATE_WINDOW: usize = 20;
/// How many done tickets a service needs today before it estimates (rule 20).
pub const ESTIMATE_MIN_DONE: u32 = 3;
/// Replays of a `request_id` are recognised this long (contract says ≥ 24 h).
pub const IDEMPOTENCY_KEEP_MS: Millis = 48 * 3600 * 1000;
/// Length of `recent_calls`.
pub const RECENT_CALLS: usize = 10;

/// The static part of the site the engine needs, derived from the configuration.
#[derive(Debug)]
pub struct Site {
    pub name: String,
    pub public_url: String,
    pub tz: Tz,
    pub day_starts_at: NaiveTime,
    pub services: Vec<ServiceDef>,
    pub counters: Vec<CounterDef>,
    pub classes: Vec<String>,
    pub ratio: u32,
}

#[derive(Debug, Clone)]
pub struct ServiceDef {
    pub id: String,
    pub name: String,
    pub prefix: String,
    pub digits: u8,
}

#[derive(Debug, Clone)]
pub struct CounterDef {
    pub id: String,
    pub name: String,
    /// Indexes into `Site::services`, in order of preference.
    pub services: Vec<usize>,
}

impl Site {
    pub fn from_config(cfg: &SiteConfig) -> Arc<Site> {
        let services: Vec<ServiceDef> = cfg
            .services
            .iter()
            .map(|s| ServiceDef {
                id: s.id.clone(),
                name: s.name.clone(),
                prefix: s.prefix.clone(),
                digits: s.digits,
            })
            .collect();
        let counters = cfg
            .counters
            .iter()
            .map(|c| CounterDef {
                id: c.id.clone(),
                name: c.name.clone(),
                services: c
                    .services
                    .iter()
                    .filter_map(|s| services.iter().position(|d| &d.id == s))
                    .collect(),
            })
            .collect();
        Arc::new(Site {
            name: cfg.site.name.clone(),
            public_url: cfg.site.public_url.clone(),
            tz: cfg.site.timezone,
            day_starts_at: cfg.site.day_starts_at,
            services,
            counters,
            classes: cfg.priority.classes.clone(),
            ratio: cfg.priority.ratio,
        })
    }

    pub fn service_idx(&self, id: &str) -> Option<usize> {
        self.services.iter().position(|s| s.id == id)
    }

    pub fn counter_idx(&self, id: &str) -> Option<usize> {
        self.counters.iter().position(|c| c.id == id)
    }

    pub fn class_idx(&self, id: &str) -> Option<usize> {
        self.classes.iter().position(|c| c == id)
    }

    /// The queue day that `now` belongs to (rule 6): the local date on which
    /// the day began at `day_starts_at`.
    pub fn day_of(&self, now: Millis) -> NaiveDate {
        let local = self
            .tz
            .timestamp_millis_opt(now)
            .single()
            .map(|t| t.naive_local());
        let local = local.unwrap_or_else(|| {
            DateTime::<Utc>::from_timestamp_millis(now)
                .unwrap_or_default()
                .naive_utc()
        });
        if local.time() < self.day_starts_at {
            local.date() - Duration::days(1)
        } else {
            local.date()
        }
    }

    /// RFC 3339 with the site's offset, whole seconds (rule 7).
    pub fn fmt_time(&self, t: Millis) -> String {
        let utc = DateTime::<Utc>::from_timestamp_millis(t).unwrap_or_default();
        utc.with_timezone(&self.tz)
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, false)
    }

    /// Bucket of a waiting ticket: 0 for transferred-to-front, 1 + class index
    /// for priority, `classes.len() + 1` for normal.
    fn bucket(&self, front: bool, priority: Option<&str>) -> u8 {
        if front {
            return 0;
        }
        match priority.and_then(|p| self.class_idx(p)) {
            Some(i) => (1 + i) as u8,
            None => self.normal_bucket(),
        }
    }

    fn normal_bucket(&self) -> u8 {
        (self.classes.len() + 1) as u8
    }

    pub fn number(&self, service: usize, n: u32) -> String {
        let s = &self.services[service];
        format!("{}{:0width$}", s.prefix, n, width = s.digits as usize)
    }
}

/// A ticket as the engine keeps it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct TicketRec {
    pub id: String,
    pub number: String,
    /// The number's value within its service and day (`number` is its
    /// formatted text). Records written before this field existed carry 0
    /// and are read through `legacy_number_value`.
    #[serde(default)]
    pub n: u32,
    /// The service it waits for now (changes with a transfer).
    pub service: String,
    /// The service it was issued for (reports count waits here).
    pub issued_service: String,
    pub priority: Option<String>,
    pub status: TicketStatus,
    pub counter: Option<String>,
    pub issued_at: Millis,
    pub called_at: Option<Millis>,
    pub first_called_at: Option<Millis>,
    pub finished_at: Option<Millis>,
    pub day: NaiveDate,
    /// Queue order: global sequence of issue or transfer.
    pub order: u64,
    /// Transferred with `front: true` and still waiting.
    pub front: bool,
    /// Who finished it (username), for the staff report.
    pub finished_by: Option<String>,
    pub rating: Option<u8>,
    pub comment: Option<String>,
}

/// What the engine persists: every state change is one of these.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Event {
    DayStarted {
        day: NaiveDate,
        at: Millis,
    },
    TicketIssued {
        ticket: TicketRec,
        scope: String,
        request_id: String,
    },
    TicketCalled {
        id: String,
        counter: String,
        by: Option<String>,
        at: Millis,
    },
    TicketRecalled {
        id: String,
        counter: String,
        by: Option<String>,
        at: Millis,
    },
    TicketDone {
        id: String,
        counter: String,
        by: Option<String>,
        at: Millis,
    },
    TicketNoShow {
        id: String,
        counter: String,
        by: Option<String>,
        at: Millis,
    },
    TicketTransferred {
        id: String,
        counter: String,
        from_service: String,
        service: String,
        front: bool,
        order: u64,
        by: Option<String>,
        at: Millis,
    },
    CounterOpened {
        counter: String,
        by: Option<String>,
        at: Millis,
    },
    CounterClosed {
        counter: String,
        by: Option<String>,
        at: Millis,
    },
    /// Not a queue event: carries no `seq` and is not broadcast.
    FeedbackGiven {
        id: String,
        rating: u8,
        comment: Option<String>,
        at: Millis,
    },
}

/// Rule 18's priority run of a counter after it calls `t`: one more for a
/// ticket with a priority class, else back to 0.
fn run_after_call(run: u32, t: &TicketRec) -> u32 {
    if t.priority.is_some() { run + 1 } else { 0 }
}

impl Event {
    /// Queue events get a `seq` and go to every client; the rest are private.
    pub fn is_public(&self) -> bool {
        !matches!(self, Event::FeedbackGiven { .. })
    }
}

/// A command from staff, a kiosk or the clock.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// Lets the day roll over without any other activity.
    Tick,
    Issue {
        scope: String,
        request_id: String,
        service: String,
        priority: Option<String>,
        /// A fresh unguessable id chosen by the caller.
        ticket_id: String,
    },
    Next {
        counter: String,
        by: Option<String>,
    },
    Recall {
        counter: String,
        by: Option<String>,
    },
    Done {
        counter: String,
        by: Option<String>,
    },
    NoShow {
        counter: String,
        by: Option<String>,
    },
    Transfer {
        counter: String,
        by: Option<String>,
        service: String,
        front: bool,
    },
    Open {
        counter: String,
        by: Option<String>,
    },
    Close {
        counter: String,
        by: Option<String>,
    },
    Feedback {
        ticket: String,
        rating: u8,
        comment: Option<String>,
    },
}

/// Why a command was refused; maps one to one onto contract error codes.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    #[error("{0}")]
    BadRequest(String),
    #[error("Không có dịch vụ này (unknown service)")]
    UnknownService,
    #[error("Không có quầy này (unknown counter)")]
    UnknownCounter,
    #[error("Không tìm thấy số thứ tự này (unknown ticket)")]
    UnknownTicket,
    #[error("Không còn ai chờ (the queue is empty)")]
    QueueEmpty,
    #[error("Quầy đang đóng; mở quầy trước khi gọi số (the counter is closed)")]
    CounterClosed,
    #[error("Quầy chưa gọi số nào (nothing called at this counter)")]
    NothingCalled,
    #[error("Chỉ đánh giá được sau khi được phục vụ xong (not served yet)")]
    NotServed,
    #[error("Số này đã được đánh giá (already rated)")]
    AlreadyRated,
    #[error(
        "request_id đã dùng cho một yêu cầu khác (request_id reused with a different service or priority)"
    )]
    RequestIdReused,
}

impl Rejection {
    pub fn code(&self) -> &'static str {
        match self {
            Rejection::BadRequest(_) => "bad_request",
            Rejection::UnknownService => "unknown_service",
            Rejection::UnknownCounter => "unknown_counter",
            Rejection::UnknownTicket => "unknown_ticket",
            Rejection::QueueEmpty => "queue_empty",
            Rejection::CounterClosed => "counter_closed",
            Rejection::NothingCalled => "nothing_called",
            Rejection::NotServed => "not_served",
            Rejection::AlreadyRated => "already_rated",
            Rejection::RequestIdReused => "request_id_reused",
        }
    }
}

/// What a successful command is about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Subject {
    /// A ticket created, called or changed.
    Ticket(String),
    /// The same `request_id` again: the ticket it made, as it is now (may be archived).
    Replayed(String),
    Counter(String),
    Nothing,
}

/// The result of `State::apply`.
#[derive(Debug, Default)]
pub struct Applied {
    /// Events to persist, in order; may be non-empty even when the command was
    /// refused (a day rollover happened first).
    pub events: Vec<Event>,
    /// Days closed by this command, for the archive.
    pub archives: Vec<DayArchive>,
    pub result: Option<Result<Subject, Rejection>>,
}

/// The tickets of a day that just ended, as closed by the rollover.
#[derive(Debug, Clone)]
pub struct DayArchive {
    pub day: NaiveDate,
    pub tickets: Vec<TicketRec>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
struct IdemRec {
    ticket: String,
    service: String,
    priority: Option<String>,
    at: Millis,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct RecentCallRec {
    pub number: String,
    pub counter: String,
    pub service: String,
    pub at: Millis,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Queue {
    /// (bucket, order) -> ticket index.
    waiting: BTreeMap<(u8, u64), usize>,
    /// Waiting tickets per bucket.
    counts: Vec<u32>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct CounterState {
    open: bool,
    serving: Option<usize>,
    /// Priority calls in a row (rule 18).
    run: u32,
}

/// The whole live state of the site for the current day.
#[derive(Clone, Debug)]
pub struct State {
    site: Arc<Site>,
    day: Option<NaiveDate>,
    tickets: Vec<TicketRec>,
    by_id: HashMap<String, usize>,
    queues: Vec<Queue>,
    counters: Vec<CounterState>,
    numbers: Vec<u32>,
    idem: HashMap<(String, String), IdemRec>,
    order_seq: u64,
    recent: VecDeque<RecentCallRec>,
    /// Per service: service times (ms) of the last done tickets, and today's count.
    service_times: Vec<VecDeque<Millis>>,
    done_today: Vec<u32>,
}

/// The portable form of `State`, keyed by ids rather than indexes, so a
/// snapshot survives configuration changes.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct StateSnapshot {
    pub day: Option<NaiveDate>,
    pub tickets: Vec<TicketRec>,
    counters: Vec<(String, bool, Option<String>, u32)>,
    numbers: Vec<(String, u32)>,
    idem: Vec<(String, String, IdemRec)>,
    order_seq: u64,
    recent: Vec<RecentCallRec>,
    service_times: Vec<(String, Vec<Millis>, u32)>,
}

impl State {
    pub fn new(site: Arc<Site>) -> State {
        let ns = site.services.len();
        let nc = site.counters.len();
        let nb = site.classes.len() + 2;
        State {
            day: None,
            tickets: Vec::new(),
            by_id: HashMap::new(),
            queues: (0..ns)
                .map(|_| Queue {
                    waiting: BTreeMap::new(),
                    counts: vec![0; nb],
                })
                .collect(),
            counters: vec![
                CounterState {
                    open: true,
                    serving: None,
                    run: 0
                };
                nc
            ],
            numbers: vec![0; ns],
            idem: HashMap::new(),
            order_seq: 0,
            recent: VecDeque::new(),
            service_times: vec![VecDeque::new(); ns],
            done_today: vec![0; ns],
            site,
        }
    }

    pub fn site(&self) -> &Arc<Site> {
        &self.site
    }

    pub fn day(&self) -> Option<NaiveDate> {
        self.day
    }

    pub fn ticket(&self, id: &str) -> Option<&TicketRec> {
        self.by_id.get(id).map(|&i| &self.tickets[i])
    }

    pub fn tickets(&self) -> &[TicketRec] {
        &self.tickets
    }

    pub fn waiting_count(&self, service: usize) -> u32 {
        self.queues[service].waiting.len() as u32
    }

    pub fn serving(&self, counter: usize) -> Option<&TicketRec> {
        self.counters[counter].serving.map(|i| &self.tickets[i])
    }

    /// `true` when `now` belongs to a later day than the state's.
    pub fn rollover_due(&self, now: Millis) -> bool {
        let today = self.site.day_of(now);
        self.day.is_none_or(|d| today > d)
    }

    // ------------------------------------------------------------ commands

    /// Validates `cmd` at `now`, emits its events and applies them. A day
    /// rollover due at `now` is applied first, whatever the command.
    pub fn apply(&mut self, cmd: Command, now: Millis) -> Applied {
        let mut out = Applied::default();
        if self.rollover_due(now) {
            let day = self.site.day_of(now);
            self.record(Event::DayStarted { day, at: now }, &mut out);
        }
        let result = self.decide(cmd, now).map(|(events, subject)| {
            for e in events {
                self.record(e, &mut out);
            }
            subject
        });
        out.result = Some(result);
        out
    }

    /// Applies `e` and adds it (and the day it closes, if any) to `out`.
    fn record(&mut self, e: Event, out: &mut Applied) {
        if let Some(a) = self.apply_event(&e) {
            out.archives.push(a);
        }
        out.events.push(e);
    }

    // ------------------------------------------------------------ snapshots

    pub fn to_snapshot(&self) -> StateSnapshot {
        StateSnapshot {
            day: self.day,
            tickets: self.tickets.clone(),
            counters: self
                .site
                .counters
                .iter()
                .zip(&self.counters)
                .map(|(d, c)| {
                    (
                        d.id.clone(),
                        c.open,
                        c.serving.map(|i| self.tickets[i].id.clone()),
                        c.run,
                    )
                })
                .collect(),
            numbers: self
                .site
                .services
                .iter()
                .zip(&self.numbers)
                .map(|(d, n)| (d.id.clone(), *n))
                .collect(),
            idem: {
                let mut v: Vec<_> = self
                    .idem
                    .iter()
                    .map(|((s, r), rec)| (s.clone(), r.clone(), rec.clone()))
                    .collect();
                v.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
                v
            },
            order_seq: self.order_seq,
            recent: self.recent.iter().cloned().collect(),
            service_times: self
                .site
                .services
                .iter()
                .enumerate()
                .map(|(i, d)| {
                    (
                        d.id.clone(),
                        self.service_times[i].iter().copied().collect(),
                        self.done_today[i],
                    )
                })
                .collect(),
        }
    }

    pub fn from_snapshot(site: Arc<Site>, snap: StateSnapshot) -> State {
        let mut st = State::new(site);
        st.day = snap.day;
        st.order_seq = snap.order_seq;
        st.tickets = snap.tickets;
        for (i, t) in st.tickets.iter().enumerate() {
            st.by_id.insert(t.id.clone(), i);
        }
        for i in 0..st.tickets.len() {
            if st.tickets[i].status == TicketStatus::Waiting {
                st.enqueue(i);
            }
        }
        for (id, open, serving, run) in snap.counters {
            if let Some(c) = st.site.counter_idx(&id) {
                st.counters[c] = CounterState {
                    open,
                    serving: serving.and_then(|t| st.by_id.get(&t).copied()),
                    run,
                };
            }
        }
        for (id, n) in snap.numbers {
            if let Some(s) = st.site.service_idx(&id) {
                st.numbers[s] = n;
            }
        }
        for (scope, rid, rec) in snap.idem {
            st.idem.insert((scope, rid), rec);
        }
        st.recent = snap.recent.into_iter().collect();
        for (id, times, done) in snap.service_times {
            if let Some(s) = st.site.service_idx(&id) {
                st.service_times[s] = times.into_iter().collect();
                st.done_today[s] = done;
            }
        }
        st
    }
}
