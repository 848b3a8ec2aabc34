//! Views of the engine state in wire form: tickets (and the steps of their
//! visits) with position and wait estimate, the board snapshot, `/site`,
//! and events as clients see them. Pure functions of the state; nothing
//! here changes it.

use luot_protocol::{
    AppointmentView, BoardCounter, BoardService, BoardState, CounterInfo, EventKind, RecentCall,
    Returning, SiteCounter, SiteInfo, SiteService, Step, Ticket, TicketStatus, Visit, WireEvent,
};

use super::lines::LineKey;
use super::{Event, Millis, RETURNING_SHOWN, Site, State, StepRec, StepRef, TicketRec};

/// Position and wait estimate of a waiting step.
type Where = (Option<u32>, Option<u64>);

impl State {
    /// Rules 19 and 52: 1 + the waiting steps ahead of it in its line.
    fn position(&self, r: StepRef) -> Option<u32> {
        if self.tickets[r.0].steps[r.1].status != TicketStatus::Waiting {
            return None;
        }
        let (key, place) = self.line_of(r)?;
        Some(self.lines.get(key)?.position(place))
    }

    /// Rules 20 and 52: position × mean service time of the service's last
    /// 20 done steps ÷ the open counters that can call it (1 for a bound
    /// step, none while its counter is closed); null without a basis.
    fn estimated_wait_s(&self, r: StepRef, position: Option<u32>) -> Option<u64> {
        let position = position?;
        let (key, _) = self.line_of(r)?;
        let s = key.service();
        if self.done_today[s] < super::ESTIMATE_MIN_DONE {
            return None;
        }
        let open = match key {
            LineKey::Bound { counter, .. } => usize::from(self.counters[counter].open),
            LineKey::Shared(_) => self
                .site
                .counters
                .iter()
                .zip(&self.counters)
                .filter(|(d, c)| c.open && d.services.contains(&s))
                .count(),
        };
        let times = &self.service_times[s];
        if open == 0 || times.is_empty() {
            return None;
        }
        let mean_ms = times.iter().sum::<Millis>() as f64 / times.len() as f64;
        Some((position as f64 * mean_ms / 1000.0 / open as f64).round() as u64)
    }

    fn where_is(&self, r: StepRef) -> Where {
        let p = self.position(r);
        (p, self.estimated_wait_s(r, p))
    }

    /// A ticket's status as clients see it (rule 48).
    pub fn ticket_status(&self, t: &TicketRec) -> TicketStatus {
        ticket_status(t)
    }

    /// A ticket of today as clients see it now.
    pub fn render_ticket(&self, t: &TicketRec) -> Ticket {
        let i = self.by_id.get(&t.id).copied();
        let at = |k: usize| i.map_or((None, None), |i| self.where_is((i, k)));
        render_with(&self.site, t, &|r| self.busy_step(r), &at)
    }

    /// Whether a step of a ticket of today is busy (rule 51).
    fn busy_step(&self, t: &TicketRec) -> bool {
        t.steps.iter().any(|s| s.status == TicketStatus::Called)
    }

    /// The numbers a counter serving only `service`'s shared line would call,
    /// up to `max` (rules 23, 52): the same order as calling next.
    pub fn next_numbers(&self, service: usize, max: usize) -> Vec<String> {
        self.shared_order(service)
            .take(max)
            .map(|(t, _)| self.tickets[t].number.clone())
            .collect()
    }

    /// Rule 56: up to 10 of a service's waiting returning steps that are not
    /// busy, in rule 19 order.
    fn returning(&self, service: usize) -> Vec<Returning> {
        let mut all: Vec<_> = self
            .lines
            .returning_of(service)
            .flat_map(|l| l.waiting.iter())
            .filter(|(_, r)| !self.busy(r.0))
            .collect();
        all.sort_by_key(|(p, _)| **p);
        all.into_iter()
            .take(RETURNING_SHOWN)
            .map(|(_, &(t, k))| Returning {
                number: self.tickets[t].number.clone(),
                counter: self.tickets[t].steps[k].counter.clone().unwrap_or_default(),
            })
            .collect()
    }

