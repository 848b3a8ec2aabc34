//! `[queue]` (contract §9–10): the calling policy and returning ratio every
//! counter uses unless it sets its own, and the no-show rules. Every field is
//! optional, with the contract's defaults.

use super::check::{Ctx, number_in, policy, returning_ratio};
use super::raw::RawQueue;
use super::types::{ConfigError, Queue};

pub(super) fn parse(ctx: &Ctx, raw: Option<&RawQueue>) -> Result<Queue, ConfigError> {
    let mut queue = Queue::default();
    let Some(raw) = raw else {
        return Ok(queue);
    };
    if let Some(p) = &raw.policy {
        queue.policy = policy(ctx, p, "queue.policy")?;
    }
    if let Some(r) = &raw.returning_ratio {
        queue.returning_ratio = returning_ratio(ctx, r, "queue.returning_ratio")?;
    }
    if let Some(g) = &raw.no_show_grace_min {
        queue.no_show_grace_min = number_in(
            ctx,
            g,
            "queue.no_show_grace_min",
            0..=1440,
            "minutes after a no-show that a requeue is allowed; 0: never",
        )?;
    }
    if let Some(m) = &raw.min_calls_before_no_show {
        queue.min_calls_before_no_show = number_in(
            ctx,
            m,
            "queue.min_calls_before_no_show",
            1..=10,
            "the call and recalls needed before a no-show",
        )?;
    }
    Ok(queue)
}
