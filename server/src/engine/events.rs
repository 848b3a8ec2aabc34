//! Event application: `State::apply_event`, the only code that changes
//! `State`, and the small `on_*` methods it dispatches to, one per event.
//!
//! Applying an event never refuses: the decision was made in `commands.rs`
//! (or long ago, when replaying the log). An event about a ticket, counter or
//! service that is gone is applied as far as it still can be.

use chrono::NaiveDate;
use luot_protocol::TicketStatus;

use super::{
    DayArchive, ESTIMATE_WINDOW, Event, IDEMPOTENCY_KEEP_MS, IdemRec, Millis, RECENT_CALLS,
    RecentCallRec, State, TicketRec, run_after_call,
};

/// The value of a number stored before tickets carried it as an integer
/// (`A015` → 15). Only for reading old records; numbering never depends on
/// the text otherwise.
fn legacy_number_value(prefix: &str, number: &str) -> u32 {
    number
        .strip_prefix(prefix)
        .and_then(|d| d.parse().ok())
        .unwrap_or(0)
}

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
                id, counter, at, ..
            } => self.on_ticket_called(id, counter, *at),
            Event::TicketRecalled {
                id, counter, at, ..
            } => self.on_ticket_recalled(id, counter, *at),
            Event::TicketDone { id, by, at, .. } => self.on_ticket_done(id, by, *at),
            Event::TicketNoShow { id, by, at, .. } => self.on_ticket_no_show(id, by, *at),
            Event::TicketTransferred {
                id,
                service,
                front,
                order,
                ..
            } => self.on_ticket_transferred(id, service, *front, *order),
            Event::CounterOpened { counter, .. } => self.set_counter_open(counter, true),
            Event::CounterClosed { counter, .. } => self.set_counter_open(counter, false),
            Event::FeedbackGiven {
                id,
                rating,
                comment,
                ..
            } => self.on_feedback_given(id, *rating, comment),
        }
        None
    }

    // ------------------------------------------------------------ the day

    /// Closes the current day, if any (what still waits or is called becomes
    /// a no-show), and starts `day` afresh. Idempotency records and the order
    /// sequence carry over.
    fn on_day_started(&mut self, day: NaiveDate, at: Millis) -> Option<DayArchive> {
        let archive = self.day.map(|old| DayArchive {
            day: old,
            tickets: close_day(std::mem::take(&mut self.tickets), at),
        });
        let idem = std::mem::take(&mut self.idem);
        let order_seq = self.order_seq;
        *self = State::new(self.site.clone());
        self.idem = idem;
        self.idem.retain(|_, r| at - r.at < IDEMPOTENCY_KEEP_MS);
        self.order_seq = order_seq;
        self.day = Some(day);
        archive
    }

    // ------------------------------------------------------------ tickets

    fn on_ticket_issued(&mut self, ticket: &TicketRec, scope: &str, request_id: &str) {
        let i = self.tickets.len();
        self.tickets.push(ticket.clone());
        self.by_id.insert(ticket.id.clone(), i);
        if let Some(s) = self.site.service_idx(&ticket.service) {
            let n = match ticket.n {
                0 => legacy_number_value(&self.site.services[s].prefix, &ticket.number),
                n => n,
            };
            self.numbers[s] = self.numbers[s].max(n);
        }
        self.order_seq = self.order_seq.max(ticket.order);
        self.idem.insert(
            (scope.to_owned(), request_id.to_owned()),
            IdemRec {
                ticket: ticket.id.clone(),
                service: ticket.service.clone(),
                priority: ticket.priority.clone(),
                at: ticket.issued_at,
            },
        );
        self.enqueue(i);
    }

    fn on_ticket_called(&mut self, id: &str, counter: &str, at: Millis) {
        let (Some(&i), Some(c)) = (self.by_id.get(id), self.site.counter_idx(counter)) else {
            return;
        };
        self.dequeue(i);
        let t = &mut self.tickets[i];
        t.status = TicketStatus::Called;
        t.counter = Some(counter.to_owned());
        t.called_at = Some(at);
        t.first_called_at.get_or_insert(at);
        t.front = false;
        let run = run_after_call(self.counters[c].run, t);
        let cs = &mut self.counters[c];
        cs.serving = Some(i);
        cs.run = run;
        self.push_recent(i, counter, at);
    }

    fn on_ticket_recalled(&mut self, id: &str, counter: &str, at: Millis) {
        if let Some(&i) = self.by_id.get(id) {
            self.push_recent(i, counter, at);
        }
    }

    /// Finishes the ticket and counts its service time for the estimate.
    fn on_ticket_done(&mut self, id: &str, by: &Option<String>, at: Millis) {
        let Some(i) = self.finish(id, TicketStatus::Done, by, at) else {
            return;
        };
        let t = &self.tickets[i];
        let took = at - t.called_at.unwrap_or(at);
        if let Some(s) = self.site.service_idx(&t.service) {
            let times = &mut self.service_times[s];
            times.push_back(took);
            if times.len() > ESTIMATE_WINDOW {
                times.pop_front();
            }
            self.done_today[s] += 1;
        }
    }

    fn on_ticket_no_show(&mut self, id: &str, by: &Option<String>, at: Millis) {
        self.finish(id, TicketStatus::NoShow, by, at);
    }

    /// Back to waiting, for `service` now, at `order` (or in front).
    fn on_ticket_transferred(&mut self, id: &str, service: &str, front: bool, order: u64) {
        let Some(&i) = self.by_id.get(id) else {
            return;
        };
        self.release_counter(i);
        let t = &mut self.tickets[i];
        t.status = TicketStatus::Waiting;
        t.counter = None;
        t.called_at = None;
        t.service = service.to_owned();
        t.front = front;
        t.order = order;
        self.order_seq = self.order_seq.max(order);
        self.enqueue(i);
    }

    fn on_feedback_given(&mut self, id: &str, rating: u8, comment: &Option<String>) {
        if let Some(&i) = self.by_id.get(id) {
            self.tickets[i].rating = Some(rating);
            self.tickets[i].comment = comment.clone();
        }
    }

    // ------------------------------------------------------------ counters

    fn set_counter_open(&mut self, counter: &str, open: bool) {
        if let Some(c) = self.site.counter_idx(counter) {
            self.counters[c].open = open;
        }
    }

    // ------------------------------------------------------------ shared steps

    /// Ends a called ticket with `status` (done or no-show) and frees its
    /// counter. Returns the ticket's index, `None` for an unknown ticket.
    fn finish(
        &mut self,
        id: &str,
        status: TicketStatus,
        by: &Option<String>,
        at: Millis,
    ) -> Option<usize> {
        let &i = self.by_id.get(id)?;
        self.release_counter(i);
        let t = &mut self.tickets[i];
        t.status = status;
        t.finished_at = Some(at);
        t.finished_by = by.clone();
        Some(i)
    }

    /// Puts waiting ticket `i` into its service's queue.
    pub(super) fn enqueue(&mut self, i: usize) {
        let t = &self.tickets[i];
        let Some(s) = self.site.service_idx(&t.service) else {
            return; // the service left the configuration
        };
        let b = self.site.bucket(t.front, t.priority.as_deref());
        let q = &mut self.queues[s];
        q.waiting.insert((b, t.order), i);
        q.counts[b as usize] += 1;
    }

    fn dequeue(&mut self, i: usize) {
        let t = &self.tickets[i];
        let Some(s) = self.site.service_idx(&t.service) else {
            return;
        };
        let b = self.site.bucket(t.front, t.priority.as_deref());
        let q = &mut self.queues[s];
        if q.waiting.remove(&(b, t.order)).is_some() {
            q.counts[b as usize] -= 1;
        }
    }

    fn release_counter(&mut self, i: usize) {
        if let Some(c) = self.tickets[i]
            .counter
            .as_deref()
            .and_then(|c| self.site.counter_idx(c))
            && self.counters[c].serving == Some(i)
        {
            self.counters[c].serving = None;
        }
    }

    /// Ticket `i` was called (or called again) at `counter`: first in
    /// `recent_calls`, which keeps the last `RECENT_CALLS`.
    fn push_recent(&mut self, i: usize, counter: &str, at: Millis) {
        let t = &self.tickets[i];
        let rec = RecentCallRec {
            number: t.number.clone(),
            counter: counter.to_owned(),
            service: t.service.clone(),
            at,
        };
        self.recent.push_front(rec);
        self.recent.truncate(RECENT_CALLS);
    }
}

/// The tickets of a day as it closes: whatever still waits or is called
/// becomes a no-show at `at`.
fn close_day(mut tickets: Vec<TicketRec>, at: Millis) -> Vec<TicketRec> {
    for t in &mut tickets {
        if matches!(t.status, TicketStatus::Waiting | TicketStatus::Called) {
            t.status = TicketStatus::NoShow;
            t.finished_at = Some(at);
            t.front = false;
        }
    }
    tickets
}
