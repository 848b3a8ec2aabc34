//! Event application: `State::apply_event`, the only code that changes
//! `State`, and the small `on_*` methods it dispatches to, one per event.
//!
//! Applying an event never refuses: the decision was made in `commands.rs`
//! (or long ago, when replaying the log). An event about a ticket, counter or
//! service that is gone is applied as far as it still can be.

use chrono::NaiveDate;
use luot_protocol::{AppointmentStatus, TicketStatus};

use super::lines::{LineKey, Place};
use super::order::runs_after_call;
use super::{
    DayArchive, ESTIMATE_WINDOW, Event, IDEMPOTENCY_KEEP_MS, IdemRec, Millis, NewStep,
    RECENT_CALLS, RecentCallRec, State, StepRec, StepRef, TicketRec,
};

impl State {
    /// Applies one event. The only code that changes `State`. Returns the
    /// closed day when the event starts a new one.
    pub fn apply_event(&mut self, e: &Event) -> Option<DayArchive> {
        match e {
            Event::DayStarted { day, at } => return self.on_day_started(*day, *at),
            Event::TicketIssued {
                ticket,
                scope,
                request_id,
            } => self.on_ticket_issued(ticket, scope, request_id),
            Event::TicketCalled {
                id,
                counter,
                step,
                at,
                ..
            } => self.on_ticket_called(id, counter, *step, *at),
            Event::TicketRecalled {
                id,
                counter,
                step,
                at,
                ..
            } => self.on_ticket_recalled(id, counter, *step, *at),
            Event::TicketDone {
                id, step, by, at, ..
            } => self.on_step_ended(id, *step, TicketStatus::Done, by, *at),
            Event::TicketNoShow {
                id, step, by, at, ..
            } => self.on_step_ended(id, *step, TicketStatus::NoShow, by, *at),
            Event::TicketTransferred {
                id,
                step,
                service,
                front,
                order,
                at,
                ..
            } => self.on_ticket_transferred(id, *step, service, *front, *order, *at),
            Event::TicketSent {
                id,
                step,
                stops,
                shift,
                by,
                at,
                ..
            } => self.on_ticket_sent(id, *step, stops, *shift, by, *at),
            Event::TicketHeld {
                id,
                counter,
                step,
                reason,
                at,
                ..
            } => self.on_ticket_held(id, counter, *step, reason, *at),
            Event::TicketRequeued {
                id,
                step,
                front,
                at,
                ..
            } => self.on_ticket_requeued(id, *step, *front, *at),
            Event::TicketCancelled { id, reason, at, .. } => {
                self.on_ticket_cancelled(id, reason, *at)
            }
            Event::CounterOpened { counter, .. } => self.set_counter_open(counter, true),
            Event::CounterClosed { counter, .. } => self.set_counter_open(counter, false),
            Event::FeedbackGiven {
                id,
                rating,
                comment,
                ..
            } => self.on_feedback_given(id, *rating, comment),
            Event::AppointmentBooked { appointment } => self.book.insert(appointment.clone()),
            Event::AppointmentCancelled { id, .. } => {
                self.book.set_status(id, AppointmentStatus::Cancelled, None)
            }
            Event::AppointmentCheckedIn { id, ticket, .. } => {
                self.book
                    .set_status(id, AppointmentStatus::CheckedIn, Some(ticket))
            }
            Event::AppointmentExpired { id, .. } => {
                self.book.set_status(id, AppointmentStatus::Expired, None)
            }
            Event::DayKey { day, key } => self.book.set_key(*day, key.0),
            Event::NotifySet {
                id,
                sealed,
                sms,
                push,
                counted,
            } => {
                let rec = self.notify.entry(id.clone()).or_default();
                rec.calls = rec.calls.saturating_add(u8::from(*counted));
                rec.sealed = Some(sealed.clone());
                (rec.sms, rec.push) = (*sms, *push);
            }
            Event::NotifyErased { id } => {
                if let Some(rec) = self.notify.get_mut(id) {
                    rec.sealed = None;
                    (rec.sms, rec.push) = (false, 0);
                }
            }
            Event::VapidKey { key } => {
                self.vapid.get_or_insert(key.0);
            }
        }
        None
    }

    // ------------------------------------------------------------ the day

