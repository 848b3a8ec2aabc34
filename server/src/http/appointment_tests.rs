//! §11 over the real router (every layer, extractor and handler) against a
//! hub on the in-memory store, with the queue clock set to 06:40 of a
//! known day: each endpoint's answers and its errors in the contract's
//! order (rules 12, 73–87), and the websocket's `check_in` and per-audience
//! booking events over a real TCP socket.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body as HttpBody;
use axum::http::{Method, Request};
use chrono::{NaiveTime, TimeZone};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::Message;

use crate::app::{App, AppState};
use crate::auth::sha256_hex;
use crate::clock::{Clock, Knobs};
use crate::config::{
    Device, DeviceRole, IdentityRule, Session as Sess, SiteConfig, WalkIns, demo_site,
};
use crate::engine::identity::damm_valid;
use crate::fanout::Fanout;
use crate::hub::Hub;
use crate::metrics::Metrics;
use crate::store::Session;
use crate::store::memory::MemStore;

const HIS: &str = "his-token";
const PORTAL: &str = "portal-token";
const KIOSK: &str = "demo-kiosk-token";
const STAFF: &str = "staff-login-token";
const ADMIN: &str = "admin-login-token";
const ADULT: &str = "1980-05-05";

fn hm(h: u32, m: u32) -> NaiveTime {
    NaiveTime::from_hms_opt(h, m, 0).unwrap()
}

/// The demo site with sessions on `kham-noi` (sáng 07:00–11:30: cap 8, 4
/// kept for bookings in slots of 30 min taking 2; chiều 13:30–16:30: cap 3,
/// no bookings), `kham-ngoai` for bookings only, `xet-nghiem` needing a
/// card, two integrations and at most 2 numbers per person.
fn config() -> SiteConfig {
    let mut cfg = demo_site().0;
    let s = &mut cfg.services[0];
    s.sessions = vec![
        Sess {
            id: "sang".into(),
            start: hm(7, 0),
            end: hm(11, 30),
            cap: Some(8),
            appointment_quota: 4,
            slot_minutes: 30,
            slot_capacity: Some(2),
        },
        Sess {
            id: "chieu".into(),
            start: hm(13, 30),
            end: hm(16, 30),
            cap: Some(3),
            appointment_quota: 0,
            slot_minutes: 30,
            slot_capacity: None,
        },
    ];
    // Whatever the demo sets on its other services, here they are plain.
    for s in &mut cfg.services[1..] {
        (s.sessions, s.daily_cap) = (vec![], None);
    }
    cfg.identity.age_priority = crate::config::Identity::default().age_priority;
    cfg.services[1].walk_ins = WalkIns::None;
    cfg.services[2].identity = IdentityRule::Required;
    for (id, token, services) in [
        (
            "his",
            HIS,
            vec!["kham-noi".to_string(), "kham-ngoai".to_string()],
        ),
        ("portal", PORTAL, vec![]),
    ] {
        cfg.devices.push(Device {
            id: id.into(),
            role: DeviceRole::Integration,
            token_sha256: sha256_hex(token),
            services,
        });
    }
    cfg.identity.max_tickets_per_person_per_day = 2;
    cfg
}

/// 06:40 in Hanoi on 2030-01-10, the queue's "now" (it runs in real time
/// from there).
fn knobs() -> Knobs {
    let target = chrono_tz::Asia::Ho_Chi_Minh
        .with_ymd_and_hms(2030, 1, 10, 6, 40, 0)
        .unwrap()
        .timestamp();
    let offset = target - chrono::Utc::now().timestamp();
    Knobs {
        clock: Clock::shifted(offset, 1.0),
        ..Knobs::default()
    }
}

/// The slot `h:m` of the test day, as an RFC 3339 time.
fn slot(h: u32, m: u32) -> String {
    format!("2030-01-10T{h:02}:{m:02}:00+07:00")
}

async fn app() -> AppState {
    app_on(Arc::new(MemStore::new())).await
}

