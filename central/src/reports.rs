//! Cross-site reports (rule 115): each site's days rebuilt from the events
//! of its current lineage, then handed to the site's own report code
//! (`luot_server::report::daily` and `visits`), so a complete day's service
//! and counter rows are the site's own figures.
//!
//! A day runs from its `day_started` to the next one. Its tickets are the
//! newest view of each ticket (by its hashed id) among that range's events,
//! with the first call of a ticket without a visit taken from the earliest
//! `called_at` any of its events shows; when the next `day_started` is held, steps still open
//! become no-shows, as the site closes a day (rule 39). A rating counts when
//! its `after_seq` lies in the day's range.
//!
//! The pure half (`day_tickets`, `daily_rows`, `hourly_rows`, `visits_rows`,
//! the CSV) is tested without a database; the handlers read the database and
//! check who may see which site.

use std::collections::{BTreeMap, HashMap};

use axum::Json;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{NaiveDate, Utc};
use luot_protocol::{ReportRow, Stats, StepRow, Ticket, TicketStatus, VisitRow};
use luot_server::config::SiteConfig;
use luot_server::engine::{StepRec, TicketRec};
use luot_server::error::ApiError;
use serde::Serialize;
use serde_json::json;

use crate::db::{Db, DbError, StoredEvent, StoredRating};
use crate::http::{AppState, Person};

/// The CSV and XLSX columns of the daily report (rule 115).
pub const DAILY_HEADER: &str = "site,day,kind,id,issued,served,no_shows,wait_mean_s,wait_p50_s,wait_p90_s,service_mean_s,service_p50_s,service_p90_s,ratings,rating_mean,complete";

/// The hourly report's CSV columns.
pub const HOURLY_HEADER: &str = "site,hour,issued,called,wait_mean_s,wait_p90_s";

/// One row of the daily report: an R of rule 34 with its site, day, kind
/// and whether central holds the whole day.
#[derive(Serialize, Clone, Debug, PartialEq)]
pub struct Row {
    pub site: String,
    pub day: String,
    pub kind: &'static str,
    #[serde(flatten)]
    pub r: ReportRow,
    pub complete: bool,
}

/// One hour of one site.
#[derive(Serialize, Clone, Debug, PartialEq)]
pub struct HourRow {
    pub site: String,
    pub hour: u32,
    pub issued: u32,
    pub called: u32,
    pub wait_s: HourWait,
}

#[derive(Serialize, Clone, Debug, PartialEq, Default)]
pub struct HourWait {
    pub mean: Option<f64>,
    pub p90: Option<f64>,
}

#[derive(Serialize, Clone, Debug, PartialEq)]
pub struct SiteVisitRow {
    pub site: String,
    pub day: String,
    #[serde(flatten)]
    pub v: VisitRow,
}

#[derive(Serialize, Clone, Debug, PartialEq)]
pub struct SiteStepRow {
    pub site: String,
    pub day: String,
    #[serde(flatten)]
    pub s: StepRow,
}

// ------------------------------------------------------------------ tickets

fn millis(s: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|d| d.timestamp_millis())
}

fn opt_millis(s: &Option<String>) -> Option<i64> {
    s.as_deref().and_then(millis)
}

/// What central learns of one ticket from its events.
struct Seen {
    issued_service: String,
    first_called: Option<i64>,
    last: Ticket,
}

