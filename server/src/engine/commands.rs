//! Command decisions: whether a command is allowed in the current state and
//! which events it causes, in the order of checks the contract gives.
//!
//! `decide` dispatches each command to one small `decide_*` method. Nothing
//! here changes `State`: the events decided here are applied by
//! `State::apply_event` (in `events.rs`), the only code that does.

use luot_protocol::{Identity, MAX_STOPS, TicketStatus};

use super::identity::Fresh;
use super::ledger::WalkIn;
use super::lines::LineKey;
use super::{
    Command, Event, IdemRec, Millis, Named, NewStep, Rejection, State, StepRec, StepRef, StopReq,
    Subject, TicketRec,
};

/// What a ticket carries beyond its service and class (§11).
pub(super) struct TicketExtra {
    pub person: Option<String>,
    pub session: Option<String>,
    pub appointment: Option<String>,
    pub external_ref: Option<String>,
    /// Its place time (rule 79): now for a walk-in, the slot for a check-in.
    pub place_at: Millis,
}

/// An issue as asked (the fields of `Command::Issue`).
struct IssueAsk {
    scope: String,
    request_id: String,
    service: String,
    priority: Option<String>,
    ticket_id: String,
    identity: Option<Identity>,
    limited: bool,
    external_ref: Option<String>,
    fresh: Fresh,
}

/// The events a command causes and what it is about, or why it is refused.
pub(super) type Decision = Result<(Vec<Event>, Subject), Rejection>;

impl State {
    /// Decides the events of a command without changing anything.
    pub(super) fn decide(&self, cmd: Command, now: Millis) -> Decision {
        match cmd {
            Command::Tick => Ok((self.expiries(now), Subject::Nothing)),
            Command::Notify(cmd) => self.decide_notify(*cmd, now),
            Command::NotifyErase { ticket } => self.decide_notify_erase(ticket),
            Command::NotifyDrop {
                ticket,
                endpoint,
                nonce,
            } => Ok((
                self.notify_drop(&ticket, &endpoint, &nonce)
                    .into_iter()
                    .collect(),
                Subject::Nothing,
            )),
            Command::VapidKey { key } => {
                let made = self.vapid.is_none().then_some(Event::VapidKey { key });
                Ok((made.into_iter().collect(), Subject::Nothing))
            }
            Command::Issue {
                scope,
                request_id,
                service,
                priority,
                ticket_id,
                identity,
                limited,
                external_ref,
                fresh,
            } => {
                let ask = IssueAsk {
                    scope,
                    request_id,
                    service,
                    priority,
                    ticket_id,
                    identity,
                    limited,
                    external_ref,
                    fresh,
                };
                self.decide_issue(ask, now)
            }
            Command::Book(cmd) => self.decide_book(*cmd, now),
            Command::CancelBooking { id, only, by } => {
                self.decide_cancel_booking(id, only, by, now)
            }
            Command::CheckIn(cmd) => self.decide_check_in(*cmd, now),
            Command::Next { counter, by } => self.decide_next(counter, by, now),
            Command::Recall { counter, by } => self.decide_called(counter, by, now, Act::Recall),
            Command::Done { counter, by } => self.decide_called(counter, by, now, Act::Done),
            Command::NoShow { counter, by } => self.decide_called(counter, by, now, Act::NoShow),
            Command::Transfer {
                counter,
                by,
                service,
                front,
            } => self.decide_transfer(counter, by, service, front, now),
            Command::Send {
                counter,
                by,
                stops,
                return_here,
                ticket,
            } => self.decide_send(counter, by, stops, return_here, ticket, now),
            Command::Call {
                counter,
                by,
                ticket,
            } => self.decide_call(counter, by, ticket, now),
            Command::Hold {
                counter,
                by,
                reason,
                ticket,
            } => self.decide_hold(counter, by, reason, ticket, now),
            Command::Requeue {
                counter,
                by,
                ticket,
                front,
            } => self.decide_requeue(counter, by, ticket, front, now),
            Command::Cancel {
                counter,
                by,
                reason,
                ticket,
            } => self.decide_cancel(counter, by, reason, ticket, now),
            Command::Open { counter, by } => self.decide_open(counter, by, now),
            Command::Close { counter, by } => self.decide_close(counter, by, now),
            Command::Feedback {
                ticket,
                rating,
                comment,
            } => self.decide_feedback(ticket, rating, comment, now),
        }
    }

