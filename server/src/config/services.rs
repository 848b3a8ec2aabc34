//! `[[services]]`: what a kiosk issues tickets for, each with its own id,
//! prefix and number of digits, and its capacity settings (`sessions`: §11).
//! A site has at least one.

use chrono::NaiveTime;

use super::check::{Ctx, Seen};
use super::raw::RawService;
use super::sessions;
use super::types::{ConfigError, Service};

/// The services in their order; `day_starts_at` places their sessions.
pub(super) fn parse(
    ctx: &Ctx,
    raw: &[RawService],
    day_starts_at: NaiveTime,
) -> Result<Vec<Service>, ConfigError> {
    let mut ids = Seen::new("service id", "services.id");
    let mut prefixes = Seen::new("prefix", "services.prefix");
    let mut services = Vec::with_capacity(raw.len());
    for s in raw {
        services.push(service(ctx, s, &mut ids, &mut prefixes, day_starts_at)?);
    }
    if services.is_empty() {
        return Err(ctx.err(
            0..0,
            "services",
            "the site needs at least one [[services]] entry".into(),
        ));
    }
    Ok(services)
}

fn service<'a>(
    ctx: &Ctx,
    s: &'a RawService,
    ids: &mut Seen<'a>,
    prefixes: &mut Seen<'a>,
    day_starts_at: NaiveTime,
) -> Result<Service, ConfigError> {
    ids.check_id(ctx, &s.id)?;
    let p = s.prefix.get_ref();
    if p.len() > 3 || !p.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(ctx.err(
            s.prefix.span(),
            "services.prefix",
            format!("\"{p}\" is not a prefix (0-3 uppercase letters A-Z)"),
        ));
    }
    prefixes.check(ctx, &s.prefix)?;
    if s.name.get_ref().trim().is_empty() {
        return Err(ctx.err(
            s.name.span(),
            "services.name",
            "a service needs a name".into(),
        ));
    }
    let digits = match &s.digits {
        None => 3,
        Some(d) => match u8::try_from(*d.get_ref()) {
            Ok(n @ 1..=6) => n,
            _ => {
                return Err(ctx.err(
                    d.span(),
                    "services.digits",
                    "digits must be between 1 and 6".into(),
                ));
            }
        },
    };
    let capacity = sessions::parse(ctx, s, day_starts_at)?;
    Ok(Service {
        id: s.id.get_ref().clone(),
        name: s.name.get_ref().trim().to_string(),
        prefix: p.clone(),
        digits,
        daily_cap: capacity.daily_cap,
        walk_ins: capacity.walk_ins,
        identity: capacity.identity,
        sessions: capacity.sessions,
    })
}
