//! Issue 16's integration API against the real server process: the OpenAPI
//! document of rule 86 (the same bytes each time, valid OpenAPI 3.1 by an
//! independent validator, every operation in it answered by a handler),
//! and rule 87's `external_ref`: staff, admins and integrations see it and
//! find tickets by it; boards, display frames, kiosks, public pages and the
//! server's log never hold it.

#![allow(clippy::unwrap_used)] // tests may panic on a broken server

use std::process::Command;
use std::time::{Duration, Instant};

use luot_tests::*;
use serde_json::{Value, json};

const HIS_TOKEN: &str = "test-his-integration-token-eeeeeeee";
/// A hospital information system's own encounter number.
const REF: &str = "HIS-Bí-mật-7731";

/// The test hospital with an integration (`his`) for Khám Nội.
fn site() -> Site {
    Site::new(&format!(
        "{}\n[[devices]]\nid = \"his\"\nrole = \"integration\"\ntoken_sha256 = \"{}\"\nservices = [\"kham-noi\"]\n",
        test_site_toml(false),
        sha(HIS_TOKEN)
    ))
}

/// The OpenAPI 3.1 check of python's openapi-spec-validator (installed by
/// test-all): exits 0 for a valid document, else prints why.
const VALIDATE: &str = "import json, sys
from openapi_spec_validator import validate, OpenAPIV31SpecValidator
validate(json.load(open(sys.argv[1], encoding='utf-8')), cls=OpenAPIV31SpecValidator)
print('valid')";

/// A path of the document with each `{param}` filled in.
fn concrete(path: &str) -> String {
    path.split('/')
        .map(|s| if s.starts_with('{') { "x" } else { s })
        .collect::<Vec<_>>()
        .join("/")
}

#[tokio::test]
async fn the_openapi_document_is_valid_3_1_the_same_bytes_each_time_and_every_operation_is_answered()
 {
    let site = site();
    let server = site.start();
    let api = Api::new(&server);
    let url = server.url("/api/v1/openapi.json");
    let first = reqwest::get(&url).await.unwrap();
    assert_eq!(first.status(), 200);
    assert_eq!(
        first.headers()["content-type"].to_str().unwrap(),
        "application/json"
    );
    let first = first.bytes().await.unwrap();
    let second = reqwest::get(&url).await.unwrap().bytes().await.unwrap();
    assert_eq!(first, second, "the same bytes each time");
    let doc: Value = serde_json::from_slice(&first).unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1."));

    let file = site.dir.path().join("openapi.json");
    std::fs::write(&file, &first).unwrap();
    let out = Command::new("python3")
        .arg("-c")
        .arg(VALIDATE)
        .arg(&file)
        .output()
        .expect("python3 runs (test-all installs openapi-spec-validator)");
    assert!(
        out.status.success(),
        "the document is not valid OpenAPI 3.1: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    let mut operations = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            if !["get", "post", "put", "patch", "delete"].contains(&method.as_str()) {
                continue;
            }
            operations += 1;
            let a = api
                .call(&method.to_uppercase(), &concrete(path), None, None)
                .await;
            let fallback = (a.status == 404 && a.code() == "not_found")
                || (a.status == 405 && a.code() == "method_not_allowed");
            assert!(
                !fallback,
                "{method} {path}: no handler answers it ({} {})",
                a.status,
                a.code()
            );
        }
    }
    assert!(operations >= 30, "only {operations} operations");
}

