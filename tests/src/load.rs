//! The load generator behind `luot-load` and the fault tests: K kiosks issuing
//! over websockets, C staff consoles calling over HTTP (each with its own
//! websocket), W screens watching over websockets and P ticket pages polling,
//! all against one real server. Every loop stops at the plan's deadline.
//!
//! Measured: issue acknowledgement latency (send → `issued`), call → event at
//! every watcher (the console notes the time just before its `POST …/next`;
//! each watcher matches the k-th `ticket_called` of a counter with the k-th
//! call there), ticket page polls, `seq` continuity at every watcher, and the
//! server process's RSS and CPU. Clients reconnect on their own (hello with
//! `since`, unanswered issues sent again with the same `request_id`), so the
//! same load runs while a fault test kills the server.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use rand::Rng;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

/// The server under load and the credentials the simulated devices use.
#[derive(Clone, Debug)]
pub struct Target {
    /// `http://host:port`
    pub base: String,
    pub kiosk_token: String,
    /// `None`: screens connect without a token (a public board).
    pub display_token: Option<String>,
    /// Console `i` logs in as `staff[i % len]`: a staff user of counter `i`,
    /// or an admin (who may act at any counter).
    pub staff: Vec<(String, String)>,
    /// The server's process id, for RSS and CPU (only on this machine).
    pub pid: Option<u32>,
}

/// What to simulate.
#[derive(Clone, Debug)]
pub struct Plan {
    pub name: String,
    pub kiosks: usize,
    /// When each patient presses a button, in seconds from the start, sorted.
    pub arrivals: Vec<f64>,
    /// Consoles call at the first `consoles` counters of the site.
    pub consoles: usize,
    /// Seconds a console spends with each called ticket (uniform in the range).
    pub service_s: (f64, f64),
    pub screens: usize,
    pub ticket_pages: usize,
    /// Seconds between two polls of one ticket page (the page polls every 4 s).
    pub ticket_page_every_s: f64,
    /// Issuing and calling stop after this long; watchers get 3 s more.
    pub duration: Duration,
    /// Share of calls that end in a no-show, a recall before done, and a rating.
    pub no_show: f64,
    pub recall: f64,
    pub rating: f64,
    /// Visits with several stops (§9): the share of patients a room sends to
    /// one of `tests` and back, instead of finishing them.
    pub send_to_tests: f64,
    pub tests: Vec<String>,
}

/// One acknowledged ticket, as the kiosk got it.
#[derive(Clone, Debug)]
pub struct Acked {
    pub request_id: String,
    pub id: String,
    pub service: String,
    pub number: String,
    pub day: String,
}

