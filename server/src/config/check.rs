//! The checks every section shares: where an error is (file and line from a
//! span), what an id may be, ids and values used twice (rule 4: reported at
//! the second occurrence), lists that must name known ids, whole numbers
//! within bounds, and a calling policy (`[queue]` and `[[counters]]`).

use std::collections::HashMap;
use std::ops::Range;

use toml::Spanned;

use super::types::{ConfigError, Policy};

/// The file being parsed, to turn spans into lines.
pub(super) struct Ctx<'a> {
    pub file: &'a str,
    pub text: &'a str,
}

impl Ctx<'_> {
    /// The 1-based line of byte `offset`.
    pub fn line_of(&self, offset: usize) -> usize {
        let end = offset.min(self.text.len());
        self.text.as_bytes()[..end]
            .iter()
            .filter(|b| **b == b'\n')
            .count()
            + 1
    }

    /// An error at the line where `span` starts.
    pub fn err(&self, span: Range<usize>, field: &str, message: String) -> ConfigError {
        ConfigError {
            file: self.file.to_string(),
            line: self.line_of(span.start),
            field: field.to_string(),
            message,
        }
    }
}

/// An id of a service, counter or device: 1-32 of a-z, 0-9, -.
fn valid_id(s: &str) -> bool {
    (1..=32).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// A priority class: 1-32 of a-z, 0-9, _.
pub(super) fn valid_class(s: &str) -> bool {
    (1..=32).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// The values one field has taken so far, to report a duplicate at its
/// second occurrence (rule 4) with the line of the first.
pub(super) struct Seen<'a> {
    /// What a value is, in errors: "service id", "prefix", ...
    what: &'static str,
    field: &'static str,
    first: HashMap<&'a str, usize>,
}

impl<'a> Seen<'a> {
    pub fn new(what: &'static str, field: &'static str) -> Self {
        Seen {
            what,
            field,
            first: HashMap::new(),
        }
    }

    /// Fails when `value` was seen before; else remembers it.
    pub fn check(&mut self, ctx: &Ctx, value: &'a Spanned<String>) -> Result<(), ConfigError> {
        let v = value.get_ref().as_str();
        if let Some(first) = self.first.get(v) {
            return Err(ctx.err(
                value.span(),
                self.field,
                format!(
                    "duplicate {} \"{v}\" (first used at line {first})",
                    self.what
                ),
            ));
        }
        self.first.insert(v, ctx.line_of(value.span().start));
        Ok(())
    }

    /// The id of a service, counter or device: valid, and not used before.
    pub fn check_id(&mut self, ctx: &Ctx, id: &'a Spanned<String>) -> Result<(), ConfigError> {
        if !valid_id(id.get_ref()) {
            return Err(ctx.err(
                id.span(),
                self.field,
                format!(
                    "\"{}\" is not a {} (1-32 of a-z, 0-9, -)",
                    id.get_ref(),
                    self.what
                ),
            ));
        }
        self.check(ctx, id)
    }
}

/// A list of ids that must each name a known one, at most once:
/// `counters.services`, `devices.services`, `users.counters`.
pub(super) struct IdList {
    pub field: &'static str,
    /// What the ids name: "service", "counter".
    pub names: &'static str,
    /// An id given twice, in errors: "service in this counter".
    pub duplicate: &'static str,
}

impl IdList {
    /// The ids of `list` in order. `owner` names the entry in errors
    /// (`counter "quay-1"`); `known` says whether an id exists.
    pub fn read(
        &self,
        ctx: &Ctx,
        owner: &str,
        list: &[Spanned<String>],
        known: impl Fn(&str) -> bool,
    ) -> Result<Vec<String>, ConfigError> {
        let mut seen = Seen::new(self.duplicate, self.field);
        let mut ids = Vec::with_capacity(list.len());
        for id in list {
            if !known(id.get_ref()) {
                return Err(ctx.err(
                    id.span(),
                    self.field,
                    format!("{owner} names unknown {} \"{}\"", self.names, id.get_ref()),
                ));
            }
            seen.check(ctx, id)?;
            ids.push(id.get_ref().clone());
        }
        Ok(ids)
    }
}

/// A whole number within `range`, else an error at its line naming `field`;
/// `what` says what the number means, for the message.
pub(super) fn number_in(
    ctx: &Ctx,
    n: &Spanned<i64>,
    field: &str,
    range: std::ops::RangeInclusive<u32>,
    what: &str,
) -> Result<u32, ConfigError> {
    match u32::try_from(*n.get_ref()) {
        Ok(v) if range.contains(&v) => Ok(v),
        _ => Err(ctx.err(
            n.span(),
            field,
            format!(
                "{} is not between {} and {} ({what})",
                n.get_ref(),
                range.start(),
                range.end()
            ),
        )),
    }
}

/// A calling policy (rule 65): "preference" or "longest_wait".
pub(super) fn policy(ctx: &Ctx, p: &Spanned<String>, field: &str) -> Result<Policy, ConfigError> {
    match p.get_ref().as_str() {
        "preference" => Ok(Policy::Preference),
        "longest_wait" => Ok(Policy::LongestWait),
        other => Err(ctx.err(
            p.span(),
            field,
            format!("\"{other}\" is not a calling policy (\"preference\" or \"longest_wait\")"),
        )),
    }
}

/// A returning ratio (rule 53): 0–100.
pub(super) fn returning_ratio(
    ctx: &Ctx,
    n: &Spanned<i64>,
    field: &str,
) -> Result<u32, ConfigError> {
    number_in(
        ctx,
        n,
        field,
        0..=100,
        "0: returning patients first; N: up to N of them in a row, then one other",
    )
}
