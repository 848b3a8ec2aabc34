//! A service's capacity settings (contract §11, rules 73–76): `daily_cap`,
//! `walk_ins`, `identity` and `sessions`, with `check-config`'s rejections,
//! and where a session lies in the site's day.
//!
//! Session times are wall-clock times within the site's day, which runs from
//! `day_starts_at` to the next `day_starts_at`, and they are ordered as the
//! day runs: a time before `day_starts_at` belongs to the small hours at the
//! end of the day. With `day_starts_at = "04:00"`, 23:00–02:00 is a night
//! session (02:00 comes after 23:00) and 01:00–03:00 comes after every
//! session of the afternoon. An `end` equal to `day_starts_at` is the next
//! day's start, so 16:30–05:00 under `day_starts_at = "05:00"` runs to the
//! end of the day. A session whose end does not come after its start in
//! that order would run past `day_starts_at` into the next day, and is
//! refused (equal times are refused as `start >= end`).
//!
//! It never decides what a ticket counts in: the engine does, from
//! [`Session::local_bounds`].

use chrono::{Duration, NaiveDate, NaiveDateTime, NaiveTime, Timelike};
use toml::Spanned;

use super::check::{Ctx, Seen, number_in};
use super::raw::{RawService, RawSession};
use super::types::{ConfigError, IdentityRule, Session, WalkIns};

/// The largest cap or quota: far above any site's day.
const MAX_COUNT: u32 = 1_000_000;
/// Seconds in a day of the wall clock.
const DAY_S: u32 = 24 * 3600;

/// A service's §11 fields, parsed.
pub(super) struct Capacity {
    pub daily_cap: Option<u32>,
    pub walk_ins: WalkIns,
    pub identity: IdentityRule,
    pub sessions: Vec<Session>,
}

pub(super) fn parse(
    ctx: &Ctx,
    s: &RawService,
    day_starts_at: NaiveTime,
) -> Result<Capacity, ConfigError> {
    let daily_cap = s
        .daily_cap
        .as_ref()
        .map(|c| count(ctx, c, "services.daily_cap", "tickets a day"))
        .transpose()?;
    let walk_ins = match &s.walk_ins {
        None => WalkIns::All,
        Some(w) => walk_ins(ctx, w)?,
    };
    let identity = match &s.identity {
        None => IdentityRule::Optional,
        Some(i) => identity(ctx, i)?,
    };
    let sessions = match &s.sessions {
        None => Vec::new(),
        Some(list) => sessions(ctx, list.get_ref(), day_starts_at)?,
    };
    if let (Some(cap), Some(raw)) = (daily_cap, &s.daily_cap) {
        let quotas: u32 = sessions.iter().map(|x| x.appointment_quota).sum();
        if cap < quotas {
            return Err(ctx.err(
                raw.span(),
                "services.daily_cap",
                format!(
                    "service \"{}\": daily_cap {cap} is under its sessions' appointment quotas \
                     together ({quotas}); seats kept for bookings count in the day's cap",
                    s.id.get_ref()
                ),
            ));
        }
    }
    Ok(Capacity {
        daily_cap,
        walk_ins,
        identity,
        sessions,
    })
}

fn walk_ins(ctx: &Ctx, w: &Spanned<String>) -> Result<WalkIns, ConfigError> {
    match w.get_ref().as_str() {
        "all" => Ok(WalkIns::All),
        "priority" => Ok(WalkIns::Priority),
        "none" => Ok(WalkIns::None),
        other => Err(ctx.err(
            w.span(),
            "services.walk_ins",
            format!(
                "\"{other}\" is not a walk-in rule (\"all\", \"priority\": only priority classes, \
                 or \"none\": bookings only)"
            ),
        )),
    }
}

