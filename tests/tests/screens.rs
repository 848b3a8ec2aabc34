//! The screens in a real headless Chromium against a real server: a staff
//! call shows on the board and the counter sign, a recall flashes again, the
//! board recovers from a server restart, announcements play in order without
//! overlap, the console keeps staff to their counters (picked by name), the
//! ticket page follows the queue live and takes one rating, the board keeps
//! long numbers and counter names whole and fills the screen with as many
//! counters as it has, and the admin page names services and counters and
//! charts the waits of each stop of the day's visits.
//! Visits (contract §9–10): a doctor sends patients to tests in parallel
//! from the console's keypad, the phone shows where to go now and next, the
//! board and the sign mark the return, and the console holds, resumes,
//! requeues, cancels and reprints, with refusals in the server's words.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use luot_tests::browser::Browser;
use luot_tests::*;
use serde_json::json;

const WAIT: Duration = Duration::from_secs(15);

#[tokio::test]
async fn a_call_shows_on_the_board_and_the_counter_sign() {
    let site = Site::hospital();
    let server = site.start();
    let api = Api::new(&server);
    for i in 0..3 {
        api.issue(KIOSK_TOKEN, "kham-noi", &format!("b{i}")).await;
    }
    let b = Browser::start(1920, 1080).await;
    b.goto(&server.url(&format!("/board#token={DISPLAY_TOKEN}")))
        .await;
    b.until(
        "site name",
        "return document.getElementById('site').textContent.includes('Thử nghiệm')",
        WAIT,
    )
    .await;
    // The token left the URL and stays in the browser.
    assert_eq!(b.js("return location.hash").await, "");
    assert_eq!(
        b.js("return localStorage.getItem('luot.token')").await,
        DISPLAY_TOKEN
    );
    b.until("waiting count", "return document.querySelector('[data-service=kham-noi]').textContent.includes('Đang chờ: 3')", WAIT).await;

    // Le Thu calls the next number from her console, with the keypad's Enter.
    let console = Browser::start(1280, 720).await;
    console.goto(&server.url("/console")).await;
    console.fill("#u", "le.thu").await;
    console.fill("#p", PASSWORD).await;
    console.click("#login-btn").await;
    console
        .until(
            "counter choice",
            "return document.querySelectorAll('#pick-list button').length === 1",
            WAIT,
        )
        .await;
    // The choice reads "Quầy 1", the counter's name, not its id.
    assert_eq!(console.text("#pick-list button").await, "Quầy 1");
    console.click("#pick-list button").await;
    console
        .until(
            "desk",
            "return document.getElementById('desk-title').textContent.includes('Quầy 1')",
            WAIT,
        )
        .await;
    let key =
        |k: &str| format!("document.dispatchEvent(new KeyboardEvent('keydown', {{key: '{k}'}}))");
    console.js(&key("Enter")).await;
    console
        .until(
            "called on the console",
            "return document.getElementById('cur-num').textContent === 'A001'",
            WAIT,
        )
        .await;
    b.until(
        "A001 at Quầy 1",
        "return document.querySelector('[data-counter=quay-1] .num').textContent === 'A001'",
        WAIT,
    )
    .await;
    assert!(b.text("#recent li:first-child").await.contains("A001"));
    assert!(
        b.text("[data-service=kham-noi]")
            .await
            .contains("Tiếp theo: A002, A003")
    );
    b.screenshot("board-1920x1080.png").await;

    // A recall from the console (the keypad's '.') flashes the counter again.
    b.js("document.querySelector('[data-counter=quay-1]').classList.remove('flash')")
        .await;
    console.js(&key(".")).await;
    b.until(
        "flash on recall",
        "return document.querySelector('[data-counter=quay-1]').classList.contains('flash')",
        WAIT,
    )
    .await;

    // The sign over the counter.
    b.goto(&server.url("/counter/quay-1")).await;
    b.until(
        "counter sign",
        "return document.getElementById('num').textContent === 'A001'",
        WAIT,
    )
    .await;
    assert_eq!(b.text("#name").await, "Quầy 1");
    console.js(&key("Enter")).await;
    b.until(
        "next number on the sign",
        "return document.getElementById('num').textContent === 'A002'",
        WAIT,
    )
    .await;
    b.close().await;
    console.close().await;

    // 1280×720 and one area of a big hospital.
    let b = Browser::start(1280, 720).await;
    b.goto(&server.url(&format!("/board?services=kham-noi#token={DISPLAY_TOKEN}")))
        .await;
    b.until(
        "board",
        "return document.querySelector('[data-counter=quay-1] .num')?.textContent === 'A002'",
        WAIT,
    )
    .await;
    assert_eq!(
        b.js("return document.querySelectorAll('[data-service]').length")
            .await,
        1
    );
    assert_eq!(
        b.js("return !!document.querySelector('[data-counter=quay-4]')")
            .await,
        false,
        "xet-nghiem counters hidden"
    );
    // Nothing overflows the screen at 720p.
    let fits = b
        .js("return document.documentElement.scrollHeight <= window.innerHeight + 1")
        .await;
    assert_eq!(fits, true);
    b.screenshot("board-1280x720.png").await;
    b.close().await;
}

#[tokio::test]
async fn the_board_recovers_after_a_server_restart() {
    let site = Site::hospital();
    let mut server = site.start();
    let port = server.addr.port().to_string();
    let api = Api::new(&server);
    let staff = api.login("le.thu").await;
    api.issue(KIOSK_TOKEN, "kham-noi", "r1").await;
    api.post("/api/v1/counters/quay-1/next", Some(&staff), None)
        .await;
    let b = Browser::start(1280, 720).await;
    b.goto(&server.url(&format!("/board#token={DISPLAY_TOKEN}")))
        .await;
    b.until(
        "A001",
        "return document.querySelector('[data-counter=quay-1] .num')?.textContent === 'A001'",
        WAIT,
    )
    .await;

    server.kill9();
    b.until(
        "offline banner",
        "return document.body.classList.contains('is-offline')",
        WAIT,
    )
    .await;
    // While the server is down, a ticket is issued and called elsewhere? No:
    // it is down. It comes back with more data than the board last saw.
    server = Server::start(
        &site.config(),
        &site.data(),
        &[("LUOT_LISTEN", &format!("127.0.0.1:{port}"))],
    );
    let api = Api::new(&server);
    api.issue(KIOSK_TOKEN, "kham-noi", "r2").await;
    api.post("/api/v1/counters/quay-1/next", Some(&staff), None)
        .await;
    b.until(
        "A002 after restart",
        "return document.querySelector('[data-counter=quay-1] .num')?.textContent === 'A002'",
        WAIT,
    )
    .await;
    b.until(
        "banner gone",
        "return !document.body.classList.contains('is-offline')",
        WAIT,
    )
    .await;
    assert!(b.text("#recent li:first-child").await.contains("A002"));
    b.close().await;
}

