//! Contract §9–10 against the real server: a visit with several stops over
//! HTTP and websockets (the one-way outpatient flow), the console's actions
//! and their refusals, what displays may see, and a kill -9 in the middle of
//! a rush of visits.

#![allow(clippy::unwrap_used)] // tests may panic on a broken server

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use luot_tests::*;
use serde_json::{Value, json};

/// Registration (Quầy 2), an exam room (Phòng 13), the lab (Quầy 34, 35)
/// and X-ray (Phòng 38 only): the hospital's one-way flow in small.
fn clinic_toml() -> String {
    format!(
        r#"
[site]
name = "Bệnh viện Thử nghiệm"
timezone = "Asia/Ho_Chi_Minh"
day_starts_at = "05:00"
public_url = "http://luot.test"

[priority]
ratio = 2
classes = ["emergency", "pregnant"]

[[services]]
id = "tiep-don"
name = "Tiếp đón"
prefix = "A"

[[services]]
id = "kham-noi"
name = "Khám Nội"
prefix = "C"

[[services]]
id = "xet-nghiem"
name = "Lấy mẫu xét nghiệm"
prefix = "M"

[[services]]
id = "x-quang"
name = "Chụp X-quang"
prefix = "N"

[[counters]]
id = "quay-2"
name = "Quầy 2"
services = ["tiep-don"]

[[counters]]
id = "quay-13"
name = "Phòng 13"
services = ["kham-noi"]

[[counters]]
id = "quay-14"
name = "Phòng 14"
services = ["kham-noi"]

[[counters]]
id = "quay-34"
name = "Quầy 34"
services = ["xet-nghiem"]

[[counters]]
id = "quay-35"
name = "Quầy 35"
services = ["xet-nghiem"]

[[counters]]
id = "quay-38"
name = "Phòng 38"
services = ["x-quang"]

[[devices]]
id = "kiosk-sanh"
role = "kiosk"
token_sha256 = "{k}"
services = ["tiep-don", "kham-noi"]

[[devices]]
id = "tv-sanh"
role = "display"
token_sha256 = "{d}"

[[users]]
username = "bs.lan"
role = "staff"
password_hash = "{h}"
counters = ["quay-13"]

[[users]]
username = "admin"
role = "admin"
password_hash = "{h}"
"#,
        k = sha(KIOSK_TOKEN),
        d = sha(DISPLAY_TOKEN),
        h = luot_server::auth::hash_password(PASSWORD),
    )
}

async fn issue(api: &Api, service: &str, rid: &str) -> Value {
    let a = api.issue(KIOSK_TOKEN, service, rid).await;
    assert_eq!(a.status, 201, "{}", a.text);
    a.body
}

async fn act(api: &Api, token: &str, counter: &str, action: &str, body: Option<Value>) -> Answer {
    api.post(
        &format!("/api/v1/counters/{counter}/{action}"),
        Some(token),
        body,
    )
    .await
}

async fn ok(api: &Api, token: &str, counter: &str, action: &str, body: Option<Value>) -> Value {
    let a = act(api, token, counter, action, body).await;
    assert_eq!(a.status, 200, "{action} at {counter}: {}", a.text);
    a.body
}

fn steps(t: &Value) -> Vec<(u64, String, String, bool)> {
    t["visit"]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["stage"].as_u64().unwrap(),
                s["service"].as_str().unwrap().to_string(),
                s["status"].as_str().unwrap().to_string(),
                s["returning"].as_bool().unwrap(),
            )
        })
        .collect()
}

/// Events (type `event`) until one of `kind` for the ticket `number`.
async fn until(ws: &mut Ws, kind: &str, number: &str) -> Value {
    let frames = ws
        .recv_until(|v| v["event"]["kind"] == kind && v["event"]["ticket"]["number"] == number)
        .await;
    frames.last().unwrap()["event"].clone()
}

