//! The order in which tickets are called: rules 18 and 36 in one place.
//!
//! `CallOrder` walks the waiting tickets of a set of services (a counter's, in
//! its order of preference) in exactly the order successive `next` calls would
//! take them, starting from a counter's current priority run. Calling next
//! takes its first item; the board's `next_numbers` (rule 23) take the first
//! five for a counter serving only that service. Nothing here changes state.

use std::collections::btree_map;
use std::iter::Peekable;

use super::{State, run_after_call};

type Waiting<'a> = Peekable<btree_map::Range<'a, (u8, u64), usize>>;

/// Waiting tickets of some services in call order (see the module doc).
pub struct CallOrder<'a> {
    state: &'a State,
    /// Per service, in preference order: transferred-to-front tickets.
    front: Vec<Waiting<'a>>,
    /// Per service: priority tickets, earliest class then oldest first.
    priority: Vec<Waiting<'a>>,
    /// Per service: normal tickets, oldest first.
    normal: Vec<Waiting<'a>>,
    /// Priority calls in a row so far (rule 18's run).
    run: u32,
}

impl State {
    /// The waiting tickets of `services` in the order a counter serving them
    /// (in that order of preference) with a priority run of `run` calls them.
    pub(crate) fn call_order<'a>(&'a self, services: &[usize], run: u32) -> CallOrder<'a> {
        let normal = self.site.normal_bucket();
        let range = |from: (u8, u64), to: Option<(u8, u64)>| {
            services
                .iter()
                .map(move |&s| match to {
                    Some(to) => self.queues[s].waiting.range(from..to).peekable(),
                    None => self.queues[s].waiting.range(from..).peekable(),
                })
                .collect::<Vec<_>>()
        };
        CallOrder {
            state: self,
            front: range((0, 0), Some((1, 0))),
            priority: range((1, 0), Some((normal, 0))),
            normal: range((normal, 0), None),
            run,
        }
    }
}

/// Advances the iterator whose next key is smallest; its ticket.
fn take_min(iters: &mut [Waiting<'_>]) -> Option<usize> {
    let (best, _) = iters
        .iter_mut()
        .enumerate()
        .filter_map(|(i, it)| it.peek().map(|(k, _)| (i, **k)))
        .min_by_key(|(_, k)| *k)?;
    iters[best].next().map(|(_, &t)| t)
}

impl Iterator for CallOrder<'_> {
    /// An index into the state's tickets.
    type Item = usize;

    fn next(&mut self) -> Option<usize> {
        // Rule 36: transferred to the front, earliest transfer first, across
        // the services (the key's order is the time of transfer).
        let i = match take_min(&mut self.front) {
            Some(i) => i,
            None => {
                let priority_waits = self.priority.iter_mut().any(|it| it.peek().is_some());
                let normal_waits = self.normal.iter_mut().any(|it| it.peek().is_some());
                // Rule 18: a priority ticket while the run is below the ratio
                // or no normal ticket waits; else the oldest normal ticket of
                // the first service (in the counter's order) that has one.
                if priority_waits && (!normal_waits || self.run < self.state.site.ratio) {
                    take_min(&mut self.priority)?
                } else {
                    self.normal
                        .iter_mut()
                        .find_map(|it| it.next())?
                        .1
                        .to_owned()
                }
            }
        };
        self.run = run_after_call(self.run, &self.state.tickets[i]);
        Some(i)
    }
}