#[tokio::test]
async fn announcements_play_in_order_without_overlap() {
    let site = Site::hospital();
    let server = site.start();
    let api = Api::new(&server);
    let staff1 = api.login("le.thu").await;
    let staff2 = api.login("tran.an").await;
    for i in 0..4 {
        api.issue(
            KIOSK_TOKEN,
            if i % 2 == 0 { "kham-noi" } else { "kham-ngoai" },
            &format!("v{i}"),
        )
        .await;
    }
    let b = Browser::start(1280, 720).await;
    b.goto(&server.url(&format!("/board#token={DISPLAY_TOKEN}")))
        .await;
    b.until(
        "board",
        "return document.querySelectorAll('[data-counter]').length === 4",
        WAIT,
    )
    .await;
    // Instrument the page's audio player: every clip takes 40 ms.
    b.js("window.__log = []; let playing = 0;
         Voice.setPlayer((name) => new Promise((done) => {
           playing++; window.__log.push({clip: name, overlap: playing > 1});
           setTimeout(() => { playing--; done(); }, 40);
         }));")
        .await;
    // A burst: three calls and a recall, faster than they can be read out.
    api.post("/api/v1/counters/quay-1/next", Some(&staff1), None)
        .await; // A001 at Quầy 1
    api.post("/api/v1/counters/quay-3/next", Some(&staff2), None)
        .await; // B001 at Quầy 3
    api.post("/api/v1/counters/quay-1/recall", Some(&staff1), None)
        .await; // A001 again
    api.post("/api/v1/counters/quay-2/next", Some(&staff2), None)
        .await; // A002 at Quầy 2
    b.until(
        "four announcements",
        "return window.__log.filter(e => e.clip === 'moi-so').length === 4 && !Voice.state().playing",
        WAIT,
    )
    .await;
    let log = b.js("return window.__log").await;
    let clips: Vec<String> = log
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["clip"].as_str().unwrap().to_string())
        .collect();
    assert!(
        log.as_array()
            .unwrap()
            .iter()
            .all(|e| e["overlap"] == false),
        "clips never overlap: {clips:?}"
    );
    let expected: Vec<&str> = [
        [
            "chime", "moi-so", "l-a", "d0", "d0", "d1", "den", "quay", "d1",
        ],
        [
            "chime", "moi-so", "l-b", "d0", "d0", "d1", "den", "quay", "d3",
        ],
        [
            "chime", "moi-so", "l-a", "d0", "d0", "d1", "den", "quay", "d1",
        ],
        [
            "chime", "moi-so", "l-a", "d0", "d0", "d2", "den", "quay", "d2",
        ],
    ]
    .concat();
    assert_eq!(
        clips, expected,
        "Mời số A001 đến Quầy 1, B001 … Quầy 3, A001 again, A002 … Quầy 2"
    );
    // Counter numbers are read as Vietnamese numbers.
    let read = b.js("return [Voice.numberClips(13), Voice.numberClips(21), Voice.numberClips(45), Voice.numberClips(10)]").await;
    assert_eq!(
        read,
        json!([
            ["muoi", "d3"],
            ["d2", "muoi2", "mot2"],
            ["d4", "muoi2", "lam"],
            ["muoi"]
        ])
    );
    // A burst longer than the backlog is cut, and the screen says so.
    b.js("Voice.setPlayer(() => new Promise((done) => setTimeout(done, 1000))); for (let i = 0; i < 10; i++) Voice.announce('C00' + i, 'Quầy 4');").await;
    let state = b.js("return Voice.state()").await;
    assert!(state["waiting"].as_u64().unwrap() <= 4, "{state}");
    assert!(state["skipped"].as_u64().unwrap() >= 5, "{state}");
    b.until(
        "skipped notice",
        "return document.getElementById('voice').textContent.includes('bỏ qua')",
        WAIT,
    )
    .await;
    b.close().await;
}

#[tokio::test]
async fn the_console_keeps_staff_to_their_counters() {
    let site = Site::hospital();
    let server = site.start();
    let api = Api::new(&server);
    api.issue(KIOSK_TOKEN, "kham-noi", "c1").await;
    let b = Browser::start(1280, 720).await;
    // le.thu serves quay-1 only; she opens quay-2's desk.
    b.goto(&server.url("/console?counter=quay-2")).await;
    b.fill("#u", "le.thu").await;
    b.fill("#p", PASSWORD).await;
    b.click("#login-btn").await;
    b.until(
        "desk",
        "return !document.getElementById('desk').classList.contains('hidden')",
        WAIT,
    )
    .await;
    b.click("#b-next").await;
    let msg = b
        .until(
            "refusal",
            "return document.getElementById('msg').textContent",
            WAIT,
        )
        .await;
    assert!(msg.as_str().unwrap().contains("không phụ trách"), "{msg}");
    let s = api.get("/api/v1/site", None).await;
    assert_eq!(s.body["services"][0]["waiting"], 1, "nothing was called");

    // Her own counter works, by keyboard too (Enter = next).
    b.goto(&server.url("/console?counter=quay-1")).await;
    b.until(
        "desk",
        "return document.getElementById('desk-title').textContent.includes('Quầy 1')",
        WAIT,
    )
    .await;
    b.js("document.dispatchEvent(new KeyboardEvent('keydown', {key: 'Enter'}))")
        .await;
    b.until(
        "called",
        "return document.getElementById('cur-num').textContent === 'A001'",
        WAIT,
    )
    .await;
    assert!(b.text("#msg").await.contains("A001"));
    assert!(
        b.text("#keys").await.contains("Enter"),
        "shortcuts are shown"
    );
    b.close().await;

    // Tran An serves two counters and picks one by its name.
    let b = Browser::start(1280, 720).await;
    b.goto(&server.url("/console")).await;
    b.fill("#u", "tran.an").await;
    b.fill("#p", PASSWORD).await;
    b.click("#login-btn").await;
    let names = b
        .until(
            "counter choice",
            "const b = [...document.querySelectorAll('#pick-list button')].map((b) => b.textContent);
             return b.length ? b : null",
            WAIT,
        )
        .await;
    assert_eq!(names, json!(["Quầy 2", "Quầy 3"]));
    b.screenshot("console-pick-counter.png").await;
    b.click("#pick-list button[data-counter=quay-3]").await;
    b.until(
        "desk",
        "return document.getElementById('desk-title').textContent.startsWith('Quầy 3')",
        WAIT,
    )
    .await;
    b.close().await;
}

#[tokio::test]
async fn the_ticket_page_follows_the_queue_and_takes_one_rating() {
    let site = Site::hospital();
    let server = site.start();
    let api = Api::new(&server);
    let staff = api.login("le.thu").await;
    api.issue(KIOSK_TOKEN, "kham-noi", "t1").await;
    api.issue(KIOSK_TOKEN, "kham-noi", "t2").await;
    let mine = api.issue(KIOSK_TOKEN, "kham-noi", "t3").await.body;
    let id = mine["id"].as_str().unwrap();
    let b = Browser::phone(412, 915).await; // a phone
    b.goto(&server.url(&format!("/t/{id}"))).await;
    b.until(
        "number",
        "return document.getElementById('num').textContent === 'A003'",
        WAIT,
    )
    .await;
    b.until(
        "two ahead",
        "return document.getElementById('pos').textContent.includes('2')",
        WAIT,
    )
    .await;
    api.post("/api/v1/counters/quay-1/next", Some(&staff), None)
        .await;
    b.until(
        "one ahead",
        "return document.getElementById('pos').textContent.includes('1')",
        WAIT,
    )
    .await;
    api.post("/api/v1/counters/quay-1/next", Some(&staff), None)
        .await;
    api.post("/api/v1/counters/quay-1/next", Some(&staff), None)
        .await;
    b.until(
        "called",
        "return document.getElementById('status').textContent.includes('Quầy 1')",
        WAIT,
    )
    .await;
    api.post("/api/v1/counters/quay-1/done", Some(&staff), None)
        .await;
    b.until(
        "rating offered",
        "return document.getElementById('rate').style.display === 'block'",
        WAIT,
    )
    .await;
    b.click("#stars button[data-rating='4']").await;
    b.until(
        "thanks",
        "return document.getElementById('thanks').style.display === 'block'",
        WAIT,
    )
    .await;
    let again = api
        .post(
            &format!("/api/v1/tickets/{id}/feedback"),
            None,
            Some(json!({"rating": 5})),
        )
        .await;
    assert_eq!((again.status, again.code()), (409, "already_rated"));
    let admin = api.login("admin").await;
    let r = api.get("/api/v1/reports/daily", Some(&admin)).await;
    assert_eq!(
        r.body["services"][0]["ratings"],
        json!({"count": 1, "mean": 4.0})
    );
    b.close().await;
}

