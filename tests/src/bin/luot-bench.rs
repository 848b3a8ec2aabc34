//! `luot-bench`: measures the real server on this machine and prints numbers.
//!
//! ```text
//! cargo run --release -p luot-tests --bin luot-bench -- all [--out bench.json] [--baseline BENCHMARKS.json]
//! ```
//!
//! - `issue`: durable issue throughput and latency with K concurrent kiosk websockets;
//! - `fanout`: staff call → event at every one of W connected screens; server RSS;
//! - `restart`: time from start to ready with N events in the log;
//! - `book`: bookings (§11) acknowledged durably per second over HTTP;
//! - `webhooks`: two webhooks (§12) at a steady issue rate: commit → receiver
//!   latency, and issue throughput with and without them.
//!
//! Everything runs against a real `luot-server` process on 127.0.0.1 with a
//! temporary data directory; every loop is bounded.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use luot_tests::load::small_buffers;
use luot_tests::*;
use serde_json::{Value, json};
use tokio::sync::Mutex;
use tokio_tungstenite::tungstenite::Message;

#[derive(Parser)]
#[command(about = "Benchmarks of luot-server on this machine")]
struct Cli {
    #[command(subcommand)]
    what: What,
    /// Write the figures as JSON here.
    #[arg(long, global = true)]
    out: Option<std::path::PathBuf>,
    /// Compare with figures from an earlier run (JSON written by --out).
    #[arg(long, global = true)]
    baseline: Option<std::path::PathBuf>,
}

#[derive(Subcommand)]
enum What {
    Issue {
        #[arg(long, default_value_t = 64)]
        kiosks: usize,
        #[arg(long, default_value_t = 50_000)]
        tickets: usize,
        /// Where the server keeps the queue: `sled`; `postgres` (one
        /// throwaway PostgreSQL); `ha` (§13's cluster: etcd, Patroni and a
        /// synchronous standby, the server beside the primary).
        #[arg(long, default_value = "sled")]
        store: String,
    },
    Fanout {
        #[arg(long, default_value_t = 5_000)]
        screens: usize,
        #[arg(long, default_value_t = 40)]
        calls: usize,
    },
    Restart {
        #[arg(long, default_value_t = 100_000)]
        events: usize,
    },
    /// Screens: staff call → number visible on a board in headless Chromium.
    Screens {
        #[arg(long, default_value_t = 40)]
        calls: usize,
    },
    /// This machine's floor for fan-out, without luot: one 1 KB message
    /// written to each of N loopback TCP sockets (one writer thread per
    /// core, the way the server's fan-out shards write), read by a tokio
    /// runtime in the same process; time from the first write to each read.
    Floor {
        #[arg(long, default_value_t = 10_000)]
        sockets: usize,
        #[arg(long, default_value_t = 20)]
        rounds: usize,
        /// (internal) Be the reading process, connecting to this address.
        #[arg(long, hide = true)]
        read: Option<String>,
    },
    /// The engine alone: `next` at a counter with W tickets waiting and V
    /// open visits (issue 14: ≤ 50 µs with 10,000 waiting and 2,000 visits).
    Engine {
        #[arg(long, default_value_t = 10_000)]
        waiting: usize,
        #[arg(long, default_value_t = 2_000)]
        visits: usize,
        #[arg(long, default_value_t = 2_000)]
        calls: usize,
    },
    /// Bookings (§11): `POST /appointments` by an integration from C
    /// concurrent HTTP clients (keep-alive), each answered once durable;
    /// half carry a card (the person's keyed hash).
    Book {
        #[arg(long, default_value_t = 64)]
        clients: usize,
        #[arg(long, default_value_t = 50_000)]
        bookings: usize,
    },
    /// Kiosk: ticket render time, press → first byte at the printer, RSS.
    Kiosk {
        #[arg(long, default_value_t = 50)]
        presses: usize,
    },
    /// Kiosk: a booking's QR code scanned → its ticket's first byte at the
    /// printer (issue 15: p99 ≤ 300 ms), at most 200 scans.
    Scan {
        #[arg(long, default_value_t = 100)]
        scans: usize,
    },
    /// Webhooks (§12): two webhooks taking every event, tickets issued at
    /// `rate` a second for `seconds`: the time from a ticket's answer (its
    /// commit) to its body at each receiver; then issue throughput with 64
    /// kiosks with and without the two webhooks.
    Webhooks {
        #[arg(long, default_value_t = 1_000)]
        rate: usize,
        #[arg(long, default_value_t = 10)]
        seconds: usize,
        #[arg(long, default_value_t = 20_000)]
        tickets: usize,
    },
    All,
}

type Figures = BTreeMap<String, f64>;

/// RSS of a process in MB (NaN when it cannot be read).
fn rss_mb(pid: u32) -> f64 {
    luot_tests::load::proc_sample(pid).map_or(f64::NAN, |(rss, _)| rss)
}

fn ms(h: &Histogram<u64>, q: f64) -> f64 {
    h.value_at_quantile(q) as f64 / 1000.0
}

