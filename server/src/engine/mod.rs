//! The queue engine: pure state and rules, no I/O.
//!
//! `State::apply(command, now)` validates a command against the current state,
//! produces the events it causes, applies them and renders each one as clients
//! see it; `State::apply_event` is the only code that mutates state, so
//! replaying the event log rebuilds exactly the same state. This module owns
//! numbering, the day reset, visits with several stops (§9), the priority and
//! returning ratios, the calling policies, transfer, hold, requeue, cancel,
//! positions and wait estimates. It never reads a clock, a socket, a disk or a
//! random number generator: the caller passes `now` and fresh ticket ids in.
//!
//! A ticket is a visit of one or more steps (`StepRec`); a step waiting is in
//! one line (`lines.rs`). This file holds the types, `State`'s accessors,
//! `apply` and the snapshots; `commands.rs` decides commands, `events.rs`
//! applies events, `lines.rs` keeps the waiting lines, `order.rs` is the call
//! order and `render.rs` the wire views. §11 (appointments, identity,
//! capacity): `ledger.rs` keeps the bookings and what is counted,
//! `identity.rs` the checks, hashes and codes, `capacity.rs` sessions,
//! caps and slots, `appointments.rs` booking, cancelling, check-in and
//! expiry. §12: `notify.rs` a ticket's alert contacts and their seal under
//! the day's key; `commands.rs` decides `/notify` and its erasure.

#[cfg(test)]
mod appointment_tests;
mod appointments;
mod capacity;
mod commands;
mod events;
pub mod identity;
pub mod ledger;
mod lines;
pub mod notify;
mod order;
pub mod render;
#[cfg(test)]
mod test_site;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod visit_tests;

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use chrono::{DateTime, Duration, NaiveDate, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;
use luot_protocol::{TicketStatus, WireEvent};
use serde::{Deserialize, Serialize};

use crate::config::{AgeClass, Appointments, IdentityRule, Policy, Session, SiteConfig, WalkIns};
use identity::Fresh;
pub use ledger::ListFilter;
use ledger::{AppointmentRec, Bookings, Counted};
use lines::Lines;
use luot_protocol::Identity;

/// Milliseconds since the Unix epoch, UTC.
pub type Millis = i64;

/// How many done steps the wait estimate averages over (rule 20).
pub const ESTIMATE_WINDOW: usize = 20;
/// How many done steps a service needs today before it estimates (rule 20).
pub const ESTIMATE_MIN_DONE: u32 = 3;
/// Replays of a `request_id` are recognised this long (contract says ≥ 24 h).
pub const IDEMPOTENCY_KEEP_MS: Millis = 48 * 3600 * 1000;
/// Length of `recent_calls`.
pub const RECENT_CALLS: usize = 10;
/// Length of a service's `returning` list on the board (rule 56).
pub const RETURNING_SHOWN: usize = 10;

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
    /// How long after a no-show a requeue is allowed (rule 63).
    pub no_show_grace_ms: Millis,
    /// Calls a ticket needs before a no-show (rule 63).
    pub min_calls: u32,
    /// `[appointments]` (rule 76).
    pub appointments: Appointments,
    /// `max_tickets_per_person_per_day` (rule 82; 0: no cap).
    pub person_cap: u32,
    /// `age_priority`, less classes the site does not list (rule 80).
    pub age_priority: Vec<AgeClass>,
}

#[derive(Debug, Clone)]
pub struct ServiceDef {
    pub id: String,
    pub name: String,
    pub prefix: String,
    pub digits: u8,
    /// Tickets a day, all sessions together (rule 74).
    pub daily_cap: Option<u32>,
    pub walk_ins: WalkIns,
    pub identity: IdentityRule,
    /// Never empty: a service without sessions has one, `day`, all day.
    pub sessions: Vec<Session>,
}

#[derive(Debug, Clone)]
pub struct CounterDef {
    pub id: String,
    pub name: String,
    /// Indexes into `Site::services`, in order of preference.
    pub services: Vec<usize>,
    pub policy: Policy,
    /// 0: returning steps first; N: up to N in a row, then one other (rule 53).
    pub returning_ratio: u32,
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
                daily_cap: s.daily_cap,
                walk_ins: s.walk_ins,
                identity: s.identity,
                sessions: match s.sessions.is_empty() {
                    true => vec![whole_day(cfg.site.day_starts_at)],
                    false => s.sessions.clone(),
                },
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
                policy: c.policy.unwrap_or(cfg.queue.policy),
                returning_ratio: c.returning_ratio.unwrap_or(cfg.queue.returning_ratio),
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
            no_show_grace_ms: Millis::from(cfg.queue.no_show_grace_min) * 60_000,
            min_calls: cfg.queue.min_calls_before_no_show,
            appointments: cfg.appointments.clone(),
            person_cap: cfg.identity.max_tickets_per_person_per_day,
            age_priority: cfg
                .identity
                .age_priority
                .iter()
                .filter(|a| cfg.priority.classes.contains(&a.class))
                .cloned()
                .collect(),
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