fn identity(ctx: &Ctx, i: &Spanned<String>) -> Result<IdentityRule, ConfigError> {
    match i.get_ref().as_str() {
        "optional" => Ok(IdentityRule::Optional),
        "required" => Ok(IdentityRule::Required),
        other => Err(ctx.err(
            i.span(),
            "services.identity",
            format!(
                "\"{other}\" is not an identity rule (\"optional\", or \"required\": walk-ins \
                 scan their CCCD)"
            ),
        )),
    }
}

/// A cap or quota: 0 to [`MAX_COUNT`].
fn count(ctx: &Ctx, n: &Spanned<i64>, field: &str, what: &str) -> Result<u32, ConfigError> {
    number_in(ctx, n, field, 0..=MAX_COUNT, what)
}

/// A session as read, with where it lies in the site's day (seconds after
/// `day_starts_at`), to compare it with the next.
struct Placed<'a> {
    raw: &'a RawSession,
    start: NaiveTime,
    end: NaiveTime,
    from: u32,
    to: u32,
}

fn sessions(
    ctx: &Ctx,
    list: &[Spanned<RawSession>],
    day_starts_at: NaiveTime,
) -> Result<Vec<Session>, ConfigError> {
    let mut ids = Seen::new("session id", "services.sessions.id");
    let mut out = Vec::with_capacity(list.len());
    let mut previous: Option<Placed> = None;
    for raw in list {
        let raw = raw.get_ref();
        ids.check_id(ctx, &raw.id)?;
        let parsed = session(ctx, raw)?;
        let (from, to) = parsed.offsets(day_starts_at);
        let placed = Placed {
            raw,
            start: parsed.start,
            end: parsed.end,
            from,
            to,
        };
        times_hold(ctx, &placed, day_starts_at)?;
        if let Some(before) = &previous {
            in_order(ctx, before, &placed)?;
        }
        previous = Some(placed);
        out.push(parsed);
    }
    Ok(out)
}

/// One session's own fields.
fn session(ctx: &Ctx, raw: &RawSession) -> Result<Session, ConfigError> {
    let id = raw.id.get_ref();
    let start = time(ctx, &raw.start, "services.sessions.start")?;
    let end = time(ctx, &raw.end, "services.sessions.end")?;
    let cap = raw
        .cap
        .as_ref()
        .map(|c| count(ctx, c, "services.sessions.cap", "tickets this session"))
        .transpose()?;
    let appointment_quota = match &raw.appointment_quota {
        None => 0,
        Some(q) => count(
            ctx,
            q,
            "services.sessions.appointment_quota",
            "seats kept for bookings; 0: no bookings",
        )?,
    };
    if let (Some(cap), Some(q)) = (cap, &raw.appointment_quota)
        && appointment_quota > cap
    {
        return Err(ctx.err(
            q.span(),
            "services.sessions.appointment_quota",
            format!(
                "session \"{id}\": appointment_quota {appointment_quota} is over its cap {cap}; \
                 seats kept for bookings are part of the cap"
            ),
        ));
    }
    let slot_minutes = match &raw.slot_minutes {
        None => 30,
        Some(m) => number_in(
            ctx,
            m,
            "services.sessions.slot_minutes",
            1..=240,
            "minutes between booking slots",
        )?,
    };
    let slot_capacity = raw
        .slot_capacity
        .as_ref()
        .map(|c| {
            number_in(
                ctx,
                c,
                "services.sessions.slot_capacity",
                1..=MAX_COUNT,
                "bookings per slot",
            )
        })
        .transpose()?;
    Ok(Session {
        id: id.clone(),
        start,
        end,
        cap,
        appointment_quota,
        slot_minutes,
        slot_capacity,
    })
}

fn time(ctx: &Ctx, t: &Spanned<String>, field: &str) -> Result<NaiveTime, ConfigError> {
    NaiveTime::parse_from_str(t.get_ref(), "%H:%M").map_err(|_| {
        ctx.err(
            t.span(),
            field,
            format!("\"{}\" is not a time of day like \"07:30\"", t.get_ref()),
        )
    })
}