    /// Closes the current day, if any (every open step becomes a no-show),
    /// and starts `day` afresh. Idempotency records and the join sequence
    /// carry over.
    fn on_day_started(&mut self, day: NaiveDate, at: Millis) -> Option<DayArchive> {
        let archive = self.day.map(|old| DayArchive {
            day: old,
            tickets: close_day(std::mem::take(&mut self.tickets), at),
        });
        let idem = std::mem::take(&mut self.idem);
        let book = std::mem::take(&mut self.book);
        let order_seq = self.order_seq;
        let vapid = self.vapid;
        // Alert contacts die with their day (rule 94): `State::new` has none.
        *self = State::new(self.site.clone());
        self.vapid = vapid;
        self.idem = idem;
        self.book = book;
        self.book.start_day(day);
        self.idem.retain(|_, r| at - r.at < IDEMPOTENCY_KEEP_MS);
        self.order_seq = order_seq;
        self.day = Some(day);
        archive
    }

    // ------------------------------------------------------------ tickets

    /// Makes a restored or new ticket findable by id and number.
    pub(super) fn index_ticket(&mut self, i: usize) {
        let t = &self.tickets[i];
        self.by_id.insert(t.id.clone(), i);
        self.by_number.insert(t.number.clone(), i);
        if let Some(s) = self.site.service_idx(&t.issued_service) {
            self.numbers[s] = self.numbers[s].max(t.n);
        }
        let join = t.steps.iter().map(|s| s.join).max().unwrap_or(0);
        self.order_seq = self.order_seq.max(join);
        self.counted
            .add(&t.issued_service, t.session.as_deref(), t.person.as_deref());
    }

    fn on_ticket_issued(&mut self, ticket: &TicketRec, scope: &str, request_id: &str) {
        let i = self.tickets.len();
        self.tickets.push(ticket.clone());
        self.index_ticket(i);
        self.idem.insert(
            (scope.to_string(), request_id.to_string()),
            IdemRec {
                ticket: ticket.id.clone(),
                service: ticket.issued_service.clone(),
                priority: ticket.priority.clone(),
                at: ticket.issued_at,
                appointment: ticket.appointment.clone(),
            },
        );
        for k in 0..self.tickets[i].steps.len() {
            if self.tickets[i].steps[k].status == TicketStatus::Waiting {
                self.enqueue((i, k));
            }
        }
    }

    fn step_of(&self, id: &str, step: usize) -> Option<StepRef> {
        let &t = self.by_id.get(id)?;
        (step < self.tickets[t].steps.len()).then_some((t, step))
    }

    fn on_ticket_called(&mut self, id: &str, counter: &str, step: usize, at: Millis) {
        let (Some(r), Some(c)) = (self.step_of(id, step), self.site.counter_idx(counter)) else {
            return;
        };
        self.take_out(r);
        let (t, k) = r;
        let s = &mut self.tickets[t].steps[k];
        s.status = TicketStatus::Called;
        s.counter = Some(counter.to_string());
        s.called_at = Some(at);
        s.first_called_at.get_or_insert(at);
        s.front = false;
        s.calls = 1;
        s.reason = None;
        s.held_at = None;
        let returning = s.returning;
        let cs = &self.counters[c];
        let (run, returning_run) =
            runs_after_call(cs.run, cs.returning_run, &self.tickets[t], returning);
        let cs = &mut self.counters[c];
        (cs.serving, cs.run, cs.returning_run) = (Some(r), run, returning_run);
        self.push_recent(r, counter, at);
    }

    fn on_ticket_recalled(&mut self, id: &str, counter: &str, step: usize, at: Millis) {
        let Some(r) = self.step_of(id, step) else {
            return;
        };
        self.tickets[r.0].steps[r.1].calls += 1;
        self.push_recent(r, counter, at);
    }

    fn push_recent(&mut self, (t, k): StepRef, counter: &str, at: Millis) {
        let s = &self.tickets[t].steps[k];
        self.recent.push_front(RecentCallRec {
            number: self.tickets[t].number.clone(),
            counter: counter.to_string(),
            service: s.service.clone(),
            at,
            returning: s.returning,
        });
        self.recent.truncate(RECENT_CALLS);
    }