#[tokio::test]
async fn the_one_way_flow_with_parallel_tests_and_a_return_to_the_same_doctor() {
    let site = Site::new(&clinic_toml());
    let server = site.start();
    let api = Api::new(&server);
    let admin = api.login("admin").await;
    let doctor = api.login("bs.lan").await;
    let (mut adm_ws, _) = Ws::hello(&server, Some(&admin), None).await;
    let (mut tv, _) = Ws::hello(&server, Some(DISPLAY_TOKEN), None).await;

    let p = issue(&api, "tiep-don", "p1").await;
    let num = p["number"].as_str().unwrap().to_string();
    let id = p["id"].as_str().unwrap().to_string();
    assert!(p["visit"].is_null(), "no visit until first sent");
    assert_eq!(p["calls"], 0);
    ok(&api, &admin, "quay-2", "next", None).await;
    let t = ok(
        &api,
        &admin,
        "quay-2",
        "send",
        Some(json!({"stops": [{"service": "kham-noi"}]})),
    )
    .await;
    assert_eq!(t["number"], num, "the same number follows the visit");
    assert_eq!(
        (t["status"].as_str(), t["service"].as_str()),
        (Some("waiting"), Some("kham-noi"))
    );
    let later = issue(&api, "kham-noi", "later").await;

    // The doctor orders the lab and an X-ray in Phòng 38, then back here.
    assert_eq!(ok(&api, &doctor, "quay-13", "next", None).await["id"], id);
    let t = ok(
        &api,
        &doctor,
        "quay-13",
        "send",
        Some(json!({"stops": [{"service": "xet-nghiem"}, {"service": "x-quang", "counter": "quay-38"}], "return": true})),
    )
    .await;
    let s = |a: u64, b: &str, c: &str, d: bool| (a, b.to_string(), c.to_string(), d);
    assert_eq!(
        steps(&t),
        [
            s(1, "tiep-don", "done", false),
            s(2, "kham-noi", "done", false),
            s(3, "xet-nghiem", "waiting", false),
            s(3, "x-quang", "waiting", false),
            s(4, "kham-noi", "pending", true),
        ]
    );
    let places: Vec<&str> = t["visit"]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["place"].as_str().unwrap())
        .collect();
    assert_eq!(
        places,
        [
            "Quầy 2",
            "Phòng 13",
            "Lấy mẫu xét nghiệm",
            "Phòng 38",
            "Phòng 13"
        ]
    );
    assert_eq!(until(&mut adm_ws, "ticket_sent", &num).await["step"], 0);
    let sent = until(&mut adm_ws, "ticket_sent", &num).await;
    assert_eq!(sent["step"], 1, "the step sent from");
    assert_eq!(sent["counter_name"], "Phòng 13");

    // Called for the X-ray first: the lab cannot call a busy patient.
    assert_eq!(ok(&api, &admin, "quay-38", "next", None).await["id"], id);
    assert_eq!(
        act(&api, &admin, "quay-34", "next", None).await.code(),
        "queue_empty"
    );
    let seen = api.get(&format!("/api/v1/tickets/{id}"), None).await.body;
    assert_eq!(seen["visit"]["steps"][2]["busy"], true);
    ok(&api, &admin, "quay-38", "done", None).await;
    assert_eq!(until(&mut adm_ws, "step_finished", &num).await["step"], 3);
    assert_eq!(ok(&api, &admin, "quay-34", "next", None).await["id"], id);
    ok(&api, &admin, "quay-34", "done", None).await;
    // Back to Phòng 13, ahead of the patient who came before; the board
    // lists the return and marks its call.
    until(&mut tv, "step_finished", &num).await; // the X-ray
    let fin = until(&mut tv, "step_finished", &num).await;
    let kham = fin["services"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == "kham-noi")
        .unwrap()
        .clone();
    assert_eq!(
        kham["returning"],
        json!([{"number": num, "counter": "quay-13"}])
    );
    assert_eq!(ok(&api, &doctor, "quay-13", "next", None).await["id"], id);
    let call = until(&mut tv, "ticket_called", &num).await;
    assert_eq!(call["step"], 4);
    let (_, welcome) = Ws::hello(&server, Some(DISPLAY_TOKEN), None).await;
    assert_eq!(welcome["type"], "welcome");
    let site_now = api.get("/api/v1/site", None).await.body;
    assert_eq!(site_now["counters"][1]["serving"], num);
    let done = ok(&api, &doctor, "quay-13", "done", None).await;
    assert_eq!(done["status"], "done");
    assert!(done["finished_at"].is_string());
    assert_eq!(
        until(&mut adm_ws, "ticket_done", &num).await["ticket"]["status"],
        "done"
    );
    assert_eq!(
        ok(&api, &doctor, "quay-13", "next", None).await["id"],
        later["id"]
    );
}

