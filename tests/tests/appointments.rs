//! Contract §11 end to end with the real server: bookings over HTTP by an
//! integration, check-in by code and by the booking's id, the ticket placed
//! at its slot (rule 79), windows and expiry, caps and walk-in rules, the
//! per-person limit, a kill -9 in the middle of a morning of bookings, and
//! the privacy of a citizen's identity (rule 81).
//!
//! The server's clock is moved with `LUOT_CLOCK_OFFSET_S` (rule 76) to set
//! times on a day `D` a few days ahead; a restart with another offset moves
//! the morning on.

#![allow(clippy::unwrap_used)] // tests may panic on a broken server

use std::path::Path;

use chrono::{Duration as Days, NaiveDate};
use luot_tests::booking::{
    INTEGRATION_TOKEN, at, booking_site_toml, code_ok, days_ahead, offset_to,
};
use luot_tests::*;
use serde_json::{Value, json};

/// A test citizen: never to be found in a file, a log or a report.
const ID_NUMBER: &str = "001099012345";
const BIRTH: &str = "1950-03-01";
const OTHER_ID: &str = "079203004567";

/// A day a few days ahead of today, so every test's day is new to it.
fn day_d() -> NaiveDate {
    days_ahead(3)
}

fn start_at(site: &Site, day: NaiveDate, hh: u32, mm: u32) -> Server {
    Server::start(
        &site.config(),
        &site.data(),
        &[("LUOT_CLOCK_OFFSET_S", &offset_to(day, hh, mm).to_string())],
    )
}

async fn book(api: &Api, slot_at: &str, request_id: &str, extra: Value) -> Answer {
    let mut body = json!({"service": "kham-noi", "slot_at": slot_at, "request_id": request_id});
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        b.extend(e.clone());
    }
    api.post("/api/v1/appointments", Some(INTEGRATION_TOKEN), Some(body))
        .await
}

async fn check_in(api: &Api, token: &str, body: Value) -> Answer {
    api.post("/api/v1/appointments/check-in", Some(token), Some(body))
        .await
}

/// A code that fails Damm's check: the last digit changed.
fn typo(code: &str) -> String {
    let last = code.as_bytes()[7] - b'0';
    format!("{}{}", &code[..7], (last + 1) % 10)
}