    /// A step called at its counter is done or a no-show; later stages may begin.
    fn on_step_ended(
        &mut self,
        id: &str,
        step: usize,
        status: TicketStatus,
        by: &Option<String>,
        at: Millis,
    ) {
        let Some(r) = self.step_of(id, step) else {
            return;
        };
        self.finish(r, status, by, at);
        self.begin_stages(r.0, at);
    }

    /// Ends a step called at its counter and frees the counter.
    fn finish(&mut self, (t, k): StepRef, status: TicketStatus, by: &Option<String>, at: Millis) {
        self.release_counter((t, k));
        let s = &mut self.tickets[t].steps[k];
        s.status = status;
        s.finished_at = Some(at);
        s.finished_by = by.clone();
        s.no_show = status == TicketStatus::NoShow;
        if status != TicketStatus::Done {
            return;
        }
        let took = at - s.called_at.unwrap_or(at);
        if let Some(sv) = self.site.service_idx(&s.service) {
            let times = &mut self.service_times[sv];
            times.push_back(took);
            if times.len() > ESTIMATE_WINDOW {
                times.pop_front();
            }
            self.done_today[sv] += 1;
        }
    }

    fn on_ticket_transferred(
        &mut self,
        id: &str,
        step: usize,
        service: &str,
        front: bool,
        order: u64,
        at: Millis,
    ) {
        let Some(r) = self.step_of(id, step) else {
            return;
        };
        self.release_counter(r);
        let s = &mut self.tickets[r.0].steps[r.1];
        s.service = service.to_string();
        (s.bound, s.returning) = (false, false);
        self.order_seq = self.order_seq.max(order);
        self.join(r, front, order, at);
    }

    fn on_ticket_sent(
        &mut self,
        id: &str,
        step: usize,
        stops: &[NewStep],
        shift: u32,
        by: &Option<String>,
        at: Millis,
    ) {
        let Some((t, k)) = self.step_of(id, step) else {
            return;
        };
        self.finish((t, k), TicketStatus::Done, by, at);
        let ticket = &mut self.tickets[t];
        ticket.visit = true;
        let from_stage = ticket.steps[k].stage;
        for s in &mut ticket.steps {
            if s.stage > from_stage {
                s.stage += shift;
            }
        }
        for stop in stops {
            ticket.steps.push(new_step(stop));
        }
        self.begin_stages(t, at);
    }

    fn on_ticket_held(&mut self, id: &str, counter: &str, step: usize, reason: &str, at: Millis) {
        let (Some(r), Some(c)) = (self.step_of(id, step), self.site.counter_idx(counter)) else {
            return;
        };
        self.release_counter(r);
        let s = &mut self.tickets[r.0].steps[r.1];
        s.status = TicketStatus::Held;
        s.held_at = Some(at);
        s.reason = Some(reason.to_string());
        self.counters[c].held.push(r);
    }

    fn on_ticket_requeued(&mut self, id: &str, step: usize, front: bool, at: Millis) {
        let Some(r) = self.step_of(id, step) else {
            return;
        };
        let s = &mut self.tickets[r.0].steps[r.1];
        (s.no_show, s.finished_at, s.finished_by) = (false, None, None);
        self.order_seq += 1;
        self.join(r, front, self.order_seq, at);
    }

    fn on_ticket_cancelled(&mut self, id: &str, reason: &str, at: Millis) {
        let Some(&t) = self.by_id.get(id) else {
            return;
        };
        for k in 0..self.tickets[t].steps.len() {
            if !self.tickets[t].steps[k].status.is_open() {
                continue;
            }
            self.take_out((t, k));
            self.release_counter((t, k));
            let s = &mut self.tickets[t].steps[k];
            s.status = TicketStatus::Cancelled;
            s.finished_at = Some(at);
            s.reason = Some(reason.to_string());
        }
        self.tickets[t].cancelled = Some(reason.to_string());
    }

    fn set_counter_open(&mut self, counter: &str, open: bool) {
        if let Some(c) = self.site.counter_idx(counter) {
            self.counters[c].open = open;
        }
    }

    fn on_feedback_given(&mut self, id: &str, rating: u8, comment: &Option<String>) {
        if let Some(&i) = self.by_id.get(id) {
            self.tickets[i].rating = Some(rating);
            self.tickets[i].comment = comment.clone();
        }
    }