fn record(seen: &Seen, rating: Option<u8>, closed_at: Option<i64>) -> Option<TicketRec> {
    let t = &seen.last;
    let issued_at = millis(&t.issued_at)?;
    let day = NaiveDate::parse_from_str(&t.day, "%Y-%m-%d").ok()?;
    let mut steps: Vec<StepRec> = match &t.visit {
        Some(v) => v
            .steps
            .iter()
            .map(|s| {
                step(
                    s.stage,
                    &s.service,
                    s.counter.clone(),
                    s.returning,
                    s.status,
                    s.calls,
                )
            })
            .zip(&v.steps)
            .map(|(mut r, s)| {
                r.waiting_since = opt_millis(&s.waiting_since);
                r.first_joined_at = opt_millis(&s.first_joined_at);
                r.first_called_at = opt_millis(&s.first_called_at);
                r.called_at = opt_millis(&s.called_at);
                r.finished_at = opt_millis(&s.finished_at);
                r.reason = s.reason.clone();
                r
            })
            .collect(),
        None => {
            let mut r = step(1, &t.service, t.counter.clone(), false, t.status, t.calls);
            r.first_called_at = seen.first_called;
            r.called_at = opt_millis(&t.called_at);
            r.finished_at = opt_millis(&t.finished_at);
            r.first_joined_at = Some(issued_at);
            r.reason = t.reason.clone();
            vec![r]
        }
    };
    if let Some(at) = closed_at {
        for s in &mut steps {
            if s.status.is_open() {
                s.status = TicketStatus::NoShow;
                s.finished_at = Some(at);
            }
        }
    }
    let done = steps.iter().any(|s| s.status == TicketStatus::Done);
    Some(TicketRec {
        id: t.id.clone(),
        number: t.number.clone(),
        n: 0,
        issued_service: seen.issued_service.clone(),
        priority: t.priority.clone(),
        issued_at,
        day,
        visit: t.visit.is_some(),
        cancelled: (t.status == TicketStatus::Cancelled)
            .then(|| t.reason.clone().unwrap_or_default()),
        steps,
        rating: rating.filter(|_| done),
        comment: None,
        appointment: t.appointment.clone(),
        external_ref: None,
        person: None,
        session: None,
    })
}

fn step(
    stage: u32,
    service: &str,
    counter: Option<String>,
    returning: bool,
    status: TicketStatus,
    calls: u32,
) -> StepRec {
    let mut s = StepRec::pending(stage, service.to_string());
    s.counter = counter;
    s.returning = returning;
    s.status = status;
    s.calls = calls;
    s
}

/// The tickets of `day` from the events of its range (seq order), the
/// ratings that count in it, and, when the day is over, the time its
/// successor began.
pub fn day_tickets(
    day: &str,
    events: &[StoredEvent],
    ratings: &[StoredRating],
    closed_at: Option<i64>,
) -> Vec<TicketRec> {
    let mut order: Vec<String> = Vec::new();
    let mut seen: HashMap<String, Seen> = HashMap::new();
    for e in events {
        let Some(tv) = e.body.get("ticket") else {
            continue;
        };
        let Ok(t) = serde_json::from_value::<Ticket>(tv.clone()) else {
            continue;
        };
        if t.day != day {
            continue;
        }
        // The earliest `called_at` any event shows is the first call (a
        // recall keeps it, a transfer clears it until the next call).
        let called = opt_millis(&t.called_at);
        match seen.get_mut(&t.id) {
            Some(s) => {
                s.first_called = match (s.first_called, called) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
                s.last = t;
            }
            None => {
                order.push(t.id.clone());
                let service = e
                    .body
                    .get("from_service")
                    .and_then(|v| v.as_str())
                    .filter(|_| e.kind == "ticket_transferred")
                    .map(str::to_string)
                    .unwrap_or_else(|| t.service.clone());
                seen.insert(
                    t.id.clone(),
                    Seen {
                        issued_service: service,
                        first_called: called,
                        last: t,
                    },
                );
            }
        }
    }
    let rated: HashMap<&str, u8> = ratings
        .iter()
        .map(|r| (r.ticket.as_str(), r.rating))
        .collect();
    order
        .iter()
        .filter_map(|id| {
            let s = seen.get(id)?;
            record(s, rated.get(id.as_str()).copied(), closed_at)
        })
        .collect()
}

// ------------------------------------------------------------------ rows