    /// Bucket of a waiting step: 0 for joined ahead (rule 36), 1 + class
    /// index for priority, `classes.len() + 1` for normal.
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

    /// The one place a ticket number's text is made.
    pub fn number(&self, service: usize, n: u32) -> String {
        let s = &self.services[service];
        format!("{}{:0width$}", s.prefix, n, width = s.digits as usize)
    }
}

/// The one session of a service that sets none (rule 73): the whole day.
fn whole_day(day_starts_at: NaiveTime) -> Session {
    Session {
        id: "day".into(),
        start: day_starts_at,
        end: day_starts_at,
        cap: None,
        appointment_quota: 0,
        slot_minutes: 30,
        slot_capacity: None,
    }
}

/// One step of a visit (§9): a stop in one service, maybe at one counter.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct StepRec {
    pub stage: u32,
    pub service: String,
    /// The counter that calls, holds or finished it; a bound step's counter.
    pub counter: Option<String>,
    /// Only `counter` may call it (rule 47).
    pub bound: bool,
    /// Back to the room that sent it, ahead of new patients (rule 53).
    pub returning: bool,
    pub status: TicketStatus,
    /// Joined ahead of everything (a `front: true` transfer or requeue).
    pub front: bool,
    /// Place in its line: the time it joined, then `join`, then its index.
    pub place_at: Millis,
    /// The join it was placed by (one number per event that placed steps).
    pub join: u64,
    pub waiting_since: Option<Millis>,
    pub first_joined_at: Option<Millis>,
    pub first_called_at: Option<Millis>,
    pub called_at: Option<Millis>,
    pub finished_at: Option<Millis>,
    pub held_at: Option<Millis>,
    /// 1 at a call, +1 per recall, 0 once it joins a line again.
    pub calls: u32,
    /// Why it is held or cancelled.
    pub reason: Option<String>,
    /// Who finished it (username), for the staff report.
    pub finished_by: Option<String>,
    /// Left `no_show` by a no-show at its counter (rule 63: requeue takes it).
    pub no_show: bool,
}

impl StepRec {
    /// A step of `service` at `stage` that has not joined a line yet.
    pub fn pending(stage: u32, service: String) -> StepRec {
        StepRec {
            stage,
            service,
            counter: None,
            bound: false,
            returning: false,
            status: TicketStatus::Pending,
            front: false,
            place_at: 0,
            join: 0,
            waiting_since: None,
            first_joined_at: None,
            first_called_at: None,
            called_at: None,
            finished_at: None,
            held_at: None,
            calls: 0,
            reason: None,
            finished_by: None,
            no_show: false,
        }
    }
}

/// A ticket as the engine keeps it: a visit of one or more steps.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(from = "StoredTicket")]
pub struct TicketRec {
    pub id: String,
    pub number: String,
    /// The number's value within its service and day (`number` is its text).
    pub n: u32,
    /// The service it was issued for (reports count waits here).
    pub issued_service: String,
    pub priority: Option<String>,
    pub issued_at: Millis,
    pub day: NaiveDate,
    /// Sent at least once: clients see its `visit` (rule 47).
    pub visit: bool,
    /// Why it was cancelled (rule 64).
    pub cancelled: Option<String>,
    /// In the order added; listed by stage, then this order (rule 50).
    pub steps: Vec<StepRec>,
    pub rating: Option<u8>,
    pub comment: Option<String>,
    /// The booking it checked in (rule 78).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub appointment: Option<String>,
    /// The booking's reference (rule 87).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_ref: Option<String>,
    /// The person's hash under the day's key (rule 81); erased when the day
    /// closes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub person: Option<String>,
    /// The session it counts in (rule 73).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<String>,
}

