//! Phone alerts (contract §12, rules 91–94) with the real server, a local
//! SMS gateway and a local push endpoint on 127.0.0.1: a patient who asked
//! for alerts gets "còn N người" when the queue brings the ticket near and
//! the call when it is called, by SMS through the gateway (with its retry
//! and idempotency key) and by Web Push (decrypted and its VAPID signature
//! checked here with code of this test, not the server's); a push service's
//! 410 drops the subscription; every refusal in the contract's order; and
//! the phone is in no file under the data directory, no log line and no
//! event, while the registration survives a kill -9.

#![allow(clippy::unwrap_used)] // tests may panic on a broken server

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE, URL_SAFE_NO_PAD};
use luot_tests::*;
use p256::elliptic_curve::sec1::ToEncodedPoint;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

const GATEWAY_AUTH: &str = "Bearer gw-secret-0123456789";

// ------------------------------------------------------------ a receiver

/// One request a receiver got.
#[derive(Debug, Clone)]
struct Got {
    method: String,
    path: String,
    headers: HashMap<String, String>,
    body: Vec<u8>,
}

impl Got {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }
    fn header(&self, name: &str) -> &str {
        self.headers.get(name).map_or("", String::as_str)
    }
}

/// A plain HTTP/1.1 endpoint on 127.0.0.1 that records every request and
/// answers each with the next scripted status (201 when none is left).
struct Receiver {
    addr: SocketAddr,
    rx: mpsc::UnboundedReceiver<Got>,
    script: Arc<Mutex<VecDeque<u16>>>,
}

impl Receiver {
    async fn start() -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = mpsc::unbounded_channel();
        let script = Arc::new(Mutex::new(VecDeque::new()));
        let s = script.clone();
        tokio::spawn(async move {
            while let Ok((conn, _)) = listener.accept().await {
                tokio::spawn(answer(conn, tx.clone(), s.clone()));
            }
        });
        Receiver { addr, rx, script }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The statuses the next requests get.
    fn answer_next(&self, statuses: &[u16]) {
        self.script.lock().unwrap().extend(statuses);
    }

    /// The next request, within 60 s.
    async fn next(&mut self) -> Got {
        tokio::time::timeout(Duration::from_secs(60), self.rx.recv())
            .await
            .expect("a request within 60 s")
            .expect("receiver running")
    }
}

async fn answer(
    mut conn: TcpStream,
    tx: mpsc::UnboundedSender<Got>,
    script: Arc<Mutex<VecDeque<u16>>>,
) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        match conn.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let mut lines = head.split("\r\n");
    let mut first = lines.next().unwrap_or("").split(' ');
    let method = first.next().unwrap_or("").to_string();
    let path = first.next().unwrap_or("").to_string();
    let headers: HashMap<String, String> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let len: usize = headers
        .get("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = buf[head_end + 4..].to_vec();
    while body.len() < len {
        match conn.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => body.extend_from_slice(&chunk[..n]),
        }
    }
    let status = script.lock().unwrap().pop_front().unwrap_or(201);
    let reply = format!("HTTP/1.1 {status} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
    let _ = conn.write_all(reply.as_bytes()).await;
    let _ = conn.shutdown().await;
    let _ = tx.send(Got {
        method,
        path,
        headers,
        body,
    });
}

// ------------------------------------------------------------ a browser's keys

/// What a browser's push subscription holds: its P-256 key pair and
/// authentication secret, made here.
struct Browser {
    secret: p256::SecretKey,
    auth: [u8; 16],
}

impl Browser {
    fn new() -> Browser {
        let secret = loop {
            if let Ok(k) = p256::SecretKey::from_slice(&rand::random::<[u8; 32]>()) {
                break k;
            }
        };
        Browser {
            secret,
            auth: rand::random(),
        }
    }

    fn subscription(&self, endpoint: &str) -> Value {
        let public = self.secret.public_key().to_encoded_point(false);
        json!({
            "endpoint": endpoint,
            "expirationTime": null,
            "keys": {
                "p256dh": URL_SAFE_NO_PAD.encode(public.as_bytes()),
                "auth": URL_SAFE_NO_PAD.encode(self.auth),
            }
        })
    }