/// The app on `store`, as a server starting on it.
async fn app_on(store: Arc<MemStore>) -> AppState {
    let config = Arc::new(config());
    let metrics = Arc::new(Metrics::new());
    let hub = Hub::start(config.clone(), store, metrics.clone(), knobs()).unwrap();
    hub.command(crate::engine::Command::Tick).await.unwrap();
    let expires_at = chrono::Utc::now().timestamp_millis() + 3_600_000;
    for (token, username) in [(STAFF, "nhanvien"), (ADMIN, "admin")] {
        let s = Session {
            username: username.into(),
            expires_at,
        };
        hub.put_session(sha256_hex(token), s).await.unwrap();
    }
    let rt = tokio::runtime::Handle::current();
    let fanout = Fanout::start(&rt, &hub, 1);
    let (stop, shutdown) = watch::channel(false);
    std::mem::forget(stop);
    Arc::new(App::new(hub, config, metrics, rt, fanout, shutdown))
}

/// One request through the whole router: (status, JSON body or null).
async fn call(
    app: &AppState,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = Request::builder()
        .method(method)
        .uri(format!("/api/v1{path}"));
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let req = match body {
        Some(b) => req
            .header("content-type", "application/json")
            .body(HttpBody::from(b.to_string())),
        None => req.body(HttpBody::empty()),
    }
    .unwrap();
    let resp = tower::ServiceExt::oneshot(crate::http::router(app.clone()), req)
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

async fn get(app: &AppState, path: &str, token: Option<&str>) -> (u16, Value) {
    call(app, Method::GET, path, token, None).await
}

async fn post(app: &AppState, path: &str, token: Option<&str>, body: Value) -> (u16, Value) {
    call(app, Method::POST, path, token, Some(body)).await
}

fn code(v: &(u16, Value)) -> (u16, &str) {
    (v.0, v.1["error"]["code"].as_str().unwrap_or(""))
}

fn card(id: &str, birth: &str) -> Value {
    json!({"id_number": id, "birth_date": birth})
}

async fn book(app: &AppState, token: &str, rid: &str, at: &str, extra: Value) -> (u16, Value) {
    let mut body = json!({"service": "kham-noi", "slot_at": at, "request_id": rid});
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        b.extend(e.clone());
    }
    post(app, "/appointments", Some(token), body).await
}