/// A ticket as stored, of any age: records written before visits had one
/// step's fields at the top level, and no `n` before numbers were integers.
#[derive(Deserialize)]
struct StoredTicket {
    id: String,
    number: String,
    #[serde(default)]
    n: u32,
    issued_service: String,
    #[serde(default)]
    priority: Option<String>,
    issued_at: Millis,
    day: NaiveDate,
    #[serde(default)]
    visit: bool,
    #[serde(default)]
    cancelled: Option<String>,
    #[serde(default)]
    steps: Vec<StepRec>,
    #[serde(default)]
    rating: Option<u8>,
    #[serde(default)]
    comment: Option<String>,
    #[serde(default)]
    appointment: Option<String>,
    #[serde(default)]
    external_ref: Option<String>,
    #[serde(default)]
    person: Option<String>,
    #[serde(default)]
    session: Option<String>,
    #[serde(flatten)]
    legacy: LegacyStep,
}

/// The one step of a ticket stored before visits existed.
#[derive(Deserialize, Default)]
struct LegacyStep {
    #[serde(default)]
    service: Option<String>,
    #[serde(default)]
    status: Option<TicketStatus>,
    #[serde(default)]
    counter: Option<String>,
    #[serde(default)]
    called_at: Option<Millis>,
    #[serde(default)]
    first_called_at: Option<Millis>,
    #[serde(default)]
    finished_at: Option<Millis>,
    #[serde(default)]
    order: Option<u64>,
    #[serde(default)]
    front: Option<bool>,
    #[serde(default)]
    finished_by: Option<String>,
}

impl From<StoredTicket> for TicketRec {
    fn from(s: StoredTicket) -> TicketRec {
        let n = match s.n {
            0 => legacy_number_value(&s.number),
            n => n,
        };
        let steps = if s.steps.is_empty() {
            vec![legacy_step(&s.issued_service, s.issued_at, s.legacy)]
        } else {
            s.steps
        };
        TicketRec {
            id: s.id,
            number: s.number,
            n,
            issued_service: s.issued_service,
            priority: s.priority,
            issued_at: s.issued_at,
            day: s.day,
            visit: s.visit,
            cancelled: s.cancelled,
            steps,
            rating: s.rating,
            comment: s.comment,
            appointment: s.appointment,
            external_ref: s.external_ref,
            person: s.person,
            session: s.session,
        }
    }
}

fn legacy_step(issued_service: &str, issued_at: Millis, l: LegacyStep) -> StepRec {
    let status = l.status.unwrap_or(TicketStatus::Waiting);
    StepRec {
        stage: 1,
        service: l.service.unwrap_or_else(|| issued_service.to_string()),
        counter: l.counter,
        bound: false,
        returning: false,
        status,
        front: l.front.unwrap_or(false),
        place_at: issued_at,
        join: l.order.unwrap_or(0),
        waiting_since: Some(issued_at),
        first_joined_at: Some(issued_at),
        first_called_at: l.first_called_at,
        called_at: l.called_at,
        finished_at: l.finished_at,
        held_at: None,
        calls: u32::from(status == TicketStatus::Called),
        reason: None,
        finished_by: l.finished_by,
        no_show: status == TicketStatus::NoShow,
    }
}

/// The value of a number stored before tickets carried it as an integer
/// (`A015` → 15, whatever the prefix). Only for reading old records.
fn legacy_number_value(number: &str) -> u32 {
    let digits = number.trim_start_matches(|c: char| !c.is_ascii_digit());
    digits.parse().unwrap_or(0)
}

/// A step added by `send`, as the event stores it (stages absolute).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct NewStep {
    pub stage: u32,
    pub service: String,
    /// Bound to this counter (rule 47).
    pub counter: Option<String>,
    pub returning: bool,
}