    /// Opens an `aes128gcm` push body (RFC 8291) with web-push-native's
    /// decryption, an implementation independent of the server's.
    fn open(&self, body: &[u8]) -> Value {
        let auth = web_push_native::Auth::clone_from_slice(&self.auth);
        let plain = web_push_native::decrypt(body.to_vec(), &self.secret, &auth).unwrap();
        serde_json::from_slice(&plain).unwrap()
    }
}

/// Checks a push request's VAPID `Authorization` (RFC 8292) with this
/// test's own code: `k` is the site's `push_key`, the JWT is ES256-signed
/// by it for the endpoint's origin and the configured subject.
fn check_vapid(got: &Got, push_key: &str, origin: &str, subject: &str) {
    use p256::ecdsa::signature::Verifier;
    let auth = got.header("authorization");
    let rest = auth.strip_prefix("vapid ").expect("a vapid authorization");
    let mut t = "";
    let mut k = "";
    for part in rest.split(',') {
        let part = part.trim();
        if let Some(v) = part.strip_prefix("t=") {
            t = v;
        }
        if let Some(v) = part.strip_prefix("k=") {
            k = v;
        }
    }
    assert_eq!(k, push_key, "the VAPID key is the one /site gives");
    let pieces: Vec<&str> = t.split('.').collect();
    assert_eq!(pieces.len(), 3, "a JWT: {t}");
    let header: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(pieces[0]).unwrap()).unwrap();
    assert_eq!(header["alg"], "ES256");
    let claims: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(pieces[1]).unwrap()).unwrap();
    assert_eq!(claims["aud"], origin);
    assert_eq!(claims["sub"], subject);
    let now = chrono::Utc::now().timestamp();
    let exp = claims["exp"].as_i64().unwrap();
    assert!(
        exp > now && exp <= now + 24 * 3600,
        "exp within 24 h: {exp}"
    );
    let key =
        p256::ecdsa::VerifyingKey::from_sec1_bytes(&URL_SAFE_NO_PAD.decode(k).unwrap()).unwrap();
    let sig =
        p256::ecdsa::Signature::from_slice(&URL_SAFE_NO_PAD.decode(pieces[2]).unwrap()).unwrap();
    key.verify(format!("{}.{}", pieces[0], pieces[1]).as_bytes(), &sig)
        .expect("the JWT is signed by the site's VAPID key");
}

// ------------------------------------------------------------ sites and queue

/// The test hospital with `[notify]` appended (and an https public URL
/// when `https`).
fn site_with(notify: &str, https: bool) -> Site {
    let mut toml = test_site_toml(false);
    if https {
        toml = toml.replace(
            "public_url = \"http://luot.test\"",
            "public_url = \"https://luot.test\"",
        );
    }
    Site::new(&format!("{toml}\n[notify]\n{notify}\n"))
}

fn gateway_notify(r: &Receiver, near: u32) -> String {
    format!(
        "kind = \"http\"\nurl = \"{}\"\nauthorization = \"{GATEWAY_AUTH}\"\nnear_position = {near}\n",
        r.url("/send")
    )
}

const PUSH_NOTIFY: &str =
    "web_push = true\npush_subject = \"mailto:cntt@bv.example.vn\"\nnear_position = 3\n";

/// Issues `n` tickets of Khám Nội as staff; their ids.
async fn issue(api: &Api, staff: &str, tag: &str, n: usize) -> Vec<String> {
    let mut ids = vec![];
    for i in 0..n {
        let a = api.issue(staff, "kham-noi", &format!("{tag}-{i}")).await;
        assert_eq!(a.status, 201, "{}", a.text);
        ids.push(a.body["id"].as_str().unwrap().to_string());
    }
    ids
}

async fn next(api: &Api, staff: &str) -> Value {
    let a = api
        .post("/api/v1/counters/quay-1/next", Some(staff), None)
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    a.body
}

async fn notify(api: &Api, ticket: &str, body: Value) -> Answer {
    api.post(
        &format!("/api/v1/tickets/{ticket}/notify"),
        None,
        Some(body),
    )
    .await
}