#[tokio::test]
async fn a_morning_of_bookings_survives_kill_9_and_check_in_places_at_the_slot() {
    let site = Site::new(&booking_site_toml());
    let d = day_d();
    // 06:40: bookings for the morning session (check-in not open yet).
    let mut server = start_at(&site, d, 6, 40);
    let api = Api::new(&server);
    let b1 = book(&api, &at(d, 7, 30), "b1", json!({"external_ref": "HIS-1"})).await;
    assert_eq!(b1.status, 201, "{}", b1.text);
    let a1 = b1.body.clone();
    let code = a1["code"].as_str().unwrap().to_string();
    assert_eq!(code.len(), 8);
    assert!(code_ok(&code), "a code with a valid Damm digit: {code}");
    let id = a1["id"].as_str().unwrap().to_string();
    assert!(id.starts_with("ap_"), "{id}");
    assert_eq!(a1["qr"], format!("http://luot.test/a/{id}"));
    assert_eq!(a1["status"], "booked");
    assert_eq!(a1["session"], "sang");
    assert_eq!(a1["day"], d.to_string());
    assert_eq!(a1["booked_by"], "cong-dat-lich");
    assert_eq!(a1["identity"], false);
    assert_eq!(a1["external_ref"], "HIS-1");
    assert_eq!(a1["checkin_opens_at"], at(d, 7, 0));
    assert_eq!(a1["checkin_closes_at"], at(d, 7, 45));
    // The same request again: the same booking; with a field changed: 409.
    let again = book(&api, &at(d, 7, 30), "b1", json!({"external_ref": "HIS-1"})).await;
    assert_eq!((again.status, &again.body["id"]), (200, &a1["id"]));
    let changed = book(&api, &at(d, 8, 0), "b1", json!({"external_ref": "HIS-1"})).await;
    assert_eq!((changed.status, changed.code()), (409, "request_id_reused"));
    // Bookings fill a slot (capacity 3), then slot_full.
    let b2 = book(&api, &at(d, 7, 30), "b2", json!({})).await;
    let b3 = book(&api, &at(d, 7, 30), "b3", json!({})).await;
    assert_eq!(
        (b2.status, b3.status),
        (201, 201),
        "{} {}",
        b2.text,
        b3.text
    );
    let full = book(&api, &at(d, 7, 30), "b4", json!({})).await;
    assert_eq!((full.status, full.code()), (409, "slot_full"));
    // Not a slot; a day beyond book_ahead_days.
    let odd = book(&api, &at(d, 7, 10), "b5", json!({})).await;
    assert_eq!((odd.status, odd.code()), (404, "unknown_slot"));
    let far = d.checked_add_signed(Days::days(20)).unwrap();
    let late = book(&api, &at(far, 7, 30), "b6", json!({})).await;
    assert_eq!((late.status, late.code()), (409, "booking_closed"));
    // b2 is cancelled (twice: the same answer).
    let b2_id = b2.body["id"].as_str().unwrap().to_string();
    for _ in 0..2 {
        let c = api
            .post(
                &format!("/api/v1/appointments/{b2_id}/cancel"),
                Some(INTEGRATION_TOKEN),
                None,
            )
            .await;
        assert_eq!((c.status, &c.body["status"]), (200, &json!("cancelled")));
    }
    // Too early to check in: the answer says when it opens.
    let kiosk = KIOSK_TOKEN;
    let early = check_in(&api, kiosk, json!({"code": code, "request_id": "k1"})).await;
    assert_eq!((early.status, early.code()), (409, "too_early"));
    assert_eq!(early.body["error"]["checkin_opens_at"], at(d, 7, 0));
    // The slots say what is booked.
    let slots = api
        .get(
            &format!("/api/v1/appointments/slots?service=kham-noi&day={d}"),
            Some(INTEGRATION_TOKEN),
        )
        .await;
    assert_eq!(slots.status, 200, "{}", slots.text);
    let sang = &slots.body["sessions"][0];
    assert_eq!((&sang["id"], &sang["open"]), (&json!("sang"), &json!(true)));
    let s730 = sang["slots"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["at"] == at(d, 7, 30))
        .expect("the 07:30 slot");
    assert_eq!((&s730["capacity"], &s730["booked"]), (&json!(3), &json!(2)));
    assert_eq!(slots.body["sessions"][1]["slots"], json!([]));

    // kill -9 right after the answers: nothing acknowledged is lost.
    server.kill9();
    let mut server = start_at(&site, d, 7, 10);
    let api = Api::new(&server);
    let list = api
        .get(
            &format!("/api/v1/appointments?day={d}"),
            Some(INTEGRATION_TOKEN),
        )
        .await;
    assert_eq!(list.status, 200, "{}", list.text);
    let listed: Vec<&Value> = list.body["appointments"]
        .as_array()
        .unwrap()
        .iter()
        .collect();
    assert_eq!(listed.len(), 3, "b1, b2 (cancelled), b3: {}", list.text);
    assert_eq!(listed[0]["id"], a1["id"], "by slot, then by creation");
    assert_eq!(
        listed.iter().filter(|a| a["status"] == "cancelled").count(),
        1
    );
    // Two walk-ins at 07:10 (before the slot).
    let w1 = api.issue(kiosk, "kham-noi", "w1").await;
    let w2 = api.issue(kiosk, "kham-noi", "w2").await;
    assert_eq!((w1.status, w2.status), (201, 201), "{}", w1.text);
    server.kill9();

    // 07:35: b1 checks in by code; a walk-in comes after it.
    let mut server = start_at(&site, d, 7, 35);
    let api = Api::new(&server);
    let bad = check_in(
        &api,
        kiosk,
        json!({"code": typo(&code), "request_id": "k2"}),
    )
    .await;
    assert_eq!(bad.status, 400, "a code failing Damm's check: {}", bad.text);
    let number = check_in(&api, kiosk, json!({"code": 40817269, "request_id": "k3"})).await;
    assert_eq!(
        number.status, 400,
        "a code as a JSON number: {}",
        number.text
    );
    let t = check_in(&api, kiosk, json!({"code": code, "request_id": "k4"})).await;
    assert_eq!(t.status, 201, "{}", t.text);
    assert_eq!(t.body["appointment"], a1["id"]);
    assert_eq!(t.body["service"], "kham-noi");
    assert_eq!(t.body["external_ref"], Value::Null, "kiosks never see it");
    let replay = check_in(&api, kiosk, json!({"code": code, "request_id": "k4"})).await;
    assert_eq!((replay.status, &replay.body["id"]), (200, &t.body["id"]));
    let twice = check_in(&api, kiosk, json!({"code": code, "request_id": "k5"})).await;
    assert_eq!((twice.status, twice.code()), (409, "already_checked_in"));
    assert_eq!(twice.body["error"]["number"], t.body["number"]);
    let cancelled = check_in(
        &api,
        kiosk,
        json!({"appointment": b2_id, "request_id": "k6"}),
    )
    .await;
    assert_eq!(
        (cancelled.status, cancelled.code()),
        (409, "appointment_cancelled")
    );
    let staff_view = api
        .get(
            &format!("/api/v1/appointments/{id}"),
            Some(&api.login("admin").await),
        )
        .await;
    assert_eq!(staff_view.body["status"], "checked_in");
    assert_eq!(staff_view.body["ticket"], t.body["id"]);
    let w3 = api.issue(kiosk, "kham-noi", "w3").await;
    assert_eq!(w3.status, 201);
    // Rule 79: 07:10, 07:10, the 07:30 booking, then the 07:35 walk-in.
    let staff = api.login("le.thu").await;
    let mut called = vec![];
    for _ in 0..4 {
        let n = api
            .post("/api/v1/counters/quay-1/next", Some(&staff), None)
            .await;
        assert_eq!(n.status, 200, "{}", n.text);
        called.push(n.body["number"].as_str().unwrap().to_string());
    }
    let num = |a: &Answer| a.body["number"].as_str().unwrap().to_string();
    assert_eq!(called, vec![num(&w1), num(&w2), num(&t), num(&w3)]);
    server.kill9();

    // 07:50: b3's check-in window (07:00–07:45) has closed: it expired at start.
    let server = start_at(&site, d, 7, 50);
    let api = Api::new(&server);
    let b3_id = b3.body["id"].as_str().unwrap();
    let gone = check_in(
        &api,
        kiosk,
        json!({"appointment": b3_id, "request_id": "k7"}),
    )
    .await;
    assert_eq!((gone.status, gone.code()), (409, "appointment_expired"));
    let view = api
        .get(
            &format!("/api/v1/appointments/{b3_id}"),
            Some(INTEGRATION_TOKEN),
        )
        .await;
    assert_eq!(view.body["status"], "expired");
}

