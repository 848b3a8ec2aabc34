//! The reports as CSV: the daily report with rule 34's header, the visits
//! report with rule 58's. A null is an empty field; booleans are `true` and
//! `false`; numbers are written as JSON would (`540`, `12.5`, `0.667`).

use luot_protocol::{DailyReport, REPORT_CSV_HEADER, Stats, VISITS_CSV_HEADER, VisitsReport};

fn num(v: Option<f64>) -> String {
    match v {
        None => String::new(),
        Some(x) if x.fract() == 0.0 => format!("{}", x as i64),
        Some(x) => format!("{x}"),
    }
}

fn opt<T: ToString>(v: Option<T>) -> String {
    v.map(|x| x.to_string()).unwrap_or_default()
}

fn field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// Mean, p50 and p90 as three fields.
fn three(s: &Stats) -> [String; 3] {
    [num(s.mean), num(s.p50), num(s.p90)]
}

/// The header line, then each row's fields joined by commas.
fn lines(header: &str, rows: impl IntoIterator<Item = Vec<String>>) -> String {
    let mut out = String::from(header);
    out.push('\n');
    for cols in rows {
        out.push_str(&cols.join(","));
        out.push('\n');
    }
    out
}

/// The daily report with the header of rule 34: services, counters, staff.
pub fn daily(r: &DailyReport) -> String {
    let rows = [
        ("service", &r.services),
        ("counter", &r.counters),
        ("staff", &r.staff),
    ]
    .into_iter()
    .flat_map(|(kind, rows)| rows.iter().map(move |row| (kind, row)))
    .map(|(kind, row)| {
        let mut cols = vec![
            kind.to_string(),
            field(&row.id),
            opt(row.issued),
            row.served.to_string(),
            row.no_shows.to_string(),
        ];
        cols.extend(three(&row.wait_s));
        cols.extend(three(&row.service_s));
        cols.push(row.ratings.count.to_string());
        cols.push(num(row.ratings.mean));
        cols
    });
    lines(REPORT_CSV_HEADER, rows)
}

/// The visits report with the header of rule 58: a row per visits row
/// (`kind` `visits`), then per steps row (`kind` `step`).
pub fn visits(r: &VisitsReport) -> String {
    let empty = || [String::new(), String::new(), String::new()];
    let visits = r.visits.iter().map(|v| {
        let mut cols = vec![
            "visits".to_string(),
            opt(v.tests),
            opt(v.limit_min),
            String::new(),
            String::new(),
            v.count.to_string(),
            v.within_limit.to_string(),
            num(v.share),
        ];
        cols.extend(three(&v.total_s));
        cols.extend(empty());
        cols.extend(empty());
        cols
    });
    let steps = r.steps.iter().map(|s| {
        let mut cols = vec![
            "step".to_string(),
            String::new(),
            String::new(),
            field(&s.service),
            s.returning.to_string(),
            s.count.to_string(),
            String::new(),
            String::new(),
        ];
        cols.extend(empty());
        cols.extend(three(&s.wait_s));
        cols.extend(three(&s.service_s));
        cols
    });
    lines(VISITS_CSV_HEADER, visits.chain(steps))
}

#[cfg(test)]
mod tests {
    use luot_protocol::{Ratings, ReportRow, StepRow, VisitRow};

    use super::*;

    #[test]
    fn daily_csv_has_header_and_empty_nulls() {
        let r = DailyReport {
            day: "2026-11-22".into(),
            services: vec![ReportRow {
                id: "kham-noi".into(),
                issued: Some(0),
                served: 0,
                no_shows: 0,
                wait_s: Stats::default(),
                service_s: Stats::default(),
                ratings: Ratings::default(),
                wait_by_hour: None,
            }],
            counters: vec![],
            staff: vec![],
        };
        let c = daily(&r);
        let mut lines = c.lines();
        assert_eq!(lines.next(), Some(REPORT_CSV_HEADER));
        assert_eq!(lines.next(), Some("service,kham-noi,0,0,0,,,,,,,0,"));
        assert_eq!(lines.next(), None);
    }

    #[test]
    fn visits_csv_rows_line_up_with_the_header() {
        let stats = |m, p50, p90| Stats {
            mean: Some(m),
            p50: Some(p50),
            p90: Some(p90),
        };
        let r = VisitsReport {
            day: "2026-11-22".into(),
            visits: vec![
                VisitRow {
                    tests: Some(0),
                    limit_min: Some(120),
                    count: 3,
                    within_limit: 2,
                    share: Some(0.667),
                    total_s: stats(4000.5, 3600.0, 5400.0),
                },
                VisitRow {
                    tests: None,
                    limit_min: None,
                    count: 0,
                    within_limit: 0,
                    share: None,
                    total_s: Stats::default(),
                },
            ],
            steps: vec![StepRow {
                service: "xet-nghiem".into(),
                returning: true,
                count: 2,
                wait_s: stats(30.0, 20.0, 40.0),
                service_s: Stats::default(),
            }],
        };
        let c = visits(&r);
        let lines: Vec<&str> = c.lines().collect();
        assert_eq!(
            lines,
            [
                VISITS_CSV_HEADER,
                "visits,0,120,,,3,2,0.667,4000.5,3600,5400,,,,,,",
                "visits,,,,,0,0,,,,,,,,,,",
                "step,,,xet-nghiem,true,2,,,,,,30,20,40,,,",
            ]
        );
        let width = VISITS_CSV_HEADER.split(',').count();
        assert!(lines.iter().all(|l| l.split(',').count() == width));
    }
}