fn code(a: &Answer) -> (u16, String) {
    (a.status, a.code().to_string())
}

// ------------------------------------------------------------ the gateway

#[tokio::test]
async fn the_sms_gateway_gets_near_once_then_the_call_and_a_failure_is_tried_again() {
    let mut gw = Receiver::start().await;
    let site = site_with(&gateway_notify(&gw, 2), false);
    let server = site.start();
    let api = Api::new(&server);
    let staff = api.login("le.thu").await;
    let t = issue(&api, &staff, "g", 5).await;

    let a = notify(&api, &t[3], json!({"phone": "0912345678", "consent": true})).await;
    assert_eq!(a.status, 204, "{}", a.text);
    let seen = api.get(&format!("/api/v1/tickets/{}", t[3]), None).await;
    assert_eq!(seen.body["notify"], json!({"sms": true, "push": 0}));
    assert_eq!(seen.body["position"], 4);

    // The gateway fails the first attempt: the same message comes again.
    gw.answer_next(&[500]);
    next(&api, &staff).await; // A001 called: A004 is 3rd
    next(&api, &staff).await; // A002 called: A004 is 2nd
    let first = gw.next().await;
    assert_eq!(
        (first.method.as_str(), first.path.as_str()),
        ("POST", "/send")
    );
    assert_eq!(first.header("authorization"), GATEWAY_AUTH);
    assert!(first.header("content-type").starts_with("application/json"));
    assert_eq!(
        first.json(),
        json!({
            "site": "luot",
            "to": "+84912345678",
            "text": "Số A004 sắp đến lượt, còn 2 người. Mời về khu chờ Khám Nội.",
            "kind": "near",
            "ticket": t[3],
            "number": "A004",
            "idempotency_key": format!("{}:near:1", t[3]),
        })
    );
    let again = gw.next().await;
    assert_eq!(again.body, first.body, "the retry is the same message");

    next(&api, &staff).await; // A003 called: A004 is 1st, no second near
    let called = next(&api, &staff).await; // A004 called
    assert_eq!(called["number"], "A004");
    let call = gw.next().await;
    assert_eq!(call.json()["kind"], "called");
    assert_eq!(call.json()["text"], "Mời số A004 đến Quầy 1.");
    assert_eq!(call.json()["idempotency_key"], format!("{}:called:1", t[3]));

    // A recall sends nothing; a called ticket takes no registration.
    let r = api
        .post("/api/v1/counters/quay-1/recall", Some(&staff), None)
        .await;
    assert_eq!(r.status, 200);
    let a = notify(&api, &t[3], json!({"phone": "0912345678", "consent": true})).await;
    assert_eq!(code(&a), (409, "not_waiting".into()));

    // A005 is next in line: registering now sends `near` at once.
    let a = notify(
        &api,
        &t[4],
        json!({"phone": "+84387654321", "consent": true}),
    )
    .await;
    assert_eq!(a.status, 204, "{}", a.text);
    let near = gw.next().await.json();
    assert_eq!(
        (
            near["number"].clone(),
            near["kind"].clone(),
            near["to"].clone()
        ),
        (json!("A005"), json!("near"), json!("+84387654321")),
        "the next message is A005's near, not a recall of A004"
    );
    assert_eq!(
        near["text"],
        "Số A005 sắp đến lượt, còn 1 người. Mời về khu chờ Khám Nội."
    );
}

// ------------------------------------------------------------ refusals

