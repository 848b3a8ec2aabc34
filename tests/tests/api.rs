//! Contract §4 against the real server: every row, every error code, the
//! order of checks, and the role matrix.

#![allow(clippy::unwrap_used, clippy::type_complexity)] // tests may panic on a broken server

use luot_tests::*;
use serde_json::{Value, json};

async fn waiting_total(api: &Api) -> u64 {
    let s = api.get("/api/v1/site", None).await;
    s.body["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["waiting"].as_u64().unwrap())
        .sum()
}

#[tokio::test]
async fn site_health_metrics_and_unknown_paths() {
    let site = Site::hospital();
    let server = site.start();
    let api = Api::new(&server);

    let s = api.get("/api/v1/site", None).await;
    assert_eq!(s.status, 200);
    assert_eq!(s.body["name"], "Bệnh viện Thử nghiệm");
    assert_eq!(s.body["services"][0]["id"], "kham-noi");
    assert_eq!(s.body["services"][0]["waiting"], 0);
    assert_eq!(
        s.body["counters"][1]["services"],
        json!(["kham-noi", "kham-ngoai"])
    );
    assert_eq!(s.body["counters"][0]["open"], true);
    assert_eq!(s.body["counters"][0]["serving"], Value::Null);
    assert_eq!(s.body["day"].as_str().unwrap().len(), 10);

    let h = api.get("/healthz", None).await;
    assert_eq!((h.status, h.body.clone()), (200, json!({"status": "ok"})));

    api.issue(KIOSK_TOKEN, "kham-noi", "m1").await;
    let m = api.get("/metrics", None).await;
    assert_eq!(m.status, 200);
    assert!(m.text.contains("luot_tickets_issued_total 1"), "{}", m.text);
    assert!(m.text.contains("luot_waiting{service=\"kham-noi\"} 1"));
    assert!(m.text.contains("luot_websocket_clients"));
    assert!(m.text.contains("luot_store_flush_seconds_bucket"));

    let n = api.get("/api/v1/nope", None).await;
    assert_eq!(n.status, 404);
    assert_eq!(n.code(), "not_found");
    let n = api.get("/nope", None).await;
    assert_eq!((n.status, n.code()), (404, "not_found"));
    let m = api.call("DELETE", "/api/v1/site", None, None).await;
    assert_eq!((m.status, m.code()), (405, "method_not_allowed"));
    let m = api.get("/api/v1/counters/quay-1/next", None).await;
    assert_eq!((m.status, m.code()), (405, "method_not_allowed"));
}

#[tokio::test]
async fn issuing_tickets() {
    let site = Site::hospital();
    let server = site.start();
    let api = Api::new(&server);

    let a = api.issue(KIOSK_TOKEN, "kham-noi", "k-1").await;
    assert_eq!(a.status, 201, "{}", a.text);
    let t = &a.body;
    assert_eq!(t["number"], "A001");
    assert_eq!(t["service"], "kham-noi");
    assert_eq!(t["status"], "waiting");
    assert_eq!(t["position"], 1);
    assert_eq!(t["priority"], Value::Null);
    assert_eq!(t["counter"], Value::Null);
    assert_eq!(t["estimated_wait_s"], Value::Null);
    assert!(t["issued_at"].as_str().unwrap().ends_with("+07:00"));
    let id = t["id"].as_str().unwrap();
    assert!(id.len() >= 3 + 16 && id.starts_with("tk_"));

    // Replay: 200 and the same ticket.
    let r = api.issue(KIOSK_TOKEN, "kham-noi", "k-1").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["id"], t["id"]);
    assert_eq!(r.body["number"], "A001");
    // Same request_id, other service: 409.
    let r = api.issue(KIOSK_TOKEN, "kham-ngoai", "k-1").await;
    assert_eq!((r.status, r.code()), (409, "request_id_reused"));
    // Another device may use the same request_id.
    let staff = api.login("le.thu").await;
    let r = api.issue(&staff, "kham-noi", "k-1").await;
    assert_eq!((r.status, r.body["number"].as_str()), (201, Some("A002")));

    // Staff may issue for any service (reception desk).
    let r = api.issue(&staff, "xet-nghiem", "s-2").await;
    assert_eq!(r.status, 201);
    // A kiosk only for its buttons; unknown service first.
    let r = api.issue(KIOSK_TOKEN, "xet-nghiem", "k-2").await;
    assert_eq!((r.status, r.code()), (403, "forbidden"));
    let r = api.issue(KIOSK_TOKEN, "rang-ham-mat", "k-3").await;
    assert_eq!((r.status, r.code()), (404, "unknown_service"));

    // Priority.
    let r = api
        .post(
            "/api/v1/tickets",
            Some(KIOSK_TOKEN),
            Some(json!({"service": "kham-noi", "priority": "pregnant", "request_id": "k-4"})),
        )
        .await;
    assert_eq!(r.status, 201);
    assert_eq!(r.body["priority"], "pregnant");
    assert_eq!(
        r.body["position"], 1,
        "priority goes ahead of the two normal tickets"
    );
    let r = api
        .post(
            "/api/v1/tickets",
            Some(KIOSK_TOKEN),
            Some(json!({"service": "kham-noi", "priority": "vip", "request_id": "k-5"})),
        )
        .await;
    assert_eq!((r.status, r.code()), (400, "bad_request"));

    // GET a ticket.
    let g = api.get(&format!("/api/v1/tickets/{id}"), None).await;
    assert_eq!(g.status, 200);
    assert_eq!(g.body["number"], "A001");
    assert_eq!(g.body["position"], 2);
    let g = api.get("/api/v1/tickets/tk_doesnotexist", None).await;
    assert_eq!((g.status, g.code()), (404, "unknown_ticket"));
}

