//! The daily report (contract rules 34, 45 and 59): issued, served,
//! no-shows, wait and service times (mean, nearest-rank p50 and p90) and
//! ratings, per service, counter and staff member.

use std::collections::BTreeMap;

use luot_protocol::{DailyReport, Ratings, ReportRow, TicketStatus};

use super::stats::{span, stats, tenths};
use crate::config::SiteConfig;
use crate::engine::TicketRec;
use crate::engine::render::ticket_status;

#[derive(Default)]
struct Acc {
    issued: u32,
    served: u32,
    no_shows: u32,
    waits: Vec<i64>,
    services: Vec<i64>,
    ratings: Vec<u8>,
    wait_by_hour: BTreeMap<String, Vec<i64>>,
}

impl Acc {
    fn row(mut self, id: &str, with_issued: bool, with_hours: bool) -> ReportRow {
        let ratings = Ratings {
            count: self.ratings.len() as u32,
            mean: if self.ratings.is_empty() {
                None
            } else {
                let m =
                    self.ratings.iter().map(|r| *r as f64).sum::<f64>() / self.ratings.len() as f64;
                Some((m * 100.0).round() / 100.0)
            },
        };
        let wait_by_hour = with_hours.then(|| {
            self.wait_by_hour
                .iter()
                .map(|(h, v)| (h.clone(), tenths(v.iter().sum(), v.len())))
                .collect()
        });
        ReportRow {
            id: id.to_string(),
            issued: with_issued.then_some(self.issued),
            served: self.served,
            no_shows: self.no_shows,
            wait_s: stats(&mut self.waits),
            service_s: stats(&mut self.services),
            ratings,
            wait_by_hour,
        }
    }
}

/// The step of a ticket that finished last (the first of several).
fn last_finished(t: &TicketRec) -> Option<usize> {
    let mut last: Option<(i64, usize)> = None;
    for (k, s) in t.steps.iter().enumerate() {
        if let Some(f) = s.finished_at
            && last.is_none_or(|(l, _)| f > l)
        {
            last = Some((f, k));
        }
    }
    last.map(|(_, k)| k)
}

/// The report of `day` from that day's tickets.
pub fn daily(cfg: &SiteConfig, day: &str, tickets: &[TicketRec]) -> DailyReport {
    let mut services: BTreeMap<&str, Acc> = BTreeMap::new();
    let mut counters: BTreeMap<&str, Acc> = BTreeMap::new();
    let mut staff: BTreeMap<&str, Acc> = BTreeMap::new();
    let tz = cfg.site.timezone;
    for t in tickets {
        let s = services.entry(t.issued_service.as_str()).or_default();
        s.issued += 1;
        // Rule 45: the wait to the ticket's first call, once, under the
        // service it was issued for (and the counter and staff of that call).
        let first = t
            .steps
            .iter()
            .filter_map(|st| st.first_called_at.map(|f| (f, st)))
            .min_by_key(|(f, _)| *f);
        if let Some((first, step)) = first {
            let w = span(t.issued_at, first);
            s.waits.push(w);
            let hour = chrono::DateTime::from_timestamp_millis(t.issued_at)
                .map(|d| d.with_timezone(&tz).format("%H").to_string())
                .unwrap_or_default();
            s.wait_by_hour.entry(hour).or_default().push(w);
            if let Some(c) = &step.counter {
                counters.entry(c.as_str()).or_default().waits.push(w);
            }
            if let Some(u) = &step.finished_by {
                staff.entry(u.as_str()).or_default().waits.push(w);
            }
        }
        // Rule 59: served, no-shows and service times per step; the rating
        // with the step that finished the visit.
        let rated = (ticket_status(t) == TicketStatus::Done)
            .then(|| last_finished(t))
            .flatten();
        for (k, step) in t.steps.iter().enumerate() {
            let rows = [
                Some(services.entry(step.service.as_str()).or_default()),
                step.counter
                    .as_deref()
                    .map(|c| counters.entry(c).or_default()),
                step.finished_by
                    .as_deref()
                    .map(|u| staff.entry(u).or_default()),
            ];
            match step.status {
                TicketStatus::Done => {
                    let took = match (step.called_at, step.finished_at) {
                        (Some(c), Some(f)) => Some(span(c, f)),
                        _ => None,
                    };
                    let rating = t.rating.filter(|_| rated == Some(k));
                    for a in rows.into_iter().flatten() {
                        a.served += 1;
                        a.services.extend(took);
                        a.ratings.extend(rating);
                    }
                }
                TicketStatus::NoShow => {
                    for a in rows.into_iter().flatten() {
                        a.no_shows += 1;
                    }
                }
                _ => {}
            }
        }
    }
    // Every configured service and counter gets a row, in configuration order.
    let mut service_rows = Vec::new();
    for s in &cfg.services {
        service_rows.push(
            services
                .remove(s.id.as_str())
                .unwrap_or_default()
                .row(&s.id, true, true),
        );
    }
    for (id, acc) in services {
        service_rows.push(acc.row(id, true, true));
    }
    let mut counter_rows = Vec::new();
    for c in &cfg.counters {
        counter_rows.push(
            counters
                .remove(c.id.as_str())
                .unwrap_or_default()
                .row(&c.id, false, false),
        );
    }
    for (id, acc) in counters {
        counter_rows.push(acc.row(id, false, false));
    }
    let staff_rows = staff
        .into_iter()
        .map(|(id, a)| a.row(id, false, false))
        .collect();
    DailyReport {
        day: day.to_string(),
        services: service_rows,
        counters: counter_rows,
        staff: staff_rows,
    }
}