#[derive(Serialize, Clone, Debug, Default)]
pub struct Latency {
    pub count: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

impl Latency {
    fn of(h: &Histogram<u64>) -> Latency {
        let ms = |v: u64| (v as f64 / 10.0).round() / 100.0;
        Latency {
            count: h.len(),
            p50_ms: ms(h.value_at_quantile(0.5)),
            p99_ms: ms(h.value_at_quantile(0.99)),
            max_ms: ms(h.max()),
        }
    }
}

#[derive(Serialize, Clone, Debug, Default)]
pub struct ServerStats {
    pub rss_start_mb: f64,
    pub rss_peak_mb: f64,
    pub rss_end_mb: f64,
    /// Mean CPU over the run, in % of one core (200 % = both cores of this machine).
    pub cpu_mean_pct: f64,
}

/// What a run measured.
#[derive(Serialize, Clone, Debug, Default)]
pub struct Report {
    pub scenario: String,
    pub duration_s: f64,
    pub kiosks: usize,
    pub consoles: usize,
    pub screens: usize,
    pub ticket_pages: usize,
    pub watchers_connect_s: f64,
    pub issued: usize,
    pub issue_per_s: f64,
    pub issue_errors: u64,
    pub issue_ack: Latency,
    pub calls: u64,
    pub calls_on_empty_queue: u64,
    pub call_errors: u64,
    pub call_http: Latency,
    /// Call → `ticket_called` at every screen and console websocket.
    pub call_to_event: Latency,
    pub deliveries_expected: u64,
    pub ticket_page_polls: Latency,
    pub reconnects: u64,
    pub seq_gaps: u64,
    /// Watchers whose last `seq` at the end is below the server's.
    pub watchers_behind: usize,
    pub server: Option<ServerStats>,
    #[serde(skip)]
    pub tickets: Vec<Acked>,
    /// The server's last `seq` at the end.
    pub final_seq: u64,
    /// (seconds since the clock started, server RSS in MB), every 250 ms.
    #[serde(skip)]
    pub rss_timeline: Vec<(f64, f64)>,
}

impl Report {
    /// The figures as a two-column markdown table.
    pub fn markdown(&self) -> String {
        let lat = |l: &Latency| {
            format!(
                "p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms ({} samples)",
                l.p50_ms, l.p99_ms, l.max_ms, l.count
            )
        };
        let mut rows = vec![
            ("scenario", self.scenario.clone()),
            (
                "clients",
                format!(
                    "{} kiosks, {} consoles, {} screens, {} ticket pages",
                    self.kiosks, self.consoles, self.screens, self.ticket_pages
                ),
            ),
            ("duration", format!("{:.0} s", self.duration_s)),
            (
                "watchers connected in",
                format!("{:.1} s", self.watchers_connect_s),
            ),
            (
                "tickets issued (durable)",
                format!(
                    "{} ({:.1}/s), {} errors",
                    self.issued, self.issue_per_s, self.issue_errors
                ),
            ),
            ("issue acknowledgement", lat(&self.issue_ack)),
            (
                "staff calls",
                format!(
                    "{} ({} on an empty queue, {} errors)",
                    self.calls, self.calls_on_empty_queue, self.call_errors
                ),
            ),
            ("staff call HTTP answer", lat(&self.call_http)),
            (
                "call → event at every watcher",
                format!(
                    "{}; {} of {} deliveries",
                    lat(&self.call_to_event),
                    self.call_to_event.count,
                    self.deliveries_expected
                ),
            ),
            ("ticket page poll", lat(&self.ticket_page_polls)),
            (
                "seq gaps / watchers behind at the end",
                format!("{} / {}", self.seq_gaps, self.watchers_behind),
            ),
        ];
        if let Some(s) = &self.server {
            rows.push((
                "server RSS",
                format!(
                    "start {:.1} MB, peak {:.1} MB, end {:.1} MB",
                    s.rss_start_mb, s.rss_peak_mb, s.rss_end_mb
                ),
            ));
            rows.push((
                "server CPU (mean, % of one core)",
                format!("{:.0} %", s.cpu_mean_pct),
            ));
        }
        let mut out = String::from("| figure | value |\n| --- | --- |\n");
        for (k, v) in rows {
            out.push_str(&format!("| {k} | {v} |\n"));
        }
        out
    }
}

/// Arrivals at a steady `per_s` for `secs` seconds.
pub fn steady_arrivals(per_s: f64, secs: f64) -> Vec<f64> {
    let n = (per_s * secs).round() as usize;
    (0..n).map(|i| i as f64 / per_s).collect()
}

/// `patients` arrivals over `secs` seconds that stand for a 06:00–18:00
/// outpatient day: most come at 7–9 a.m., fewer after the lunch break.
pub fn hospital_day_arrivals(patients: usize, secs: f64) -> Vec<f64> {
    // Share of the day's patients in each hour from 06:00 to 17:00.
    const HOURLY: [f64; 12] = [
        8.0, 16.0, 15.0, 12.0, 10.0, 7.0, 3.0, 6.0, 8.0, 7.0, 5.0, 3.0,
    ];
    let total: f64 = HOURLY.iter().sum();
    let hour_s = secs / HOURLY.len() as f64;
    let mut rng = rand::rng();
    let mut out = Vec::with_capacity(patients);
    for (h, w) in HOURLY.iter().enumerate() {
        let n = (patients as f64 * w / total).round() as usize;
        for _ in 0..n {
            out.push((h as f64 + rng.random::<f64>()) * hour_s);
        }
    }
    out.truncate(patients);
    out.sort_by(f64::total_cmp);
    out
}

struct Ctx {
    target: Target,
    plan: Plan,
    http: reqwest::Client,
    /// (start, deadline) once every watcher is connected and the clock runs.
    clock: std::sync::OnceLock<(Instant, Instant)>,
    /// Set when watchers stop reading (and the sampler stops sampling).
    stop: tokio::sync::watch::Sender<bool>,
    /// Counter id → index into `calls`.
    counter_index: HashMap<String, usize>,
    /// Per counter, when each of its calls was sent (k-th call at index k).
    calls: Vec<RwLock<Vec<Instant>>>,
    deliveries: Vec<Mutex<Histogram<u64>>>,
    issue_ack: Mutex<Histogram<u64>>,
    call_http: Mutex<Histogram<u64>>,
    page_polls: Mutex<Histogram<u64>>,
    acked: Mutex<Vec<Acked>>,
    issue_errors: AtomicU64,
    calls_ok: AtomicU64,
    calls_empty: AtomicU64,
    call_errors: AtomicU64,
    reconnects: AtomicU64,
    seq_gaps: AtomicU64,
    last_seqs: Mutex<Vec<u64>>,
}

impl Ctx {
    fn start(&self) -> Instant {
        self.clock.get().map(|c| c.0).unwrap_or_else(Instant::now)
    }
    fn deadline(&self) -> Instant {
        self.clock
            .get()
            .map(|c| c.1)
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(3600))
    }
}

fn hist() -> Histogram<u64> {
    // 1 µs .. 10 min at 2 significant figures: small enough to keep a few.
    Histogram::new_with_bounds(1, 600_000_000, 2).expect("histogram bounds")
}

fn record(h: &Mutex<Histogram<u64>>, d: Duration) {
    let v = (d.as_micros() as u64).clamp(1, 600_000_000);
    if let Ok(mut h) = h.lock() {
        let _ = h.record(v);
    }
}