#[tokio::test]
async fn bad_input_is_refused_and_changes_nothing() {
    let site = Site::hospital();
    let server = site.start();
    let api = Api::new(&server);
    let url = server.url("/api/v1/tickets");
    let http = reqwest::Client::new();
    let post_raw = |body: Vec<u8>, ct: Option<&'static str>, token: Option<&'static str>| {
        let mut r = http.post(&url).body(body);
        if let Some(ct) = ct {
            r = r.header("content-type", ct);
        }
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        async move {
            let resp = r.send().await.unwrap();
            let status = resp.status().as_u16();
            let v: Value = resp.json().await.unwrap_or(Value::Null);
            (
                status,
                v["error"]["code"].as_str().unwrap_or("").to_string(),
            )
        }
    };
    let k = Some(KIOSK_TOKEN);
    let j = Some("application/json");
    let cases: Vec<(
        Vec<u8>,
        Option<&'static str>,
        Option<&'static str>,
        u16,
        &str,
    )> = vec![
        (b"{not json".to_vec(), j, k, 400, "bad_request"),
        (b"[]".to_vec(), j, k, 400, "bad_request"),
        (
            br#"{"service":"kham-noi"}"#.to_vec(),
            j,
            k,
            400,
            "bad_request",
        ),
        (
            br#"{"service":"kham-noi","request_id":"x","extra":1}"#.to_vec(),
            j,
            k,
            400,
            "bad_request",
        ),
        (
            br#"{"service":42,"request_id":"x"}"#.to_vec(),
            j,
            k,
            400,
            "bad_request",
        ),
        (
            r#"{"service":"kham-noi","request_id":"có dấu"}"#.as_bytes().to_vec(),
            j,
            k,
            400,
            "bad_request",
        ),
        (
            format!(
                r#"{{"service":"kham-noi","request_id":"{}"}}"#,
                "a".repeat(65)
            )
            .into_bytes(),
            j,
            k,
            400,
            "bad_request",
        ),
        (
            br#"{"service":"kham-noi","request_id":""}"#.to_vec(),
            j,
            k,
            400,
            "bad_request",
        ),
        (
            br#"{"service":"kham-noi","request_id":"x"}"#.to_vec(),
            None,
            k,
            415,
            "unsupported_media_type",
        ),
        (
            br#"{"service":"kham-noi","request_id":"x"}"#.to_vec(),
            Some("text/plain"),
            k,
            415,
            "unsupported_media_type",
        ),
        // 401 comes before 400 and 415.
        (b"{not json".to_vec(), None, None, 401, "unauthorized"),
        (
            b"{not json".to_vec(),
            j,
            Some("wrong-token"),
            401,
            "unauthorized",
        ),
        // 413 may come first.
        (vec![b' '; 16 * 1024 + 1], j, None, 413, "too_large"),
        (vec![b' '; 1024 * 1024], j, k, 413, "too_large"),
    ];
    for (body, ct, token, status, code) in cases {
        let preview = String::from_utf8_lossy(&body[..body.len().min(60)]).to_string();
        let got = post_raw(body, ct, token).await;
        assert_eq!(got, (status, code.to_string()), "body {preview:?}");
    }
    assert_eq!(waiting_total(&api).await, 0, "no bad request made a ticket");

    // A body of exactly 16 KiB is accepted.
    let mut body = br#"{"service":"kham-noi","request_id":"exact"}"#.to_vec();
    body.resize(16 * 1024, b' ');
    assert_eq!(post_raw(body, j, k).await.0, 201);
    assert_eq!(waiting_total(&api).await, 1);

    // Login bodies.
    let l = api
        .post("/api/v1/login", None, Some(json!({"username": "le.thu"})))
        .await;
    assert_eq!((l.status, l.code()), (400, "bad_request"));
    let l = api
        .post(
            "/api/v1/login",
            None,
            Some(json!({"username": "a".repeat(65), "password": "x"})),
        )
        .await;
    assert_eq!(l.status, 400);
    let l = api
        .post(
            "/api/v1/login",
            None,
            Some(json!({"username": "le.thu", "password": "x".repeat(257)})),
        )
        .await;
    assert_eq!(l.status, 400);
    // A malformed Authorization header is a wrong token.
    let r = http
        .get(server.url("/api/v1/devices"))
        .header("authorization", "Basic abc")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
}

