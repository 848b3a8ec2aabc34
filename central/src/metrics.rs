//! Central's Prometheus metrics (`GET /metrics`, rule 115):
//! `luot_central_behind_events{site}`, `luot_central_lag_seconds{site}`,
//! `luot_central_ingested_events_total{site}`, and for the ingest rate and
//! its health `luot_central_batches_total{site,outcome}`,
//! `luot_central_ingest_seconds` and `luot_central_behind_events_total` (the
//! backlog of every site together). Owns the registry and nothing else.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

type Labels = Vec<(String, String)>;

pub struct Metrics {
    registry: Registry,
    behind: Family<Labels, Gauge>,
    backlog: Gauge,
    lag: Family<Labels, Gauge<f64, AtomicU64>>,
    ingested: Family<Labels, Counter>,
    batches: Family<Labels, Counter>,
    pub ingest_seconds: Histogram,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

fn site(id: &str) -> Labels {
    vec![("site".into(), id.into())]
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("luot_central");
        let behind = Family::<Labels, Gauge>::default();
        registry.register(
            "behind_events",
            "Events a site holds that central has not acknowledged (head_seq - acked_seq)",
            behind.clone(),
        );
        let backlog = Gauge::default();
        registry.register(
            "behind_events_total",
            "The backlog of all sites together",
            backlog.clone(),
        );
        let lag = Family::<Labels, Gauge<f64, AtomicU64>>::default();
        registry.register(
            "lag_seconds",
            "Seconds from the newest event's time at the site to its receipt at central",
            lag.clone(),
        );
        let ingested = Family::<Labels, Counter>::default();
        registry.register(
            "ingested_events",
            "Events stored at central (a replayed event is not counted again)",
            ingested.clone(),
        );
        let batches = Family::<Labels, Counter>::default();
        registry.register(
            "batches",
            "Batches answered, by outcome (ok, gap, seq_conflict, bad_request, unavailable)",
            batches.clone(),
        );
        let ingest_seconds = Histogram::new(exponential_buckets(0.0005, 2.0, 16));
        registry.register(
            "ingest_seconds",
            "Time to store one Batch (its transaction)",
            ingest_seconds.clone(),
        );
        Metrics {
            registry,
            behind,
            backlog,
            lag,
            ingested,
            batches,
            ingest_seconds,
        }
    }

    /// Sets a site's behind count and recomputes the total backlog.
    pub fn set_behind(&self, id: &str, behind: u64, all: &[String]) {
        self.behind
            .get_or_create(&site(id))
            .set(i64::try_from(behind).unwrap_or(i64::MAX));
        let total: i64 = all
            .iter()
            .map(|s| self.behind.get_or_create(&site(s)).get())
            .sum();
        self.backlog.set(total);
    }

    pub fn set_lag(&self, id: &str, lag_s: f64) {
        self.lag.get_or_create(&site(id)).set(lag_s);
    }

    pub fn add_ingested(&self, id: &str, n: u64) {
        self.ingested.get_or_create(&site(id)).inc_by(n);
    }

    pub fn batch(&self, id: &str, outcome: &str) {
        let mut l = site(id);
        l.push(("outcome".into(), outcome.into()));
        self.batches.get_or_create(&l).inc();
    }

    /// Every site appears, at 0, before it is first heard from.
    pub fn touch(&self, id: &str) {
        let _ = self.behind.get_or_create(&site(id));
        let _ = self.ingested.get_or_create(&site(id));
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        if encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_contract_names_are_exported() {
        let m = Metrics::new();
        m.set_behind("bv", 7, &["bv".into()]);
        m.set_lag("bv", 1.5);
        m.add_ingested("bv", 3);
        let t = m.render();
        assert!(
            t.contains("luot_central_behind_events{site=\"bv\"} 7"),
            "{t}"
        );
        assert!(
            t.contains("luot_central_lag_seconds{site=\"bv\"} 1.5"),
            "{t}"
        );
        assert!(
            t.contains("luot_central_ingested_events_total{site=\"bv\"} 3"),
            "{t}"
        );
        assert!(t.contains("luot_central_behind_events_total 7"), "{t}");
    }
}