#[tokio::test]
async fn console_actions_and_their_refusals() {
    let site = Site::new(&clinic_toml());
    let server = site.start();
    let api = Api::new(&server);
    let admin = api.login("admin").await;
    let doctor = api.login("bs.lan").await;
    let (mut adm_ws, _) = Ws::hello(&server, Some(&admin), None).await;
    let (mut tv, _) = Ws::hello(&server, Some(DISPLAY_TOKEN), None).await;
    let a = issue(&api, "kham-noi", "a").await;
    let b = issue(&api, "kham-noi", "b").await;
    let (a_num, b_num) = (a["number"].as_str().unwrap(), b["number"].as_str().unwrap());

    // Staff of another counter: 403 before anything else.
    let r = act(
        &api,
        &doctor,
        "quay-14",
        "call",
        Some(json!({"number": b_num})),
    )
    .await;
    assert_eq!((r.status, r.code()), (403, "forbidden"));
    // Rule 60's 400s, then 404s.
    let r = act(
        &api,
        &doctor,
        "quay-13",
        "call",
        Some(json!({"number": b_num, "ticket": b["id"]})),
    )
    .await;
    assert_eq!((r.status, r.code()), (400, "bad_request"));
    let r = act(&api, &doctor, "quay-13", "call", Some(json!({}))).await;
    assert_eq!((r.status, r.code()), (400, "bad_request"));
    let r = act(
        &api,
        &doctor,
        "quay-13",
        "call",
        Some(json!({"number": "C999"})),
    )
    .await;
    assert_eq!((r.status, r.code()), (404, "unknown_ticket"));
    let r = act(
        &api,
        &doctor,
        "quay-13",
        "hold",
        Some(json!({"reason": ""})),
    )
    .await;
    assert_eq!((r.status, r.code()), (400, "bad_request"));
    let r = act(
        &api,
        &doctor,
        "quay-13",
        "hold",
        Some(json!({"reason": "x".repeat(201)})),
    )
    .await;
    assert_eq!((r.status, r.code()), (400, "bad_request"));
    let r = act(
        &api,
        &doctor,
        "quay-13",
        "hold",
        Some(json!({"reason": "đi photo"})),
    )
    .await;
    assert_eq!((r.status, r.code()), (409, "nothing_called"));

    // Call a chosen number, ahead of the line.
    let t = ok(
        &api,
        &doctor,
        "quay-13",
        "call",
        Some(json!({"number": b_num})),
    )
    .await;
    assert_eq!(
        (
            t["number"].as_str(),
            t["status"].as_str(),
            t["calls"].as_u64()
        ),
        (Some(b_num), Some("called"), Some(1))
    );
    let r = act(
        &api,
        &admin,
        "quay-14",
        "call",
        Some(json!({"ticket": b["id"]})),
    )
    .await;
    assert_eq!((r.status, r.code()), (409, "ticket_busy"));
    // Hold with a reason: staff see it, displays never do.
    let t = ok(
        &api,
        &doctor,
        "quay-13",
        "hold",
        Some(json!({"reason": "Đi photo giấy tờ"})),
    )
    .await;
    assert_eq!(
        (t["status"].as_str(), t["reason"].as_str()),
        (Some("held"), Some("Đi photo giấy tờ"))
    );
    let held = until(&mut adm_ws, "ticket_held", b_num).await;
    assert_eq!(held["ticket"]["reason"], "Đi photo giấy tờ");
    let on_tv = until(&mut tv, "ticket_held", b_num).await;
    assert!(
        on_tv["ticket"]["reason"].is_null(),
        "no reason on a display: {on_tv}"
    );
    let board = api.get("/api/v1/site", None).await.body;
    assert!(board["counters"][1]["serving"].is_null());
    // Another room cannot take the held patient; this one resumes it.
    let r = act(
        &api,
        &admin,
        "quay-14",
        "call",
        Some(json!({"number": b_num})),
    )
    .await;
    assert_eq!((r.status, r.code()), (409, "ticket_busy"));
    assert_eq!(
        ok(&api, &doctor, "quay-13", "next", None).await["number"],
        a_num
    );
    let t = ok(
        &api,
        &doctor,
        "quay-13",
        "call",
        Some(json!({"number": b_num})),
    )
    .await;
    assert_eq!(
        (t["status"].as_str(), t["reason"].is_null()),
        (Some("called"), true)
    );
    let a_now = api
        .get(
            &format!("/api/v1/tickets/{}", a["id"].as_str().unwrap()),
            None,
        )
        .await
        .body;
    assert_eq!(a_now["status"], "done", "the called one was finished first");
    // No-show, then requeued at the front; a retry is refused.
    ok(&api, &doctor, "quay-13", "no-show", None).await;
    let t = ok(
        &api,
        &doctor,
        "quay-13",
        "requeue",
        Some(json!({"number": b_num})),
    )
    .await;
    assert_eq!(
        (t["status"].as_str(), t["position"].as_u64()),
        (Some("waiting"), Some(1))
    );
    let r = act(
        &api,
        &doctor,
        "quay-13",
        "requeue",
        Some(json!({"number": b_num})),
    )
    .await;
    assert_eq!((r.status, r.code()), (409, "not_requeueable"));
    // Cancel: the waiting ticket this room may call; again is 200.
    let t = ok(
        &api,
        &doctor,
        "quay-13",
        "cancel",
        Some(json!({"reason": "Bệnh nhân về", "number": b_num})),
    )
    .await;
    assert_eq!(
        (t["status"].as_str(), t["reason"].as_str()),
        (Some("cancelled"), Some("Bệnh nhân về"))
    );
    let r = act(
        &api,
        &admin,
        "quay-38",
        "cancel",
        Some(json!({"reason": "lại", "number": b_num})),
    )
    .await;
    assert_eq!(r.status, 200, "already cancelled: 200 at any counter");
    let r = act(
        &api,
        &doctor,
        "quay-13",
        "requeue",
        Some(json!({"number": b_num})),
    )
    .await;
    assert_eq!(r.code(), "not_requeueable");
    let r = act(
        &api,
        &doctor,
        "quay-13",
        "cancel",
        Some(json!({"reason": "x"})),
    )
    .await;
    assert_eq!((r.status, r.code()), (409, "nothing_called"));
    let r = act(&api, &doctor, "quay-13", "next", None).await;
    assert_eq!(r.code(), "queue_empty", "cancelled tickets wait nowhere");
    // Send's order of checks: shape 400, then 404s, then the counter 400, then 409.
    let checks = [
        (json!({"stops": []}), 400, "bad_request", "no stops"),
        (
            json!({"stops": [{"service": "nope"}]}),
            404,
            "unknown_service",
            "a service the site has not",
        ),
        (
            json!({"stops": [{"service": "x-quang", "counter": "quay-99"}]}),
            404,
            "unknown_counter",
            "a counter the site has not",
        ),
        (
            json!({"stops": [{"service": "x-quang", "counter": "quay-34"}]}),
            400,
            "bad_request",
            "a counter that does not call the service",
        ),
        (
            json!({"stops": [{"service": "x-quang"}]}),
            409,
            "nothing_called",
            "a valid stop with nobody called",
        ),
        (
            json!({"stops": [{"service": "x-quang"}], "extra": 1}),
            400,
            "bad_request",
            "unknown fields refused",
        ),
    ];
    for (body, status, code, why) in checks {
        let r = act(&api, &doctor, "quay-13", "send", Some(body)).await;
        assert_eq!((r.status, r.code()), (status, code), "{why}");
    }
}