#[tokio::test]
async fn the_rating_pad_and_the_admin_page() {
    let site = Site::hospital();
    let server = site.start();
    let api = Api::new(&server);
    let staff = api.login("le.thu").await;
    let t = api.issue(KIOSK_TOKEN, "kham-noi", "p1").await.body;
    api.post("/api/v1/counters/quay-1/next", Some(&staff), None)
        .await;

    // The pad faces the citizen at quay-1.
    let b = Browser::start(1280, 800).await;
    b.goto(&server.url(&format!("/rate/quay-1#token={DISPLAY_TOKEN}")))
        .await;
    b.until(
        "idle",
        "return !document.getElementById('idle').classList.contains('hidden')",
        WAIT,
    )
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    api.post("/api/v1/counters/quay-1/done", Some(&staff), None)
        .await;
    b.until(
        "faces",
        "return !document.getElementById('ask').classList.contains('hidden')",
        WAIT,
    )
    .await;
    assert!(b.text("#faces").await.contains("Rất hài lòng"));
    b.click("#faces button[data-rating='4']").await; // "Hài lòng"
    b.until(
        "thanks",
        "return !document.getElementById('thanks').classList.contains('hidden')",
        WAIT,
    )
    .await;
    let again = api
        .post(
            &format!("/api/v1/tickets/{}/feedback", t["id"].as_str().unwrap()),
            None,
            Some(json!({"rating": 1})),
        )
        .await;
    assert_eq!(again.code(), "already_rated", "the pad recorded the rating");
    b.close().await;

    // A kiosk out of paper stands out on the admin page.
    let (mut kiosk, _) = Ws::hello(&server, Some(KIOSK_TOKEN), None).await;
    kiosk.recv().await.unwrap();
    kiosk
        .send(json!({"type": "device_status", "printer": "paper_out"}))
        .await;
    let b = Browser::start(1280, 800).await;
    b.goto(&server.url("/admin")).await;
    b.fill("#u", "admin").await;
    b.fill("#p", PASSWORD).await;
    b.click("#login button").await;
    let row = b
        .until(
            "alert row",
            "const r = [...document.querySelectorAll('#devices tbody tr')].find(r => r.textContent.includes('kiosk-sanh-a'));
             return r && r.className === 'alert' ? r.textContent : null;",
            WAIT,
        )
        .await;
    assert!(row.as_str().unwrap().contains("HẾT GIẤY"), "{row}");
    let svc = b
        .until(
            "service figures",
            "return document.querySelector('#svc tbody tr')?.textContent",
            WAIT,
        )
        .await;
    // Managers read the service's name; its id stays below it, small.
    let first = b
        .js("const td = document.querySelector('#svc tbody tr td');
             return [td.querySelector('.name')?.textContent, td.querySelector('.id')?.textContent, td.nextElementSibling.textContent]")
        .await;
    assert_eq!(first, json!(["Khám Nội", "kham-noi", "1"]), "{svc}");
    assert!(
        svc.as_str().unwrap().starts_with("Khám Nộikham-noi1"),
        "{svc}"
    );
    assert!(
        svc.as_str().unwrap().contains("4.00 (1)"),
        "rating in the report: {svc}"
    );
    // So do the counters: "Quầy 1" served the one ticket.
    let counters = b
        .js("return [...document.querySelectorAll('#ctr tbody tr')].map((r) => [r.querySelector('td .name')?.textContent, r.children[1].textContent])")
        .await;
    assert!(
        counters
            .as_array()
            .unwrap()
            .contains(&json!(["Quầy 1", "1"])),
        "{counters}"
    );
    // Devices keep their ids, with the role in Vietnamese.
    assert!(row.as_str().unwrap().contains("Ki-ốt"), "{row}");
    b.screenshot("admin.png").await;
    b.close().await;
}

/// The admin page's visits section: one bar pair (p50, p90) per kind of
/// step in the visits report, by service name, a return marked apart; the
/// table of visits by number of tests; the Excel and CSV buttons hand over
/// the report's files.
#[tokio::test]
async fn the_admin_page_charts_the_waits_of_each_stop() {
    let site = Site::new(&format!(
        "{}\n[reports]\ntest_services = [\"xet-nghiem\"]\n",
        test_site_toml(false)
    ));
    let server = site.start();
    let api = Api::new(&server);
    let admin = api.login("admin").await;
    let act = |counter: &'static str, action: &'static str, body: Option<serde_json::Value>| {
        let (api, admin) = (&api, &admin);
        async move {
            let a = api
                .post(
                    &format!("/api/v1/counters/{counter}/{action}"),
                    Some(admin),
                    body,
                )
                .await;
            assert_eq!(a.status, 200, "{counter} {action}: {}", a.text);
            a.body
        }
    };
    // Khám Nội at Quầy 1, the lab, back to Quầy 1; a Khám Ngoại patient at Quầy 3.
    let visit = api.issue(KIOSK_TOKEN, "kham-noi", "v1").await.body;
    api.issue(KIOSK_TOKEN, "kham-ngoai", "v2").await;
    assert_eq!(act("quay-1", "next", None).await["id"], visit["id"]);
    act(
        "quay-1",
        "send",
        Some(json!({"stops": [{"service": "xet-nghiem"}], "return": true})),
    )
    .await;
    assert_eq!(act("quay-4", "next", None).await["id"], visit["id"]);
    act("quay-4", "done", None).await;
    assert_eq!(act("quay-1", "next", None).await["id"], visit["id"]);
    assert_eq!(act("quay-1", "done", None).await["status"], "done");
    act("quay-3", "next", None).await;
    act("quay-3", "done", None).await;
    let report = api.get("/api/v1/reports/visits", Some(&admin)).await.body;

    let b = Browser::start(1280, 1000).await;
    b.goto(&server.url("/admin")).await;
    b.fill("#u", "admin").await;
    b.fill("#p", PASSWORD).await;
    b.click("#login button").await;
    let stages = b
        .until(
            "stage chart",
            "const g = [...document.querySelectorAll('#stage-chart g.stage')];
             return g.length ? g.map((g) => [g.querySelector('.label').textContent,
               g.querySelector('.v50').textContent, g.querySelector('.v90').textContent,
               g.querySelectorAll('rect.p50, rect.p90').length]) : null",
            WAIT,
        )
        .await;
    let stages = stages.as_array().unwrap();
    let names: Vec<&str> = stages.iter().map(|s| s[0].as_str().unwrap()).collect();
    // Site order, first visits before the return; one bar of each per stop.
    assert_eq!(
        names,
        [
            "Khám Nội",
            "Khám Nội · quay lại",
            "Khám Ngoại",
            "Xét nghiệm"
        ]
    );
    let steps = report["steps"].as_array().unwrap();
    assert_eq!(steps.len(), stages.len());
    for (shown, row) in stages.iter().zip(steps) {
        assert_eq!(shown[3], 2, "a p50 and a p90 bar: {shown}");
        for (i, p) in [(1, "p50"), (2, "p90")] {
            let minutes: f64 = shown[i].as_str().unwrap().parse().unwrap();
            let want = row["wait_s"][p].as_f64().unwrap() / 60.0;
            assert!((minutes - want).abs() <= 0.05, "{p} of {row}: {shown}");
        }
    }
    // Visits by number of tests: the lab visit has one, the other none.
    let visits = b
        .js("return [...document.querySelectorAll('#visits tbody tr')].map((r) => [r.children[0].textContent, r.children[2].textContent])")
        .await;
    assert_eq!(
        visits,
        json!([
            ["0", "1"],
            ["1", "1"],
            ["2", "0"],
            ["3+", "0"],
            ["Tất cả", "2"]
        ])
    );

    // The download buttons hand the browser the report's files (kept here
    // instead of being saved).
    b.js(
        "window.files = []; const blobs = new Map(), make = URL.createObjectURL;
          URL.createObjectURL = (blob) => { const u = make(blob); blobs.set(u, blob); return u; };
          HTMLAnchorElement.prototype.click = function () {
            const blob = blobs.get(this.href), name = this.download;
            blob.text().then((t) => window.files.push([name, blob.type, t.slice(0, 11)]));
          };",
    )
    .await;
    b.click("#visits-xlsx").await;
    b.click("#visits-csv").await;
    let files = b
        .until(
            "downloads",
            "return window.files.length === 2 ? window.files : null",
            WAIT,
        )
        .await;
    let day = report["day"].as_str().unwrap();
    let mut files: Vec<(String, String, String)> = serde_json::from_value(files).unwrap();
    files.sort();
    assert_eq!(files[0].0, format!("luot-visits-{day}.csv"));
    assert!(files[0].1.starts_with("text/csv"), "{files:?}");
    assert_eq!(files[0].2, "kind,tests,");
    assert_eq!(
        (files[1].0.as_str(), files[1].1.as_str()),
        (
            format!("luot-visits-{day}.xlsx").as_str(),
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
        )
    );
    assert!(files[1].2.starts_with("PK"), "a zip, as .xlsx files are");
    assert_eq!(b.text("#visits-msg").await, "");
    b.screenshot("admin-visits.png").await;
    b.close().await;
}

static ADMIN_HASH: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| luot_server::auth::hash_password(PASSWORD));

/// A site of `services` (id, name, prefix, digits) and `counters` (id, name,
/// services), with the test kiosk and display and an `admin` who may call at
/// any counter.
fn site_of(services: &[(&str, &str, &str, u32)], counters: &[(String, String, Vec<&str>)]) -> Site {
    let mut t = String::from(
        r#"[site]
name = "Bệnh viện Thử nghiệm"
timezone = "Asia/Ho_Chi_Minh"
day_starts_at = "05:00"
public_url = "http://luot.test"

[server]
listen = "127.0.0.1:0"
data_dir = "unused"
public_board = false

[priority]
ratio = 2
classes = ["emergency"]
"#,
    );
    let ids: Vec<String> = services.iter().map(|s| format!("{:?}", s.0)).collect();
    for (id, name, prefix, digits) in services {
        t += &format!(
            "\n[[services]]\nid = {id:?}\nname = {name:?}\nprefix = {prefix:?}\ndigits = {digits}\n"
        );
    }
    for (id, name, svcs) in counters {
        t += &format!("\n[[counters]]\nid = {id:?}\nname = {name:?}\nservices = {svcs:?}\n");
    }
    t += &format!(
        "\n[[devices]]\nid = \"kiosk-sanh-a\"\nrole = \"kiosk\"\ntoken_sha256 = \"{}\"\nservices = [{}]\n\
         \n[[devices]]\nid = \"tv-sanh\"\nrole = \"display\"\ntoken_sha256 = \"{}\"\n\
         \n[[users]]\nusername = \"admin\"\nrole = \"admin\"\npassword_hash = \"{}\"\n",
        sha(KIOSK_TOKEN),
        ids.join(", "),
        sha(DISPLAY_TOKEN),
        &*ADMIN_HASH
    );
    Site::new(&t)
}

