//! Webhooks end to end (contract §12, rules 89–90): the real server POSTs
//! to real receivers on 127.0.0.1; signatures are checked with the test's
//! own HMAC code. Covers the body and headers, the kinds filter, order under
//! failures, redirects not followed, an answer too large to read, a
//! receiver that hangs, `GET /webhooks`, and a `kill -9` mid-stream.

#![allow(clippy::unwrap_used)] // tests may panic on a broken server

use std::collections::HashSet;
use std::time::Duration;

use luot_tests::webhook_receiver::{Delivery, Receiver, Reply, verify};
use luot_tests::*;
use serde_json::{Value, json};

const SECRET_A: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const SECRET_B: &str = "whsec_c2VjcmV0LWJ5dGVzLWZvci10aGUtc2Vjb25kLWhvb2s=";

/// The test hospital with `[site] id` and these `[[webhooks]]`.
fn site_with(hooks: &[(&str, String, &str, Option<&[&str]>)]) -> Site {
    let mut toml = test_site_toml(false).replace(
        "name = \"Bệnh viện Thử nghiệm\"",
        "name = \"Bệnh viện Thử nghiệm\"\nid = \"bv-thu\"",
    );
    for (id, url, secret, events) in hooks {
        toml.push_str(&format!(
            "\n[[webhooks]]\nid = \"{id}\"\nurl = \"{url}\"\nsecret = \"{secret}\"\n"
        ));
        if let Some(ev) = events {
            toml.push_str(&format!("events = {}\n", json!(ev)));
        }
    }
    Site::new(&toml)
}

/// First deliveries of each `webhook-id`, in order of arrival.
fn firsts(got: &[Delivery]) -> Vec<Delivery> {
    let mut seen = HashSet::new();
    got.iter()
        .filter(|d| seen.insert(d.id.clone()))
        .cloned()
        .collect()
}

fn seqs(got: &[Delivery]) -> Vec<u64> {
    got.iter().map(Delivery::seq).collect()
}

async fn hooks_status(api: &Api, admin: &str) -> Value {
    let a = api.get("/api/v1/webhooks", Some(admin)).await;
    assert_eq!(a.status, 200, "{}", a.text);
    a.body
}