    /// Rules 18, 36, 53, 65: the step counter `c` would call next.
    pub(super) fn pick_next(&self, c: usize) -> Option<StepRef> {
        self.counter_order(c).next()
    }

    // ------------------------------------------------------------ lookups

    fn counter_of(&self, id: &str) -> Result<usize, Rejection> {
        self.site.counter_idx(id).ok_or(Rejection::UnknownCounter)
    }

    /// The step called at counter `c`.
    fn called_at(&self, c: usize) -> Result<StepRef, Rejection> {
        self.counters[c].serving.ok_or(Rejection::NothingCalled)
    }

    /// A ticket named by id or today's number (rule 60).
    fn named(&self, n: &Named) -> Result<usize, Rejection> {
        let found = match n {
            Named::Id(id) => self.by_id.get(id),
            Named::Number(number) => self.by_number.get(number),
        };
        found.copied().ok_or(Rejection::UnknownTicket)
    }

    fn id_of(&self, t: usize) -> String {
        self.tickets[t].id.clone()
    }

    // ------------------------------------------------------------ issue

    /// Rule 24's replay, the 400s and 404, then rules 73–75 and 82 for a
    /// kiosk's or integration's walk-in (`limited`).
    fn decide_issue(&self, ask: IssueAsk, now: Millis) -> Decision {
        let birth = self.check_identity(ask.identity.as_ref(), now)?;
        let derived = self.derived_class(birth, self.today(now));
        let priority = self.resolved_class(ask.priority.as_deref(), derived.as_deref());
        if let Some(rec) = self.idem.get(&(ask.scope.clone(), ask.request_id.clone())) {
            return replay(rec, &ask.service, &priority);
        }
        self.check_priority(ask.priority.as_deref())?;
        let s = self
            .site
            .service_idx(&ask.service)
            .ok_or(Rejection::UnknownService)?;
        if self.by_id.contains_key(&ask.ticket_id) {
            return Err(Rejection::BadRequest("duplicate ticket id".into()));
        }
        let mut events = Vec::new();
        let person = ask.identity.as_ref().map(|i| {
            let (p, made) = self.person_of(i, self.today(now), &ask.fresh);
            events.extend(made);
            p
        });
        let walk_in = WalkIn {
            limited: ask.limited,
            priority: priority.as_deref(),
            identity: ask.identity.is_some(),
            person: person.as_deref(),
        };
        let session = self.walk_in(s, &walk_in, now)?;
        let extra = TicketExtra {
            person,
            session: Some(session),
            appointment: None,
            external_ref: ask.external_ref,
            place_at: now,
        };
        let ticket = self.new_ticket(ask.ticket_id.clone(), s, ask.service, priority, now, extra);
        events.push(Event::TicketIssued {
            ticket,
            scope: ask.scope,
            request_id: ask.request_id,
        });
        Ok((events, Subject::Ticket(ask.ticket_id)))
    }

    fn check_priority(&self, priority: Option<&str>) -> Result<(), Rejection> {
        match priority {
            Some(p) if self.site.class_idx(p).is_none() => Err(Rejection::BadRequest(format!(
                "Không có diện ưu tiên \"{p}\" (unknown priority class)"
            ))),
            _ => Ok(()),
        }
    }

    /// The next ticket of service `s` (index of `service`), issued at `now`:
    /// one step, waiting in the service's shared line from its place time.
    pub(super) fn new_ticket(
        &self,
        id: String,
        s: usize,
        service: String,
        priority: Option<String>,
        now: Millis,
        extra: TicketExtra,
    ) -> TicketRec {
        let place_at = extra.place_at;
        let n = self.numbers[s] + 1;
        let step = StepRec {
            status: TicketStatus::Waiting,
            place_at,
            join: self.order_seq + 1,
            waiting_since: Some(place_at),
            first_joined_at: Some(place_at),
            ..StepRec::pending(1, service.clone())
        };
        TicketRec {
            id,
            number: self.site.number(s, n),
            n,
            issued_service: service,
            priority,
            issued_at: now,
            day: self.day.unwrap_or_else(|| self.site.day_of(now)),
            visit: false,
            cancelled: None,
            steps: vec![step],
            rating: None,
            comment: None,
            appointment: extra.appointment,
            external_ref: extra.external_ref,
            person: extra.person,
            session: extra.session,
        }
    }