    /// The board view of the named services at `now`.
    pub fn board_services(&self, ids: &[&str], now: Millis) -> Vec<BoardService> {
        let mut out: Vec<BoardService> = Vec::with_capacity(ids.len());
        for id in ids {
            if out.iter().any(|s| s.id == *id) {
                continue;
            }
            if let Some(i) = self.site.service_idx(id) {
                out.push(self.board_service(i, now));
            }
        }
        out
    }

    pub(super) fn board_service(&self, i: usize, now: Millis) -> BoardService {
        let s = &self.site.services[i];
        BoardService {
            id: s.id.clone(),
            name: s.name.clone(),
            prefix: s.prefix.clone(),
            waiting: self.waiting_count(i),
            next_numbers: self.next_numbers(i, 5),
            returning: self.returning(i),
            capacity: self.capacity(i, now),
        }
    }

    fn counter_services(&self, c: usize) -> Vec<String> {
        let site = &self.site;
        site.counters[c]
            .services
            .iter()
            .map(|&s| site.services[s].id.clone())
            .collect()
    }

    /// The snapshot's state at `now` (capacities depend on the time).
    pub fn board(&self, now: Millis) -> BoardState {
        let site = &self.site;
        BoardState {
            day: self.day.map(|d| d.to_string()).unwrap_or_default(),
            services: (0..site.services.len())
                .map(|i| self.board_service(i, now))
                .collect(),
            counters: site
                .counters
                .iter()
                .enumerate()
                .map(|(i, c)| BoardCounter {
                    id: c.id.clone(),
                    name: c.name.clone(),
                    open: self.counters[i].open,
                    serving: self.serving(i).map(|t| self.render_ticket(t)),
                    services: self.counter_services(i),
                    held: self.counters[i]
                        .held
                        .iter()
                        .map(|&(t, _)| self.tickets[t].number.clone())
                        .collect(),
                })
                .collect(),
            recent_calls: self
                .recent
                .iter()
                .map(|r| RecentCall {
                    number: r.number.clone(),
                    counter: r.counter.clone(),
                    counter_name: self.counter_name(&r.counter),
                    service_name: self.service_name(&r.service),
                    at: site.fmt_time(r.at),
                    returning: r.returning,
                })
                .collect(),
        }
    }

    /// `GET /site` at `now`.
    pub fn site_info(&self, now: Millis) -> SiteInfo {
        let site = &self.site;
        SiteInfo {
            name: site.name.clone(),
            day: self.day.map(|d| d.to_string()).unwrap_or_default(),
            public_url: site.public_url.clone(),
            services: site
                .services
                .iter()
                .enumerate()
                .map(|(i, s)| SiteService {
                    id: s.id.clone(),
                    name: s.name.clone(),
                    prefix: s.prefix.clone(),
                    waiting: self.waiting_count(i),
                    capacity: self.capacity(i, now),
                })
                .collect(),
            counters: site
                .counters
                .iter()
                .enumerate()
                .map(|(i, c)| SiteCounter {
                    id: c.id.clone(),
                    name: c.name.clone(),
                    services: self.counter_services(i),
                    open: self.counters[i].open,
                    serving: self.serving(i).map(|t| t.number.clone()),
                })
                .collect(),
        }
    }

    pub fn counter_info(&self, id: &str) -> Option<CounterInfo> {
        let i = self.site.counter_idx(id)?;
        let c = &self.site.counters[i];
        Some(CounterInfo {
            id: c.id.clone(),
            name: c.name.clone(),
            services: self.counter_services(i),
            open: self.counters[i].open,
            serving: self.serving(i).map(|t| self.render_ticket(t)),
        })
    }

    pub fn counter_name(&self, id: &str) -> String {
        self.site
            .counter_idx(id)
            .map(|i| self.site.counters[i].name.clone())
            .unwrap_or_else(|| id.to_string())
    }

