//! The PostgreSQL store with real processes (§13): real `luot-server`s on a
//! real PostgreSQL (`luot-pgtest`), killed with `kill -9`; a second server
//! of the same site waits as a standby and takes over when the first dies;
//! `migrate` copies a sled site.

#![allow(clippy::unwrap_used)] // tests may panic on a broken server

use std::collections::HashSet;
use std::time::{Duration, Instant};

use luot_tests::{Api, KIOSK_TOKEN, KIOSK2_TOKEN, Site, test_site_toml};
use serde_json::Value;

/// The test hospital kept in PostgreSQL database `url`, as server `node`.
fn pg_site(url: &str, node: &str, patroni: &str) -> Site {
    let toml = format!(
        "{}\n[store]\nkind = \"postgres\"\nurl = \"{url}\"\n\n[ha]\nnode = \"{node}\"\nurl = \"http://{node}.test:8080\"\npatroni_url = \"{patroni}\"\n",
        test_site_toml(false)
    );
    Site::new(&toml)
}

/// An HTTP server on 127.0.0.1 that answers as the Patroni REST API of a
/// primary: 200 on `/primary`, `{"loop_wait": 2}` on `/config`.
async fn patroni_of_a_primary() -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let n = s.read(&mut buf).await.unwrap_or(0);
                let req = String::from_utf8_lossy(&buf[..n]);
                let body = if req.starts_with("GET /config") {
                    r#"{"ttl":10,"loop_wait":2,"retry_timeout":3,"synchronous_mode":true}"#
                } else {
                    r#"{"role":"primary"}"#
                };
                let _ = s
                    .write_all(
                        format!(
                            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                            body.len()
                        )
                        .as_bytes(),
                    )
                    .await;
            });
        }
    });
    url
}

/// Without [ha] (one server on one PostgreSQL): no Patroni to ask.
fn pg_site_alone(url: &str) -> Site {
    let toml = format!(
        "{}\n[store]\nkind = \"postgres\"\nurl = \"{url}\"\n",
        test_site_toml(false)
    );
    Site::new(&toml)
}