#[tokio::test]
async fn an_integration_books_and_each_caller_sees_its_view() {
    let app = app().await;
    let slots = get(&app, "/appointments/slots?service=kham-noi", Some(HIS)).await;
    assert_eq!(slots.0, 200);
    let sessions = slots.1["sessions"].as_array().unwrap();
    assert_eq!(sessions[0]["id"], "sang");
    assert_eq!(sessions[0]["open"], true);
    assert_eq!(
        sessions[0]["slots"].as_array().unwrap().len(),
        9,
        "07:00 … 11:00"
    );
    assert_eq!(sessions[0]["slots"][0]["at"], slot(7, 0));
    assert_eq!(
        (sessions[1]["open"].clone(), sessions[1]["slots"].clone()),
        (json!(false), json!([]))
    );

    let made = book(
        &app,
        HIS,
        "b-1",
        &slot(8, 0),
        json!({"external_ref": "HIS-77", "identity": card("001080000001", ADULT)}),
    )
    .await;
    assert_eq!(made.0, 201, "{:?}", made.1);
    let a = made.1.clone();
    let id = a["id"].as_str().unwrap().to_string();
    assert!(id.starts_with("ap_"));
    assert!(damm_valid(a["code"].as_str().unwrap()) && a["code"].as_str().unwrap().len() == 8);
    assert_eq!(a["qr"], format!("http://127.0.0.1:8080/a/{id}"));
    assert_eq!(
        (a["status"].as_str(), a["booked_by"].as_str()),
        (Some("booked"), Some("his"))
    );
    assert_eq!(
        (a["identity"].clone(), a["external_ref"].clone()),
        (json!(true), json!("HIS-77"))
    );
    assert_eq!(a["checkin_opens_at"], slot(7, 30));
    assert_eq!(a["checkin_closes_at"], slot(8, 15));
    assert!(
        !a.to_string().contains("001080000001"),
        "the card is never echoed"
    );

    // The same request id: 200 and the same booking; a changed field: 409.
    let again = book(
        &app,
        HIS,
        "b-1",
        &slot(8, 0),
        json!({"external_ref": "HIS-77", "identity": card("001080000001", ADULT)}),
    )
    .await;
    assert_eq!((again.0, again.1["id"].clone()), (200, json!(id)));
    let changed = book(
        &app,
        HIS,
        "b-1",
        &slot(8, 30),
        json!({"external_ref": "HIS-77", "identity": card("001080000001", ADULT)}),
    )
    .await;
    assert_eq!(code(&changed), (409, "request_id_reused"));

    let slots = get(
        &app,
        "/appointments/slots?service=kham-noi&day=2030-01-10",
        Some(STAFF),
    )
    .await;
    assert_eq!(slots.1["sessions"][0]["booked"], 1);
    assert_eq!(slots.1["sessions"][0]["slots"][2]["booked"], 1);

    // Lists: staff see it, the other integration does not, kiosks may not ask.
    let list = get(
        &app,
        "/appointments?external_ref=HIS-77&status=booked",
        Some(STAFF),
    )
    .await;
    assert_eq!(list.1["appointments"].as_array().unwrap().len(), 1);
    let theirs = get(&app, "/appointments", Some(PORTAL)).await;
    assert_eq!(
        (theirs.0, theirs.1["appointments"].clone()),
        (200, json!([]))
    );
    assert_eq!(
        code(&get(&app, "/appointments", Some(KIOSK)).await),
        (403, "forbidden")
    );
    assert_eq!(
        code(&get(&app, "/appointments?status=gone", Some(STAFF)).await),
        (400, "bad_request")
    );

    // One booking: whole for its maker and staff, brief for a holder of its
    // id, 404 for another integration.
    let path = format!("/appointments/{id}");
    assert_eq!(get(&app, &path, Some(HIS)).await.1["code"], a["code"]);
    assert_eq!(
        get(&app, &path, Some(ADMIN)).await.1["external_ref"],
        "HIS-77"
    );
    let brief = get(&app, &path, None).await;
    assert_eq!(
        (brief.0, brief.1["slot_at"].clone()),
        (200, json!(slot(8, 0)))
    );
    for hidden in [
        "code",
        "qr",
        "external_ref",
        "identity",
        "booked_by",
        "priority",
    ] {
        assert!(brief.1.get(hidden).is_none(), "{hidden} in a brief view");
    }
    assert_eq!(
        code(&get(&app, &path, Some(PORTAL)).await),
        (404, "unknown_appointment")
    );
    assert_eq!(
        code(&get(&app, "/appointments/ap_nope", None).await),
        (404, "unknown_appointment")
    );
}