    pub fn service_name(&self, id: &str) -> String {
        self.site
            .service_idx(id)
            .map(|i| self.site.services[i].name.clone())
            .unwrap_or_else(|| id.to_string())
    }

    /// An event as clients see it (rules 29, 54, 55), rendered right after it
    /// was applied, with the board entries of the services it changed.
    /// `None` for private events.
    pub fn render_event(&self, e: &Event, changed: Vec<BoardService>) -> Option<WireEvent> {
        let mut w = WireEvent {
            kind: EventKind::DayStarted,
            ticket: None,
            counter: None,
            counter_name: None,
            service_name: None,
            day: None,
            from_service: None,
            at: None,
            services: (!changed.is_empty()).then_some(changed),
            step: None,
            appointment: None,
        };
        let (kind, at) = match e {
            Event::DayStarted { day, at } => {
                w.day = Some(day.to_string());
                (EventKind::DayStarted, *at)
            }
            Event::CounterOpened { counter, at, .. } | Event::CounterClosed { counter, at, .. } => {
                w.counter = Some(counter.clone());
                w.counter_name = Some(self.counter_name(counter));
                let opened = matches!(e, Event::CounterOpened { .. });
                let kind = if opened {
                    EventKind::CounterOpened
                } else {
                    EventKind::CounterClosed
                };
                (kind, *at)
            }
            Event::FeedbackGiven { .. }
            | Event::DayKey { .. }
            | Event::NotifySet { .. }
            | Event::NotifyErased { .. }
            | Event::VapidKey { .. } => return None,
            Event::AppointmentBooked { .. }
            | Event::AppointmentCancelled { .. }
            | Event::AppointmentCheckedIn { .. }
            | Event::AppointmentExpired { .. } => return self.render_appointment_event(e, w),
            _ => return self.render_ticket_event(e, w),
        };
        (w.kind, w.at) = (kind, Some(self.site.fmt_time(at)));
        Some(w)
    }

    /// Rule 85: the booking whole (the hub gives others its brief), its
    /// service's name, and the time; never its ticket (that comes with
    /// `ticket_issued` in the same commit).
    fn render_appointment_event(&self, e: &Event, mut w: WireEvent) -> Option<WireEvent> {
        let (kind, at) = match e {
            Event::AppointmentBooked { appointment } => {
                (EventKind::AppointmentBooked, appointment.created_at)
            }
            Event::AppointmentCancelled { at, .. } => (EventKind::AppointmentCancelled, *at),
            Event::AppointmentCheckedIn { at, .. } => (EventKind::AppointmentCheckedIn, *at),
            Event::AppointmentExpired { at, .. } => (EventKind::AppointmentExpired, *at),
            _ => return None,
        };
        let rec = self.appointment(e.appointment_id()?)?;
        w.kind = kind;
        w.at = Some(self.site.fmt_time(at));
        w.service_name = Some(self.service_name(&rec.service));
        // Events never carry the code or its QR (rule 85).
        let mut a = self.render_appointment(rec);
        (a.code, a.qr) = (String::new(), String::new());
        w.appointment = Some(AppointmentView::Full(a));
        Some(w)
    }

    fn render_ticket_event(&self, e: &Event, mut w: WireEvent) -> Option<WireEvent> {
        let (id, counter, step, at, kind) = ticket_event_parts(e)?;
        let t = self.ticket(id)?;
        let kind = match kind {
            // Rule 54: a finished step whose ticket has steps left open.
            EventKind::TicketDone | EventKind::TicketNoShow
                if t.steps.iter().any(|s| s.status.is_open()) =>
            {
                EventKind::StepFinished
            }
            k => k,
        };
        w.kind = kind;
        w.at = Some(self.site.fmt_time(at));
        if let Some(c) = counter {
            w.counter = Some(c.to_string());
            w.counter_name = Some(self.counter_name(c));
        }
        let k = step.unwrap_or(0).min(t.steps.len().saturating_sub(1));
        w.service_name = t.steps.get(k).map(|s| self.service_name(&s.service));
        if t.visit && kind != EventKind::TicketCancelled {
            w.step = Some(listed_index(t, k));
        }
        if let Event::TicketTransferred { from_service, .. } = e {
            w.from_service = Some(from_service.clone());
        }
        w.ticket = Some(self.render_ticket(t));
        Some(w)
    }
}