/// Issues `n` tickets of `service` from the kiosk, 50 at a time.
async fn issue_many(api: &Api, service: &str, n: usize) {
    for chunk in (0..n).collect::<Vec<_>>().chunks(50) {
        let answers = futures_util::future::join_all(chunk.iter().map(|i| async move {
            api.issue(KIOSK_TOKEN, service, &format!("{service}-{i}"))
                .await
        }))
        .await;
        assert!(answers.iter().all(|a| a.status == 201), "issued");
    }
}

/// Every counter tile on the board, measured in the browser: whether it lies
/// inside the counters area, whether its name and number are cut or wrapped,
/// and the number's type size.
const TILES: &str = "
  const box = document.getElementById('counters').getBoundingClientRect();
  const fs = (e) => parseFloat(getComputedStyle(e).fontSize);
  return [...document.querySelectorAll('#counters .counter')].map((t) => {
    const r = t.getBoundingClientRect(), name = t.querySelector('.name'), num = t.querySelector('.num');
    return {
      counter: t.dataset.counter, name: name.textContent, number: num.textContent, closed: t.classList.contains('closed'),
      top: r.top, bottom: r.bottom, left: r.left, right: r.right,
      inside: r.left >= box.left - 0.5 && r.right <= box.right + 0.5 && r.top >= box.top - 0.5 && r.bottom <= box.bottom + 0.5,
      uncut: [t, name, num].every((e) => e.scrollWidth <= e.clientWidth && e.scrollHeight <= e.clientHeight),
      oneLine: [name, num].every((e) => e.getBoundingClientRect().height < 1.6 * fs(e)),
      numberPx: fs(num), namePx: fs(name),
      sizes: [t, name, num].map((e) => [e.scrollWidth, e.clientWidth, e.scrollHeight, e.clientHeight]),
    };
  });";

/// The page fits the window: no scrolling either way.
const FITS: &str = "return document.documentElement.scrollHeight <= window.innerHeight + 1
    && document.documentElement.scrollWidth <= window.innerWidth + 1";

/// Asserts that every tile is whole, inside the counters area, and apart
/// from the others, and that numbers and names keep a readable size.
fn assert_tiles_fit(tiles: &serde_json::Value, size: &str, min_number_px: f64, min_name_px: f64) {
    let tiles = tiles.as_array().unwrap();
    for t in tiles {
        assert_eq!(
            t["inside"], true,
            "{size}: tile inside the counters area: {t}"
        );
        assert_eq!(t["uncut"], true, "{size}: name and number not cut: {t}");
        assert_eq!(
            t["oneLine"], true,
            "{size}: name and number on one line each: {t}"
        );
        if t["closed"] == true {
            assert_eq!(t["number"], "Tạm nghỉ", "{size}: {t}");
        } else {
            assert!(
                t["numberPx"].as_f64().unwrap() >= min_number_px,
                "{size}: number readable ({min_number_px} px at least): {t}"
            );
        }
        assert!(
            t["namePx"].as_f64().unwrap() >= min_name_px,
            "{size}: name readable ({min_name_px} px at least): {t}"
        );
    }
    for (i, a) in tiles.iter().enumerate() {
        for b in &tiles[i + 1..] {
            let f = |v: &serde_json::Value, k: &str| v[k].as_f64().unwrap();
            let apart = f(a, "right") <= f(b, "left") + 0.5
                || f(b, "right") <= f(a, "left") + 0.5
                || f(a, "bottom") <= f(b, "top") + 0.5
                || f(b, "bottom") <= f(a, "top") + 0.5;
            assert!(apart, "{size}: tiles do not overlap: {a} {b}");
        }
    }
}

#[tokio::test]
async fn long_numbers_and_counter_names_stay_apart_on_the_board() {
    let counters = [
        ("phong-12", "Phòng khám 12", vec!["xet-nghiem", "kham-noi"]),
        ("phong-3", "Phòng xét nghiệm 3", vec!["xet-nghiem"]),
        ("phong-7", "Phòng khám 7", vec!["kham-noi"]),
        ("quay-10", "Quầy 10", vec!["kham-noi"]),
    ]
    .map(|(id, name, s)| (id.to_string(), name.to_string(), s));
    let site = site_of(
        &[
            ("kham-noi", "Khám Nội", "A", 3),
            ("xet-nghiem", "Xét nghiệm", "XN", 4),
        ],
        &counters,
    );
    let server = site.start();
    let api = Api::new(&server);
    let admin = api.login("admin").await;
    // A busy morning: past A999 (the next number is A1000), and XN0001 on.
    issue_many(&api, "kham-noi", 999).await;
    let urgent = api
        .post(
            "/api/v1/tickets",
            Some(KIOSK_TOKEN),
            Some(json!({"service": "kham-noi", "priority": "emergency", "request_id": "urgent"})),
        )
        .await;
    assert_eq!(urgent.body["number"], "A1000", "{}", urgent.text);
    issue_many(&api, "xet-nghiem", 3).await;
    for (counter, number) in [
        ("phong-7", "A1000"), // the emergency goes first
        ("quay-10", "A001"),
        ("phong-3", "XN0001"),
        ("phong-12", "XN0002"),
    ] {
        let a = api
            .post(
                &format!("/api/v1/counters/{counter}/next"),
                Some(&admin),
                None,
            )
            .await;
        assert_eq!(a.body["number"], number, "{}", a.text);
    }
    let expected = json!([
        ["XN0002", "Phòng khám 12"],
        ["XN0001", "Phòng xét nghiệm 3"],
        ["A001", "Quầy 10"],
        ["A1000", "Phòng khám 7"],
    ]);

    for (w, h) in [(1920, 1080), (1280, 720)] {
        let size = format!("{w}x{h}");
        let b = Browser::start(w, h).await;
        b.goto(&server.url(&format!("/board#token={DISPLAY_TOKEN}")))
            .await;
        b.until(
            "four recent calls",
            "return document.querySelectorAll('#recent li').length === 4",
            WAIT,
        )
        .await;
        b.screenshot(&format!("board-long-numbers-{size}.png"))
            .await;
        let rows = b
            .js(
                "const panel = document.getElementById('recent').getBoundingClientRect();
                 const fs = (e) => parseFloat(getComputedStyle(e).fontSize);
                 return [...document.querySelectorAll('#recent li')].map((li) => {
                   const n = li.querySelector('.rnum'), c = li.querySelector('.rctr');
                   const a = n.getBoundingClientRect(), b = c.getBoundingClientRect();
                   return {
                     number: n.textContent, counter: c.textContent,
                     apart: a.right <= b.left || a.bottom <= b.top,
                     numberOneLine: a.height < 1.6 * fs(n), counterOneLine: b.height < 1.6 * fs(c),
                     unclipped: [li, n, c].every((e) => e.scrollWidth <= e.clientWidth),
                     inside: a.left >= panel.left && b.right <= panel.right,
                     numberPx: fs(n), counterPx: fs(c),
                   };
                 });",
            )
            .await;
        let rows = rows.as_array().unwrap();
        let shown: Vec<_> = rows
            .iter()
            .map(|r| json!([r["number"], r["counter"]]))
            .collect();
        assert_eq!(json!(shown), expected, "{size}: the calls, newest first");
        for r in rows {
            assert_eq!(r["apart"], true, "{size}: number and counter apart: {r}");
            assert_eq!(r["numberOneLine"], true, "{size}: number on one line: {r}");
            assert_eq!(
                r["counterOneLine"], true,
                "{size}: counter on one line: {r}"
            );
            assert_eq!(r["unclipped"], true, "{size}: nothing cut off: {r}");
            assert_eq!(r["inside"], true, "{size}: inside the panel: {r}");
            // Still large type: at least 3% of the screen's height (32 px at 1080p).
            for k in ["numberPx", "counterPx"] {
                assert!(
                    r[k].as_f64().unwrap() >= 0.03 * f64::from(h),
                    "{size}: {k} readable: {r}"
                );
            }
        }
        // The tiles carry the same long numbers and names, whole.
        let tiles = b.js(TILES).await;
        assert_tiles_fit(&tiles, &size, 0.05 * f64::from(h), 0.024 * f64::from(h));
        assert_eq!(
            b.js("return document.querySelector('[data-counter=phong-12] .num').textContent")
                .await,
            "XN0002"
        );
        assert_eq!(b.js(FITS).await, true, "{size}: the board fits the screen");
        b.close().await;
    }
}