    // ------------------------------------------------------------ lines

    /// Every pending step whose earlier stages are all closed joins its
    /// line, in steps order, as one join (rule 50).
    fn begin_stages(&mut self, t: usize, at: Millis) {
        let steps = &self.tickets[t].steps;
        let due: Vec<usize> = (0..steps.len())
            .filter(|&k| {
                steps[k].status == TicketStatus::Pending
                    && !steps
                        .iter()
                        .any(|o| o.stage < steps[k].stage && o.status.is_open())
            })
            .collect();
        if due.is_empty() {
            return;
        }
        self.order_seq += 1;
        let join = self.order_seq;
        for k in self.in_steps_order(t, due) {
            self.join((t, k), false, join, at);
        }
    }

    /// Step indexes sorted as the ticket lists them: by stage, then as added.
    pub(super) fn in_steps_order(&self, t: usize, mut ks: Vec<usize>) -> Vec<usize> {
        let steps = &self.tickets[t].steps;
        ks.sort_by_key(|&k| (steps[k].stage, k));
        ks
    }

    /// A step joins its line at `at`: waiting, no counter unless bound,
    /// no calls (rule 50).
    fn join(&mut self, r: StepRef, front: bool, join: u64, at: Millis) {
        let s = &mut self.tickets[r.0].steps[r.1];
        s.status = TicketStatus::Waiting;
        if !s.bound {
            s.counter = None;
        }
        (s.front, s.place_at, s.join) = (front, at, join);
        s.waiting_since = Some(at);
        s.first_joined_at.get_or_insert(at);
        (s.called_at, s.calls, s.reason, s.held_at) = (None, 0, None, None);
        self.enqueue(r);
    }

    /// A waiting step's line and place in it; `None` when its service or
    /// counter left the configuration.
    pub(super) fn line_of(&self, (t, k): StepRef) -> Option<(LineKey, Place)> {
        let ticket = &self.tickets[t];
        let s = &ticket.steps[k];
        let service = self.site.service_idx(&s.service)?;
        let key = if s.bound {
            let counter = self.site.counter_idx(s.counter.as_deref()?)?;
            LineKey::Bound {
                counter,
                service,
                returning: s.returning,
            }
        } else {
            LineKey::Shared(service)
        };
        let bucket = self.site.bucket(s.front, ticket.priority.as_deref());
        Some((key, (bucket, s.place_at, s.join, k)))
    }

    pub(super) fn enqueue(&mut self, r: StepRef) {
        if let Some((key, place)) = self.line_of(r) {
            self.lines.insert(key, place, r);
        }
    }

    /// Takes a step out of its line (waiting) or off its counter's held list.
    fn take_out(&mut self, r: StepRef) {
        let s = &self.tickets[r.0].steps[r.1];
        match s.status {
            TicketStatus::Waiting => {
                if let Some((key, place)) = self.line_of(r) {
                    self.lines.remove(key, place);
                }
            }
            TicketStatus::Held => {
                for c in &mut self.counters {
                    c.held.retain(|h| *h != r);
                }
            }
            _ => {}
        }
    }

    fn release_counter(&mut self, r: StepRef) {
        for c in &mut self.counters {
            if c.serving == Some(r) {
                c.serving = None;
            }
        }
    }
}

/// A step as `send` adds it: pending until `begin_stages` lets it join.
fn new_step(stop: &NewStep) -> StepRec {
    StepRec {
        counter: stop.counter.clone(),
        bound: stop.counter.is_some(),
        returning: stop.returning,
        ..StepRec::pending(stop.stage, stop.service.clone())
    }
}

/// The day's tickets as the rollover closes them (rule 54): every open
/// step, held and pending ones too, becomes a no-show; cancelled stays.
/// The person hashes go with the day (rule 81).
fn close_day(mut tickets: Vec<TicketRec>, at: Millis) -> Vec<TicketRec> {
    for t in &mut tickets {
        t.person = None;
    }
    for s in tickets.iter_mut().flat_map(|t| t.steps.iter_mut()) {
        if s.status.is_open() {
            s.status = TicketStatus::NoShow;
            s.finished_at = Some(at);
            s.front = false;
        }
    }
    tickets
}