/// The daily rows of one site's day: services, counters, then the site's
/// totals (rule 115).
pub fn daily_rows(
    site: &str,
    day: &str,
    cfg: &SiteConfig,
    tickets: &[TicketRec],
    complete: bool,
) -> Vec<Row> {
    let r = luot_server::report::daily(cfg, day, tickets);
    let row = |kind, mut r: ReportRow| {
        r.wait_by_hour = None;
        Row {
            site: site.to_string(),
            day: day.to_string(),
            kind,
            r,
            complete,
        }
    };
    let mut out: Vec<Row> = Vec::new();
    out.extend(r.services.into_iter().map(|x| row("service", x)));
    out.extend(r.counters.into_iter().map(|x| row("counter", x)));
    // The site's totals: every ticket under one service, so its figures
    // sum the service rows (and its percentiles are of all its tickets).
    const ALL: &str = "\u{0}all";
    let merged: Vec<TicketRec> = tickets
        .iter()
        .cloned()
        .map(|mut t| {
            t.issued_service = ALL.into();
            for s in &mut t.steps {
                s.service = ALL.into();
            }
            t
        })
        .collect();
    let mut bare = cfg.clone();
    bare.services.clear();
    bare.counters.clear();
    let totals = luot_server::report::daily(&bare, day, &merged)
        .services
        .into_iter()
        .find(|r| r.id == ALL)
        .unwrap_or(ReportRow {
            id: String::new(),
            issued: Some(0),
            served: 0,
            no_shows: 0,
            wait_s: Stats::default(),
            service_s: Stats::default(),
            ratings: luot_protocol::Ratings::default(),
            wait_by_hour: None,
        });
    let mut totals = row("site", totals);
    totals.r.id = site.to_string();
    out.push(totals);
    out
}

/// The hours of one site's day: tickets issued by the hour of `issued_at`
/// (with their waits to the first call), first calls by the hour of that
/// call, in the site's time zone.
pub fn hourly_rows(site: &str, cfg: &SiteConfig, tickets: &[TicketRec]) -> Vec<HourRow> {
    let tz = cfg.site.timezone;
    let hour = |ms: i64| {
        chrono::DateTime::from_timestamp_millis(ms)
            .map(|d| chrono::Timelike::hour(&d.with_timezone(&tz)))
            .unwrap_or(0)
    };
    let mut by_hour: Vec<TicketRec> = Vec::new();
    let mut called: BTreeMap<u32, u32> = BTreeMap::new();
    for t in tickets {
        let mut t2 = t.clone();
        t2.issued_service = format!("{:02}", hour(t.issued_at));
        by_hour.push(t2);
        if let Some(first) = t.steps.iter().filter_map(|s| s.first_called_at).min() {
            *called.entry(hour(first)).or_default() += 1;
        }
    }
    let mut bare = cfg.clone();
    bare.services.clear();
    bare.counters.clear();
    let r = luot_server::report::daily(&bare, "", &by_hour);
    let mut rows: BTreeMap<u32, HourRow> = BTreeMap::new();
    let blank = |h: u32| HourRow {
        site: site.to_string(),
        hour: h,
        issued: 0,
        called: 0,
        wait_s: HourWait::default(),
    };
    for s in r.services {
        let Ok(h) = s.id.parse::<u32>() else { continue };
        let row = rows.entry(h).or_insert_with(|| blank(h));
        row.issued = s.issued.unwrap_or(0);
        row.wait_s = HourWait {
            mean: s.wait_s.mean,
            p90: s.wait_s.p90,
        };
    }
    for (h, n) in called {
        rows.entry(h).or_insert_with(|| blank(h)).called = n;
    }
    rows.into_values()
        .filter(|r| r.issued > 0 || r.called > 0)
        .collect()
}

/// Rule 58's visits report of one site's day, each row with its site and day.
pub fn visits_rows(
    site: &str,
    day: &str,
    cfg: &SiteConfig,
    tickets: &[TicketRec],
) -> (Vec<SiteVisitRow>, Vec<SiteStepRow>) {
    let r = luot_server::report::visits(cfg, day, tickets);
    (
        r.visits
            .into_iter()
            .map(|v| SiteVisitRow {
                site: site.into(),
                day: day.into(),
                v,
            })
            .collect(),
        r.steps
            .into_iter()
            .map(|s| SiteStepRow {
                site: site.into(),
                day: day.into(),
                s,
            })
            .collect(),
    )
}

