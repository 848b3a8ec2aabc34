//! The screens of contract §11 in a real headless Chromium against a real
//! server: the board says "Còn N số" and then "HẾT SỐ" for a capped service
//! as it fills, live, and marks a service that takes bookings only; a
//! booking's page on a phone shows its time, its check-in window and a QR
//! code a scanner reads as the booking's own address; the staff console
//! checks a booking in by its 8-digit code from the keypad and explains each
//! refusal in Vietnamese; the phone then shows the number and leads to the
//! ticket's page, which keeps the booking's time; the admin page counts the
//! day's bookings by session.
//!
//! The server's clock is put at 06:45 site time (`LUOT_CLOCK_OFFSET_S`), a
//! quarter of an hour before the morning session, so bookings for 07:00 can
//! be made and checked in and those for 07:30 are too early, whatever the
//! real time.

#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use chrono::{NaiveDate, Utc};
use luot_tests::booking::{damm, site_tz};
use luot_tests::browser::Browser;
use luot_tests::*;
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(15);

/// The offset that puts the server's clock at the next 06:45 site time (at
/// least a minute away), and that day.
fn clock_at_six_forty_five() -> (i64, NaiveDate) {
    let now = Utc::now().with_timezone(&site_tz());
    let mut day = now.date_naive();
    loop {
        let at = day
            .and_hms_opt(6, 45, 0)
            .unwrap()
            .and_local_timezone(site_tz())
            .unwrap();
        let offset = at.timestamp() - now.timestamp();
        if offset > 60 {
            return (offset, day);
        }
        day = day.succ_opt().unwrap();
    }
}

/// A hospital with sessions and caps (§11): `kham-noi` takes bookings in
/// its morning session (18 places in 30-minute slots from 07:00, 2 each),
/// `tiem-chung` gives 3 numbers a day, `kham-hen` sees booked patients only.
fn booking_site() -> Site {
    Site::new(&format!(
        r#"
[site]
name = "Bệnh viện Thử nghiệm"
timezone = "Asia/Ho_Chi_Minh"
day_starts_at = "05:00"
public_url = "http://luot.test"

[server]
listen = "127.0.0.1:0"
data_dir = "unused"

[appointments]
book_ahead_days = 14
checkin_early_min = 30
checkin_late_min = 15

[[services]]
id = "kham-noi"
name = "Khám Nội"
prefix = "A"
digits = 3
sessions = [
  {{ id = "sang", start = "07:00", end = "11:30", cap = 200, appointment_quota = 18, slot_minutes = 30 }},
]

[[services]]
id = "tiem-chung"
name = "Tiêm chủng"
prefix = "T"
digits = 3
daily_cap = 3

[[services]]
id = "kham-hen"
name = "Khám theo hẹn"
prefix = "H"
digits = 3
walk_ins = "none"
sessions = [
  {{ id = "sang", start = "07:00", end = "11:30", cap = 100, appointment_quota = 50, slot_minutes = 30 }},
]

[[counters]]
id = "quay-1"
name = "Quầy 1"
services = ["kham-noi", "kham-hen"]

[[counters]]
id = "quay-2"
name = "Quầy 2"
services = ["tiem-chung"]

[[devices]]
id = "kiosk-sanh-a"
role = "kiosk"
token_sha256 = "{k1}"
services = ["kham-noi", "tiem-chung", "kham-hen"]

[[devices]]
id = "tv-sanh"
role = "display"
token_sha256 = "{d}"

[[users]]
username = "le.thu"
role = "staff"
password_hash = "{h}"
counters = ["quay-1"]

[[users]]
username = "admin"
role = "admin"
password_hash = "{h}"
"#,
        k1 = sha(KIOSK_TOKEN),
        d = sha(DISPLAY_TOKEN),
        h = luot_server::auth::hash_password(PASSWORD),
    ))
}

/// The site's server with its clock at 06:45, and that day.
fn start_at_six_forty_five(site: &Site) -> (Server, NaiveDate) {
    let (offset, day) = clock_at_six_forty_five();
    let server = Server::start(
        &site.config(),
        &site.data(),
        &[("LUOT_CLOCK_OFFSET_S", &offset.to_string())],
    );
    (server, day)
}

/// A script returning the text of the first element matching `css`, or "".
fn text_js(css: &str) -> String {
    format!("return document.querySelector({css:?})?.textContent ?? ''")
}

/// Presses a key of the staff's numeric keypad on the console.
async fn press(b: &Browser, key: &str) {
    b.js(&format!(
        "document.dispatchEvent(new KeyboardEvent('keydown', {{key: {key:?}, bubbles: true, cancelable: true}}))"
    ))
    .await;
}

