//! The screens in a real headless Chromium against a real server: a staff
//! call shows on the board and the counter sign, a recall flashes again, the
//! board recovers from a server restart, announcements play in order without
//! overlap, the console keeps staff to their counters, and the ticket page
//! follows the queue live and takes one rating.

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
    let b = Browser::start(412, 915).await; // a phone
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
    assert!(svc.as_str().unwrap().starts_with("kham-noi1"), "{svc}");
    assert!(
        svc.as_str().unwrap().contains("4.00 (1)"),
        "rating in the report: {svc}"
    );
    b.screenshot("admin.png").await;
    b.close().await;
}