// ------------------------------------------------------------------ CSV

/// A number as the site's CSV writes it: empty for null, `540`, `12.5`.
pub fn num(v: Option<f64>) -> String {
    match v {
        None => String::new(),
        Some(x) if x.fract() == 0.0 => format!("{}", x as i64),
        Some(x) => format!("{x}"),
    }
}

fn field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

pub fn daily_csv(rows: &[Row]) -> String {
    let mut out = format!("{DAILY_HEADER}\n");
    for r in rows {
        let s = &r.r;
        let cols = [
            field(&r.site),
            r.day.clone(),
            r.kind.to_string(),
            field(&s.id),
            s.issued.map(|n| n.to_string()).unwrap_or_default(),
            s.served.to_string(),
            s.no_shows.to_string(),
            num(s.wait_s.mean),
            num(s.wait_s.p50),
            num(s.wait_s.p90),
            num(s.service_s.mean),
            num(s.service_s.p50),
            num(s.service_s.p90),
            s.ratings.count.to_string(),
            num(s.ratings.mean),
            r.complete.to_string(),
        ];
        out.push_str(&cols.join(","));
        out.push('\n');
    }
    out
}

pub fn hourly_csv(rows: &[HourRow]) -> String {
    let mut out = format!("{HOURLY_HEADER}\n");
    for r in rows {
        out.push_str(&format!(
            "{},{},{},{},{},{}\n",
            field(&r.site),
            r.hour,
            r.issued,
            r.called,
            num(r.wait_s.mean),
            num(r.wait_s.p90)
        ));
    }
    out
}

/// Rule 58's CSV with `site,day` first.
pub fn visits_csv(visits: &[SiteVisitRow], steps: &[SiteStepRow]) -> String {
    let mut out = format!("site,day,{}\n", luot_protocol::VISITS_CSV_HEADER);
    let three = |s: &Stats| [num(s.mean), num(s.p50), num(s.p90)];
    for r in visits {
        let v = &r.v;
        let mut cols = vec![
            field(&r.site),
            r.day.clone(),
            "visits".into(),
            v.tests.map(|x| x.to_string()).unwrap_or_default(),
            v.limit_min.map(|x| x.to_string()).unwrap_or_default(),
            String::new(),
            String::new(),
            v.count.to_string(),
            v.within_limit.to_string(),
            num(v.share),
        ];
        cols.extend(three(&v.total_s));
        cols.extend(std::iter::repeat_n(String::new(), 6));
        out.push_str(&cols.join(","));
        out.push('\n');
    }
    for r in steps {
        let s = &r.s;
        let mut cols = vec![
            field(&r.site),
            r.day.clone(),
            "step".into(),
            String::new(),
            String::new(),
            field(&s.service),
            s.returning.to_string(),
            s.count.to_string(),
            String::new(),
            String::new(),
        ];
        cols.extend(std::iter::repeat_n(String::new(), 3));
        cols.extend(three(&s.wait_s));
        cols.extend(three(&s.service_s));
        out.push_str(&cols.join(","));
        out.push('\n');
    }
    out
}

/// The daily rows as an Excel workbook: one sheet, rule 115's columns.
pub fn daily_xlsx(rows: &[Row]) -> Result<Vec<u8>, rust_xlsxwriter::XlsxError> {
    let mut wb = rust_xlsxwriter::Workbook::new();
    let bold = rust_xlsxwriter::Format::new().set_bold();
    let ws = wb.add_worksheet();
    ws.set_name("Báo cáo ngày")?;
    for (c, h) in DAILY_HEADER.split(',').enumerate() {
        ws.write_string_with_format(0, c as u16, h, &bold)?;
    }
    for (i, r) in rows.iter().enumerate() {
        let y = (i + 1) as u32;
        let s = &r.r;
        ws.write_string(y, 0, &r.site)?;
        ws.write_string(y, 1, &r.day)?;
        ws.write_string(y, 2, r.kind)?;
        ws.write_string(y, 3, &s.id)?;
        let nums = [
            s.issued.map(f64::from),
            Some(f64::from(s.served)),
            Some(f64::from(s.no_shows)),
            s.wait_s.mean,
            s.wait_s.p50,
            s.wait_s.p90,
            s.service_s.mean,
            s.service_s.p50,
            s.service_s.p90,
            Some(f64::from(s.ratings.count)),
            s.ratings.mean,
        ];
        for (k, v) in nums.iter().enumerate() {
            if let Some(v) = v {
                ws.write_number(y, (4 + k) as u16, *v)?;
            }
        }
        ws.write_boolean(y, 15, r.complete)?;
    }
    wb.save_to_buffer()
}

