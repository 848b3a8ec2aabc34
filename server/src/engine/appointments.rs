//! Appointments and people (§11): booking (rule 76), cancelling, check-in
//! (rules 78, 79), expiry, the walk-in checks of rule 75 in the contract's
//! order, the per-person cap (rule 82), and bookings as clients see them.
//! Decisions only: the events decided here are applied by `events.rs`.
//! Identity is checked and hashed with `identity.rs`; no ID number or birth
//! date is kept in any event, record or view.

use chrono::NaiveDate;
use luot_protocol::{Appointment, AppointmentStatus, Identity};

use super::commands::{Decision, TicketExtra};
use super::identity::{self, Fresh, person_hash};
use super::ledger::{AppointmentRec, ListFilter, WalkIn};
use super::{BookCmd, Booking, CheckInCmd, Event, Millis, Rejection, State, Subject, TicketRec};
use crate::config::{IdentityRule, WalkIns};

impl State {
    // ------------------------------------------------------------ people

    /// The birth date of an identity checked on today (400 otherwise).
    pub(super) fn check_identity(
        &self,
        identity: Option<&Identity>,
        now: Millis,
    ) -> Result<Option<NaiveDate>, Rejection> {
        identity
            .map(|i| identity::birth_date(i, self.today(now)))
            .transpose()
            .map_err(|m| Rejection::BadRequest(m.into()))
    }

    /// The class a birth date gives on `day` (rule 80).
    pub(super) fn derived_class(&self, birth: Option<NaiveDate>, day: NaiveDate) -> Option<String> {
        let age = identity::age(birth?, day);
        identity::age_class(&self.site.classes, &self.site.age_priority, age)
    }

    /// Of the class sent and the one derived, the earlier (rule 80).
    pub(super) fn resolved_class(
        &self,
        sent: Option<&str>,
        derived: Option<&str>,
    ) -> Option<String> {
        identity::earlier(&self.site.classes, sent, derived)
    }

    /// A person's hash on `day` and, when the day has no key yet, the event
    /// that makes one from the caller's random bytes (rule 81).
    pub(super) fn person_of(
        &self,
        identity: &Identity,
        day: NaiveDate,
        fresh: &Fresh,
    ) -> (String, Option<Event>) {
        match self.book.key(day) {
            Some(k) => (person_hash(k, identity), None),
            None => {
                let made = Event::DayKey { day, key: *fresh };
                (person_hash(&fresh.0, identity), Some(made))
            }
        }
    }

    /// Rule 82: a person's tickets of `day` and bookings still `booked` on it.
    fn holdings(&self, day: NaiveDate, person: &str, now: Millis) -> u32 {
        let tickets = if day == self.today(now) {
            self.counted.of_person(person)
        } else {
            0
        };
        tickets + self.book.person_booked(day, person)
    }

    fn person_full(&self, day: NaiveDate, person: Option<&str>, now: Millis) -> bool {
        let cap = self.site.person_cap;
        cap > 0 && person.is_some_and(|p| self.holdings(day, p, now) >= cap)
    }

    // ------------------------------------------------------------ walk-ins

    /// Rules 73–75 and 82 for an issue of service `s`, in the contract's
    /// order: the session it counts in, or why it is refused. Staff and
    /// admin issues are never refused and count in the last session once
    /// all are over.
    pub(super) fn walk_in(
        &self,
        s: usize,
        w: &WalkIn<'_>,
        now: Millis,
    ) -> Result<String, Rejection> {
        let svc = &self.site.services[s];
        let Some(k) = self.session_at(s, now) else {
            if w.limited {
                return Err(Rejection::ServiceClosed);
            }
            let last = svc.sessions.len() - 1;
            return Ok(svc.sessions[last].id.clone());
        };
        if w.limited {
            let needs_booking = match svc.walk_ins {
                WalkIns::All => false,
                WalkIns::Priority => w.priority.is_none(),
                WalkIns::None => true,
            };
            if needs_booking {
                return Err(Rejection::AppointmentRequired);
            }
            if svc.identity == IdentityRule::Required && !w.identity {
                return Err(Rejection::IdentityRequired);
            }
            if self.person_full(self.today(now), w.person, now) {
                return Err(Rejection::PersonLimit);
            }
            self.check_caps(s, k, now)?;
        }
        Ok(svc.sessions[k].id.clone())
    }