#[tokio::test]
async fn login_and_rate_limit() {
    let site = Site::hospital();
    let server = site.start();
    let api = Api::new(&server);
    let ok = api
        .post(
            "/api/v1/login",
            None,
            Some(json!({"username": "le.thu", "password": PASSWORD})),
        )
        .await;
    assert_eq!(ok.status, 200);
    assert_eq!(ok.body["role"], "staff");
    assert!(ok.body["expires_at"].as_str().unwrap().ends_with("+07:00"));
    let bad = |u: &str| json!({"username": u, "password": "sai"});
    let r = api.post("/api/v1/login", None, Some(bad("le.thu"))).await;
    assert_eq!((r.status, r.code()), (401, "unauthorized"));
    let r = api.post("/api/v1/login", None, Some(bad("nobody"))).await;
    assert_eq!((r.status, r.code()), (401, "unauthorized"));
    for _ in 0..9 {
        let r = api.post("/api/v1/login", None, Some(bad("le.thu"))).await;
        assert_eq!(r.status, 401);
    }
    // Ten failures within a minute: even the right password gets 429.
    let r = api
        .post(
            "/api/v1/login",
            None,
            Some(json!({"username": "le.thu", "password": PASSWORD})),
        )
        .await;
    assert_eq!((r.status, r.code()), (429, "too_many_attempts"));
    // Other users are not affected.
    let r = api
        .post(
            "/api/v1/login",
            None,
            Some(json!({"username": "tran.an", "password": PASSWORD})),
        )
        .await;
    assert_eq!(r.status, 200);
    // Passwords never reach the log.
    assert!(!server.stderr().contains(PASSWORD));
    assert!(!server.stderr().contains("\"sai\""));
}