    // ------------------------------------------------------------ counter work

    /// The event that ends the step called at `counter` (rule 22's first half).
    fn finish_called(
        &self,
        c: usize,
        counter: &str,
        by: &Option<String>,
        now: Millis,
    ) -> Option<Event> {
        let (t, k) = self.counters[c].serving?;
        Some(Event::TicketDone {
            id: self.id_of(t),
            counter: counter.to_string(),
            step: k,
            by: by.clone(),
            at: now,
        })
    }

    /// Finishes the step called at the counter, if any, and calls the next.
    fn decide_next(&self, counter: String, by: Option<String>, now: Millis) -> Decision {
        let c = self.counter_of(&counter)?;
        if !self.counters[c].open {
            return Err(Rejection::CounterClosed);
        }
        let (t, k) = self.pick_next(c).ok_or(Rejection::QueueEmpty)?;
        Ok(self.call_step(c, counter, by, (t, k), now))
    }

    /// Finishes the step called at counter `c`, if any, and calls step `k`
    /// of ticket `t` there.
    fn call_step(
        &self,
        c: usize,
        counter: String,
        by: Option<String>,
        (t, k): (usize, usize),
        now: Millis,
    ) -> (Vec<Event>, Subject) {
        let mut events: Vec<Event> = self
            .finish_called(c, &counter, &by, now)
            .into_iter()
            .collect();
        let id = self.id_of(t);
        events.push(Event::TicketCalled {
            id: id.clone(),
            counter,
            step: k,
            by,
            at: now,
        });
        (events, Subject::Ticket(id))
    }

    /// Recall, done or no-show of the step called at the counter.
    fn decide_called(
        &self,
        counter: String,
        by: Option<String>,
        now: Millis,
        act: Act,
    ) -> Decision {
        let c = self.counter_of(&counter)?;
        let (t, step) = self.called_at(c)?;
        let id = self.id_of(t);
        let (id2, at) = (id.clone(), now);
        let e = match act {
            Act::Recall => Event::TicketRecalled {
                id: id2,
                counter,
                step,
                by,
                at,
            },
            Act::Done => Event::TicketDone {
                id: id2,
                counter,
                step,
                by,
                at,
            },
            Act::NoShow => {
                if self.tickets[t].steps[step].calls < self.site.min_calls {
                    return Err(Rejection::TooFewCalls);
                }
                Event::TicketNoShow {
                    id: id2,
                    counter,
                    step,
                    by,
                    at,
                }
            }
        };
        Ok((vec![e], Subject::Ticket(id)))
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
        let (t, step) = self.called_at(c)?;
        let id = self.id_of(t);
        let transferred = Event::TicketTransferred {
            id: id.clone(),
            counter,
            step,
            from_service: self.tickets[t].steps[step].service.clone(),
            service,
            front,
            order: self.order_seq + 1,
            by,
            at: now,
        };
        Ok((vec![transferred], Subject::Ticket(id)))
    }

    // ------------------------------------------------------------ visits

    /// Rule 49: the called step is done and the stops are added.
    fn decide_send(
        &self,
        counter: String,
        by: Option<String>,
        stops: Vec<StopReq>,
        return_here: bool,
        ticket: Option<String>,
        now: Millis,
    ) -> Decision {
        let m = check_stops(&stops)?;
        let c = self.counter_of(&counter)?;
        for s in &stops {
            self.site
                .service_idx(&s.service)
                .ok_or(Rejection::UnknownService)?;
            if let Some(sc) = &s.counter {
                self.counter_of(sc)?;
            }
        }
        let named = ticket.map(|id| self.named(&Named::Id(id))).transpose()?;
        for s in &stops {
            self.check_serves(s)?;
        }
        let (t, k) = self.called_at(c)?;
        if named.is_some_and(|n| n != t) {
            return Err(Rejection::NothingCalled);
        }
        let from = &self.tickets[t].steps[k];
        let mut added: Vec<NewStep> = stops
            .iter()
            .map(|s| NewStep {
                stage: from.stage + s.stage.unwrap_or(1),
                service: s.service.clone(),
                counter: s.counter.clone(),
                returning: false,
            })
            .collect();
        if return_here {
            added.push(NewStep {
                stage: from.stage + m + 1,
                service: from.service.clone(),
                counter: Some(counter.clone()),
                returning: true,
            });
        }
        let id = self.id_of(t);
        let sent = Event::TicketSent {
            id: id.clone(),
            counter,
            step: k,
            stops: added,
            shift: m + u32::from(return_here),
            by,
            at: now,
        };
        Ok((vec![sent], Subject::Ticket(id)))
    }