    // ------------------------------------------------------------ booking

    /// `POST /appointments` (rule 76): replay, `unknown_slot`, then
    /// `booking_closed`, `slot_full`, `person_limit`.
    pub(super) fn decide_book(&self, cmd: BookCmd, now: Millis) -> Decision {
        let s = self
            .site
            .service_idx(&cmd.service)
            .ok_or(Rejection::UnknownService)?;
        let birth = self.check_identity(cmd.identity.as_ref(), now)?;
        if let Some(rec) = self.book.replay(&cmd.scope, &cmd.request_id) {
            return self.book_replay(rec, &cmd);
        }
        if self.book.get(&cmd.appointment_id).is_some() {
            return Err(Rejection::BadRequest("duplicate appointment id".into()));
        }
        let (day, k) = self.open_slot(s, cmd.slot_at, now)?;
        let svc = &self.site.services[s];
        let sess = &svc.sessions[k];
        let mut events = Vec::new();
        let person = cmd.identity.as_ref().map(|i| {
            let (p, made) = self.person_of(i, day, &cmd.fresh);
            events.extend(made);
            p
        });
        if self.person_full(day, person.as_deref(), now) {
            return Err(Rejection::PersonLimit);
        }
        let derived = self.derived_class(birth, day);
        let rec = AppointmentRec {
            id: cmd.appointment_id.clone(),
            code: self.free_code(&cmd.code_seed),
            service: svc.id.clone(),
            session: sess.id.clone(),
            day,
            slot_at: cmd.slot_at,
            status: AppointmentStatus::Booked,
            priority: self.resolved_class(cmd.priority.as_deref(), derived.as_deref()),
            sent_priority: cmd.priority,
            external_ref: cmd.external_ref,
            identity: person.is_some(),
            person,
            ticket: None,
            booked_by: cmd.by,
            scope: cmd.scope,
            request_id: cmd.request_id,
            created_at: now,
        };
        events.push(Event::AppointmentBooked { appointment: rec });
        Ok((events, Subject::Booking(cmd.appointment_id)))
    }

    /// Rule 76 for a slot: `unknown_slot`, `booking_closed`, `slot_full`;
    /// its day and session when it takes a booking.
    fn open_slot(
        &self,
        s: usize,
        slot_at: Millis,
        now: Millis,
    ) -> Result<(NaiveDate, usize), Rejection> {
        let (day, k) = self.slot_of(s, slot_at).ok_or(Rejection::UnknownSlot)?;
        let (start, _) = self.session_bounds(s, day, k);
        if !self.bookable_day(day, now) || now >= start {
            return Err(Rejection::BookingClosed);
        }
        let svc = &self.site.services[s];
        let sess = &svc.sessions[k];
        let full_slot = self.book.slot_taken(&svc.id, slot_at) >= self.slot_capacity(s, day, k);
        let full_quota = self.book.session(&svc.id, day, &sess.id).taken >= sess.appointment_quota;
        if full_slot || full_quota {
            return Err(Rejection::SlotFull);
        }
        Ok((day, k))
    }

    /// The same `request_id` again: the booking, unless a field changed.
    fn book_replay(&self, rec: &AppointmentRec, cmd: &BookCmd) -> Decision {
        let same_person = match (&cmd.identity, &rec.person, self.book.key(rec.day)) {
            (Some(i), Some(p), Some(k)) => person_hash(k, i) == *p,
            (sent, _, _) => sent.is_some() == rec.identity,
        };
        let same = rec.service == cmd.service
            && rec.slot_at == cmd.slot_at
            && rec.sent_priority == cmd.priority
            && rec.external_ref == cmd.external_ref
            && same_person;
        if same {
            Ok((vec![], Subject::BookingReplayed(rec.id.clone())))
        } else {
            Err(Rejection::RequestIdReused)
        }
    }

    /// The first candidate code no kept booking holds (rule 77).
    fn free_code(&self, seed: &Fresh) -> String {
        identity::code_candidates(seed)
            .find(|c| !self.book.code_taken(c))
            .unwrap_or_default()
    }

    /// A kept booking the caller may see (rule 76: an integration only its own).
    fn visible(&self, id: &str, only: Option<&str>) -> Result<&AppointmentRec, Rejection> {
        self.book
            .get(id)
            .filter(|r| only.is_none_or(|scope| r.scope == scope))
            .ok_or(Rejection::UnknownAppointment)
    }