#[tokio::test]
async fn booking_refusals_come_in_the_contract_s_order() {
    let app = app().await;
    let ok = json!({"service": "kham-noi", "slot_at": slot(9, 0), "request_id": "r"});
    assert_eq!(
        code(&post(&app, "/appointments", None, ok.clone()).await),
        (401, "unauthorized")
    );
    assert_eq!(
        code(&post(&app, "/appointments", Some(KIOSK), ok.clone()).await),
        (403, "forbidden")
    );
    assert_eq!(
        code(&post(&app, "/appointments", Some(STAFF), ok.clone()).await),
        (403, "forbidden")
    );
    let no_type = call(&app, Method::POST, "/appointments", Some(HIS), None).await;
    assert_eq!(no_type.0, 415);
    let bad = |extra: Value| {
        let mut b = ok.clone();
        b.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        b
    };
    for (why, body) in [
        ("unknown field", bad(json!({"colour": "red"}))),
        (
            "request_id",
            bad(json!({"request_id": "a b", "service": "nope"})),
        ),
        ("priority", bad(json!({"priority": "vip"}))),
        ("external_ref", bad(json!({"external_ref": "a\u{7}b"}))),
        (
            "long external_ref",
            bad(json!({"external_ref": "x".repeat(65)})),
        ),
        (
            "11 digits",
            bad(json!({"identity": card("00108000001", ADULT)})),
        ),
        (
            "born tomorrow",
            bad(json!({"identity": card("001080000001", "2030-01-11")})),
        ),
        ("slot_at", bad(json!({"slot_at": "9h sáng"}))),
    ] {
        assert_eq!(
            code(&post(&app, "/appointments", Some(HIS), body).await),
            (400, "bad_request"),
            "{why}"
        );
    }
    assert_eq!(
        code(
            &post(
                &app,
                "/appointments",
                Some(HIS),
                bad(json!({"service": "nope"}))
            )
            .await
        ),
        (404, "unknown_service")
    );
    assert_eq!(
        code(
            &post(
                &app,
                "/appointments",
                Some(HIS),
                bad(json!({"service": "xet-nghiem"}))
            )
            .await
        ),
        (403, "forbidden"),
        "not one of its services"
    );
    assert_eq!(
        code(&book(&app, HIS, "r1", &slot(9, 10), json!({})).await),
        (404, "unknown_slot")
    );
    assert_eq!(
        code(&book(&app, HIS, "r2", "2030-02-10T09:00:00+07:00", json!({})).await),
        (409, "booking_closed")
    );
    let me = json!({"identity": card("001080000002", ADULT)});
    assert_eq!(book(&app, HIS, "r3", &slot(9, 0), me.clone()).await.0, 201);
    let ticket = json!({"service": "xet-nghiem", "request_id": "t1", "identity": card("001080000002", ADULT)});
    assert_eq!(post(&app, "/tickets", Some(STAFF), ticket).await.0, 201);
    assert_eq!(
        code(&book(&app, PORTAL, "r4", &slot(10, 0), me.clone()).await),
        (409, "person_limit"),
        "a booking and a ticket"
    );
    assert_eq!(book(&app, ADMIN, "r5", &slot(9, 0), json!({})).await.0, 201);
    assert_eq!(
        code(&book(&app, PORTAL, "r6", &slot(9, 0), me.clone()).await),
        (409, "slot_full"),
        "slot_full before person_limit"
    );
    // A slot given in another offset is the same slot.
    let utc = book(&app, HIS, "r7", "2030-01-10T02:00:00Z", json!({})).await;
    assert_eq!(code(&utc), (409, "slot_full"));
}

