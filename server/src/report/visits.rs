//! The visits report (contract rule 58): how long whole visits took against
//! the Ministry of Health's limits for visits with 0, 1, 2, 3+ tests
//! (`[reports] visit_limits_min`), and the wait and service time of each
//! kind of step (per service, first visits apart from returns).

use std::collections::BTreeMap;

use luot_protocol::{StepRow, TicketStatus, VisitRow, VisitsReport};

use super::stats::{share, span, stats};
use crate::config::{Reports, SiteConfig};
use crate::engine::TicketRec;
use crate::engine::render::{finished_at, ticket_status};

/// Visits of one row: how many, how many within the limit, their times.
#[derive(Default)]
struct Visits {
    count: u32,
    within: u32,
    totals: Vec<i64>,
}

impl Visits {
    fn add(&mut self, total: i64, within: bool) {
        self.count += 1;
        self.within += u32::from(within);
        self.totals.push(total);
    }

    fn row(mut self, tests: Option<u32>, limit_min: Option<u32>) -> VisitRow {
        VisitRow {
            tests,
            limit_min,
            count: self.count,
            within_limit: self.within,
            share: share(self.within, self.count),
            total_s: stats(&mut self.totals),
        }
    }
}

/// Steps of one service and `returning` value that were called.
#[derive(Default)]
struct Steps {
    count: u32,
    waits: Vec<i64>,
    services: Vec<i64>,
}

/// The visits report of `day` from that day's tickets.
pub fn visits(cfg: &SiteConfig, day: &str, tickets: &[TicketRec]) -> VisitsReport {
    VisitsReport {
        day: day.to_string(),
        visits: visit_rows(cfg, tickets),
        steps: step_rows(cfg, tickets),
    }
}

/// One row per limit (the last also counting more tests), then all visits.
fn visit_rows(cfg: &SiteConfig, tickets: &[TicketRec]) -> Vec<VisitRow> {
    let default = Reports::default().visit_limits_min;
    let limits = match cfg.reports.visit_limits_min.as_slice() {
        [] => default.as_slice(),
        l => l,
    };
    let mut rows: Vec<Visits> = limits.iter().map(|_| Visits::default()).collect();
    let mut all = Visits::default();
    for t in tickets {
        if ticket_status(t) != TicketStatus::Done {
            continue;
        }
        let Some(end) = finished_at(t) else { continue };
        let total = span(t.issued_at, end);
        let i = tests(cfg, t).min(limits.len() - 1);
        let within = total <= 60 * i64::from(limits[i]);
        rows[i].add(total, within);
        all.add(total, within);
    }
    let mut out: Vec<VisitRow> = rows
        .into_iter()
        .zip(limits)
        .enumerate()
        .map(|(i, (v, limit))| v.row(Some(i as u32), Some(*limit)))
        .collect();
    out.push(all.row(None, None));
    out
}

/// How many distinct test services have a done step in the visit.
fn tests(cfg: &SiteConfig, t: &TicketRec) -> usize {
    cfg.reports
        .test_services
        .iter()
        .filter(|s| {
            t.steps
                .iter()
                .any(|st| st.status == TicketStatus::Done && st.service == **s)
        })
        .count()
}

