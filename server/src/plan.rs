//! The planner: the hub's deciding half, pure. It owns the engine state and
//! turns a batch of requests and `now` into a `Plan`: the events with their
//! `seq`, the store batch that holds them (with archives and reports, daily
//! and visits, of a day that ended, and login sessions), one reply per request, and the
//! frames to send once the batch is durable. It never touches the store, a
//! socket or a clock; the hub's loop does the I/O (`hub/mod.rs`). After a
//! commit that did not happen, the loop hands it what the store holds and it
//! rebuilds.

use std::collections::HashMap;
use std::sync::Arc;

use luot_protocol::{
    Appointment, CounterInfo, DeviceInfo, EventKind, PrinterStatus, ServerMessage, Ticket,
    TicketStatus, WireEvent,
};

use crate::config::SiteConfig;
use crate::engine::{Applied, Command, Event, Millis, Rejection, Site, State, Subject};
use crate::frame::{Audience, Outgoing};
use crate::report;
use crate::store::{HookBody, Loaded, Record, Session, StoreError, WriteBatch};

#[cfg(test)]
#[path = "plan_notify_tests.rs"]
mod notify_tests;

/// What a command answers.
#[derive(Debug, Clone)]
pub enum Outcome {
    Ticket(Box<Ticket>),
    /// The same `request_id` again: the ticket as it is now.
    Replayed(Box<Ticket>),
    /// A replay of a ticket of a past day: the hub looks it up in the store.
    ReplayedArchived(String),
    Counter(Box<CounterInfo>),
    /// A booking as its maker sees it; `created` false for a replay or a
    /// cancel that changed nothing.
    Booking {
        appointment: Box<Appointment>,
        created: bool,
    },
    Nothing,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum HubError {
    #[error(transparent)]
    Rejected(#[from] Rejection),
    #[error(
        "Hệ thống tạm thời không lưu được dữ liệu; vui lòng thử lại (the store cannot be written: {0})"
    )]
    Unavailable(String),
}

pub type Reply = Result<Outcome, HubError>;

/// A change in a device's connection or printer (not durable).
#[derive(Debug, Clone, Copy)]
pub enum DeviceUpdate {
    Connected,
    Disconnected,
    Seen,
    Printer(PrinterStatus),
}

/// One request to the hub that changes something.
#[derive(Debug)]
pub enum Input {
    Command(Command),
    Session {
        token_hash: String,
        session: Session,
    },
    Device {
        id: String,
        update: DeviceUpdate,
    },
}

/// What a batch of inputs does, decided before anything is written.
#[derive(Debug)]
pub struct Plan {
    /// Everything to store, in one atomic commit.
    pub batch: WriteBatch,
    /// One per input, in order: `None` for device updates (nobody waits).
    pub replies: Vec<Option<Reply>>,
    /// The public events' frames, in seq order: sent once durable.
    pub frames: Vec<Outgoing>,
    /// Device frames (admins only): not durable, sent in any case.
    pub device_frames: Vec<Outgoing>,
    /// Tickets issued by this batch.
    pub issued: u64,
    /// A new day started in this batch.
    pub day_started: bool,
    /// Phone alerts due once the batch is durable (rule 91).
    pub notices: Vec<Notice>,
}

/// A phone alert the planner found due (rule 91): what happened to which
/// ticket, never where it goes (the notifier opens the contacts).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    pub ticket: String,
    pub kind: NoticeKind,
    pub number: String,
    /// `near`: the position; `called`: null.
    pub position: Option<u32>,
    pub service_name: String,
    /// `called`: the counter's name; `near`: empty.
    pub counter_name: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NoticeKind {
    Near,
    Called,
}

impl NoticeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            NoticeKind::Near => "near",
            NoticeKind::Called => "called",
        }
    }
}

/// What the planner remembers of a ticket with alerts (in memory): its
/// wait (the latest line join of its steps), its position when last
/// seen, whether this wait's `near` went.
#[derive(Debug, Clone, Copy)]
struct Watch {
    wait: u64,
    position: Option<u32>,
    near_sent: bool,
}

/// A device's live status (kept in memory; a restart forgets it).
#[derive(Default, Clone, Debug)]
struct DeviceLive {
    connections: u32,
    printer: Option<PrinterStatus>,
    last_seen: Option<Millis>,
}

/// The deciding half of the hub (see the module doc).
pub struct Planner {
    state: State,
    config: Arc<SiteConfig>,
    /// The last public seq planned (committed once the plan is).
    last_seq: u64,
    devices: HashMap<String, DeviceLive>,
    /// Tickets with alerts, as last seen (rule 91).
    watches: HashMap<String, Watch>,
}