#[tokio::test]
async fn check_in_answers_and_refusals() {
    let app = app().await;
    let me = card("001080000003", ADULT);
    let a = book(
        &app,
        HIS,
        "a",
        &slot(7, 0),
        json!({"external_ref": "HIS-1", "identity": me.clone()}),
    )
    .await
    .1;
    let b = book(
        &app,
        HIS,
        "b",
        &slot(7, 0),
        json!({"external_ref": "HIS-2"}),
    )
    .await
    .1;
    let bad_codes = [
        json!(40817269),
        json!("4081726"),
        json!("40817268"),
        json!("4081726x"),
    ];
    for c in bad_codes {
        let r = post(
            &app,
            "/appointments/check-in",
            Some(KIOSK),
            json!({"code": c, "request_id": "k"}),
        )
        .await;
        assert_eq!(code(&r), (400, "bad_request"), "{c}");
    }
    let both = json!({"code": a["code"], "appointment": a["id"], "request_id": "k"});
    assert_eq!(
        code(&post(&app, "/appointments/check-in", Some(KIOSK), both).await),
        (400, "bad_request")
    );
    let missing = post(
        &app,
        "/appointments/check-in",
        Some(KIOSK),
        json!({"code": "00000000", "request_id": "k"}),
    )
    .await;
    assert_eq!(code(&missing), (404, "unknown_appointment"));
    assert_eq!(
        code(
            &post(
                &app,
                "/appointments/check-in",
                Some(PORTAL),
                json!({"appointment": a["id"], "request_id": "p"})
            )
            .await
        ),
        (404, "unknown_appointment")
    );
    let no_card = post(
        &app,
        "/appointments/check-in",
        Some(KIOSK),
        json!({"code": a["code"], "request_id": "k1"}),
    )
    .await;
    assert_eq!(code(&no_card), (409, "identity_required"));
    let stranger =
        json!({"code": a["code"], "request_id": "k2", "identity": card("001080000099", ADULT)});
    assert_eq!(
        code(&post(&app, "/appointments/check-in", Some(KIOSK), stranger).await),
        (409, "identity_mismatch")
    );

    let at_kiosk = json!({"code": a["code"], "request_id": "k3", "identity": me});
    let t = post(
        &app,
        "/appointments/check-in",
        Some(KIOSK),
        at_kiosk.clone(),
    )
    .await;
    assert_eq!(t.0, 201, "{:?}", t.1);
    assert_eq!(
        (t.1["appointment"].clone(), t.1["external_ref"].clone()),
        (a["id"].clone(), Value::Null),
        "kiosks never see external_ref"
    );
    assert_eq!(t.1["status"], "waiting");
    let again = post(&app, "/appointments/check-in", Some(KIOSK), at_kiosk).await;
    assert_eq!((again.0, again.1["id"].clone()), (200, t.1["id"].clone()));
    let twice = post(
        &app,
        "/appointments/check-in",
        Some(KIOSK),
        json!({"code": a["code"], "request_id": "k4", "identity": card("001080000003", ADULT)}),
    )
    .await;
    assert_eq!(code(&twice), (409, "already_checked_in"));
    assert_eq!(twice.1["error"]["number"], t.1["number"]);
    // Staff see the reference; the public ticket page does not.
    let path = format!("/tickets/{}", t.1["id"].as_str().unwrap());
    assert_eq!(
        get(&app, &path, Some(STAFF)).await.1["external_ref"],
        "HIS-1"
    );
    assert_eq!(get(&app, &path, None).await.1["external_ref"], Value::Null);
    // By id at the desk: no card needed.
    let desk = post(
        &app,
        "/appointments/check-in",
        Some(STAFF),
        json!({"appointment": b["id"], "request_id": "d1"}),
    )
    .await;
    assert_eq!(
        (desk.0, desk.1["external_ref"].clone()),
        (201, json!("HIS-2"))
    );
    assert_eq!(
        get(
            &app,
            &format!("/appointments/{}", b["id"].as_str().unwrap()),
            Some(HIS)
        )
        .await
        .1["status"],
        "checked_in"
    );

    let later = book(&app, HIS, "c", &slot(9, 0), json!({})).await.1;
    let early = post(
        &app,
        "/appointments/check-in",
        Some(KIOSK),
        json!({"code": later["code"], "request_id": "k5"}),
    )
    .await;
    assert_eq!(code(&early), (409, "too_early"));
    assert_eq!(early.1["error"]["checkin_opens_at"], slot(8, 30));
    // Cancel: 200, again 200; a cancelled booking does not check in.
    let cancel = format!("/appointments/{}/cancel", later["id"].as_str().unwrap());
    assert_eq!(
        code(&post(&app, &cancel, Some(STAFF), json!({})).await),
        (403, "forbidden")
    );
    let c1 = call(&app, Method::POST, &cancel, Some(HIS), None).await;
    assert_eq!((c1.0, c1.1["status"].clone()), (200, json!("cancelled")));
    assert_eq!(
        call(&app, Method::POST, &cancel, Some(HIS), None).await.0,
        200
    );
    let gone = post(
        &app,
        "/appointments/check-in",
        Some(KIOSK),
        json!({"code": later["code"], "request_id": "k6"}),
    )
    .await;
    assert_eq!(code(&gone), (409, "appointment_cancelled"));
    let checked = format!("/appointments/{}/cancel", a["id"].as_str().unwrap());
    assert_eq!(
        code(&call(&app, Method::POST, &checked, Some(HIS), None).await),
        (409, "already_checked_in")
    );
}

