//! Printing a ticket again at a kiosk or desk printer (rules 66, 67 and 88)
//! with the real server and the real kiosk in `--simulate` printing to a
//! file: staff reprint a ticket and the paper is the server's ticket as it
//! is now with "In lại"; every refusal in rule 88's order; a job whose
//! answer was lost comes again after a reconnect or a restart and prints
//! once; a kiosk out of paper is unavailable.

#![allow(clippy::unwrap_used)] // tests may panic on a broken server

use std::io::Write;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, FixedOffset, Timelike, Utc};
use luot_kiosk::render::{Reprint, TicketView, render_ticket};
use luot_tests::escpos::{self, Page};
use luot_tests::fake_printer::FakePrinter;
use luot_tests::ws_pipe::{self, Verdict};
use luot_tests::*;
use serde_json::{Value, json};

const DESK_TOKEN: &str = "test-desk-printer-token-dddddddddd";

/// The test hospital with a desk printer at reception (a kiosk device
/// with no services, rule 66).
fn site() -> Site {
    Site::new(&format!(
        "{}\n[[devices]]\nid = \"ban-tiep-don\"\nrole = \"kiosk\"\ntoken_sha256 = \"{}\"\nservices = []\n",
        test_site_toml(false),
        sha(DESK_TOKEN)
    ))
}

/// `luot-kiosk --simulate` with standard input left open, so it stays
/// connected and takes print jobs until `finish`.
struct Kiosk {
    child: Child,
    stdin: Option<ChildStdin>,
    log: PathBuf,
}