#[tokio::test]
async fn counter_tiles_use_the_room_on_the_board() {
    // Four counters at 1920×1080: the tiles fill the main area, large numbers.
    let site = Site::hospital();
    let server = site.start();
    let api = Api::new(&server);
    let staff = api.login("le.thu").await;
    api.issue(KIOSK_TOKEN, "kham-noi", "f1").await;
    api.post("/api/v1/counters/quay-1/next", Some(&staff), None)
        .await;
    let b = Browser::start(1920, 1080).await;
    b.goto(&server.url(&format!("/board#token={DISPLAY_TOKEN}")))
        .await;
    b.until(
        "A001 at Quầy 1",
        "return document.querySelector('[data-counter=quay-1] .num')?.textContent === 'A001'",
        WAIT,
    )
    .await;
    b.screenshot("board-4-counters-1920x1080.png").await;
    let tiles = b.js(TILES).await;
    assert_eq!(tiles.as_array().unwrap().len(), 4);
    assert_tiles_fit(&tiles, "4 counters", 0.0, 0.0);
    let m = b
        .js("const main = document.querySelector('main'), s = getComputedStyle(main);
             const h = main.clientHeight - parseFloat(s.paddingTop) - parseFloat(s.paddingBottom);
             const r = [...document.querySelectorAll('#counters .counter')].map((t) => t.getBoundingClientRect());
             const covered = Math.max(...r.map((x) => x.bottom)) - Math.min(...r.map((x) => x.top));
             const num = document.querySelector('[data-counter=quay-1] .num');
             return {share: covered / h, numberVh: parseFloat(getComputedStyle(num).fontSize) / window.innerHeight * 100};")
        .await;
    let share = m["share"].as_f64().unwrap();
    let number_vh = m["numberVh"].as_f64().unwrap();
    assert!(
        share > 0.8,
        "tiles cover {share:.2} of the main area's height"
    );
    assert!(
        number_vh > 12.0,
        "the number is {number_vh:.1}vh, half again the old 8vh at least"
    );
    assert_eq!(b.js(FITS).await, true);
    b.close().await;

    // Fifty counters over three services: all fit, and one area's twelve.
    let counters: Vec<(String, String, Vec<&str>)> = (1..=50)
        .map(|i| {
            let svc = match i {
                1..=12 => "xet-nghiem",
                13..=30 => "kham-noi",
                _ => "kham-ngoai",
            };
            (format!("quay-{i}"), format!("Quầy {i}"), vec![svc])
        })
        .collect();
    let site = site_of(
        &[
            ("kham-noi", "Khám Nội", "A", 3),
            ("kham-ngoai", "Khám Ngoại", "B", 3),
            ("xet-nghiem", "Xét nghiệm", "XN", 4),
        ],
        &counters,
    );
    let server = site.start();
    let api = Api::new(&server);
    let admin = api.login("admin").await;
    issue_many(&api, "xet-nghiem", 12).await;
    issue_many(&api, "kham-noi", 18).await;
    for i in 1..=30 {
        let a = api
            .post(
                &format!("/api/v1/counters/quay-{i}/next"),
                Some(&admin),
                None,
            )
            .await;
        assert_eq!(a.status, 200, "{}", a.text);
    }
    api.post("/api/v1/counters/quay-50/close", Some(&admin), None)
        .await;
    for (w, h) in [(1920, 1080), (1280, 720)] {
        for (query, count) in [("", 50), ("?services=xet-nghiem", 12)] {
            let size = format!("{w}x{h} with {count} counters");
            let b = Browser::start(w, h).await;
            b.goto(&server.url(&format!("/board{query}#token={DISPLAY_TOKEN}")))
                .await;
            b.until(
                "XN0012 at Quầy 12",
                "return document.querySelector('[data-counter=quay-12] .num')?.textContent === 'XN0012'",
                WAIT,
            )
            .await;
            b.screenshot(&format!("board-{count}-counters-{w}x{h}.png"))
                .await;
            let tiles = b.js(TILES).await;
            assert_eq!(tiles.as_array().unwrap().len(), count, "{size}");
            // Even fifty tiles at 720p keep numbers of 3% of the height and
            // names of 2% (22 and 14 px) at least.
            assert_tiles_fit(&tiles, &size, 0.03 * f64::from(h), 0.02 * f64::from(h));
            assert_eq!(b.js(FITS).await, true, "{size}: the board fits the screen");
            b.close().await;
        }
    }
}

// ---------------------------------------------------------------- visits (§9) and the console's additions (§10)

/// A small hospital for visits: registration at Quầy 2, exam rooms Phòng 13
/// and 14, the lab's sampling counter Quầy 34 (the only one serving
/// xet-nghiem, so it is that step's place), X-ray rooms Phòng 38 and 39;
/// Dr Hoa works in Phòng 13.
fn visit_site() -> Site {
    let mut t = String::from(
        r#"[site]
name = "Bệnh viện Thử nghiệm"
timezone = "Asia/Ho_Chi_Minh"
day_starts_at = "05:00"
public_url = "http://luot.test"

[server]
listen = "127.0.0.1:0"
data_dir = "unused"
public_board = false

[priority]
ratio = 2
classes = ["emergency"]

[[services]]
id = "tiep-don"
name = "Tiếp đón"
prefix = "A"
digits = 3

[[services]]
id = "kham"
name = "Khám bệnh"
prefix = "K"
digits = 3

[[services]]
id = "xet-nghiem"
name = "Xét nghiệm"
prefix = "X"
digits = 3

[[services]]
id = "x-quang"
name = "X-quang"
prefix = "Q"
digits = 3

[[counters]]
id = "quay-2"
name = "Quầy 2"
services = ["tiep-don"]

[[counters]]
id = "phong-13"
name = "Phòng 13"
services = ["kham"]

[[counters]]
id = "phong-14"
name = "Phòng 14"
services = ["kham"]

[[counters]]
id = "quay-34"
name = "Quầy 34"
services = ["xet-nghiem"]

[[counters]]
id = "phong-38"
name = "Phòng 38"
services = ["x-quang"]

[[counters]]
id = "phong-39"
name = "Phòng 39"
services = ["x-quang"]
"#,
    );
    t += &format!(
        "\n[[devices]]\nid = \"kiosk-sanh-a\"\nrole = \"kiosk\"\ntoken_sha256 = \"{}\"\nservices = [\"tiep-don\", \"kham\"]\n\
         \n[[devices]]\nid = \"tv-sanh\"\nrole = \"display\"\ntoken_sha256 = \"{}\"\n\
         \n[[users]]\nusername = \"bs.hoa\"\nrole = \"staff\"\npassword_hash = \"{h}\"\ncounters = [\"phong-13\"]\n\
         \n[[users]]\nusername = \"admin\"\nrole = \"admin\"\npassword_hash = \"{h}\"\n",
        sha(KIOSK_TOKEN),
        sha(DISPLAY_TOKEN),
        h = &*ADMIN_HASH
    );
    Site::new(&t)
}

/// Asserts that "Quay lại" beside a number leaves its room's name as large
/// as the other tiles' names.
fn assert_names_of_one_size(tiles: &serde_json::Value, size: &str) {
    let names: Vec<f64> = tiles
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["namePx"].as_f64().unwrap())
        .collect();
    assert!(
        names.iter().all(|n| (n - names[0]).abs() < 1.0),
        "{size}: names of one size: {names:?}"
    );
}

/// Presses a key of the staff's numeric keypad on the console.
async fn press(b: &Browser, key: &str) {
    b.js(&format!(
        "document.dispatchEvent(new KeyboardEvent('keydown', {{key: {key:?}, bubbles: true, cancelable: true}}))"
    ))
    .await;
}

/// Opens Dr Hoa's desk at Phòng 13 in a console of 1280×720.
async fn hoa_console(server: &Server) -> Browser {
    let b = Browser::start(1280, 720).await;
    b.goto(&server.url("/console?counter=phong-13")).await;
    b.fill("#u", "bs.hoa").await;
    b.fill("#p", PASSWORD).await;
    b.click("#login-btn").await;
    b.until(
        "desk",
        "return document.getElementById('desk-title').textContent.startsWith('Phòng 13')",
        WAIT,
    )
    .await;
    b
}