/// A ticket's status as clients see it (rule 48).
pub fn ticket_status(t: &TicketRec) -> TicketStatus {
    top(t).map_or(TicketStatus::Cancelled, |(k, open)| {
        if !open && t.cancelled.is_some() {
            TicketStatus::Cancelled
        } else {
            t.steps[k].status
        }
    })
}

/// When a ticket's visit ended: its last step's end, while none is open.
pub fn finished_at(t: &TicketRec) -> Option<Millis> {
    if t.steps.iter().any(|s| s.status.is_open()) {
        return None;
    }
    t.steps.iter().filter_map(|s| s.finished_at).max()
}

/// The ticket, counter, step, time and kind of a ticket event.
type Parts<'a> = (&'a str, Option<&'a str>, Option<usize>, Millis, EventKind);

fn ticket_event_parts(e: &Event) -> Option<Parts<'_>> {
    let kind = ticket_event_kind(e)?;
    Some(match e {
        Event::TicketIssued { ticket, .. } => (&ticket.id, None, Some(0), ticket.issued_at, kind),
        Event::TicketCancelled {
            id, counter, at, ..
        } => (id, Some(counter), None, *at, kind),
        Event::TicketCalled {
            id,
            counter,
            step,
            at,
            ..
        }
        | Event::TicketRecalled {
            id,
            counter,
            step,
            at,
            ..
        }
        | Event::TicketDone {
            id,
            counter,
            step,
            at,
            ..
        }
        | Event::TicketNoShow {
            id,
            counter,
            step,
            at,
            ..
        }
        | Event::TicketTransferred {
            id,
            counter,
            step,
            at,
            ..
        }
        | Event::TicketSent {
            id,
            counter,
            step,
            at,
            ..
        }
        | Event::TicketHeld {
            id,
            counter,
            step,
            at,
            ..
        }
        | Event::TicketRequeued {
            id,
            counter,
            step,
            at,
            ..
        } => (id, Some(counter), Some(*step), *at, kind),
        _ => return None,
    })
}

/// The wire kind of a ticket event; `None` for other events.
fn ticket_event_kind(e: &Event) -> Option<EventKind> {
    Some(match e {
        Event::TicketIssued { .. } => EventKind::TicketIssued,
        Event::TicketCalled { .. } => EventKind::TicketCalled,
        Event::TicketRecalled { .. } => EventKind::TicketRecalled,
        Event::TicketDone { .. } => EventKind::TicketDone,
        Event::TicketNoShow { .. } => EventKind::TicketNoShow,
        Event::TicketTransferred { .. } => EventKind::TicketTransferred,
        Event::TicketSent { .. } => EventKind::TicketSent,
        Event::TicketHeld { .. } => EventKind::TicketHeld,
        Event::TicketRequeued { .. } => EventKind::TicketRequeued,
        Event::TicketCancelled { .. } => EventKind::TicketCancelled,
        _ => return None,
    })
}

/// The step that shows at a ticket's top level (rule 48), and whether it is
/// open: the called one, else the first held, else the first waiting (in
/// steps order), else the one that finished last (the first of several).
fn top(t: &TicketRec) -> Option<(usize, bool)> {
    let listed = listed(t);
    for status in [
        TicketStatus::Called,
        TicketStatus::Held,
        TicketStatus::Waiting,
    ] {
        if let Some(&k) = listed.iter().find(|&&k| t.steps[k].status == status) {
            return Some((k, true));
        }
    }
    let mut last: Option<(Millis, usize)> = None;
    for &k in &listed {
        if let Some(f) = t.steps[k].finished_at
            && last.is_none_or(|(l, _)| f > l)
        {
            last = Some((f, k));
        }
    }
    last.map(|(_, k)| (k, false))
}