/// What the engine persists: every state change is one of these. The
/// `step` of a ticket event is the index (in the order added) of the step
/// it acts on; records written before visits have 0, their only step.
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
        #[serde(default)]
        step: usize,
        by: Option<String>,
        at: Millis,
    },
    TicketRecalled {
        id: String,
        counter: String,
        #[serde(default)]
        step: usize,
        by: Option<String>,
        at: Millis,
    },
    TicketDone {
        id: String,
        counter: String,
        #[serde(default)]
        step: usize,
        by: Option<String>,
        at: Millis,
    },
    TicketNoShow {
        id: String,
        counter: String,
        #[serde(default)]
        step: usize,
        by: Option<String>,
        at: Millis,
    },
    TicketTransferred {
        id: String,
        counter: String,
        #[serde(default)]
        step: usize,
        from_service: String,
        service: String,
        front: bool,
        order: u64,
        by: Option<String>,
        at: Millis,
    },
    /// The step called at `counter` is done and `stops` are added; steps
    /// at later stages move back by `shift` (rule 49).
    TicketSent {
        id: String,
        counter: String,
        step: usize,
        stops: Vec<NewStep>,
        shift: u32,
        by: Option<String>,
        at: Millis,
    },
    TicketHeld {
        id: String,
        counter: String,
        step: usize,
        reason: String,
        by: Option<String>,
        at: Millis,
    },
    TicketRequeued {
        id: String,
        counter: String,
        step: usize,
        front: bool,
        by: Option<String>,
        at: Millis,
    },
    TicketCancelled {
        id: String,
        counter: String,
        reason: String,
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
    AppointmentBooked {
        appointment: AppointmentRec,
    },
    AppointmentCancelled {
        id: String,
        by: Option<String>,
        at: Millis,
    },
    AppointmentCheckedIn {
        id: String,
        ticket: String,
        at: Millis,
    },
    AppointmentExpired {
        id: String,
        at: Millis,
    },
    /// A day's key for person hashes (rule 81). Not a queue event and never
    /// in the log: the store keeps it apart and erases it when the next day
    /// starts.
    DayKey {
        day: NaiveDate,
        key: Fresh,
    },
    /// A ticket's alert contacts, sealed under its day's key (rule 94);
    /// `counted`: a `/notify` call (not a dropped subscription). Private.
    NotifySet {
        id: String,
        sealed: String,
        sms: bool,
        push: u8,
        counted: bool,
    },
    /// `DELETE /tickets/{id}/notify`: its contacts erased. Private.
    NotifyErased {
        id: String,
    },
    /// The site's VAPID private key (rule 93), made once. Private.
    VapidKey {
        key: Fresh,
    },
}

impl Event {
    /// Queue events get a `seq` and go to every client; the rest are private.
    pub fn is_public(&self) -> bool {
        !matches!(
            self,
            Event::FeedbackGiven { .. }
                | Event::DayKey { .. }
                | Event::NotifySet { .. }
                | Event::NotifyErased { .. }
                | Event::VapidKey { .. }
        )
    }

    /// The booking an `appointment_*` event is about.
    pub fn appointment_id(&self) -> Option<&str> {
        match self {
            Event::AppointmentBooked { appointment } => Some(&appointment.id),
            Event::AppointmentCancelled { id, .. }
            | Event::AppointmentCheckedIn { id, .. }
            | Event::AppointmentExpired { id, .. } => Some(id),
            _ => None,
        }
    }

    /// The ticket an event is about.
    pub fn ticket_id(&self) -> Option<&str> {
        match self {
            Event::TicketIssued { ticket, .. } => Some(&ticket.id),
            Event::TicketCalled { id, .. }
            | Event::TicketRecalled { id, .. }
            | Event::TicketDone { id, .. }
            | Event::TicketNoShow { id, .. }
            | Event::TicketTransferred { id, .. }
            | Event::TicketSent { id, .. }
            | Event::TicketHeld { id, .. }
            | Event::TicketRequeued { id, .. }
            | Event::TicketCancelled { id, .. }
            | Event::FeedbackGiven { id, .. } => Some(id),
            _ => None,
        }
    }
}

/// A booking as asked (rule 76), fields checked by the caller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BookCmd {
    pub scope: String,
    pub request_id: String,
    /// The device id or username that books.
    pub by: String,
    pub service: String,
    pub slot_at: Millis,
    pub priority: Option<String>,
    pub external_ref: Option<String>,
    pub identity: Option<Identity>,
    /// A fresh unguessable booking id chosen by the caller.
    pub appointment_id: String,
    /// Random bytes for a day key, if one is needed.
    pub fresh: Fresh,
    /// Random bytes for its code.
    pub code_seed: Fresh,
}

/// The booking a check-in names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Booking {
    Code(String),
    Id(String),
}

/// A check-in as asked (rule 78), fields checked by the caller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckInCmd {
    pub scope: String,
    pub request_id: String,
    pub booking: Booking,
    pub identity: Option<Identity>,
    /// An integration's scope: it checks in only bookings it made.
    pub only: Option<String>,
    /// At a kiosk: a booking made with an identity needs one (rule 82).
    pub kiosk: bool,
    pub ticket_id: String,
    pub fresh: Fresh,
}

/// `POST /tickets/{id}/notify` (rules 93–94), fields checked by the caller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NotifyCmd {
    pub ticket: String,
    pub contacts: notify::Contacts,
    /// A channel asked for is off in `[notify]` (409 `notify_off`).
    pub off: bool,
    /// Random bytes for a day key, if one is needed.
    pub fresh: Fresh,
    /// The seal's nonce.
    pub nonce: [u8; 12],
}

/// A ticket named in a counter action: by id or by today's number (rule 60).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Named {
    Id(String),
    Number(String),
}

/// A stop of a `send`, as asked (rule 49).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StopReq {
    pub service: String,
    pub counter: Option<String>,
    pub stage: Option<u32>,
}

