//! Bad input and hostile clients against the real server: arbitrary bytes
//! to every body-taking endpoint and to the websocket always get a contract
//! error (never a 5xx, never a change), a slow-loris client is cut off, and a
//! websocket from a foreign page is refused.

#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use luot_tests::*;
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, TestRunner};
use serde_json::json;

const CONTRACT_ERRORS: [u16; 8] = [400, 401, 403, 404, 409, 413, 415, 429];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn arbitrary_bodies_get_contract_errors_and_change_nothing() {
    let site = Site::hospital();
    let server = site.start();
    let api = Api::new(&server);
    let staff = api.login("admin").await;
    let http = reqwest::Client::new();
    let before = api.get("/api/v1/site", None).await.body;
    let paths = [
        "/api/v1/tickets",
        "/api/v1/login",
        "/api/v1/tickets/tk_x/feedback",
        "/api/v1/counters/quay-1/transfer",
    ];
    // Bodies: random bytes, random JSON-ish text, and near-miss objects.
    let strategy = prop_oneof![
        prop::collection::vec(any::<u8>(), 0..600).boxed(),
        "[ -~]{0,300}".prop_map(|s| s.into_bytes()).boxed(),
        (any::<i64>(), "[a-z_]{0,12}", "[ -~]{0,20}")
            .prop_map(
                |(n, k, v)| format!(r#"{{"service":{n},"{k}":"{v}","request_id":"{v}"}}"#)
                    .into_bytes()
            )
            .boxed(),
    ];
    let mut runner = TestRunner::new(Config::default());
    let cases: Vec<Vec<u8>> = (0..200)
        .map(|_| strategy.new_tree(&mut runner).unwrap().current())
        .collect();
    for (i, body) in cases.into_iter().enumerate() {
        let path = paths[i % paths.len()];
        let token = if i % 3 == 0 {
            None
        } else {
            Some(if i % 3 == 1 {
                KIOSK_TOKEN
            } else {
                staff.as_str()
            })
        };
        let mut req = http
            .post(server.url(path))
            .body(body.clone())
            .header("content-type", "application/json");
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let v: serde_json::Value = resp.json().await.unwrap_or(serde_json::Value::Null);
        assert!(
            CONTRACT_ERRORS.contains(&status),
            "{path} with {:?} answered {status}",
            String::from_utf8_lossy(&body)
        );
        assert!(
            v["error"]["code"].is_string() && v["error"]["message"].is_string(),
            "{path}: {v}"
        );
    }
    assert_eq!(
        api.get("/api/v1/site", None).await.body,
        before,
        "nothing changed"
    );
    assert_eq!(api.get("/healthz", None).await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn arbitrary_websocket_frames_get_error_frames() {
    let site = Site::hospital();
    let server = site.start();
    let (mut ws, _) = Ws::hello(&server, Some(KIOSK_TOKEN), None).await;
    ws.recv().await.unwrap(); // snapshot
    let mut runner = TestRunner::new(Config::default());
    let frames: Vec<String> = (0..150)
        .map(|_| "[ -~]{0,200}".new_tree(&mut runner).unwrap().current())
        .collect();
    for f in frames {
        if f.contains("\"hello\"") || f.contains("\"issue\"") {
            continue; // a valid command is not bad input
        }
        ws.send_text(&f).await;
        let answer = ws.recv().await.expect("the socket stays open");
        assert_eq!(answer["type"], "error", "{f:?} → {answer}");
        assert_eq!(answer["error"]["code"], "bad_request");
    }
    let api = Api::new(&server);
    assert_eq!(
        api.get("/api/v1/site", None).await.body["services"][0]["waiting"],
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_loris_is_cut_off_and_others_are_served() {
    let site = Site::hospital();
    let server = site.start();
    // 200 clients that send half a request line and then trickle.
    let mut slow = Vec::new();
    for _ in 0..200 {
        let mut s = std::net::TcpStream::connect(server.addr).unwrap();
        s.write_all(b"GET /api/v1/site HTTP/1.1\r\nHost: x\r\n")
            .unwrap();
        slow.push(s);
    }
    // Meanwhile a normal client is served at once.
    let api = Api::new(&server);
    let t0 = Instant::now();
    assert_eq!(api.get("/api/v1/site", None).await.status, 200);
    assert!(t0.elapsed() < Duration::from_secs(5));
    // The slow ones are closed once the header read timeout has passed.
    tokio::time::sleep(Duration::from_secs(12)).await;
    let mut closed = 0;
    for s in &mut slow {
        s.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let mut buf = [0u8; 512];
        let _ = s.write_all(b"X-Trickle: 1\r\n");
        match s.read(&mut buf) {
            Ok(0) => closed += 1,
            Ok(_) => closed += 1, // an error answer (408) and then close
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => closed += 1,
            Err(_) => {}
        }
    }
    assert_eq!(closed, 200, "every slow client was cut off");
}

#[tokio::test]
async fn a_websocket_from_a_foreign_page_is_refused() {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let site = Site::hospital();
    let server = site.start();
    let connect = |origin: Option<String>| {
        let mut req = server.ws_url().into_client_request().unwrap();
        if let Some(o) = origin {
            req.headers_mut().insert("origin", o.parse().unwrap());
        }
        tokio_tungstenite::connect_async(req)
    };
    let err = connect(Some("https://evil.example".into()))
        .await
        .expect_err("refused");
    assert!(err.to_string().contains("403"), "{err}");
    // The server's own pages, the site's public_url, and clients without Origin are fine.
    assert!(
        connect(Some(format!("http://{}", server.addr)))
            .await
            .is_ok()
    );
    assert!(connect(Some("http://luot.test".into())).await.is_ok());
    let (mut ws, _) = connect(None).await.unwrap();
    use futures_util::SinkExt;
    ws.send(tokio_tungstenite::tungstenite::Message::Text(
        json!({"type": "hello", "token": DISPLAY_TOKEN})
            .to_string()
            .into(),
    ))
    .await
    .unwrap();
}

/// 300 logins at once with made-up names (each a 19 MiB argon2id check): the
/// server queues them instead of running them all together, stays small,
/// answers each with 401 or a 503 "busy", and a real login still works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_flood_does_not_blow_up_memory() {
    let site = Site::hospital();
    let server = site.start();
    let api = Api::new(&server);
    let pid = server.child.id();
    let peak = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let sampler = {
        let peak = peak.clone();
        tokio::spawn(async move {
            loop {
                if let Some((rss, _)) = luot_tests::load::proc_sample(pid) {
                    peak.fetch_max(rss as u64, std::sync::atomic::Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };
    let attempts = (0..300).map(|i| {
        let api = api.clone();
        async move {
            api.post(
                "/api/v1/login",
                None,
                Some(json!({"username": format!("khach-{i}"), "password": "đoán-mò"})),
            )
            .await
            .status
        }
    });
    let statuses = futures_util::future::join_all(attempts).await;
    sampler.abort();
    let peak = peak.load(std::sync::atomic::Ordering::Relaxed);
    assert!(
        statuses.iter().all(|s| *s == 401 || *s == 503),
        "every attempt refused cleanly: {statuses:?}"
    );
    assert!(
        peak < 120,
        "RSS peaked at {peak} MB during the flood (300 checks at 19 MiB each would be 5.7 GB)"
    );
    eprintln!("RSS peak during the login flood: {peak} MB");
    // A real login still gets through (api.login asserts the 200).
    api.login("le.thu").await;
}
