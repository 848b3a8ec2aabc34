//! The kiosk daemon as a real process (`--simulate`) against a real server:
//! presses become tickets the server knows, printed as ESC/POS raster whose
//! QR code opens the ticket; a dead printer refuses presses; a server killed
//! mid-rush and a connection cut after `issue` never cause a double print;
//! scans and typed codes on standard input (rule 83) are used or refused and
//! never logged; a scanner with a plain `http://` server needs `allow_plain`;
//! a server killed right after a press (rule 107) gives that press its one
//! ticket when it is back within `--issue-deadline-s`, and past it one
//! out-of-service slip and never the ticket; a server that answers
//! `unavailable` (its disk full) gets the same issue again every second
//! until it can store it, and the press prints that one ticket.

#![allow(clippy::unwrap_used)] // tests may panic on a broken server

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use luot_kiosk::render::{TicketView, render_ticket};
use luot_tests::escpos::{self, Page};
use luot_tests::fake_printer::FakePrinter;
use luot_tests::ws_pipe::{self, Verdict};
use luot_tests::*;

struct Kiosk {
    child: Child,
    stdin: Option<ChildStdin>,
    log: PathBuf,
}

impl Kiosk {
    fn start(server_url: &str, printer: &str, state: &Path) -> Kiosk {
        Kiosk::start_logging(server_url, printer, state, "info")
    }

    /// As `start`, with `RUST_LOG` set to `rust_log`.
    fn start_logging(server_url: &str, printer: &str, state: &Path, rust_log: &str) -> Kiosk {
        Kiosk::start_with(server_url, printer, state, rust_log, &[])
    }

    /// As `start_logging`, with more command-line arguments.
    fn start_with(
        server_url: &str,
        printer: &str,
        state: &Path,
        rust_log: &str,
        extra: &[&str],
    ) -> Kiosk {
        let log = state.with_extension("log");
        let child = Command::new(binary("luot-kiosk"))
            .args([
                "--simulate",
                "--server",
                server_url,
                "--token",
                KIOSK_TOKEN,
                "--printer",
                printer,
            ])
            .arg("--state-dir")
            .arg(state)
            .args(extra)
            .env("RUST_LOG", rust_log)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let mut k = Kiosk {
            child,
            stdin: None,
            log,
        };
        k.stdin = k.child.stdin.take();
        k
    }

    fn press(&mut self, service: &str) {
        writeln!(self.stdin.as_mut().unwrap(), "{service}").unwrap();
    }