/// A command from staff, a kiosk or the clock.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// Lets the day roll over without any other activity.
    Tick,
    /// `POST /tickets/{id}/notify`.
    Notify(Box<NotifyCmd>),
    /// `DELETE /tickets/{id}/notify`.
    NotifyErase {
        ticket: String,
    },
    /// A push service answered 404 or 410: the subscription goes (rule 93).
    NotifyDrop {
        ticket: String,
        endpoint: String,
        nonce: [u8; 12],
    },
    /// Keeps the site's VAPID key unless it has one (rule 93).
    VapidKey {
        key: Fresh,
    },
    Issue {
        scope: String,
        request_id: String,
        service: String,
        priority: Option<String>,
        /// A fresh unguessable id chosen by the caller.
        ticket_id: String,
        /// A scanned CCCD's fields (rule 80), checked by the caller.
        identity: Option<Identity>,
        /// A kiosk's or integration's walk-in: sessions, caps, `walk_ins`,
        /// `identity` and the per-person cap apply (rules 73–75, 82).
        limited: bool,
        /// The caller's reference (rule 87), checked by the caller.
        external_ref: Option<String>,
        /// Random bytes for a day key, if one is needed.
        fresh: Fresh,
    },
    /// `POST /appointments` (rule 76).
    Book(Box<BookCmd>),
    /// `POST /appointments/{id}/cancel`.
    CancelBooking {
        id: String,
        /// An integration's scope: it sees only bookings it made.
        only: Option<String>,
        by: Option<String>,
    },
    /// `POST /appointments/check-in` and the kiosk's `check_in` (rule 78).
    CheckIn(Box<CheckInCmd>),
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
    Send {
        counter: String,
        by: Option<String>,
        stops: Vec<StopReq>,
        return_here: bool,
        ticket: Option<String>,
    },
    Call {
        counter: String,
        by: Option<String>,
        ticket: Named,
    },
    Hold {
        counter: String,
        by: Option<String>,
        reason: String,
        ticket: Option<String>,
    },
    Requeue {
        counter: String,
        by: Option<String>,
        ticket: Named,
        front: bool,
    },
    Cancel {
        counter: String,
        by: Option<String>,
        reason: String,
        ticket: Option<Named>,
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
    #[error("Số này đang được phục vụ ở quầy khác (the ticket is at another counter)")]
    TicketBusy,
    #[error("Số này không chờ ở quầy này (the ticket is not waiting at this counter)")]
    NotCallable,
    #[error(
        "Không gọi lại được số này: không vắng mặt ở quầy này hôm nay hoặc đã quá thời gian cho phép (not requeueable)"
    )]
    NotRequeueable,
    #[error("Cần gọi thêm trước khi đánh dấu vắng mặt (too few calls before a no-show)")]
    TooFewCalls,
    #[error("Dịch vụ đã hết giờ lấy số hôm nay (the service takes no more walk-ins today)")]
    ServiceClosed,
    #[error(
        "Dịch vụ này chỉ nhận người có lịch hẹn (this service takes walk-ins only with an appointment or a priority class)"
    )]
    AppointmentRequired,
    #[error("Cần quét CCCD để lấy số dịch vụ này (this service needs the citizen ID card scanned)")]
    IdentityRequired,
    #[error(
        "Đã đủ số lượt lấy số hôm nay cho người này (this person holds as many numbers as allowed today)"
    )]
    PersonLimit,
    #[error("Dịch vụ đã hết số (the service is full)")]
    ServiceFull { next_open_at: Option<String> },
    #[error("Không có khung giờ hẹn này (no slot of this service starts then)")]
    UnknownSlot,
    #[error("Không tìm thấy lịch hẹn (unknown appointment)")]
    UnknownAppointment,
    #[error("Không còn nhận đặt lịch cho khung giờ này (booking is closed for that slot)")]
    BookingClosed,
    #[error("Khung giờ này đã kín lịch (the slot is full)")]
    SlotFull,
    #[error("Lịch hẹn đã bị huỷ (the appointment was cancelled)")]
    AppointmentCancelled,
    #[error("Lịch hẹn đã được lấy số {number} (already checked in)")]
    AlreadyCheckedIn { number: String },
    #[error("Lịch hẹn đã hết hạn (the appointment expired)")]
    AppointmentExpired,
    #[error("Chưa đến giờ nhận số cho lịch hẹn này (too early to check in)")]
    TooEarly { checkin_opens_at: String },
    #[error("CCCD không khớp với lịch hẹn (the identity does not match the booking)")]
    IdentityMismatch,
    #[error("Số này không còn chờ (the ticket is not waiting)")]
    NotWaiting,
    #[error("Nơi này chưa bật kênh báo đó (that alert channel is off at this site)")]
    NotifyOff,
    #[error("Đã đăng ký báo quá 3 lần cho số này (at most 3 alert requests per waiting ticket)")]
    TooManyAttempts,
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
            Rejection::TicketBusy => "ticket_busy",
            Rejection::NotCallable => "not_callable",
            Rejection::NotRequeueable => "not_requeueable",
            Rejection::TooFewCalls => "too_few_calls",
            Rejection::ServiceClosed => "service_closed",
            Rejection::AppointmentRequired => "appointment_required",
            Rejection::IdentityRequired => "identity_required",
            Rejection::PersonLimit => "person_limit",
            Rejection::ServiceFull { .. } => "service_full",
            Rejection::UnknownSlot => "unknown_slot",
            Rejection::UnknownAppointment => "unknown_appointment",
            Rejection::BookingClosed => "booking_closed",
            Rejection::SlotFull => "slot_full",
            Rejection::AppointmentCancelled => "appointment_cancelled",
            Rejection::AlreadyCheckedIn { .. } => "already_checked_in",
            Rejection::AppointmentExpired => "appointment_expired",
            Rejection::TooEarly { .. } => "too_early",
            Rejection::IdentityMismatch => "identity_mismatch",
            Rejection::NotWaiting => "not_waiting",
            Rejection::NotifyOff => "notify_off",
            Rejection::TooManyAttempts => "too_many_attempts",
        }
    }

    /// What the error object adds (§11): `next_open_at`, `number`,
    /// `checkin_opens_at`.
    pub fn extra(&self) -> serde_json::Map<String, serde_json::Value> {
        let mut m = serde_json::Map::new();
        match self {
            Rejection::ServiceFull { next_open_at } => {
                m.insert("next_open_at".into(), next_open_at.clone().into());
            }
            Rejection::ServiceClosed => {
                m.insert("next_open_at".into(), serde_json::Value::Null);
            }
            Rejection::AlreadyCheckedIn { number } => {
                m.insert("number".into(), number.clone().into());
            }
            Rejection::TooEarly { checkin_opens_at } => {
                m.insert("checkin_opens_at".into(), checkin_opens_at.clone().into());
            }
            _ => {}
        }
        m
    }

    /// Whether it is a 404.
    pub fn is_not_found(&self) -> bool {
        matches!(
            self,
            Rejection::UnknownService
                | Rejection::UnknownCounter
                | Rejection::UnknownTicket
                | Rejection::UnknownSlot
                | Rejection::UnknownAppointment
        )
    }
}

