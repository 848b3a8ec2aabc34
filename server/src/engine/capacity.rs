//! Sessions, caps and slots (rules 73, 74, 76): when each session of a
//! service runs on a day, which session a ticket counts in, the seats held
//! for bookings, the `service_full` refusal with its `next_open_at`, the
//! `remaining` that `/site`, `welcome`, snapshots and events show, and the
//! slots bookings take. Reads `State`, never changes it.

use chrono::{Duration, NaiveDate, NaiveTime, TimeZone};
use luot_protocol::{Capacity, SessionSlots, Slot, SlotsResponse};

use super::{Millis, Rejection, State};

impl State {
    /// Today: the state's day, or the day of `now` before the first command.
    pub fn today(&self, now: Millis) -> NaiveDate {
        self.day.unwrap_or_else(|| self.site.day_of(now))
    }

    /// The instant of a wall-clock time within the site's day `day` (rule
    /// 73): a time before `day_starts_at` is on the next date, and so is an
    /// end at `day_starts_at` (the next day's start).
    fn wall(&self, day: NaiveDate, t: NaiveTime, end: bool) -> Millis {
        let start = self.site.day_starts_at;
        let next = if end { t <= start } else { t < start };
        let date = if next { day + Duration::days(1) } else { day };
        let local = date.and_time(t);
        match self.site.tz.from_local_datetime(&local).earliest() {
            Some(x) => x.timestamp_millis(),
            None => local.and_utc().timestamp_millis(),
        }
    }

    /// When session `k` of service `s` starts and ends on `day`.
    pub(super) fn session_bounds(&self, s: usize, day: NaiveDate, k: usize) -> (Millis, Millis) {
        let sess = &self.site.services[s].sessions[k];
        (
            self.wall(day, sess.start, false),
            self.wall(day, sess.end, true),
        )
    }

    /// The session a ticket issued at `now` counts in (rule 73): the one
    /// running, else the next that day; `None` after the last.
    pub(super) fn session_at(&self, s: usize, now: Millis) -> Option<usize> {
        let day = self.today(now);
        (0..self.site.services[s].sessions.len()).find(|&k| now < self.session_bounds(s, day, k).1)
    }

    /// Seats held for bookings in session `k` on `day` at `now` (rule 73):
    /// before its start the larger of quota − check-ins and bookings still
    /// `booked`, then the latter.
    pub(super) fn held(&self, s: usize, day: NaiveDate, k: usize, now: Millis) -> u32 {
        let svc = &self.site.services[s];
        let sess = &svc.sessions[k];
        let b = self.book.session(&svc.id, day, &sess.id);
        if now < self.session_bounds(s, day, k).0 {
            sess.appointment_quota
                .saturating_sub(b.checked_in)
                .max(b.booked)
        } else {
            b.booked
        }
    }

    /// `cap` − tickets counted in session `k` today − its held seats.
    fn session_margin(&self, s: usize, k: usize, now: Millis) -> Option<i64> {
        let svc = &self.site.services[s];
        let cap = svc.sessions[k].cap?;
        let counted = self.counted.in_session(&svc.id, &svc.sessions[k].id);
        let held = self.held(s, self.today(now), k, now);
        Some(i64::from(cap) - i64::from(counted) - i64::from(held))
    }

    /// `daily_cap` − today's tickets − every session's held seats.
    fn daily_margin(&self, s: usize, now: Millis) -> Option<i64> {
        let svc = &self.site.services[s];
        let cap = svc.daily_cap?;
        let day = self.today(now);
        let held: i64 = (0..svc.sessions.len())
            .map(|k| i64::from(self.held(s, day, k, now)))
            .sum();
        Some(i64::from(cap) - i64::from(self.counted.of_service(&svc.id)) - held)
    }

    /// Rule 74: `service_full` for a walk-in counting in session `k`, with
    /// `next_open_at` the session's end when a later one exists that day and
    /// the daily cap did not refuse.
    pub(super) fn check_caps(&self, s: usize, k: usize, now: Millis) -> Result<(), Rejection> {
        let daily_full = self.daily_margin(s, now).is_some_and(|m| m <= 0);
        let session_full = self.session_margin(s, k, now).is_some_and(|m| m <= 0);
        if !daily_full && !session_full {
            return Ok(());
        }
        let later = k + 1 < self.site.services[s].sessions.len();
        let next_open_at = (later && !daily_full).then(|| {
            let end = self.session_bounds(s, self.today(now), k).1;
            self.site.fmt_time(end)
        });
        Err(Rejection::ServiceFull { next_open_at })
    }