#[tokio::test]
async fn caps_walk_in_rules_and_the_person_limit() {
    let site = Site::new(&booking_site_toml());
    let d = day_d();
    let server = start_at(&site, d, 9, 0);
    let api = Api::new(&server);
    let kiosk = KIOSK_TOKEN;
    // mot-cua: three a day, then service_full with no later session.
    for i in 0..3 {
        let a = api.issue(kiosk, "mot-cua", &format!("m{i}")).await;
        assert_eq!(a.status, 201, "{}", a.text);
    }
    let full = api.issue(kiosk, "mot-cua", "m3").await;
    assert_eq!((full.status, full.code()), (409, "service_full"));
    assert!(
        full.body["error"]
            .as_object()
            .unwrap()
            .contains_key("next_open_at"),
        "service_full always has next_open_at: {}",
        full.text
    );
    assert_eq!(full.body["error"]["next_open_at"], Value::Null);
    let site_info = api.get("/api/v1/site", None).await;
    let svc = |id: &str| {
        site_info.body["services"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["id"] == id)
            .cloned()
            .unwrap()
    };
    assert_eq!(svc("mot-cua")["remaining"], 0, "the board shows hết số");
    assert_eq!(svc("kham-ngoai")["remaining"], Value::Null, "uncapped");
    assert_eq!(svc("ho-tich")["walk_ins"], "priority");
    assert_eq!(svc("ho-tich")["identity"], "required");
    // Staff may still issue (it counts).
    let staff = api.login("admin").await;
    let s = api.issue(&staff, "mot-cua", "s1").await;
    assert_eq!(s.status, 201, "caps never refuse staff: {}", s.text);

    // ho-tich: a walk-in needs a priority class, then a CCCD.
    let plain = api.issue(kiosk, "ho-tich", "h1").await;
    assert_eq!((plain.status, plain.code()), (409, "appointment_required"));
    let pregnant = api
        .post(
            "/api/v1/tickets",
            Some(kiosk),
            Some(json!({"service": "ho-tich", "priority": "pregnant", "request_id": "h2"})),
        )
        .await;
    assert_eq!(
        (pregnant.status, pregnant.code()),
        (409, "identity_required")
    );
    // An 80-year-old's CCCD: the age class is derived, no class sent.
    let elder = json!({"id_number": ID_NUMBER, "birth_date": BIRTH});
    let issue_with = |rid: &str, service: &str, identity: &Value| json!({"service": service, "request_id": rid, "identity": identity});
    let e = api
        .post(
            "/api/v1/tickets",
            Some(kiosk),
            Some(issue_with("h3", "ho-tich", &elder)),
        )
        .await;
    assert_eq!(e.status, 201, "{}", e.text);
    assert_eq!(e.body["priority"], "age_75_plus");
    // Bad identities are 400s.
    for (bad, why) in [
        (
            json!({"id_number": "00109901234", "birth_date": BIRTH}),
            "11 digits",
        ),
        (
            json!({"id_number": ID_NUMBER, "birth_date": "1950-02-30"}),
            "no such date",
        ),
        (
            json!({"id_number": ID_NUMBER, "birth_date": "2999-01-01"}),
            "born later",
        ),
    ] {
        let r = api
            .post(
                "/api/v1/tickets",
                Some(kiosk),
                Some(issue_with("bad", "ho-tich", &bad)),
            )
            .await;
        assert_eq!(r.status, 400, "{why}: {}", r.text);
    }
    // The same person: three more holdings reach four, the fifth is refused,
    // at the kiosk and for the integration; someone else is not.
    for (i, svc) in ["kham-noi", "kham-noi", "ho-tich"].iter().enumerate() {
        let r = api
            .post(
                "/api/v1/tickets",
                Some(kiosk),
                Some(issue_with(&format!("p{i}"), svc, &elder)),
            )
            .await;
        assert_eq!(r.status, 201, "holding {}: {}", i + 2, r.text);
    }
    let fifth = api
        .post(
            "/api/v1/tickets",
            Some(kiosk),
            Some(issue_with("p9", "kham-noi", &elder)),
        )
        .await;
    assert_eq!((fifth.status, fifth.code()), (409, "person_limit"));
    let by_app = api
        .post(
            "/api/v1/tickets",
            Some(INTEGRATION_TOKEN),
            Some(issue_with("i9", "kham-noi", &elder)),
        )
        .await;
    assert_eq!((by_app.status, by_app.code()), (409, "person_limit"));
    let other = json!({"id_number": OTHER_ID, "birth_date": "1990-05-17"});
    let o = api
        .post(
            "/api/v1/tickets",
            Some(kiosk),
            Some(issue_with("o1", "kham-noi", &other)),
        )
        .await;
    assert_eq!(o.status, 201, "{}", o.text);
    assert_eq!(o.body["priority"], Value::Null, "35 years old: no class");
    // The integration books and issues only for its services.
    let outside = api
        .post(
            "/api/v1/tickets",
            Some(INTEGRATION_TOKEN),
            Some(json!({"service": "mot-cua", "request_id": "i1"})),
        )
        .await;
    assert_eq!(outside.status, 403, "{}", outside.text);
    drop(server);
    assert_private(site.dir.path(), &[]);
}