/// What a successful command is about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Subject {
    /// A ticket created, called or changed.
    Ticket(String),
    /// The same `request_id` again: the ticket it made, as it is now (may be archived).
    Replayed(String),
    /// A booking made or changed (or left as it was by a cancel).
    Booking(String),
    /// The same `request_id` again: the booking it made, as it is now.
    BookingReplayed(String),
    Counter(String),
    Nothing,
}

/// The result of `State::apply`.
#[derive(Debug, Default)]
pub struct Applied {
    /// Events to persist, in order; may be non-empty even when the command was
    /// refused (a day rollover happened first).
    pub events: Vec<Event>,
    /// Each event as clients see it, rendered right after it was applied
    /// (`None` for private events).
    pub wire: Vec<Option<WireEvent>>,
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
    /// The booking a check-in named.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    appointment: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct RecentCallRec {
    pub number: String,
    pub counter: String,
    pub service: String,
    pub at: Millis,
    #[serde(default)]
    pub returning: bool,
}

/// A step of a ticket: (ticket index, step index).
pub type StepRef = (usize, usize);

#[derive(Clone, Debug, PartialEq, Eq, Default)]
struct CounterState {
    open: bool,
    /// The step called here.
    serving: Option<StepRef>,
    /// Priority calls in a row (rule 18).
    run: u32,
    /// Returning calls in a row (rule 53).
    returning_run: u32,
    /// Steps held here, earliest hold first (rule 56).
    held: Vec<StepRef>,
}