#[tokio::test]
async fn walk_ins_meet_sessions_caps_and_the_service_rules() {
    let app = app().await;
    let issue =
        |token: &'static str, service: &'static str, rid: String, identity: Option<Value>| {
            let app = app.clone();
            async move {
                let mut b = json!({"service": service, "request_id": rid});
                if let Some(i) = identity {
                    b["identity"] = i;
                }
                post(&app, "/tickets", Some(token), b).await
            }
        };
    let site = get(&app, "/site", None).await.1;
    assert_eq!(
        site["services"][0]["remaining"], 4,
        "cap 8 less 4 held for bookings"
    );
    assert_eq!(site["services"][1]["walk_ins"], "none");
    assert_eq!(site["services"][2]["identity"], "required");
    assert_eq!(site["services"][1]["remaining"], Value::Null);
    for i in 0..4 {
        assert_eq!(issue(KIOSK, "kham-noi", format!("w{i}"), None).await.0, 201);
    }
    let full = issue(KIOSK, "kham-noi", "w9".into(), None).await;
    assert_eq!(code(&full), (409, "service_full"));
    assert_eq!(full.1["error"]["next_open_at"], slot(11, 30));
    assert_eq!(
        get(&app, "/site", None).await.1["services"][0]["remaining"],
        0
    );
    assert_eq!(
        issue(STAFF, "kham-noi", "s1".into(), None).await.0,
        201,
        "staff are never refused"
    );
    assert_eq!(
        code(&issue(KIOSK, "kham-ngoai", "n1".into(), None).await),
        (409, "appointment_required")
    );
    assert_eq!(
        code(&issue(KIOSK, "xet-nghiem", "x1".into(), None).await),
        (409, "identity_required")
    );
    let me = card("001040000001", "1940-02-02");
    let t1 = issue(KIOSK, "xet-nghiem", "x2".into(), Some(me.clone())).await;
    assert_eq!(
        (t1.0, t1.1["priority"].clone()),
        (201, json!("age_75_plus"))
    );
    assert_eq!(
        issue(HIS, "kham-ngoai", "h1".into(), Some(me.clone()))
            .await
            .0,
        409,
        "appointment_required for integrations too"
    );
    assert_eq!(
        issue(KIOSK, "xet-nghiem", "x3".into(), Some(me.clone()))
            .await
            .0,
        201
    );
    assert_eq!(
        code(&issue(KIOSK, "xet-nghiem", "x4".into(), Some(me.clone())).await),
        (409, "person_limit")
    );
    assert_eq!(
        code(&issue(HIS, "xet-nghiem", "h2".into(), None).await),
        (403, "forbidden"),
        "not its service"
    );
    let bad = issue(KIOSK, "nope", "x5".into(), Some(card("1", ADULT))).await;
    assert_eq!(
        code(&bad),
        (400, "bad_request"),
        "the identity's 400 before the 404"
    );
}

// ------------------------------------------------------------ websocket

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn serve(app: &AppState) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let router = crate::http::router(app.clone());
    let stop = app.shutdown.clone();
    tokio::spawn(crate::server::accept_loop(listener, router, stop));
    addr
}

async fn hello(addr: std::net::SocketAddr, token: &str) -> (Ws, Value) {
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/api/v1/ws"))
        .await
        .unwrap();
    let h = json!({"type": "hello", "token": token, "since": null});
    ws.send(Message::Text(h.to_string().into())).await.unwrap();
    let welcome = next_frame(&mut ws).await;
    assert_eq!(welcome["type"], "welcome");
    let snap = next_frame(&mut ws).await;
    assert_eq!(snap["type"], "snapshot");
    (ws, welcome)
}

async fn next_frame(ws: &mut Ws) -> Value {
    loop {
        let m = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        if let Message::Text(t) = m {
            return serde_json::from_str(&t).unwrap();
        }
    }
}