// ------------------------------------------------------------------ reading

/// A site's configuration for its reports: the newest version central
/// holds, else a bare one (rows then only for the services and counters
/// the events name, by id).
async fn site_config(db: &Db, site: &str, name: &str) -> Result<SiteConfig, DbError> {
    if let Some(v) = db.config(site, None).await?
        && let Ok(c) = SiteConfig::parse(&crate::siteconf::name(v.version), &v.toml)
    {
        return Ok(c);
    }
    Ok(bare_config(name))
}

/// A configuration with no services or counters (the site's defaults
/// otherwise: Asia/Ho_Chi_Minh, rule 58's limits).
pub fn bare_config(name: &str) -> SiteConfig {
    let text = format!(
        "[site]\nname = {}\n[[services]]\nid = \"x\"\nname = \"x\"\nprefix = \"X\"\n",
        toml::Value::String(if name.is_empty() {
            "site".into()
        } else {
            name.into()
        })
    );
    match SiteConfig::parse("central", &text) {
        Ok(mut c) => {
            c.services.clear();
            c.counters.clear();
            c
        }
        Err(e) => unreachable_config(e),
    }
}

#[allow(clippy::panic)]
fn unreachable_config(e: luot_server::config::ConfigError) -> SiteConfig {
    panic!("the bare report configuration must parse: {e}")
}

/// One site's day as central holds it.
pub struct Day {
    pub tickets: Vec<TicketRec>,
    pub complete: bool,
}

/// Reads `site`'s `day` from its current lineage; None when central holds
/// no `day_started` for it.
pub async fn read_day(db: &Db, site: &str, day: &str) -> Result<Option<Day>, DbError> {
    let lineage = db.lineage(site).await?;
    if lineage.is_empty() {
        return Ok(None);
    }
    let starts = db.day_starts(site, &lineage).await?;
    let Some(k) = starts.iter().position(|(_, d)| d == day) else {
        return Ok(None);
    };
    let lo = starts[k].0;
    let hi = starts.get(k + 1).map(|(s, _)| *s);
    let events = db.events(site, &lineage, lo, hi).await?;
    let closed_at = match hi {
        Some(h) => db
            .events(site, &lineage, h, Some(h + 1))
            .await?
            .first()
            .and_then(|e| millis(&e.at))
            .or(Some(Utc::now().timestamp_millis())),
        None => None,
    };
    let ratings = db.ratings(site, lo, hi).await?;
    let complete = match hi {
        Some(h) => db.held(site, &lineage, lo, Some(h + 1)).await? == h + 1 - lo,
        None => false,
    };
    Ok(Some(Day {
        tickets: day_tickets(day, &events, &ratings, closed_at),
        complete,
    }))
}

// ------------------------------------------------------------------ handlers

/// The query of a report: repeated `site`, `from`/`to` or `day`, `format`.
#[derive(Default, Debug)]
struct ReportQuery {
    sites: Vec<String>,
    from: Option<String>,
    to: Option<String>,
    day: Option<String>,
    format: Option<String>,
}

fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => match s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
            {
                Some(b) => {
                    out.push(b);
                    i += 2;
                }
                None => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn parse_query(q: Option<&str>) -> Result<ReportQuery, ApiError> {
    let mut r = ReportQuery::default();
    for pair in q.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let v = decode(v);
        match k {
            "site" => r.sites.push(v),
            "from" => r.from = Some(v),
            "to" => r.to = Some(v),
            "day" => r.day = Some(v),
            "format" => r.format = Some(v),
            other => {
                return Err(ApiError::bad_request(format!(
                    "unknown query parameter \"{other}\" (site, from, to, day, format)"
                )));
            }
        }
    }
    Ok(r)
}

fn date(s: &str, name: &str) -> Result<NaiveDate, ApiError> {
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .map_err(|_| ApiError::bad_request(format!("{name} \"{s}\" is not a day YYYY-MM-DD")))
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Form {
    Json,
    Csv,
    Xlsx,
}

/// `?format=`, else `Accept`, as the site's reports choose.
fn form(headers: &HeaderMap, format: Option<&str>, xlsx: bool) -> Result<Form, ApiError> {
    match format {
        Some("json") => return Ok(Form::Json),
        Some("csv") => return Ok(Form::Csv),
        Some("xlsx") if xlsx => return Ok(Form::Xlsx),
        Some(_) => {
            return Err(ApiError::bad_request(if xlsx {
                "format phải là json, csv hoặc xlsx (format must be json, csv or xlsx)"
            } else {
                "format phải là json hoặc csv (format must be json or csv)"
            }));
        }
        None => {}
    }
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    Ok(
        if xlsx && accept.contains(luot_server::report::xlsx::MEDIA_TYPE) {
            Form::Xlsx
        } else if accept.contains("text/csv") {
            Form::Csv
        } else {
            Form::Json
        },
    )
}

fn download(media: &str, name: String, body: impl IntoResponse) -> Response {
    (
        [
            (header::CONTENT_TYPE, media.to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
        ],
        body,
    )
        .into_response()
}

fn unavailable(e: &DbError) -> ApiError {
    tracing::warn!(error = %e, "database unavailable");
    ApiError::unavailable("central's database is unavailable; retry later")
}

/// The sites a report covers: those named (each must be one the caller
/// sees: else 403; unknown: 404), else all the caller sees.
fn report_sites(app: &AppState, who: &Person, named: &[String]) -> Result<Vec<String>, ApiError> {
    let user = &who.0;
    if named.is_empty() {
        return Ok(app
            .cfg
            .sites
            .iter()
            .filter(|s| user.sees(&s.id))
            .map(|s| s.id.clone())
            .collect());
    }
    for s in named {
        if !user.sees(s) {
            return Err(ApiError::forbidden(format!(
                "Bạn không được xem cơ sở \"{s}\" (you may not see site \"{s}\")"
            )));
        }
    }
    let mut out: Vec<String> = Vec::new();
    for s in named {
        if app.cfg.site(s).is_none() {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "unknown_site",
                format!("No site \"{s}\" in central.toml's [[sites]]"),
            ));
        }
        if !out.contains(s) {
            out.push(s.clone());
        }
    }
    Ok(out)
}

fn today(app: &AppState) -> NaiveDate {
    Utc::now().with_timezone(&app.cfg.timezone).date_naive()
}

/// `from`..`to` (default today; `to` defaults to `from`), at most 366 days.
fn days(app: &AppState, q: &ReportQuery) -> Result<(NaiveDate, NaiveDate), ApiError> {
    let from = match &q.from {
        Some(f) => date(f, "from")?,
        None => today(app),
    };
    let to = match &q.to {
        Some(t) => date(t, "to")?,
        None if q.from.is_some() => from,
        None => today(app),
    };
    if to < from {
        return Err(ApiError::bad_request("to is before from"));
    }
    if (to - from).num_days() > 366 {
        return Err(ApiError::bad_request("a report covers at most 367 days"));
    }
    Ok((from, to))
}

fn site_name(app: &AppState, id: &str) -> String {
    app.cfg.site(id).map(|s| s.name.clone()).unwrap_or_default()
}

