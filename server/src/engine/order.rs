//! The order in which steps are called: rules 18, 36, 53 and 65 in one place.
//!
//! `CallOrder` walks the waiting steps of a counter's lines in exactly the
//! order successive `next` calls would take them, from the counter's current
//! priority and returning runs: first steps joined ahead (rule 36), then its
//! returning patients as the returning ratio allows (rule 53), then rule 18
//! (priority classes up to the ratio, then normal steps by the counter's
//! policy: its first service that has one, or the longest wait). Busy steps
//! (their ticket is called elsewhere, rule 51) are passed over. Calling next
//! takes its first item; the board's `next_numbers` (rule 23) take the first
//! five for a counter serving only the service's shared line. Nothing here
//! changes state.

use std::collections::btree_map;
use std::iter::Peekable;

use super::lines::{LineKey, Place};
use super::{State, StepRef, TicketRec};
use crate::config::Policy;

/// One line's range of buckets, with the rank of its service in the counter's order.
struct Cursor<'a> {
    rank: usize,
    it: Peekable<btree_map::Range<'a, Place, StepRef>>,
}

/// Waiting steps in call order (see the module doc).
pub struct CallOrder<'a> {
    state: &'a State,
    front: Vec<Cursor<'a>>,
    returning: Vec<Cursor<'a>>,
    priority: Vec<Cursor<'a>>,
    normal: Vec<Cursor<'a>>,
    policy: Policy,
    returning_ratio: u32,
    run: u32,
    returning_run: u32,
    /// Tickets already taken by this walk: their other steps are busy now.
    taken: Vec<usize>,
}

/// The lines of one walk: (rank, line, returning).
type LineSet = Vec<(usize, LineKey, bool)>;

impl State {
    /// The order in which counter `c` would call, from its current runs.
    pub(crate) fn counter_order(&self, c: usize) -> CallOrder<'_> {
        let def = &self.site.counters[c];
        let mut lines: LineSet = Vec::new();
        for (rank, &s) in def.services.iter().enumerate() {
            lines.push((rank, LineKey::Shared(s), false));
            for returning in [false, true] {
                let key = LineKey::Bound {
                    counter: c,
                    service: s,
                    returning,
                };
                lines.push((rank, key, returning));
            }
        }
        let cs = &self.counters[c];
        self.walk(
            lines,
            def.policy,
            def.returning_ratio,
            cs.run,
            cs.returning_run,
        )
    }

    /// The order in which a counter serving only `service`'s shared line
    /// would call (rule 23).
    pub(crate) fn shared_order(&self, service: usize) -> CallOrder<'_> {
        let lines = vec![(0, LineKey::Shared(service), false)];
        self.walk(lines, Policy::Preference, 0, 0, 0)
    }

    fn walk(
        &self,
        lines: LineSet,
        policy: Policy,
        returning_ratio: u32,
        run: u32,
        returning_run: u32,
    ) -> CallOrder<'_> {
        let normal = self.site.normal_bucket();
        let mut w = CallOrder {
            state: self,
            front: vec![],
            returning: vec![],
            priority: vec![],
            normal: vec![],
            policy,
            returning_ratio,
            run,
            returning_run,
            taken: vec![],
        };
        for (rank, key, returning) in lines {
            let Some(line) = self.lines.get(key) else {
                continue;
            };
            let range = |from: u8, to: u8| Cursor {
                rank,
                it: line
                    .waiting
                    .range((from, i64::MIN, 0, 0)..(to, i64::MIN, 0, 0))
                    .peekable(),
            };
            w.front.push(range(0, 1));
            if returning {
                w.returning.push(range(1, u8::MAX));
            } else {
                w.priority.push(range(1, normal));
                w.normal.push(range(normal, u8::MAX));
            }
        }
        w
    }
}