/// Waits until the console's message reads `text` exactly.
async fn console_says(b: &Browser, what: &str, text: &str) {
    let t0 = Instant::now();
    loop {
        let now = b.text("#msg").await;
        if now == text {
            return;
        }
        assert!(
            t0.elapsed() < WAIT,
            "{what}: the console says {now:?}, not {text:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn the_board_says_het_so_once_a_capped_service_is_full() {
    let site = booking_site();
    let (server, _) = start_at_six_forty_five(&site);
    let api = Api::new(&server);
    let b = Browser::start(1920, 1080).await;
    b.goto(&server.url(&format!("/board#token={DISPLAY_TOKEN}")))
        .await;
    b.until(
        "a capped service with few numbers left",
        "return document.querySelector('[data-service=tiem-chung] .cap')?.textContent === 'Còn 3 số'",
        WAIT,
    )
    .await;
    // An uncapped service says nothing of capacity; one that takes
    // bookings only says so.
    assert_eq!(
        b.js("return document.querySelector('[data-service=kham-noi] .cap')")
            .await,
        Value::Null
    );
    assert_eq!(
        b.js(&text_js("[data-service=kham-hen] .note")).await,
        "Chỉ nhận lịch hẹn"
    );

    // The page is never reloaded from here on: the mark stays.
    b.js("window.sameBoard = true").await;
    for i in 0..2 {
        let a = api.issue(KIOSK_TOKEN, "tiem-chung", &format!("t{i}")).await;
        assert_eq!(a.status, 201, "{}", a.text);
    }
    b.until(
        "one number left",
        "return document.querySelector('[data-service=tiem-chung] .cap')?.textContent === 'Còn 1 số'",
        WAIT,
    )
    .await;
    let a = api.issue(KIOSK_TOKEN, "tiem-chung", "t2").await;
    assert_eq!(a.status, 201, "{}", a.text);
    b.until(
        "HẾT SỐ",
        "return document.querySelector('[data-service=tiem-chung] .cap.full')?.textContent === 'HẾT SỐ'",
        WAIT,
    )
    .await;
    assert_eq!(b.js("return window.sameBoard === true").await, true);
    // It is true: the kiosk gets no fourth number.
    let refused = api.issue(KIOSK_TOKEN, "tiem-chung", "t3").await;
    assert_eq!(
        (refused.status, refused.code()),
        (409, "service_full"),
        "{}",
        refused.text
    );
    // Large enough to read across a waiting room: over 3% of the screen's height.
    let px = b
        .js("return parseFloat(getComputedStyle(document.querySelector('[data-service=tiem-chung] .cap')).fontSize)")
        .await
        .as_f64()
        .unwrap();
    assert!(px >= 32.0, "HẾT SỐ at {px} px on a 1080-line TV");
    // The waiting patients still see their turn coming.
    assert!(
        b.js(&text_js("[data-service=tiem-chung]"))
            .await
            .as_str()
            .unwrap()
            .contains("Đang chờ: 3")
    );
    b.screenshot("board-het-so-1920x1080.png").await;
    b.close().await;
}

/// Books `slot` (site time, e.g. "07:00") of `kham-noi` on `day` as the admin.
async fn book(api: &Api, admin: &str, day: NaiveDate, slot: &str, request_id: &str) -> Value {
    let a = api
        .post(
            "/api/v1/appointments",
            Some(admin),
            Some(json!({"service": "kham-noi", "slot_at": format!("{day}T{slot}:00+07:00"), "request_id": request_id})),
        )
        .await;
    assert_eq!(a.status, 201, "booking {slot}: {}", a.text);
    a.body
}

/// The QR code on the browser's screen, decoded.
async fn screen_qr(b: &Browser) -> Option<String> {
    let png = b.client.screenshot().await.expect("screenshot");
    let img = image::load_from_memory(&png).expect("png").to_luma8();
    luot_tests::escpos::qr(&img)
}

#[tokio::test]
async fn a_booking_is_shown_on_the_phone_and_checked_in_at_the_desk() {
    let site = booking_site();
    let (server, day) = start_at_six_forty_five(&site);
    let api = Api::new(&server);
    let admin = api.login("admin").await;
    let first = book(&api, &admin, day, "07:00", "bk-1").await;
    let later = book(&api, &admin, day, "07:30", "bk-2").await;
    let (id, code) = (
        first["id"].as_str().unwrap(),
        first["code"].as_str().unwrap(),
    );
    let dd_mm = day.format("%d/%m").to_string();

    // The patient opens the booking's link on a phone.
    let phone = Browser::phone(412, 915).await;
    phone.goto(&server.url(&format!("/a/{id}"))).await;
    phone
        .until(
            "the booking",
            "return document.getElementById('status').textContent === 'Đã đặt'",
            WAIT,
        )
        .await;
    assert_eq!(phone.text("#service").await, "Khám Nội");
    assert_eq!(phone.text("#when").await, format!("Hẹn 07:00 ngày {dd_mm}"));
    assert_eq!(
        phone.text("#window").await,
        "Mời đến quét mã từ 06:30 đến 07:15"
    );
    // Big enough for an elderly patient: nothing of it under 22 px.
    let smallest = phone
        .js("return Math.min(...['#service', '#when', '#status', '#window', '#qr-hint'].map(s => parseFloat(getComputedStyle(document.querySelector(s)).fontSize)))")
        .await
        .as_f64()
        .unwrap();
    assert!(smallest >= 22.0, "text at {smallest} px on the phone");
    // Its QR code is the booking's own address, as a scanner reads it.
    phone
        .until(
            "the QR code",
            "return document.querySelector('#qr svg path')?.getAttribute('d')",
            WAIT,
        )
        .await;
    assert_eq!(
        screen_qr(&phone).await.as_deref(),
        first["qr"].as_str(),
        "the QR code on the phone"
    );
    phone.screenshot("booking-412x915.png").await;

    // At the desk, Lê Thu checks bookings in from the keypad: '*' '6', the
    // code, Enter.
    let desk = Browser::start(1280, 720).await;
    desk.goto(&server.url("/console?counter=quay-1")).await;
    desk.fill("#u", "le.thu").await;
    desk.fill("#p", PASSWORD).await;
    desk.click("#login-btn").await;
    desk.until(
        "desk",
        "return document.getElementById('desk-title').textContent.startsWith('Quầy 1')",
        WAIT,
    )
    .await;
    let type_code = async |keys: &[&str], code: &str| {
        for k in keys {
            press(&desk, k).await;
        }
        for d in code.chars() {
            press(&desk, &d.to_string()).await;
        }
        press(&desk, "Enter").await;
    };

    // The 07:30 booking opens at 07:00.
    type_code(&["*", "6"], later["code"].as_str().unwrap()).await;
    console_says(
        &desk,
        "too early",
        "Chưa đến giờ nhận lịch hẹn: mời quay lại lúc 07:00",
    )
    .await;
    // A mistyped digit fails the check digit; a well-formed code of no booking is unknown.
    let last = code.chars().last().unwrap().to_digit(10).unwrap();
    let typo = format!("{}{}", &code[..7], (last + 1) % 10);
    press(&desk, "-").await;
    type_code(&["#"], &typo).await;
    console_says(
        &desk,
        "bad code",
        "Mã lịch hẹn không đúng: hãy xem lại 8 chữ số",
    )
    .await;
    press(&desk, "-").await;
    let stranger = if code.starts_with("1234567") {
        "7654321"
    } else {
        "1234567"
    };
    type_code(&["#"], &format!("{stranger}{}", damm(stranger))).await;
    console_says(&desk, "unknown code", "Không tìm thấy lịch hẹn có mã này").await;
    press(&desk, "-").await;

    // The 07:00 booking is in its window: a ticket, numbered as any.
    type_code(&["*", "6"], code).await;
    console_says(&desk, "checked in", "Đã nhận lịch hẹn: số A001 · Khám Nội").await;
    desk.screenshot("console-checked-in-1280x720.png").await;
    assert_eq!(
        desk.js("return document.getElementById('p-checkin').classList.contains('open')")
            .await,
        false,
        "the panel closes once done"
    );
    // Twice is refused with the number it already has.
    type_code(&["*", "6"], code).await;
    console_says(&desk, "already", "Lịch hẹn này đã lấy số A001").await;
    press(&desk, "-").await;

    // The phone follows without a reload: the number, no QR code, a link to the ticket.
    phone
        .until(
            "checked in on the phone",
            "return document.getElementById('status').textContent === 'Đã lấy số'",
            WAIT,
        )
        .await;
    phone
        .until(
            "the number",
            "return document.getElementById('num').textContent === 'A001'",
            WAIT,
        )
        .await;
    phone.screenshot("booking-checked-in-412x915.png").await;
    assert_eq!(
        phone
            .js("return getComputedStyle(document.getElementById('qr')).display")
            .await,
        "none"
    );
    let ticket = api
        .get(&format!("/api/v1/appointments/{id}"), Some(&admin))
        .await;
    let ticket_id = ticket.body["ticket"].as_str().unwrap().to_string();
    assert_eq!(
        phone
            .js("return document.getElementById('go').getAttribute('href')")
            .await,
        format!("/t/{ticket_id}")
    );
    phone.click("#go").await;
    phone
        .until(
            "the ticket page",
            "return document.getElementById('num').textContent === 'A001'",
            WAIT,
        )
        .await;
    phone
        .until(
            "the booking's time",
            "return document.getElementById('appt').textContent === 'Hẹn 07:00'",
            WAIT,
        )
        .await;

    // A cancelled booking says so and offers nothing to scan.
    let cancelled = api
        .post(
            &format!(
                "/api/v1/appointments/{}/cancel",
                later["id"].as_str().unwrap()
            ),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(cancelled.status, 200, "{}", cancelled.text);
    phone
        .goto(&server.url(&format!("/a/{}", later["id"].as_str().unwrap())))
        .await;
    phone
        .until(
            "cancelled",
            "return document.getElementById('status').textContent === 'Đã huỷ'",
            WAIT,
        )
        .await;
    assert_eq!(
        phone
            .js("return getComputedStyle(document.getElementById('qr')).display")
            .await,
        "none"
    );
    assert_eq!(screen_qr(&phone).await, None, "nothing to scan");
    phone.close().await;

    // The admin page counts the day's bookings by session: of Khám Nội's
    // 18 places, 1 booked (not cancelled) and checked in, 1 cancelled;
    // Khám theo hẹn's 9 slots of ceil(50 / 9) = 6 (rule 76's default), none.
    desk.goto(&server.url("/admin")).await;
    desk.fill("#u", "admin").await;
    desk.fill("#p", PASSWORD).await;
    desk.click("#login button").await;
    let row = desk
        .until(
            "the bookings table",
            "const r = [...document.querySelectorAll('#bookings tbody tr')].map(tr => [...tr.children].map(td => td.textContent)); return r.length ? r : null",
            WAIT,
        )
        .await;
    assert_eq!(
        row,
        json!([
            [
                "Khám Nộikham-noi",
                "Sáng",
                "07:00–11:30",
                "18",
                "1",
                "1",
                "0",
                "1",
                "0",
                "Đang nhận"
            ],
            [
                "Khám theo hẹnkham-hen",
                "Sáng",
                "07:00–11:30",
                "54",
                "0",
                "0",
                "0",
                "0",
                "0",
                "Đang nhận"
            ]
        ])
    );
    desk.close().await;
}

/// The booking page draws its QR code itself (display/assets/qr.js): codes
/// of every size it may need, from a short address to 200 bytes (versions
/// 1 to 10, those from 7 on with version blocks), each read back by a
/// decoder from the screen.
#[tokio::test]
async fn the_booking_pages_qr_codes_read_back_at_every_size() {
    let site = Site::hospital();
    let server = site.start();
    let b = Browser::start(1000, 800).await;
    b.goto(&server.url("/a/ap_none")).await;
    b.until("qr.js", "return typeof Qr === 'object'", WAIT)
        .await;
    let base = "https://benh-vien.example.vn/a/ap_";
    // The most each version holds at level M, then 200 bytes (version 10).
    for (v, len) in [14, 26, 42, 62, 84, 106, 122, 152, 180, 200]
        .into_iter()
        .enumerate()
    {
        let text: String = base
            .chars()
            .chain("0123456789abcdefghijkmnpqrstuvwxyz".chars().cycle())
            .take(len)
            .collect();
        let modules = b
            .js(&format!(
                "const s = Qr.svg({text:?}); s.style.cssText = 'display:block;width:720px;height:720px';
                 document.body.replaceChildren(s); document.body.style.padding = '20px';
                 return Qr.matrix({text:?}).length"
            ))
            .await;
        let version = (modules.as_u64().unwrap() - 17) / 4;
        assert_eq!(
            version,
            v as u64 + 1,
            "the smallest version that holds {len} bytes"
        );
        assert_eq!(
            screen_qr(&b).await.as_deref(),
            Some(text.as_str()),
            "{len} bytes in version {version}"
        );
    }
    b.close().await;
}

/// The kiosk's touch page (a kiosk with a screen) in headless Chromium: a
/// booking's code typed on its keypad checks it in and prints the ticket,
/// the page says the number; a code the site never gave is refused with
/// rule 84's headline.
#[tokio::test]
async fn a_booking_code_typed_on_the_kiosks_touch_page_checks_it_in() {
    use luot_tests::booking::{INTEGRATION_TOKEN, at, booking_site_toml, days_ahead, offset_to};
    let site = Site::new(&booking_site_toml());
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
    let body = json!({"service": "kham-noi", "slot_at": at(day, 7, 30), "request_id": "t1"});
    let b = api
        .post("/api/v1/appointments", Some(INTEGRATION_TOKEN), Some(body))
        .await;
    assert_eq!(b.status, 201, "{}", b.text);
    let code = b.body["code"].as_str().unwrap().to_string();
    server.kill9();
    let server = start(7, 20);
    let api = Api::new(&server);
    // A kiosk with a touch screen and no buttons, printing to a file.
    let touch = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let out = site.dir.path().join("printer.bin");
    let toml = format!(
        "[server]\nurl = \"{}\"\ntoken = \"{KIOSK_TOKEN}\"\n\n[printer]\ntarget = \"file:{}\"\npaper_mm = 80\n\n\
         [touch]\nenabled = true\nlisten = \"{touch}\"\n\n[state]\ndir = \"{}\"\n",
        server.url(""),
        out.display(),
        site.dir.path().join("kiosk").display()
    );
    let cfg = site.dir.path().join("kiosk.toml");
    std::fs::write(&cfg, toml).unwrap();
    let mut kiosk = std::process::Command::new(binary("luot-kiosk"))
        .arg("--config")
        .arg(&cfg)
        .env("RUST_LOG", "info")
        .stderr(std::fs::File::create(site.dir.path().join("kiosk.log")).unwrap())
        .spawn()
        .unwrap();
    let b = Browser::start(1080, 1920).await;
    let url = format!("http://{touch}/");
    let t0 = Instant::now();
    loop {
        if reqwest::get(&url).await.is_ok() {
            break;
        }
        assert!(t0.elapsed() < WAIT, "the touch page did not come up");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    b.goto(&url).await;
    b.until(
        "the kiosk's buttons",
        "return document.getElementById('buttons').dataset.n > 0",
        WAIT,
    )
    .await;
    let type_code = |digits: String| {
        let keys: Vec<usize> = digits
            .bytes()
            .map(|d| if d == b'0' { 10 } else { usize::from(d - b'1') })
            .collect();
        format!(
            "openPad(); const k = document.querySelectorAll('#keys button'); \
             for (const i of {keys:?}) k[i].click(); document.getElementById('go').click(); return true;"
        )
    };
    // A code with a valid check digit that no booking has.
    let unknown = format!("1234567{}", damm("1234567"));
    let unknown = if unknown == code {
        format!("7654321{}", damm("7654321"))
    } else {
        unknown
    };
    b.js(&type_code(unknown)).await;
    let said = b
        .until(
            "the refusal",
            "const h = document.getElementById('msgh').textContent; return h.includes('KHÔNG TÌM THẤY') ? h : null",
            WAIT,
        )
        .await;
    assert_eq!(said, "KHÔNG TÌM THẤY LỊCH HẸN");
    // The page takes a touch again once the message has gone (5 s).
    b.until(
        "the page free again",
        "return getComputedStyle(document.getElementById('msg')).display === 'none'",
        Duration::from_secs(20),
    )
    .await;
    b.js(&type_code(code)).await;
    let msg = b
        .until(
            "the number",
            "const t = document.getElementById('msgt').textContent; return t.startsWith('Mời lấy phiếu số') ? t : null",
            WAIT,
        )
        .await;
    let list = api
        .get(
            &format!("/api/v1/appointments?day={day}"),
            Some(INTEGRATION_TOKEN),
        )
        .await;
    let booking = &list.body["appointments"][0];
    assert_eq!(booking["status"], "checked_in", "{}", list.text);
    let ticket = api
        .get(
            &format!("/api/v1/tickets/{}", booking["ticket"].as_str().unwrap()),
            None,
        )
        .await;
    let number = ticket.body["number"].as_str().unwrap();
    assert_eq!(msg, format!("Mời lấy phiếu số {number}"));
    // One refusal slip and the ticket went to the printer.
    let t0 = Instant::now();
    let pages = loop {
        let bytes = std::fs::read(&out).unwrap_or_default();
        let pages = luot_tests::escpos::read(&bytes).unwrap_or_default();
        if pages.len() >= 2 || t0.elapsed() > WAIT {
            break pages;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(pages.len(), 2, "a slip and the ticket");
    let qr = luot_tests::escpos::qr(&pages[1].image()).expect("the ticket's QR code");
    assert!(qr.ends_with(ticket.body["id"].as_str().unwrap()), "{qr}");
    b.close().await;
    let _ = kiosk.kill();
    let _ = kiosk.wait();
}