/// `GET /webhooks` once `done` holds (the server notes an answer just
/// after the receiver sent it), or as it is after 10 s.
async fn status_when(api: &Api, admin: &str, done: impl Fn(&Value) -> bool) -> Value {
    for _ in 0..500 {
        let s = hooks_status(api, admin).await;
        if done(&s) {
            return s;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    hooks_status(api, admin).await
}

#[tokio::test]
async fn events_arrive_signed_in_order_as_admins_see_them() {
    let all = Receiver::ok().await;
    let calls = Receiver::ok().await;
    let site = site_with(&[
        ("his", all.url("/luot/events"), SECRET_A, None),
        (
            "loa",
            calls.url("/calls"),
            SECRET_B,
            Some(&["ticket_called"]),
        ),
    ]);
    let server = site.start();
    let api = Api::new(&server);
    let admin = api.login("admin").await;
    let staff = api.login("le.thu").await;
    let (mut adm, _) = Ws::hello(&server, Some(&admin), None).await;
    for i in 0..3 {
        let a = api.issue(&staff, "kham-noi", &format!("r{i}")).await;
        assert_eq!(a.status, 201, "{}", a.text);
    }
    for _ in 0..2 {
        let a = api
            .post("/api/v1/counters/quay-1/next", Some(&staff), None)
            .await;
        assert_eq!(a.status, 200, "{}", a.text);
    }
    // What an admin's websocket got: every event, by seq.
    let mut frames = Vec::new();
    while frames
        .iter()
        .filter(|f: &&Value| f["event"]["kind"] == "ticket_called")
        .count()
        < 2
    {
        let f = adm.recv().await.expect("admin frame");
        if f["type"] == "event" {
            frames.push(f);
        }
    }
    let last = frames.last().map(|f| f["seq"].as_u64().unwrap()).unwrap();
    let got = all
        .wait(Duration::from_secs(20), |g| {
            g.iter().any(|d| d.seq() == last)
        })
        .await;
    let got = firsts(&got);
    // Every event, in seq order, none missing from the first one delivered.
    let first = got.first().expect("deliveries").seq();
    assert_eq!(seqs(&got), (first..=last).collect::<Vec<_>>());
    for d in &got {
        assert!(verify(SECRET_A, d), "a bad signature on {}", d.id);
        assert_eq!(d.content_type, "application/json");
        assert_eq!(d.path, "/luot/events");
        let b = d.json();
        assert_eq!(b["site"], "bv-thu");
        // {site}-{epoch}-{seq}: the epoch is ep_ + 22 URL-safe characters.
        let epoch =
            d.id.strip_prefix("bv-thu-")
                .and_then(|r| r.strip_suffix(&format!("-{}", d.seq())))
                .unwrap_or_default();
        assert!(epoch.starts_with("ep_") && epoch.len() == 25, "{}", d.id);
        let ts: i64 = d.timestamp.parse().expect("unix seconds");
        assert!((ts - chrono::Utc::now().timestamp()).abs() < 120);
        assert_eq!(b["type"], b["event"]["kind"]);
        assert!(b["timestamp"].as_str().is_some_and(|t| t.contains('T')));
        // The event object is the one admins get.
        if let Some(f) = frames.iter().find(|f| f["seq"] == b["seq"]) {
            assert_eq!(b["event"], f["event"], "seq {}", d.seq());
        }
    }
    for s in frames.iter().map(|f| f["seq"].as_u64().unwrap()) {
        assert!(seqs(&got).contains(&s), "seq {s} never delivered");
    }
    // The second webhook takes calls only: two, signed with its own key.
    let c = calls
        .wait(Duration::from_secs(20), |g| firsts(g).len() >= 2)
        .await;
    let c = firsts(&c);
    assert_eq!(c.len(), 2, "{c:?}");
    assert!(c.iter().all(|d| d.json()["type"] == "ticket_called"));
    assert!(
        c.iter()
            .all(|d| verify(SECRET_B, d) && !verify(SECRET_A, d))
    );
    assert!(c[0].seq() < c[1].seq());
    assert_eq!(c[0].json()["event"]["ticket"]["number"], "A001");

    // GET /webhooks: admins only, no secret, where each stands.
    assert_eq!(api.get("/api/v1/webhooks", None).await.status, 401);
    assert_eq!(api.get("/api/v1/webhooks", Some(&staff)).await.status, 403);
    let st = status_when(&api, &admin, |s| {
        s["webhooks"][0]["last_delivered_seq"] == last
            && s["webhooks"][1]["last_delivered_seq"] == c[1].seq()
    })
    .await;
    let text = st.to_string();
    assert!(
        !text.contains("MfKQ9r8") && !text.contains("whsec_"),
        "{text}"
    );
    let his = &st["webhooks"][0];
    assert_eq!(his["id"], "his");
    assert_eq!(his["url"], all.url("/luot/events"));
    assert_eq!(his["last_delivered_seq"], last);
    assert_eq!(his["pending"], 0);
    assert!(his["last_error"].is_null());
    assert!(his["next_attempt_at"].is_null());
    assert!(his["last_success_at"].is_string());
    assert_eq!(his["events"].as_array().map(Vec::len), Some(18));
    let loa = &st["webhooks"][1];
    assert_eq!(loa["events"], json!(["ticket_called"]));
    assert_eq!(loa["last_delivered_seq"], c[1].seq());
}

#[tokio::test]
async fn a_failing_receiver_is_retried_with_the_same_body_and_nothing_overtakes_it() {
    // The first three requests fail; then every one is taken.
    let rx = Receiver::start(|n, _| Reply::Status(if n < 3 { 503 } else { 200 })).await;
    let site = site_with(&[("his", rx.url("/h"), SECRET_A, Some(&["ticket_issued"]))]);
    let server = site.start();
    let api = Api::new(&server);
    let admin = api.login("admin").await;
    let staff = api.login("le.thu").await;
    for i in 0..3 {
        // No command waits for a webhook.
        let a = api.issue(&staff, "kham-noi", &format!("f{i}")).await;
        assert_eq!(a.status, 201);
    }
    // While it fails, admins see why and that all three wait.
    let _ = rx.wait(Duration::from_secs(10), |g| g.len() >= 2).await;
    let st = hooks_status(&api, &admin).await;
    let his = &st["webhooks"][0];
    assert_eq!(his["last_error"]["status"], 503, "{st}");
    assert!(
        his["last_error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty())
    );
    assert!(his["last_delivered_seq"].is_null());
    assert_eq!(his["pending"], 3);
    let got = rx
        .wait(Duration::from_secs(30), |g| {
            firsts(g).len() == 3 && g.len() >= 6
        })
        .await;
    assert_eq!(got.len(), 6, "3 failures, then 3 deliveries: {got:?}");
    // The failing one is attempted again, with the same bytes and id, and
    // nothing else is sent until it is taken.
    assert!(
        got[..4]
            .iter()
            .all(|d| d.id == got[0].id && d.body == got[0].body)
    );
    assert!(got.iter().all(|d| verify(SECRET_A, d)));
    let order = seqs(&firsts(&got));
    assert!(order.windows(2).all(|w| w[0] < w[1]), "{order:?}");
    let numbers: Vec<Value> = firsts(&got)
        .iter()
        .map(|d| d.json()["event"]["ticket"]["number"].clone())
        .collect();
    assert_eq!(numbers, [json!("A001"), json!("A002"), json!("A003")]);
    let st = status_when(&api, &admin, |s| s["webhooks"][0]["pending"] == 0).await;
    let his = &st["webhooks"][0];
    assert_eq!(his["pending"], 0);
    assert_eq!(his["last_delivered_seq"], order[2]);
    // The last error stays until the next failure.
    assert_eq!(his["last_error"]["status"], 503);
    assert!(his["next_attempt_at"].is_null());
}

#[tokio::test]
async fn a_redirect_is_not_followed_and_a_huge_answer_is_not_read() {
    // First request: a redirect elsewhere; second: 200 with 64 MiB to come;
    // then plain 204s.
    let rx = Receiver::start(|n, d| match (n, d.path.as_str()) {
        (_, "/elsewhere") => Reply::Status(200),
        (0, _) => Reply::Redirect("/elsewhere".into()),
        (1, _) => Reply::Huge(64 << 20),
        _ => Reply::Status(204),
    })
    .await;
    let site = site_with(&[("his", rx.url("/h"), SECRET_A, Some(&["ticket_issued"]))]);
    let server = site.start();
    let api = Api::new(&server);
    let admin = api.login("admin").await;
    let staff = api.login("le.thu").await;
    let _ = api.issue(&staff, "kham-noi", "x1").await;
    let got = rx.wait(Duration::from_secs(10), |g| !g.is_empty()).await;
    assert_eq!(got[0].path, "/h");
    let _ = rx.wait(Duration::from_secs(10), |g| g.len() >= 2).await;
    let st = status_when(&api, &admin, |s| !s["webhooks"][0]["last_error"].is_null()).await;
    assert_eq!(st["webhooks"][0]["last_error"]["status"], 307, "{st}");
    let _ = api.issue(&staff, "kham-noi", "x2").await;
    // 64 MiB at this pace would take 50 s, and the client gives up at 15 s.
    let got = rx
        .wait(Duration::from_secs(10), |g| {
            firsts(g).len() >= 2 && g.len() >= 3
        })
        .await;
    assert!(
        got.iter().all(|d| d.path == "/h"),
        "the redirect was followed: {:?}",
        got.iter().map(|d| &d.path).collect::<Vec<_>>()
    );
    // The retry (answered with 64 MiB) acknowledged the first; the second
    // went next, long before 64 MiB could have been read at this pace.
    let f = firsts(&got);
    assert_eq!(f.len(), 2);
    assert_eq!(got[1].id, got[0].id);
    assert!(f[0].seq() < f[1].seq());
    assert_eq!(f[1].json()["event"]["ticket"]["number"], "A002");
}

#[tokio::test]
async fn a_receiver_that_hangs_gets_the_delivery_again() {
    let rx = Receiver::start(|n, _| {
        if n == 0 {
            Reply::Hang
        } else {
            Reply::Status(200)
        }
    })
    .await;
    let site = site_with(&[("his", rx.url("/h"), SECRET_A, Some(&["ticket_issued"]))]);
    let server = site.start();
    let api = Api::new(&server);
    let admin = api.login("admin").await;
    let staff = api.login("le.thu").await;
    let _ = api.issue(&staff, "kham-noi", "h1").await;
    let got = rx.wait(Duration::from_secs(40), |g| g.len() >= 2).await;
    assert_eq!(got.len(), 2, "no second attempt after a hung one");
    assert_eq!(got[1].id, got[0].id);
    assert_eq!(got[1].body, got[0].body);
    assert!(verify(SECRET_A, &got[1]));
    let st = status_when(&api, &admin, |s| {
        !s["webhooks"][0]["last_delivered_seq"].is_null()
    })
    .await;
    let his = &st["webhooks"][0];
    assert!(his["last_error"]["status"].is_null(), "{st}");
    assert_eq!(his["last_delivered_seq"], got[0].seq());
}

#[tokio::test]
async fn kill_9_mid_stream_loses_no_event_and_keeps_the_order() {
    // A receiver that takes a little time for each delivery, so the server
    // is killed with deliveries still to make.
    let rx = Receiver::start(|_, _| Reply::After(Duration::from_millis(15), 200)).await;
    let site = site_with(&[("his", rx.url("/h"), SECRET_A, None)]);
    let mut server = site.start();
    let api = Api::new(&server);
    let staff = api.login("le.thu").await;
    let mut tasks = Vec::new();
    for i in 0..120 {
        let (api, staff) = (api.clone(), staff.clone());
        tasks.push(tokio::spawn(async move {
            api.issue(&staff, "kham-noi", &format!("k{i}")).await.status
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), 201);
    }
    // Killed while it delivers (at 15 ms a delivery, about 100 are to come).
    let _ = rx.wait(Duration::from_secs(10), |g| g.len() >= 20).await;
    server.kill9();
    let mut server = Server::start(&site.config(), &site.data(), &[]);
    let api = Api::new(&server);
    let staff = api.login("le.thu").await;
    let a = api.issue(&staff, "kham-noi", "after").await;
    assert_eq!(a.status, 201);
    let got = rx
        .wait(Duration::from_secs(60), |g| {
            g.iter()
                .any(|d| d.json()["event"]["ticket"]["number"] == "A121")
        })
        .await;
    let f = firsts(&got);
    let order = seqs(&f);
    let last = *order.last().expect("deliveries");
    assert_eq!(
        order,
        (1..=last).collect::<Vec<_>>(),
        "every event once in seq order (repeats dropped by webhook-id)"
    );
    // A repeat is the same delivery, byte for byte.
    for d in &got {
        let first = f.iter().find(|x| x.id == d.id).expect("seen");
        assert_eq!(first.body, d.body);
        assert!(verify(SECRET_A, d));
    }
    let issued: HashSet<String> = f
        .iter()
        .filter(|d| d.json()["type"] == "ticket_issued")
        .map(|d| {
            d.json()["event"]["ticket"]["number"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(issued.len(), 121);
    server.terminate();
}

fn cli(site: &Site, args: &[&str]) {
    let out = std::process::Command::new(binary("luot-server"))
        .args(args)
        .env("LUOT_DATA_DIR", site.data())
        .env("LUOT_LISTEN", "127.0.0.1:0")
        .stdin(std::process::Stdio::null())
        .output()
        .expect("luot-server");
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn number(d: &Delivery) -> String {
    d.json()["event"]["ticket"]["number"]
        .as_str()
        .unwrap_or("")
        .to_string()
}

fn epoch(d: &Delivery) -> String {
    let rest = d.id.strip_prefix("bv-thu-").unwrap_or_default();
    rest.rsplit_once('-')
        .map(|(e, _)| e.to_string())
        .unwrap_or_default()
}

#[tokio::test]
async fn after_a_restore_webhooks_resume_with_the_restored_logs_next_event_under_a_new_epoch() {
    let rx = Receiver::ok().await;
    let site = site_with(&[("his", rx.url("/h"), SECRET_A, Some(&["ticket_issued"]))]);
    let mut server = site.start();
    let api = Api::new(&server);
    let staff = api.login("le.thu").await;
    for i in 0..2 {
        assert_eq!(
            api.issue(&staff, "kham-noi", &format!("b{i}")).await.status,
            201
        );
    }
    let got = rx
        .wait(Duration::from_secs(20), |g| {
            g.iter().any(|d| number(d) == "A002")
        })
        .await;
    let backed_up = got.iter().map(Delivery::seq).max().unwrap_or(0);
    let file = site.dir.path().join("luot.backup");
    let cfg = site.config();
    cli(
        &site,
        &[
            "backup",
            "--config",
            cfg.to_str().unwrap(),
            "--to",
            file.to_str().unwrap(),
        ],
    );
    for i in 2..4 {
        assert_eq!(
            api.issue(&staff, "kham-noi", &format!("b{i}")).await.status,
            201
        );
    }
    let before = rx
        .wait(Duration::from_secs(20), |g| {
            g.iter().any(|d| number(d) == "A004")
        })
        .await;
    assert!(server.terminate(), "clean stop");
    cli(
        &site,
        &[
            "restore",
            "--config",
            cfg.to_str().unwrap(),
            "--from",
            file.to_str().unwrap(),
        ],
    );
    let server = site.start();
    let api = Api::new(&server);
    let staff = api.login("le.thu").await;
    // The restored queue numbers on from A002.
    let a = api.issue(&staff, "kham-noi", "after-restore").await;
    assert_eq!(a.body["number"], "A003", "{}", a.text);
    let all = rx
        .wait(Duration::from_secs(20), |g| g.len() > before.len())
        .await;
    let after = firsts(&all[before.len()..]);
    assert_eq!(after.len(), 1, "only the new event: {after:?}");
    let d = &after[0];
    assert_eq!(number(d), "A003");
    assert!(
        d.seq() > backed_up,
        "resumes after the restored log's last event"
    );
    assert!(verify(SECRET_A, d));
    // A seq reused after the restore, under a new epoch: its id is new.
    let old_epoch = epoch(&before[0]);
    assert!(old_epoch.starts_with("ep_"));
    assert_ne!(epoch(d), old_epoch);
    assert!(before.iter().all(|b| b.id != d.id));
    drop(server);
}

#[tokio::test]
async fn events_that_waited_7_days_are_skipped_and_the_next_body_says_from_where() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    let up = Arc::new(AtomicBool::new(false));
    let flag = up.clone();
    let rx = Receiver::start(move |_, _| {
        Reply::Status(if flag.load(Ordering::SeqCst) {
            200
        } else {
            503
        })
    })
    .await;
    let site = site_with(&[("his", rx.url("/h"), SECRET_A, None)]);
    let mut server = site.start();
    let api = Api::new(&server);
    let staff = api.login("le.thu").await;
    for i in 0..2 {
        assert_eq!(
            api.issue(&staff, "kham-noi", &format!("w{i}")).await.status,
            201
        );
    }
    let failed = rx.wait(Duration::from_secs(10), |g| !g.is_empty()).await;
    let first_failed = failed[0].seq();
    assert!(server.terminate());
    let old = rx.got();
    let old_last = old
        .iter()
        .map(Delivery::seq)
        .max()
        .unwrap_or(0)
        .max(first_failed + 2);
    // Eight days later the receiver is back.
    up.store(true, Ordering::SeqCst);
    let offset = (8 * 86_400).to_string();
    let server = Server::start(
        &site.config(),
        &site.data(),
        &[("LUOT_CLOCK_OFFSET_S", offset.as_str())],
    );
    let api = Api::new(&server);
    let staff = api.login("le.thu").await;
    assert_eq!(api.issue(&staff, "kham-noi", "w-late").await.status, 201);
    let all = rx
        .wait(Duration::from_secs(20), |g| {
            g[old.len()..]
                .iter()
                .any(|d| d.json()["type"] == "ticket_issued")
        })
        .await;
    let after = &all[old.len()..];
    assert!(!after.is_empty());
    assert_eq!(
        after[0].json()["skipped_from"],
        first_failed,
        "the first body after the gap says where it began: {}",
        String::from_utf8_lossy(&after[0].body)
    );
    assert!(verify(SECRET_A, &after[0]));
    assert!(
        after.iter().all(|d| d.seq() > old_last),
        "nothing older than 7 days is delivered: {:?}",
        seqs(after)
    );
    assert!(
        after[1..]
            .iter()
            .all(|d| d.json().get("skipped_from").is_none())
    );
}

#[tokio::test]
async fn the_admin_page_shows_a_failing_webhook() {
    use luot_tests::browser::Browser;
    let rx = Receiver::start(|_, _| Reply::Status(503)).await;
    let site = site_with(&[("his", rx.url("/h"), SECRET_A, Some(&["ticket_issued"]))]);
    let server = site.start();
    let api = Api::new(&server);
    let staff = api.login("le.thu").await;
    assert_eq!(api.issue(&staff, "kham-noi", "adm").await.status, 201);
    let _ = rx.wait(Duration::from_secs(10), |g| g.len() >= 2).await;
    let b = Browser::start(1280, 800).await;
    b.goto(&server.url("/admin")).await;
    b.fill("#u", "admin").await;
    b.fill("#p", PASSWORD).await;
    b.click("#login button").await;
    let row = b
        .until(
            "webhook row",
            "const r = document.querySelector('#hooks tbody tr');
             return r && r.className === 'alert' ? r.textContent : null;",
            Duration::from_secs(20),
        )
        .await;
    let row = row.as_str().unwrap_or_default().to_string();
    assert!(row.starts_with("his"), "{row}");
    assert!(row.contains(&rx.url("/h")), "{row}");
    assert!(row.contains("Chưa gửi"), "nothing delivered yet: {row}");
    assert!(row.contains("HTTP 503"), "the last error: {row}");
    assert!(!row.contains("whsec_"), "{row}");
    b.close().await;
}