#[tokio::test]
async fn notify_refusals_come_in_the_contracts_order_and_three_calls_is_the_limit() {
    let gw = Receiver::start().await;
    let site = site_with(&gateway_notify(&gw, 3), false);
    let server = site.start();
    let api = Api::new(&server);
    let staff = api.login("le.thu").await;
    let t = issue(&api, &staff, "r", 3).await;
    let push = Browser::new().subscription(&gw.url("/push/1"));

    let s = api.get("/api/v1/site", None).await;
    assert_eq!(s.body["notify"], json!({"sms": true, "push": false}));
    assert_eq!(s.body["push_key"], Value::Null);

    for bad in [
        json!({"phone": "0912345678"}),
        json!({"phone": "0912345678", "consent": false}),
        json!({"consent": true}),
        json!({"phone": "0212345678", "consent": true}),
        json!({"phone": "091234567", "consent": true}),
        json!({"phone": "0912345678", "consent": true, "email": "x@y"}),
        json!({"push": {"endpoint": "ftp://x/y", "keys": push["keys"]}, "consent": true}),
        json!({"push": {"endpoint": gw.url("/p"), "keys": {"p256dh": "AAAA", "auth": "AAAA"}}, "consent": true}),
    ] {
        let a = notify(&api, &t[2], bad.clone()).await;
        assert_eq!(code(&a), (400, "bad_request".into()), "{bad}: {}", a.text);
        // 400 before 404
        let a = notify(&api, "tk_nope", bad.clone()).await;
        assert_eq!(a.status, 400, "{bad}");
    }
    let phone = json!({"phone": "0912345678", "consent": true});
    let a = notify(&api, "tk_nope", phone.clone()).await;
    assert_eq!(code(&a), (404, "unknown_ticket".into()));

    // Web Push is off here: 409 notify_off, and it is not counted.
    let a = notify(&api, &t[2], json!({"push": push, "consent": true})).await;
    assert_eq!(code(&a), (409, "notify_off".into()));
    // not_waiting comes before notify_off.
    next(&api, &staff).await;
    let a = notify(&api, &t[0], json!({"push": push, "consent": true})).await;
    assert_eq!(code(&a), (409, "not_waiting".into()));

    // Three calls, DELETE in between does not give one back.
    assert_eq!(notify(&api, &t[2], phone.clone()).await.status, 204);
    let path = format!("/api/v1/tickets/{}", t[2]);
    let d = api
        .call("DELETE", &format!("{path}/notify"), None, None)
        .await;
    assert_eq!(d.status, 204, "{}", d.text);
    assert_eq!(
        api.get(&path, None).await.body["notify"],
        json!({"sms": false, "push": 0})
    );
    assert_eq!(notify(&api, &t[2], phone.clone()).await.status, 204);
    assert_eq!(notify(&api, &t[2], phone.clone()).await.status, 204);
    let a = notify(&api, &t[2], phone.clone()).await;
    assert_eq!(code(&a), (429, "too_many_attempts".into()));
    assert_eq!(
        api.get(&path, None).await.body["notify"],
        json!({"sms": true, "push": 0})
    );

    // `notify` on POST /tickets: a kiosk's 400 first, then its 403.
    let body = |n: Value, rid: &str| json!({"service": "kham-noi", "request_id": rid, "notify": n});
    let a = api
        .post(
            "/api/v1/tickets",
            Some(KIOSK_TOKEN),
            Some(body(json!({"phone": "12", "consent": true}), "k1")),
        )
        .await;
    assert_eq!(a.status, 400, "{}", a.text);
    let a = api
        .post(
            "/api/v1/tickets",
            Some(KIOSK_TOKEN),
            Some(body(phone.clone(), "k2")),
        )
        .await;
    assert_eq!(code(&a), (403, "forbidden".into()));
    let a = api
        .post(
            "/api/v1/tickets",
            Some(&staff),
            Some(body(json!({"push": push, "consent": true}), "s1")),
        )
        .await;
    assert_eq!(code(&a), (409, "notify_off".into()));
    let a = api
        .post(
            "/api/v1/tickets",
            Some(&staff),
            Some(body(phone.clone(), "s2")),
        )
        .await;
    assert_eq!(a.status, 201, "{}", a.text);
    let id = a.body["id"].as_str().unwrap();
    let seen = api.get(&format!("/api/v1/tickets/{id}"), None).await;
    assert_eq!(seen.body["notify"], json!({"sms": true, "push": 0}));
}

// ------------------------------------------------------------ Web Push

