//! Rule 114 and 119 against a real PostgreSQL and real HTTP: what a site
//! and an operator notice of ingest, `GET /sites`, logins and `/metrics`.

#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_batch_is_not_counted_twice() {
    let c = start().await;
    let admin = c.login("admin", ADMIN_PW).await;
    let b = batch("bv-a", &[(E1, 1)], E1, 10, 1, filler(1..=10), vec![]);
    let a = c.post("/ingest", Some(TOKEN_A), &b).await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(
        a.body,
        json!({"epoch": E1, "acked_seq": 10, "config_version": null})
    );
    // The same Batch again (the answer was lost): 200, nothing added.
    let a = c.post("/ingest", Some(TOKEN_A), &b).await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.body["acked_seq"], 10);
    // Overlapping: 6..15.
    let b = batch("bv-a", &[(E1, 1)], E1, 15, 1, filler(6..=15), vec![]);
    let a = c.post("/ingest", Some(TOKEN_A), &b).await;
    assert_eq!(a.body["acked_seq"], 15, "{}", a.text);
    let s = c.site(&admin, "bv-a").await;
    assert_eq!(s["acked_seq"], 15);
    assert_eq!(s["head_seq"], 15);
    assert_eq!(s["behind"], 0);
    assert_eq!(s["epoch"], E1);
    assert_eq!(s["orphaned_events"], 0);
    assert_eq!(s["node"], "luot-a");
    assert_eq!(s["luot_version"], "0.1.0");
    assert!(s["last_contact_at"].as_str().unwrap().ends_with("+07:00"));
    assert!(s["lag_s"].as_f64().is_some());
    let m = c.get("/metrics", None).await.text;
    assert!(
        m.contains("luot_central_ingested_events_total{site=\"bv-a\"} 15"),
        "{m}"
    );
    assert!(
        m.contains("luot_central_behind_events{site=\"bv-a\"} 0"),
        "{m}"
    );
    assert!(m.contains("luot_central_lag_seconds{site=\"bv-a\"}"), "{m}");
    // A site never heard from.
    let s = c.site(&admin, "bv-b").await;
    assert_eq!(
        (s["acked_seq"].clone(), s["epoch"].clone()),
        (json!(0), json!(null))
    );
    assert_eq!(s["config"]["latest"], json!(null));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reordered_batch_gets_a_gap_with_acked_seq() {
    let c = start().await;
    let first = batch("bv-a", &[(E1, 1)], E1, 20, 1, filler(1..=10), vec![]);
    let second = batch("bv-a", &[(E1, 1)], E1, 20, 1, filler(11..=20), vec![]);
    let a = c.post("/ingest", Some(TOKEN_A), &second).await;
    assert_eq!(a.status, 409, "{}", a.text);
    assert_eq!(a.body["error"]["code"], "gap");
    assert_eq!(a.body["error"]["acked_seq"], 0);
    assert_eq!(c.post("/ingest", Some(TOKEN_A), &first).await.status, 200);
    let a = c.post("/ingest", Some(TOKEN_A), &second).await;
    assert_eq!((a.status, a.body["acked_seq"].clone()), (200, json!(20)));
    let third = batch("bv-a", &[(E1, 1)], E1, 40, 1, filler(25..=30), vec![]);
    let a = c.post("/ingest", Some(TOKEN_A), &third).await;
    assert_eq!(a.status, 409);
    assert_eq!(a.body["error"]["acked_seq"], 20);
    assert_eq!(
        c.site(&c.login("admin", ADMIN_PW).await, "bv-a").await["behind"],
        20,
        "head 40, acked 20"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_site_that_holds_nothing_earlier_is_taken_with_its_missing_range() {
    let c = start().await;
    let admin = c.login("admin", ADMIN_PW).await;
    let b = batch("bv-a", &[(E1, 1)], E1, 60, 50, filler(50..=60), vec![]);
    let a = c.post("/ingest", Some(TOKEN_A), &b).await;
    assert_eq!(
        (a.status, a.body["acked_seq"].clone()),
        (200, json!(60)),
        "{}",
        a.text
    );
    assert_eq!(c.site(&admin, "bv-a").await["missing"], json!([[1, 49]]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restored_site_starts_a_new_epoch_and_the_old_events_from_s_are_orphaned() {
    let c = start().await;
    let admin = c.login("admin", ADMIN_PW).await;
    let b = batch("bv-a", &[(E1, 1)], E1, 30, 1, filler(1..=30), vec![]);
    assert_eq!(c.post("/ingest", Some(TOKEN_A), &b).await.status, 200);
    // Restored from a backup whose last seq was 20: (E2, 21).
    let lineage = [(E1, 1), (E2, 21)];
    let mut events = filler(21..=25);
    for e in &mut events {
        e["event"]["ticket"]["number"] = json!("R");
    }
    let b = batch("bv-a", &lineage, E2, 25, 1, events, vec![]);
    let a = c.post("/ingest", Some(TOKEN_A), &b).await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(
        a.body,
        json!({"epoch": E2, "acked_seq": 25, "config_version": null})
    );
    let s = c.site(&admin, "bv-a").await;
    assert_eq!(s["epoch"], E2);
    assert_eq!(s["acked_seq"], 25);
    assert_eq!(
        s["orphaned_events"], 10,
        "E1's 21..30 are outside the lineage"
    );
    // E1's events beyond its entry are refused as outside it.
    let b = batch("bv-a", &lineage, E1, 25, 1, filler(20..=21), vec![]);
    let a = c.post("/ingest", Some(TOKEN_A), &b).await;
    assert_eq!(
        (a.status, a.body["error"]["code"].clone()),
        (400, json!("bad_request"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conflicting_event_gets_seq_conflict_and_central_keeps_its_own() {
    let c = start().await;
    let admin = c.login("admin", ADMIN_PW).await;
    let b = batch("bv-a", &[(E1, 1)], E1, 10, 1, filler(1..=10), vec![]);
    assert_eq!(c.post("/ingest", Some(TOKEN_A), &b).await.status, 200);
    let mut other = filler(8..=12);
    other[1]["event"]["kind"] = json!("ticket_called");
    let b = batch("bv-a", &[(E1, 1)], E1, 12, 1, other, vec![]);
    let a = c.post("/ingest", Some(TOKEN_A), &b).await;
    assert_eq!(a.status, 409, "{}", a.text);
    assert_eq!(a.body["error"]["code"], "seq_conflict");
    assert_eq!(a.body["error"]["seq"], 9);
    // Nothing of it was stored: 11 and 12 are not held, 9 is central's.
    let s = c.site(&admin, "bv-a").await;
    assert_eq!(s["acked_seq"], 10);
    let kind = luot_pgtest::shared().psql(
        c.db_url.split("dbname=").nth(1).unwrap(),
        "SELECT kind FROM luot_central_events WHERE seq = 9",
    );
    assert_eq!(kind, "ticket_issued");
    // The site answers with a new lineage entry at 9.
    let lineage = [(E1, 1), (E3, 9)];
    let mut ev = filler(9..=12);
    ev[0]["event"]["kind"] = json!("ticket_called");
    let b = batch("bv-a", &lineage, E3, 12, 1, ev, vec![]);
    let a = c.post("/ingest", Some(TOKEN_A), &b).await;
    assert_eq!(
        (a.status, a.body["acked_seq"].clone()),
        (200, json!(12)),
        "{}",
        a.text
    );
    assert_eq!(c.site(&admin, "bv-a").await["orphaned_events"], 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn site_tokens_are_checked_before_and_after_the_body() {
    let c = start().await;
    let b = batch("bv-a", &[(E1, 1)], E1, 3, 1, filler(1..=3), vec![]);
    let a = c.post("/ingest", None, &b).await;
    assert_eq!(
        (a.status, a.body["error"]["code"].clone()),
        (401, json!("unauthorized"))
    );
    let a = c.post("/ingest", Some("wrong"), &b).await;
    assert_eq!(a.status, 401);
    // Another site's id, once the body parses: 403.
    let a = c.post("/ingest", Some(TOKEN_B), &b).await;
    assert_eq!(
        (a.status, a.body["error"]["code"].clone()),
        (403, json!("forbidden"))
    );
    // A wrong token with a broken body is still 401 first.
    let r = c
        .http
        .post(c.url("/ingest"))
        .bearer_auth("wrong")
        .header("content-type", "application/json")
        .body("{not json");
    assert_eq!(c.send(r).await.status, 401);
    let r = c
        .http
        .post(c.url("/ingest"))
        .bearer_auth(TOKEN_A)
        .header("content-type", "application/json")
        .body("{not json");
    assert_eq!(c.send(r).await.status, 400);
    // A user's token may not ingest.
    let admin = c.login("admin", ADMIN_PW).await;
    assert_eq!(c.post("/ingest", Some(&admin), &b).await.status, 403);
    // Not consecutive: 400.
    let mut ev = filler(1..=3);
    ev[2]["seq"] = json!(5);
    let b = batch("bv-a", &[(E1, 1)], E1, 5, 1, ev, vec![]);
    let a = c.post("/ingest", Some(TOKEN_A), &b).await;
    assert_eq!(
        (a.status, a.body["error"]["code"].clone()),
        (400, json!("bad_request"))
    );
    // A site token reads nothing else.
    assert_eq!(c.get("/sites", Some(TOKEN_A)).await.status, 403);
    assert_eq!(c.get("/reports/daily", Some(TOKEN_A)).await.status, 403);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_up_to_8_mib_are_read_and_larger_ones_refused() {
    let c = start().await;
    let mut b = batch("bv-a", &[(E1, 1)], E1, 1000, 1, filler(1..=1000), vec![]);
    // Pad every event to make the Batch about 7.5 MiB.
    for e in b["events"].as_array_mut().unwrap() {
        e["event"]["pad"] = json!("x".repeat(7800));
    }
    let a = c.post("/ingest", Some(TOKEN_A), &b).await;
    assert_eq!(a.status, 200, "{}", &a.text[..a.text.len().min(300)]);
    // An announced body over 8 MiB is answered 413 before it is sent.
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = c.base.trim_start_matches("http://").to_string();
    let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let head = format!(
        "POST /api/central/v1/ingest HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        8 * 1024 * 1024 + 1
    );
    s.write_all(head.as_bytes()).await.unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    assert!(out.starts_with("HTTP/1.1 413"), "{out}");
    assert!(out.contains("\"too_large\""), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_log_in_and_viewers_see_only_their_sites() {
    let c = start().await;
    let a = c
        .post(
            "/login",
            None,
            &json!({"username": "admin", "password": "sai"}),
        )
        .await;
    assert_eq!(
        (a.status, a.body["error"]["code"].clone()),
        (401, json!("unauthorized"))
    );
    let a = c
        .post(
            "/login",
            None,
            &json!({"username": "xem-a", "password": VIEWER_PW}),
        )
        .await;
    assert_eq!(a.status, 200);
    assert_eq!(a.body["role"], "viewer");
    assert!(a.body["expires_at"].as_str().unwrap().ends_with("+07:00"));
    let viewer = a.body["token"].as_str().unwrap().to_string();
    let sites = c.get("/sites", Some(&viewer)).await;
    let ids: Vec<_> = sites.body["sites"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].clone())
        .collect();
    assert_eq!(ids, vec![json!("bv-a")]);
    // A viewer naming another site in a report: 403.
    let a = c.get("/reports/daily?site=bv-b", Some(&viewer)).await;
    assert_eq!(a.status, 403);
    // A viewer posts no configuration.
    let a = c
        .post("/sites/bv-a/config", Some(&viewer), &json!({"toml": ""}))
        .await;
    assert_eq!(a.status, 403);
    // Rule 8: ten failures within a minute lock the username.
    for _ in 0..10 {
        c.post(
            "/login",
            None,
            &json!({"username": "xem-a", "password": "sai"}),
        )
        .await;
    }
    let a = c
        .post(
            "/login",
            None,
            &json!({"username": "xem-a", "password": VIEWER_PW}),
        )
        .await;
    assert_eq!(a.status, 429);
    // Others are not affected, and the viewer's earlier token still works.
    c.login("admin", ADMIN_PW).await;
    assert_eq!(c.get("/sites", Some(&viewer)).await.status, 200);
    // Health and the dashboard.
    let h = c.get("/healthz", None).await;
    assert_eq!((h.status, h.body.clone()), (200, json!({"status": "ok"})));
    let d = c.get("/", None).await;
    assert_eq!(d.status, 200);
    assert!(d.text.contains("lang=\"vi\""));
}