pub async fn daily_handler(
    State(app): State<AppState>,
    who: Person,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let q = parse_query(raw.as_deref())?;
    let f = form(&headers, q.format.as_deref(), true)?;
    let (from, to) = days(&app, &q)?;
    let sites = report_sites(&app, &who, &q.sites)?;
    let mut rows = Vec::new();
    for s in &sites {
        let cfg = site_config(&app.db, s, &site_name(&app, s))
            .await
            .map_err(|e| unavailable(&e))?;
        for d in from.iter_days().take_while(|d| *d <= to) {
            let day = d.to_string();
            if let Some(dd) = read_day(&app.db, s, &day)
                .await
                .map_err(|e| unavailable(&e))?
            {
                rows.extend(daily_rows(s, &day, &cfg, &dd.tickets, dd.complete));
            }
        }
    }
    let name = format!("luot-central-{from}-{to}");
    Ok(match f {
        Form::Json => Json(json!({"from": from.to_string(), "to": to.to_string(), "rows": rows}))
            .into_response(),
        Form::Csv => download(
            "text/csv; charset=utf-8",
            format!("{name}.csv"),
            daily_csv(&rows),
        ),
        Form::Xlsx => download(
            luot_server::report::xlsx::MEDIA_TYPE,
            format!("{name}.xlsx"),
            daily_xlsx(&rows).map_err(|e| {
                tracing::error!(error = %e, "writing a workbook failed");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal_error",
                    "the Excel workbook could not be made; download the CSV",
                )
            })?,
        ),
    })
}

pub async fn hourly_handler(
    State(app): State<AppState>,
    who: Person,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let q = parse_query(raw.as_deref())?;
    let f = form(&headers, q.format.as_deref(), false)?;
    let day = match &q.day {
        Some(d) => date(d, "day")?,
        None => today(&app),
    };
    let sites = report_sites(&app, &who, &q.sites)?;
    let mut rows = Vec::new();
    for s in &sites {
        let cfg = site_config(&app.db, s, &site_name(&app, s))
            .await
            .map_err(|e| unavailable(&e))?;
        if let Some(dd) = read_day(&app.db, s, &day.to_string())
            .await
            .map_err(|e| unavailable(&e))?
        {
            rows.extend(hourly_rows(s, &cfg, &dd.tickets));
        }
    }
    Ok(match f {
        Form::Csv => download(
            "text/csv; charset=utf-8",
            format!("luot-central-hourly-{day}.csv"),
            hourly_csv(&rows),
        ),
        _ => Json(json!({"day": day.to_string(), "rows": rows})).into_response(),
    })
}