#[tokio::test]
async fn web_push_brings_near_and_the_call_encrypted_and_a_410_drops_the_subscription() {
    let mut ep = Receiver::start().await;
    let site = site_with(PUSH_NOTIFY, true);
    let server = site.start();
    let api = Api::new(&server);
    let staff = api.login("le.thu").await;

    let s = api.get("/api/v1/site", None).await;
    assert_eq!(s.body["notify"], json!({"sms": false, "push": true}));
    let push_key = s.body["push_key"].as_str().unwrap().to_string();
    let raw = URL_SAFE_NO_PAD.decode(&push_key).unwrap();
    assert_eq!((raw.len(), raw[0]), (65, 4), "an uncompressed P-256 point");

    let t = issue(&api, &staff, "p", 4).await;
    let browser = Browser::new();
    let a = notify(
        &api,
        &t[3],
        json!({"push": browser.subscription(&ep.url("/push/sub-1")), "consent": true}),
    )
    .await;
    assert_eq!(a.status, 204, "{}", a.text);
    let path = format!("/api/v1/tickets/{}", t[3]);
    assert_eq!(
        api.get(&path, None).await.body["notify"],
        json!({"sms": false, "push": 1})
    );

    next(&api, &staff).await; // A004 is 3rd now
    let got = ep.next().await;
    assert_eq!(
        (got.method.as_str(), got.path.as_str()),
        ("POST", "/push/sub-1")
    );
    assert_eq!(got.header("ttl"), "600");
    assert_eq!(got.header("urgency"), "high");
    assert_eq!(got.header("content-encoding"), "aes128gcm");
    check_vapid(
        &got,
        &push_key,
        &format!("http://{}", ep.addr),
        "mailto:cntt@bv.example.vn",
    );
    assert_eq!(
        browser.open(&got.body),
        json!({
            "kind": "near",
            "number": "A004",
            "position": 3,
            "counter_name": "",
            "text": "Số A004 sắp đến lượt, còn 3 người. Mời về khu chờ Khám Nội.",
            "url": format!("https://luot.test/t/{}", t[3]),
        })
    );

    // The push service has forgotten the subscription by the call.
    ep.answer_next(&[410]);
    next(&api, &staff).await;
    next(&api, &staff).await;
    next(&api, &staff).await; // A004 called
    let got = ep.next().await;
    assert_eq!(
        browser.open(&got.body),
        json!({
            "kind": "called",
            "number": "A004",
            "position": null,
            "counter_name": "Quầy 1",
            "text": "Mời số A004 đến Quầy 1.",
            "url": format!("https://luot.test/t/{}", t[3]),
        })
    );
    let mut dropped = false;
    for _ in 0..100 {
        if api.get(&path, None).await.body["notify"]["push"] == 0 {
            dropped = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(dropped, "a 410 drops the subscription");
}

// ------------------------------------------------------------ privacy

/// Every form of `phone` a file could hold it in: the digits as given, as
/// kept, without prefix; in base64 at every alignment; in hex.
fn encodings(phone: &str) -> Vec<Vec<u8>> {
    let national = &phone[3..]; // +84 912345678 → 912345678
    let forms = [
        phone.to_string(),
        format!("0{national}"),
        national.to_string(),
        format!("84{national}"),
    ];
    let mut out: Vec<Vec<u8>> = vec![];
    for f in &forms {
        out.push(f.as_bytes().to_vec());
        out.push(hex::encode(f).into_bytes());
        out.push(hex::encode_upper(f).into_bytes());
        let utf16: Vec<u8> = f.encode_utf16().flat_map(u16::to_le_bytes).collect();
        out.push(utf16);
        for engine in [&STANDARD, &URL_SAFE] {
            for pad in 0..3 {
                let mut b = vec![b'x'; pad];
                b.extend_from_slice(f.as_bytes());
                let e = engine.encode(&b);
                // the characters that depend only on the phone's bytes
                let start = (pad * 4).div_ceil(3) + 1;
                let end = e.trim_end_matches('=').len().saturating_sub(2);
                if end > start + 6 {
                    out.push(e.as_bytes()[start..end].to_vec());
                }
            }
        }
    }
    out
}

fn holds(hay: &[u8], needles: &[Vec<u8>]) -> bool {
    needles
        .iter()
        .any(|n| hay.windows(n.len()).any(|w| w == n.as_slice()))
}

fn files_holding(dir: &Path, needles: &[Vec<u8>]) -> Vec<String> {
    let mut out = vec![];
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(files_holding(&p, needles));
        } else if let Ok(bytes) = std::fs::read(&p)
            && holds(&bytes, needles)
        {
            out.push(p.display().to_string());
        }
    }
    out
}

