//! Command decisions: whether a command is allowed in the current state and
//! which events it causes.
//!
//! `decide` dispatches each command to one small `decide_*` method. Nothing
//! here changes `State`: the events decided here are applied by
//! `State::apply_event` (in `events.rs`), the only code that does.

use luot_protocol::TicketStatus;

use super::{Command, Event, IdemRec, Millis, Rejection, State, Subject, TicketRec};

/// The events a command causes and what it is about, or why it is refused.
pub(super) type Decision = Result<(Vec<Event>, Subject), Rejection>;

impl State {
    /// Decides the events of a command without changing anything.
    pub(super) fn decide(&self, cmd: Command, now: Millis) -> Decision {
        match cmd {
            Command::Tick => Ok((vec![], Subject::Nothing)),
            Command::Issue {
                scope,
                request_id,
                service,
                priority,
                ticket_id,
            } => self.decide_issue(scope, request_id, service, priority, ticket_id, now),
            Command::Next { counter, by } => self.decide_next(counter, by, now),
            Command::Recall { counter, by } => self.decide_recall(counter, by, now),
            Command::Done { counter, by } => self.decide_done(counter, by, now),
            Command::NoShow { counter, by } => self.decide_no_show(counter, by, now),
            Command::Transfer {
                counter,
                by,
                service,
                front,
            } => self.decide_transfer(counter, by, service, front, now),
            Command::Open { counter, by } => self.decide_open(counter, by, now),
            Command::Close { counter, by } => self.decide_close(counter, by, now),
            Command::Feedback {
                ticket,
                rating,
                comment,
            } => self.decide_feedback(ticket, rating, comment, now),
        }
    }

    /// Rules 18 and 36: the ticket counter `c` would call next.
    pub(super) fn pick_next(&self, c: usize) -> Option<usize> {
        self.call_order(&self.site.counters[c].services, self.counters[c].run)
            .next()
    }

    // ------------------------------------------------------------ lookups

    fn counter_of(&self, id: &str) -> Result<usize, Rejection> {
        self.site.counter_idx(id).ok_or(Rejection::UnknownCounter)
    }

    fn called_at(&self, counter: usize) -> Result<&TicketRec, Rejection> {
        self.serving(counter).ok_or(Rejection::NothingCalled)
    }

    /// The id of the ticket called at `counter`: the counter must exist and
    /// have a ticket called.
    fn called_id(&self, counter: &str) -> Result<String, Rejection> {
        let c = self.counter_of(counter)?;
        Ok(self.called_at(c)?.id.clone())
    }

    // ------------------------------------------------------------ issue

    fn decide_issue(
        &self,
        scope: String,
        request_id: String,
        service: String,
        priority: Option<String>,
        ticket_id: String,
        now: Millis,
    ) -> Decision {
        if let Some(rec) = self.idem.get(&(scope.clone(), request_id.clone())) {
            return replay(rec, &service, &priority);
        }
        self.check_priority(priority.as_deref())?;
        let s = self
            .site
            .service_idx(&service)
            .ok_or(Rejection::UnknownService)?;
        if self.by_id.contains_key(&ticket_id) {
            return Err(Rejection::BadRequest("duplicate ticket id".into()));
        }
        let ticket = self.new_ticket(ticket_id.clone(), s, service, priority, now);
        let issued = Event::TicketIssued {
            ticket,
            scope,
            request_id,
        };
        Ok((vec![issued], Subject::Ticket(ticket_id)))
    }

    fn check_priority(&self, priority: Option<&str>) -> Result<(), Rejection> {
        match priority {
            Some(p) if self.site.class_idx(p).is_none() => Err(Rejection::BadRequest(format!(
                "Không có diện ưu tiên \"{p}\" (unknown priority class)"
            ))),
            _ => Ok(()),
        }
    }

    /// The next ticket of service `s` (index of `service`), issued at `now`.
    fn new_ticket(
        &self,
        id: String,
        s: usize,
        service: String,
        priority: Option<String>,
        now: Millis,
    ) -> TicketRec {
        let n = self.numbers[s] + 1;
        TicketRec {
            id,
            number: self.site.number(s, n),
            n,
            service: service.clone(),
            issued_service: service,
            priority,
            status: TicketStatus::Waiting,
            counter: None,
            issued_at: now,
            called_at: None,
            first_called_at: None,
            finished_at: None,
            day: self.day.unwrap_or_else(|| self.site.day_of(now)),
            order: self.order_seq + 1,
            front: false,
            finished_by: None,
            rating: None,
            comment: None,
        }
    }

    // ------------------------------------------------------------ counter work