pub async fn visits_handler(
    State(app): State<AppState>,
    who: Person,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let q = parse_query(raw.as_deref())?;
    let f = form(&headers, q.format.as_deref(), false)?;
    let (from, to) = days(&app, &q)?;
    let sites = report_sites(&app, &who, &q.sites)?;
    let (mut visits, mut steps) = (Vec::new(), Vec::new());
    for s in &sites {
        let cfg = site_config(&app.db, s, &site_name(&app, s))
            .await
            .map_err(|e| unavailable(&e))?;
        for d in from.iter_days().take_while(|d| *d <= to) {
            let day = d.to_string();
            if let Some(dd) = read_day(&app.db, s, &day)
                .await
                .map_err(|e| unavailable(&e))?
            {
                let (v, st) = visits_rows(s, &day, &cfg, &dd.tickets);
                visits.extend(v);
                steps.extend(st);
            }
        }
    }
    Ok(match f {
        Form::Csv => download(
            "text/csv; charset=utf-8",
            format!("luot-central-visits-{from}-{to}.csv"),
            visits_csv(&visits, &steps),
        ),
        _ => Json(json!({"from": from.to_string(), "to": to.to_string(), "visits": visits, "steps": steps}))
            .into_response(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ticket(id: &str, status: &str, called: Option<&str>, service: &str) -> serde_json::Value {
        json!({"id": id, "number": "A001", "service": service, "priority": null, "status": status,
               "counter": called.map(|_| "q1"), "issued_at": "2026-11-22T07:00:00+07:00",
               "called_at": called, "finished_at": null, "day": "2026-11-22",
               "position": null, "estimated_wait_s": null})
    }

    fn ev(seq: u64, kind: &str, t: serde_json::Value) -> StoredEvent {
        StoredEvent {
            seq,
            at: "2026-11-22T07:00:00+07:00".into(),
            kind: kind.into(),
            day: None,
            body: json!({"kind": kind, "ticket": t}),
        }
    }

    #[test]
    fn tickets_keep_their_first_call_and_close_with_the_day() {
        let c1 = Some("2026-11-22T07:05:00+07:00");
        let c2 = Some("2026-11-22T07:20:00+07:00");
        let events = vec![
            ev(2, "ticket_issued", ticket("h_a", "waiting", None, "kham")),
            ev(3, "ticket_called", ticket("h_a", "called", c1, "kham")),
            ev(4, "ticket_transferred", {
                let mut t = ticket("h_a", "waiting", None, "xn");
                t["counter"] = json!(null);
                t
            }),
            ev(5, "ticket_called", ticket("h_a", "called", c2, "xn")),
            ev(6, "ticket_issued", ticket("h_b", "waiting", None, "kham")),
        ];
        let closed = Some(1_795_000_000_000);
        let t = day_tickets("2026-11-22", &events, &[], closed);
        assert_eq!(t.len(), 2);
        let a = &t[0];
        assert_eq!(
            a.issued_service, "kham",
            "waits count under the service issued for"
        );
        assert_eq!(a.steps[0].service, "xn");
        assert_eq!(
            a.steps[0].first_called_at,
            millis("2026-11-22T07:05:00+07:00")
        );
        assert_eq!(
            a.steps[0].status,
            TicketStatus::NoShow,
            "closed by the next day"
        );
        assert_eq!(t[1].steps[0].status, TicketStatus::NoShow);
        // Still running: left as they are.
        let t = day_tickets("2026-11-22", &events, &[], None);
        assert_eq!(t[1].steps[0].status, TicketStatus::Waiting);
        // Another day's tickets are not this day's.
        assert!(day_tickets("2026-11-23", &events, &[], None).is_empty());
    }

    #[test]
    fn ratings_count_only_for_done_tickets() {
        let mut done = ticket("h_a", "done", Some("2026-11-22T07:05:00+07:00"), "kham");
        done["finished_at"] = json!("2026-11-22T07:09:00+07:00");
        let events = vec![
            ev(2, "ticket_issued", ticket("h_a", "waiting", None, "kham")),
            ev(3, "ticket_done", done),
            ev(4, "ticket_issued", ticket("h_b", "waiting", None, "kham")),
        ];
        let ratings = [
            StoredRating {
                ticket: "h_a".into(),
                after_seq: 3,
                rating: 4,
            },
            StoredRating {
                ticket: "h_b".into(),
                after_seq: 4,
                rating: 1,
            },
        ];
        let t = day_tickets("2026-11-22", &events, &ratings, None);
        assert_eq!((t[0].rating, t[1].rating), (Some(4), None));
        let rows = daily_rows("bv", "2026-11-22", &bare_config("A"), &t, false);
        let site = rows.iter().find(|r| r.kind == "site").expect("site row");
        assert_eq!(
            (site.r.issued, site.r.served, site.r.ratings.count),
            (Some(2), 1, 1)
        );
        assert_eq!(site.r.service_s.mean, Some(240.0));
        let csv = daily_csv(&rows);
        assert!(csv.starts_with(DAILY_HEADER));
        assert!(
            csv.contains("\nbv,2026-11-22,site,bv,2,1,0,300,300,300,240,240,240,1,4,false\n"),
            "{csv}"
        );
    }

    #[test]
    fn queries_repeat_sites_and_decode() {
        let q = parse_query(Some("site=a&site=b%2Dc&from=2026-11-01&format=csv")).expect("parses");
        assert_eq!(q.sites, ["a", "b-c"]);
        assert_eq!(q.from.as_deref(), Some("2026-11-01"));
        assert!(parse_query(Some("colour=red")).is_err());
    }
}