#[tokio::test]
async fn the_phone_is_in_no_file_log_or_event_and_its_registration_survives_a_kill() {
    let mut gw = Receiver::start().await;
    let site = site_with(
        &format!(
            "{}{PUSH_NOTIFY}",
            gateway_notify(&gw, 1).replace("near_position = 1\n", "")
        ),
        true,
    );
    let mut server = site.start();
    let api = Api::new(&server);
    let staff = api.login("le.thu").await;
    let phone = "+84987654321";
    let needles = encodings(phone);

    let t = issue(&api, &staff, "v", 6).await;
    let browser = Browser::new();
    let a = notify(
        &api,
        &t[5],
        json!({"phone": "0987654321", "push": browser.subscription(&gw.url("/push/v")), "consent": true}),
    )
    .await;
    assert_eq!(a.status, 204, "{}", a.text);

    // Durable before the 204: a kill -9 keeps it.
    server.kill9();
    let server = Server::start(&site.config(), &site.data(), &[]);
    let api = Api::new(&server);
    let path = format!("/api/v1/tickets/{}", t[5]);
    assert_eq!(
        api.get(&path, None).await.body["notify"],
        json!({"sms": true, "push": 1})
    );
    let staff = api.login("le.thu").await;
    let admin = api.login("admin").await;
    let (mut ws, _) = Ws::hello(&server, Some(&admin), None).await;
    for _ in 0..6 {
        next(&api, &staff).await;
    }
    // near (3rd) by SMS and push, then the call by both.
    let mut sms = vec![];
    for _ in 0..4 {
        let got = gw.next().await;
        if got.path == "/send" {
            sms.push(got.json());
        } else {
            browser.open(&got.body);
        }
    }
    let kinds: Vec<_> = sms.iter().map(|m| m["kind"].clone()).collect();
    assert_eq!(kinds, [json!("near"), json!("called")]);
    assert!(sms.iter().all(|m| m["to"] == phone));

    let mut frames = String::new();
    while let Some(f) = ws.recv_within(Duration::from_millis(500)).await {
        frames.push_str(&f.to_string());
    }
    assert!(frames.contains("ticket_called"), "the admin saw the events");
    assert!(
        !holds(frames.as_bytes(), &needles),
        "no event holds the phone"
    );
    let stderr = std::fs::read(&server.log).unwrap();
    assert!(!holds(&stderr, &needles), "no log line holds the phone");
    let holding = files_holding(&site.data(), &needles);
    assert!(holding.is_empty(), "files holding the phone: {holding:?}");
    let holding = files_holding(site.dir.path(), &needles);
    assert!(holding.is_empty(), "files holding the phone: {holding:?}");
}

// ------------------------------------------------------------ the ticket page