    /// 400 unless a stop's counter serves its service (rule 49).
    fn check_serves(&self, s: &StopReq) -> Result<(), Rejection> {
        let (Some(sc), Some(sv)) = (&s.counter, self.site.service_idx(&s.service)) else {
            return Ok(());
        };
        let c = self.counter_of(sc)?;
        if self.site.counters[c].services.contains(&sv) {
            return Ok(());
        }
        Err(Rejection::BadRequest(format!(
            "Quầy \"{sc}\" không phục vụ dịch vụ \"{}\" (that counter does not serve that service)",
            s.service
        )))
    }

    /// Rule 61: call a chosen ticket here.
    fn decide_call(
        &self,
        counter: String,
        by: Option<String>,
        named: Named,
        now: Millis,
    ) -> Decision {
        let c = self.counter_of(&counter)?;
        let t = self.named(&named)?;
        let id = self.id_of(t);
        if self.counters[c].serving.is_some_and(|(st, _)| st == t) {
            return Ok((vec![], Subject::Ticket(id)));
        }
        if !self.counters[c].open {
            return Err(Rejection::CounterClosed);
        }
        let k = self.callable_here(t, c)?;
        Ok(self.call_step(c, counter, by, (t, k), now))
    }

    /// The first step (in steps order) of ticket `t` that counter `c` may
    /// call: waiting in its lines or held there (rule 61's 409s otherwise).
    fn callable_here(&self, t: usize, c: usize) -> Result<usize, Rejection> {
        if self.busy(t) {
            return Err(Rejection::TicketBusy);
        }
        let steps = &self.tickets[t].steps;
        let ks = self.in_steps_order(t, (0..steps.len()).collect());
        let here = ks.into_iter().find(|&k| match steps[k].status {
            TicketStatus::Waiting => self.in_lines_of((t, k), c),
            TicketStatus::Held => steps[k].counter.as_deref() == Some(&self.site.counters[c].id),
            _ => false,
        });
        match here {
            Some(k) => Ok(k),
            None if steps.iter().any(|s| s.status == TicketStatus::Held) => {
                Err(Rejection::TicketBusy)
            }
            None => Err(Rejection::NotCallable),
        }
    }

    /// Whether a waiting step is in one of counter `c`'s lines (rule 52).
    fn in_lines_of(&self, r: StepRef, c: usize) -> bool {
        match self.line_of(r) {
            Some((LineKey::Shared(s), _)) => self.site.counters[c].services.contains(&s),
            Some((LineKey::Bound { counter, .. }, _)) => counter == c,
            None => false,
        }
    }

    /// Rule 62: park the called step here with a reason.
    fn decide_hold(
        &self,
        counter: String,
        by: Option<String>,
        reason: String,
        ticket: Option<String>,
        now: Millis,
    ) -> Decision {
        let c = self.counter_of(&counter)?;
        let named = ticket.map(|id| self.named(&Named::Id(id))).transpose()?;
        let (t, step) = self.called_at(c)?;
        if named.is_some_and(|n| n != t) {
            return Err(Rejection::NothingCalled);
        }
        let id = self.id_of(t);
        let held = Event::TicketHeld {
            id: id.clone(),
            counter,
            step,
            reason,
            by,
            at: now,
        };
        Ok((vec![held], Subject::Ticket(id)))
    }