async fn wait_primary(api: &Api, within: Duration) -> Value {
    let t0 = Instant::now();
    loop {
        let h = api.get("/healthz", None).await;
        if h.status == 200 {
            return h.body;
        }
        assert!(
            t0.elapsed() < within,
            "no primary within {within:?}: {}",
            h.text
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The two kiosks of the test site and the service each issues for.
const KIOSKS: [(&str, &str); 2] = [(KIOSK_TOKEN, "kham-noi"), (KIOSK2_TOKEN, "xet-nghiem")];

/// Issues `n` tickets from each kiosk at once; the acknowledged ones, as
/// (kiosk, request id, ticket).
async fn rush(api: &Api, tag: &str, n: usize) -> Vec<(usize, String, Value)> {
    let mut tasks = Vec::new();
    for (k, (token, service)) in KIOSKS.into_iter().enumerate() {
        let api = api.clone();
        let tag = tag.to_string();
        tasks.push(tokio::spawn(async move {
            let mut got = Vec::new();
            for i in 0..n {
                let rid = format!("{tag}-{k}-{i}");
                let r = api.issue(token, service, &rid).await;
                if r.status == 201 || r.status == 200 {
                    got.push((k, rid, r.body.clone()));
                }
            }
            got
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_9_right_after_the_answers_loses_no_ticket_kept_in_postgres() {
    let pg = luot_pgtest::Cluster::start();
    let url = pg.fresh_database();
    let site = pg_site_alone(&url);
    let mut server = site.start();
    let api = Api::new(&server);
    let h = wait_primary(&api, Duration::from_secs(10)).await;
    assert_eq!(h["role"], "primary");
    let acked = rush(&api, "r", 40).await;
    assert_eq!(acked.len(), 80, "every press answered");
    server.kill9();

    let server = site.start();
    let api = Api::new(&server);
    wait_primary(&api, Duration::from_secs(10)).await;
    let mut numbers = HashSet::new();
    for (_, _, t) in &acked {
        let id = t["id"].as_str().unwrap();
        let got = api.get(&format!("/api/v1/tickets/{id}"), None).await;
        assert_eq!(got.status, 200, "ticket {id} lost: {}", got.text);
        assert!(numbers.insert(t["number"].as_str().unwrap().to_string()));
    }
    // A kiosk's resend after the restart gets the same ticket.
    let (k, rid, first) = &acked[7];
    let again = api.issue(KIOSKS[*k].0, KIOSKS[*k].1, rid).await;
    assert_eq!(again.body["id"], first["id"], "{}", again.text);
    // The next number follows on: none reused.
    let next = api.issue(KIOSK_TOKEN, "kham-noi", "after").await;
    assert!(numbers.insert(next.body["number"].as_str().unwrap().to_string()));
    // seq has no gap in luot_events, and luot_head says where it ends.
    let db = url.rsplit("dbname=").next().unwrap();
    let (n, max, head) = {
        let out = pg.psql(
            db,
            "SELECT count(*), max(seq), (SELECT seq FROM luot_head WHERE site_id = 'luot') \
             FROM luot_events WHERE site_id = 'luot'",
        );
        let v: Vec<i64> = out.split('|').map(|x| x.parse().unwrap()).collect();
        (v[0], v[1], v[2])
    };
    assert_eq!((n, max), (head, head), "events 1..{head} without a gap");
    // The first event of a new store is day_started (rule 115).
    let first = pg.psql(
        db,
        "SELECT body->>'kind' FROM luot_events WHERE site_id = 'luot' AND seq = 1",
    );
    assert_eq!(first, "day_started");
    let ha = api.get("/api/v1/ha", None).await;
    assert_eq!(ha.status, 200, "{}", ha.text);
    assert_eq!(ha.body["role"], "primary");
    assert_eq!(ha.body["store"], "postgres");
    assert_eq!(ha.body["seq"].as_i64(), Some(head));
    assert_eq!(ha.body["lag_events"], 0);
    assert!(ha.body["epoch"].as_str().unwrap().starts_with("ep_"));
    assert!(ha.body["term"].as_u64().unwrap() >= 2, "{}", ha.text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_server_waits_as_a_standby_and_takes_over_when_the_first_dies() {
    let pg = luot_pgtest::Cluster::start();
    let url = pg.fresh_database();
    // Patroni is the HA drills' (a real one, tests/src/ha.rs); here one
    // PostgreSQL serves both servers, and a stand-in answers as the Patroni
    // of a primary would, so that each server has its own [ha] node name.
    let patroni = patroni_of_a_primary().await;
    let a_site = pg_site(&url, "luot-a", &patroni);
    let b_site = pg_site(&url, "luot-b", &patroni);
    let mut a = a_site.start();
    let api_a = Api::new(&a);
    wait_primary(&api_a, Duration::from_secs(10)).await;
    let acked = rush(&api_a, "a", 15).await;
    assert_eq!(acked.len(), 30);

    let b = b_site.start();
    let api_b = Api::new(&b);
    // While a beats, b is a standby: 503 with who writes, before any check.
    let t0 = Instant::now();
    let refused = loop {
        let r = api_b.get("/api/v1/site", None).await;
        if r.status == 503 && r.body["error"]["writer"].is_string() {
            break r;
        }
        assert!(t0.elapsed() < Duration::from_secs(10), "{}", r.text);
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(refused.code(), "unavailable");
    // Out of recovery for under Patroni's loop_wait + 1 s it says
    // store_in_recovery (rule 106); then that another server writes.
    let t0 = Instant::now();
    let h = loop {
        let h = api_b.get("/healthz", None).await;
        assert_eq!(h.status, 503);
        assert_eq!(h.body["role"], "standby");
        if h.body["reason"] == "another_writer" {
            break h;
        }
        assert_eq!(h.body["reason"], "store_in_recovery");
        assert!(t0.elapsed() < Duration::from_secs(10), "{}", h.text);
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(h.body["seq"].is_u64());
    let ha = api_b.get("/api/v1/ha", None).await;
    assert_eq!(ha.body["role"], "standby");
    assert_eq!(ha.body["primary"]["node"], refused.body["error"]["writer"]);
    // A body too large is still 503 on a standby (rule 105: before 413).
    let big = api_b
        .post(
            "/api/v1/tickets",
            Some(KIOSK_TOKEN),
            Some(serde_json::json!({"service": "x".repeat(20_000)})),
        )
        .await;
    assert_eq!(big.status, 503);

    // a dies; b takes over after a's beat stood still for 3 s.
    a.kill9();
    let t0 = Instant::now();
    wait_primary(&api_b, Duration::from_secs(15)).await;
    let took = t0.elapsed();
    eprintln!("takeover after {took:?}");
    // Every ticket a acknowledged is there, and a resend answers it again.
    for (k, rid, t) in &acked {
        let again = api_b.issue(KIOSKS[*k].0, KIOSKS[*k].1, rid).await;
        assert_eq!(again.body["id"], t["id"], "{rid}: {}", again.text);
    }
    let after = rush(&api_b, "b", 5).await;
    let mut numbers: HashSet<String> = acked
        .iter()
        .map(|(_, _, t)| t["number"].as_str().unwrap().to_string())
        .collect();
    for (_, _, t) in &after {
        assert!(
            numbers.insert(t["number"].as_str().unwrap().to_string()),
            "reused"
        );
    }

    // a comes back: b writes now, so a stays a standby.
    let a2 = a_site.start();
    let api_a2 = Api::new(&a2);
    tokio::time::sleep(Duration::from_secs(4)).await;
    let h = api_a2.get("/healthz", None).await;
    assert_eq!(h.status, 503, "{}", h.text);
    assert_eq!(h.body["role"], "standby");
    assert_eq!(api_b.get("/healthz", None).await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_copies_a_sled_site_into_postgres_once_and_leaves_it_as_it_was() {
    let sled_site = Site::hospital();
    let mut server = sled_site.start();
    let api = Api::new(&server);
    let acked = rush(&api, "m", 5).await;
    assert_eq!(acked.len(), 10);
    // While a server runs on the directory, migrate refuses.
    let pg = luot_pgtest::shared();
    let url = pg.fresh_database();
    let target = pg_site_alone(&url);
    let migrate = || {
        std::process::Command::new(luot_tests::binary("luot-server"))
            .args(["migrate", "--config"])
            .arg(target.config())
            .args(["--to", "postgres", "--from-dir"])
            .arg(sled_site.data())
            .output()
            .unwrap()
    };
    let running = migrate();
    assert!(!running.status.success());
    assert!(
        String::from_utf8_lossy(&running.stderr).contains("running"),
        "{}",
        String::from_utf8_lossy(&running.stderr)
    );
    assert!(server.terminate());
    // What the sled directory holds, as its own backup says.
    let sled_backup = |name: &str| {
        let to = sled_site.dir.path().join(name);
        let ok = std::process::Command::new(luot_tests::binary("luot-server"))
            .args(["backup", "--config"])
            .arg(sled_site.config())
            .arg("--to")
            .arg(&to)
            .env("LUOT_DATA_DIR", sled_site.data())
            .status()
            .unwrap()
            .success();
        assert!(ok);
        std::fs::read(to).unwrap()
    };
    let before = sled_backup("before.backup");
    let done = migrate();
    let out = String::from_utf8_lossy(&done.stdout).to_string();
    assert!(
        done.status.success(),
        "{}",
        String::from_utf8_lossy(&done.stderr)
    );
    let line = out.trim();
    let n: u64 = line
        .strip_prefix("migrated ")
        .and_then(|r| r.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{line}"));
    assert_eq!(
        line,
        format!("migrated {n} events (seq 1..{n}) of site luot")
    );
    assert!(n >= 11, "a day_started and ten tickets at least: {line}");
    // Once only.
    let again = migrate();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already holds"));
    // The sled directory holds what it held.
    assert!(
        sled_backup("after.backup") == before,
        "migrate changed the sled data"
    );
    // The PostgreSQL site has every ticket, and numbering goes on.
    let pg_server = target.start();
    let api = Api::new(&pg_server);
    wait_primary(&api, Duration::from_secs(10)).await;
    for (k, rid, t) in &acked {
        let r = api.issue(KIOSKS[*k].0, KIOSKS[*k].1, rid).await;
        assert_eq!(r.body["id"], t["id"], "{}", r.text);
    }
    let next = api.issue(KIOSK_TOKEN, "kham-noi", "after-migrate").await;
    assert_eq!(next.status, 201);
    assert_eq!(next.body["number"], "A006");
}