impl CallOrder<'_> {
    /// Whether a step may be taken now (not busy, not of a ticket taken).
    fn callable(&self, (t, _): StepRef) -> bool {
        !self.taken.contains(&t) && !self.state.busy(t)
    }

    /// The next callable entry of a cursor, passing over the others.
    fn peek(&self, c: &mut Cursor<'_>) -> Option<(Place, StepRef)> {
        while let Some((p, r)) = c.it.peek().map(|(p, r)| (**p, **r)) {
            if self.callable(r) {
                return Some((p, r));
            }
            c.it.next();
        }
        None
    }

    fn any_callable(&self, cursors: &mut [Cursor<'_>]) -> bool {
        cursors.iter_mut().any(|c| self.peek(c).is_some())
    }

    /// Takes the earliest entry across `cursors`: by bucket, place time and
    /// join, then the counter's service order, then the step (rules 50, 65).
    fn take_min(&self, cursors: &mut [Cursor<'_>]) -> Option<StepRef> {
        let best = cursors
            .iter_mut()
            .enumerate()
            .filter_map(|(i, c)| {
                let (p, _) = self.peek(c)?;
                Some((i, (p.0, p.1, p.2, c.rank, p.3)))
            })
            .min_by_key(|(_, k)| *k)?
            .0;
        cursors[best].it.next().map(|(_, r)| *r)
    }

    /// Rule 18's last branch: a normal step by the counter's policy.
    fn take_normal(&mut self) -> Option<StepRef> {
        let mut normal = std::mem::take(&mut self.normal);
        let got = match self.policy {
            Policy::LongestWait => self.take_min(&mut normal),
            Policy::Preference => {
                let first = normal
                    .iter_mut()
                    .filter_map(|c| self.peek(c).map(|_| c.rank))
                    .min();
                first.and_then(|rank| {
                    let mut of_rank: Vec<&mut Cursor<'_>> =
                        normal.iter_mut().filter(|c| c.rank == rank).collect();
                    let best = of_rank
                        .iter_mut()
                        .enumerate()
                        .filter_map(|(i, c)| self.peek(c).map(|(p, _)| (i, p)))
                        .min_by_key(|(_, p)| *p)?
                        .0;
                    of_rank[best].it.next().map(|(_, r)| *r)
                })
            }
        };
        self.normal = normal;
        got
    }

    /// Rule 53's (2), then rule 18.
    fn take_after_front(&mut self) -> Option<StepRef> {
        let mut returning = std::mem::take(&mut self.returning);
        let mut priority = std::mem::take(&mut self.priority);
        let mut normal = std::mem::take(&mut self.normal);
        let returning_waits = self.any_callable(&mut returning);
        let priority_waits = self.any_callable(&mut priority);
        let normal_waits = self.any_callable(&mut normal);
        let others = priority_waits || normal_waits;
        let got = if returning_waits
            && (self.returning_ratio == 0 || !others || self.returning_run < self.returning_ratio)
        {
            self.take_min(&mut returning)
        } else if priority_waits && (!normal_waits || self.run < self.state.site.ratio) {
            self.take_min(&mut priority)
        } else {
            self.normal = normal;
            let n = self.take_normal();
            normal = std::mem::take(&mut self.normal);
            n
        };
        (self.returning, self.priority, self.normal) = (returning, priority, normal);
        got
    }
}

impl Iterator for CallOrder<'_> {
    type Item = StepRef;

    fn next(&mut self) -> Option<StepRef> {
        let mut front = std::mem::take(&mut self.front);
        let got = self.take_min(&mut front);
        self.front = front;
        let r = match got {
            Some(r) => r,
            None => self.take_after_front()?,
        };
        let (t, k) = r;
        let ticket = &self.state.tickets[t];
        (self.run, self.returning_run) = runs_after_call(
            self.run,
            self.returning_run,
            ticket,
            ticket.steps[k].returning,
        );
        self.taken.push(t);
        Some(r)
    }
}

/// A counter's priority and returning runs after it calls a step of `t`:
/// a returning step adds to the returning run and leaves the priority run
/// as it is; any other resets the returning run, and adds to the priority
/// run if the ticket has a class, else resets it (rules 18, 53).
pub(super) fn runs_after_call(
    run: u32,
    returning_run: u32,
    t: &TicketRec,
    returning: bool,
) -> (u32, u32) {
    if returning {
        (run, returning_run + 1)
    } else if t.priority.is_some() {
        (run + 1, 0)
    } else {
        (0, 0)
    }
}
