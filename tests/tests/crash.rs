//! kill -9 under load, several times in one test: every acknowledged ticket
//! survives with its number, no number is handed out twice, unanswered
//! requests retried with the same request_id give one ticket each, and `seq`
//! continues without a gap.

#![allow(clippy::unwrap_used, clippy::type_complexity)] // tests may panic on a broken server

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use luot_tests::*;
use rand::Rng;
use serde_json::{Value, json};
use tokio::sync::Mutex;
use tokio_tungstenite::tungstenite::Message;

#[derive(Clone, Debug)]
struct Ack {
    request_id: String,
    scope: &'static str,
    service: String,
    id: String,
    number: String,
}

#[derive(Default)]
struct Book {
    acks: Vec<Ack>,
    /// request ids sent without an answer, with their scope's token and service
    unanswered: Vec<(String, &'static str, String)>,
}

const SERVICES_A: [&str; 2] = ["kham-noi", "kham-ngoai"];

/// A kiosk websocket that issues until the server dies.
async fn ws_kiosk(
    url: String,
    token: &'static str,
    services: Vec<&'static str>,
    tag: String,
    book: Arc<Mutex<Book>>,
) {
    let Ok((mut ws, _)) = tokio_tungstenite::connect_async(&url).await else {
        return;
    };
    let hello = json!({"type": "hello", "token": token, "since": null}).to_string();
    if ws.send(Message::Text(hello.into())).await.is_err() {
        return;
    }
    let mut n = 0u32;
    let mut pending: HashMap<String, String> = HashMap::new();
    loop {
        // Keep two issues in flight.
        while pending.len() < 2 {
            n += 1;
            let rid = format!("{tag}-{n}");
            let service = services[n as usize % services.len()].to_string();
            let msg = json!({"type": "issue", "request_id": rid, "service": service}).to_string();
            if ws.send(Message::Text(msg.into())).await.is_err() {
                break;
            }
            pending.insert(rid, service);
        }
        let Some(Ok(msg)) = ws.next().await else {
            break;
        };
        let Message::Text(t) = msg else { continue };
        let v: Value = serde_json::from_str(t.as_str()).unwrap_or(Value::Null);
        if v["type"] == "issued" {
            let rid = v["request_id"].as_str().unwrap().to_string();
            let service = pending.remove(&rid).expect("answer to a request we sent");
            book.lock().await.acks.push(Ack {
                request_id: rid,
                scope: token,
                service,
                id: v["ticket"]["id"].as_str().unwrap().into(),
                number: v["ticket"]["number"].as_str().unwrap().into(),
            });
        }
    }
    let mut b = book.lock().await;
    for (rid, service) in pending {
        b.unanswered.push((rid, token, service));
    }
}

/// An HTTP client (staff at reception) issuing until the server dies.
async fn http_client(api: Api, token: &'static str, tag: String, book: Arc<Mutex<Book>>) {
    for n in 0.. {
        let rid = format!("{tag}-{n}");
        let service = ["kham-noi", "kham-ngoai", "xet-nghiem"][n % 3].to_string();
        let req = api
            .http
            .post(format!("{}/api/v1/tickets", api.base))
            .bearer_auth(token)
            .json(&json!({"service": service, "request_id": rid}))
            .send()
            .await;
        let Ok(resp) = req else {
            book.lock().await.unanswered.push((rid, token, service));
            return;
        };
        let Ok(v) = resp.json::<Value>().await else {
            book.lock().await.unanswered.push((rid, token, service));
            return;
        };
        book.lock().await.acks.push(Ack {
            request_id: rid,
            scope: token,
            service,
            id: v["id"].as_str().unwrap().into(),
            number: v["number"].as_str().unwrap().into(),
        });
    }
}

/// A board recording every seq it sees.
async fn board(url: String, seqs: Arc<Mutex<Vec<u64>>>) -> Vec<(u64, u64)> {
    let mut gaps = vec![];
    let Ok((mut ws, _)) = tokio_tungstenite::connect_async(&url).await else {
        return gaps;
    };
    let since = seqs.lock().await.last().copied();
    let hello = json!({"type": "hello", "token": DISPLAY_TOKEN, "since": since}).to_string();
    let _ = ws.send(Message::Text(hello.into())).await;
    while let Some(Ok(msg)) = ws.next().await {
        if let Message::Text(t) = msg {
            let v: Value = serde_json::from_str(t.as_str()).unwrap_or(Value::Null);
            if let Some(s) = v["seq"].as_u64() {
                let mut seqs = seqs.lock().await;
                if v["type"] == "event"
                    && let Some(last) = seqs.last()
                    && s != last + 1
                {
                    gaps.push((*last, s));
                }
                seqs.push(s);
            }
        }
    }
    gaps
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_dash_nine_loses_nothing_acknowledged() {
    let site = Site::hospital();
    let mut server = site.start();
    let staff_token: &'static str = {
        let api = Api::new(&server);
        Box::leak(api.login("tran.an").await.into_boxed_str())
    };
    let book = Arc::new(Mutex::new(Book::default()));
    let seqs = Arc::new(Mutex::new(Vec::<u64>::new()));
    let mut rng = rand::rng();

    for cycle in 0..4 {
        let api = Api::new(&server);
        let mut tasks = vec![];
        for i in 0..12 {
            tasks.push(tokio::spawn(ws_kiosk(
                server.ws_url(),
                KIOSK_TOKEN,
                SERVICES_A.to_vec(),
                format!("c{cycle}-ka{i}"),
                book.clone(),
            )));
        }
        for i in 0..4 {
            tasks.push(tokio::spawn(ws_kiosk(
                server.ws_url(),
                KIOSK2_TOKEN,
                vec!["xet-nghiem"],
                format!("c{cycle}-kb{i}"),
                book.clone(),
            )));
        }
        for i in 0..6 {
            tasks.push(tokio::spawn(http_client(
                api.clone(),
                staff_token,
                format!("c{cycle}-h{i}"),
                book.clone(),
            )));
        }
        let board_task = tokio::spawn(board(server.ws_url(), seqs.clone()));
        tokio::time::sleep(Duration::from_millis(rng.random_range(300..1200))).await;
        server.kill9();
        for t in tasks {
            let _ = tokio::time::timeout(Duration::from_secs(20), t).await;
        }
        let gaps = tokio::time::timeout(Duration::from_secs(20), board_task)
            .await
            .expect("board ends with the server")
            .expect("board task");
        assert!(gaps.is_empty(), "the board saw seq gaps {gaps:?}");
        server = site.start();
    }

    let api = Api::new(&server);
    let b = book.lock().await;
    assert!(
        b.acks.len() > 200,
        "the load was real: {} acknowledged",
        b.acks.len()
    );
    eprintln!(
        "{} tickets acknowledged, {} requests unanswered at the kills",
        b.acks.len(),
        b.unanswered.len()
    );

    // Every acknowledged ticket is there with its number.
    let mut numbers = HashSet::new();
    for a in &b.acks {
        let g = api.get(&format!("/api/v1/tickets/{}", a.id), None).await;
        assert_eq!(g.status, 200, "acknowledged ticket {a:?} lost");
        assert_eq!(g.body["number"].as_str(), Some(a.number.as_str()));
        assert_eq!(g.body["service"].as_str(), Some(a.service.as_str()));
        assert!(
            numbers.insert(a.number.clone()),
            "number {} handed out twice",
            a.number
        );
    }

    // Unanswered requests, retried with the same request_id: one ticket each,
    // never a number someone else holds.
    let acked_ids: HashSet<&str> = b.acks.iter().map(|a| a.id.as_str()).collect();
    for (rid, token, service) in &b.unanswered {
        let r = api.issue(token, service, rid).await;
        assert!(
            r.status == 200 || r.status == 201,
            "retry {rid}: {}",
            r.text
        );
        let again = api.issue(token, service, rid).await;
        assert_eq!(again.status, 200);
        assert_eq!(again.body["id"], r.body["id"]);
        let id = r.body["id"].as_str().unwrap();
        if !acked_ids.contains(id) {
            assert!(
                numbers.insert(r.body["number"].as_str().unwrap().to_string()),
                "retried request {rid} got a number already handed out"
            );
        }
    }
    // Acknowledged request ids replay to the same ticket after the crashes.
    for a in b.acks.iter().step_by(25) {
        let r = api.issue(a.scope, &a.service, &a.request_id).await;
        assert_eq!(
            (r.status, r.body["id"].as_str()),
            (200, Some(a.id.as_str()))
        );
    }

    // The waiting counts add up to exactly the tickets handed out.
    let site_info = api.get("/api/v1/site", None).await;
    let waiting: u64 = site_info.body["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["waiting"].as_u64().unwrap())
        .sum();
    assert_eq!(waiting as usize, numbers.len());

    // seq continues without a gap: the board's last seq is not beyond the
    // server's, and the next event is exactly one more than the snapshot.
    let seen_max = seqs.lock().await.iter().copied().max().unwrap();
    let (mut ws, _) = Ws::hello(&server, Some(DISPLAY_TOKEN), None).await;
    let snap = ws.recv().await.unwrap();
    let now_seq = snap["seq"].as_u64().unwrap();
    assert!(
        now_seq >= seen_max,
        "an event the board saw was lost ({seen_max} > {now_seq})"
    );
    api.issue(KIOSK_TOKEN, "kham-noi", "after-all").await;
    let ev = ws.recv().await.unwrap();
    assert_eq!(ev["seq"].as_u64().unwrap(), now_seq + 1);
}