impl Planner {
    /// The state the store's records rebuild.
    pub fn new(config: Arc<SiteConfig>, loaded: Loaded) -> Result<Planner, StoreError> {
        let site = Site::from_config(&config);
        let (state, last_seq) = rebuild(&site, loaded)?;
        let devices = config
            .devices
            .iter()
            .map(|d| (d.id.clone(), DeviceLive::default()))
            .collect();
        let mut planner = Planner {
            state,
            config,
            last_seq,
            devices,
            watches: HashMap::new(),
        };
        planner.watch_all();
        Ok(planner)
    }

    /// Throws away what was planned since the store last took a batch and
    /// starts again from what it holds.
    pub fn rebuild(&mut self, loaded: Loaded) -> Result<(), StoreError> {
        let (state, last_seq) = rebuild(self.state.site(), loaded)?;
        self.state = state;
        self.last_seq = last_seq;
        self.watch_all();
        Ok(())
    }

    pub fn state(&self) -> &State {
        &self.state
    }

    pub fn config(&self) -> &Arc<SiteConfig> {
        &self.config
    }

    /// The last public seq.
    pub fn seq(&self) -> u64 {
        self.last_seq
    }

    /// Plans a batch: applies each input to the state in order.
    pub fn plan(&mut self, inputs: Vec<Input>, now: Millis) -> Plan {
        let mut plan = Plan {
            batch: WriteBatch::new(self.last_seq),
            replies: Vec::with_capacity(inputs.len()),
            frames: Vec::new(),
            device_frames: Vec::new(),
            issued: 0,
            day_started: false,
            notices: Vec::new(),
        };
        for input in inputs {
            let reply = match input {
                Input::Command(cmd) => Some(self.command(cmd, now, &mut plan)),
                Input::Session {
                    token_hash,
                    session,
                } => {
                    plan.batch.sessions.push((token_hash, session));
                    Some(Ok(Outcome::Nothing))
                }
                Input::Device { id, update } => {
                    plan.device_frames.extend(self.device(&id, update, now));
                    None
                }
            };
            plan.replies.push(reply);
        }
        self.near(&mut plan);
        plan
    }

    fn command(&mut self, cmd: Command, now: Millis, plan: &mut Plan) -> Reply {
        let Applied {
            events,
            wire,
            archives,
            result,
        } = self.state.apply(cmd, now);
        let booked = events
            .iter()
            .any(|e| matches!(e, Event::AppointmentBooked { .. }));
        for (e, w) in events.into_iter().zip(wire) {
            self.record(e, w, now, plan);
        }
        for a in archives {
            let day = a.day.to_string();
            plan.day_started = true;
            let r = report::daily(&self.config, &day, &a.tickets);
            let v = report::visits(&self.config, &day, &a.tickets);
            plan.batch.visits.push((day.clone(), v));
            plan.batch.reports.push((day, r));
            plan.batch.archived.extend(a.tickets);
        }
        match result {
            Some(Ok(subject)) => Ok(self.outcome(subject, booked)),
            Some(Err(r)) => Err(HubError::Rejected(r)),
            None => Ok(Outcome::Nothing),
        }
    }

    /// Numbers an applied event, adds its frame (as the engine rendered it)
    /// and adds it to the batch.
    fn record(&mut self, e: Event, w: Option<WireEvent>, now: Millis, plan: &mut Plan) {
        match &e {
            Event::TicketIssued { .. } => plan.issued += 1,
            // Day keys live apart from the log and die with their day (rule 81).
            Event::DayKey { day, key } => {
                plan.batch.day_keys.push((*day, key.0));
                return;
            }
            Event::DayStarted { day, .. } => plan.batch.drop_keys_before = Some(*day),
            Event::TicketCalled { id, counter, .. } => self.called(id, counter, plan),
            _ => {}
        }
        let maker = e
            .appointment_id()
            .and_then(|id| self.state.appointment(id))
            .map(|a| a.scope.clone());
        let seq = e.is_public().then(|| {
            self.last_seq += 1;
            self.last_seq
        });
        if let (Some(seq), Some(w)) = (seq, w) {
            if let Some(h) = self.hook_body(seq, &w, now) {
                plan.batch.hooks.push(h);
            }
            plan.frames.push(Outgoing {
                urgent: urgent(&w),
                message: ServerMessage::Event { seq, event: w },
                audience: Audience::Everyone,
                maker,
            });
        }
        plan.batch.records.push(Record { seq, event: e });
    }