/// `start < end` in the site's day: not equal, not past `day_starts_at`.
fn times_hold(ctx: &Ctx, s: &Placed, day_starts_at: NaiveTime) -> Result<(), ConfigError> {
    let (id, start, end) = (
        s.raw.id.get_ref(),
        s.raw.start.get_ref(),
        s.raw.end.get_ref(),
    );
    let day = day_starts_at.format("%H:%M");
    let message = if s.start == s.end {
        format!("session \"{id}\" starts and ends at {start}: start must come before end")
    } else if s.from < s.to {
        return Ok(());
    } else if s.start < s.end {
        format!(
            "session \"{id}\" ({start}–{end}) crosses day_starts_at ({day}), where the site's day \
             and its numbers start again: end it by {day} or start it from {day}"
        )
    } else {
        format!(
            "session \"{id}\" ends at {end}, before it starts at {start}: in the site's day, from \
             {day} to {day} the next morning, start must come before end"
        )
    };
    Err(ctx.err(s.raw.end.span(), "services.sessions.end", message))
}

/// A session after the one listed before it, not overlapping it.
fn in_order(ctx: &Ctx, before: &Placed, s: &Placed) -> Result<(), ConfigError> {
    let (id, start) = (s.raw.id.get_ref(), s.raw.start.get_ref());
    let (b_id, b_start, b_end) = (
        before.raw.id.get_ref(),
        before.raw.start.get_ref(),
        before.raw.end.get_ref(),
    );
    let message = if s.from < before.from {
        format!(
            "session \"{id}\" ({start}) is listed after session \"{b_id}\" ({b_start}): list \
             sessions in time order through the site's day"
        )
    } else if s.from < before.to {
        format!(
            "session \"{id}\" starts at {start}, before session \"{b_id}\" ends at {b_end}: \
             sessions must not overlap"
        )
    } else {
        return Ok(());
    };
    Err(ctx.err(s.raw.start.span(), "services.sessions.start", message))
}

/// Seconds after `day_starts_at`, as the site's day runs.
fn after_day_start(t: NaiveTime, day_starts_at: NaiveTime) -> u32 {
    let (t, d) = (
        t.num_seconds_from_midnight(),
        day_starts_at.num_seconds_from_midnight(),
    );
    (t + DAY_S - d) % DAY_S
}

impl Session {
    /// Where the session lies in a site's day that starts at
    /// `day_starts_at`: its start and end in seconds after the day's start
    /// (an end at `day_starts_at` is the next day's start: 86,400).
    pub fn offsets(&self, day_starts_at: NaiveTime) -> (u32, u32) {
        let from = after_day_start(self.start, day_starts_at);
        let to = match after_day_start(self.end, day_starts_at) {
            0 => DAY_S,
            to => to,
        };
        (from, to)
    }

    /// The session's start and end as local times of the site's day that
    /// began on `day` (at `day_starts_at`): a time before `day_starts_at`
    /// falls on the next calendar date.
    pub fn local_bounds(
        &self,
        day: NaiveDate,
        day_starts_at: NaiveTime,
    ) -> (NaiveDateTime, NaiveDateTime) {
        let begun = day.and_time(day_starts_at);
        let (from, to) = self.offsets(day_starts_at);
        (
            begun + Duration::seconds(i64::from(from)),
            begun + Duration::seconds(i64::from(to)),
        )
    }

    /// Its booking slots: `start + k × slot_minutes` while before `end`.
    pub fn slot_count(&self, day_starts_at: NaiveTime) -> u32 {
        let (from, to) = self.offsets(day_starts_at);
        (to - from).div_ceil(self.slot_minutes.max(1) * 60)
    }

    /// Bookings a slot takes: `slot_capacity`, else ceil(quota ÷ slots).
    pub fn capacity_per_slot(&self, day_starts_at: NaiveTime) -> u32 {
        self.slot_capacity.unwrap_or_else(|| {
            self.appointment_quota
                .div_ceil(self.slot_count(day_starts_at).max(1))
        })
    }
}