/// The next frame of `type` (and event `kind`, if given).
async fn next_of(ws: &mut Ws, ty: &str, kind: Option<&str>) -> Value {
    loop {
        let f = next_frame(ws).await;
        if f["type"] == ty && kind.is_none_or(|k| f["event"]["kind"] == k) {
            return f;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kiosk_checks_in_on_the_websocket_and_each_audience_gets_its_view() {
    let app = app().await;
    let addr = serve(&app).await;
    let (mut kiosk, welcome) = hello(addr, KIOSK).await;
    assert_eq!(welcome["services"][0]["remaining"], 4);
    let (mut his, _) = hello(addr, HIS).await;
    let (mut portal, _) = hello(addr, PORTAL).await;
    let (mut staff, _) = hello(addr, STAFF).await;

    let a = book(
        &app,
        HIS,
        "w-1",
        &slot(7, 0),
        json!({"external_ref": "HIS-9"}),
    )
    .await
    .1;
    let mine = next_of(&mut his, "event", Some("appointment_booked")).await;
    assert_eq!(
        mine["event"]["appointment"]["external_ref"], "HIS-9",
        "its maker sees it whole"
    );
    assert_eq!(mine["event"]["appointment"]["booked_by"], "his");
    assert_eq!(mine["event"]["service_name"], "Khám Nội");
    let full = next_of(&mut staff, "event", Some("appointment_booked")).await;
    assert_eq!(full["event"]["appointment"]["external_ref"], "HIS-9");
    for (who, f) in [("his", &mine), ("staff", &full)] {
        let ap = &f["event"]["appointment"];
        assert!(
            ap.get("code").is_none() && ap.get("qr").is_none(),
            "{who}: events never carry the code"
        );
    }
    for (who, ws) in [("portal", &mut portal), ("kiosk", &mut kiosk)] {
        let f = next_of(ws, "event", Some("appointment_booked")).await;
        let ap = &f["event"]["appointment"];
        assert_eq!(
            (ap["id"].clone(), ap["slot_at"].clone()),
            (a["id"].clone(), json!(slot(7, 0))),
            "{who}"
        );
        for hidden in [
            "code",
            "qr",
            "external_ref",
            "booked_by",
            "identity",
            "priority",
        ] {
            assert!(ap.get(hidden).is_none(), "{who}: {hidden} in {ap}");
        }
    }

    let bad = json!({"type": "check_in", "request_id": "kc-0", "code": 1234});
    kiosk
        .send(Message::Text(bad.to_string().into()))
        .await
        .unwrap();
    let e = next_of(&mut kiosk, "error", None).await;
    assert_eq!(
        (e["request_id"].clone(), e["error"]["code"].clone()),
        (json!("kc-0"), json!("bad_request"))
    );
    let ci = json!({"type": "check_in", "request_id": "kc-1", "code": a["code"]});
    kiosk
        .send(Message::Text(ci.to_string().into()))
        .await
        .unwrap();
    // The answer and the events may come in either order.
    let (mut issued, mut k) = (Value::Null, Value::Null);
    while issued.is_null() || k.is_null() {
        let f = next_frame(&mut kiosk).await;
        if f["type"] == "issued" {
            issued = f;
        } else if f["event"]["kind"] == "ticket_issued" {
            k = f;
        }
    }
    assert_eq!(issued["request_id"], "kc-1");
    assert_eq!(issued["slot_at"], slot(7, 0));
    assert_eq!(issued["ticket"]["appointment"], a["id"]);
    assert_eq!(issued["ticket"]["external_ref"], Value::Null);
    // Staff see ticket_issued then appointment_checked_in, with the reference.
    let t = next_of(&mut staff, "event", Some("ticket_issued")).await;
    assert_eq!(t["event"]["ticket"]["external_ref"], "HIS-9");
    let c = next_frame(&mut staff).await;
    assert_eq!(
        (c["event"]["kind"].clone(), c["seq"].as_u64()),
        (
            json!("appointment_checked_in"),
            t["seq"].as_u64().map(|s| s + 1)
        )
    );
    assert_eq!(c["event"]["appointment"]["ticket"], issued["ticket"]["id"]);
    assert_eq!(k["event"]["ticket"]["external_ref"], Value::Null);
    // The same request id again: the same ticket.
    kiosk
        .send(Message::Text(ci.to_string().into()))
        .await
        .unwrap();
    let replay = next_of(&mut kiosk, "issued", None).await;
    assert_eq!(replay["ticket"]["id"], issued["ticket"]["id"]);
    // check_in is a kiosk's only.
    let from_staff = json!({"type": "check_in", "request_id": "s-1", "code": a["code"]});
    staff
        .send(Message::Text(from_staff.to_string().into()))
        .await
        .unwrap();
    let e = next_of(&mut staff, "error", None).await;
    assert_eq!(e["error"]["code"], "forbidden");
}

#[tokio::test]
async fn the_person_cap_and_bookings_survive_a_restart() {
    let store = Arc::new(MemStore::new());
    let app = app_on(store.clone()).await;
    let me = card("001080000042", ADULT);
    let ticket =
        |rid: &str| json!({"service": "xet-nghiem", "request_id": rid, "identity": me.clone()});
    assert_eq!(
        post(&app, "/tickets", Some(KIOSK), ticket("p1")).await.0,
        201
    );
    let a = book(
        &app,
        HIS,
        "p2",
        &slot(10, 0),
        json!({"identity": me.clone()}),
    )
    .await;
    assert_eq!(a.0, 201);
    assert_eq!(
        store.key_days().len(),
        1,
        "one key, today's, apart from the log"
    );
    app.hub.shutdown().await;
    drop(app);
    let app = app_on(store.clone()).await;
    let third = post(&app, "/tickets", Some(KIOSK), ticket("p3")).await;
    assert_eq!(
        code(&third),
        (409, "person_limit"),
        "the hashes still match after the restart"
    );
    let path = format!("/appointments/{}", a.1["id"].as_str().unwrap());
    assert_eq!(get(&app, &path, Some(HIS)).await.1["code"], a.1["code"]);
    let log = serde_json::to_string(&store.records()).unwrap();
    assert!(
        !log.contains("001080000042") && !log.contains(ADULT),
        "no card in the log"
    );
}

#[tokio::test]
async fn a_check_in_with_print_at_is_printed_at_the_kiosk_with_its_slot_and_not_as_a_reprint() {
    use crate::plan::DeviceUpdate;
    let app = app().await;
    let a = book(
        &app,
        HIS,
        "a",
        &slot(7, 0),
        json!({"external_ref": "HIS-7"}),
    )
    .await
    .1;
    let body = |kiosk: &str| json!({"appointment": a["id"], "request_id": "c1", "print_at": kiosk});
    let long = "k".repeat(65);
    assert_eq!(
        code(&post(&app, "/appointments/check-in", Some(HIS), body(&long)).await),
        (400, "bad_request")
    );
    assert_eq!(
        code(&post(&app, "/appointments/check-in", Some(HIS), body("nobody")).await),
        (404, "unknown_device")
    );
    // The kiosk is not connected: refused, and the booking is not checked in.
    assert_eq!(
        code(
            &post(
                &app,
                "/appointments/check-in",
                Some(HIS),
                body("kiosk-sanh")
            )
            .await
        ),
        (409, "kiosk_unavailable")
    );
    let path = format!("/appointments/{}", a["id"].as_str().unwrap());
    assert_eq!(get(&app, &path, Some(HIS)).await.1["status"], "booked");

    app.hub.device("kiosk-sanh", DeviceUpdate::Connected);
    app.hub.device(
        "kiosk-sanh",
        DeviceUpdate::Printer(luot_protocol::PrinterStatus::Ok),
    );
    for _ in 0..500 {
        let devices = app.hub.devices().await;
        if devices
            .iter()
            .any(|d| d.id == "kiosk-sanh" && d.connected && d.printer.is_some())
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let (tx, mut rx) = tokio::sync::mpsc::channel(4);
    app.attach_printer("kiosk-sanh", tx);
    let t = post(
        &app,
        "/appointments/check-in",
        Some(HIS),
        body("kiosk-sanh"),
    )
    .await;
    assert_eq!(t.0, 201, "{}", t.1);
    assert_eq!(t.1["external_ref"], "HIS-7");
    let print_id = t.1["print_id"].as_str().unwrap().to_string();
    let text = tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .unwrap()
        .unwrap();
    let job: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        (&job["type"], &job["print_id"], &job["reprint"]),
        (&json!("print"), &json!(print_id), &json!(false))
    );
    assert_eq!(job["slot_at"], a["slot_at"], "printed with Hẹn");
    assert_eq!(
        (
            &job["ticket"]["id"],
            &job["ticket"]["appointment"],
            &job["ticket"]["external_ref"]
        ),
        (&t.1["id"], &a["id"], &Value::Null)
    );
    let again = post(
        &app,
        "/appointments/check-in",
        Some(HIS),
        body("kiosk-sanh"),
    )
    .await;
    assert_eq!((again.0, &again.1["print_id"]), (200, &json!(print_id)));
}