impl Kiosk {
    fn start(server_url: &str, token: &str, printer: &str, state: &Path) -> Kiosk {
        let log = state.with_extension(format!("log.{}", rand::random::<u32>()));
        let mut child = Command::new(binary("luot-kiosk"))
            .args([
                "--simulate",
                "--server",
                server_url,
                "--token",
                token,
                "--printer",
                printer,
            ])
            .arg("--state-dir")
            .arg(state)
            .env("RUST_LOG", "info")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take();
        Kiosk { child, stdin, log }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// One button press (a line of standard input).
    fn press(&mut self, service: &str) {
        let stdin = self.stdin.as_mut().unwrap();
        writeln!(stdin, "{service}").unwrap();
        stdin.flush().unwrap();
    }

    /// Waits until the log holds `what`.
    fn wait_for(&self, what: &str) -> String {
        let t0 = Instant::now();
        loop {
            let log = self.log();
            if log.contains(what) {
                return log;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(30),
                "the kiosk never logged {what:?}:\n{log}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Closes standard input; the kiosk exits once every press and print
    /// job is answered (rule 32).
    fn finish(mut self) -> (bool, String) {
        drop(self.stdin.take());
        let t0 = Instant::now();
        let ok = loop {
            if let Ok(Some(s)) = self.child.try_wait() {
                break s.success();
            }
            if t0.elapsed() > Duration::from_secs(30) {
                let _ = self.child.kill();
                break false;
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        (ok, self.log())
    }

    fn kill9(mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.log()
    }
}

/// The `number=` of the kiosk's `printed print_id=…` line for `print_id`.
fn printed_number(log: &str, print_id: &str) -> Vec<String> {
    log.lines()
        .filter(|l| l.contains(&format!("printed print_id={print_id} ")))
        .filter_map(|l| {
            l.split_whitespace()
                .find_map(|w| w.strip_prefix("number="))
                .map(String::from)
        })
        .collect()
}

fn pages(path: &Path) -> Vec<Page> {
    let bytes = std::fs::read(path).unwrap_or_default();
    escpos::read(&bytes).expect("the printer stream parses")
}

/// Polls `/devices` until `kiosk` is connected with `printer`.
async fn wait_device(api: &Api, admin: &str, kiosk: &str, printer: &str) {
    let t0 = Instant::now();
    loop {
        let d = api.get("/api/v1/devices", Some(admin)).await;
        let dev = d.body["devices"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["id"] == kiosk)
            .unwrap()
            .clone();
        if dev["connected"] == true && dev["printer"] == printer {
            return;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "{kiosk} never reported {printer}: {dev}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn print(api: &Api, token: &str, ticket: &str, kiosk: &str, request_id: &str) -> Answer {
    api.post(
        &format!("/api/v1/tickets/{ticket}/print"),
        Some(token),
        Some(json!({"kiosk": kiosk, "request_id": request_id})),
    )
    .await
}

/// Every minute from `from` to `to` in the site's offset, as RFC 3339: the
/// times a reprint made in between may show.
fn minutes(from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<String> {
    let tz = FixedOffset::east_opt(7 * 3600).unwrap();
    let mut t = from
        .with_timezone(&tz)
        .with_second(0)
        .and_then(|t| t.with_nanosecond(0))
        .unwrap();
    let mut out = vec![];
    while t <= to.with_timezone(&tz) {
        out.push(t.to_rfc3339());
        t += chrono::Duration::minutes(1);
    }
    out
}

/// Asserts the page is exactly `view` as reprinted at one of `times`.
fn assert_reprint(page: &Page, mut view: TicketView, places: &[&str], times: &[String]) {
    assert!(page.cut, "the reprint ends with a cut");
    let img = page.image();
    let plain = render_ticket(&view, 576);
    assert_ne!(plain, img, "not the plain ticket: the reprint says so");
    let matches = times.iter().any(|at| {
        view.reprint = Some(Reprint {
            at: at.clone(),
            places: places.iter().map(|p| p.to_string()).collect(),
        });
        let expected = render_ticket(&view, 576);
        expected.dimensions() == img.dimensions()
            && expected.pixels().zip(img.pixels()).all(|(a, b)| a == b)
    });
    assert!(
        matches,
        "the printed page is the ticket with \"In lại\" and the time ({times:?})"
    );
}

/// (number, ticket id) of every ticket a press printed, from the kiosk's log.
fn pressed(log: &str) -> Vec<(String, String)> {
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

#[tokio::test]
async fn staff_reprint_a_kiosk_ticket_at_the_kiosk_named_and_it_is_the_same_ticket_marked_in_lai() {
    let site = site();
    let server = site.start();
    let api = Api::new(&server);
    let admin = api.login("admin").await;
    let staff = api.login("le.thu").await;
    let out = site.dir.path().join("printer.bin");
    let mut k = Kiosk::start(
        &server.url(""),
        KIOSK_TOKEN,
        &format!("file:{}", out.display()),
        &site.dir.path().join("kiosk"),
    );
    // A desk printer is connected too: a job names one printer only.
    let desk_out = site.dir.path().join("desk.bin");
    let desk = Kiosk::start(
        &server.url(""),
        DESK_TOKEN,
        &format!("file:{}", desk_out.display()),
        &site.dir.path().join("desk"),
    );
    // The kiosk reports its printer after its welcome (§5 `device_status`).
    wait_device(&api, &admin, "kiosk-sanh-a", "ok").await;
    wait_device(&api, &admin, "ban-tiep-don", "ok").await;
    // Three patients press Khám Nội; the second loses the paper.
    for _ in 0..3 {
        k.press("kham-noi");
    }
    let t0 = Instant::now();
    let originals = loop {
        let p = pressed(&k.log());
        if p.len() == 3 {
            break p;
        }
        assert!(t0.elapsed() < Duration::from_secs(30), "{}", k.log());
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let (number, id) = originals[1].clone();
    assert_eq!(number, "A002");

    let before = Utc::now();
    let a = print(&api, &staff, &id, "kiosk-sanh-a", "in-lai-1").await;
    assert_eq!(a.status, 202, "{}", a.text);
    let print_id = a.body["print_id"].as_str().unwrap().to_string();
    let log = k.wait_for(&format!("printed print_id={print_id} "));
    let after = Utc::now();
    assert_eq!(printed_number(&log, &print_id), ["A002"]);
    // A replay of the request: the same job, nothing new.
    let again = print(&api, &staff, &id, "kiosk-sanh-a", "in-lai-1").await;
    assert_eq!(again.status, 202);
    assert_eq!(again.body["print_id"].as_str(), Some(print_id.as_str()));

    let (ok, log) = k.finish();
    assert!(ok, "the kiosk exits once its jobs are answered: {log}");
    assert_eq!(printed_number(&log, &print_id).len(), 1, "{log}");
    let (ok, desk_log) = desk.finish();
    assert!(ok, "{desk_log}");
    assert!(
        pages(&desk_out).is_empty(),
        "the desk printer printed nothing: the job named the kiosk"
    );
    let pages = pages(&out);
    assert_eq!(
        pages.len(),
        4,
        "three tickets and one reprint, however many requests"
    );
    let (original, reprint) = (&pages[1], &pages[3]);
    // The same QR link as the ticket the patient lost.
    let url = escpos::qr(&original.image()).expect("a QR code");
    assert_eq!(url, format!("http://luot.test/t/{id}"));
    assert_eq!(escpos::qr(&reprint.image()).as_ref(), Some(&url));
    // A001 still waits ahead, as when A002 was issued: the reprint is the
    // original ticket, line for line, with "In lại" and the time added.
    let t = api.get(&format!("/api/v1/tickets/{id}"), None).await.body;
    assert_eq!(t["number"], "A002");
    assert_eq!(t["position"], 2);
    let view = TicketView {
        site_name: "Bệnh viện Thử nghiệm".into(),
        service_name: "Khám Nội".into(),
        number: "A002".into(),
        priority: None,
        issued_at: t["issued_at"].as_str().unwrap().into(),
        ahead: Some(1),
        url,
        footer: "Vui lòng chờ gọi số".into(),
        reprint: None,
        slot_at: None,
    };
    let plain = render_ticket(&view, 576);
    assert!(
        plain.dimensions() == original.image().dimensions()
            && plain
                .pixels()
                .zip(original.image().pixels())
                .all(|(a, b)| a == b),
        "the kiosk's original is the plain ticket"
    );
    assert_reprint(reprint, view, &[], &minutes(before, after));
    assert!(
        server.stderr().contains("print job printed"),
        "the kiosk's answer reached the server"
    );
}

#[tokio::test]
async fn a_desk_printer_prints_a_visit_with_where_to_go_and_issues_nothing() {
    let site = site();
    let server = site.start();
    let api = Api::new(&server);
    let admin = api.login("admin").await;
    let staff = api.login("le.thu").await;
    // A desk printer has no buttons: it cannot issue.
    let a = api.issue(DESK_TOKEN, "kham-noi", "desk-1").await;
    assert_eq!(a.status, 403, "{}", a.text);
    let out = site.dir.path().join("desk.bin");
    let k = Kiosk::start(
        &server.url(""),
        DESK_TOKEN,
        &format!("file:{}", out.display()),
        &site.dir.path().join("desk"),
    );
    wait_device(&api, &admin, "ban-tiep-don", "ok").await;
    // A001 is examined at Quầy 1 and sent to two tests at once.
    let t = api.issue(&staff, "kham-noi", "r1").await.body;
    let id = t["id"].as_str().unwrap();
    assert_eq!(
        api.post("/api/v1/counters/quay-1/next", Some(&staff), None)
            .await
            .status,
        200
    );
    let sent = api
        .post(
            "/api/v1/counters/quay-1/send",
            Some(&staff),
            Some(json!({"stops": [{"service": "xet-nghiem"}, {"service": "kham-ngoai"}]})),
        )
        .await;
    assert_eq!(sent.status, 200, "{}", sent.text);
    let places: Vec<&str> = sent.body["visit"]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["status"] == "waiting")
        .map(|s| s["place"].as_str().unwrap())
        .collect();
    // Rule 57: the only counter of xet-nghiem, the name of kham-ngoai.
    assert_eq!(places, ["Quầy 4", "Khám Ngoại"]);

    let before = Utc::now();
    let a = print(&api, &staff, id, "ban-tiep-don", "desk-print-1").await;
    assert_eq!(a.status, 202, "{}", a.text);
    let print_id = a.body["print_id"].as_str().unwrap().to_string();
    k.wait_for(&format!("printed print_id={print_id} "));
    let after = Utc::now();
    let (ok, log) = k.finish();
    assert!(ok, "{log}");
    let pages = pages(&out);
    assert_eq!(pages.len(), 1);
    let t = api.get(&format!("/api/v1/tickets/{id}"), None).await.body;
    assert_eq!(t["service"], "xet-nghiem");
    assert_eq!(t["status"], "waiting");
    let view = TicketView {
        site_name: "Bệnh viện Thử nghiệm".into(),
        // The desk printer has no buttons: the name comes with the job.
        service_name: "Xét nghiệm".into(),
        number: "A001".into(),
        priority: None,
        issued_at: t["issued_at"].as_str().unwrap().into(),
        ahead: Some(t["position"].as_u64().unwrap() as u32 - 1),
        url: format!("http://luot.test/t/{id}"),
        footer: "Vui lòng chờ gọi số".into(),
        reprint: None,
        slot_at: None,
    };
    assert_reprint(&pages[0], view, &places, &minutes(before, after));
}

/// A kiosk spoken for by a plain websocket: connected, with the printer
/// status it reports.
async fn fake_kiosk(server: &Server, printer: &str) -> Ws {
    let (mut ws, welcome) = Ws::hello(server, Some(KIOSK_TOKEN), None).await;
    assert_eq!(welcome["type"], "welcome");
    ws.send(json!({"type": "device_status", "printer": printer}))
        .await;
    ws
}

/// The next `print` frame on `ws`.
async fn next_print(ws: &mut Ws) -> Value {
    ws.recv_until(|v| v["type"] == "print").await.pop().unwrap()
}

#[tokio::test]
async fn refusals_come_in_rule_88s_order() {
    let site = site();
    let server = site.start();
    let api = Api::new(&server);
    let admin = api.login("admin").await;
    let staff = api.login("le.thu").await;
    let other = api.login("tran.an").await;
    let t = api.issue(&staff, "kham-noi", "r1").await.body;
    let id = t["id"].as_str().unwrap().to_string();
    let path = format!("/api/v1/tickets/{id}/print");
    let good = json!({"kiosk": "kiosk-sanh-a", "request_id": "p1"});

    // 401, then 403 before any look at the body.
    let a = api.post(&path, None, Some(good.clone())).await;
    assert_eq!((a.status, a.code()), (401, "unauthorized"));
    let a = api
        .post(&path, Some("wrong-token"), Some(good.clone()))
        .await;
    assert_eq!((a.status, a.code()), (401, "unauthorized"));
    for token in [KIOSK_TOKEN, DISPLAY_TOKEN, DESK_TOKEN] {
        let a = api.post(&path, Some(token), Some(json!({"x": 1}))).await;
        assert_eq!((a.status, a.code()), (403, "forbidden"), "{token}");
    }
    // 415, then 400 (before the 404 of an unknown ticket).
    let a = api
        .http
        .post(format!("{}{path}", api.base))
        .bearer_auth(&staff)
        .header("content-type", "text/plain")
        .body(good.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(a.status().as_u16(), 415);
    for body in [
        json!({"kiosk": "kiosk-sanh-a", "request_id": "p1", "extra": 1}),
        json!({"kiosk": "kiosk-sanh-a"}),
        json!({"request_id": "p1"}),
        json!({"kiosk": "kiosk-sanh-a", "request_id": "có dấu"}),
        json!({"kiosk": "kiosk-sanh-a", "request_id": ""}),
        json!({"kiosk": "k".repeat(65), "request_id": "p1"}),
        json!({"kiosk": 7, "request_id": "p1"}),
    ] {
        for p in [&path, "/api/v1/tickets/tk_nope/print"] {
            let a = api.post(p, Some(&staff), Some(body.clone())).await;
            assert_eq!((a.status, a.code()), (400, "bad_request"), "{body}");
        }
    }
    // 404: the ticket first, then the device (a kiosk; a display is not one).
    let a = print(&api, &staff, "tk_nope", "nobody", "p1").await;
    assert_eq!((a.status, a.code()), (404, "unknown_ticket"));
    let long = "k".repeat(64);
    for kiosk in ["nobody", "tv-sanh", long.as_str()] {
        let a = print(&api, &staff, &id, kiosk, "p1").await;
        assert_eq!((a.status, a.code()), (404, "unknown_device"), "{kiosk}");
    }
    // 409: a closed ticket before an unavailable kiosk.
    let done = api.issue(&staff, "kham-ngoai", "r2").await.body;
    let done_id = done["id"].as_str().unwrap();
    assert_eq!(
        api.post("/api/v1/counters/quay-3/next", Some(&admin), None)
            .await
            .body["id"],
        done["id"]
    );
    let d = api
        .post("/api/v1/counters/quay-3/done", Some(&admin), None)
        .await;
    assert_eq!(d.body["status"], "done");
    let a = print(&api, &staff, done_id, "kiosk-sanh-b", "p1").await;
    assert_eq!((a.status, a.code()), (409, "ticket_closed"));
    // Not connected; connected with no printer status yet; out of paper.
    let a = print(&api, &staff, &id, "kiosk-sanh-b", "p1").await;
    assert_eq!((a.status, a.code()), (409, "kiosk_unavailable"));
    let mut ws = fake_kiosk(&server, "paper_out").await;
    for status in ["paper_out", "offline"] {
        ws.send(json!({"type": "device_status", "printer": status}))
            .await;
        wait_device(&api, &admin, "kiosk-sanh-a", status).await;
        let a = print(&api, &staff, &id, "kiosk-sanh-a", "p1").await;
        assert_eq!((a.status, a.code()), (409, "kiosk_unavailable"), "{status}");
    }
    // Paper low still prints; the kiosk gets the job at once.
    ws.send(json!({"type": "device_status", "printer": "paper_low"}))
        .await;
    wait_device(&api, &admin, "kiosk-sanh-a", "paper_low").await;
    let a = print(&api, &staff, &id, "kiosk-sanh-a", "p1").await;
    assert_eq!(a.status, 202, "{}", a.text);
    let print_id = a.body["print_id"].as_str().unwrap().to_string();
    assert!(print_id.len() > 16);
    let job = next_print(&mut ws).await;
    assert_eq!(job["print_id"], print_id.as_str());
    assert_eq!(job["ticket"]["id"], id.as_str());
    assert_eq!(job["ticket"]["number"], "A001");
    assert_eq!(job["service_name"], "Khám Nội");
    assert!(job.get("seq").is_none(), "print jobs are not queue events");

    // A replay answers the same job even when the kiosk could not take a
    // new one now; the same request_id for another ticket is refused.
    ws.send(json!({"type": "device_status", "printer": "cover_open"}))
        .await;
    wait_device(&api, &admin, "kiosk-sanh-a", "cover_open").await;
    let a = print(&api, &staff, &id, "kiosk-sanh-a", "p1").await;
    assert_eq!(a.status, 202);
    assert_eq!(a.body["print_id"].as_str(), Some(print_id.as_str()));
    let t2 = api.issue(&staff, "kham-noi", "r3").await.body;
    let a = print(
        &api,
        &staff,
        t2["id"].as_str().unwrap(),
        "kiosk-sanh-a",
        "p1",
    )
    .await;
    assert_eq!((a.status, a.code()), (409, "request_id_reused"));
    // request_id is the caller's own: another staff member's p1 is a new job.
    ws.send(json!({"type": "device_status", "printer": "ok"}))
        .await;
    wait_device(&api, &admin, "kiosk-sanh-a", "ok").await;
    let a = print(&api, &other, &id, "kiosk-sanh-a", "p1").await;
    assert_eq!(a.status, 202);
    let second = a.body["print_id"].as_str().unwrap().to_string();
    assert_ne!(second, print_id);
    assert_eq!(next_print(&mut ws).await["print_id"], second.as_str());

    // Unanswered jobs come again after each hello, oldest first; an
    // answered one no more.
    ws.send(json!({"type": "hello", "token": KIOSK_TOKEN}))
        .await;
    assert_eq!(next_print(&mut ws).await["print_id"], print_id.as_str());
    assert_eq!(next_print(&mut ws).await["print_id"], second.as_str());
    ws.send(json!({"type": "printed", "print_id": print_id, "ok": true}))
        .await;
    ws.send(json!({"type": "hello", "token": KIOSK_TOKEN}))
        .await;
    let frames = ws.recv_until(|v| v["type"] == "print").await;
    assert!(frames.iter().any(|f| f["type"] == "welcome"), "{frames:?}");
    assert_eq!(
        frames.last().unwrap()["print_id"],
        second.as_str(),
        "the answered job is not sent again"
    );
    // Only a kiosk answers print jobs.
    let (mut staff_ws, _) = Ws::hello(&server, Some(&staff), None).await;
    staff_ws
        .send(json!({"type": "printed", "print_id": second, "ok": true}))
        .await;
    let e = staff_ws.recv_until(|v| v["type"] == "error").await;
    assert_eq!(e.last().unwrap()["error"]["code"], "forbidden");
}

#[tokio::test]
async fn a_kiosk_out_of_paper_is_unavailable() {
    use luot_kiosk::printer::STATUS_PAPER_OUT;
    let site = site();
    let server = site.start();
    let api = Api::new(&server);
    let admin = api.login("admin").await;
    let staff = api.login("le.thu").await;
    let printer = FakePrinter::start(STATUS_PAPER_OUT);
    let k = Kiosk::start(
        &server.url(""),
        KIOSK_TOKEN,
        &format!("tcp:{}", printer.addr),
        &site.dir.path().join("kiosk"),
    );
    wait_device(&api, &admin, "kiosk-sanh-a", "paper_out").await;
    let t = api.issue(&staff, "kham-noi", "r1").await.body;
    let a = print(
        &api,
        &staff,
        t["id"].as_str().unwrap(),
        "kiosk-sanh-a",
        "p1",
    )
    .await;
    assert_eq!(
        (a.status, a.code()),
        (409, "kiosk_unavailable"),
        "{}",
        a.text
    );
    let (ok, log) = k.finish();
    assert!(ok, "{log}");
    assert!(printer.jobs.lock().unwrap().is_empty(), "nothing printed");
}

/// A TCP proxy between kiosk and server that holds back the kiosk's first
/// `printed` answer and cuts the connection instead; with `refuse_after`,
/// it lets no connection through after that.
struct AnswerEater {
    addr: SocketAddr,
    /// `printed` frames the kiosk sent through the proxy.
    answers: Arc<AtomicUsize>,
    connections: Arc<AtomicUsize>,
}

impl AnswerEater {
    fn start(server: SocketAddr, refuse_after: bool) -> AnswerEater {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let answers = Arc::new(AtomicUsize::new(0));
        let connections = Arc::new(AtomicUsize::new(0));
        let eaten = Arc::new(AtomicBool::new(false));
        let (seen, conns) = (answers.clone(), connections.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { break };
                if refuse_after && eaten.load(Ordering::SeqCst) {
                    drop(client);
                    continue;
                }
                conns.fetch_add(1, Ordering::SeqCst);
                let upstream = TcpStream::connect(server).unwrap();
                let (seen, eaten) = (seen.clone(), eaten.clone());
                ws_pipe::pipe(client, upstream, move |text| {
                    if !text.contains("\"type\":\"printed\"") {
                        return Verdict::Pass;
                    }
                    seen.fetch_add(1, Ordering::SeqCst);
                    if eaten.swap(true, Ordering::SeqCst) {
                        Verdict::Pass
                    } else {
                        // The kiosk printed; the server never hears of it.
                        Verdict::CutBefore
                    }
                });
            }
        });
        AnswerEater {
            addr,
            answers,
            connections,
        }
    }
}

/// Staff reprint ticket A001 at kiosk-sanh-a; its `print_id`.
async fn reprint_a001(api: &Api, admin: &str) -> (String, String) {
    wait_device(api, admin, "kiosk-sanh-a", "ok").await;
    let staff = api.login("le.thu").await;
    let t = api.issue(&staff, "kham-noi", "r1").await.body;
    let id = t["id"].as_str().unwrap().to_string();
    let a = print(api, &staff, &id, "kiosk-sanh-a", "p1").await;
    assert_eq!(a.status, 202, "{}", a.text);
    (a.body["print_id"].as_str().unwrap().to_string(), id)
}

#[tokio::test]
async fn a_kiosk_that_reconnects_gets_the_unanswered_job_again_and_prints_it_once() {
    let site = site();
    let server = site.start();
    let api = Api::new(&server);
    let admin = api.login("admin").await;
    let proxy = AnswerEater::start(server.addr, false);
    let out = site.dir.path().join("printer.bin");
    let k = Kiosk::start(
        &format!("http://{}", proxy.addr),
        KIOSK_TOKEN,
        &format!("file:{}", out.display()),
        &site.dir.path().join("kiosk"),
    );
    let (print_id, id) = reprint_a001(&api, &admin).await;
    // Printed, the answer lost with the connection; after the reconnect's
    // hello the server sends the job again and the kiosk answers it from
    // what it wrote down, without printing it again.
    let log = k.wait_for("answered again, not printed again");
    assert!(log.contains(&format!("print_id={print_id}")), "{log}");
    let (ok, log) = k.finish();
    assert!(ok, "{log}");
    assert_eq!(printed_number(&log, &print_id), ["A001"], "{log}");
    assert!(
        proxy.connections.load(Ordering::SeqCst) >= 2,
        "it reconnected"
    );
    assert_eq!(proxy.answers.load(Ordering::SeqCst), 2, "answered twice");
    let pages = pages(&out);
    assert_eq!(pages.len(), 1, "printed once");
    assert_eq!(
        escpos::qr(&pages[0].image()).unwrap(),
        format!("http://luot.test/t/{id}")
    );
    let log = server.stderr();
    assert!(log.contains("print job sent again"), "{log}");
    assert!(log.contains("print job printed"), "{log}");
}

#[tokio::test]
async fn a_restarted_kiosk_never_prints_a_job_twice() {
    let site = site();
    let server = site.start();
    let api = Api::new(&server);
    let admin = api.login("admin").await;
    let proxy = AnswerEater::start(server.addr, true);
    let out = site.dir.path().join("printer.bin");
    let state = site.dir.path().join("kiosk");
    let k = Kiosk::start(
        &format!("http://{}", proxy.addr),
        KIOSK_TOKEN,
        &format!("file:{}", out.display()),
        &state,
    );
    let (print_id, _) = reprint_a001(&api, &admin).await;
    k.wait_for(&format!("printed print_id={print_id} "));
    // Printed, its answer lost, the kiosk cannot reconnect: stopped hard.
    let t0 = Instant::now();
    while proxy.answers.load(Ordering::SeqCst) == 0 {
        assert!(t0.elapsed() < Duration::from_secs(20), "no answer sent");
        std::thread::sleep(Duration::from_millis(20));
    }
    k.kill9();
    assert_eq!(pages(&out).len(), 1);
    // The same kiosk (same state directory) starts again, straight to the
    // server: it gets the job again and does not print it.
    let k = Kiosk::start(
        &server.url(""),
        KIOSK_TOKEN,
        &format!("file:{}", out.display()),
        &state,
    );
    let log = k.wait_for("answered again, not printed again");
    assert!(log.contains(&format!("print_id={print_id}")), "{log}");
    let (ok, log) = k.finish();
    assert!(ok, "{log}");
    assert!(printed_number(&log, &print_id).is_empty(), "{log}");
    assert_eq!(pages(&out).len(), 1, "a restart never prints a job twice");
    assert!(server.stderr().contains("print job printed"));
}

/// Rule 88's `print_at`: a desk issues a ticket printed at the kiosk named,
/// and the paper is §7's ticket, exactly as if pressed there (people ahead,
/// no "In lại"); a replay prints nothing more.
#[tokio::test]
async fn print_at_prints_the_new_ticket_at_the_kiosk_as_its_own_ticket_not_a_reprint() {
    let site = site();
    let server = site.start();
    let api = Api::new(&server);
    let admin = api.login("admin").await;
    let staff = api.login("le.thu").await;
    let out = site.dir.path().join("printer.bin");
    let k = Kiosk::start(
        &server.url(""),
        KIOSK_TOKEN,
        &format!("file:{}", out.display()),
        &site.dir.path().join("kiosk"),
    );
    wait_device(&api, &admin, "kiosk-sanh-a", "ok").await;
    // One patient waits already.
    assert_eq!(api.issue(&staff, "kham-noi", "desk-1").await.status, 201);
    let body = json!({"service": "kham-noi", "request_id": "desk-2", "print_at": "kiosk-sanh-a"});
    let a = api
        .post("/api/v1/tickets", Some(&staff), Some(body.clone()))
        .await;
    assert_eq!(a.status, 201, "{}", a.text);
    let id = a.body["id"].as_str().unwrap().to_string();
    let print_id = a.body["print_id"].as_str().unwrap().to_string();
    k.wait_for(&format!("printed print_id={print_id} "));
    let again = api.post("/api/v1/tickets", Some(&staff), Some(body)).await;
    assert_eq!(
        (again.status, again.body["print_id"].as_str()),
        (200, Some(print_id.as_str()))
    );
    let (ok, log) = k.finish();
    assert!(ok, "{log}");
    let pages = pages(&out);
    assert_eq!(pages.len(), 1, "the new ticket, printed once: {log}");
    let url = escpos::qr(&pages[0].image()).expect("a QR code");
    assert_eq!(url, format!("http://luot.test/t/{id}"));
    let view = TicketView {
        site_name: "Bệnh viện Thử nghiệm".into(),
        service_name: "Khám Nội".into(),
        number: a.body["number"].as_str().unwrap().into(),
        priority: None,
        issued_at: a.body["issued_at"].as_str().unwrap().into(),
        ahead: Some(1),
        url,
        footer: "Vui lòng chờ gọi số".into(),
        reprint: None,
        slot_at: None,
    };
    let plain = render_ticket(&view, 576);
    let page = pages[0].image();
    assert!(
        plain.dimensions() == page.dimensions()
            && plain.pixels().zip(page.pixels()).all(|(a, b)| a == b),
        "the kiosk printed §7's ticket with one ahead, not a reprint"
    );
}