/// The whole live state of the site for the current day.
#[derive(Clone, Debug)]
pub struct State {
    site: Arc<Site>,
    day: Option<NaiveDate>,
    tickets: Vec<TicketRec>,
    by_id: HashMap<String, usize>,
    by_number: HashMap<String, usize>,
    lines: Lines,
    counters: Vec<CounterState>,
    numbers: Vec<u32>,
    idem: HashMap<(String, String), IdemRec>,
    /// The last join number handed out (`StepRec::join`).
    order_seq: u64,
    recent: VecDeque<RecentCallRec>,
    /// Per service: service times (ms) of the last done steps, and today's count.
    service_times: Vec<VecDeque<Millis>>,
    done_today: Vec<u32>,
    /// Bookings kept and day keys (§11); they outlive the day.
    book: Bookings,
    /// The day's tickets per session and person (§11).
    counted: Counted,
    /// Today's tickets' alert contacts, sealed (rule 94); gone with the day.
    notify: HashMap<String, notify::NotifyRec>,
    /// The site's VAPID private key (rule 93); outlives the day.
    vapid: Option<[u8; 32]>,
}

/// The portable form of `State`, keyed by ids rather than indexes, so a
/// snapshot survives configuration changes. Lines and counters' called and
/// held steps are rebuilt from the tickets.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct StateSnapshot {
    pub day: Option<NaiveDate>,
    pub tickets: Vec<TicketRec>,
    /// (counter, open, (unused: the called ticket), priority run[, returning run]).
    counters: Vec<SnapCounter>,
    numbers: Vec<(String, u32)>,
    idem: Vec<(String, String, IdemRec)>,
    order_seq: u64,
    recent: Vec<RecentCallRec>,
    service_times: Vec<(String, Vec<Millis>, u32)>,
    /// Bookings kept (§11); day keys are never in a snapshot.
    #[serde(default)]
    appointments: Vec<AppointmentRec>,
    /// Today's tickets' sealed alert contacts (rule 94).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    notify: Vec<(String, notify::NotifyRec)>,
    /// The VAPID private key (rule 93).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    vapid: Option<Fresh>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(untagged)]
enum SnapCounter {
    Current(String, bool, u32, u32),
    /// Written before visits: (id, open, called ticket, run).
    Legacy(String, bool, Option<String>, u32),
}