    /// Rule 89: the body POSTed to webhooks for an event, when one takes
    /// its kind: `{"site","seq","type","timestamp","event"}` with the event
    /// as admins get it. Stored in the event's commit (the outbox), so a
    /// restart delivers exactly these bytes.
    fn hook_body(&self, seq: u64, w: &WireEvent, now: Millis) -> Option<HookBody> {
        if !self.config.webhooks.iter().any(|h| h.takes(w.kind)) {
            return None;
        }
        #[derive(serde::Serialize)]
        struct Body<'a> {
            site: &'a str,
            seq: u64,
            #[serde(rename = "type")]
            kind: EventKind,
            timestamp: &'a str,
            event: &'a WireEvent,
        }
        let stamp;
        let timestamp = match &w.at {
            Some(at) => at.as_str(),
            None => {
                stamp = self.state.site().fmt_time(now);
                stamp.as_str()
            }
        };
        let body = serde_json::to_vec(&Body {
            site: &self.config.site.id,
            seq,
            kind: w.kind,
            timestamp,
            event: w,
        })
        .ok()?;
        Some(HookBody {
            seq,
            at: now,
            kind: crate::config::webhooks_kind_name(w.kind),
            body,
        })
    }

    /// The answer for a successful command, rendered right after it.
    /// `booked`: the command made a booking (201, not 200).
    fn outcome(&self, subject: Subject, booked: bool) -> Outcome {
        let st = &self.state;
        match subject {
            Subject::Ticket(id) => match st.ticket(&id) {
                Some(t) => Outcome::Ticket(Box::new(st.render_ticket(t))),
                None => Outcome::Nothing,
            },
            Subject::Replayed(id) => match st.ticket(&id) {
                Some(t) => Outcome::Replayed(Box::new(st.render_ticket(t))),
                None => Outcome::ReplayedArchived(id),
            },
            Subject::Counter(id) => match st.counter_info(&id) {
                Some(c) => Outcome::Counter(Box::new(c)),
                None => Outcome::Nothing,
            },
            Subject::Booking(id) => self.booking(&id, booked),
            Subject::BookingReplayed(id) => self.booking(&id, false),
            Subject::Nothing => Outcome::Nothing,
        }
    }

    fn booking(&self, id: &str, created: bool) -> Outcome {
        match self.state.appointment(id) {
            Some(a) => Outcome::Booking {
                appointment: Box::new(self.state.render_appointment(a)),
                created,
            },
            None => Outcome::Nothing,
        }
    }

    fn device(&mut self, id: &str, update: DeviceUpdate, now: Millis) -> Option<Outgoing> {
        let d = self.devices.get_mut(id)?;
        let before = (d.connections > 0, d.printer);
        match update {
            DeviceUpdate::Connected => d.connections += 1,
            DeviceUpdate::Disconnected => d.connections = d.connections.saturating_sub(1),
            DeviceUpdate::Seen => {}
            DeviceUpdate::Printer(p) => {
                if d.printer != Some(p) {
                    tracing::info!(device = id, printer = ?p, "printer status");
                }
                d.printer = Some(p);
            }
        }
        d.last_seen = Some(now);
        if before == (d.connections > 0, d.printer) {
            return None;
        }
        Some(Outgoing {
            message: ServerMessage::Device {
                device: self.device_info(id)?,
            },
            audience: Audience::Admins,
            urgent: true,
            maker: None,
        })
    }

    /// A device's status for `/devices` and admin frames.
    pub fn device_info(&self, id: &str) -> Option<DeviceInfo> {
        let cfg = self.config.devices.iter().find(|d| d.id == id)?;
        let live = self.devices.get(id).cloned().unwrap_or_default();
        Some(DeviceInfo {
            id: cfg.id.clone(),
            role: cfg.role.as_str().into(),
            connected: live.connections > 0,
            printer: live.printer,
            last_seen: live.last_seen.map(|t| self.state.site().fmt_time(t)),
        })
    }

    /// A device's current printer status.
    pub fn printer(&self, id: &str) -> Option<PrinterStatus> {
        self.devices.get(id).and_then(|d| d.printer)
    }
}

/// Phone alerts (rule 91): `called` at each call, `near` when a batch
/// takes a waiting ticket's position to `near_position` or below (or finds
/// it there at registration), once per wait.
impl Planner {
    /// Takes every ticket with alerts as it is now, `near` counted as sent
    /// where it is already due (after a restart nothing goes twice).
    fn watch_all(&mut self) {
        let near = self.config.notify.near_position;
        let ids: Vec<String> = self.state.notified().map(str::to_string).collect();
        self.watches.clear();
        for id in ids {
            if let Some((wait, position)) = self.where_now(&id) {
                let near_sent = position.is_some_and(|p| p <= near);
                self.watches.insert(
                    id,
                    Watch {
                        wait,
                        position,
                        near_sent,
                    },
                );
            }
        }
    }