/// A uniformly random number in lo..hi (lo when the range is empty).
fn uniform(lo: f64, hi: f64) -> f64 {
    if hi > lo {
        rand::rng().random_range(lo..hi)
    } else {
        lo
    }
}

fn ws_url(base: &str) -> String {
    format!("{}/api/v1/ws", base.replacen("http", "ws", 1))
}

/// Small socket buffers, like a real screen (tungstenite's default read
/// buffer is 128 KiB, which would make 10,000 clients cost more than the server).
pub fn small_buffers() -> tokio_tungstenite::tungstenite::protocol::WebSocketConfig {
    tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(0)
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Connects and says hello; returns the socket once the welcome has arrived.
async fn hello(base: &str, token: Option<&str>, since: Option<u64>) -> Option<(Socket, Value)> {
    let (mut ws, _) = tokio::time::timeout(
        Duration::from_secs(10),
        tokio_tungstenite::connect_async_with_config(ws_url(base), Some(small_buffers()), true),
    )
    .await
    .ok()?
    .ok()?;
    let h = json!({"type": "hello", "token": token, "since": since});
    ws.send(Message::Text(h.to_string().into())).await.ok()?;
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .ok()??
            .ok()?;
        if let Message::Text(t) = msg {
            let v: Value = serde_json::from_str(t.as_str()).ok()?;
            return (v["type"] == "welcome").then_some((ws, v));
        }
    }
}

/// Jittered exponential backoff: 0.5 s doubling up to 4 s (the contract says up
/// to 10 s; a load run is short).
fn backoff(attempt: u32) -> Duration {
    let base = 500u64 << attempt.min(3);
    Duration::from_millis(base / 2 + rand::rng().random_range(0..=base / 2))
}

/// The `seq` of an event or snapshot frame, read without parsing the rest.
fn frame_seq(t: &str) -> Option<u64> {
    let i = t.find("\"seq\":")? + 6;
    let digits: String = t[i..].chars().take_while(|c| c.is_ascii_digit()).collect();
    digits.parse().ok()
}

#[derive(Deserialize)]
struct IssueAnswer {
    #[serde(rename = "type")]
    kind: String,
    request_id: Option<String>,
    ticket: Option<TicketLite>,
}

#[derive(Deserialize)]
struct TicketLite {
    id: String,
    number: String,
    day: String,
}