/// Polls `/devices` until `kiosk` is connected with its printer `ok`.
async fn wait_ready(api: &Api, admin: &str, kiosk: &str) {
    let t0 = Instant::now();
    loop {
        let d = api.get("/api/v1/devices", Some(admin)).await;
        let ready = d.body["devices"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["id"] == kiosk && d["connected"] == true && d["printer"] == "ok");
        if ready {
            return;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "{kiosk} never ready"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Frames on `ws` until an event of `kind` about ticket `id`.
async fn until_event(ws: &mut Ws, kind: &str, id: &str) -> Vec<Value> {
    ws.recv_until(|v| {
        v["type"] == "event" && v["event"]["kind"] == kind && v["event"]["ticket"]["id"] == id
    })
    .await
}

fn holds_ref(frames: &[Value]) -> Vec<&Value> {
    frames
        .iter()
        .filter(|f| f.to_string().contains(REF))
        .collect()
}

#[tokio::test]
async fn external_ref_reaches_staff_admins_and_integrations_never_a_screen_a_kiosk_or_the_log() {
    let site = site();
    let server = site.start();
    let api = Api::new(&server);
    let admin = api.login("admin").await;
    let staff = api.login("le.thu").await;

    let (mut tv, _) = Ws::hello(&server, Some(DISPLAY_TOKEN), None).await;
    let (mut kiosk, _) = Ws::hello(&server, Some(KIOSK_TOKEN), None).await;
    kiosk
        .send(json!({"type": "device_status", "printer": "ok"}))
        .await;
    let (mut desk, _) = Ws::hello(&server, Some(&admin), None).await;
    wait_ready(&api, &admin, "kiosk-sanh-a").await;

    // The hospital's system issues with its reference, printed at the kiosk.
    let body = json!({"service": "kham-noi", "request_id": "his-1",
        "external_ref": REF, "print_at": "kiosk-sanh-a"});
    let a = api
        .post("/api/v1/tickets", Some(HIS_TOKEN), Some(body.clone()))
        .await;
    assert_eq!(a.status, 201, "{}", a.text);
    assert_eq!(a.body["external_ref"], REF);
    let id = a.body["id"].as_str().unwrap().to_string();
    let print_id = a.body["print_id"].as_str().unwrap().to_string();
    let again = api
        .post("/api/v1/tickets", Some(HIS_TOKEN), Some(body))
        .await;
    assert_eq!(again.status, 200, "{}", again.text);
    assert_eq!(
        (&again.body["id"], &again.body["print_id"]),
        (&json!(id), &json!(print_id)),
        "a replay: the same ticket and the same print job"
    );

    // The kiosk prints it as a new ticket, without the reference.
    let mut at_kiosk = kiosk.recv_until(|v| v["type"] == "print").await;
    let job = at_kiosk.last().unwrap().clone();
    assert_eq!(
        (&job["print_id"], &job["ticket"]["id"], &job["reprint"]),
        (&json!(print_id), &json!(id), &json!(false))
    );
    assert_eq!(job["ticket"]["external_ref"], Value::Null);
    kiosk
        .send(json!({"type": "printed", "print_id": print_id, "ok": true}))
        .await;

    // Staff call it; every screen and the kiosk hear of it.
    let called = api
        .post("/api/v1/counters/quay-1/next", Some(&staff), None)
        .await;
    assert_eq!(called.status, 200, "{}", called.text);
    assert_eq!(called.body["external_ref"], REF, "staff see it");
    at_kiosk.extend(until_event(&mut kiosk, "ticket_called", &id).await);
    let at_tv = until_event(&mut tv, "ticket_called", &id).await;
    let at_desk = until_event(&mut desk, "ticket_called", &id).await;
    assert!(
        at_tv.iter().any(|f| f["event"]["kind"] == "ticket_issued"),
        "the board heard of the issue: {at_tv:?}"
    );
    assert_eq!(holds_ref(&at_tv), Vec::<&Value>::new(), "a board frame");
    assert_eq!(holds_ref(&at_kiosk), Vec::<&Value>::new(), "a kiosk frame");
    assert!(
        !holds_ref(&at_desk).is_empty(),
        "an admin's connection carries it: {at_desk:?}"
    );
    // A board that connects now gets a snapshot with the ticket serving.
    let (mut late_tv, _) = Ws::hello(&server, Some(DISPLAY_TOKEN), None).await;
    let snapshot = late_tv.recv_until(|v| v["type"] == "snapshot").await;
    assert!(snapshot.last().unwrap().to_string().contains(&id));
    assert_eq!(holds_ref(&snapshot), Vec::<&Value>::new(), "a snapshot");

    // The ticket page: the public and kiosks get null, staff the reference.
    let path = format!("/api/v1/tickets/{id}");
    for (who, expected) in [
        (None, Value::Null),
        (Some(KIOSK_TOKEN), Value::Null),
        (Some(DISPLAY_TOKEN), Value::Null),
        (Some(staff.as_str()), json!(REF)),
        (Some(HIS_TOKEN), json!(REF)),
    ] {
        assert_eq!(
            api.get(&path, who).await.body["external_ref"],
            expected,
            "{who:?}"
        );
    }

    // Found by its reference: the integration and admins; today by default.
    let q = format!("/api/v1/tickets?external_ref={}", urlencode(REF));
    for who in [HIS_TOKEN, admin.as_str()] {
        let found = api.get(&q, Some(who)).await;
        assert_eq!(found.status, 200, "{}", found.text);
        let tickets = found.body["tickets"].as_array().unwrap();
        assert_eq!(tickets.len(), 1, "{}", found.text);
        assert_eq!(
            (&tickets[0]["id"], &tickets[0]["external_ref"]),
            (&json!(id), &json!(REF))
        );
    }
    for who in [staff.as_str(), KIOSK_TOKEN] {
        assert_eq!(api.get(&q, Some(who)).await.status, 403);
    }
    assert_eq!(api.get(&q, None).await.status, 401);
    assert_eq!(api.get("/api/v1/tickets", Some(&admin)).await.status, 400);
    assert_eq!(
        api.get(&format!("{q}&day=28-11"), Some(&admin))
            .await
            .status,
        400
    );
    let other = api
        .get("/api/v1/tickets?external_ref=HIS-other", Some(HIS_TOKEN))
        .await;
    assert_eq!(other.body["tickets"], json!([]));

    // A bad reference, and the fields from a kiosk: 403 after the 400s.
    let bad = api
        .post(
            "/api/v1/tickets",
            Some(HIS_TOKEN),
            Some(json!({"service": "kham-noi", "request_id": "his-2", "external_ref": "x".repeat(65)})),
        )
        .await;
    assert_eq!((bad.status, bad.code()), (400, "bad_request"));
    let from_kiosk = api
        .post(
            "/api/v1/tickets",
            Some(KIOSK_TOKEN),
            Some(json!({"service": "kham-noi", "request_id": "k-1", "external_ref": REF})),
        )
        .await;
    assert_eq!((from_kiosk.status, from_kiosk.code()), (403, "forbidden"));

    let log = server.stderr();
    assert!(log.contains(&id), "the log names the ticket: {log}");
    assert!(!log.contains(REF), "the log holds the reference: {log}");
}

/// `s` as a query value.
fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}