    /// A ticket's wait and its position if waiting.
    fn where_now(&self, id: &str) -> Option<(u64, Option<u32>)> {
        let t = self.state.ticket(id)?;
        let wait = t.steps.iter().map(|s| s.join).max().unwrap_or(0);
        let view = self.state.render_ticket(t);
        let position = match view.status {
            TicketStatus::Waiting => view.position,
            _ => None,
        };
        Some((wait, position))
    }

    fn called(&mut self, id: &str, counter: &str, plan: &mut Plan) {
        if !self.state.notified().any(|n| n == id) {
            return;
        }
        let Some(t) = self.state.ticket(id) else {
            return;
        };
        let view = self.state.render_ticket(t);
        plan.notices.push(Notice {
            ticket: id.to_string(),
            kind: NoticeKind::Called,
            number: view.number,
            position: None,
            service_name: self.service_name(&view.service),
            counter_name: self
                .config
                .counter(counter)
                .map_or_else(|| counter.to_string(), |c| c.name.clone()),
        });
    }

    fn service_name(&self, id: &str) -> String {
        self.config
            .service(id)
            .map_or_else(|| id.to_string(), |s| s.name.clone())
    }

    /// The `near` alerts a batch makes due.
    fn near(&mut self, plan: &mut Plan) {
        if self.state.notified().next().is_none() {
            self.watches.clear();
            return;
        }
        let near = self.config.notify.near_position;
        let ids: Vec<String> = self.state.notified().map(str::to_string).collect();
        self.watches.retain(|id, _| ids.contains(id));
        for id in ids {
            let Some((wait, position)) = self.where_now(&id) else {
                continue;
            };
            let w = self.watches.entry(id.clone()).or_insert(Watch {
                wait,
                position: None,
                near_sent: false,
            });
            if w.wait != wait {
                // A new line join (rule 50): a new wait.
                *w = Watch {
                    wait,
                    position: None,
                    near_sent: false,
                };
            }
            let was_above = w.position.is_none_or(|p| p > near);
            w.position = position;
            let Some(p) = position.filter(|&p| p <= near) else {
                continue;
            };
            if !was_above || w.near_sent {
                continue;
            }
            w.near_sent = true;
            let Some(t) = self.state.ticket(&id) else {
                continue;
            };
            let view = self.state.render_ticket(t);
            plan.notices.push(Notice {
                ticket: id,
                kind: NoticeKind::Near,
                number: view.number,
                position: Some(p),
                service_name: self.service_name(&view.service),
                counter_name: String::new(),
            });
        }
    }
}

/// Rules 46 and 55: calls, recalls, counter and day changes, and what
/// changes a counter's `serving` (sent, step finished, held, cancelled) go
/// to screens at once; list updates may wait to share a write.
fn urgent(w: &WireEvent) -> bool {
    !matches!(
        w.kind,
        EventKind::TicketIssued
            | EventKind::TicketDone
            | EventKind::TicketNoShow
            | EventKind::TicketTransferred
            | EventKind::TicketRequeued
            | EventKind::AppointmentBooked
            | EventKind::AppointmentCancelled
            | EventKind::AppointmentCheckedIn
            | EventKind::AppointmentExpired
    )
}

/// Rebuilds the state from the latest snapshot plus the records after it,
/// and checks that `seq` has no gap. Returns the state and its last seq.
fn rebuild(site: &Arc<Site>, loaded: Loaded) -> Result<(State, u64), StoreError> {
    let (mut state, mut last_seq) = match loaded.snapshot {
        Some(s) => (State::from_snapshot(site.clone(), s.state), s.seq),
        None => (State::new(site.clone()), 0),
    };
    for (day, key) in loaded.day_keys {
        state.apply_event(&Event::DayKey {
            day,
            key: crate::engine::identity::Fresh(key),
        });
    }
    for rec in loaded.records {
        if let Some(seq) = rec.seq {
            if seq != last_seq + 1 {
                return Err(StoreError::Corrupt(format!(
                    "seq jumps from {last_seq} to {seq}"
                )));
            }
            last_seq = seq;
        }
        state.apply_event(&rec.event);
    }
    Ok((state, last_seq))
}
