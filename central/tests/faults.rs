//! Faults: central's database stopped and started again (503, then the same
//! Batch taken with no gap or duplicate), and kill -9 of a real
//! `luot-central` process in the middle of ingest (nothing acknowledged is
//! lost).

#![allow(clippy::unwrap_used)]

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use luot_pgtest::{Cluster, pg_command};
use serde_json::json;

fn pg_ctl(c: &Cluster, args: &[&str]) {
    let data = c.socket_dir().join("data");
    let out = pg_command("pg_ctl")
        .arg("-D")
        .arg(&data)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "pg_ctl {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_its_database_down_central_answers_503_then_takes_the_same_batch() {
    let cluster = Cluster::start();
    let c = start_on(cluster.fresh_database()).await;
    let admin = c.login("admin", ADMIN_PW).await;
    let b1 = batch("bv-a", &[(E1, 1)], E1, 10, 1, filler(1..=10), vec![]);
    assert_eq!(c.post("/ingest", Some(TOKEN_A), &b1).await.status, 200);
    pg_ctl(&cluster, &["-m", "fast", "-w", "stop"]);
    let b2 = batch("bv-a", &[(E1, 1)], E1, 20, 1, filler(11..=20), vec![]);
    let a = c.post("/ingest", Some(TOKEN_A), &b2).await;
    assert_eq!(a.status, 503, "{}", a.text);
    assert_eq!(a.body["error"]["code"], "unavailable");
    let h = c.get("/healthz", None).await;
    assert_eq!(
        (h.status, h.body["status"].clone()),
        (503, json!("unavailable"))
    );
    let log = cluster.socket_dir().join("restart.log");
    pg_ctl(&cluster, &["-l", log.to_str().unwrap(), "-w", "start"]);
    // Once it is back, the same Batch is taken.
    let deadline = Instant::now() + Duration::from_secs(20);
    let a = loop {
        let a = c.post("/ingest", Some(TOKEN_A), &b2).await;
        if a.status != 503 || Instant::now() > deadline {
            break a;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(
        (a.status, a.body["acked_seq"].clone()),
        (200, json!(20)),
        "{}",
        a.text
    );
    let s = c.site(&admin, "bv-a").await;
    assert_eq!(
        (s["acked_seq"].clone(), s["missing"].clone()),
        (json!(20), json!([]))
    );
    let db = c.db_url.split("dbname=").nth(1).unwrap();
    assert_eq!(
        cluster.psql(
            db,
            "SELECT count(*), count(DISTINCT seq), min(seq), max(seq) FROM luot_central_events"
        ),
        "20|20|1|20"
    );
    assert_eq!(c.get("/healthz", None).await.status, 200);
}

struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A real `luot-central serve` on a free port; its address once it listens.
fn spawn(conf: &std::path::Path) -> (Proc, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_luot-central"))
        .args(["serve", "--config"])
        .arg(conf)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(a) = line.strip_prefix("luot-central listening on ") {
                let _ = tx.send(a.to_string());
            }
        }
    });
    let addr = rx.recv_timeout(Duration::from_secs(30)).unwrap();
    (Proc(child), addr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_ingest_loses_nothing_acknowledged() {
    let cluster = luot_pgtest::shared();
    let db = cluster.fresh_database();
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("central.toml");
    let port = luot_pgtest::free_port();
    std::fs::write(&conf, central_toml(&db, &format!("127.0.0.1:{port}"))).unwrap();
    let (mut proc, base) = spawn(&conf);
    let http = reqwest::Client::new();
    let url = format!("{base}/api/central/v1/ingest");
    // A site that ships 200 events a Batch as fast as central answers, and
    // resumes from the acked_seq it was last given.
    let mut acked = 0u64;
    let mut killed = false;
    let started = Instant::now();
    let mut batches = 0;
    while acked < 4000 {
        let from = acked + 1;
        let b = batch(
            "bv-a",
            &[(E1, 1)],
            E1,
            4000,
            1,
            filler(from..=from + 199),
            vec![],
        );
        let r = http.post(&url).bearer_auth(TOKEN_A).json(&b).send().await;
        match r {
            Ok(r) if r.status() == 200 => {
                let v: serde_json::Value = r.json().await.unwrap();
                acked = v["acked_seq"].as_u64().unwrap();
                batches += 1;
            }
            Ok(r) => panic!("unexpected {}", r.status()),
            Err(_) => {
                // Central is gone: start it again and go on from acked.
                assert!(killed, "a request failed before the kill");
                let (p, _) = spawn(&conf);
                proc = p;
                continue;
            }
        }
        if !killed && batches == 5 {
            // kill -9 while the next Batch is in flight.
            let pid = proc.0.id();
            let b = batch(
                "bv-a",
                &[(E1, 1)],
                E1,
                4000,
                1,
                filler(acked + 1..=acked + 200),
                vec![],
            );
            let http2 = http.clone();
            let url2 = url.clone();
            let inflight = tokio::spawn(async move {
                let _ = http2.post(&url2).bearer_auth(TOKEN_A).json(&b).send().await;
            });
            tokio::time::sleep(Duration::from_millis(3)).await;
            Command::new("kill")
                .args(["-9", &pid.to_string()])
                .status()
                .unwrap();
            let _ = proc.0.wait();
            let _ = inflight.await;
            killed = true;
            // Everything acknowledged is held.
            let dbname = db.split("dbname=").nth(1).unwrap();
            let max: u64 = cluster
                .psql(
                    dbname,
                    "SELECT coalesce(max(seq), 0) FROM luot_central_events",
                )
                .parse()
                .unwrap();
            assert!(max >= acked, "acknowledged {acked}, held {max}");
            let (p, _) = spawn(&conf);
            proc = p;
        }
        assert!(started.elapsed() < Duration::from_secs(120));
    }
    assert!(killed);
    let dbname = db.split("dbname=").nth(1).unwrap();
    assert_eq!(
        cluster.psql(
            dbname,
            "SELECT count(*), min(seq), max(seq) FROM luot_central_events"
        ),
        "4000|1|4000"
    );
    let m = http
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        m.contains("luot_central_behind_events{site=\"bv-a\"} 0"),
        "{m}"
    );
}