    /// What the kiosk has logged so far.
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits (up to `limit`) until the log holds `words` `n` times.
    fn wait_for_log(&self, words: &str, n: usize, limit: Duration) {
        let t0 = Instant::now();
        while self.log().matches(words).count() < n {
            assert!(
                t0.elapsed() < limit,
                "no {n} × {words:?} in the kiosk's log: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Any line of standard input (`scan:TEXT`, `code:N`).
    fn line(&mut self, line: &str) {
        self.press(line);
    }

    /// Closes standard input and waits for the kiosk to finish its presses.
    fn finish(mut self) -> (bool, String) {
        drop(self.stdin.take());
        let t0 = Instant::now();
        let ok = loop {
            if let Ok(Some(s)) = self.child.try_wait() {
                break s.success();
            }
            if t0.elapsed() > Duration::from_secs(90) {
                let _ = self.child.kill();
                break false;
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        (ok, std::fs::read_to_string(&self.log).unwrap_or_default())
    }
}

/// (number, id) of every "ticket printed" log line.
fn printed(log: &str) -> Vec<(String, String)> {
    let field = |line: &str, key: &str| {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(key))
            .map(|v| v.trim_matches('"').to_string())
    };
    log.lines()
        .filter(|l| l.contains("ticket printed"))
        .map(|l| (field(l, "number=").unwrap(), field(l, "id=").unwrap()))
        .collect()
}

fn pages(path: &Path) -> Vec<Page> {
    let bytes = std::fs::read(path).unwrap_or_default();
    escpos::read(&bytes).expect("the printer stream parses")
}

fn ticket_id(url: &str) -> String {
    url.strip_prefix("http://luot.test/t/")
        .expect("QR opens the ticket page")
        .to_string()
}

#[tokio::test]
async fn presses_print_tickets_the_server_knows() {
    let site = Site::hospital();
    let server = site.start();
    let api = Api::new(&server);
    let out = site.dir.path().join("printer.bin");
    let mut k = Kiosk::start(
        &server.url(""),
        &format!("file:{}", out.display()),
        &site.dir.path().join("kiosk"),
    );
    for s in ["kham-noi", "kham-noi", "kham-ngoai"] {
        k.press(s);
    }
    let (ok, log) = k.finish();
    assert!(ok, "{log}");
    let logged = printed(&log);
    assert_eq!(logged.len(), 3, "{log}");

    let pages = pages(&out);
    assert_eq!(pages.len(), 3, "three tickets, each ending in a cut");
    let mut ahead = std::collections::HashMap::new();
    for (page, (number, id)) in pages.iter().zip(&logged) {
        assert!(page.cut);
        assert_eq!(page.width, 576);
        let img = page.image();
        let url = escpos::qr(&img).expect("a QR code on the ticket");
        assert_eq!(&ticket_id(&url), id);
        let t = api.get(&format!("/api/v1/tickets/{id}"), None).await;
        assert_eq!(t.status, 200, "the server knows every printed ticket");
        assert_eq!(t.body["number"].as_str(), Some(number.as_str()));
        // The picture is exactly the ticket for this number: the number the
        // patient reads is the server's.
        let service = t.body["service"].as_str().unwrap().to_string();
        let n = ahead.entry(service.clone()).or_insert(0u32);
        let view = TicketView {
            site_name: "Bệnh viện Thử nghiệm".into(),
            service_name: if service == "kham-noi" {
                "Khám Nội"
            } else {
                "Khám Ngoại"
            }
            .into(),
            number: number.clone(),
            priority: None,
            issued_at: t.body["issued_at"].as_str().unwrap().into(),
            ahead: Some(*n),
            url: url.clone(),
            footer: "Vui lòng chờ gọi số".into(),
            reprint: None,
            slot_at: None,
        };
        *n += 1;
        let expected = render_ticket(&view, 576);
        assert_eq!(expected.dimensions(), img.dimensions());
        assert!(
            expected.pixels().zip(img.pixels()).all(|(a, b)| a == b),
            "ticket {number} prints as rendered"
        );
    }
    assert_eq!(
        logged.iter().map(|l| l.0.as_str()).collect::<Vec<_>>(),
        ["A001", "A002", "B001"]
    );
}

#[tokio::test]
async fn a_printer_out_of_paper_refuses_presses_and_tells_the_server() {
    use luot_kiosk::printer::{STATUS_OK, STATUS_PAPER_OUT};
    let site = Site::hospital();
    let server = site.start();
    let api = Api::new(&server);
    let admin = api.login("admin").await;
    let printer = FakePrinter::start(STATUS_PAPER_OUT);
    let mut k = Kiosk::start(
        &server.url(""),
        &format!("tcp:{}", printer.addr),
        &site.dir.path().join("kiosk"),
    );
    k.press("kham-noi");
    k.press("kham-noi");
    // The server learns the printer's state.
    let t0 = Instant::now();
    loop {
        let d = api.get("/api/v1/devices", Some(&admin)).await;
        let kiosk = d.body["devices"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["id"] == "kiosk-sanh-a")
            .unwrap()
            .clone();
        if kiosk["printer"] == "paper_out" {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(15),
            "printer status never reached the server: {kiosk}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Paper goes back in: the next press prints.
    *printer.status.lock().unwrap() = STATUS_OK;
    k.press("kham-ngoai");
    let (ok, log) = k.finish();
    assert!(ok, "{log}");
    assert_eq!(log.matches("press refused").count(), 2, "{log}");
    let tickets = printed(&log);
    assert_eq!(tickets.len(), 1);
    assert_eq!(tickets[0].0, "B001");
    // Nothing was issued for the refused presses, nothing printed for them.
    let s = api.get("/api/v1/site", None).await;
    assert_eq!(s.body["services"][0]["waiting"], 0);
    assert_eq!(s.body["services"][1]["waiting"], 1);
    let jobs = escpos::read(&printer.jobs.lock().unwrap()).unwrap();
    assert_eq!(jobs.len(), 1);
    assert_eq!(
        ticket_id(&escpos::qr(&jobs[0].image()).unwrap()),
        tickets[0].1
    );
}

#[tokio::test]
async fn killing_the_server_mid_rush_never_double_prints() {
    let site = Site::hospital();
    let mut server = site.start();
    let port = server.addr.port().to_string();
    let api_url = server.url("");
    let out = site.dir.path().join("printer.bin");
    let mut k = Kiosk::start(
        &api_url,
        &format!("file:{}", out.display()),
        &site.dir.path().join("kiosk"),
    );
    let presses = 24;
    for i in 0..presses {
        k.press(["kham-noi", "kham-ngoai"][i % 2]);
        std::thread::sleep(Duration::from_millis(60));
        if i == 10 {
            server.kill9();
            std::thread::sleep(Duration::from_millis(700));
            server = Server::start(
                &site.config(),
                &site.data(),
                &[("LUOT_LISTEN", &format!("127.0.0.1:{port}"))],
            );
        }
    }
    let (ok, log) = k.finish();
    assert!(ok, "{log}");
    let api = Api::new(&server);
    let pages = pages(&out);
    assert_eq!(
        pages.len(),
        presses,
        "every press printed a ticket or a slip: {log}"
    );
    let mut ids = HashSet::new();
    let mut numbers = HashSet::new();
    for p in &pages {
        let Some(url) = escpos::qr(&p.image()) else {
            continue;
        }; // an out-of-service slip
        let id = ticket_id(&url);
        assert!(ids.insert(id.clone()), "ticket {id} printed twice");
        let t = api.get(&format!("/api/v1/tickets/{id}"), None).await;
        assert_eq!(t.status, 200, "printed ticket {id} is on the server");
        assert!(numbers.insert(t.body["number"].as_str().unwrap().to_string()));
    }
    assert_eq!(ids.len(), printed(&log).len());
    assert!(
        ids.len() >= presses - 2,
        "nearly every press got its ticket ({} of {presses})",
        ids.len()
    );
}

/// A TCP proxy that lets the first `issue` frame through to the server and
/// then cuts the connection before the answer comes back.
fn cutting_proxy(server: std::net::SocketAddr) -> (std::net::SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let issues_seen = Arc::new(AtomicUsize::new(0));
    let cut_done = Arc::new(AtomicBool::new(false));
    let seen = issues_seen.clone();
    std::thread::spawn(move || {
        for client in listener.incoming() {
            let Ok(client) = client else { break };
            let upstream = TcpStream::connect(server).unwrap();
            let (seen, cut_done) = (seen.clone(), cut_done.clone());
            ws_pipe::pipe(client, upstream, move |text| {
                if !text.contains("\"type\":\"issue\"") {
                    return Verdict::Pass;
                }
                seen.fetch_add(1, Ordering::SeqCst);
                if cut_done.swap(true, Ordering::SeqCst) {
                    Verdict::Pass
                } else {
                    // The server gets the issue; its answer never arrives.
                    Verdict::PassThenCut
                }
            });
        }
    });
    (addr, issues_seen)
}

#[tokio::test]
async fn a_connection_cut_after_issue_gives_one_ticket_and_one_print() {
    let site = Site::hospital();
    let server = site.start();
    let api = Api::new(&server);
    let (proxy, issues_seen) = cutting_proxy(server.addr);
    let out = site.dir.path().join("printer.bin");
    let mut k = Kiosk::start(
        &format!("http://{proxy}"),
        &format!("file:{}", out.display()),
        &site.dir.path().join("kiosk"),
    );
    k.press("kham-noi");
    let (ok, log) = k.finish();
    assert!(ok, "{log}");
    assert_eq!(
        issues_seen.load(Ordering::SeqCst),
        2,
        "the issue was sent again after the cut"
    );
    assert!(log.contains("sending an unanswered issue again"), "{log}");
    let pages = pages(&out);
    assert_eq!(pages.len(), 1, "one print");
    let id = ticket_id(&escpos::qr(&pages[0].image()).unwrap());
    let s = api.get("/api/v1/site", None).await;
    assert_eq!(
        s.body["services"][0]["waiting"], 1,
        "one ticket on the server"
    );
    assert_eq!(
        api.get(&format!("/api/v1/tickets/{id}"), None).await.body["number"],
        "A001"
    );
}

/// Presses while the network between kiosk and server is cut, stalled and
/// slowed by turns: every press prints once (a ticket or an out-of-service
/// slip), no ticket twice, and every printed ticket is on the server with the
/// printed number.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flaky_network_never_prints_twice_and_every_print_is_real() {
    use luot_tests::chaos_proxy::{ChaosProxy, Mode};
    let site = Site::hospital();
    let server = site.start();
    let api = Api::new(&server);
    let proxy = Arc::new(ChaosProxy::start(server.addr));
    let out = site.dir.path().join("printer.bin");
    let mut k = Kiosk::start(
        &format!("http://{}", proxy.addr),
        &format!("file:{}", out.display()),
        &site.dir.path().join("kiosk"),
    );
    std::thread::sleep(Duration::from_millis(800));
    // The network's misbehaviour, step by step (mode, then how long).
    let steps = [
        (Some(Mode::Pass), 1500),
        (None, 1000), // cut
        (Some(Mode::Slow), 2500),
        (Some(Mode::Stall), 3000),
        (Some(Mode::Pass), 1000),
        (Some(Mode::Slow), 700),
        (None, 1500), // cut while slow
        (Some(Mode::Stall), 2000),
        (None, 500), // cut while stalled
        (Some(Mode::Pass), 0),
    ];
    let chaos = {
        let proxy = proxy.clone();
        std::thread::spawn(move || {
            for (mode, ms) in steps {
                match mode {
                    Some(m) => proxy.set(m),
                    None => proxy.cut(),
                }
                std::thread::sleep(Duration::from_millis(ms));
            }
            proxy.set(Mode::Pass);
        })
    };
    let presses = 40;
    for i in 0..presses {
        k.press(["kham-noi", "kham-ngoai"][i % 2]);
        std::thread::sleep(Duration::from_millis(320));
    }
    chaos.join().unwrap();
    let (ok, log) = k.finish();
    assert!(ok, "{log}");
    assert!(proxy.cuts.load(Ordering::SeqCst) >= 3);
    assert!(
        proxy.accepted.load(Ordering::SeqCst) >= 3,
        "the kiosk reconnected after the cuts"
    );
    let pages = pages(&out);
    assert_eq!(
        pages.len(),
        presses,
        "every press printed once, a ticket or a slip: {log}"
    );
    let printed_numbers: HashMap<String, String> =
        printed(&log).into_iter().map(|(n, id)| (id, n)).collect();
    let mut ids = HashSet::new();
    for p in &pages {
        let Some(url) = escpos::qr(&p.image()) else {
            continue; // an out-of-service slip
        };
        let id = ticket_id(&url);
        assert!(ids.insert(id.clone()), "ticket {id} printed twice");
        let t = api.get(&format!("/api/v1/tickets/{id}"), None).await;
        assert_eq!(t.status, 200, "printed ticket {id} is on the server");
        assert_eq!(
            t.body["number"].as_str(),
            printed_numbers.get(&id).map(String::as_str),
            "the printed number is the server's"
        );
    }
    eprintln!(
        "{} tickets and {} slips for {presses} presses; {} connections, {} cuts",
        ids.len(),
        presses - ids.len(),
        proxy.accepted.load(Ordering::SeqCst),
        proxy.cuts.load(Ordering::SeqCst)
    );
    assert!(
        ids.len() >= presses / 2,
        "most presses got a ticket despite the faults ({} of {presses})",
        ids.len()
    );
}

#[test]
fn render_writes_a_png_people_can_check() {
    let dir = tempfile::tempdir().unwrap();
    let png = dir.path().join("ticket.png");
    let out = Command::new(binary("luot-kiosk"))
        .args(["render", "--png"])
        .arg(&png)
        .args(["--number", "C123", "--paper-mm", "58"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let img = image::open(&png).unwrap().to_luma8();
    assert_eq!(img.width(), 384);
    assert!(escpos::qr(&img).unwrap().contains("/t/"));
}

#[test]
fn a_bad_kiosk_config_names_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("kiosk.toml");
    std::fs::write(&cfg, "[server]\nurl = \"http://x:8080\"\ntoken = \"t\"\n[printer]\ntarget = \"lpt1\"\n[[buttons]]\npin = 17\nservice = \"a\"\n").unwrap();
    let out = Command::new(binary("luot-kiosk"))
        .arg("--config")
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("printer.target") && err.contains("lpt1"),
        "{err}"
    );
}

#[tokio::test]
async fn sigterm_stops_the_kiosk_cleanly() {
    let site = Site::hospital();
    let server = site.start();
    let out = site.dir.path().join("printer.bin");
    let mut k = Kiosk::start(
        &server.url(""),
        &format!("file:{}", out.display()),
        &site.dir.path().join("kiosk"),
    );
    let t0 = Instant::now();
    while !std::fs::read_to_string(&k.log)
        .unwrap_or_default()
        .contains("connected to luot-server")
    {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "kiosk never connected"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    Command::new("kill")
        .args(["-TERM", &k.child.id().to_string()])
        .status()
        .unwrap();
    let t0 = Instant::now();
    let status = loop {
        if let Some(s) = k.child.try_wait().unwrap() {
            break s;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "kiosk did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success());
    assert!(
        std::fs::read_to_string(&k.log)
            .unwrap()
            .contains("luot-kiosk stopped")
    );
}

/// Scans and typed codes on standard input (rule 83): a CCCD goes with the
/// next press, which prints as always; unreadable scans and a mistyped code
/// are refused by kind; and nothing of the CCCD reaches the log, even at
/// `trace`.
#[tokio::test]
async fn scans_on_stdin_are_used_or_refused_and_never_logged() {
    let site = Site::hospital();
    let server = site.start();
    let api = Api::new(&server);
    let out = site.dir.path().join("printer.bin");
    let mut k = Kiosk::start_logging(
        &server.url(""),
        &format!("file:{}", out.display()),
        &site.dir.path().join("kiosk"),
        "trace",
    );
    k.line("scan:001099012345|123456789|Nguyễn Văn An|01031950|Nam|Số 1 Hàng Bài, Hà Nội|15082021");
    k.press("kham-noi");
    k.line("scan:WIFI:S:khach;T:WPA;P:matkhau;;");
    k.line("scan:001099012345|123456789|Nguy");
    k.line("code:12345678");
    let (ok, log) = k.finish();
    assert!(ok, "{log}");
    assert!(log.contains("CCCD scanned"), "{log}");
    assert_eq!(log.matches("scan refused").count(), 2, "{log}");
    assert!(log.contains("typed booking code refused"), "{log}");
    let tickets = printed(&log);
    assert_eq!(tickets.len(), 1, "the press printed its ticket: {log}");
    let pages = pages(&out);
    assert_eq!(pages.len(), 1, "scans and a bad code print nothing");
    let id = ticket_id(&escpos::qr(&pages[0].image()).unwrap());
    assert_eq!(id, tickets[0].1);
    let t = api.get(&format!("/api/v1/tickets/{id}"), None).await;
    assert_eq!(t.status, 200);
    for secret in [
        "001099012345",
        "1950-03-01",
        "01031950",
        "Nguyễn Văn An",
        "matkhau",
    ] {
        assert!(!log.contains(secret), "the log holds {secret}");
    }
}

/// With a scanner and a plain http:// server the kiosk does not start,
/// and says why in Vietnamese first.
#[test]
fn a_scanner_with_a_plain_server_needs_allow_plain() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("kiosk.toml");
    std::fs::write(
        &cfg,
        "[server]\nurl = \"http://127.0.0.1:9\"\ntoken = \"t\"\n[printer]\ntarget = \"file:/dev/null\"\n[scanner]\ndevice = \"/dev/input/event0\"\n",
    )
    .unwrap();
    let out = Command::new(binary("luot-kiosk"))
        .arg("--config")
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("scanner.allow_plain") && err.contains("Máy quét CCCD"),
        "{err}"
    );
}

/// §11 at a real kiosk against the real server: a booking's QR code checks
/// it in and prints `Hẹn`; a booking made with a CCCD waits for the card
/// (`identity_required`, a slip), then checks in; a scanned card gives an
/// 80-year-old the age class, printed on the ticket; the person's fifth
/// holding of the day is refused with a slip (rule 82, limit 4 here).
#[tokio::test]
async fn booked_and_scanned_patients_at_a_real_kiosk() {
    use luot_kiosk::render::{RefusalView, render_refusal};
    use luot_tests::booking::{INTEGRATION_TOKEN, at, booking_site_toml, days_ahead, offset_to};
    let site = Site::new(&booking_site_toml());
    let day = days_ahead(3);
    // Booked at 06:50, before the session begins; the kiosk works at 07:20.
    let start = |hh, mm| {
        Server::start(
            &site.config(),
            &site.data(),
            &[("LUOT_CLOCK_OFFSET_S", &offset_to(day, hh, mm).to_string())],
        )
    };
    let mut server = start(6, 50);
    let api = Api::new(&server);
    let cccd = "001099012345|123456789|Nguyễn Văn An|01031950|Nam|Số 1 Hàng Bài, Hà Nội|15082021";
    let me = serde_json::json!({"id_number": "001099012345", "birth_date": "1950-03-01"});
    let mut booked = vec![];
    for (rid, identity) in [("b1", None), ("b2", Some(me.clone()))] {
        let mut body = serde_json::json!({
            "service": "kham-noi", "slot_at": at(day, 7, 30), "request_id": rid
        });
        if let Some(i) = identity {
            body["identity"] = i;
        }
        let a = api
            .post("/api/v1/appointments", Some(INTEGRATION_TOKEN), Some(body))
            .await;
        assert_eq!(a.status, 201, "{}", a.text);
        booked.push(a.body["id"].as_str().unwrap().to_string());
    }
    server.kill9();
    let server = start(7, 20);
    let api = Api::new(&server);
    let out = site.dir.path().join("printer.bin");
    let mut k = Kiosk::start(
        &server.url(""),
        &format!("file:{}", out.display()),
        &site.dir.path().join("kiosk"),
    );
    k.line(&format!("scan:http://luot.test/a/{}", booked[0]));
    k.line(&format!("scan:http://luot.test/a/{}", booked[1]));
    k.line(&format!("scan:{cccd}"));
    for _ in 0..4 {
        k.line(&format!("scan:{cccd}"));
        k.press("kham-noi");
    }
    let (ok, log) = k.finish();
    assert!(ok, "{log}");
    assert_eq!(log.matches("refused identity_required").count(), 1, "{log}");
    assert_eq!(log.matches("refused person_limit").count(), 1, "{log}");
    let tickets = printed(&log);
    assert_eq!(tickets.len(), 5, "two check-ins and three presses: {log}");
    let pages = pages(&out);
    assert_eq!(pages.len(), 7, "five tickets and two slips");
    let mut slips = 0;
    for (i, page) in pages.iter().enumerate() {
        let img = page.image();
        let Some(url) = escpos::qr(&img) else {
            slips += 1;
            let headline = if slips == 1 {
                "CẦN QUÉT CCCD"
            } else {
                "ĐÃ ĐỦ SỐ LƯỢT HÔM NAY"
            };
            let expected = render_refusal(
                &RefusalView {
                    site_name: "Bệnh viện Thử nghiệm".into(),
                    service_name: (slips == 2).then(|| "Khám Nội".into()),
                    headline: headline.into(),
                    comeback: None,
                },
                576,
            );
            assert!(expected == img, "page {i} is the slip {headline}");
            continue;
        };
        let t = api
            .get(&format!("/api/v1/tickets/{}", ticket_id(&url)), None)
            .await;
        let t = &t.body;
        let checked_in = t["appointment"].as_str();
        match checked_in {
            Some(a) => assert!(booked.contains(&a.to_string()), "{t}"),
            None => assert_eq!(t["priority"], "age_75_plus", "derived from the card: {t}"),
        }
        if checked_in == Some(booked[0].as_str()) {
            assert_eq!(t["priority"], serde_json::Value::Null);
        }
        // The page is the ticket as rendered with its class and booking
        // time; the count ahead depends on rule 18's ratio, so any is taken.
        let matches = (0..8).any(|ahead| {
            let view = TicketView {
                site_name: "Bệnh viện Thử nghiệm".into(),
                service_name: "Khám Nội".into(),
                number: t["number"].as_str().unwrap().into(),
                priority: t["priority"].as_str().map(String::from),
                issued_at: t["issued_at"].as_str().unwrap().into(),
                ahead: Some(ahead),
                url: url.clone(),
                footer: "Vui lòng chờ gọi số".into(),
                reprint: None,
                slot_at: checked_in.map(|_| at(day, 7, 30)),
            };
            render_ticket(&view, 576) == img
        });
        assert!(matches, "page {i} prints ticket {t} as rendered");
    }
    assert_eq!(slips, 2);
}

// ------------------------------------------------------------- rule 107

/// A proxy to `server` that tells when the first `issue` frame has gone
/// through (and then cuts that connection, so its answer never arrives: the
/// outcome is unknown to the kiosk). While the server is down it refuses
/// connections as the server would; once it is back, it pipes again.
fn telling_proxy(
    server: std::net::SocketAddr,
) -> (std::net::SocketAddr, std::sync::mpsc::Receiver<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let told = Arc::new(AtomicBool::new(false));
    std::thread::spawn(move || {
        for client in listener.incoming() {
            let Ok(client) = client else { break };
            let Ok(upstream) = TcpStream::connect(server) else {
                continue; // the server is down: the kiosk's dial fails
            };
            let (tx, told) = (tx.clone(), told.clone());
            ws_pipe::pipe(client, upstream, move |text| {
                if !text.contains("\"type\":\"issue\"") || told.swap(true, Ordering::SeqCst) {
                    return Verdict::Pass;
                }
                let _ = tx.send(());
                Verdict::PassThenCut
            });
        }
    });
    (addr, rx)
}

#[tokio::test]
async fn a_server_killed_after_the_press_and_back_within_the_deadline_prints_its_one_ticket() {
    let site = Site::hospital();
    let mut server = site.start();
    let port = server.addr.port().to_string();
    let (proxy, issue_sent) = telling_proxy(server.addr);
    let out = site.dir.path().join("printer.bin");
    let mut k = Kiosk::start_with(
        &format!("http://{proxy}"),
        &format!("file:{}", out.display()),
        &site.dir.path().join("kiosk"),
        "info",
        &["--issue-deadline-s", "20"],
    );
    k.press("kham-noi");
    issue_sent
        .recv_timeout(Duration::from_secs(20))
        .expect("the kiosk sent its issue");
    // kill -9 right after the issue reached the server: stored or not, the
    // kiosk does not know.
    server.kill9();
    std::thread::sleep(Duration::from_secs(1));
    let server = Server::start(
        &site.config(),
        &site.data(),
        &[("LUOT_LISTEN", &format!("127.0.0.1:{port}"))],
    );
    let (ok, log) = k.finish();
    assert!(ok, "{log}");
    assert!(log.contains("sending an unanswered issue again"), "{log}");
    let pages = pages(&out);
    assert_eq!(pages.len(), 1, "one page for the one press: {log}");
    let url = escpos::qr(&pages[0].image()).expect("a ticket, not a slip");
    let id = ticket_id(&url);
    let logged = printed(&log);
    assert_eq!(logged.len(), 1, "{log}");
    assert_eq!(logged[0].1, id);
    let api = Api::new(&server);
    let t = api.get(&format!("/api/v1/tickets/{id}"), None).await;
    assert_eq!(t.status, 200, "the printed ticket is the server's");
    assert_eq!(
        t.body["number"].as_str(),
        Some(logged[0].0.as_str()),
        "the number the server stored"
    );
    let s = api.get("/api/v1/site", None).await;
    assert_eq!(
        s.body["services"][0]["waiting"], 1,
        "one ticket on the server for the one press"
    );
}

#[tokio::test]
async fn a_server_down_past_issue_deadline_s_gives_one_slip_and_never_the_ticket() {
    use luot_kiosk::render::render_out_of_service;
    let site = Site::hospital();
    let mut server = site.start();
    let port = server.addr.port().to_string();
    let (proxy, issue_sent) = telling_proxy(server.addr);
    let out = site.dir.path().join("printer.bin");
    let mut k = Kiosk::start_with(
        &format!("http://{proxy}"),
        &format!("file:{}", out.display()),
        &site.dir.path().join("kiosk"),
        "info",
        &["--issue-deadline-s", "3"],
    );
    k.wait_for_log("connected to luot-server", 1, Duration::from_secs(20));
    let pressed = Instant::now();
    k.press("kham-noi");
    issue_sent
        .recv_timeout(Duration::from_secs(20))
        .expect("the kiosk sent its issue");
    server.kill9();
    k.wait_for_log(
        "printing the out-of-service slip",
        1,
        Duration::from_secs(10),
    );
    let gave_up = pressed.elapsed();
    assert!(
        gave_up >= Duration::from_millis(2900) && gave_up < Duration::from_secs(8),
        "given up --issue-deadline-s 3 after the press, not 8: {gave_up:?}"
    );
    std::thread::sleep(Duration::from_millis(500));
    let slip = pages(&out);
    assert_eq!(slip.len(), 1, "one slip: {}", k.log());
    let img = slip[0].image();
    assert!(slip[0].cut);
    assert_eq!(escpos::qr(&img), None, "no QR code on the slip");
    // Exactly the site name, the words and the time (this minute or the
    // one before, in the site's offset).
    let now = chrono::Utc::now().with_timezone(&chrono::FixedOffset::east_opt(7 * 3600).unwrap());
    let is_the_slip = [now, now - chrono::Duration::seconds(60)]
        .iter()
        .any(|at| render_out_of_service("Bệnh viện Thử nghiệm", at, 576) == img);
    assert!(is_the_slip, "the page is the out-of-service slip");

    // The server comes back (with the ticket, if it was stored): the kiosk
    // reconnects and prints nothing more for that press.
    let server = Server::start(
        &site.config(),
        &site.data(),
        &[("LUOT_LISTEN", &format!("127.0.0.1:{port}"))],
    );
    k.wait_for_log("connected to luot-server", 2, Duration::from_secs(20));
    std::thread::sleep(Duration::from_secs(2));
    let (ok, log) = k.finish();
    assert!(ok, "{log}");
    assert_eq!(pages(&out).len(), 1, "nothing more printed: {log}");
    assert!(
        printed(&log).is_empty(),
        "never a ticket for that press: {log}"
    );
    let s = Api::new(&server).get("/api/v1/site", None).await;
    let waiting = s.body["services"][0]["waiting"].as_u64().unwrap();
    assert!(waiting <= 1, "stored once at most: {waiting}");
}

struct Mount(PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// Fills the file system of `dir` with `dir/ballast` until a write fails.
fn fill(dir: &Path) -> PathBuf {
    let ballast = dir.join("ballast");
    let mut f = std::fs::File::create(&ballast).unwrap();
    let chunk = vec![0u8; 4096];
    while f.write_all(&chunk).and_then(|()| f.sync_all()).is_ok() {}
    ballast
}

/// A server that answers `unavailable` (rule 107's answer of a standby; here
/// the server's disk is full, the cheapest real way to make it refuse
/// writes): the kiosk sends the same issue again after 1 s, and again, until
/// space returns; the press prints the one ticket the server stored. Needs
/// root to mount a small tmpfs; without it the test says so and checks
/// nothing (the session's unit tests cover the path).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_answers_unavailable_gets_the_issue_again_until_it_stores_it() {
    let site = Site::hospital();
    let data = site.data();
    std::fs::create_dir_all(&data).unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=4m", "tmpfs"])
        .arg(&data)
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !mounted {
        eprintln!("SKIPPED: cannot mount a tmpfs here (needs root)");
        return;
    }
    let _mount = Mount(data.clone());
    let server = site.start();
    let api = Api::new(&server);
    let out = site.dir.path().join("printer.bin");
    let mut k = Kiosk::start_with(
        &server.url(""),
        &format!("file:{}", out.display()),
        &site.dir.path().join("kiosk"),
        "info",
        &["--issue-deadline-s", "20"],
    );
    k.wait_for_log("connected to luot-server", 1, Duration::from_secs(20));
    // The disk fills up; the server refuses (the few bytes left may take a
    // ticket or two first, on another service).
    let ballast = fill(&data);
    let mut refused = false;
    for i in 0..200 {
        let r = api
            .issue(KIOSK_TOKEN, "kham-ngoai", &format!("fill-{i}"))
            .await;
        if r.status == 503 {
            assert_eq!(r.code(), "unavailable");
            refused = true;
            break;
        }
    }
    assert!(refused, "a full disk refuses");
    k.press("kham-noi");
    let said = "luot-server answered unavailable; sending the request again in 1 s";
    k.wait_for_log(said, 2, Duration::from_secs(10));
    let again = "sending an unanswered issue again";
    assert!(k.log().contains(again), "{}", k.log());
    assert!(pages(&out).is_empty(), "nothing printed while it waits");
    // Space returns: the next resend is stored and answered.
    std::fs::remove_file(&ballast).unwrap();
    let (ok, log) = k.finish();
    assert!(ok, "{log}");
    let pages = pages(&out);
    assert_eq!(pages.len(), 1, "one ticket for the one press: {log}");
    let id = ticket_id(&escpos::qr(&pages[0].image()).expect("a ticket"));
    let logged = printed(&log);
    assert_eq!(logged.len(), 1, "{log}");
    let t = api.get(&format!("/api/v1/tickets/{id}"), None).await;
    assert_eq!(t.status, 200);
    assert_eq!(t.body["number"].as_str(), Some(logged[0].0.as_str()));
    assert_eq!(
        t.body["number"], "A001",
        "stored once, as the first of its service"
    );
    let s = api.get("/api/v1/site", None).await;
    assert_eq!(
        s.body["services"][0]["waiting"], 1,
        "one ticket for kham-noi"
    );
}
