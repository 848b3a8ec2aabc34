//! `[reports]` (contract §9, rule 58): which services count as tests of a
//! visit, and how long a visit may take with 0, 1, 2, 3+ tests.

use toml::Spanned;

use super::check::{Ctx, IdList, number_in};
use super::raw::RawReports;
use super::types::{ConfigError, Reports, Service};

const TEST_SERVICES: IdList = IdList {
    field: "reports.test_services",
    names: "service",
    duplicate: "test service",
};

/// At most this many visit limits (0 tests … 9+ tests).
const MAX_LIMITS: usize = 10;

pub(super) fn parse(
    ctx: &Ctx,
    raw: Option<&RawReports>,
    services: &[Service],
) -> Result<Reports, ConfigError> {
    let mut reports = Reports::default();
    let Some(raw) = raw else {
        return Ok(reports);
    };
    if let Some(list) = &raw.test_services {
        let known = |id: &str| services.iter().any(|s| s.id == id);
        reports.test_services = TEST_SERVICES.read(ctx, "[reports]", list.get_ref(), known)?;
    }
    if let Some(limits) = &raw.visit_limits_min {
        reports.visit_limits_min = visit_limits(ctx, limits)?;
    }
    Ok(reports)
}

fn visit_limits(ctx: &Ctx, limits: &Spanned<Vec<Spanned<i64>>>) -> Result<Vec<u32>, ConfigError> {
    let field = "reports.visit_limits_min";
    let list = limits.get_ref();
    if list.is_empty() || list.len() > MAX_LIMITS {
        return Err(ctx.err(
            limits.span(),
            field,
            format!(
                "give 1 to {MAX_LIMITS} limits in minutes (for visits with 0, 1, 2, … tests), not {}",
                list.len()
            ),
        ));
    }
    list.iter()
        .map(|m| number_in(ctx, m, field, 1..=1440, "minutes a visit may take"))
        .collect()
}