/// One row per service (site order) and `returning` (false first) that has
/// a step called at least once.
fn step_rows(cfg: &SiteConfig, tickets: &[TicketRec]) -> Vec<StepRow> {
    // Keyed by the service's place in the site (services no longer
    // configured last, by id), its id, then `returning`.
    let mut groups: BTreeMap<(usize, &str, bool), Steps> = BTreeMap::new();
    let place = |id: &str| {
        cfg.services
            .iter()
            .position(|s| s.id == id)
            .unwrap_or(usize::MAX)
    };
    for st in tickets.iter().flat_map(|t| &t.steps) {
        let Some(called) = st.first_called_at else {
            continue;
        };
        let g = groups
            .entry((place(&st.service), st.service.as_str(), st.returning))
            .or_default();
        g.count += 1;
        g.waits.extend(st.first_joined_at.map(|j| span(j, called)));
        if st.status == TicketStatus::Done
            && let (Some(c), Some(f)) = (st.called_at, st.finished_at)
        {
            g.services.push(span(c, f));
        }
    }
    groups
        .into_iter()
        .map(|((_, service, returning), mut g)| StepRow {
            service: service.to_string(),
            returning,
            count: g.count,
            wait_s: stats(&mut g.waits),
            service_s: stats(&mut g.services),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use chrono::NaiveDate;
    use luot_protocol::Stats;

    use super::*;
    use crate::engine::{Millis, StepRec};

    const MIN: Millis = 60_000;
    /// 07:00 on the day, in ms since the epoch (any fixed time will do).
    const T0: Millis = 1_795_000_000_000;

    /// The demo site with the lab and a second test service, limits as the
    /// contract's defaults.
    fn site() -> SiteConfig {
        let mut cfg = crate::config::demo_site().0;
        cfg.reports.test_services = vec!["xet-nghiem".into(), "kham-ngoai".into()];
        cfg
    }

    /// A step of `service` that joined at `joined` (minutes after T0), was
    /// first called at `called` and ended `status` at `finished`.
    fn step(service: &str, returning: bool, status: TicketStatus, times: [i64; 3]) -> StepRec {
        let [joined, called, finished] = times.map(|m| T0 + m * MIN);
        StepRec {
            stage: 1,
            service: service.into(),
            counter: None,
            bound: false,
            returning,
            status,
            front: false,
            place_at: joined,
            join: 0,
            waiting_since: Some(joined),
            first_joined_at: Some(joined),
            first_called_at: Some(called),
            called_at: Some(called),
            finished_at: Some(finished),
            held_at: None,
            calls: 1,
            reason: None,
            finished_by: None,
            no_show: status == TicketStatus::NoShow,
        }
    }

    fn done(service: &str, times: [i64; 3]) -> StepRec {
        step(service, false, TicketStatus::Done, times)
    }

    /// A ticket issued at T0 with `steps`.
    fn ticket(id: &str, steps: Vec<StepRec>) -> TicketRec {
        TicketRec {
            id: id.into(),
            number: "A001".into(),
            n: 1,
            issued_service: steps[0].service.clone(),
            priority: None,
            issued_at: T0,
            day: NaiveDate::from_ymd_opt(2026, 11, 22).unwrap_or_default(),
            visit: steps.len() > 1,
            cancelled: None,
            steps,
            rating: None,
            comment: None,
            appointment: None,
            external_ref: None,
            person: None,
            session: None,
        }
    }

    /// A visit of `tests` test stops (each 10 minutes) that ends after
    /// `minutes` in all.
    fn visit(id: &str, tests: &[&str], minutes: i64) -> TicketRec {
        let mut steps = vec![done("kham-noi", [0, 5, 10])];
        for (k, s) in tests.iter().enumerate() {
            let at = 10 + 10 * k as i64;
            steps.push(done(s, [at, at + 5, at + 10]));
        }
        let last = 10 + 10 * tests.len() as i64;
        steps.push(step(
            "kham-noi",
            true,
            TicketStatus::Done,
            [last, last, minutes],
        ));
        ticket(id, steps)
    }

    fn row(r: &VisitsReport, tests: Option<u32>) -> &VisitRow {
        r.visits
            .iter()
            .find(|v| v.tests == tests)
            .unwrap_or_else(|| panic!("no row for {tests:?}"))
    }

    #[test]
    fn visits_are_counted_by_tests_against_their_limits() {
        let tickets = vec![
            // 0 tests: 120 min is within (≤), 121 over.
            visit("t0a", &[], 120),
            visit("t0b", &[], 121),
            // 1 test (the lab twice is one test).
            visit("t1a", &["xet-nghiem", "xet-nghiem"], 180),
            // 2 tests.
            visit("t2a", &["xet-nghiem", "kham-ngoai"], 200),
            visit("t2b", &["kham-ngoai", "xet-nghiem"], 211),
        ];
        let r = visits(&site(), "2026-11-22", &tickets);
        assert_eq!(r.day, "2026-11-22");
        assert_eq!(r.visits.len(), 5, "four limits and all");
        let limits: Vec<_> = r.visits.iter().map(|v| (v.tests, v.limit_min)).collect();
        assert_eq!(
            limits,
            [
                (Some(0), Some(120)),
                (Some(1), Some(180)),
                (Some(2), Some(210)),
                (Some(3), Some(240)),
                (None, None)
            ]
        );
        let zero = row(&r, Some(0));
        assert_eq!(
            (zero.count, zero.within_limit, zero.share),
            (2, 1, Some(0.5))
        );
        assert_eq!(
            zero.total_s,
            Stats {
                mean: Some(7230.0),
                p50: Some(7200.0),
                p90: Some(7260.0)
            }
        );
        let one = row(&r, Some(1));
        assert_eq!((one.count, one.within_limit, one.share), (1, 1, Some(1.0)));
        let two = row(&r, Some(2));
        assert_eq!((two.count, two.within_limit), (2, 1));
        // No visit with 3 tests: counts 0, share and times null.
        let three = row(&r, Some(3));
        assert_eq!((three.count, three.within_limit, three.share), (0, 0, None));
        assert_eq!(three.total_s, Stats::default());
        let all = row(&r, None);
        assert_eq!((all.count, all.within_limit, all.share), (5, 3, Some(0.6)));
        assert_eq!(all.total_s.p50, Some(180.0 * 60.0));
    }

    #[test]
    fn the_last_limit_counts_more_tests_too() {
        let mut cfg = site();
        cfg.reports.test_services =
            vec!["xet-nghiem".into(), "kham-ngoai".into(), "kham-noi".into()];
        cfg.reports.visit_limits_min = vec![100, 150];
        // kham-noi itself is a test here: 1, 2 and 3 tests.
        let tickets = vec![
            visit("a", &[], 60),
            visit("b", &["xet-nghiem"], 150),
            visit("c", &["xet-nghiem", "kham-ngoai"], 151),
        ];
        let r = visits(&cfg, "2026-11-22", &tickets);
        let rows: Vec<_> = r
            .visits
            .iter()
            .map(|v| (v.tests, v.limit_min, v.count, v.within_limit))
            .collect();
        assert_eq!(
            rows,
            [
                (Some(0), Some(100), 0, 0),
                (Some(1), Some(150), 3, 2),
                (None, None, 3, 2)
            ]
        );
    }

    #[test]
    fn only_visits_that_ended_done_count() {
        let waiting = {
            let mut t = visit("w", &["xet-nghiem"], 90);
            let last = t.steps.len() - 1;
            t.steps[last].status = TicketStatus::Waiting;
            t.steps[last].finished_at = None;
            t
        };
        let cancelled = {
            let mut t = ticket(
                "c",
                vec![step("kham-noi", false, TicketStatus::Cancelled, [0, 5, 9])],
            );
            t.cancelled = Some("Bệnh nhân về".into());
            t
        };
        let no_show = ticket(
            "n",
            vec![step("kham-noi", false, TicketStatus::NoShow, [0, 5, 9])],
        );
        let never_sent = ticket("s", vec![done("kham-noi", [0, 2, 3])]);
        let r = visits(
            &site(),
            "2026-11-22",
            &[waiting, cancelled, no_show, never_sent],
        );
        let all = row(&r, None);
        assert_eq!((all.count, all.within_limit), (1, 1), "the one-step ticket");
        assert_eq!(all.total_s.mean, Some(180.0));
        // A test done in a visit still open is no visit yet.
        assert_eq!(row(&r, Some(1)).count, 0);
    }

    #[test]
    fn shares_round_half_up_to_three_decimals() {
        // 2 of 3 within: 0.667; 1 of 8: 0.125; 1 of 16: 0.0625 → 0.063.
        for (within, count, want) in [(2, 3, 0.667), (1, 8, 0.125), (1, 16, 0.063)] {
            let tickets: Vec<_> = (0..count)
                .map(|i| visit(&format!("t{i}"), &[], if i < within { 100 } else { 130 }))
                .collect();
            let r = visits(&site(), "2026-11-22", &tickets);
            assert_eq!(row(&r, Some(0)).share, Some(want), "{within}/{count}");
            assert_eq!(row(&r, None).share, Some(want));
        }
    }

    #[test]
    fn steps_have_their_waits_and_service_times_per_service_and_return() {
        let mut held = step("xet-nghiem", false, TicketStatus::Held, [3, 4, 0]);
        held.finished_at = None;
        let cancelled = {
            // Waited 7 min, called, then the visit was cancelled.
            let mut t = ticket(
                "c",
                vec![step("kham-noi", false, TicketStatus::Cancelled, [0, 7, 9])],
            );
            t.cancelled = Some("Về".into());
            t
        };
        let never_called = {
            let mut s = step("kham-ngoai", false, TicketStatus::Waiting, [0, 0, 0]);
            (s.first_called_at, s.called_at, s.finished_at) = (None, None, None);
            ticket("w", vec![s])
        };
        let tickets = vec![
            // kham-noi: waits 5 min, served 5 min; xet-nghiem 5 and 5;
            // returning kham-noi waits 0, served 10 min (20 → 30).
            visit("a", &["xet-nghiem"], 30),
            // kham-noi: waits 1, served 2; returning: waits 0, served 10.
            ticket(
                "b",
                vec![
                    done("kham-noi", [0, 1, 3]),
                    step("kham-noi", true, TicketStatus::Done, [3, 3, 13]),
                ],
            ),
            ticket("h", vec![held]),
            cancelled,
            never_called,
        ];
        let r = visits(&site(), "2026-11-22", &tickets);
        let rows: Vec<_> = r
            .steps
            .iter()
            .map(|s| (s.service.as_str(), s.returning, s.count))
            .collect();
        // Site order (kham-noi, kham-ngoai, xet-nghiem), first visits before
        // returns; kham-ngoai was never called, so it has no row.
        assert_eq!(
            rows,
            [
                ("kham-noi", false, 3),
                ("kham-noi", true, 2),
                ("xet-nghiem", false, 2)
            ]
        );
        let first = &r.steps[0];
        // Waits 300, 60 and the cancelled step's 420 s.
        assert_eq!(
            first.wait_s,
            Stats {
                mean: Some(260.0),
                p50: Some(300.0),
                p90: Some(420.0)
            }
        );
        // Service times of done steps only: 300 and 120 s.
        assert_eq!(
            first.service_s,
            Stats {
                mean: Some(210.0),
                p50: Some(120.0),
                p90: Some(300.0)
            }
        );
        let back = &r.steps[1];
        assert_eq!(back.wait_s.p90, Some(0.0));
        assert_eq!(back.service_s.mean, Some(600.0));
        // The held lab step waited 60 s and has no service time yet.
        let lab = &r.steps[2];
        assert_eq!(lab.wait_s.mean, Some(180.0));
        assert_eq!(lab.service_s.mean, Some(300.0));
        assert_eq!(lab.service_s.p90, Some(300.0));
    }

    #[test]
    fn times_are_whole_seconds_as_tickets_show_them() {
        let mut t = ticket("a", vec![done("kham-noi", [0, 1, 2])]);
        t.issued_at += 999;
        t.steps[0].first_joined_at = Some(t.issued_at);
        t.steps[0].first_called_at = Some(T0 + MIN + 1);
        t.steps[0].finished_at = Some(T0 + 2 * MIN + 1);
        let r = visits(&site(), "2026-11-22", &[t]);
        // 59.002 s and 119.002 s apart, shown 60 s and 120 s apart.
        assert_eq!(r.steps[0].wait_s.mean, Some(60.0));
        assert_eq!(row(&r, None).total_s.mean, Some(120.0));
        // An empty day: every limit row and the all row, no steps.
        let empty = visits(&site(), "2026-11-21", &[]);
        assert_eq!(empty.visits.len(), 5);
        assert!(
            empty
                .visits
                .iter()
                .all(|v| v.count == 0 && v.share.is_none())
        );
        assert!(empty.steps.is_empty());
    }
}