    /// Rule 63: a no-show at this counter within the grace period joins again.
    fn decide_requeue(
        &self,
        counter: String,
        by: Option<String>,
        named: Named,
        front: bool,
        now: Millis,
    ) -> Decision {
        let c = self.counter_of(&counter)?;
        let t = self.named(&named)?;
        let step = self
            .requeueable(t, c, now)
            .ok_or(Rejection::NotRequeueable)?;
        let id = self.id_of(t);
        let requeued = Event::TicketRequeued {
            id: id.clone(),
            counter,
            step,
            front,
            by,
            at: now,
        };
        Ok((vec![requeued], Subject::Ticket(id)))
    }

    /// The ticket's latest step left a no-show at counter `c` within the
    /// grace period, unless the ticket is cancelled.
    fn requeueable(&self, t: usize, c: usize, now: Millis) -> Option<usize> {
        let ticket = &self.tickets[t];
        if ticket.cancelled.is_some() || self.site.no_show_grace_ms == 0 {
            return None;
        }
        let here = Some(self.site.counters[c].id.as_str());
        ticket
            .steps
            .iter()
            .enumerate()
            .filter(|(_, s)| {
                s.no_show && s.status == TicketStatus::NoShow && s.counter.as_deref() == here
            })
            .filter_map(|(k, s)| Some((s.finished_at?, k)))
            .max()
            .filter(|(at, _)| now - at <= self.site.no_show_grace_ms)
            .map(|(_, k)| k)
    }

    /// Rule 64: cancel the called ticket or one this counter may call or requeue.
    fn decide_cancel(
        &self,
        counter: String,
        by: Option<String>,
        reason: String,
        named: Option<Named>,
        now: Millis,
    ) -> Decision {
        let c = self.counter_of(&counter)?;
        let t = match named {
            Some(n) => {
                let t = self.named(&n)?;
                if self.tickets[t].cancelled.is_some() {
                    return Ok((vec![], Subject::Ticket(self.id_of(t))));
                }
                self.cancellable_here(t, c, now)?;
                t
            }
            None => self.called_at(c)?.0,
        };
        let id = self.id_of(t);
        let cancelled = Event::TicketCancelled {
            id: id.clone(),
            counter,
            reason,
            by,
            at: now,
        };
        Ok((vec![cancelled], Subject::Ticket(id)))
    }