/// Issues `tickets` in total from `kiosks` websockets, one in flight each.
async fn issue_load(
    server: &Server,
    kiosks: usize,
    tickets: usize,
    tag: &str,
) -> (f64, Histogram<u64>) {
    let per = tickets.div_ceil(kiosks);
    let hist = Arc::new(Mutex::new(Histogram::<u64>::new(3).unwrap()));
    let mut conns = vec![];
    for i in 0..kiosks {
        let (token, service) = if i % 4 == 3 {
            (KIOSK2_TOKEN, "xet-nghiem")
        } else {
            (KIOSK_TOKEN, ["kham-noi", "kham-ngoai"][i % 2])
        };
        let (mut ws, _) = tokio_tungstenite::connect_async_with_config(
            server.ws_url(),
            Some(small_buffers()),
            true,
        )
        .await
        .unwrap();
        ws.send(Message::Text(
            json!({"type": "hello", "token": token}).to_string().into(),
        ))
        .await
        .unwrap();
        // welcome + snapshot
        let mut got = 0;
        while got < 2 {
            if let Some(Ok(Message::Text(_))) = ws.next().await {
                got += 1;
            }
        }
        conns.push((ws, service));
    }
    let t0 = Instant::now();
    let mut tasks = vec![];
    for (i, (mut ws, service)) in conns.into_iter().enumerate() {
        let hist = hist.clone();
        let tag = tag.to_string();
        tasks.push(tokio::spawn(async move {
            let mut local = Histogram::<u64>::new(3).unwrap();
            for n in 0..per {
                let msg = json!({"type": "issue", "request_id": format!("{tag}-{i}-{n}"), "service": service});
                let sent = Instant::now();
                ws.send(Message::Text(msg.to_string().into())).await.unwrap();
                loop {
                    let t = match ws.next().await {
                        Some(Ok(Message::Text(t))) => t,
                        Some(Ok(_)) => continue,
                        other => panic!("socket closed: {other:?}"),
                    };
                    if t.as_str().starts_with(r#"{"type":"issued""#) {
                        break;
                    }
                    if t.as_str().starts_with(r#"{"type":"error""#) {
                        panic!("issue failed: {t}");
                    }
                }
                local.record(sent.elapsed().as_micros() as u64).unwrap();
            }
            hist.lock().await.add(&local).unwrap();
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let took = t0.elapsed().as_secs_f64();
    let h = hist.lock().await.clone();
    ((per * kiosks) as f64 / took, h)
}

/// The test hospital on PostgreSQL at `url`, as node `node`, with
/// `patroni` as its Patroni when given.
fn pg_site(url: &str, node: &str, patroni: Option<&str>) -> Site {
    let mut toml = format!(
        "{}\n[store]\nkind = \"postgres\"\nurl = \"{url}\"\n",
        test_site_toml(false)
    );
    if let Some(p) = patroni {
        toml.push_str(&format!(
            "\n[ha]\nnode = \"{node}\"\npatroni_url = \"{p}\"\n"
        ));
    }
    Site::new(&toml)
}

/// What keeps a bench's store: nothing, a PostgreSQL, or the HA cluster
/// (dropped at the end of the bench).
enum Backing {
    None,
    Pg {
        _pg: luot_pgtest::Cluster,
    },
    Ha {
        _cluster: Box<luot_tests::ha::HaCluster>,
    },
}

/// The bench's site and what backs its store.
fn bench_site(store: &str) -> (Site, Backing, &'static str) {
    match store {
        "postgres" => {
            let pg = luot_pgtest::Cluster::start();
            let url = pg.fresh_database();
            (pg_site(&url, "bench", None), Backing::Pg { _pg: pg }, "pg_")
        }
        "ha" => {
            let c = luot_tests::ha::HaCluster::start().expect("the HA cluster");
            let primary = c.primary().expect("a primary");
            let site = pg_site(
                &c.pg_url(&primary),
                &primary,
                Some(&c.patroni_url(&primary)),
            );
            (
                site,
                Backing::Ha {
                    _cluster: Box::new(c),
                },
                "ha_",
            )
        }
        _ => (Site::hospital(), Backing::None, ""),
    }
}

async fn bench_issue(kiosks: usize, tickets: usize, store: &str, f: &mut Figures) {
    let (site, backing, key) = bench_site(store);
    let server = site.start();
    if !matches!(backing, Backing::None) {
        let api = Api::new(&server);
        let t0 = Instant::now();
        while api.get("/healthz", None).await.status != 200 {
            assert!(
                t0.elapsed() < Duration::from_secs(30),
                "{}",
                server.stderr()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let ha = api.get("/api/v1/ha", None).await;
        println!(
            "issue: store {store}, synchronous standby {}",
            ha.body["sync_standby"]
        );
    }
    // Warm up.
    issue_load(&server, kiosks, kiosks * 20, "warm").await;
    let (rate, h) = issue_load(&server, kiosks, tickets, "run").await;
    println!(
        "issue ({store}): {kiosks} kiosk websockets, {} durable tickets: {rate:.0} tickets/s; ack latency p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        h.len(),
        ms(&h, 0.5),
        ms(&h, 0.99),
        h.max() as f64 / 1000.0
    );
    f.insert(format!("issue_{key}tickets_per_s"), rate.round());
    f.insert(format!("issue_{key}p50_ms"), ms(&h, 0.5));
    f.insert(format!("issue_{key}p99_ms"), ms(&h, 0.99));
    f.insert(format!("issue_{key}max_ms"), h.max() as f64 / 1000.0);
    let api = Api::new(&server);
    let m = api.get("/metrics", None).await.text;
    let flushes = m
        .lines()
        .find(|l| l.starts_with("luot_store_flush_seconds_count"))
        .and_then(|l| l.split(' ').nth(1))
        .unwrap_or("?")
        .to_string();
    let flush_sum: f64 = m
        .lines()
        .find(|l| l.starts_with("luot_store_flush_seconds_sum"))
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(f64::NAN);
    let n: f64 = flushes.parse().unwrap_or(f64::NAN);
    let tickets_total = h.len() as f64 + (kiosks * 20) as f64;
    println!(
        "issue ({store}): {flushes} group commits in total, mean write+commit {:.3} ms, {:.1} tickets per commit",
        flush_sum / n * 1000.0,
        tickets_total / n
    );
    f.insert(format!("issue_{key}tickets_per_commit"), tickets_total / n);
    drop(server);
    drop(backing);
}

const INTEGRATION_TOKEN: &str = "bench-integration-token-dddddddd";

/// The test hospital with bookings on `kham-noi`: one long session a day
/// (05:00–23:00) in slots of one minute, room for a million bookings a
/// day, and an integration.
fn booking_site_toml() -> String {
    test_site_toml(false).replacen(
        "prefix = \"A\"\ndigits = 3\n",
        "prefix = \"A\"\ndigits = 3\nsessions = [{ id = \"ngay\", start = \"05:00\", end = \"23:00\", cap = 1000000, appointment_quota = 1000000, slot_minutes = 1, slot_capacity = 1000 }]\n",
        1,
    ) + &format!(
        "\n[[devices]]\nid = \"his\"\nrole = \"integration\"\ntoken_sha256 = \"{}\"\n",
        sha(INTEGRATION_TOKEN)
    )
}

/// `n` bookings from `clients` concurrent HTTP clients, for tomorrow's
/// slots in turn: (bookings per second, latency histogram in µs).
async fn book_load(server: &Server, clients: usize, n: usize, tag: &str) -> (f64, Histogram<u64>) {
    let api = Api::new(server);
    // Tomorrow in Hanoi (UTC+7): a day whose session has not begun.
    let day =
        (chrono::Utc::now() + chrono::Duration::hours(7)).date_naive() + chrono::Duration::days(1);
    let per = n.div_ceil(clients);
    let hist = Arc::new(Mutex::new(Histogram::<u64>::new(3).unwrap()));
    let t0 = Instant::now();
    let mut tasks = vec![];
    for c in 0..clients {
        let (api, hist, tag) = (api.clone(), hist.clone(), tag.to_string());
        tasks.push(tokio::spawn(async move {
            let mut local = Histogram::<u64>::new(3).unwrap();
            for i in 0..per {
                let k = c * per + i;
                let minute = 5 * 60 + (k % (18 * 60));
                let slot = format!("{day}T{:02}:{:02}:00+07:00", minute / 60, minute % 60);
                let mut body = json!({"service": "kham-noi", "slot_at": slot, "request_id": format!("{tag}-{c}-{i}"), "external_ref": format!("HIS-{k}")});
                if k.is_multiple_of(2) {
                    body["identity"] = json!({"id_number": format!("{:012}", 1_000_000 + k), "birth_date": "1950-03-01"});
                }
                let sent = Instant::now();
                let a = api.post("/api/v1/appointments", Some(INTEGRATION_TOKEN), Some(body)).await;
                assert_eq!(a.status, 201, "booking failed: {}", a.text);
                local.record(sent.elapsed().as_micros() as u64).unwrap();
            }
            hist.lock().await.add(&local).unwrap();
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let took = t0.elapsed().as_secs_f64();
    let h = hist.lock().await.clone();
    ((per * clients) as f64 / took, h)
}

async fn bench_book(clients: usize, bookings: usize, f: &mut Figures) {
    let site = Site::new(&booking_site_toml());
    let server = site.start();
    book_load(&server, clients, clients * 20, "warm").await;
    let (rate, h) = book_load(&server, clients, bookings, "run").await;
    println!(
        "book: {clients} HTTP clients, {} durable bookings: {rate:.0} bookings/s; ack latency p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        h.len(),
        ms(&h, 0.5),
        ms(&h, 0.99),
        h.max() as f64 / 1000.0
    );
    f.insert("book_per_s".into(), rate.round());
    f.insert("book_p50_ms".into(), ms(&h, 0.5));
    f.insert("book_p99_ms".into(), ms(&h, 0.99));
}

async fn bench_fanout(screens: usize, calls: usize, f: &mut Figures) {
    let site = Site::hospital();
    let server = site.start();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let idle = rss_mb(server.child.id());
    println!("rss: idle server {idle:.1} MB");
    f.insert("rss_idle_mb".into(), (idle * 10.0).round() / 10.0);
    let api = Api::new(&server);
    let staff = api.login("le.thu").await;
    for i in 0..calls {
        api.issue(KIOSK_TOKEN, "kham-noi", &format!("f{i}")).await;
    }
    // Connect the screens.
    let received: Arc<Mutex<Vec<(String, Instant)>>> =
        Arc::new(Mutex::new(Vec::with_capacity(screens * calls)));
    let ready = Arc::new(tokio::sync::Semaphore::new(0));
    let t0 = Instant::now();
    let mut tasks = vec![];
    for _ in 0..screens {
        let url = server.ws_url();
        let received = received.clone();
        let ready = ready.clone();
        tasks.push(tokio::spawn(async move {
            let (mut ws, _) = loop {
                match tokio_tungstenite::connect_async_with_config(
                    &url,
                    Some(small_buffers()),
                    true,
                )
                .await
                {
                    Ok(c) => break c,
                    Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                }
            };
            ws.send(Message::Text(
                json!({"type": "hello", "token": DISPLAY_TOKEN})
                    .to_string()
                    .into(),
            ))
            .await
            .unwrap();
            let mut mine = Vec::with_capacity(calls);
            let mut snapshot = false;
            while let Some(Ok(msg)) = ws.next().await {
                let Message::Text(t) = msg else { continue };
                let at = Instant::now();
                if !snapshot {
                    if t.as_str().starts_with(r#"{"type":"snapshot""#) {
                        snapshot = true;
                        ready.add_permits(1);
                    }
                    continue;
                }
                let v: Value = serde_json::from_str(t.as_str()).unwrap();
                if v["event"]["kind"] == "ticket_called" {
                    mine.push((
                        v["event"]["ticket"]["number"].as_str().unwrap().to_string(),
                        at,
                    ));
                    if mine.len() == calls {
                        break;
                    }
                }
            }
            received.lock().await.extend(mine);
        }));
    }
    let _ = ready.acquire_many(screens as u32).await.unwrap();
    println!(
        "fanout: {screens} screens connected in {:.1} s",
        t0.elapsed().as_secs_f64()
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss = rss_mb(server.child.id());
    println!("rss: server with {screens} connected screens {rss:.1} MB");
    f.insert(
        format!("rss_{screens}_screens_mb"),
        (rss * 10.0).round() / 10.0,
    );

    let mut sent: BTreeMap<String, Instant> = BTreeMap::new();
    for _ in 0..calls {
        let t = Instant::now();
        let r = api
            .post("/api/v1/counters/quay-1/next", Some(&staff), None)
            .await;
        sent.insert(r.body["number"].as_str().unwrap().to_string(), t);
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    for t in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(30), t).await;
    }
    let got = received.lock().await;
    let mut h = Histogram::<u64>::new(3).unwrap();
    for (number, at) in got.iter() {
        if let Some(t) = sent.get(number) {
            h.record(at.duration_since(*t).as_micros() as u64).unwrap();
        }
    }
    let expected = screens * calls;
    println!(
        "fanout: staff call -> event at every screen: {} of {expected} deliveries; p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        h.len(),
        ms(&h, 0.5),
        ms(&h, 0.99),
        h.max() as f64 / 1000.0
    );
    f.insert(format!("fanout_{screens}_p50_ms"), ms(&h, 0.5));
    f.insert(format!("fanout_{screens}_p99_ms"), ms(&h, 0.99));
    f.insert(format!("fanout_{screens}_max_ms"), h.max() as f64 / 1000.0);
    f.insert(
        format!("fanout_{screens}_delivered_fraction"),
        h.len() as f64 / expected as f64,
    );
}

async fn bench_restart(events: usize, f: &mut Figures) {
    let site = Site::hospital();
    let mut server = site.start();
    // One ticket_issued event per ticket (plus the day_started event).
    issue_load(&server, 64, events, "fill").await;
    let seq = {
        let (mut ws, _) = Ws::hello(&server, Some(DISPLAY_TOKEN), None).await;
        ws.recv().await.unwrap()["seq"].as_u64().unwrap()
    };
    server.kill9();
    let mut h = Histogram::<u64>::new(3).unwrap();
    for _ in 0..3 {
        let t0 = Instant::now();
        let mut s = site.start();
        let api = Api::new(&s);
        loop {
            if api.get("/healthz", None).await.status == 200 {
                break;
            }
        }
        h.record(t0.elapsed().as_micros() as u64).unwrap();
        s.kill9();
    }
    println!(
        "restart: {seq} events in the log; start to ready: median {:.0} ms, max {:.0} ms",
        ms(&h, 0.5),
        h.max() as f64 / 1000.0
    );
    f.insert("restart_events".into(), seq as f64);
    f.insert("restart_ready_ms".into(), ms(&h, 0.5));
}

async fn bench_kiosk(presses: usize, f: &mut Figures) {
    use luot_kiosk::printer::{CaptureDriver, Target, print_page};
    use luot_kiosk::render::{TicketView, render_ticket};
    // Render (and raster encoding) alone.
    let view = TicketView {
        site_name: "Bệnh viện Đa khoa tỉnh (ví dụ)".into(),
        service_name: "Khám Sản - Phụ khoa".into(),
        number: "E015".into(),
        priority: Some("pregnant".into()),
        issued_at: "2026-11-22T07:31:02+07:00".into(),
        ahead: Some(4),
        url: "http://192.168.10.5:8080/t/tk_5Jq2xYz8AbCdEfGhIjKlMn".into(),
        footer: "Vui lòng chờ gọi số".into(),
        reprint: None,
        slot_at: None,
    };
    let mut render = Histogram::<u64>::new(3).unwrap();
    let mut job = Histogram::<u64>::new(3).unwrap();
    let target = Target::Capture(CaptureDriver::new());
    for _ in 0..100 {
        let t0 = Instant::now();
        let page = render_ticket(&view, 576);
        render.record(t0.elapsed().as_micros() as u64).unwrap();
        print_page(&target, &page).unwrap();
        job.record(t0.elapsed().as_micros() as u64).unwrap();
    }
    println!(
        "kiosk: render a ticket p50 {:.1} ms, p99 {:.1} ms; render + ESC/POS raster p50 {:.1} ms, p99 {:.1} ms",
        ms(&render, 0.5),
        ms(&render, 0.99),
        ms(&job, 0.5),
        ms(&job, 0.99)
    );
    f.insert("kiosk_render_p50_ms".into(), ms(&render, 0.5));
    f.insert("kiosk_render_p99_ms".into(), ms(&render, 0.99));
    f.insert("kiosk_render_and_raster_p99_ms".into(), ms(&job, 0.99));

    // Press -> first byte at a network printer, through a real server.
    let site = Site::hospital();
    let server = site.start();
    let (printer, mut child, mut stdin) = simulated_kiosk(&server, &site).await;
    let lines = (0..presses).map(|i| ["kham-noi", "kham-ngoai"][i % 2].to_string());
    let press = to_first_byte(&mut stdin, &printer, lines).await;
    let rss = rss_mb(child.id());
    drop(stdin);
    let _ = child.wait();
    println!(
        "kiosk: press -> first byte at the printer p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms over {presses} presses; kiosk RSS {rss:.1} MB",
        ms(&press, 0.5),
        ms(&press, 0.99),
        press.max() as f64 / 1000.0
    );
    f.insert("kiosk_press_to_print_p50_ms".into(), ms(&press, 0.5));
    f.insert("kiosk_press_to_print_p99_ms".into(), ms(&press, 0.99));
    f.insert("kiosk_rss_mb".into(), (rss * 10.0).round() / 10.0);
}

/// A network printer stand-in and `luot-kiosk --simulate` printing to it
/// for `server`, its standard input open, given a second to connect.
async fn simulated_kiosk(
    server: &Server,
    site: &Site,
) -> (
    luot_tests::fake_printer::FakePrinter,
    std::process::Child,
    std::process::ChildStdin,
) {
    let printer = luot_tests::fake_printer::FakePrinter::start(luot_kiosk::printer::STATUS_OK);
    let mut child = std::process::Command::new(binary("luot-kiosk"))
        .args([
            "--simulate",
            "--server",
            &server.url(""),
            "--token",
            KIOSK_TOKEN,
        ])
        .arg("--printer")
        .arg(format!("tcp:{}", printer.addr))
        .arg("--state-dir")
        .arg(site.dir.path().join("kiosk"))
        .env("RUST_LOG", "warn")
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdin = child.stdin.take().unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    (printer, child, stdin)
}

/// Writes each line to a simulated kiosk's standard input, one at a time,
/// and times it to the first byte of its print job at `printer`.
async fn to_first_byte(
    stdin: &mut std::process::ChildStdin,
    printer: &luot_tests::fake_printer::FakePrinter,
    lines: impl Iterator<Item = String>,
) -> Histogram<u64> {
    use std::io::Write;
    let mut h = Histogram::<u64>::new(3).unwrap();
    for (i, line) in lines.enumerate() {
        let t0 = Instant::now();
        writeln!(stdin, "{line}").unwrap();
        loop {
            if printer.first_bytes.lock().unwrap().len() > i {
                break;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(10),
                "no print for {line}"
            );
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
        let first = printer.first_bytes.lock().unwrap()[i];
        h.record(first.duration_since(t0).as_micros() as u64)
            .unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    h
}

/// Issue 15: a booking's QR code scanned at a kiosk → the first byte of its
/// ticket at a network printer, through a real server (bookings made at
/// 06:50, scanned at 07:20 within their check-in window).
async fn bench_scan(scans: usize, f: &mut Figures) {
    use luot_tests::booking::{INTEGRATION_TOKEN, at, booking_site_toml, days_ahead, offset_to};
    let toml = booking_site_toml()
        .replace("appointment_quota = 40", "appointment_quota = 200")
        .replace("slot_capacity = 3", "slot_capacity = 200");
    let site = Site::new(&toml);
    let day = days_ahead(3);
    let start = |hh, mm| {
        Server::start(
            &site.config(),
            &site.data(),
            &[("LUOT_CLOCK_OFFSET_S", &offset_to(day, hh, mm).to_string())],
        )
    };
    let mut server = start(6, 50);
    let api = Api::new(&server);
    let mut ids = vec![];
    for i in 0..scans.min(200) {
        let body = json!({"service": "kham-noi", "slot_at": at(day, 7, 30), "request_id": format!("b{i}")});
        let a = api
            .post("/api/v1/appointments", Some(INTEGRATION_TOKEN), Some(body))
            .await;
        assert_eq!(a.status, 201, "{}", a.text);
        ids.push(a.body["id"].as_str().unwrap().to_string());
    }
    server.kill9();
    let server = start(7, 20);
    let (printer, mut child, mut stdin) = simulated_kiosk(&server, &site).await;
    let lines = ids.iter().map(|id| format!("scan:http://luot.test/a/{id}"));
    let h = to_first_byte(&mut stdin, &printer, lines).await;
    drop(stdin);
    let _ = child.wait();
    println!(
        "scan: booking QR scanned -> first byte at the printer p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms over {} check-ins",
        ms(&h, 0.5),
        ms(&h, 0.99),
        h.max() as f64 / 1000.0,
        ids.len()
    );
    f.insert("scan_to_print_p50_ms".into(), ms(&h, 0.5));
    f.insert("scan_to_print_p99_ms".into(), ms(&h, 0.99));
}

async fn bench_screens(calls: usize, f: &mut Figures) {
    use luot_tests::browser::Browser;
    let weight = luot_display_weight();
    println!(
        "screens: board page weight without audio {:.1} KB",
        weight as f64 / 1024.0
    );
    f.insert(
        "board_page_weight_kb".into(),
        (weight as f64 / 102.4).round() / 10.0,
    );
    let site = Site::hospital();
    let server = site.start();
    let api = Api::new(&server);
    let staff = api.login("le.thu").await;
    for i in 0..calls {
        api.issue(KIOSK_TOKEN, "kham-noi", &format!("s{i}")).await;
    }
    let b = Browser::start(1920, 1080).await;
    b.goto(&server.url(&format!("/board#token={DISPLAY_TOKEN}")))
        .await;
    b.until(
        "board",
        "return document.querySelectorAll('[data-counter]').length === 4",
        Duration::from_secs(20),
    )
    .await;
    // Note the wall-clock time (ms since the epoch) at which each number appears.
    b.js("window.__seen = {}; new MutationObserver(() => {
            const n = document.querySelector('[data-counter=quay-1] .num');
            if (n && !(n.textContent in window.__seen)) window.__seen[n.textContent] = performance.timeOrigin + performance.now();
          }).observe(document.getElementById('counters'), {subtree: true, childList: true, characterData: true});").await;
    let mut sent = BTreeMap::new();
    for _ in 0..calls {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64()
            * 1000.0;
        let r = api
            .post("/api/v1/counters/quay-1/next", Some(&staff), None)
            .await;
        sent.insert(r.body["number"].as_str().unwrap().to_string(), t);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let seen = b.js("return window.__seen").await;
    let mut h = Histogram::<u64>::new(3).unwrap();
    for (number, t) in &sent {
        if let Some(at) = seen[number].as_f64() {
            h.record(((at - t).max(0.0) * 1000.0) as u64).unwrap();
        }
    }
    b.close().await;
    println!(
        "screens: staff call -> number visible on the board in Chromium: {} of {calls}; p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        h.len(),
        ms(&h, 0.5),
        ms(&h, 0.99),
        h.max() as f64 / 1000.0
    );
    f.insert("board_call_visible_p50_ms".into(), ms(&h, 0.5));
    f.insert("board_call_visible_p99_ms".into(), ms(&h, 0.99));
}

/// Bytes of the board page and the scripts and styles it loads.
fn luot_display_weight() -> usize {
    [
        "/board",
        "/static/luot.js",
        "/static/luot.css",
        "/static/voice.js",
    ]
    .iter()
    .map(|p| display_asset_len(p))
    .sum()
}

fn display_asset_len(path: &str) -> usize {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../display/assets");
    let file = match path {
        "/board" => "board.html",
        other => other.trim_start_matches("/static/"),
    };
    std::fs::metadata(root.join(file))
        .map(|m| m.len() as usize)
        .unwrap_or(0)
}

/// Microseconds since the Unix epoch: comparable between two processes on
/// one machine.
fn now_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// The floor's writing side: accepts `sockets` connections from the reading
/// process (this binary again, `floor --read ADDR`), then writes a 1 KB
/// message carrying its send time to each, from one thread per core.
async fn bench_floor(sockets: usize, rounds: usize, f: &mut Figures) {
    use std::io::Write;
    let _ = rlimit::increase_nofile_limit(sockets as u64 + 256);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let reader = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "floor",
            "--sockets",
            &sockets.to_string(),
            "--rounds",
            &rounds.to_string(),
        ])
        .args(["--read", &addr.to_string()])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let writers: Vec<std::net::TcpStream> = (0..sockets)
        .map(|_| {
            let (s, _) = listener.accept().unwrap();
            s.set_nodelay(true).unwrap();
            s
        })
        .collect();
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let per = sockets.div_ceil(cores);
    let mut chunks: Vec<Vec<std::net::TcpStream>> = vec![];
    let mut it = writers.into_iter();
    for _ in 0..cores {
        chunks.push(it.by_ref().take(per).collect());
    }
    for _ in 0..rounds {
        std::thread::sleep(Duration::from_millis(300));
        let mut msg = format!("{:020}", now_us()).into_bytes();
        msg.resize(1024, b'x');
        std::thread::scope(|s| {
            for chunk in chunks.iter_mut() {
                let msg = &msg;
                s.spawn(move || {
                    for w in chunk.iter_mut() {
                        w.write_all(msg).unwrap();
                    }
                });
            }
        });
    }
    let out = reader.wait_with_output().unwrap();
    let got: Figures = serde_json::from_slice(&out.stdout).expect("the reading process's figures");
    println!(
        "floor: 1 KB to each of {sockets} loopback sockets ({cores} writer threads, a tokio reader process), {rounds} rounds: write -> read p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        got["p50"], got["p99"], got["max"]
    );
    f.insert(format!("floor_{sockets}_p50_ms"), got["p50"]);
    f.insert(format!("floor_{sockets}_p99_ms"), got["p99"]);
}

/// The floor's reading side: one task per socket, like the load tool's screens.
async fn floor_read(addr: &str, sockets: usize, rounds: usize) {
    use tokio::io::AsyncReadExt;
    let _ = rlimit::increase_nofile_limit(sockets as u64 + 256);
    let hist = Arc::new(std::sync::Mutex::new(Histogram::<u64>::new(3).unwrap()));
    let mut tasks = vec![];
    for _ in 0..sockets {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        let hist = hist.clone();
        tasks.push(tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            for _ in 0..rounds {
                let mut got = 0;
                let mut sent = 0;
                while got < 1024 {
                    let n = s.read(&mut buf[got..1024]).await.unwrap();
                    assert!(n > 0, "closed");
                    got += n;
                    if got >= 20 && sent == 0 {
                        sent = std::str::from_utf8(&buf[..20])
                            .unwrap()
                            .parse::<u64>()
                            .unwrap();
                    }
                }
                let took = now_us().saturating_sub(sent);
                hist.lock().unwrap().record(took).unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let h = hist.lock().unwrap().clone();
    let figures: Figures = [
        ("p50".to_string(), ms(&h, 0.5)),
        ("p99".to_string(), ms(&h, 0.99)),
        ("max".to_string(), h.max() as f64 / 1000.0),
    ]
    .into();
    println!("{}", serde_json::to_string(&figures).unwrap());
}

/// A big hospital's configuration in the engine: 40 services (the last 8
/// are tests), 80 rooms, two per service.
fn hospital_site() -> std::sync::Arc<luot_server::engine::Site> {
    use luot_server::config::{Counter, Service};
    let (mut cfg, _) = luot_server::config::demo_site();
    let plain = cfg.services[0].clone();
    cfg.services = (0..40)
        .map(|i| Service {
            id: format!("s{i}"),
            name: format!("Dịch vụ {i}"),
            prefix: format!(
                "{}{}",
                (b'A' + (i / 26) as u8) as char,
                (b'A' + (i % 26) as u8) as char
            ),
            digits: 4,
            ..plain.clone()
        })
        .collect();
    cfg.counters = (0..80)
        .map(|i| Counter {
            id: format!("p{i}"),
            name: format!("Phòng {i}"),
            services: vec![format!("s{}", i / 2)],
            policy: None,
            returning_ratio: None,
        })
        .collect();
    luot_server::engine::Site::from_config(&cfg)
}

/// `next` in the engine alone, with `waiting` steps waiting and `visits`
/// open visits (each sent from its room to a test stop and back).
fn bench_engine(waiting: usize, visits: usize, calls: usize, f: &mut Figures) {
    use luot_server::engine::{Command, State, StopReq};
    let mut st = State::new(hospital_site());
    let t0 = 1_795_000_000_000i64;
    let mut now = t0;
    let mut n = 0;
    let mut issue = |st: &mut State, service: usize, now: i64| {
        n += 1;
        let cmd = Command::Issue {
            scope: "device:k".into(),
            request_id: format!("r{n}"),
            service: format!("s{service}"),
            priority: (n % 10 == 0).then(|| "pregnant".to_string()),
            ticket_id: format!("tk_{n}"),
            identity: None,
            limited: false,
            external_ref: None,
            fresh: luot_server::engine::identity::Fresh([0; 32]),
        };
        st.apply(cmd, now);
    };
    // Open visits: each patient is called in an exam room and sent to a
    // test (services 32..40) with a return.
    for v in 0..visits {
        now += 10;
        let room = v % 64;
        issue(&mut st, room / 2, now);
        let counter = format!("p{room}");
        st.apply(
            Command::Next {
                counter: counter.clone(),
                by: None,
            },
            now,
        );
        let stops = vec![StopReq {
            service: format!("s{}", 32 + v % 8),
            counter: None,
            stage: None,
        }];
        st.apply(
            Command::Send {
                counter,
                by: None,
                stops,
                return_here: true,
                ticket: None,
            },
            now,
        );
    }
    for w in 0..waiting.saturating_sub(visits) {
        now += 10;
        issue(&mut st, w % 40, now);
    }
    let mut h = Histogram::<u64>::new(3).unwrap();
    for i in 0..calls {
        now += 1000;
        let counter = format!("p{}", i % 80);
        let t = Instant::now();
        let a = st.apply(Command::Next { counter, by: None }, now);
        h.record(t.elapsed().as_nanos() as u64).unwrap();
        std::hint::black_box(a);
    }
    let us = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    println!(
        "engine: next with {waiting} waiting and {visits} open visits: p50 {:.1} µs, p99 {:.1} µs, max {:.1} µs ({calls} calls)",
        us(0.5),
        us(0.99),
        h.max() as f64 / 1000.0
    );
    f.insert("engine_next_p50_us".into(), us(0.5));
    f.insert("engine_next_p99_us".into(), us(0.99));
}

/// The test hospital with two webhooks taking every event.
fn webhooks_site(a: &str, b: &str) -> Site {
    let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    Site::new(&format!(
        "{}\n[[webhooks]]\nid = \"a\"\nurl = \"{a}\"\nsecret = \"{secret}\"\n\n[[webhooks]]\nid = \"b\"\nurl = \"{b}\"\nsecret = \"{secret}\"\n",
        test_site_toml(false)
    ))
}

/// Issues at `rate` a second for `seconds` from 16 kiosk websockets; the
/// ticket ids with the moment each answer (its commit) arrived.
async fn paced_issue(server: &Server, rate: usize, seconds: usize) -> Vec<(String, Instant)> {
    let sockets = 16;
    let per = rate * seconds / sockets;
    let gap = Duration::from_secs_f64(sockets as f64 / rate as f64);
    let mut tasks = vec![];
    for i in 0..sockets {
        let (mut ws, _) = Ws::hello(server, Some(KIOSK_TOKEN), None).await;
        let _ = ws.recv().await; // snapshot
        tasks.push(tokio::spawn(async move {
            let mut out = Vec::with_capacity(per);
            let mut tick = tokio::time::interval(gap);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            for n in 0..per {
                tick.tick().await;
                ws.send(json!({"type": "issue", "request_id": format!("p-{i}-{n}"), "service": "kham-noi"}))
                    .await;
                loop {
                    let v = ws.recv().await.expect("answer");
                    if v["type"] == "issued" {
                        out.push((v["ticket"]["id"].as_str().unwrap().to_string(), Instant::now()));
                        break;
                    }
                    assert_ne!(v["type"], "error", "{v}");
                }
            }
            out
        }));
    }
    let mut all = vec![];
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all
}

async fn bench_webhooks(rate: usize, seconds: usize, tickets: usize, f: &mut Figures) {
    use luot_tests::webhook_receiver::Receiver;
    let (ra, rb) = (Receiver::ok().await, Receiver::ok().await);
    let site = webhooks_site(&ra.url("/a"), &rb.url("/b"));
    let server = site.start();
    let answered = paced_issue(&server, rate, seconds).await;
    let n = answered.len();
    for (name, rx) in [("a", &ra), ("b", &rb)] {
        let got = rx
            .wait(Duration::from_secs(120), |g| {
                g.iter()
                    .filter(|d| d.json()["type"] == "ticket_issued")
                    .count()
                    >= n
            })
            .await;
        let arrived: std::collections::HashMap<String, Instant> = got
            .iter()
            .filter_map(|d| {
                let v = d.json();
                Some((v["event"]["ticket"]["id"].as_str()?.to_string(), d.at))
            })
            .collect();
        let mut h = Histogram::<u64>::new(3).unwrap();
        for (id, at) in &answered {
            if let Some(r) = arrived.get(id) {
                h.record(r.saturating_duration_since(*at).as_micros() as u64)
                    .unwrap();
            }
        }
        println!(
            "webhooks: {rate} tickets/s for {seconds} s, webhook {name}: {} of {n} delivered; commit → receiver p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            h.len(),
            ms(&h, 0.5),
            ms(&h, 0.99),
            h.max() as f64 / 1000.0
        );
        f.insert(format!("webhook_{name}_p50_ms"), ms(&h, 0.5));
        f.insert(format!("webhook_{name}_p99_ms"), ms(&h, 0.99));
    }
    drop(server);
    // Throughput with and without.
    let (ra, rb) = (Receiver::ok().await, Receiver::ok().await);
    let with_site = webhooks_site(&ra.url("/a"), &rb.url("/b"));
    let with = with_site.start();
    issue_load(&with, 64, 64 * 20, "warm").await;
    let (with_rate, _) = issue_load(&with, 64, tickets, "run").await;
    drop(with);
    let plain_site = Site::hospital();
    let plain = plain_site.start();
    issue_load(&plain, 64, 64 * 20, "warm").await;
    let (plain_rate, _) = issue_load(&plain, 64, tickets, "run").await;
    println!(
        "webhooks: issue throughput with two webhooks {with_rate:.0} tickets/s, without {plain_rate:.0} tickets/s ({:+.1}%)",
        (with_rate - plain_rate) / plain_rate * 100.0
    );
    f.insert("webhooks_issue_tickets_per_s".into(), with_rate.round());
    f.insert("no_webhooks_issue_tickets_per_s".into(), plain_rate.round());
}

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    let _ = binary("luot-server");
    if !target_dir().ends_with("release") {
        eprintln!("warning: not a release build; run with `cargo run --release`");
    }
    let mut f = Figures::new();
    match cli.what {
        What::Issue {
            kiosks,
            tickets,
            store,
        } => bench_issue(kiosks, tickets, &store, &mut f).await,
        What::Fanout { screens, calls } => bench_fanout(screens, calls, &mut f).await,
        What::Restart { events } => bench_restart(events, &mut f).await,
        What::Book { clients, bookings } => bench_book(clients, bookings, &mut f).await,
        What::Kiosk { presses } => bench_kiosk(presses, &mut f).await,
        What::Scan { scans } => bench_scan(scans, &mut f).await,
        What::Screens { calls } => bench_screens(calls, &mut f).await,
        What::Webhooks {
            rate,
            seconds,
            tickets,
        } => bench_webhooks(rate, seconds, tickets, &mut f).await,
        What::Engine {
            waiting,
            visits,
            calls,
        } => bench_engine(waiting, visits, calls, &mut f),
        What::Floor {
            sockets,
            rounds,
            read: Some(addr),
        } => {
            floor_read(&addr, sockets, rounds).await;
            return;
        }
        What::Floor {
            sockets,
            rounds,
            read: None,
        } => bench_floor(sockets, rounds, &mut f).await,
        What::All => {
            bench_issue(64, 50_000, "sled", &mut f).await;
            bench_fanout(5_000, 40, &mut f).await;
            bench_restart(100_000, &mut f).await;
            bench_kiosk(50, &mut f).await;
            bench_screens(40, &mut f).await;
        }
    }
    println!("\n| figure | value |\n| --- | --- |");
    for (k, v) in &f {
        println!("| {k} | {v} |");
    }
    if let Some(path) = cli.baseline {
        let base: Figures =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap_or_default())
                .unwrap_or_default();
        println!("\ncompared with {}:", path.display());
        for (k, v) in &f {
            if let Some(b) = base.get(k) {
                let d = if *b != 0.0 { (v - b) / b * 100.0 } else { 0.0 };
                println!("  {k}: {v} (baseline {b}, {d:+.1}%)");
            }
        }
    }
    if let Some(out) = cli.out {
        std::fs::write(out, serde_json::to_string_pretty(&f).unwrap()).unwrap();
    }
}
