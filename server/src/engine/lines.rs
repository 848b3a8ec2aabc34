//! The waiting lines (rule 52): a waiting step is in its service's shared
//! line, or, when bound to a counter, in that counter's line for its service
//! and `returning` value. Each line is ordered by bucket (joined ahead,
//! priority class, normal), then place time, then the join that placed it,
//! then the step's index. Nothing here decides who is called.

use std::collections::{BTreeMap, HashMap};
use std::ops::Bound::{Excluded, Unbounded};

use super::{Millis, Site, StepRef};

/// Which line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LineKey {
    /// A service's shared line.
    Shared(usize),
    /// A counter's line for a service, of returning steps or not.
    Bound {
        counter: usize,
        service: usize,
        returning: bool,
    },
}

impl LineKey {
    pub fn service(self) -> usize {
        match self {
            LineKey::Shared(s) | LineKey::Bound { service: s, .. } => s,
        }
    }
}

/// A place in a line: (bucket, place time, join, step index).
pub type Place = (u8, Millis, u64, usize);

#[derive(Clone, Debug, Default)]
pub struct Line {
    pub waiting: BTreeMap<Place, StepRef>,
    /// Waiting steps per bucket.
    counts: Vec<u32>,
}

impl Line {
    /// 1 + the steps ahead of `place` in this line (rule 19).
    pub fn position(&self, place: Place) -> u32 {
        let b = place.0 as usize;
        let before: u32 = self.counts[..b].iter().sum();
        // Most lookups are of a recent step: count from the end of its bucket.
        let after_in_bucket = self
            .waiting
            .range((Excluded(place), Unbounded))
            .take_while(|(p, _)| p.0 == place.0)
            .take(64)
            .count() as u32;
        let in_bucket = if after_in_bucket < 64 {
            self.counts[b] - 1 - after_in_bucket
        } else {
            self.waiting
                .range((place.0, Millis::MIN, 0, 0)..place)
                .count() as u32
        };
        before + in_bucket + 1
    }
}

/// Every line of the site.
#[derive(Clone, Debug)]
pub struct Lines {
    lines: HashMap<LineKey, Line>,
    buckets: usize,
    /// Waiting steps per service, in every line.
    waiting: Vec<u32>,
}

impl Lines {
    pub fn new(site: &Site) -> Lines {
        Lines {
            lines: HashMap::new(),
            buckets: site.classes.len() + 2,
            waiting: vec![0; site.services.len()],
        }
    }

    pub fn get(&self, key: LineKey) -> Option<&Line> {
        self.lines.get(&key)
    }

    pub fn insert(&mut self, key: LineKey, place: Place, step: StepRef) {
        let buckets = self.buckets;
        let line = self.lines.entry(key).or_insert_with(|| Line {
            waiting: BTreeMap::new(),
            counts: vec![0; buckets],
        });
        if line.waiting.insert(place, step).is_none() {
            line.counts[place.0 as usize] += 1;
            self.waiting[key.service()] += 1;
        }
    }

    pub fn remove(&mut self, key: LineKey, place: Place) {
        if let Some(line) = self.lines.get_mut(&key)
            && line.waiting.remove(&place).is_some()
        {
            line.counts[place.0 as usize] -= 1;
            self.waiting[key.service()] -= 1;
        }
    }

    /// Waiting steps of a service, in every line.
    pub fn waiting(&self, service: usize) -> u32 {
        self.waiting[service]
    }

    /// The lines of a service's returning steps, at any counter.
    pub fn returning_of(&self, service: usize) -> impl Iterator<Item = &Line> {
        self.lines.iter().filter_map(move |(k, l)| match k {
            LineKey::Bound {
                service: s,
                returning: true,
                ..
            } if *s == service => Some(l),
            _ => None,
        })
    }
}