/// A patient on the ticket page in headless Chromium taps "Báo cho tôi",
/// agrees, gives a phone and turns on notifications; the gateway and the
/// push endpoint get "còn 3 người" and then the call. Chromium offline has
/// no push service, so only `PushManager.subscribe` is replaced in the page
/// (returning a subscription to the local endpoint with keys this test
/// made); the service worker's registration and everything else is real.
#[tokio::test]
async fn a_patient_asks_for_alerts_on_the_ticket_page_and_gets_near_and_the_call() {
    let mut ep = Receiver::start().await;
    let notify_toml = format!(
        "{}{PUSH_NOTIFY}",
        gateway_notify(&ep, 1).replace("near_position = 1\n", "")
    );
    let site = site_with(&notify_toml, true);
    let server = site.start();
    let api = Api::new(&server);
    let staff = api.login("le.thu").await;
    let t = issue(&api, &staff, "c", 5).await;
    let push_key = api.get("/api/v1/site", None).await.body["push_key"]
        .as_str()
        .unwrap()
        .to_string();

    let phone = luot_tests::browser::Browser::phone(412, 915).await;
    phone.goto(&server.url(&format!("/t/{}", t[4]))).await;
    let long = Duration::from_secs(15);
    phone
        .until(
            "the alert button",
            "const b = document.getElementById('alert-ask'); return b && !document.getElementById('alerts').hidden && !b.hidden;",
            long,
        )
        .await;
    // Nothing is asked before the tap (rule 94).
    let asked = phone
        .js("return !document.getElementById('alert-form').hidden;")
        .await;
    assert_eq!(asked, json!(false), "the form shows only after the tap");

    let browser = Browser::new();
    let sub = browser.subscription(&ep.url("/push/chromium"));
    phone
        .js(&format!(
            "const sub = {sub};
             window.__asked_key = null;
             PushManager.prototype.subscribe = async function (opts) {{
               window.__asked_key = btoa(String.fromCharCode(...new Uint8Array(opts.applicationServerKey)))
                 .replace(/\\+/g, '-').replace(/\\//g, '_').replace(/=+$/, '');
               return {{ endpoint: sub.endpoint, toJSON: () => sub }};
             }};
             return true;"
        ))
        .await;
    phone.click("#alert-ask").await;
    phone.fill("#alert-phone", "0912 345 678").await;
    phone.click("#alert-push").await;
    phone.click("#alert-send").await;
    let said = phone
        .until(
            "the page says what it did",
            "return document.getElementById('alert-note').textContent;",
            long,
        )
        .await;
    assert!(
        said.as_str().unwrap().contains("Vui lòng đánh dấu đồng ý"),
        "no consent, no registration: {said}"
    );
    phone.click("#alert-consent").await;
    phone.click("#alert-send").await;
    phone
        .until(
            "the registration",
            "return document.getElementById('alert-note').textContent.startsWith('Đã đăng ký');",
            long,
        )
        .await;
    let key = phone.js("return window.__asked_key;").await;
    assert_eq!(
        key,
        json!(push_key),
        "the page subscribes with the site's key"
    );
    let worker = phone
        .until(
            "the service worker",
            "return navigator.serviceWorker.controller ? navigator.serviceWorker.controller.scriptURL : null;",
            long,
        )
        .await;
    assert!(worker.as_str().unwrap().ends_with("/sw.js"));
    let path = format!("/api/v1/tickets/{}", t[4]);
    assert_eq!(
        api.get(&path, None).await.body["notify"],
        json!({"sms": true, "push": 1})
    );
    phone
        .until(
            "the page shows the alerts on",
            "return document.getElementById('alert-on').textContent.includes('tin nhắn và thông báo');",
            long,
        )
        .await;

    next(&api, &staff).await;
    next(&api, &staff).await; // A005 is 3rd
    let mut near_push = None;
    let mut near_sms = None;
    while near_push.is_none() || near_sms.is_none() {
        let got = ep.next().await;
        if got.path == "/send" {
            near_sms = Some(got.json());
        } else {
            near_push = Some(browser.open(&got.body));
        }
    }
    let near_push = near_push.unwrap();
    assert_eq!(near_push["kind"], "near");
    assert!(near_push["text"].as_str().unwrap().contains("còn 3 người"));
    assert_eq!(near_sms.unwrap()["to"], "+84912345678");

    for _ in 0..3 {
        next(&api, &staff).await; // A005 called at the third
    }
    let mut called = vec![];
    while called.len() < 2 {
        let got = ep.next().await;
        let m = if got.path == "/send" {
            got.json()
        } else {
            browser.open(&got.body)
        };
        assert_eq!(m["kind"], "called", "{m}");
        called.push(m["text"].clone());
    }
    assert!(called.iter().all(|t| t == "Mời số A005 đến Quầy 1."));
    phone
        .until(
            "the page shows the call",
            "return document.getElementById('status').textContent.includes('Quầy 1');",
            long,
        )
        .await;
    phone.screenshot("ticket-alerts-412x915.png").await;
    phone.close().await;
}