#[tokio::test]
async fn after_the_last_session_kiosk_walk_ins_are_closed() {
    let site = Site::new(&booking_site_toml());
    let d = day_d();
    let server = start_at(&site, d, 17, 0);
    let api = Api::new(&server);
    let r = api.issue(KIOSK_TOKEN, "kham-noi", "late").await;
    assert_eq!((r.status, r.code()), (409, "service_closed"));
    let staff = api.login("le.thu").await;
    let s = api.issue(&staff, "kham-noi", "staff-late").await;
    assert_eq!(s.status, 201, "staff tickets count in the last session");
    // Between the sessions: a kiosk walk-in counts in the afternoon one.
    drop(server);
    let server = start_at(&site, d, 12, 0);
    let api = Api::new(&server);
    let r = api.issue(KIOSK_TOKEN, "kham-noi", "noon").await;
    assert_eq!(r.status, 201, "{}", r.text);
}

#[tokio::test]
async fn an_identity_leaves_no_trace_in_files_logs_or_reports() {
    let site = Site::new(&booking_site_toml());
    let d = day_d();
    let server = start_at(&site, d, 6, 45);
    let api = Api::new(&server);
    let me = json!({"id_number": ID_NUMBER, "birth_date": BIRTH});
    let b = book(&api, &at(d, 7, 30), "pb1", json!({"identity": me})).await;
    assert_eq!(b.status, 201, "{}", b.text);
    assert_eq!(b.body["identity"], true);
    let t = api
        .post(
            "/api/v1/tickets",
            Some(KIOSK_TOKEN),
            Some(json!({"service": "kham-noi", "request_id": "pt1", "identity": me})),
        )
        .await;
    assert_eq!(t.status, 201, "{}", t.text);
    // A booking made with an identity needs the same person at a kiosk.
    drop(server);
    let server = start_at(&site, d, 7, 20);
    let api = Api::new(&server);
    let code = b.body["code"].as_str().unwrap();
    let none = check_in(&api, KIOSK_TOKEN, json!({"code": code, "request_id": "c1"})).await;
    assert_eq!((none.status, none.code()), (409, "identity_required"));
    let other = json!({"id_number": OTHER_ID, "birth_date": BIRTH});
    let wrong = check_in(
        &api,
        KIOSK_TOKEN,
        json!({"code": code, "request_id": "c2", "identity": other}),
    )
    .await;
    assert_eq!((wrong.status, wrong.code()), (409, "identity_mismatch"));
    let ok = check_in(
        &api,
        KIOSK_TOKEN,
        json!({"code": code, "request_id": "c3", "identity": me}),
    )
    .await;
    assert_eq!(ok.status, 201, "{}", ok.text);
    assert_eq!(ok.body["priority"], "age_75_plus");
    // Every report a site can download.
    let admin = api.login("admin").await;
    let mut reports = vec![];
    for path in ["/api/v1/reports/daily", "/api/v1/reports/visits"] {
        for format in ["json", "csv", "xlsx"] {
            let r = api
                .get(&format!("{path}?format={format}"), Some(&admin))
                .await;
            assert_eq!(r.status, 200, "{path} {format}");
            reports.push(r.text.into_bytes());
        }
    }
    let everything = api
        .get(&format!("/api/v1/appointments?day={d}"), Some(&admin))
        .await;
    reports.push(everything.text.into_bytes());
    drop(server);
    // The site's directory holds the data, both servers' logs and site.toml.
    assert_private(site.dir.path(), &reports);
}

/// Neither the test citizen's ID number nor birth date (in any usual
/// spelling) is in any file under `dir` (data, logs) or in `extra`.
fn assert_private(dir: &Path, extra: &[Vec<u8>]) {
    let needles: Vec<Vec<u8>> = [ID_NUMBER, BIRTH, "01031950", "01/03/1950"]
        .iter()
        .map(|s| s.as_bytes().to_vec())
        .collect();
    let found = |hay: &[u8]| {
        needles
            .iter()
            .find(|n| hay.windows(n.len()).any(|w| w == n.as_slice()))
            .map(|n| String::from_utf8_lossy(n).into_owned())
    };
    let mut files = vec![dir.to_path_buf()];
    let mut seen = 0;
    while let Some(p) = files.pop() {
        if p.is_dir() {
            for e in std::fs::read_dir(&p).unwrap() {
                files.push(e.unwrap().path());
            }
        } else if let Ok(bytes) = std::fs::read(&p) {
            seen += 1;
            if let Some(n) = found(&bytes) {
                panic!("{} holds {n}", p.display());
            }
        }
    }
    assert!(seen > 0, "the data directory has files");
    for (i, r) in extra.iter().enumerate() {
        assert!(found(r).is_none(), "report {i} holds an identity");
    }
}