#[tokio::test]
async fn counter_workflow_and_errors() {
    let site = Site::hospital();
    let server = site.start();
    let api = Api::new(&server);
    let staff = api.login("le.thu").await;
    let admin = api.login("admin").await;

    let next = |c: &str| format!("/api/v1/counters/{c}/next");
    let r = api.post(&next("quay-1"), Some(&staff), None).await;
    assert_eq!((r.status, r.code()), (409, "queue_empty"));
    for action in ["recall", "done", "no-show"] {
        let r = api
            .post(
                &format!("/api/v1/counters/quay-1/{action}"),
                Some(&staff),
                None,
            )
            .await;
        assert_eq!((r.status, r.code()), (409, "nothing_called"), "{action}");
    }
    let r = api
        .post(
            "/api/v1/counters/quay-1/transfer",
            Some(&staff),
            Some(json!({"service": "xet-nghiem", "front": true})),
        )
        .await;
    assert_eq!((r.status, r.code()), (409, "nothing_called"));

    let a1 = api.issue(KIOSK_TOKEN, "kham-noi", "w1").await.body;
    let a2 = api.issue(KIOSK_TOKEN, "kham-noi", "w2").await.body;
    let r = api.post(&next("quay-1"), Some(&staff), None).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["id"], a1["id"]);
    assert_eq!(r.body["status"], "called");
    assert_eq!(r.body["counter"], "quay-1");
    assert!(r.body["called_at"].is_string());

    let r = api
        .post("/api/v1/counters/quay-1/recall", Some(&staff), None)
        .await;
    assert_eq!((r.status, r.body["number"].as_str()), (200, Some("A001")));
    assert_eq!(r.body["status"], "called");

    // Next while A001 is called: A001 is done, A002 called.
    let r = api.post(&next("quay-1"), Some(&staff), None).await;
    assert_eq!(r.body["id"], a2["id"]);
    let g = api
        .get(
            &format!("/api/v1/tickets/{}", a1["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(g.body["status"], "done");
    assert!(g.body["finished_at"].is_string());

    let r = api
        .post("/api/v1/counters/quay-1/no-show", Some(&staff), None)
        .await;
    assert_eq!(
        (r.status, r.body["status"].as_str()),
        (200, Some("no_show"))
    );

    // Feedback.
    let fb = |id: &Value| format!("/api/v1/tickets/{}/feedback", id.as_str().unwrap());
    let r = api
        .post(&fb(&a2["id"]), None, Some(json!({"rating": 5})))
        .await;
    assert_eq!((r.status, r.code()), (409, "not_served"));
    let r = api
        .post(&fb(&a1["id"]), None, Some(json!({"rating": 0})))
        .await;
    assert_eq!((r.status, r.code()), (400, "bad_request"));
    let r = api
        .post(
            &fb(&a1["id"]),
            None,
            Some(json!({"rating": 4, "comment": "x".repeat(501)})),
        )
        .await;
    assert_eq!(r.status, 400);
    let r = api
        .post(
            &fb(&a1["id"]),
            None,
            Some(json!({"rating": 4, "comment": "Nhân viên rất tận tình"})),
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    let r = api
        .post(&fb(&a1["id"]), None, Some(json!({"rating": 5})))
        .await;
    assert_eq!((r.status, r.code()), (409, "already_rated"));
    let r = api
        .post(
            "/api/v1/tickets/tk_nope/feedback",
            None,
            Some(json!({"rating": 5})),
        )
        .await;
    assert_eq!((r.status, r.code()), (404, "unknown_ticket"));

    // Transfer keeps the number; front puts it first.
    let b1 = api.issue(KIOSK_TOKEN, "kham-ngoai", "w3").await.body;
    let a3 = api.issue(KIOSK_TOKEN, "kham-noi", "w4").await.body;
    api.post(&next("quay-1"), Some(&staff), None).await;
    let r = api
        .post(
            "/api/v1/counters/quay-1/transfer",
            Some(&staff),
            Some(json!({"service": "kham-ngoai"})),
        )
        .await;
    assert_eq!(
        (r.status, r.code()),
        (400, "bad_request"),
        "front is required"
    );
    let r = api
        .post(
            "/api/v1/counters/quay-1/transfer",
            Some(&staff),
            Some(json!({"service": "nope", "front": true})),
        )
        .await;
    assert_eq!((r.status, r.code()), (404, "unknown_service"));
    let r = api
        .post(
            "/api/v1/counters/quay-1/transfer",
            Some(&staff),
            Some(json!({"service": "kham-ngoai", "front": true})),
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["id"], a3["id"]);
    assert_eq!(r.body["number"], a3["number"]);
    assert_eq!(r.body["service"], "kham-ngoai");
    assert_eq!(r.body["status"], "waiting");
    assert_eq!(r.body["counter"], Value::Null);
    assert_eq!(r.body["called_at"], Value::Null);
    assert_eq!(r.body["position"], 1);
    let g = api
        .get(
            &format!("/api/v1/tickets/{}", b1["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(g.body["position"], 2);

    // Open and close.
    let r = api
        .post("/api/v1/counters/quay-1/close", Some(&staff), None)
        .await;
    assert_eq!((r.status, r.body["open"].as_bool()), (200, Some(false)));
    assert_eq!(r.body["id"], "quay-1");
    let r = api
        .post("/api/v1/counters/quay-1/close", Some(&staff), None)
        .await;
    assert_eq!((r.status, r.body["open"].as_bool()), (200, Some(false)));
    api.issue(KIOSK_TOKEN, "kham-noi", "w5").await;
    let r = api.post(&next("quay-1"), Some(&staff), None).await;
    assert_eq!((r.status, r.code()), (409, "counter_closed"));
    let r = api
        .post("/api/v1/counters/quay-1/open", Some(&staff), None)
        .await;
    assert_eq!((r.status, r.body["open"].as_bool()), (200, Some(true)));

    // Who: unknown counter is 404 for admin, 403 for staff (not theirs).
    let r = api.post(&next("quay-99"), Some(&admin), None).await;
    assert_eq!((r.status, r.code()), (404, "unknown_counter"));
    let r = api.post(&next("quay-99"), Some(&staff), None).await;
    assert_eq!((r.status, r.code()), (403, "forbidden"));
    let r = api
        .post("/api/v1/counters/quay-1/explode", Some(&admin), None)
        .await;
    assert_eq!(r.status, 404);
}

/// Every endpoint against every kind of caller (contract §2).
#[tokio::test]
async fn role_matrix() {
    let site = Site::hospital();
    let server = site.start();
    let api = Api::new(&server);
    let staff1 = api.login("le.thu").await; // quay-1
    let staff2 = api.login("tran.an").await; // quay-2, quay-3
    let admin = api.login("admin").await;
    let callers: [(&str, Option<&str>); 7] = [
        ("none", None),
        ("wrong", Some("not-a-token")),
        ("kiosk", Some(KIOSK_TOKEN)),
        ("display", Some(DISPLAY_TOKEN)),
        ("staff-own", Some(&staff1)),
        ("staff-other", Some(&staff2)),
        ("admin", Some(&admin)),
    ];
    // expected status per caller, in the order above
    let rows: Vec<(&str, &str, Option<Value>, [u16; 7])> = vec![
        (
            "GET",
            "/api/v1/site",
            None,
            [200, 200, 200, 200, 200, 200, 200],
        ),
        (
            "GET",
            "/api/v1/reports/daily",
            None,
            [401, 401, 403, 403, 403, 403, 200],
        ),
        (
            "GET",
            "/api/v1/devices",
            None,
            [401, 401, 403, 403, 403, 403, 200],
        ),
        (
            "POST",
            "/api/v1/tickets",
            Some(json!({"service": "kham-noi", "request_id": "rm"})),
            [401, 401, 201, 403, 201, 201, 201],
        ),
        (
            "POST",
            "/api/v1/counters/quay-1/open",
            None,
            [401, 401, 403, 403, 200, 403, 200],
        ),
        (
            "POST",
            "/api/v1/counters/quay-1/close",
            None,
            [401, 401, 403, 403, 200, 403, 200],
        ),
        (
            "POST",
            "/api/v1/counters/quay-1/recall",
            None,
            [401, 401, 403, 403, 409, 403, 409],
        ),
        (
            "POST",
            "/api/v1/counters/quay-1/done",
            None,
            [401, 401, 403, 403, 409, 403, 409],
        ),
        (
            "POST",
            "/api/v1/counters/quay-1/no-show",
            None,
            [401, 401, 403, 403, 409, 403, 409],
        ),
        (
            "POST",
            "/api/v1/counters/quay-1/transfer",
            Some(json!({"service": "kham-ngoai", "front": false})),
            [401, 401, 403, 403, 409, 403, 409],
        ),
    ];
    for (method, path, body, expect) in rows {
        for ((name, token), want) in callers.iter().zip(expect) {
            let a = api.call(method, path, *token, body.clone()).await;
            assert_eq!(a.status, want, "{method} {path} as {name}: {}", a.text);
            if want == 401 {
                assert_eq!(a.code(), "unauthorized");
            }
            if want == 403 {
                assert_eq!(a.code(), "forbidden");
            }
        }
    }
    // Next: staff of the counter and admin may call; open the counter first.
    api.post("/api/v1/counters/quay-1/open", Some(&admin), None)
        .await;
    for ((name, token), want) in callers.iter().zip([401, 401, 403, 403, 200, 403, 200]) {
        let a = api.post("/api/v1/counters/quay-1/next", *token, None).await;
        assert_eq!(a.status, want, "next as {name}: {}", a.text);
    }
    // Metrics: anyone on localhost.
    assert_eq!(api.get("/metrics", None).await.status, 200);
    // A ticket's page: anyone holding the id.
    let t = api.issue(KIOSK_TOKEN, "kham-noi", "rm2").await.body;
    let a = api
        .get(
            &format!("/api/v1/tickets/{}", t["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(a.status, 200);
}

#[tokio::test]
async fn reports_and_devices() {
    let site = Site::hospital();
    let server = site.start();
    let api = Api::new(&server);
    let staff = api.login("le.thu").await;
    let admin = api.login("admin").await;
    for i in 0..3 {
        api.issue(KIOSK_TOKEN, "kham-noi", &format!("r{i}")).await;
    }
    api.issue(KIOSK_TOKEN, "kham-ngoai", "r9").await;
    let first = api
        .post("/api/v1/counters/quay-1/next", Some(&staff), None)
        .await
        .body;
    api.post("/api/v1/counters/quay-1/next", Some(&staff), None)
        .await;
    api.post("/api/v1/counters/quay-1/no-show", Some(&staff), None)
        .await;
    api.post(
        &format!("/api/v1/tickets/{}/feedback", first["id"].as_str().unwrap()),
        None,
        Some(json!({"rating": 5})),
    )
    .await;

    let r = api.get("/api/v1/reports/daily", Some(&admin)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let services = r.body["services"].as_array().unwrap();
    let noi = services.iter().find(|s| s["id"] == "kham-noi").unwrap();
    assert_eq!(noi["issued"], 3);
    assert_eq!(noi["served"], 1);
    assert_eq!(noi["no_shows"], 1);
    assert!(noi["wait_s"]["mean"].is_number());
    assert!(noi["service_s"]["p50"].is_number());
    assert_eq!(noi["ratings"], json!({"count": 1, "mean": 5.0}));
    let ngoai = services.iter().find(|s| s["id"] == "kham-ngoai").unwrap();
    assert_eq!(ngoai["issued"], 1);
    assert_eq!(ngoai["wait_s"]["mean"], Value::Null);
    let q1 = r.body["counters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "quay-1")
        .unwrap();
    assert_eq!(
        (q1["served"].as_u64(), q1["no_shows"].as_u64()),
        (Some(1), Some(1))
    );
    assert!(q1.get("issued").is_none());
    let st = r.body["staff"].as_array().unwrap();
    assert_eq!(st[0]["id"], "le.thu");
    assert_eq!(st[0]["ratings"]["count"], 1);

    let day = r.body["day"].as_str().unwrap().to_string();
    let csv = api
        .http
        .get(server.url(&format!("/api/v1/reports/daily?day={day}")))
        .bearer_auth(&admin)
        .header("accept", "text/csv")
        .send()
        .await
        .unwrap();
    assert!(
        csv.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    let text = csv.text().await.unwrap();
    let mut lines = text.lines();
    assert_eq!(
        lines.next().unwrap(),
        "kind,id,issued,served,no_shows,wait_mean_s,wait_p50_s,wait_p90_s,service_mean_s,service_p50_s,service_p90_s,ratings,rating_mean"
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("service,kham-noi,3,1,1,"))
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("service,kham-ngoai,1,0,0,,,,,,,0,"))
    );
    assert!(text.lines().any(|l| l.starts_with("staff,le.thu,,1,1,")));

    let r = api
        .get("/api/v1/reports/daily?day=2026-13-45", Some(&admin))
        .await;
    assert_eq!((r.status, r.code()), (400, "bad_request"));
    let r = api
        .get("/api/v1/reports/daily?day=2020-01-01", Some(&admin))
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["services"][0]["issued"], 0);

    let d = api.get("/api/v1/devices", Some(&admin)).await;
    assert_eq!(d.status, 200);
    let list = d.body["devices"].as_array().unwrap();
    assert_eq!(list.len(), 3);
    let k = list.iter().find(|d| d["id"] == "kiosk-sanh-a").unwrap();
    assert_eq!(k["role"], "kiosk");
    assert_eq!(k["connected"], false);
    assert_eq!(k["printer"], Value::Null);
}