    /// Rule 74's `remaining`, `walk_ins` and `identity` of service `s` now.
    pub fn capacity(&self, s: usize, now: Millis) -> Capacity {
        let svc = &self.site.services[s];
        let remaining = match self.session_at(s, now) {
            None => Some(0),
            Some(k) => match (self.daily_margin(s, now), self.session_margin(s, k, now)) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            }
            .map(|m| m.clamp(0, i64::from(u32::MAX)) as u32),
        };
        Capacity {
            remaining,
            walk_ins: svc.walk_ins.as_str().into(),
            identity: svc.identity.as_str().into(),
        }
    }

    /// The slots of session `k`: their start times.
    fn slot_times(&self, s: usize, day: NaiveDate, k: usize) -> Vec<Millis> {
        let sess = &self.site.services[s].sessions[k];
        if sess.appointment_quota == 0 {
            return Vec::new();
        }
        let (start, end) = self.session_bounds(s, day, k);
        let step = Millis::from(sess.slot_minutes.max(1)) * 60_000;
        (0..)
            .map(|i| start + i * step)
            .take_while(|&t| t < end)
            .collect()
    }

    /// Bookings a slot of session `k` takes: `slot_capacity`, by default
    /// ceil(quota ÷ slots).
    pub(super) fn slot_capacity(&self, s: usize, day: NaiveDate, k: usize) -> u32 {
        let sess = &self.site.services[s].sessions[k];
        let slots = self.slot_times(s, day, k).len().max(1) as u32;
        sess.slot_capacity
            .unwrap_or_else(|| sess.appointment_quota.div_ceil(slots))
    }

    /// The day and session whose slot starts at `slot_at` (rule 76: judged
    /// on its time of day, among sessions with a quota).
    pub(super) fn slot_of(&self, s: usize, slot_at: Millis) -> Option<(NaiveDate, usize)> {
        let day = self.site.day_of(slot_at);
        let n = self.site.services[s].sessions.len();
        (0..n)
            .find(|&k| self.slot_times(s, day, k).contains(&slot_at))
            .map(|k| (day, k))
    }

    /// Whether `day` takes bookings at `now`: today … today + `book_ahead_days`.
    pub(super) fn bookable_day(&self, day: NaiveDate, now: Millis) -> bool {
        let today = self.today(now);
        let ahead = Duration::days(i64::from(self.site.appointments.book_ahead_days));
        day >= today && day <= today + ahead
    }

    /// `GET /appointments/slots` of service `s` on `day` (rule 76's table).
    pub fn slots(&self, s: usize, day: NaiveDate, now: Millis) -> SlotsResponse {
        let svc = &self.site.services[s];
        let sessions = (0..svc.sessions.len())
            .map(|k| self.session_slots(s, day, k, now))
            .collect();
        SlotsResponse {
            service: svc.id.clone(),
            day: day.to_string(),
            sessions,
        }
    }

    fn session_slots(&self, s: usize, day: NaiveDate, k: usize, now: Millis) -> SessionSlots {
        let svc = &self.site.services[s];
        let sess = &svc.sessions[k];
        let (start, end) = self.session_bounds(s, day, k);
        let capacity = self.slot_capacity(s, day, k);
        let slots: Vec<Slot> = self
            .slot_times(s, day, k)
            .into_iter()
            .map(|at| Slot {
                at: self.site.fmt_time(at),
                capacity,
                booked: self.book.slot_taken(&svc.id, at),
            })
            .collect();
        SessionSlots {
            id: sess.id.clone(),
            start: self.site.fmt_time(start),
            end: self.site.fmt_time(end),
            open: !slots.is_empty() && self.bookable_day(day, now) && now < start,
            booked: self.book.session(&svc.id, day, &sess.id).taken,
            slots,
        }
    }
}
