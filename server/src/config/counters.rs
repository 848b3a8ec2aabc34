//! `[[counters]]`: where staff call tickets, each serving known services in
//! its order of preference, with its own calling policy and returning ratio
//! when it sets them (else `[queue]`'s).

use super::check::{Ctx, IdList, Seen, policy, returning_ratio};
use super::raw::RawCounter;
use super::types::{ConfigError, Counter, Service};

const SERVICES: IdList = IdList {
    field: "counters.services",
    names: "service",
    duplicate: "service in this counter",
};

pub(super) fn parse(
    ctx: &Ctx,
    raw: &[RawCounter],
    services: &[Service],
) -> Result<Vec<Counter>, ConfigError> {
    let mut ids = Seen::new("counter id", "counters.id");
    let mut counters = Vec::with_capacity(raw.len());
    for c in raw {
        ids.check_id(ctx, &c.id)?;
        if c.name.get_ref().trim().is_empty() {
            return Err(ctx.err(
                c.name.span(),
                "counters.name",
                "a counter needs a name".into(),
            ));
        }
        if c.services.get_ref().is_empty() {
            return Err(ctx.err(
                c.services.span(),
                "counters.services",
                format!("counter \"{}\" serves no service", c.id.get_ref()),
            ));
        }
        let owner = format!("counter \"{}\"", c.id.get_ref());
        let known = |id: &str| services.iter().any(|s| s.id == id);
        counters.push(Counter {
            id: c.id.get_ref().clone(),
            name: c.name.get_ref().trim().to_string(),
            services: SERVICES.read(ctx, &owner, c.services.get_ref(), known)?,
            policy: c
                .policy
                .as_ref()
                .map(|p| policy(ctx, p, "counters.policy"))
                .transpose()?,
            returning_ratio: c
                .returning_ratio
                .as_ref()
                .map(|r| returning_ratio(ctx, r, "counters.returning_ratio"))
                .transpose()?,
        });
    }
    Ok(counters)
}