#[tokio::test]
async fn a_kill_9_in_a_rush_of_visits_loses_nothing_acknowledged() {
    let site = Site::new(&clinic_toml());
    let mut server = site.start();
    let api = Api::new(&server);
    let admin = api.login("admin").await;
    // What each acknowledged answer said: ticket id -> (number, visit steps seen).
    let seen: Arc<std::sync::Mutex<HashMap<String, (String, usize)>>> = Arc::default();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut tasks = vec![];
    for w in 0..4 {
        let (api, admin, seen, stop) = (api.clone(), admin.clone(), seen.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let room = ["quay-13", "quay-14"][w % 2];
            let lab = ["quay-34", "quay-35"][w % 2];
            let mut n = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) && n < 400 {
                n += 1;
                let rid = format!("w{w}-{n}");
                let flow: [(&str, &str, Option<Value>); 4] = [
                    (room, "next", None),
                    (
                        room,
                        "send",
                        Some(json!({"stops": [{"service": "xet-nghiem"}], "return": true})),
                    ),
                    (lab, "next", None),
                    (lab, "done", None),
                ];
                let Ok(a) = tokio::time::timeout(
                    Duration::from_secs(2),
                    api.issue(KIOSK_TOKEN, "kham-noi", &rid),
                )
                .await
                else {
                    continue;
                };
                if a.status == 201 {
                    let id = a.body["id"].as_str().unwrap().to_string();
                    seen.lock()
                        .unwrap()
                        .insert(id, (a.body["number"].as_str().unwrap().into(), 1));
                }
                for (counter, action, body) in flow {
                    let path = format!("/api/v1/counters/{counter}/{action}");
                    let call = api.post(&path, Some(&admin), body);
                    let Ok(r) = tokio::time::timeout(Duration::from_secs(2), call).await else {
                        continue;
                    };
                    if r.status == 200 && r.body["visit"].is_object() {
                        let id = r.body["id"].as_str().unwrap().to_string();
                        let k = r.body["visit"]["steps"].as_array().unwrap().len();
                        let mut s = seen.lock().unwrap();
                        let e = s
                            .entry(id)
                            .or_insert((r.body["number"].as_str().unwrap().into(), 0));
                        e.1 = e.1.max(k);
                    }
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    server.kill9();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for t in tasks {
        let _ = t.await;
    }
    let server = Server::start(&site.config(), &site.data(), &[]);
    let api = Api::new(&server);
    let seen = seen.lock().unwrap().clone();
    assert!(
        seen.len() > 5,
        "the rush made tickets before the kill: {}",
        seen.len()
    );
    let mut numbers = std::collections::HashSet::new();
    for (id, (number, steps)) in &seen {
        let t = api.get(&format!("/api/v1/tickets/{id}"), None).await;
        assert_eq!(t.status, 200, "acknowledged ticket {number} lost");
        assert_eq!(t.body["number"], *number);
        let kept = t.body["visit"]["steps"].as_array().map_or(1, |s| s.len());
        assert!(
            kept >= *steps,
            "{number}: {steps} steps acknowledged, {kept} after restart"
        );
        assert!(numbers.insert(number.clone()), "number {number} twice");
    }
    // Numbering goes on above everything acknowledged.
    let fresh = issue(&api, "kham-noi", "after-restart").await;
    assert!(!numbers.contains(fresh["number"].as_str().unwrap()));
}