    /// Finishes the ticket called at the counter, if any, and calls the next.
    fn decide_next(&self, counter: String, by: Option<String>, now: Millis) -> Decision {
        let c = self.counter_of(&counter)?;
        if !self.counters[c].open {
            return Err(Rejection::CounterClosed);
        }
        let pick = self.pick_next(c).ok_or(Rejection::QueueEmpty)?;
        let mut events = Vec::with_capacity(2);
        if let Some(cur) = self.serving(c) {
            events.push(Event::TicketDone {
                id: cur.id.clone(),
                counter: counter.clone(),
                by: by.clone(),
                at: now,
            });
        }
        let id = self.tickets[pick].id.clone();
        events.push(Event::TicketCalled {
            id: id.clone(),
            counter,
            by,
            at: now,
        });
        Ok((events, Subject::Ticket(id)))
    }

    fn decide_recall(&self, counter: String, by: Option<String>, now: Millis) -> Decision {
        let id = self.called_id(&counter)?;
        let recalled = Event::TicketRecalled {
            id: id.clone(),
            counter,
            by,
            at: now,
        };
        Ok((vec![recalled], Subject::Ticket(id)))
    }

    fn decide_done(&self, counter: String, by: Option<String>, now: Millis) -> Decision {
        let id = self.called_id(&counter)?;
        let done = Event::TicketDone {
            id: id.clone(),
            counter,
            by,
            at: now,
        };
        Ok((vec![done], Subject::Ticket(id)))
    }

    fn decide_no_show(&self, counter: String, by: Option<String>, now: Millis) -> Decision {
        let id = self.called_id(&counter)?;
        let no_show = Event::TicketNoShow {
            id: id.clone(),
            counter,
            by,
            at: now,
        };
        Ok((vec![no_show], Subject::Ticket(id)))
    }

    fn decide_transfer(
        &self,
        counter: String,
        by: Option<String>,
        service: String,
        front: bool,
        now: Millis,
    ) -> Decision {
        let c = self.counter_of(&counter)?;
        self.site
            .service_idx(&service)
            .ok_or(Rejection::UnknownService)?;
        let cur = self.called_at(c)?;
        let (id, from_service) = (cur.id.clone(), cur.service.clone());
        let transferred = Event::TicketTransferred {
            id: id.clone(),
            counter,
            from_service,
            service,
            front,
            order: self.order_seq + 1,
            by,
            at: now,
        };
        Ok((vec![transferred], Subject::Ticket(id)))
    }

    // ------------------------------------------------------------ counters

    fn decide_open(&self, counter: String, by: Option<String>, now: Millis) -> Decision {
        let opened = Event::CounterOpened {
            counter: counter.clone(),
            by,
            at: now,
        };
        self.decide_switch(counter, true, opened)
    }

    fn decide_close(&self, counter: String, by: Option<String>, now: Millis) -> Decision {
        let closed = Event::CounterClosed {
            counter: counter.clone(),
            by,
            at: now,
        };
        self.decide_switch(counter, false, closed)
    }

    /// Opening an open counter or closing a closed one succeeds with no event.
    fn decide_switch(&self, counter: String, open: bool, change: Event) -> Decision {
        let c = self.counter_of(&counter)?;
        let events = if self.counters[c].open == open {
            vec![]
        } else {
            vec![change]
        };
        Ok((events, Subject::Counter(counter)))
    }

    // ------------------------------------------------------------ feedback

    fn decide_feedback(
        &self,
        ticket: String,
        rating: u8,
        comment: Option<String>,
        now: Millis,
    ) -> Decision {
        if !(1..=5).contains(&rating) {
            return Err(Rejection::BadRequest(
                "rating phải từ 1 đến 5 (rating must be 1 to 5)".into(),
            ));
        }
        let t = self.ticket(&ticket).ok_or(Rejection::UnknownTicket)?;
        if t.status != TicketStatus::Done {
            return Err(Rejection::NotServed);
        }
        if t.rating.is_some() {
            return Err(Rejection::AlreadyRated);
        }
        let given = Event::FeedbackGiven {
            id: ticket.clone(),
            rating,
            comment,
            at: now,
        };
        Ok((vec![given], Subject::Ticket(ticket)))
    }
}

/// The same `request_id` again: the ticket it made when it asks for the same
/// thing, else a refusal.
fn replay(rec: &IdemRec, service: &str, priority: &Option<String>) -> Decision {
    if rec.service == service && rec.priority == *priority {
        Ok((vec![], Subject::Replayed(rec.ticket.clone())))
    } else {
        Err(Rejection::RequestIdReused)
    }
}