/// Step indexes in the order a ticket lists them: by stage, then as added.
fn listed(t: &TicketRec) -> Vec<usize> {
    let mut ks: Vec<usize> = (0..t.steps.len()).collect();
    ks.sort_by_key(|&k| (t.steps[k].stage, k));
    ks
}

/// Where step `k` (in the order added) is listed.
fn listed_index(t: &TicketRec, k: usize) -> usize {
    listed(t).iter().position(|&x| x == k).unwrap_or(k)
}

/// Rule 57: a step's place.
fn place(site: &Site, s: &StepRec) -> String {
    if let Some(c) = s.counter.as_deref().and_then(|c| site.counter_idx(c)) {
        return site.counters[c].name.clone();
    }
    let Some(sv) = site.service_idx(&s.service) else {
        return s.service.clone();
    };
    let mut serving = site.counters.iter().filter(|c| c.services.contains(&sv));
    match (serving.next(), serving.next()) {
        (Some(only), None) => only.name.clone(),
        _ => site.services[sv].name.clone(),
    }
}

fn render_step(site: &Site, s: &StepRec, busy: bool, at: Where) -> Step {
    let time = |t: Option<Millis>| t.map(|x| site.fmt_time(x));
    let waiting = s.status == TicketStatus::Waiting;
    Step {
        stage: s.stage,
        service: s.service.clone(),
        counter: s.counter.clone(),
        place: place(site, s),
        returning: s.returning,
        status: s.status,
        busy: busy && waiting,
        waiting_since: time(s.waiting_since),
        first_joined_at: time(s.first_joined_at),
        first_called_at: time(s.first_called_at),
        called_at: time(s.called_at),
        finished_at: time(s.finished_at),
        calls: s.calls,
        reason: s.reason.clone(),
        position: at.0,
        estimated_wait_s: at.1,
    }
}

/// A ticket in wire form; `at` gives a step's position and estimate.
fn render_with(
    site: &Site,
    t: &TicketRec,
    busy: &dyn Fn(&TicketRec) -> bool,
    at: &dyn Fn(usize) -> Where,
) -> Ticket {
    let time = |x: Option<Millis>| x.map(|v| site.fmt_time(v));
    let busy = busy(t);
    let (k, open) = top(t).unwrap_or((0, false));
    let s = &t.steps[k];
    let waiting = open && s.status == TicketStatus::Waiting;
    let (position, estimated_wait_s) = if waiting { at(k) } else { (None, None) };
    let status = match (open, &t.cancelled) {
        (false, Some(_)) => TicketStatus::Cancelled,
        _ => s.status,
    };
    let finished_at = finished_at(t);
    Ticket {
        id: t.id.clone(),
        number: t.number.clone(),
        service: s.service.clone(),
        priority: t.priority.clone(),
        status,
        counter: if waiting { None } else { s.counter.clone() },
        issued_at: site.fmt_time(t.issued_at),
        called_at: if waiting { None } else { time(s.called_at) },
        finished_at: time(finished_at),
        day: t.day.to_string(),
        position,
        estimated_wait_s,
        calls: s.calls,
        reason: match status {
            TicketStatus::Cancelled => t.cancelled.clone(),
            _ => s.reason.clone(),
        },
        visit: t.visit.then(|| Visit {
            steps: listed(t)
                .into_iter()
                .map(|k| render_step(site, &t.steps[k], busy, at(k)))
                .collect(),
        }),
        appointment: t.appointment.clone(),
        external_ref: t.external_ref.clone(),
    }
}

/// A ticket record in wire form without positions (a ticket of a past day).
pub fn render_record(site: &Site, t: &TicketRec) -> Ticket {
    render_with(site, t, &|_| false, &|_| (None, None))
}
