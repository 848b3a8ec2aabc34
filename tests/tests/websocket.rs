//! Contract §5 against the real server: hello, snapshot, events with seq,
//! resume with `since`, kiosk issue with idempotent replay, device status,
//! bad frames, size limit, the hello deadline, and the closing handshake.

#![allow(clippy::unwrap_used, clippy::type_complexity)] // tests may panic on a broken server

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use tokio_tungstenite::tungstenite::Message;

use luot_tests::*;
use serde_json::{Value, json};

fn kind(v: &Value) -> &str {
    v["event"]["kind"].as_str().unwrap_or("")
}

#[tokio::test]
async fn hello_welcome_snapshot_and_live_events() {
    let site = Site::hospital();
    let server = site.start();
    let api = Api::new(&server);

    let (mut kiosk, welcome) = Ws::hello(&server, Some(KIOSK_TOKEN), None).await;
    assert_eq!(welcome["type"], "welcome");
    assert_eq!(welcome["role"], "kiosk");
    assert_eq!(welcome["site"]["name"], "Bệnh viện Thử nghiệm");
    assert_eq!(welcome["site"]["public_url"], "http://luot.test");
    // A kiosk's services are its buttons, in order.
    let ids: Vec<&str> = welcome["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["kham-noi", "kham-ngoai"]);
    assert_eq!(welcome["services"][0]["name"], "Khám Nội");
    assert!(welcome["server_time"].as_str().unwrap().ends_with("+07:00"));
    let snap = kiosk.recv().await.unwrap();
    assert_eq!(snap["type"], "snapshot");
    let seq0 = snap["seq"].as_u64().unwrap();
    assert!(seq0 >= 1, "the day_started event has a seq");
    assert_eq!(snap["state"]["services"][0]["next_numbers"], json!([]));
    assert_eq!(snap["state"]["counters"].as_array().unwrap().len(), 4);

    let (mut board, w) = Ws::hello(&server, Some(DISPLAY_TOKEN), None).await;
    assert_eq!(w["role"], "display");
    assert_eq!(board.recv().await.unwrap()["type"], "snapshot");

    // Issue over the websocket.
    kiosk
        .send(json!({"type": "issue", "request_id": "kiosk-sanh-a-000001", "service": "kham-noi", "priority": null}))
        .await;
    let frames = kiosk.recv_until(|v| v["type"] == "issued").await;
    let issued = frames.last().unwrap();
    assert_eq!(issued["request_id"], "kiosk-sanh-a-000001");
    assert_eq!(issued["ticket"]["number"], "A001");
    assert_eq!(issued["ticket"]["position"], 1);

    // Every screen sees the event, with seq + 1.
    let ev = board.recv().await.unwrap();
    assert_eq!(ev["type"], "event");
    assert_eq!(ev["seq"].as_u64().unwrap(), seq0 + 1);
    assert_eq!(kind(&ev), "ticket_issued");
    assert_eq!(ev["event"]["ticket"]["number"], "A001");
    assert_eq!(ev["event"]["service_name"], "Khám Nội");

    // A staff call: done is not emitted (nothing called), ticket_called is.
    let staff = api.login("le.thu").await;
    api.post("/api/v1/counters/quay-1/next", Some(&staff), None)
        .await;
    let ev = board.recv().await.unwrap();
    assert_eq!(ev["seq"].as_u64().unwrap(), seq0 + 2);
    assert_eq!(kind(&ev), "ticket_called");
    assert_eq!(ev["event"]["counter"], "quay-1");
    assert_eq!(ev["event"]["counter_name"], "Quầy 1");
    assert_eq!(ev["event"]["service_name"], "Khám Nội");
    assert_eq!(ev["event"]["ticket"]["status"], "called");

    api.post("/api/v1/counters/quay-1/recall", Some(&staff), None)
        .await;
    let ev = board.recv().await.unwrap();
    assert_eq!(kind(&ev), "ticket_recalled");
    api.post("/api/v1/counters/quay-1/close", Some(&staff), None)
        .await;
    let ev = board.recv().await.unwrap();
    assert_eq!(kind(&ev), "counter_closed");
    assert_eq!(ev["event"]["counter_name"], "Quầy 1");
    assert!(ev["event"].get("ticket").is_none());

    // Next on a counter with a called ticket: ticket_done then ticket_called.
    api.post("/api/v1/counters/quay-1/open", Some(&staff), None)
        .await;
    assert_eq!(kind(&board.recv().await.unwrap()), "counter_opened");
    api.issue(KIOSK_TOKEN, "kham-noi", "h2").await;
    assert_eq!(kind(&board.recv().await.unwrap()), "ticket_issued");
    api.post("/api/v1/counters/quay-1/next", Some(&staff), None)
        .await;
    let done = board.recv().await.unwrap();
    let called = board.recv().await.unwrap();
    assert_eq!(
        (kind(&done), kind(&called)),
        ("ticket_done", "ticket_called")
    );
    assert_eq!(
        called["seq"].as_u64().unwrap(),
        done["seq"].as_u64().unwrap() + 1
    );
    assert_eq!(done["event"]["ticket"]["number"], "A001");
    assert_eq!(called["event"]["ticket"]["number"], "A002");

    // Transfer emits only ticket_transferred.
    api.post(
        "/api/v1/counters/quay-1/transfer",
        Some(&staff),
        Some(json!({"service": "kham-ngoai", "front": true})),
    )
    .await;
    let ev = board.recv().await.unwrap();
    assert_eq!(kind(&ev), "ticket_transferred");
    assert_eq!(ev["event"]["ticket"]["number"], "A002");
    assert_eq!(ev["event"]["ticket"]["service"], "kham-ngoai");
    assert_eq!(ev["event"]["counter"], "quay-1");
    assert!(
        board
            .recv_within(Duration::from_millis(300))
            .await
            .is_none()
    );

    // A fresh snapshot shows it all.
    let (mut late, _) = Ws::hello(&server, Some(DISPLAY_TOKEN), None).await;
    let snap = late.recv().await.unwrap();
    assert_eq!(snap["seq"], ev["seq"]);
    let ngoai = &snap["state"]["services"][1];
    assert_eq!(ngoai["waiting"], 1);
    assert_eq!(ngoai["next_numbers"], json!(["A002"]));
    let calls = snap["state"]["recent_calls"].as_array().unwrap();
    assert_eq!(calls[0]["number"], "A002", "newest first");
    assert_eq!(calls[0]["counter_name"], "Quầy 1");
    assert_eq!(calls[0]["service_name"], "Khám Nội");
}

#[tokio::test]
async fn resume_with_since_sends_only_missed_events() {
    let site = Site::hospital();
    let server = site.start();
    let api = Api::new(&server);
    let (mut board, _) = Ws::hello(&server, Some(DISPLAY_TOKEN), None).await;
    let seq = board.recv().await.unwrap()["seq"].as_u64().unwrap();
    drop(board);
    for i in 0..3 {
        api.issue(KIOSK_TOKEN, "kham-noi", &format!("m{i}")).await;
    }
    let (mut board, _) = Ws::hello(&server, Some(DISPLAY_TOKEN), Some(seq)).await;
    for i in 1..=3 {
        let ev = board.recv().await.unwrap();
        assert_eq!(ev["type"], "event", "missed events, not a snapshot");
        assert_eq!(ev["seq"].as_u64().unwrap(), seq + i);
    }
    assert!(
        board
            .recv_within(Duration::from_millis(300))
            .await
            .is_none()
    );
    // Up to date: nothing at all.
    let (mut b2, _) = Ws::hello(&server, Some(DISPLAY_TOKEN), Some(seq + 3)).await;
    assert!(b2.recv_within(Duration::from_millis(300)).await.is_none());
    // Ahead of the server (after a restore): a snapshot.
    let (mut b3, _) = Ws::hello(&server, Some(DISPLAY_TOKEN), Some(seq + 1000)).await;
    let s = b3.recv().await.unwrap();
    assert_eq!(
        (s["type"].as_str(), s["seq"].as_u64()),
        (Some("snapshot"), Some(seq + 3))
    );
    // A new hello on the same socket resubscribes.
    b3.send(json!({"type": "hello", "token": DISPLAY_TOKEN, "since": seq + 1}))
        .await;
    assert_eq!(b3.recv().await.unwrap()["type"], "welcome");
    assert_eq!(b3.recv().await.unwrap()["seq"].as_u64(), Some(seq + 2));
    assert_eq!(b3.recv().await.unwrap()["seq"].as_u64(), Some(seq + 3));
    // …and it then gets each new event once, without a gap (list updates
    // may wait up to a second to share a write with the next ones).
    for i in 3..5 {
        api.issue(KIOSK_TOKEN, "kham-noi", &format!("m{i}")).await;
    }
    assert_eq!(b3.recv().await.unwrap()["seq"].as_u64(), Some(seq + 4));
    assert_eq!(b3.recv().await.unwrap()["seq"].as_u64(), Some(seq + 5));
    assert!(b3.recv_within(Duration::from_millis(1500)).await.is_none());
}

#[tokio::test]
async fn a_plain_request_to_the_websocket_path_gets_a_clear_error() {
    let site = Site::hospital();
    let server = site.start();
    let api = Api::new(&server);
    let r = api.get("/api/v1/ws", None).await;
    assert_eq!(r.status, 400);
    assert_eq!(r.body["error"]["code"], "bad_request");
    assert!(
        r.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("websocket")
    );
}

#[tokio::test]
async fn idempotent_issue_after_a_dropped_connection() {
    let site = Site::hospital();
    let server = site.start();
    let api = Api::new(&server);
    // The kiosk sends an issue and loses the connection before reading the answer.
    let (mut k, _) = Ws::hello(&server, Some(KIOSK_TOKEN), None).await;
    k.send(json!({"type": "issue", "request_id": "press-42", "service": "kham-ngoai"}))
        .await;
    drop(k);
    tokio::time::sleep(Duration::from_millis(300)).await;
    // It reconnects and resends with the same request_id.
    let (mut k, _) = Ws::hello(&server, Some(KIOSK_TOKEN), None).await;
    k.send(json!({"type": "issue", "request_id": "press-42", "service": "kham-ngoai", "priority": null})).await;
    let issued = k.recv_until(|v| v["type"] == "issued").await.pop().unwrap();
    assert_eq!(issued["ticket"]["number"], "B001");
    // Over HTTP too: the scope is the device, whatever the transport.
    let h = api.issue(KIOSK_TOKEN, "kham-ngoai", "press-42").await;
    assert_eq!(h.status, 200);
    assert_eq!(h.body["id"], issued["ticket"]["id"]);
    let site_info = api.get("/api/v1/site", None).await;
    assert_eq!(
        site_info.body["services"][1]["waiting"], 1,
        "one press, one ticket"
    );
    // Same request_id, different service: an error frame carrying the request_id.
    k.send(json!({"type": "issue", "request_id": "press-42", "service": "kham-noi"}))
        .await;
    let e = k.recv_until(|v| v["type"] == "error").await.pop().unwrap();
    assert_eq!(e["request_id"], "press-42");
    assert_eq!(e["error"]["code"], "request_id_reused");
}

#[tokio::test]
async fn kiosk_errors_device_status_and_admin_frames() {
    let site = Site::hospital();
    let server = site.start();
    let api = Api::new(&server);
    let admin = api.login("admin").await;
    let (mut adm, w) = Ws::hello(&server, Some(&admin), None).await;
    assert_eq!(w["role"], "admin");
    assert_eq!(adm.recv().await.unwrap()["type"], "snapshot");

    let (mut k, _) = Ws::hello(&server, Some(KIOSK_TOKEN), None).await;
    k.recv().await.unwrap();
    let dev = adm
        .recv_until(|v| v["type"] == "device")
        .await
        .pop()
        .unwrap();
    assert_eq!(dev["device"]["id"], "kiosk-sanh-a");
    assert_eq!(dev["device"]["connected"], true);
    assert!(dev.get("seq").is_none());

    for (msg, code) in [
        (
            json!({"type": "issue", "request_id": "e1", "service": "xet-nghiem"}),
            "forbidden",
        ),
        (
            json!({"type": "issue", "request_id": "e2", "service": "nope"}),
            "unknown_service",
        ),
        (
            json!({"type": "issue", "request_id": "e3", "service": "kham-noi", "priority": "vip"}),
            "bad_request",
        ),
        (
            json!({"type": "issue", "request_id": "bad id!", "service": "kham-noi"}),
            "bad_request",
        ),
        (
            json!({"type": "issue", "request_id": "e4", "service": "kham-noi", "extra": true}),
            "bad_request",
        ),
    ] {
        let rid = msg["request_id"].clone();
        k.send(msg).await;
        let e = k.recv_until(|v| v["type"] == "error").await.pop().unwrap();
        assert_eq!(e["error"]["code"], code);
        assert_eq!(
            e["request_id"], rid,
            "an error answering an issue carries its request_id"
        );
    }
    // Not JSON / unknown type: bad_request, socket stays open, no request_id.
    k.send_text("{{{").await;
    let e = k.recv().await.unwrap();
    assert_eq!(e["error"]["code"], "bad_request");
    assert!(e.get("request_id").is_none());
    k.send(json!({"type": "dance"})).await;
    assert_eq!(k.recv().await.unwrap()["error"]["code"], "bad_request");

    k.send(json!({"type": "device_status", "printer": "paper_out"}))
        .await;
    let dev = adm
        .recv_until(|v| v["type"] == "device")
        .await
        .pop()
        .unwrap();
    assert_eq!(dev["device"]["printer"], "paper_out");
    let d = api.get("/api/v1/devices", Some(&admin)).await;
    let kd = d.body["devices"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["id"] == "kiosk-sanh-a")
        .unwrap()
        .clone();
    assert_eq!(kd["printer"], "paper_out");
    assert_eq!(kd["connected"], true);
    assert!(kd["last_seen"].as_str().unwrap().ends_with("+07:00"));
    let m = api.get("/metrics", None).await;
    assert!(
        m.text
            .contains("luot_printer_status{device=\"kiosk-sanh-a\",status=\"paper_out\"} 1")
    );

    // A display may not report a printer.
    let (mut tv, _) = Ws::hello(&server, Some(DISPLAY_TOKEN), None).await;
    tv.recv().await.unwrap();
    tv.send(json!({"type": "device_status", "printer": "ok"}))
        .await;
    assert_eq!(tv.recv().await.unwrap()["error"]["code"], "forbidden");
    // Nor issue.
    tv.send(json!({"type": "issue", "request_id": "tv1", "service": "kham-noi"}))
        .await;
    assert_eq!(tv.recv().await.unwrap()["error"]["code"], "forbidden");

    // The kiosk goes away: admins see it disconnected; other roles never get device frames.
    drop(k);
    let dev = adm
        .recv_until(|v| v["type"] == "device" && v["device"]["id"] == "kiosk-sanh-a")
        .await
        .pop()
        .unwrap();
    assert_eq!(dev["device"]["connected"], false);
    while let Some(v) = tv.recv_within(Duration::from_millis(300)).await {
        assert_ne!(v["type"], "device", "device frames are for admins only");
    }
}

#[tokio::test]
async fn bad_hello_size_limit_and_deadline() {
    let site = Site::hospital();
    let server = site.start();
    // Wrong token: error frame, then close 1008.
    let mut ws = Ws::connect(&server).await;
    ws.send(json!({"type": "hello", "token": "nope", "since": null}))
        .await;
    let e = ws.recv().await.unwrap();
    assert_eq!(e["error"]["code"], "unauthorized");
    assert_eq!(ws.close_code().await, Some(1008));
    // No token on a site without a public board.
    let mut ws = Ws::connect(&server).await;
    ws.send(json!({"type": "hello", "token": null, "since": null}))
        .await;
    assert_eq!(ws.recv().await.unwrap()["error"]["code"], "unauthorized");
    assert_eq!(ws.close_code().await, Some(1008));
    // Silence: closed with 1008 after 5 s.
    let mut ws = Ws::connect(&server).await;
    let t0 = std::time::Instant::now();
    assert_eq!(ws.close_code().await, Some(1008));
    assert!(t0.elapsed() >= Duration::from_secs(4));
    // Issue before hello: refused and closed.
    let mut ws = Ws::connect(&server).await;
    ws.send(json!({"type": "issue", "request_id": "x", "service": "kham-noi"}))
        .await;
    assert_eq!(ws.recv().await.unwrap()["error"]["code"], "unauthorized");
    assert_eq!(ws.close_code().await, Some(1008));
    // Over 16 KiB: close 1009.
    let (mut ws, _) = Ws::hello(&server, Some(KIOSK_TOKEN), None).await;
    ws.recv().await.unwrap();
    let big = format!(
        r#"{{"type":"issue","request_id":"x","service":"{}"}}"#,
        "a".repeat(17 * 1024)
    );
    ws.send_text(&big).await;
    assert_eq!(ws.close_code().await, Some(1009));
    // Nothing was issued by any of it.
    let api = Api::new(&server);
    let s = api.get("/api/v1/site", None).await;
    assert_eq!(s.body["services"][0]["waiting"], 0);
}

#[tokio::test]
async fn public_board_needs_no_token() {
    let site = Site::new(&test_site_toml(true));
    let server = site.start();
    let (mut ws, w) = Ws::hello(&server, None, None).await;
    assert_eq!(w["type"], "welcome");
    assert_eq!(w["role"], "display");
    assert_eq!(ws.recv().await.unwrap()["type"], "snapshot");
    // It cannot issue.
    ws.send(json!({"type": "issue", "request_id": "p1", "service": "kham-noi"}))
        .await;
    assert_eq!(ws.recv().await.unwrap()["error"]["code"], "forbidden");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_lags_gets_a_snapshot() {
    let site = Site::hospital();
    // A short broadcast buffer, so the test need not fill a day's worth.
    let server = Server::start(
        &site.config(),
        &site.data(),
        &[("LUOT_BROADCAST_CAPACITY", "32")],
    );
    let api = Api::new(&server);
    // A board and a staff console, each with a tiny receive buffer, read
    // slowly but steadily (one frame every 5 ms, so the server's sends never
    // stall long enough to drop them) while the kiosk issues far more than
    // the sockets hold (the server keeps at most 128 KiB unsent in the
    // kernel, so a slow reader's progress shows and what waits is its own).
    // The board is a screen (the fan-out lets go of it once 256 KiB wait);
    // the console forwards events itself (it falls more than 32 group commits
    // behind the broadcast).
    let fast = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let resynced = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let staff = api.login("le.thu").await;
    let board = slow_reader(&server, DISPLAY_TOKEN, fast.clone(), resynced.clone()).await;
    let console = slow_reader(&server, &staff, fast.clone(), resynced.clone()).await;
    let (mut k, _) = Ws::hello(&server, Some(KIOSK_TOKEN), None).await;
    k.recv().await.unwrap();
    // Issue until both readers have been resynchronised: how many tickets
    // that takes depends on how fast this machine issues against how fast
    // they read. The kiosk's socket gets every event too: its bytes are what
    // the board is sent. The bounds only stop a broken server from running
    // forever; the assertions below say what went wrong.
    const BYTES: usize = 96 << 20;
    let (mut answered, mut sent, mut bytes) = (0, 0, 0);
    let t0 = std::time::Instant::now();
    let more = |bytes: usize| {
        resynced.load(std::sync::atomic::Ordering::Relaxed) < 2
            && bytes < BYTES
            && t0.elapsed() < Duration::from_secs(180)
    };
    while answered < sent || more(bytes) {
        // Keep issues in flight: the readers must fall behind well before
        // the server drops them for not answering its pings for 45 s.
        while sent - answered < 32 && more(bytes) {
            k.send(json!({"type": "issue", "request_id": format!("lag-{sent}"), "service": "kham-noi"})).await;
            sent += 1;
        }
        let v = k.recv().await.expect("answers keep coming");
        bytes += v.to_string().len();
        if v["type"] == "issued" {
            answered += 1;
        }
    }
    fast.store(true, std::sync::atomic::Ordering::Relaxed);
    // The hub did not wait for the slow board.
    let s = api.get("/api/v1/site", None).await;
    assert_eq!(s.body["services"][0]["waiting"], answered);
    let final_seq = {
        let (mut b, _) = Ws::hello(&server, Some(DISPLAY_TOKEN), None).await;
        b.recv().await.unwrap()["seq"].as_u64().unwrap()
    };
    for (who, reader) in [("board", board), ("staff console", console)] {
        let frames = reader.await.unwrap();
        // Resynchronised with a snapshot, events only ever move forward, and
        // it ends at the current seq.
        assert_eq!(frames[0]["type"], "welcome");
        let snapshots = frames.iter().filter(|v| v["type"] == "snapshot").count();
        assert!(
            snapshots >= 2,
            "a lagging {who} gets a fresh snapshot ({} frames, {sent} tickets, {bytes} bytes)",
            frames.len()
        );
        let mut last_seq = 0;
        for v in &frames[1..] {
            let seq = v["seq"].as_u64().unwrap();
            if v["type"] != "snapshot" {
                assert!(seq > last_seq, "{who}: events only move forward");
            }
            last_seq = last_seq.max(seq);
        }
        assert_eq!(last_seq, final_seq, "{who} ends up current");
    }
}

/// A websocket with a 4 KiB receive buffer that says hello with `token` and
/// reads one frame every 5 ms (until `fast`), up to its first snapshot after
/// the start (which it counts in `resynced`), then whatever follows until
/// 2 s of quiet.
async fn slow_reader(
    server: &Server,
    token: &str,
    fast: std::sync::Arc<std::sync::atomic::AtomicBool>,
    resynced: std::sync::Arc<std::sync::atomic::AtomicUsize>,
) -> tokio::task::JoinHandle<Vec<Value>> {
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.set_recv_buffer_size(4096).unwrap();
    let stream = sock.connect(server.addr).await.unwrap();
    let (ws, _) = tokio_tungstenite::client_async(
        server.ws_url(),
        tokio_tungstenite::MaybeTlsStream::Plain(stream),
    )
    .await
    .unwrap();
    let mut slow = Ws { stream: ws };
    let token = token.to_string();
    tokio::spawn(async move {
        slow.send(json!({"type": "hello", "token": token, "since": null}))
            .await;
        let mut frames = vec![];
        while let Some(v) = slow.recv_within(Duration::from_secs(5)).await {
            // Frames that are not the queue's (device frames) do not count.
            if v.get("seq").is_none() && v["type"] != "welcome" {
                continue;
            }
            let snapshot_after_start = v["type"] == "snapshot" && frames.len() > 2;
            frames.push(v);
            if snapshot_after_start {
                resynced.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                break;
            }
            if !fast.load(std::sync::atomic::Ordering::Relaxed) {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
        // Then whatever follows the snapshot, until quiet.
        while let Some(v) = slow.recv_within(Duration::from_secs(2)).await {
            if v.get("seq").is_some() {
                frames.push(v);
            }
        }
        frames
    })
}

/// Sends a Close and reads until the server's Close comes back; then the
/// connection must end. `None` when the server never answered the Close.
async fn close_and_await_answer(ws: &mut Ws) -> Option<(u16, bool)> {
    use tokio_tungstenite::tungstenite::protocol::CloseFrame;
    use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
    ws.stream
        .close(Some(CloseFrame {
            code: CloseCode::Normal,
            reason: "bye".into(),
        }))
        .await
        .expect("send close");
    // A guard against hanging, well under the 10 s close timeout clients use.
    let guard = Duration::from_secs(5);
    let code = loop {
        match tokio::time::timeout(guard, ws.stream.next()).await {
            Ok(Some(Ok(Message::Close(f)))) => break f.map_or(1005, |f| f.code.into()),
            Ok(Some(Ok(_))) => continue, // events still in flight
            _ => return None,            // reset, timeout or end without a Close
        }
    };
    let ended = matches!(
        tokio::time::timeout(guard, ws.stream.next()).await,
        Ok(None) | Ok(Some(Err(_)))
    );
    Some((code, ended))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_close_from_the_client_is_answered_with_a_close_and_the_connection_ends() {
    let site = Site::hospital();
    let server = site.start();
    let api = Api::new(&server);
    let staff = api.login("le.thu").await;
    let admin = api.login("admin").await;
    let roles = [
        ("kiosk", KIOSK_TOKEN.to_string()),
        ("display", DISPLAY_TOKEN.to_string()),
        ("staff", staff),
        ("admin", admin),
    ];
    // Idle: nothing happens while the client closes.
    for (role, token) in &roles {
        let (mut ws, welcome) = Ws::hello(&server, Some(token), None).await;
        assert_eq!(welcome["role"], *role);
        assert_eq!(ws.recv().await.unwrap()["type"], "snapshot");
        let answer = close_and_await_answer(&mut ws).await;
        assert_eq!(
            answer,
            Some((1000, true)),
            "{role}, idle: the Close answered, then the end"
        );
    }
    // Under a stream of events: a second kiosk issues all the while.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let issuer = {
        let (api, stop) = (Api::new(&server), stop.clone());
        tokio::spawn(async move {
            let mut n = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) && n < 5_000 {
                n += 1;
                let a = api
                    .issue(KIOSK2_TOKEN, "xet-nghiem", &format!("stream-{n}"))
                    .await;
                assert_eq!(a.status, 201, "{}", a.text);
            }
            n
        })
    };
    for (role, token) in &roles {
        let (mut ws, _) = Ws::hello(&server, Some(token), None).await;
        // Wait until events are flowing to this client.
        ws.recv_until(|v| v["type"] == "event").await;
        ws.recv_until(|v| v["type"] == "event").await;
        let answer = close_and_await_answer(&mut ws).await;
        assert_eq!(
            answer,
            Some((1000, true)),
            "{role}, under events: the Close answered, then the end"
        );
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    assert!(issuer.await.unwrap() > 2, "events were flowing");
}
