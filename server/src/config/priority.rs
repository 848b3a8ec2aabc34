//! `[priority]`: how many priority tickets go before one normal ticket, and
//! the priority classes in the order they are served (by default those of
//! Vietnam's 2023 Law on Medical Examination and Treatment).

use toml::Spanned;

use super::check::{Ctx, Seen, valid_class};
use super::raw::{RawIds, RawPriority};
use super::types::{ConfigError, DEFAULT_PRIORITY_CLASSES, Priority};

/// At most this many classes.
const MAX_CLASSES: usize = 200;

pub(super) fn parse(ctx: &Ctx, raw: Option<&RawPriority>) -> Result<Priority, ConfigError> {
    let mut priority = Priority {
        ratio: 3,
        classes: DEFAULT_PRIORITY_CLASSES
            .iter()
            .map(|s| s.to_string())
            .collect(),
    };
    let Some(raw) = raw else {
        return Ok(priority);
    };
    if let Some(r) = &raw.ratio {
        priority.ratio = ratio(ctx, r)?;
    }
    if let Some(list) = &raw.classes {
        priority.classes = classes(ctx, list)?;
    }
    Ok(priority)
}

fn ratio(ctx: &Ctx, r: &Spanned<i64>) -> Result<u32, ConfigError> {
    match u32::try_from(*r.get_ref()) {
        Ok(n @ 1..=100) => Ok(n),
        _ => Err(ctx.err(
            r.span(),
            "priority.ratio",
            "the ratio must be between 1 and 100 (priority tickets called before one normal ticket)"
                .into(),
        )),
    }
}

fn classes(ctx: &Ctx, list: &RawIds) -> Result<Vec<String>, ConfigError> {
    let mut seen = Seen::new("priority class", "priority.classes");
    let mut classes = Vec::new();
    for c in list.get_ref() {
        if !valid_class(c.get_ref()) {
            return Err(ctx.err(
                c.span(),
                "priority.classes",
                format!(
                    "\"{}\" is not a class id (1-32 of a-z, 0-9, _)",
                    c.get_ref()
                ),
            ));
        }
        seen.check(ctx, c)?;
        classes.push(c.get_ref().clone());
    }
    if classes.len() > MAX_CLASSES {
        return Err(ctx.err(
            list.span(),
            "priority.classes",
            format!("at most {MAX_CLASSES} priority classes"),
        ));
    }
    Ok(classes)
}