    fn checkin_window(&self, rec: &AppointmentRec) -> (Millis, Millis) {
        let a = &self.site.appointments;
        (
            rec.slot_at - Millis::from(a.checkin_early_min) * 60_000,
            rec.slot_at + Millis::from(a.checkin_late_min) * 60_000,
        )
    }

    fn checked_in_number(&self, rec: &AppointmentRec) -> Rejection {
        let number = rec
            .ticket
            .as_deref()
            .and_then(|t| self.ticket(t))
            .map(|t| t.number.clone())
            .unwrap_or_default();
        Rejection::AlreadyCheckedIn { number }
    }

    /// `POST /appointments/{id}/cancel`: 200 also when already cancelled.
    pub(super) fn decide_cancel_booking(
        &self,
        id: String,
        only: Option<String>,
        by: Option<String>,
        now: Millis,
    ) -> Decision {
        let rec = self.visible(&id, only.as_deref())?;
        match rec.status {
            AppointmentStatus::Cancelled => return Ok((vec![], Subject::Booking(id))),
            AppointmentStatus::CheckedIn => return Err(self.checked_in_number(rec)),
            AppointmentStatus::Expired => return Err(Rejection::AppointmentExpired),
            AppointmentStatus::Booked if now >= self.checkin_window(rec).1 => {
                return Err(Rejection::AppointmentExpired);
            }
            AppointmentStatus::Booked => {}
        }
        let cancelled = Event::AppointmentCancelled {
            id: id.clone(),
            by,
            at: now,
        };
        Ok((vec![cancelled], Subject::Booking(id)))
    }

    /// Bookings still `booked` whose check-in closed: expired (rule 76).
    pub(super) fn expiries(&self, now: Millis) -> Vec<Event> {
        let late = Millis::from(self.site.appointments.checkin_late_min) * 60_000;
        self.book
            .booked_until(now - late)
            .into_iter()
            .map(|id| Event::AppointmentExpired { id, at: now })
            .collect()
    }

    // ------------------------------------------------------------ check-in

    /// Rule 78: replay, 404, then `appointment_cancelled`,
    /// `already_checked_in`, `appointment_expired`, `too_early`,
    /// `identity_required`, `identity_mismatch`; one commit of
    /// `ticket_issued` and `appointment_checked_in`.
    pub(super) fn decide_check_in(&self, cmd: CheckInCmd, now: Millis) -> Decision {
        let birth = self.check_identity(cmd.identity.as_ref(), now)?;
        let named = match &cmd.booking {
            Booking::Code(c) => self.book.by_code(c),
            Booking::Id(id) => self.book.get(id),
        };
        if let Some(rec) = self.idem.get(&(cmd.scope.clone(), cmd.request_id.clone())) {
            return match (named, &rec.appointment) {
                (Some(b), Some(a)) if b.id == *a => {
                    Ok((vec![], Subject::Replayed(rec.ticket.clone())))
                }
                _ => Err(Rejection::RequestIdReused),
            };
        }
        let rec = named.ok_or(Rejection::UnknownAppointment)?;
        let rec = self.visible(&rec.id, cmd.only.as_deref())?;
        self.check_in_allowed(rec, &cmd, now)?;
        if self.by_id.contains_key(&cmd.ticket_id) {
            return Err(Rejection::BadRequest("duplicate ticket id".into()));
        }
        let (mut events, ticket) = self.checked_in_ticket(rec, &cmd, birth, now)?;
        events.push(Event::TicketIssued {
            ticket,
            scope: cmd.scope,
            request_id: cmd.request_id,
        });
        events.push(Event::AppointmentCheckedIn {
            id: rec.id.clone(),
            ticket: cmd.ticket_id.clone(),
            at: now,
        });
        Ok((events, Subject::Ticket(cmd.ticket_id)))
    }