/// The counter of a `ticket_called` event frame, read without parsing the
/// rest: the first `"counter":"…"` after the kind is the called ticket's,
/// which is the calling counter (the event's own field repeats it).
fn called_counter(t: &str) -> Option<&str> {
    let i = t.find(r#""kind":"ticket_called""#)?;
    let rest = &t[i..];
    let j = rest.find(r#""counter":""#)? + 11;
    let rest = &rest[j..];
    Some(&rest[..rest.find('"')?])
}

async fn kiosk(ctx: Arc<Ctx>, idx: usize, arrivals: Vec<f64>) {
    let tag: u32 = rand::random();
    let mut next = 0usize;
    // The one press in flight: (request_id, service, first sent).
    let mut in_flight: Option<(String, String, Instant)> = None;
    let mut attempt = 0u32;
    let mut services: Vec<String> = vec![];
    'connection: while Instant::now() < ctx.deadline() {
        let Some((mut ws, welcome)) =
            hello(&ctx.target.base, Some(&ctx.target.kiosk_token), None).await
        else {
            attempt += 1;
            ctx.reconnects.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(backoff(attempt)).await;
            continue;
        };
        attempt = 0;
        services = welcome["services"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| s["id"].as_str().map(String::from))
                    .collect()
            })
            .unwrap_or(services);
        if services.is_empty() {
            return;
        }
        loop {
            if in_flight.is_none() {
                let Some(at) = arrivals.get(next) else {
                    return;
                };
                let when = ctx.start() + Duration::from_secs_f64(*at);
                if when >= ctx.deadline() {
                    return;
                }
                tokio::time::sleep_until(when.into()).await;
                next += 1;
                let service = services[rand::rng().random_range(0..services.len())].clone();
                in_flight = Some((
                    format!("load-{tag:08x}-{idx}-{next}"),
                    service,
                    Instant::now(),
                ));
            }
            let (rid, service, sent) = in_flight.clone().expect("a press in flight");
            let msg = json!({"type": "issue", "request_id": rid, "service": service});
            if ws
                .send(Message::Text(msg.to_string().into()))
                .await
                .is_err()
            {
                ctx.reconnects.fetch_add(1, Ordering::Relaxed);
                continue 'connection;
            }
            // Wait for the answer to this request (events are skipped).
            loop {
                let frame = tokio::time::timeout(Duration::from_secs(10), ws.next()).await;
                let text = match frame {
                    Ok(Some(Ok(Message::Text(t)))) => t,
                    Ok(Some(Ok(_))) => continue,
                    _ => {
                        ctx.reconnects.fetch_add(1, Ordering::Relaxed);
                        tokio::time::sleep(backoff(0)).await;
                        continue 'connection;
                    }
                };
                let t = text.as_str();
                if !(t.starts_with(r#"{"type":"issued""#) || t.starts_with(r#"{"type":"error""#)) {
                    continue;
                }
                let Ok(a) = serde_json::from_str::<IssueAnswer>(t) else {
                    continue;
                };
                if a.request_id.as_deref() != Some(rid.as_str()) {
                    continue;
                }
                match (a.kind.as_str(), a.ticket) {
                    ("issued", Some(ticket)) => {
                        record(&ctx.issue_ack, sent.elapsed());
                        if let Ok(mut acked) = ctx.acked.lock() {
                            acked.push(Acked {
                                request_id: rid.clone(),
                                id: ticket.id,
                                service: service.clone(),
                                number: ticket.number,
                                day: ticket.day,
                            });
                        }
                    }
                    _ => {
                        ctx.issue_errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
                in_flight = None;
                break;
            }
        }
    }
}

async fn login(ctx: &Ctx, who: &(String, String)) -> Option<String> {
    for attempt in 0..20 {
        if Instant::now() >= ctx.deadline() {
            return None;
        }
        let r = ctx
            .http
            .post(format!("{}/api/v1/login", ctx.target.base))
            .json(&json!({"username": who.0, "password": who.1}))
            .send()
            .await;
        if let Ok(r) = r
            && r.status().is_success()
        {
            let v: Value = r.json().await.ok()?;
            return v["token"].as_str().map(String::from);
        }
        tokio::time::sleep(backoff(attempt)).await;
    }
    None
}

async fn console_post(
    ctx: &Ctx,
    token: &str,
    counter: &str,
    action: &str,
    body: Option<Value>,
) -> Result<(u16, Value), ()> {
    let mut req = ctx
        .http
        .post(format!(
            "{}/api/v1/counters/{counter}/{action}",
            ctx.target.base
        ))
        .bearer_auth(token);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let r = req.send().await.map_err(|_| ())?;
    let status = r.status().as_u16();
    Ok((status, r.json().await.unwrap_or(Value::Null)))
}

/// A room sends `send_to_tests` of its patients to a test and back (the
/// one-way flow); a patient coming back, or called at a test, is done.
fn send_to_test(ctx: &Ctx, ticket: &Value) -> Option<Value> {
    let tests = &ctx.plan.tests;
    let service = ticket["service"].as_str().unwrap_or_default();
    let back = ticket["visit"]["steps"].as_array().is_some_and(|s| {
        s.iter()
            .any(|s| s["status"] == "called" && s["returning"] == true)
    });
    if tests.is_empty() || back || tests.iter().any(|t| t == service) {
        return None;
    }
    let mut rng = rand::rng();
    if !rng.random_bool(ctx.plan.send_to_tests.clamp(0.0, 1.0)) {
        return None;
    }
    let test = &tests[rng.random_range(0..tests.len())];
    Some(json!({"stops": [{"service": test}], "return": true}))
}

async fn console(ctx: Arc<Ctx>, idx: usize, counter: String, mut token: String) {
    let who = ctx.target.staff[idx % ctx.target.staff.len()].clone();
    let c = ctx.counter_index[&counter];
    let (lo, hi) = ctx.plan.service_s;
    // Staff stop at the end of the run, even in the middle of a service.
    let deadline = ctx.deadline();
    let pause = |s: f64| {
        tokio::time::sleep_until(
            deadline
                .min(Instant::now() + Duration::from_secs_f64(s))
                .into(),
        )
    };
    // Consoles start spread over the first service time, as staff do.
    pause(uniform(0.0, hi)).await;
    while Instant::now() < ctx.deadline() {
        let t0 = Instant::now();
        ctx.calls[c].write().expect("calls lock").push(t0);
        let answer = console_post(&ctx, &token, &counter, "next", None).await;
        match answer {
            Ok((200, ticket)) => {
                record(&ctx.call_http, t0.elapsed());
                ctx.calls_ok.fetch_add(1, Ordering::Relaxed);
                let id = ticket["id"].as_str().unwrap_or_default().to_string();
                let (recall, no_show, rate) = {
                    let mut rng = rand::rng();
                    (
                        rng.random_bool(ctx.plan.recall),
                        rng.random_bool(ctx.plan.no_show),
                        rng.random_bool(ctx.plan.rating),
                    )
                };
                pause(uniform(lo, hi) / 2.0).await;
                if recall {
                    let _ = console_post(&ctx, &token, &counter, "recall", None).await;
                }
                pause(uniform(lo, hi) / 2.0).await;
                let (end, body) = match send_to_test(&ctx, &ticket) {
                    Some(stop) if !no_show => ("send", Some(stop)),
                    _ if no_show => ("no-show", None),
                    _ => ("done", None),
                };
                let _ = console_post(&ctx, &token, &counter, end, body).await;
                if rate && !no_show && !id.is_empty() {
                    let _ = ctx
                        .http
                        .post(format!("{}/api/v1/tickets/{id}/feedback", ctx.target.base))
                        .json(&json!({"rating": rand::rng().random_range(3..=5)}))
                        .send()
                        .await;
                }
            }
            other => {
                ctx.calls[c].write().expect("calls lock").pop();
                match other {
                    Ok((409, _)) => {
                        ctx.calls_empty.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok((401, _)) => {
                        ctx.call_errors.fetch_add(1, Ordering::Relaxed);
                        if let Some(t) = login(&ctx, &who).await {
                            token = t;
                        }
                    }
                    _ => {
                        ctx.call_errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
                pause((lo / 4.0).clamp(0.2, 2.0)).await;
            }
        }
    }
}

/// A screen (display token) or a console's socket (login token): follows
/// every event, checks `seq` continuity, times each `ticket_called`.
async fn watcher(
    ctx: Arc<Ctx>,
    idx: usize,
    token: Option<String>,
    ready: Arc<tokio::sync::Semaphore>,
    connecting: Option<tokio::sync::OwnedSemaphorePermit>,
) {
    // Until the first snapshot: the connect slot to give back, and `ready` to tell.
    let mut not_ready_yet = Some(connecting);
    let mut signal_ready = || {
        if let Some(slot) = not_ready_yet.take() {
            drop(slot);
            ready.add_permits(1);
        }
    };
    let mut last: Option<u64> = None;
    let mut seen = vec![0usize; ctx.calls.len()];
    let mut measuring = true;
    let mut first = true;
    let mut attempt = 0u32;
    let shard = &ctx.deliveries[idx % ctx.deliveries.len()];
    let mut stop = ctx.stop.subscribe();
    while !*ctx.stop.borrow() {
        let Some((mut ws, _)) = hello(&ctx.target.base, token.as_deref(), last).await else {
            attempt += 1;
            tokio::time::sleep(backoff(attempt)).await;
            continue;
        };
        attempt = 0;
        if !first {
            ctx.reconnects.fetch_add(1, Ordering::Relaxed);
            // Replayed or resynced: the k-th call matching no longer holds.
            measuring = false;
        }
        first = false;
        // One wait for the stop signal per connection, not one per frame.
        let stopped = stop.changed();
        tokio::pin!(stopped);
        loop {
            let frame = tokio::select! {
                f = ws.next() => f,
                _ = &mut stopped => break,
            };
            let Some(Ok(msg)) = frame else { break };
            let Message::Text(text) = msg else { continue };
            let at = Instant::now();
            let t = text.as_str();
            if t.starts_with(r#"{"type":"snapshot""#) {
                if last.is_some() {
                    measuring = false;
                }
                last = frame_seq(t);
                signal_ready();
                continue;
            }
            if !t.starts_with(r#"{"type":"event""#) {
                continue;
            }
            let Some(seq) = frame_seq(t) else { continue };
            if let Some(l) = last
                && seq != l + 1
            {
                ctx.seq_gaps.fetch_add(1, Ordering::Relaxed);
            }
            last = Some(seq);
            if measuring && t.contains(r#""kind":"ticket_called""#) {
                let Some(c) = called_counter(t).and_then(|c| ctx.counter_index.get(c).copied())
                else {
                    continue;
                };
                let k = seen[c];
                seen[c] += 1;
                let sent = ctx.calls[c].read().expect("calls lock").get(k).copied();
                if let Some(sent) = sent {
                    record(shard, at.duration_since(sent));
                }
            }
        }
        // A first connection that ended before its snapshot still counts,
        // so the run does not wait for it.
        signal_ready();
        if !*ctx.stop.borrow() {
            tokio::time::sleep(backoff(0)).await;
        }
    }
    if let Ok(mut s) = ctx.last_seqs.lock() {
        s.push(last.unwrap_or(0));
    }
}

async fn ticket_page(ctx: Arc<Ctx>) {
    let every = Duration::from_secs_f64(ctx.plan.ticket_page_every_s);
    tokio::time::sleep(every.mul_f64(uniform(0.0, 1.0))).await;
    while Instant::now() < ctx.deadline() {
        let id = {
            let acked = ctx.acked.lock().expect("acked lock");
            if acked.is_empty() {
                None
            } else {
                Some(acked[rand::rng().random_range(0..acked.len())].id.clone())
            }
        };
        if let Some(id) = id {
            let t0 = Instant::now();
            let r = ctx
                .http
                .get(format!("{}/api/v1/tickets/{id}", ctx.target.base))
                .send()
                .await;
            if let Ok(r) = r
                && r.status().is_success()
                && r.bytes().await.is_ok()
            {
                record(&ctx.page_polls, t0.elapsed());
            }
        }
        tokio::time::sleep_until(ctx.deadline().min(Instant::now() + every).into()).await;
    }
}

fn clock_ticks_per_s() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// RSS in MB and CPU time in ticks of a process, from /proc.
pub fn proc_sample(pid: u32) -> Option<(f64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss_kb: f64 = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) in parentheses.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    Some((rss_kb / 1024.0, ticks))
}

/// Runs the plan against the target and returns what it measured.
pub async fn run(target: Target, plan: Plan) -> anyhow::Result<Report> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(15))
        .pool_max_idle_per_host(256)
        .build()?;
    let site_url = format!("{}/api/v1/site", target.base);
    let site: Value = async { http.get(&site_url).send().await?.json().await }
        .await
        .map_err(|e| anyhow::anyhow!("cannot read the site from {site_url}: {e}"))?;
    let counters: Vec<String> = site["counters"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|c| c["id"].as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    anyhow::ensure!(!counters.is_empty(), "the site has no counters");
    let consoles = plan.consoles.min(counters.len());
    let counter_index: HashMap<String, usize> = counters
        .iter()
        .enumerate()
        .map(|(i, c)| (c.clone(), i))
        .collect();

    let ctx = Ctx {
        target: target.clone(),
        plan: plan.clone(),
        http,
        clock: std::sync::OnceLock::new(),
        stop: tokio::sync::watch::channel(false).0,
        counter_index,
        calls: counters.iter().map(|_| RwLock::new(vec![])).collect(),
        deliveries: (0..32).map(|_| Mutex::new(hist())).collect(),
        issue_ack: Mutex::new(hist()),
        call_http: Mutex::new(hist()),
        page_polls: Mutex::new(hist()),
        acked: Mutex::new(vec![]),
        issue_errors: AtomicU64::new(0),
        calls_ok: AtomicU64::new(0),
        calls_empty: AtomicU64::new(0),
        call_errors: AtomicU64::new(0),
        reconnects: AtomicU64::new(0),
        seq_gaps: AtomicU64::new(0),
        last_seqs: Mutex::new(vec![]),
    };

    // Wrong credentials fail here, clearly, instead of as a run of errors.
    if plan.kiosks > 0 && !plan.arrivals.is_empty() {
        anyhow::ensure!(
            hello(&target.base, Some(&target.kiosk_token), None)
                .await
                .is_some(),
            "the server did not welcome the kiosk token"
        );
    }
    if plan.screens > 0 {
        anyhow::ensure!(
            hello(&target.base, target.display_token.as_deref(), None)
                .await
                .is_some(),
            "the server did not welcome a screen (check the display token, or public_board)"
        );
    }

    // Console logins happen first (each is an argon2 verification).
    let mut console_tokens = vec![];
    for i in 0..consoles {
        let who = &target.staff[i % target.staff.len()];
        let t = login(&ctx, who)
            .await
            .ok_or_else(|| anyhow::anyhow!("login as {} failed", who.0))?;
        console_tokens.push(t);
    }

    let ctx = Arc::new(ctx);

    // Phase 1: every watcher connects and has its snapshot (at most 128
    // connecting at once), before the clock starts.
    let t_connect = Instant::now();
    let watchers = plan.screens + consoles;
    let tokens: Vec<Option<String>> = (0..plan.screens)
        .map(|_| target.display_token.clone())
        .chain(console_tokens.iter().cloned().map(Some))
        .collect();
    let ready = Arc::new(tokio::sync::Semaphore::new(0));
    let connecting = Arc::new(tokio::sync::Semaphore::new(128));
    let mut watcher_tasks = Vec::with_capacity(watchers);
    for (i, token) in tokens.into_iter().enumerate() {
        let (ctx, ready, connecting) = (ctx.clone(), ready.clone(), connecting.clone());
        watcher_tasks.push(tokio::spawn(async move {
            let permit = connecting.acquire_owned().await.ok();
            watcher(ctx, i, token, ready, permit).await;
        }));
    }
    tokio::time::timeout(
        Duration::from_secs(300),
        ready.acquire_many(watchers as u32),
    )
    .await
    .map_err(|_| anyhow::anyhow!("the watchers did not all connect within 5 minutes"))??
    .forget();
    let watchers_connect_s = t_connect.elapsed().as_secs_f64();
    eprintln!(
        "luot-load: {watchers} watchers connected in {watchers_connect_s:.1} s; running for {} s",
        plan.duration.as_secs()
    );

    // Phase 2: the clock starts; kiosks issue, consoles call, pages poll.
    let start = Instant::now();
    let _ = ctx.clock.set((start, start + plan.duration));
    let cpu0 = target.pid.and_then(proc_sample);
    let sampler = target.pid.map(|pid| {
        let ctx = ctx.clone();
        tokio::spawn(async move {
            let mut timeline = vec![];
            while !*ctx.stop.borrow() {
                if let Some((rss, _)) = proc_sample(pid) {
                    timeline.push((start.elapsed().as_secs_f64(), rss));
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            timeline
        })
    });
    let mut tasks = vec![];
    let k = plan.kiosks.max(1);
    for i in 0..k {
        let mine: Vec<f64> = plan.arrivals.iter().skip(i).step_by(k).copied().collect();
        tasks.push(tokio::spawn(kiosk(ctx.clone(), i, mine)));
    }
    for (i, (counter, token)) in counters.iter().zip(console_tokens).enumerate() {
        tasks.push(tokio::spawn(console(
            ctx.clone(),
            i,
            counter.clone(),
            token,
        )));
    }
    for _ in 0..plan.ticket_pages {
        tasks.push(tokio::spawn(ticket_page(ctx.clone())));
    }
    for t in tasks {
        let _ = t.await;
    }
    let busy_until = Instant::now();
    eprintln!("luot-load: load stopped; letting the watchers catch up");
    // Watchers get 3 s to receive the last events.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let final_seq = current_seq(&target).await.unwrap_or(0);
    tokio::time::sleep(Duration::from_millis(500)).await;
    ctx.stop.send_replace(true);
    for t in watcher_tasks {
        let _ = tokio::time::timeout(Duration::from_secs(10), t).await;
    }
    let rss_timeline = match sampler {
        Some(s) => s.await.unwrap_or_default(),
        None => vec![],
    };
    let server = match (target.pid, cpu0) {
        (Some(pid), Some((rss0, ticks0))) => {
            let peak = rss_timeline.iter().map(|s| s.1).fold(0.0, f64::max);
            proc_sample(pid).map(|(rss, ticks)| ServerStats {
                rss_start_mb: round1(rss0),
                rss_peak_mb: round1(peak.max(rss)),
                rss_end_mb: round1(rss),
                cpu_mean_pct: (ticks.saturating_sub(ticks0) as f64
                    / clock_ticks_per_s()
                    / busy_until.duration_since(start).as_secs_f64()
                    * 100.0)
                    .round(),
            })
        }
        _ => None,
    };
    let mut deliveries = hist();
    for h in &ctx.deliveries {
        deliveries.add(&*h.lock().expect("histogram lock"))?;
    }
    let elapsed = busy_until.duration_since(start).as_secs_f64();
    let tickets = ctx.acked.lock().expect("acked lock").clone();
    let calls = ctx.calls_ok.load(Ordering::Relaxed);
    let last_seqs = ctx.last_seqs.lock().expect("seqs lock").clone();
    Ok(Report {
        scenario: plan.name.clone(),
        duration_s: (elapsed * 10.0).round() / 10.0,
        kiosks: plan.kiosks,
        consoles,
        screens: plan.screens,
        ticket_pages: plan.ticket_pages,
        watchers_connect_s: round1(watchers_connect_s),
        issued: tickets.len(),
        issue_per_s: round1(tickets.len() as f64 / elapsed),
        issue_errors: ctx.issue_errors.load(Ordering::Relaxed),
        issue_ack: Latency::of(&ctx.issue_ack.lock().expect("histogram lock")),
        calls,
        calls_on_empty_queue: ctx.calls_empty.load(Ordering::Relaxed),
        call_errors: ctx.call_errors.load(Ordering::Relaxed),
        call_http: Latency::of(&ctx.call_http.lock().expect("histogram lock")),
        call_to_event: Latency::of(&deliveries),
        deliveries_expected: calls * watchers as u64,
        ticket_page_polls: Latency::of(&ctx.page_polls.lock().expect("histogram lock")),
        reconnects: ctx.reconnects.load(Ordering::Relaxed),
        seq_gaps: ctx.seq_gaps.load(Ordering::Relaxed),
        watchers_behind: last_seqs.iter().filter(|s| **s < final_seq).count()
            + watchers.saturating_sub(last_seqs.len()),
        server,
        tickets,
        final_seq,
        rss_timeline,
    })
}

fn round1(v: f64) -> f64 {
    (v * 10.0).round() / 10.0
}

/// The server's last `seq`, from a fresh snapshot (a public hello may be
/// refused, so the display token is used when there is one).
pub async fn current_seq(target: &Target) -> Option<u64> {
    let (mut ws, _) = hello(&target.base, target.display_token.as_deref(), None).await?;
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .ok()??
            .ok()?;
        if let Message::Text(t) = msg
            && t.as_str().starts_with(r#"{"type":"snapshot""#)
        {
            return frame_seq(t.as_str());
        }
    }
}

/// Names for generated services, from a hospital's outpatient department.
const SERVICE_NAMES: [&str; 20] = [
    "Tiếp đón",
    "Khám Nội",
    "Khám Ngoại",
    "Khám Nhi",
    "Khám Sản",
    "Mắt",
    "Tai Mũi Họng",
    "Răng Hàm Mặt",
    "Da liễu",
    "Thần kinh",
    "Tim mạch",
    "Hô hấp",
    "Tiêu hoá",
    "Nội tiết",
    "Xét nghiệm máu",
    "Chẩn đoán hình ảnh",
    "Siêu âm",
    "Điện tim",
    "Thu ngân",
    "Nhà thuốc",
];

/// Credentials of a generated load site.
pub const LOAD_KIOSK_TOKEN: &str = "load-kiosk-token-0123456789abcdef";
pub const LOAD_DISPLAY_TOKEN: &str = "load-display-token-0123456789abcd";
pub const LOAD_PASSWORD: &str = "load-mật-khẩu";

/// A site with `services` services and `counters` counters (counter i serves
/// services i and i+1), one kiosk with every service, one display, and a
/// staff user `nv-NN` for each counter with password [`LOAD_PASSWORD`].
pub fn site_toml(services: usize, counters: usize, password_hash: &str) -> String {
    let prefix = |i: usize| {
        let a = (b'A' + (i % 26) as u8) as char;
        if i < 26 {
            a.to_string()
        } else {
            format!("{}{a}", (b'A' + (i / 26 - 1) as u8) as char)
        }
    };
    let sid = |i: usize| format!("dv-{:02}", i + 1);
    let mut s = format!(
        r#"# A generated load-test site: {services} services, {counters} counters.
[site]
name = "Bệnh viện thử tải"
timezone = "Asia/Ho_Chi_Minh"
day_starts_at = "00:00"
public_url = "http://127.0.0.1"

[server]
listen = "127.0.0.1:8080"
data_dir = "luot-load-data"

[priority]
ratio = 3
classes = ["emergency", "child_under_6", "pregnant", "age_75_plus"]
"#
    );
    for i in 0..services {
        let base = SERVICE_NAMES[i % SERVICE_NAMES.len()];
        let name = if i < SERVICE_NAMES.len() {
            base.to_string()
        } else {
            format!("{base} {}", i / SERVICE_NAMES.len() + 1)
        };
        s.push_str(&format!(
            "\n[[services]]\nid = \"{}\"\nname = \"{name}\"\nprefix = \"{}\"\ndigits = 4\n",
            sid(i),
            prefix(i)
        ));
    }
    for i in 0..counters {
        let a = sid(i % services);
        let b = sid((i + 1) % services);
        let list = if a == b {
            format!("\"{a}\"")
        } else {
            format!("\"{a}\", \"{b}\"")
        };
        s.push_str(&format!(
            "\n[[counters]]\nid = \"q{:02}\"\nname = \"Quầy {}\"\nservices = [{list}]\n",
            i + 1,
            i + 1
        ));
    }
    let all: Vec<String> = (0..services).map(|i| format!("\"{}\"", sid(i))).collect();
    s.push_str(&format!(
        "\n[[devices]]\nid = \"kiosk-load\"\nrole = \"kiosk\"\ntoken_sha256 = \"{}\"\nservices = [{}]\n",
        luot_server::auth::sha256_hex(LOAD_KIOSK_TOKEN),
        all.join(", ")
    ));
    s.push_str(&format!(
        "\n[[devices]]\nid = \"tv-load\"\nrole = \"display\"\ntoken_sha256 = \"{}\"\n",
        luot_server::auth::sha256_hex(LOAD_DISPLAY_TOKEN)
    ));
    for i in 0..counters {
        s.push_str(&format!(
            "\n[[users]]\nusername = \"nv-{:02}\"\nrole = \"staff\"\npassword_hash = \"{password_hash}\"\ncounters = [\"q{:02}\"]\n",
            i + 1,
            i + 1
        ));
    }
    s.push_str(&format!(
        "\n[[users]]\nusername = \"admin\"\nrole = \"admin\"\npassword_hash = \"{password_hash}\"\n"
    ));
    s
}

/// Staff credentials of a generated site, one per counter.
pub fn site_staff(counters: usize) -> Vec<(String, String)> {
    (0..counters)
        .map(|i| (format!("nv-{:02}", i + 1), LOAD_PASSWORD.to_string()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_called_counter_is_read_from_a_real_event_frame() {
        // A frame as the server renders it (luot-protocol's types).
        let ticket = luot_protocol::Ticket {
            id: "t1".into(),
            number: "A015".into(),
            service: "kham-noi".into(),
            priority: None,
            status: luot_protocol::TicketStatus::Called,
            counter: Some("quay-3".into()),
            issued_at: "2026-11-23T07:00:00+07:00".into(),
            called_at: Some("2026-11-23T07:10:00+07:00".into()),
            finished_at: None,
            day: "2026-11-23".into(),
            position: None,
            estimated_wait_s: None,
            calls: 1,
            reason: None,
            visit: None,
            appointment: None,
            external_ref: None,
        };
        let frame = serde_json::to_string(&luot_protocol::ServerMessage::Event {
            seq: 42,
            event: luot_protocol::WireEvent {
                kind: luot_protocol::EventKind::TicketCalled,
                ticket: Some(ticket),
                counter: Some("quay-3".into()),
                counter_name: Some("Quầy 3".into()),
                service_name: Some("Khám Nội".into()),
                ..serde_json::from_str(r#"{"kind":"ticket_called"}"#).unwrap()
            },
        })
        .unwrap();
        assert_eq!(called_counter(&frame), Some("quay-3"));
        assert_eq!(frame_seq(&frame), Some(42));
        assert_eq!(
            called_counter(r#"{"type":"event","seq":1,"event":{"kind":"ticket_done"}}"#),
            None
        );
    }
}