impl State {
    pub fn new(site: Arc<Site>) -> State {
        let ns = site.services.len();
        let nc = site.counters.len();
        State {
            day: None,
            tickets: Vec::new(),
            by_id: HashMap::new(),
            by_number: HashMap::new(),
            lines: Lines::new(&site),
            counters: vec![
                CounterState {
                    open: true,
                    ..CounterState::default()
                };
                nc
            ],
            numbers: vec![0; ns],
            idem: HashMap::new(),
            order_seq: 0,
            recent: VecDeque::new(),
            service_times: vec![VecDeque::new(); ns],
            done_today: vec![0; ns],
            book: Bookings::default(),
            counted: Counted::default(),
            notify: HashMap::new(),
            vapid: None,
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

    /// Waiting steps of a service, busy ones included (rule 52).
    pub fn waiting_count(&self, service: usize) -> u32 {
        self.lines.waiting(service)
    }

    /// The ticket called at a counter.
    pub fn serving(&self, counter: usize) -> Option<&TicketRec> {
        self.counters[counter]
            .serving
            .map(|(t, _)| &self.tickets[t])
    }

    /// Whether a ticket has a step called: its waiting steps are busy (rule 51).
    fn busy(&self, t: usize) -> bool {
        self.tickets[t]
            .steps
            .iter()
            .any(|s| s.status == TicketStatus::Called)
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
            self.record(Event::DayStarted { day, at: now }, now, &mut out);
        }
        let result = self.decide(cmd, now).map(|(events, subject)| {
            for e in events {
                self.record(e, now, &mut out);
            }
            subject
        });
        out.result = Some(result);
        out
    }

    /// Applies `e`, renders it with the services it changed, and adds it
    /// (and the day it closes, if any) to `out`.
    fn record(&mut self, e: Event, now: Millis, out: &mut Applied) {
        let touched = self.touched_services(&e);
        let before: Vec<_> = touched
            .iter()
            .map(|&s| self.board_service(s, now))
            .collect();
        if let Some(a) = self.apply_event(&e) {
            out.archives.push(a);
        }
        let changed: Vec<_> = touched
            .iter()
            .zip(before)
            .filter_map(|(&s, b)| {
                let after = self.board_service(s, now);
                (after != b).then_some(after)
            })
            .collect();
        out.wire.push(self.render_event(&e, changed));
        out.events.push(e);
    }

    /// The services whose board entries an event may change.
    fn touched_services(&self, e: &Event) -> Vec<usize> {
        let mut out: Vec<usize> = Vec::new();
        let mut add = |id: &str| {
            if let Some(s) = self.site.service_idx(id)
                && !out.contains(&s)
            {
                out.push(s);
            }
        };
        if let Event::TicketIssued { ticket, .. } = e {
            add(&ticket.issued_service);
        }
        if let Some(t) = e.ticket_id().and_then(|id| self.ticket(id)) {
            for s in &t.steps {
                add(&s.service);
            }
        }
        match e {
            Event::TicketTransferred { service, .. } => add(service),
            Event::TicketSent { stops, .. } => stops.iter().for_each(|s| add(&s.service)),
            Event::AppointmentBooked { appointment } => add(&appointment.service),
            _ => {}
        }
        if let Some(a) = e.appointment_id().and_then(|id| self.book.get(id)) {
            add(&a.service);
        }
        out
    }

    // ------------------------------------------------------------ snapshots

    pub fn to_snapshot(&self) -> StateSnapshot {
        let by_service = |v: &[u32]| -> Vec<(String, u32)> {
            self.site
                .services
                .iter()
                .zip(v)
                .map(|(d, n)| (d.id.clone(), *n))
                .collect()
        };
        let mut idem: Vec<_> = self
            .idem
            .iter()
            .map(|((s, r), rec)| (s.clone(), r.clone(), rec.clone()))
            .collect();
        idem.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
        StateSnapshot {
            day: self.day,
            tickets: self.tickets.clone(),
            counters: self
                .site
                .counters
                .iter()
                .zip(&self.counters)
                .map(|(d, c)| SnapCounter::Current(d.id.clone(), c.open, c.run, c.returning_run))
                .collect(),
            numbers: by_service(&self.numbers),
            idem,
            order_seq: self.order_seq,
            recent: self.recent.iter().cloned().collect(),
            service_times: self
                .site
                .services
                .iter()
                .enumerate()
                .map(|(i, d)| {
                    let times = self.service_times[i].iter().copied().collect();
                    (d.id.clone(), times, self.done_today[i])
                })
                .collect(),
            appointments: self.appointment_list(),
            notify: {
                let mut n: Vec<_> = self
                    .notify
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                n.sort_by(|a, b| a.0.cmp(&b.0));
                n
            },
            vapid: self.vapid.map(Fresh),
        }
    }

    /// Every booking kept, by slot, then creation, then id.
    fn appointment_list(&self) -> Vec<AppointmentRec> {
        let mut all: Vec<AppointmentRec> = self.book.all().cloned().collect();
        all.sort_by(|a, b| (a.slot_at, a.created_at, &a.id).cmp(&(b.slot_at, b.created_at, &b.id)));
        all
    }

    pub fn from_snapshot(site: Arc<Site>, snap: StateSnapshot) -> State {
        let mut st = State::new(site);
        st.day = snap.day;
        st.order_seq = snap.order_seq;
        st.tickets = snap.tickets;
        for i in 0..st.tickets.len() {
            st.index_ticket(i);
            st.place_steps(i);
        }
        st.sort_held();
        for c in snap.counters {
            let (id, open, run, returning_run) = match c {
                SnapCounter::Current(id, open, run, rr) => (id, open, run, rr),
                SnapCounter::Legacy(id, open, _, run) => (id, open, run, 0),
            };
            if let Some(c) = st.site.counter_idx(&id) {
                let cs = &mut st.counters[c];
                (cs.open, cs.run, cs.returning_run) = (open, run, returning_run);
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
        for a in snap.appointments {
            st.book.insert(a);
        }
        st.notify = snap.notify.into_iter().collect();
        st.vapid = snap.vapid.map(|k| k.0);
        st
    }

    /// Puts a restored ticket's steps where they are: waiting ones in their
    /// lines, called and held ones at their counters.
    fn place_steps(&mut self, t: usize) {
        let mut held: Vec<(usize, usize)> = Vec::new();
        for k in 0..self.tickets[t].steps.len() {
            let s = &self.tickets[t].steps[k];
            let counter = s.counter.as_deref().and_then(|c| self.site.counter_idx(c));
            match (s.status, counter) {
                (TicketStatus::Waiting, _) => self.enqueue((t, k)),
                (TicketStatus::Called, Some(c)) => self.counters[c].serving = Some((t, k)),
                (TicketStatus::Held, Some(c)) => held.push((c, k)),
                _ => {}
            }
        }
        for (c, k) in held {
            self.counters[c].held.push((t, k));
        }
    }

    /// Each counter's held steps, earliest hold first.
    fn sort_held(&mut self) {
        let tickets = &self.tickets;
        for c in &mut self.counters {
            c.held.sort_by_key(|&(t, k)| tickets[t].steps[k].held_at);
        }
    }
}