    fn cancellable_here(&self, t: usize, c: usize, now: Millis) -> Result<(), Rejection> {
        let called_here = self.counters[c].serving.is_some_and(|(st, _)| st == t);
        if called_here || self.requeueable(t, c, now).is_some() {
            return Ok(());
        }
        self.callable_here(t, c).map(|_| ())
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
        if self.ticket_status(t) != TicketStatus::Done {
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

/// The actions on the step called at a counter that name nothing else.
enum Act {
    Recall,
    Done,
    NoShow,
}

/// Rule 49's 400s on the shape of the stops; the largest stage sent.
fn check_stops(stops: &[StopReq]) -> Result<u32, Rejection> {
    let bad = |m: &str| Err(Rejection::BadRequest(m.to_string()));
    if stops.is_empty() || stops.len() > MAX_STOPS {
        return bad("Cần từ 1 đến 8 điểm đến (stops must be 1 to 8)");
    }
    let stages: Vec<u32> = stops.iter().map(|s| s.stage.unwrap_or(1)).collect();
    if stages.iter().any(|s| !(1..=4).contains(s)) {
        return bad("stage phải từ 1 đến 4 (a stage must be 1 to 4)");
    }
    let m = stages.iter().copied().max().unwrap_or(1);
    if (1..=m).any(|j| !stages.contains(&j)) {
        return bad("Các stage phải liền nhau từ 1 (stages must run 1, 2, … without a gap)");
    }
    for (i, a) in stops.iter().enumerate() {
        if stops[..i]
            .iter()
            .any(|b| b.service == a.service && b.counter == a.counter)
        {
            return bad(
                "Hai điểm đến trùng dịch vụ và quầy (two stops with the same service and counter)",
            );
        }
    }
    Ok(m)
}

/// The same `request_id` again: the ticket it made when it asks for the same
/// thing (an issue, not a check-in), else a refusal.
fn replay(rec: &IdemRec, service: &str, priority: &Option<String>) -> Decision {
    if rec.service == service && rec.priority == *priority && rec.appointment.is_none() {
        Ok((vec![], Subject::Replayed(rec.ticket.clone())))
    } else {
        Err(Rejection::RequestIdReused)
    }
}

/// Phone alerts (rules 93–94): registering, erasing and dropping contacts,
/// sealed under the ticket's day key; and what the planner and the
/// notifier read of them.
impl State {
    /// 404, 409 `not_waiting`, 409 `notify_off`, 429, in this order; the
    /// contacts merged into the kept ones and sealed anew.
    fn decide_notify(&self, cmd: super::NotifyCmd, _now: Millis) -> Decision {
        let t = self.ticket(&cmd.ticket).ok_or(Rejection::UnknownTicket)?;
        if self.ticket_status(t) != TicketStatus::Waiting {
            return Err(Rejection::NotWaiting);
        }
        if cmd.off {
            return Err(Rejection::NotifyOff);
        }
        let rec = self.notify.get(&cmd.ticket);
        if rec.is_some_and(|r| r.calls >= super::notify::MAX_CALLS) {
            return Err(Rejection::TooManyAttempts);
        }
        let day = t.day;
        let mut events = Vec::with_capacity(2);
        let key = match self.book.key(day) {
            Some(k) => *k,
            None => {
                events.push(Event::DayKey {
                    day,
                    key: cmd.fresh,
                });
                cmd.fresh.0
            }
        };
        let mut contacts = rec
            .and_then(|r| r.sealed.as_deref())
            .and_then(|s| super::notify::unseal(&key, s))
            .unwrap_or_default();
        contacts.merge(cmd.contacts);
        events.push(Event::NotifySet {
            id: cmd.ticket,
            sealed: super::notify::seal(&key, &cmd.nonce, &contacts),
            sms: contacts.phone.is_some(),
            push: u8::try_from(contacts.push.len()).unwrap_or(u8::MAX),
            counted: true,
        });
        Ok((events, Subject::Nothing))
    }

    /// `DELETE /tickets/{id}/notify`: 404 for an unknown ticket of today;
    /// erases its contacts, keeps its count of calls.
    fn decide_notify_erase(&self, ticket: String) -> Decision {
        self.ticket(&ticket).ok_or(Rejection::UnknownTicket)?;
        let kept = self.notify.get(&ticket).is_some_and(|r| r.sealed.is_some());
        let events = match kept {
            true => vec![Event::NotifyErased { id: ticket }],
            false => vec![],
        };
        Ok((events, Subject::Nothing))
    }

    /// A subscription a push service no longer knows, removed (not a call).
    fn notify_drop(&self, ticket: &str, endpoint: &str, nonce: &[u8; 12]) -> Option<Event> {
        let day = self.ticket(ticket)?.day;
        let key = self.book.key(day)?;
        let sealed = self.notify.get(ticket)?.sealed.as_deref()?;
        let mut contacts = super::notify::unseal(key, sealed)?;
        let before = contacts.push.len();
        contacts.push.retain(|s| s.endpoint != endpoint);
        if contacts.push.len() == before {
            return None;
        }
        Some(Event::NotifySet {
            id: ticket.to_string(),
            sealed: super::notify::seal(key, nonce, &contacts),
            sms: contacts.phone.is_some(),
            push: u8::try_from(contacts.push.len()).unwrap_or(u8::MAX),
            counted: false,
        })
    }

    /// A ticket's alert channels as its holder sees them: (sms, push).
    pub fn notify_status(&self, ticket: &str) -> (bool, u8) {
        self.notify
            .get(ticket)
            .map_or((false, 0), |r| (r.sms, r.push))
    }

    /// The tickets with alert contacts kept.
    pub fn notified(&self) -> impl Iterator<Item = &str> {
        self.notify
            .iter()
            .filter(|(_, r)| r.sealed.is_some())
            .map(|(id, _)| id.as_str())
    }

    /// A ticket's contacts, opened with its day's key (for sending only).
    pub fn notify_contacts(&self, ticket: &str) -> Option<super::notify::Contacts> {
        let day = self.ticket(ticket)?.day;
        let key = self.book.key(day)?;
        super::notify::unseal(key, self.notify.get(ticket)?.sealed.as_deref()?)
    }

    /// The site's VAPID private key, once made.
    pub fn vapid(&self) -> Option<[u8; 32]> {
        self.vapid
    }
}