/// Waits until the console's message reads `text` exactly; returns it.
async fn console_says(b: &Browser, what: &str, text: &str) {
    let js = format!("return document.getElementById('msg').textContent === {text:?}");
    b.until(what, &js, WAIT).await;
}

/// Waits until the phone's places to go now read `places` (joined by " | ").
async fn phone_shows(phone: &Browser, what: &str, places: &str) {
    let js = format!(
        "return [...document.querySelectorAll('#now .place')].map((e) => e.textContent).join(' | ') === {places:?}"
    );
    phone.until(what, &js, WAIT).await;
}

/// An action at a counter by the admin, as a room's staff would press it.
async fn at(api: &Api, admin: &str, counter: &str, action: &str) -> Answer {
    api.post(
        &format!("/api/v1/counters/{counter}/{action}"),
        Some(admin),
        None,
    )
    .await
}

#[tokio::test]
async fn a_doctor_sends_a_patient_to_tests_and_the_patient_returns() {
    let site = visit_site();
    let server = site.start();
    let api = Api::new(&server);
    let admin = api.login("admin").await;
    let hoa = api.login("bs.hoa").await;
    let mine = api.issue(KIOSK_TOKEN, "kham", "p1").await.body;
    let id = mine["id"].as_str().unwrap().to_string();
    assert_eq!(mine["number"], "K001");
    let other = api.issue(KIOSK_TOKEN, "kham", "p2").await.body;
    assert_eq!(other["number"], "K002");

    let board = Browser::start(1920, 1080).await;
    board
        .goto(&server.url(&format!("/board#token={DISPLAY_TOKEN}")))
        .await;
    board
        .until(
            "board",
            "return document.querySelectorAll('[data-counter]').length === 6",
            WAIT,
        )
        .await;

    // Dr Hoa calls K001 into Phòng 13 and orders a blood test and an X-ray
    // in Phòng 38, both at once, then back to her.
    let c = hoa_console(&server).await;
    press(&c, "Enter").await;
    c.until(
        "K001 called",
        "return document.getElementById('cur-num').textContent === 'K001'",
        WAIT,
    )
    .await;
    press(&c, "/").await;
    c.until(
        "send panel",
        "return document.getElementById('p-send').classList.contains('open')
           && document.querySelectorAll('#sd-svcs button').length === 4",
        WAIT,
    )
    .await;
    assert_eq!(c.text("#sd-num").await, "K001");
    // The lab by a click, the X-ray by its key (the fourth service).
    c.click("#sd-svcs button[data-service=xet-nghiem]").await;
    press(&c, "4").await;
    c.until(
        "two stops",
        "return document.querySelectorAll('#sd-stops li[data-service]').length === 2",
        WAIT,
    )
    .await;
    // The X-ray in Phòng 38 only: the room list offers the rooms that do X-rays.
    let rooms = c
        .js(
            "const s = document.querySelector('#sd-stops li[data-service=x-quang] select');
             return [...s.options].map((o) => o.textContent)",
        )
        .await;
    assert_eq!(
        rooms,
        json!(["Phòng nào cũng được", "Phòng 38", "Phòng 39"])
    );
    c.js(
        "const s = document.querySelector('#sd-stops li[data-service=x-quang] select');
          s.value = 'phong-38'; s.dispatchEvent(new Event('change'));",
    )
    .await;
    // Both at the same stage ("cùng lúc", the default), and back here ('.').
    let stages = c
        .js("return [...document.querySelectorAll('#sd-stops li[data-service]')].map((li) =>
               [li.querySelector('.stage').textContent, li.querySelector('.mid.on')?.textContent ?? null])")
        .await;
    assert_eq!(
        stages,
        json!([["Bước 1", null], ["Bước 1", "cùng lúc"]]),
        "parallel stops"
    );
    press(&c, ".").await;
    assert_eq!(
        c.js("return document.getElementById('sd-return').checked")
            .await,
        true
    );
    assert!(
        c.text("#p-send")
            .await
            .contains("Quay lại phòng này (Phòng 13)")
    );
    c.screenshot("console-send-1280x720.png").await;
    assert_eq!(
        c.js("return document.documentElement.scrollWidth <= window.innerWidth + 1")
            .await,
        true,
        "the console fits the width of its screen"
    );
    // Every room list is wide enough for its longest choice beside its
    // arrow (in its right padding), and the panel fits the screen.
    let cut = c
        .js("const probe = document.createElement('span');
             probe.style.cssText = 'position:absolute;visibility:hidden;white-space:nowrap';
             document.body.append(probe);
             const cut = [];
             for (const s of document.querySelectorAll('#sd-stops select')) {
               const cs = getComputedStyle(s);
               probe.style.font = cs.font;
               for (const o of s.options) {
                 probe.textContent = o.textContent;
                 const room = s.clientWidth - parseFloat(cs.paddingLeft) - parseFloat(cs.paddingRight);
                 if (probe.getBoundingClientRect().width > room) cut.push(o.textContent);
               }
             }
             probe.remove();
             return cut")
        .await;
    assert_eq!(cut, json!([]), "room lists not cut");
    assert_eq!(c.js(FITS).await, true, "the send panel fits 1280×720");
    press(&c, "Enter").await;
    console_says(
        &c,
        "sent",
        "Đã chuyển số K001 đến Quầy 34 + Phòng 38; tiếp theo: Phòng 13",
    )
    .await;
    assert_eq!(c.text("#cur-num").await, "—", "Phòng 13 is free");
    assert_eq!(
        c.js("return document.getElementById('p-send').classList.contains('open')")
            .await,
        false,
        "the panel closed"
    );

    // The server holds the visit as the doctor ordered it.
    let t = api.get(&format!("/api/v1/tickets/{id}"), None).await.body;
    let steps: Vec<_> = t["visit"]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            json!([
                s["stage"],
                s["service"],
                s["counter"],
                s["returning"],
                s["status"]
            ])
        })
        .collect();
    assert_eq!(
        json!(steps),
        json!([
            [1, "kham", "phong-13", false, "done"],
            [2, "xet-nghiem", null, false, "waiting"],
            [2, "x-quang", "phong-38", false, "waiting"],
            [3, "kham", "phong-13", true, "pending"]
        ])
    );

    // The phone (a real phone's width): both places now, and Phòng 13 next.
    let phone = Browser::phone(412, 915).await;
    phone.goto(&server.url(&format!("/t/{id}"))).await;
    phone_shows(&phone, "where to go", "Quầy 34 | Phòng 38").await;
    assert_eq!(phone.text("#next").await, "Tiếp theo: Phòng 13");
    assert_eq!(phone.text("#num").await, "K001");
    assert!(phone.text("#now").await.contains("Số người trước bạn: 0"));
    assert_eq!(
        phone.js("return [window.innerWidth, document.documentElement.scrollWidth <= window.innerWidth]").await,
        json!([412, true]),
        "the page fits a phone's width"
    );
    phone.screenshot("ticket-visit-412x915.png").await;

    // K002 comes in next and goes to the same tests, any X-ray room.
    press(&c, "Enter").await;
    c.until(
        "K002 called",
        "return document.getElementById('cur-num').textContent === 'K002'",
        WAIT,
    )
    .await;
    let sent = api
        .post(
            "/api/v1/counters/phong-13/send",
            Some(&hoa),
            Some(json!({"stops": [{"service": "xet-nghiem"}, {"service": "x-quang"}], "return": true})),
        )
        .await;
    assert_eq!(sent.status, 200, "{}", sent.text);
    // A new patient for Phòng 13 while both are at the tests.
    let newer = api.issue(KIOSK_TOKEN, "kham", "p3").await.body;
    assert_eq!(newer["number"], "K003");

    // K002 takes the X-ray first (Phòng 39: K001's X-ray is Phòng 38's
    // only), K001 the lab first.
    let next = |counter: &'static str| at(&api, &admin, counter, "next");
    let done = async |counter: &'static str| {
        let a = at(&api, &admin, counter, "done").await;
        assert_eq!(a.status, 200, "{counter} done: {}", a.text);
    };
    let a = next("phong-39").await;
    assert_eq!(a.body["number"], "K002", "{}", a.text);
    let a = next("quay-34").await;
    assert_eq!(a.body["number"], "K001", "{}", a.text);
    // The lab calls K001: the phone says so, live; the X-ray keeps its place
    // and Phòng 38 cannot call K001 while the lab has them.
    phone
        .until(
            "called at the lab",
            "return document.querySelector('#now .stop.called .place')?.textContent === 'Quầy 34'",
            WAIT,
        )
        .await;
    assert!(phone.text("#status").await.contains("Đến lượt bạn"));
    assert!(
        phone
            .text("#now .stop.waiting")
            .await
            .contains("giữ chỗ trong lúc bạn ở nơi khác"),
        "{}",
        phone.text("#now").await
    );
    phone.screenshot("ticket-visit-called-412x915.png").await;
    let busy = next("phong-38").await;
    assert_eq!(
        (busy.status, busy.code()),
        (409, "queue_empty"),
        "K001 is busy at the lab: {}",
        busy.text
    );
    board
        .until(
            "K001 at Quầy 34, K002 at Phòng 39",
            "return document.querySelector('[data-counter=quay-34] .num').textContent === 'K001'
               && document.querySelector('[data-counter=phong-39] .num').textContent === 'K002'",
            WAIT,
        )
        .await;
    done("quay-34").await;
    // A finished step frees the lab's tile (step_finished).
    board
        .until(
            "Quầy 34 free",
            "return document.querySelector('[data-counter=quay-34] .num').textContent === '—'",
            WAIT,
        )
        .await;
    phone_shows(&phone, "only the X-ray left", "Phòng 38").await;
    assert_eq!(phone.text("#next").await, "Tiếp theo: Phòng 13");
    // K002's X-ray, then its lab: it is back first.
    done("phong-39").await;
    let a = next("quay-34").await;
    assert_eq!(a.body["number"], "K002", "{}", a.text);
    done("quay-34").await;
    let a = next("phong-38").await;
    assert_eq!(a.body["number"], "K001", "{}", a.text);
    done("phong-38").await;

    // Back to Phòng 13: the phone, and the board's list of returning patients.
    phone_shows(&phone, "back to Phòng 13", "Phòng 13").await;
    assert_eq!(phone.text("#next").await, "", "nothing after the return");
    let back = phone.text("#now").await;
    assert!(
        back.contains("Quay lại") && back.contains("Số người trước bạn: 1"),
        "K002 came back first: {back}"
    );
    phone.screenshot("ticket-visit-return-412x915.png").await;
    board
        .until(
            "returning list",
            "return document.querySelector('[data-service=kham] .back')?.textContent
               === 'Quay lại Phòng 13: K002, K001'",
            WAIT,
        )
        .await;
    assert_eq!(
        board
            .js("return document.querySelector('[data-service=kham] .next').textContent")
            .await,
        "Tiếp theo: K003"
    );
    assert_eq!(board.js(FITS).await, true, "the board fits at 1080p");
    board
        .screenshot("board-returning-waiting-1920x1080.png")
        .await;
    c.until(
        "returning count on the console",
        "return document.querySelector('#queues [data-service=kham]').textContent.includes('3 người chờ · 2 quay lại')",
        WAIT,
    )
    .await;

    // Dr Hoa calls next: the returning patients come before the newer K003,
    // in the order they came back.
    press(&c, "Enter").await;
    c.until(
        "K002 back",
        "return document.getElementById('cur-num').textContent === 'K002'",
        WAIT,
    )
    .await;
    press(&c, "Enter").await;
    c.until(
        "K001 back",
        "return document.getElementById('cur-num').textContent === 'K001'",
        WAIT,
    )
    .await;
    assert!(c.text("#cur-info").await.starts_with("Quay lại"));
    assert!(
        c.text("#cur-visit")
            .await
            .contains("Quầy 34 ✓ + Phòng 38 ✓"),
        "{}",
        c.text("#cur-visit").await
    );
    c.screenshot("console-returning-1280x720.png").await;
    phone
        .until(
            "called back in",
            "return document.querySelector('#now .stop.called .place')?.textContent === 'Phòng 13'",
            WAIT,
        )
        .await;
    let recent = board
        .until(
            "Quay lại beside K001",
            "const li = document.querySelector('#recent li');
             return li && li.querySelector('.rnum').textContent === 'K001' && li.querySelector('.ret') ? li.textContent : null",
            WAIT,
        )
        .await;
    assert_eq!(recent, "K001Quay lạiPhòng 13");
    // Only the returns say "Quay lại".
    let recent = board
        .js("return [...document.querySelectorAll('#recent li')].slice(0, 5).map((li) => [li.querySelector('.rnum').textContent, li.querySelector('.rctr').textContent, !!li.querySelector('.ret')])")
        .await;
    assert_eq!(
        recent,
        json!([
            ["K001", "Phòng 13", true],
            ["K002", "Phòng 13", true],
            ["K001", "Phòng 38", false],
            ["K002", "Quầy 34", false],
            ["K001", "Quầy 34", false]
        ])
    );
    assert_eq!(
        board
            .js("return document.querySelector('[data-counter=phong-13] .num').textContent")
            .await,
        "K001Quay lại"
    );
    assert_eq!(
        board
            .js("return document.querySelector('[data-service=kham] .back')")
            .await,
        serde_json::Value::Null,
        "called: no longer waiting to return"
    );
    let tiles = board.js(TILES).await;
    assert_tiles_fit(&tiles, "returning at 1080p", 0.05 * 1080.0, 0.024 * 1080.0);
    assert_names_of_one_size(&tiles, "returning at 1080p");
    board.screenshot("board-returning-1920x1080.png").await;
    board.close().await;

    // From a snapshot too, and at 1280×720; and on the sign over the door.
    let board = Browser::start(1280, 720).await;
    board
        .goto(&server.url(&format!("/board#token={DISPLAY_TOKEN}")))
        .await;
    board
        .until(
            "snapshot",
            "return document.querySelector('#recent li .ret') !== null",
            WAIT,
        )
        .await;
    assert_eq!(board.js(FITS).await, true, "the board fits at 720p");
    let tiles = board.js(TILES).await;
    assert_tiles_fit(&tiles, "returning at 720p", 0.05 * 720.0, 0.024 * 720.0);
    assert_names_of_one_size(&tiles, "returning at 720p");
    board.screenshot("board-returning-1280x720.png").await;
    board.goto(&server.url("/counter/phong-13")).await;
    board
        .until(
            "sign",
            "return document.getElementById('num').textContent === 'K001'
               && !document.getElementById('ret').classList.contains('hidden')",
            WAIT,
        )
        .await;
    board.screenshot("counter-returning-1280x720.png").await;

    // Done; the phone says so; the next patient is K003.
    press(&c, "+").await;
    phone
        .until(
            "done",
            "return document.getElementById('status').textContent === 'Đã phục vụ xong'",
            WAIT,
        )
        .await;
    press(&c, "Enter").await;
    c.until(
        "K003",
        "return document.getElementById('cur-num').textContent === 'K003'",
        WAIT,
    )
    .await;
    board
        .until(
            "no Quay lại for K003",
            "return document.getElementById('num').textContent === 'K003'
               && document.getElementById('ret').classList.contains('hidden')",
            WAIT,
        )
        .await;
    board.close().await;
    phone.close().await;
    c.close().await;
}

