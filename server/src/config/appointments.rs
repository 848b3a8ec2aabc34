//! `[appointments]` and `[identity]` (contract §11, rules 76, 80 and 82): how
//! far ahead bookings go and the check-in window, the per-person cap, and the
//! priority classes derived from age.
//!
//! `age_priority` is a table of class → `{min?, max?}`. Without one, the
//! default (`age_75_plus` from 75, `child_under_6` up to 5) applies, less
//! the classes `[priority] classes` does not list; a site's own table
//! replaces it whole (an empty one derives no class) and may only name
//! listed classes. Either way the classes come in `[priority]` order.

use super::check::{Ctx, number_in};
use super::raw::{RawAge, RawAppointments, RawIdentity};
use super::types::{AgeClass, Appointments, ConfigError, Identity, Priority};

/// Ages a bound may give.
const MAX_AGE: u32 = 150;

pub(super) fn appointments(
    ctx: &Ctx,
    raw: Option<&RawAppointments>,
) -> Result<Appointments, ConfigError> {
    let mut a = Appointments::default();
    let Some(raw) = raw else {
        return Ok(a);
    };
    if let Some(d) = &raw.book_ahead_days {
        a.book_ahead_days = number_in(
            ctx,
            d,
            "appointments.book_ahead_days",
            0..=365,
            "days ahead a booking may be made; 0: today only",
        )?;
    }
    if let Some(m) = &raw.checkin_early_min {
        a.checkin_early_min = number_in(
            ctx,
            m,
            "appointments.checkin_early_min",
            0..=1440,
            "minutes before its slot a booking may check in",
        )?;
    }
    if let Some(m) = &raw.checkin_late_min {
        a.checkin_late_min = number_in(
            ctx,
            m,
            "appointments.checkin_late_min",
            0..=1440,
            "minutes after its slot a booking may check in, then it expires",
        )?;
    }
    Ok(a)
}

pub(super) fn identity(
    ctx: &Ctx,
    raw: Option<&RawIdentity>,
    priority: &Priority,
) -> Result<Identity, ConfigError> {
    let listed = |class: &str| priority.classes.iter().position(|c| c == class);
    let mut identity = Identity::default();
    identity.age_priority.retain(|a| listed(&a.class).is_some());
    if let Some(raw) = raw {
        if let Some(m) = &raw.max_tickets_per_person_per_day {
            identity.max_tickets_per_person_per_day = number_in(
                ctx,
                m,
                "identity.max_tickets_per_person_per_day",
                0..=100,
                "tickets and bookings a person may hold a day; 0: no cap",
            )?;
        }
        if let Some(table) = &raw.age_priority {
            // In the file's order, so the first mistake is reported.
            let mut entries: Vec<_> = table.get_ref().iter().collect();
            entries.sort_by_key(|(class, _)| class.span().start);
            identity.age_priority = Vec::with_capacity(entries.len());
            for (class, ages) in entries {
                if listed(class.get_ref()).is_none() {
                    return Err(ctx.err(
                        class.span(),
                        "identity.age_priority",
                        format!(
                            "\"{}\" is not one of [priority] classes ({})",
                            class.get_ref(),
                            priority.classes.join(", ")
                        ),
                    ));
                }
                identity
                    .age_priority
                    .push(age_class(ctx, class.get_ref(), ages)?);
            }
        }
    }
    identity
        .age_priority
        .sort_by_key(|a| listed(&a.class).unwrap_or(usize::MAX));
    Ok(identity)
}

/// One class's ages: at least one bound, `min <= max`.
fn age_class(
    ctx: &Ctx,
    class: &str,
    ages: &toml::Spanned<RawAge>,
) -> Result<AgeClass, ConfigError> {
    let bound = |b: &Option<toml::Spanned<i64>>, field: &str| {
        b.as_ref()
            .map(|n| number_in(ctx, n, field, 0..=MAX_AGE, "an age in years"))
            .transpose()
    };
    let raw = ages.get_ref();
    let min = bound(&raw.min, "identity.age_priority.min")?;
    let max = bound(&raw.max, "identity.age_priority.max")?;
    match (min, max, &raw.min) {
        (None, None, _) => Err(ctx.err(
            ages.span(),
            "identity.age_priority",
            format!("\"{class}\" gives no age: set min, max or both (min = 75, max = 5)"),
        )),
        (Some(lo), Some(hi), Some(at)) if lo > hi => Err(ctx.err(
            at.span(),
            "identity.age_priority",
            format!("\"{class}\": min {lo} is over max {hi}, so no age matches"),
        )),
        _ => Ok(AgeClass {
            class: class.to_string(),
            min,
            max,
        }),
    }
}