    /// Rule 78's ticket, placed at the slot (rule 79), and the day key its
    /// person hash needs, if any.
    fn checked_in_ticket(
        &self,
        rec: &AppointmentRec,
        cmd: &CheckInCmd,
        birth: Option<NaiveDate>,
        now: Millis,
    ) -> Result<(Vec<Event>, TicketRec), Rejection> {
        let s = self
            .site
            .service_idx(&rec.service)
            .ok_or(Rejection::UnknownService)?;
        let mut events = Vec::new();
        let today = self.today(now);
        let person = match (&rec.person, &cmd.identity) {
            (Some(p), _) => Some(p.clone()),
            (None, Some(i)) => {
                let (p, made) = self.person_of(i, today, &cmd.fresh);
                events.extend(made);
                Some(p)
            }
            (None, None) => None,
        };
        let derived = self.derived_class(birth, today);
        let extra = TicketExtra {
            person,
            session: Some(rec.session.clone()),
            appointment: Some(rec.id.clone()),
            external_ref: rec.external_ref.clone(),
            place_at: rec.slot_at,
        };
        let priority = self.resolved_class(rec.priority.as_deref(), derived.as_deref());
        let id = cmd.ticket_id.clone();
        let ticket = self.new_ticket(id, s, rec.service.clone(), priority, now, extra);
        Ok((events, ticket))
    }

    /// Rule 78's 409s in order.
    fn check_in_allowed(
        &self,
        rec: &AppointmentRec,
        cmd: &CheckInCmd,
        now: Millis,
    ) -> Result<(), Rejection> {
        let (opens, closes) = self.checkin_window(rec);
        match rec.status {
            AppointmentStatus::Cancelled => return Err(Rejection::AppointmentCancelled),
            AppointmentStatus::CheckedIn => return Err(self.checked_in_number(rec)),
            AppointmentStatus::Expired => return Err(Rejection::AppointmentExpired),
            AppointmentStatus::Booked => {}
        }
        if now >= closes {
            return Err(Rejection::AppointmentExpired);
        }
        if now < opens {
            return Err(Rejection::TooEarly {
                checkin_opens_at: self.site.fmt_time(opens),
            });
        }
        match &cmd.identity {
            None if cmd.kiosk && rec.identity => Err(Rejection::IdentityRequired),
            Some(i) if rec.identity => {
                let key = self.book.key(rec.day);
                let same =
                    matches!((key, &rec.person), (Some(k), Some(p)) if person_hash(k, i) == *p);
                if same {
                    Ok(())
                } else {
                    Err(Rejection::IdentityMismatch)
                }
            }
            _ => Ok(()),
        }
    }

    // ------------------------------------------------------------ views

    pub fn appointment(&self, id: &str) -> Option<&AppointmentRec> {
        self.book.get(id)
    }

    pub fn appointment_by_code(&self, code: &str) -> Option<&AppointmentRec> {
        self.book.by_code(code)
    }

    /// A booking as its maker, staff and admins see it (rule 85 says who
    /// gets only its `brief`).
    pub fn render_appointment(&self, r: &AppointmentRec) -> Appointment {
        let (opens, closes) = self.checkin_window(r);
        let site = &self.site;
        Appointment {
            id: r.id.clone(),
            code: r.code.clone(),
            qr: format!("{}/a/{}", site.public_url.trim_end_matches('/'), r.id),
            service: r.service.clone(),
            session: r.session.clone(),
            day: r.day.to_string(),
            slot_at: site.fmt_time(r.slot_at),
            status: r.status,
            priority: r.priority.clone(),
            external_ref: r.external_ref.clone(),
            identity: r.identity,
            ticket: r.ticket.clone(),
            checkin_opens_at: site.fmt_time(opens),
            checkin_closes_at: site.fmt_time(closes),
            booked_by: r.booked_by.clone(),
            created_at: site.fmt_time(r.created_at),
        }
    }

    /// `GET /appointments`: the bookings of `day` that pass the filters,
    /// by `slot_at`, then `created_at`.
    pub fn appointments(&self, f: &ListFilter<'_>) -> Vec<Appointment> {
        let mut out: Vec<&AppointmentRec> = self
            .book
            .all()
            .filter(|r| r.day == f.day)
            .filter(|r| f.service.is_none_or(|s| r.service == s))
            .filter(|r| f.status.is_none_or(|s| r.status == s))
            .filter(|r| {
                f.external_ref
                    .is_none_or(|x| r.external_ref.as_deref() == Some(x))
            })
            .filter(|r| f.only.is_none_or(|scope| r.scope == scope))
            .collect();
        out.sort_by(|a, b| (a.slot_at, a.created_at, &a.id).cmp(&(b.slot_at, b.created_at, &b.id)));
        out.into_iter()
            .map(|r| self.render_appointment(r))
            .collect()
    }
}