#[tokio::test]
async fn the_console_holds_requeues_cancels_and_explains_refusals() {
    let site = visit_site();
    let server = site.start();
    let api = Api::new(&server);
    let hoa = api.login("bs.hoa").await;
    let mut ids = vec![];
    for i in 1..=4 {
        let t = api.issue(KIOSK_TOKEN, "kham", &format!("h{i}")).await.body;
        ids.push(t["id"].as_str().unwrap().to_string());
    }
    let ticket = |i: usize| format!("/api/v1/tickets/{}", ids[i]);
    let sign = Browser::start(1280, 720).await;
    sign.goto(&server.url(&format!("/counter/phong-13#token={DISPLAY_TOKEN}")))
        .await;
    sign.until(
        "sign",
        "return document.getElementById('name').textContent === 'Phòng 13'",
        WAIT,
    )
    .await;
    let c = hoa_console(&server).await;

    // A refusal in the server's words: cancel with nothing called (* 3, reason 1, ⏎, ⏎).
    for k in ["*", "3", "1", "Enter"] {
        press(&c, k).await;
    }
    c.until(
        "confirmation",
        "return document.getElementById('p-confirm').classList.contains('open')",
        WAIT,
    )
    .await;
    assert!(
        c.text("#confirm-text")
            .await
            .contains("Người đến đã về, không làm nữa")
    );
    press(&c, "Enter").await;
    let refused = api
        .post(
            "/api/v1/counters/phong-13/cancel",
            Some(&hoa),
            Some(json!({"reason": "Người đến đã về, không làm nữa"})),
        )
        .await;
    assert_eq!((refused.status, refused.code()), (409, "nothing_called"));
    let message = refused.body["error"]["message"].as_str().unwrap();
    console_says(&c, "the server's refusal", message).await;
    assert_eq!(
        c.js("return document.getElementById('msg').className")
            .await,
        "bad"
    );
    c.screenshot("console-refusal-1280x720.png").await;

    // Hold K001 (* 1, reason 2, ⏎): it leaves the sign and waits in the held list.
    press(&c, "Enter").await;
    c.until(
        "K001",
        "return document.getElementById('cur-num').textContent === 'K001'",
        WAIT,
    )
    .await;
    sign.until(
        "K001 on the sign",
        "return document.getElementById('num').textContent === 'K001'",
        WAIT,
    )
    .await;
    for k in ["*", "1", "2"] {
        press(&c, k).await;
    }
    assert!(c.text("#p-hold").await.contains("Tạm giữ số K001"));
    press(&c, "Enter").await;
    console_says(
        &c,
        "held",
        "Đã tạm giữ số K001: Đi sao chụp (photo) giấy tờ",
    )
    .await;
    c.until(
        "held list",
        "return document.querySelector('#held li[data-number=K001]')?.textContent.includes('Đi sao chụp')",
        WAIT,
    )
    .await;
    assert_eq!(c.text("#cur-num").await, "—");
    sign.until(
        "held is not served, but kept",
        "return document.getElementById('num').textContent === '—'
           && document.getElementById('held').textContent === 'Đang giữ chỗ: K001'",
        WAIT,
    )
    .await;
    sign.screenshot("counter-held-1280x720.png").await;
    let t = api.get(&ticket(0), None).await.body;
    assert_eq!(
        (t["status"].as_str(), t["reason"].as_str()),
        (Some("held"), Some("Đi sao chụp (photo) giấy tờ"))
    );
    c.screenshot("console-held-1280x720.png").await;
    // The phone of a held patient says why, in Vietnamese.
    let phone = Browser::phone(412, 915).await;
    phone.goto(&server.url(&format!("/t/{}", ids[0]))).await;
    phone
        .until(
            "held on the phone",
            "return document.getElementById('status').textContent === 'Số của bạn đang được tạm giữ tại Phòng 13'",
            WAIT,
        )
        .await;
    assert_eq!(
        phone.text("#reason").await,
        "Lý do: Đi sao chụp (photo) giấy tờ"
    );

    // Resume it by typing its number on the keypad: 1, ⏎ calls K001.
    press(&c, "1").await;
    assert_eq!(
        c.js("return document.getElementById('cl-num').value").await,
        "K001"
    );
    press(&c, "Enter").await;
    c.until(
        "resumed",
        "return document.getElementById('cur-num').textContent === 'K001'",
        WAIT,
    )
    .await;
    c.until(
        "held list empty",
        "return !document.querySelector('#held li[data-number]')",
        WAIT,
    )
    .await;
    sign.until(
        "back on the sign",
        "return document.getElementById('num').textContent === 'K001'
           && document.getElementById('held').textContent === ''",
        WAIT,
    )
    .await;

    // No-show (−), then bring K001 back to the front (* 2 ⏎): called next, before K002.
    press(&c, "-").await;
    c.until(
        "no-show list",
        "return !!document.querySelector('#noshows li[data-number=K001]')",
        WAIT,
    )
    .await;
    for k in ["*", "2"] {
        press(&c, k).await;
    }
    assert_eq!(
        c.js("return [document.getElementById('rq-num').value, document.getElementById('rq-front').checked]")
            .await,
        json!(["K001", true]),
        "the latest no-show, to the front"
    );
    press(&c, "Enter").await;
    console_says(&c, "requeued", "Đã xếp lại vào hàng số K001").await;
    let t = api.get(&ticket(0), None).await.body;
    assert_eq!(
        (t["status"].as_str(), t["position"].as_u64()),
        (Some("waiting"), Some(1))
    );
    press(&c, "Enter").await;
    c.until(
        "K001 first",
        "return document.getElementById('cur-num').textContent === 'K001'",
        WAIT,
    )
    .await;

    // Cancel the called K001 (* 3, reason 4, ⏎, ⏎).
    for k in ["*", "3", "4", "Enter"] {
        press(&c, k).await;
    }
    assert!(c.text("#confirm-text").await.starts_with("Huỷ số K001?"));
    c.screenshot("console-cancel-confirm-1280x720.png").await;
    press(&c, "Enter").await;
    console_says(&c, "cancelled", "Đã huỷ số K001").await;
    let t = api.get(&ticket(0), None).await.body;
    assert_eq!(
        (t["status"].as_str(), t["reason"].as_str()),
        (Some("cancelled"), Some("Không đủ điều kiện tiếp nhận"))
    );
    phone
        .until(
            "cancelled on the phone",
            "return document.getElementById('status').textContent === 'Số này đã bị huỷ'",
            WAIT,
        )
        .await;
    assert_eq!(
        phone.text("#reason").await,
        "Lý do: Không đủ điều kiện tiếp nhận"
    );
    phone.screenshot("ticket-cancelled-412x915.png").await;
    phone.close().await;

    // Cancel a waiting number by typing it: 3, * 3, reason 2, ⏎, ⏎ cancels K003.
    for k in ["3", "*", "3", "2", "Enter"] {
        press(&c, k).await;
    }
    assert!(c.text("#confirm-text").await.starts_with("Huỷ số K003?"));
    press(&c, "Enter").await;
    console_says(&c, "K003 cancelled", "Đã huỷ số K003").await;
    assert_eq!(api.get(&ticket(2), None).await.body["status"], "cancelled");
    assert_eq!(c.text("#cur-num").await, "—", "the counter is free");
    press(&c, "Enter").await;
    c.until(
        "K002, then K004",
        "return document.getElementById('cur-num').textContent === 'K002'",
        WAIT,
    )
    .await;

    // Reprint K002 at the hall's kiosk (* 4). The server's print route
    // (rule 88) may refuse while that kiosk is away, or be missing from this
    // build: whatever it answers, the console shows its words, and it asks
    // for the right ticket, kiosk and a request id that a retry repeats.
    for k in ["*", "4"] {
        press(&c, k).await;
    }
    c.until(
        "print panel",
        "return document.getElementById('p-print').classList.contains('open')
           && !document.getElementById('pr-kiosk').classList.contains('hidden')",
        WAIT,
    )
    .await;
    assert_eq!(c.text("#pr-num").await, "K002");
    c.fill("#pr-kiosk", "kiosk-sanh-a").await;
    c.screenshot("console-reprint-1280x720.png").await;
    // Note each request the page makes (it still goes to the server).
    c.js("window.sent = []; const f = window.fetch;
          window.fetch = (url, o) => { window.sent.push({url: String(url), method: o.method, body: o.body ?? null}); return f(url, o); };")
        .await;
    press(&c, "Enter").await;
    let answer = api
        .post(
            &format!("{}/print", ticket(1)),
            Some(&hoa),
            Some(json!({"kiosk": "kiosk-sanh-a", "request_id": "screens-reprint"})),
        )
        .await;
    assert!(
        answer.status >= 400,
        "the kiosk is not connected: {}",
        answer.text
    );
    let message = answer.body["error"]["message"].as_str().unwrap();
    let refusal = format!("Không in lại được: {message}");
    console_says(&c, "the print refusal", &refusal).await;
    c.screenshot("console-reprint-refused-1280x720.png").await;
    // Asked again, the same request: never two prints of one press.
    press(&c, "Enter").await;
    let sent = c
        .until(
            "two print requests",
            "return window.sent.length === 2 ? window.sent : null",
            WAIT,
        )
        .await;
    let mut request_ids = vec![];
    for r in sent.as_array().unwrap() {
        assert_eq!(r["method"], "POST");
        assert_eq!(r["url"], format!("/api/v1/tickets/{}/print", ids[1]));
        let body: serde_json::Value = serde_json::from_str(r["body"].as_str().unwrap()).unwrap();
        assert_eq!(body["kiosk"], "kiosk-sanh-a");
        assert_eq!(body.as_object().unwrap().len(), 2, "{body}");
        request_ids.push(body["request_id"].as_str().unwrap().to_string());
    }
    assert!(!request_ids[0].is_empty());
    assert_eq!(
        request_ids[0], request_ids[1],
        "a retry repeats its request id"
    );
    console_says(&c, "the print refusal again", &refusal).await;
    c.close().await;
    sign.close().await;
}
