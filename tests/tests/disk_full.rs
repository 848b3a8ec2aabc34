//! A full disk: issuing fails with 503 `unavailable`, nothing is acknowledged
//! that is not stored, `/healthz` says so, and the server carries on when
//! space returns. Needs root to mount a small tmpfs (CI runs as root); without
//! it the test says so and checks nothing.

#![allow(clippy::unwrap_used)]

use std::process::Command;
use std::time::{Duration, Instant};

use luot_tests::*;

struct Mount(std::path::PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_answers_503_and_recovers() {
    let site = Site::hospital();
    let data = site.data();
    std::fs::create_dir_all(&data).unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=4m", "tmpfs"])
        .arg(&data)
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !mounted {
        eprintln!("SKIPPED: cannot mount a tmpfs here (needs root)");
        return;
    }
    let _mount = Mount(data.clone());
    // Ballast to free later.
    let ballast = data.join("ballast");
    std::fs::write(&ballast, vec![0u8; 1024 * 1024]).unwrap();
    let mut server = site.start();
    let api = Api::new(&server);

    let mut acked: Vec<(String, String)> = Vec::new();
    let mut refused = None;
    let t0 = Instant::now();
    for i in 0..200_000 {
        let r = api
            .issue(KIOSK_TOKEN, "kham-noi", &format!("fill-{i}"))
            .await;
        match r.status {
            201 => acked.push((
                r.body["id"].as_str().unwrap().into(),
                r.body["number"].as_str().unwrap().into(),
            )),
            503 => {
                refused = Some(r);
                break;
            }
            other => panic!("unexpected {other}: {}", r.text),
        }
        assert!(
            t0.elapsed() < Duration::from_secs(240),
            "the disk never filled"
        );
    }
    let refused = refused.expect("a full disk refuses");
    assert_eq!(refused.code(), "unavailable");
    assert!(
        !refused.body["error"]["message"]
            .as_str()
            .unwrap()
            .is_empty()
    );
    let h = api.get("/healthz", None).await;
    assert_eq!(h.status, 503);
    assert_eq!(h.body["status"], "unavailable");
    assert!(h.body["reason"].is_string());

    // Space comes back: the server carries on without a restart.
    std::fs::remove_file(&ballast).unwrap();
    let t0 = Instant::now();
    let after = loop {
        let r = api.issue(KIOSK_TOKEN, "kham-noi", "after-space").await;
        if r.status == 201 || r.status == 200 {
            break r;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "no recovery: {}",
            r.text
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(api.get("/healthz", None).await.status, 200);

    // Nothing acknowledged was lost, and no number was given twice.
    server.kill9();
    let server = site.start();
    let api = Api::new(&server);
    let mut numbers = std::collections::HashSet::new();
    for (id, number) in acked.iter().chain(std::iter::once(&(
        after.body["id"].as_str().unwrap().to_string(),
        after.body["number"].as_str().unwrap().to_string(),
    ))) {
        let g = api.get(&format!("/api/v1/tickets/{id}"), None).await;
        assert_eq!(
            (g.status, g.body["number"].as_str()),
            (200, Some(number.as_str()))
        );
        assert!(numbers.insert(number.clone()), "{number} given twice");
    }
    let next = api.issue(KIOSK_TOKEN, "kham-noi", "after-restart").await;
    assert!(numbers.insert(next.body["number"].as_str().unwrap().to_string()));
    eprintln!("{} tickets fitted before the disk was full", acked.len());
}
