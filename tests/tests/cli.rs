//! The command line of contract §6 and rules 1–5, 43, 44, run as real
//! processes: hash-password, token, check-config, the demo site, backup and
//! restore, SIGTERM, and a day that starts while the server is down.

#![allow(clippy::unwrap_used, clippy::type_complexity)] // tests may panic on a broken server

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use luot_tests::*;
use serde_json::json;

fn run(args: &[&str], stdin: &str) -> (i32, String, String) {
    let mut child = Command::new(binary("luot-server"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn hash_password_prints_only_the_hash() {
    let (code, out, _) = run(&["hash-password"], "bí mật 123\n");
    assert_eq!(code, 0);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 1);
    assert!(lines[0].starts_with("$argon2id$"));
    assert!(luot_server::auth::verify_password("bí mật 123", lines[0]));
    assert!(!luot_server::auth::verify_password(
        "bí mật 123\n",
        lines[0]
    ));
}

#[test]
fn token_prints_token_and_its_sha256() {
    let (code, out, _) = run(&["token"], "");
    assert_eq!(code, 0);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2);
    assert!(lines[0].len() >= 32);
    assert_eq!(lines[1], sha(lines[0]));
    assert!(
        lines[1]
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    );
    let (_, again, _) = run(&["token"], "");
    assert_ne!(again, out, "every token is new");
}

#[test]
fn check_config_names_file_line_and_field() {
    let site = Site::hospital();
    let path = site.config();
    let (code, out, err) = run(&["check-config", path.to_str().unwrap()], "");
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("3 services"), "{out}");

    // A duplicate prefix, reported at its second occurrence.
    let text = test_site_toml(false).replace("prefix = \"B\"", "prefix = \"A\"");
    let line = text.lines().position(|l| l == "prefix = \"A\"").unwrap();
    let second = text
        .lines()
        .enumerate()
        .filter(|(_, l)| *l == "prefix = \"A\"")
        .nth(1)
        .unwrap()
        .0
        + 1;
    assert!(second > line + 1);
    std::fs::write(&path, &text).unwrap();
    let (code, _, err) = run(&["check-config", path.to_str().unwrap()], "");
    assert_ne!(code, 0);
    let want = format!("{}:{second}: services.prefix", path.display());
    assert!(err.contains(&want), "{err} should contain {want}");

    // A counter naming an unknown service.
    let text = test_site_toml(false).replace(
        "services = [\"xet-nghiem\"]\n\n[[devices]]",
        "services = [\"sieu-am\"]\n\n[[devices]]",
    );
    std::fs::write(&path, &text).unwrap();
    let (code, _, err) = run(&["check-config", path.to_str().unwrap()], "");
    assert_ne!(code, 0);
    assert!(
        err.contains("counters.services") && err.contains("sieu-am"),
        "{err}"
    );

    // A file that is not there.
    let (code, _, err) = run(&["check-config", "/nonexistent/site.toml"], "");
    assert_ne!(code, 0);
    assert!(err.contains("/nonexistent/site.toml"));

    // serve refuses a bad configuration too.
    let (code, _, err) = run(&["serve", "--config", path.to_str().unwrap()], "");
    assert_ne!(code, 0);
    assert!(err.contains("sieu-am"));
}

#[test]
fn check_config_names_the_key_of_a_syntax_error() {
    let site = Site::hospital();
    let path = site.config();
    let text = test_site_toml(false).replacen("digits = 3", "digits = = 3", 1);
    let line = text.lines().position(|l| l == "digits = = 3").unwrap() + 1;
    std::fs::write(&path, &text).unwrap();
    let (code, out, err) = run(&["check-config", path.to_str().unwrap()], "");
    assert_ne!(code, 0, "{out}");
    let want = format!("{}:{line}: services.digits: ", path.display());
    assert!(err.contains(&want), "{err} should contain {want}");
}

#[test]
fn check_config_names_a_bad_queue_or_reports_value() {
    let site = Site::hospital();
    let path = site.config();
    let good = format!(
        "{}\n[queue]\npolicy = \"longest_wait\"\nreturning_ratio = 2\n\
         \n[reports]\ntest_services = [\"xet-nghiem\"]\nvisit_limits_min = [90, 150]\n",
        test_site_toml(false)
    );
    std::fs::write(&path, &good).unwrap();
    let (code, _, err) = run(&["check-config", path.to_str().unwrap()], "");
    assert_eq!(code, 0, "{err}");
    for (from, to, field) in [
        (
            "policy = \"longest_wait\"",
            "policy = \"oldest\"",
            "queue.policy",
        ),
        (
            "returning_ratio = 2",
            "returning_ratio = 250",
            "queue.returning_ratio",
        ),
        (
            "test_services = [\"xet-nghiem\"]",
            "test_services = [\"sieu-am\"]",
            "reports.test_services",
        ),
        (
            "visit_limits_min = [90, 150]",
            "visit_limits_min = [90, 2000]",
            "reports.visit_limits_min",
        ),
    ] {
        let text = good.replace(from, to);
        let line = text.lines().position(|l| l == to).unwrap() + 1;
        std::fs::write(&path, &text).unwrap();
        let (code, out, err) = run(&["check-config", path.to_str().unwrap()], "");
        assert_ne!(code, 0, "{out}");
        let want = format!("{}:{line}: {field}: ", path.display());
        assert!(err.contains(&want), "{err} should contain {want}");
    }
    // A counter's own policy is checked as the site's.
    let text = good.replacen(
        "services = [\"kham-noi\"]\n",
        "services = [\"kham-noi\"]\npolicy = \"fastest\"\n",
        1,
    );
    let line = text
        .lines()
        .position(|l| l == "policy = \"fastest\"")
        .unwrap()
        + 1;
    std::fs::write(&path, &text).unwrap();
    let (code, _, err) = run(&["check-config", path.to_str().unwrap()], "");
    assert_ne!(code, 0);
    let want = format!("{}:{line}: counters.policy: ", path.display());
    assert!(err.contains(&want) && err.contains("fastest"), "{err}");
}

/// `luot-server` with `LUOT_DATA_DIR` set to `data`: exit status and stderr.
fn run_on(data: &std::path::Path, args: &[&str]) -> (bool, String) {
    let out = Command::new(binary("luot-server"))
        .args(args)
        .env("LUOT_DATA_DIR", data)
        .env("LUOT_LISTEN", "127.0.0.1:0")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn restores_in_the_same_second_keep_every_previous_copy() {
    let site = Site::hospital();
    let data = site.data();
    let cfg = site.config();
    let cfg = cfg.to_str().unwrap();
    let file = site.dir.path().join("luot.backup");
    let (ok, err) = run_on(
        &data,
        &["backup", "--config", cfg, "--to", file.to_str().unwrap()],
    );
    assert!(ok, "{err}");
    // Whatever second the restores run in, its name is already taken.
    let now = chrono::Local::now();
    for s in 0..60 {
        let stamp = (now + chrono::Duration::seconds(s)).format("%Y%m%d-%H%M%S");
        let taken = data.join(format!("db.before-restore-{stamp}"));
        std::fs::create_dir_all(&taken).unwrap();
        std::fs::write(taken.join("earlier"), "an earlier copy").unwrap();
    }
    let restore = ["restore", "--config", cfg, "--from", file.to_str().unwrap()];
    let mut kept = Vec::new();
    for _ in 0..2 {
        let (ok, err) = run_on(&data, &restore);
        assert!(ok, "every restore succeeds: {err}");
        let line = err
            .lines()
            .find_map(|l| l.strip_prefix("the previous data is kept in "))
            .unwrap_or_else(|| panic!("{err}"));
        kept.push(std::path::PathBuf::from(line));
    }
    assert_ne!(kept[0], kept[1]);
    for copy in &kept {
        assert!(
            copy.join("db").is_file(),
            "{} holds a database",
            copy.display()
        );
        assert!(!copy.join("earlier").exists());
    }
    let earlier = std::fs::read_dir(&data)
        .unwrap()
        .filter(|e| e.as_ref().unwrap().path().join("earlier").is_file())
        .count();
    assert_eq!(earlier, 60, "no earlier copy is replaced");
    assert!(data.join("db").join("db").is_file());
}

#[test]
fn file_errors_name_their_path() {
    let site = Site::hospital();
    let data = site.data();
    let cfg = site.config();
    let cfg = cfg.to_str().unwrap();

    // A backup into a directory that does not exist.
    let to = site.dir.path().join("no-such-dir").join("luot.backup");
    let (ok, err) = run_on(
        &data,
        &["backup", "--config", cfg, "--to", to.to_str().unwrap()],
    );
    assert!(!ok);
    assert!(err.contains(to.to_str().unwrap()), "{err}");

    // A restore from a file that is not there.
    let from = site.dir.path().join("missing.backup");
    let (ok, err) = run_on(
        &data,
        &["restore", "--config", cfg, "--from", from.to_str().unwrap()],
    );
    assert!(!ok);
    assert!(err.contains(from.to_str().unwrap()), "{err}");

    // A data directory that cannot be made (under a file), for every command.
    let blocker = site.dir.path().join("a-file");
    std::fs::write(&blocker, "").unwrap();
    let bad = blocker.join("data");
    let backup = site.dir.path().join("b.backup");
    let backup = backup.to_str().unwrap();
    std::fs::write(backup, "not a backup").unwrap();
    for args in [
        vec!["serve", "--config", cfg],
        vec!["backup", "--config", cfg, "--to", backup],
        vec!["restore", "--config", cfg, "--from", backup],
    ] {
        let (ok, err) = run_on(&bad, &args);
        assert!(!ok, "{args:?}");
        assert!(err.contains(bad.to_str().unwrap()), "{args:?}: {err}");
    }
}

#[tokio::test]
async fn demo_site_prints_its_secrets_and_works() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("stderr");
    let mut child = Command::new(binary("luot-server"))
        .current_dir(dir.path())
        .env("LUOT_LISTEN", "127.0.0.1:0")
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let line = tokio::task::spawn_blocking(move || {
        use std::io::BufRead;
        std::io::BufReader::new(stdout)
            .lines()
            .next()
            .unwrap()
            .unwrap()
    })
    .await
    .unwrap();
    let addr = line
        .strip_prefix("luot-server listening on http://")
        .unwrap()
        .to_string();
    let err = std::fs::read_to_string(&log).unwrap();
    assert!(err.contains("DEMO"), "a loud warning");
    assert!(dir.path().join("luot-data").is_dir(), "data in ./luot-data");
    // Each secret on its own line; the password line names its user.
    let kiosk_line = err.lines().find(|l| l.contains("kiosk token")).unwrap();
    let kiosk_token = kiosk_line.rsplit(' ').next().unwrap().to_string();
    let staff_line = err.lines().find(|l| l.contains("staff user")).unwrap();
    let staff_user = staff_line
        .split("staff user ")
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .to_string();
    let staff_pw = staff_line.rsplit(' ').next().unwrap().to_string();
    assert!(
        err.lines()
            .any(|l| l.contains("admin user") && l.contains("password"))
    );
    assert!(err.lines().any(|l| l.contains("display token")));

    let http = reqwest::Client::new();
    let site: serde_json::Value = http
        .get(format!("http://{addr}/api/v1/site"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(site["services"].as_array().unwrap().len(), 3);
    assert_eq!(site["counters"].as_array().unwrap().len(), 4);
    let t = http
        .post(format!("http://{addr}/api/v1/tickets"))
        .bearer_auth(&kiosk_token)
        .json(&json!({"service": site["services"][0]["id"], "request_id": "demo-1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(t.status().as_u16(), 201);
    let l = http
        .post(format!("http://{addr}/api/v1/login"))
        .json(&json!({"username": staff_user, "password": staff_pw}))
        .send()
        .await
        .unwrap();
    assert_eq!(l.status().as_u16(), 200);
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let status = child.wait().unwrap();
    assert!(status.success());
}

#[tokio::test]
async fn sigterm_drains_and_closes_sockets_with_1001() {
    let site = Site::hospital();
    let mut server = site.start();
    let api = Api::new(&server);
    let t = api.issue(KIOSK_TOKEN, "kham-noi", "t1").await;
    let (mut ws, _) = Ws::hello(&server, Some(DISPLAY_TOKEN), None).await;
    ws.recv().await.unwrap();
    let exited_ok = tokio::task::spawn_blocking(move || {
        let ok = server.terminate();
        (ok, server)
    });
    assert_eq!(ws.close_code().await, Some(1001));
    let (ok, server) = exited_ok.await.unwrap();
    assert!(ok, "exit status 0 after SIGTERM: {}", server.stderr());
    drop(server);
    let server = site.start();
    let api = Api::new(&server);
    let g = api
        .get(
            &format!("/api/v1/tickets/{}", t.body["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(g.status, 200);
}

#[tokio::test]
async fn backup_while_running_and_restore() {
    let site = Site::hospital();
    let data = site.data();
    let cfg = site.config();
    let env_run = |args: &[&str]| {
        Command::new(binary("luot-server"))
            .args(args)
            .env("LUOT_DATA_DIR", &data)
            .output()
            .unwrap()
    };
    let mut server = site.start();
    let api = Api::new(&server);
    let kept = api.issue(KIOSK_TOKEN, "kham-noi", "b1").await.body;
    api.issue(KIOSK_TOKEN, "kham-noi", "b2").await;
    let backup_seq = {
        let (mut ws, _) = Ws::hello(&server, Some(DISPLAY_TOKEN), None).await;
        ws.recv().await.unwrap()["seq"].as_u64().unwrap()
    };
    let file = site.dir.path().join("luot.backup");
    let out = env_run(&[
        "backup",
        "--config",
        cfg.to_str().unwrap(),
        "--to",
        file.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(file.metadata().unwrap().len() > 100);
    let lost = api.issue(KIOSK_TOKEN, "kham-noi", "b3").await.body;
    assert_eq!(lost["number"], "A003");

    // restore refuses while the server runs.
    let out = env_run(&[
        "restore",
        "--config",
        cfg.to_str().unwrap(),
        "--from",
        file.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("running"));

    assert!(server.terminate());
    let out = env_run(&[
        "restore",
        "--config",
        cfg.to_str().unwrap(),
        "--from",
        file.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let server = site.start();
    let api = Api::new(&server);
    let g = api
        .get(
            &format!("/api/v1/tickets/{}", kept["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!((g.status, g.body["number"].as_str()), (200, Some("A001")));
    let g = api
        .get(
            &format!("/api/v1/tickets/{}", lost["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(g.status, 404, "the data directory is the backup's");
    // seq continues from the backup's last event.
    let (mut ws, _) = Ws::hello(&server, Some(DISPLAY_TOKEN), None).await;
    assert_eq!(ws.recv().await.unwrap()["seq"].as_u64(), Some(backup_seq));
    let t = api.issue(KIOSK_TOKEN, "kham-noi", "b4").await;
    assert_eq!(
        ws.recv().await.unwrap()["seq"].as_u64(),
        Some(backup_seq + 1)
    );
    assert_eq!(t.body["number"], "A003");

    // Backup with the server stopped works too, and a damaged file is refused.
    drop(server);
    let file2 = site.dir.path().join("offline.backup");
    let out = env_run(&[
        "backup",
        "--config",
        cfg.to_str().unwrap(),
        "--to",
        file2.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut bytes = std::fs::read(&file2).unwrap();
    bytes.truncate(bytes.len() - 7);
    std::fs::write(&file2, &bytes).unwrap();
    let out = env_run(&[
        "restore",
        "--config",
        cfg.to_str().unwrap(),
        "--from",
        file2.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    let server = site.start();
    let api = Api::new(&server);
    let g = api
        .get(
            &format!("/api/v1/tickets/{}", t.body["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(g.status, 200, "a refused restore leaves the data alone");
}

#[tokio::test]
async fn a_day_that_began_while_the_server_was_down() {
    let site = Site::hospital();
    let server = site.start();
    let api = Api::new(&server);
    let staff = api.login("le.thu").await;
    let admin_day1 = api.login("admin").await;
    let waiting = api.issue(KIOSK_TOKEN, "kham-noi", "d1").await.body;
    let served = api.issue(KIOSK_TOKEN, "kham-noi", "d2").await.body;
    api.post("/api/v1/counters/quay-1/next", Some(&staff), None)
        .await;
    api.post("/api/v1/counters/quay-1/done", Some(&staff), None)
        .await;
    let day1 = api.get("/api/v1/site", None).await.body["day"]
        .as_str()
        .unwrap()
        .to_string();
    let (mut ws, _) = Ws::hello(&server, Some(DISPLAY_TOKEN), None).await;
    let seq1 = ws.recv().await.unwrap()["seq"].as_u64().unwrap();
    drop(ws);
    drop(server);

    // Start again a day later.
    let server = Server::start(
        &site.config(),
        &site.data(),
        &[("LUOT_CLOCK_OFFSET_S", "86400")],
    );
    let api = Api::new(&server);
    let s = api.get("/api/v1/site", None).await.body;
    assert_ne!(s["day"].as_str().unwrap(), day1);
    assert_eq!(
        s["services"][0]["waiting"], 0,
        "yesterday's tickets do not leak into today"
    );
    let (mut ws, _) = Ws::hello(&server, Some(DISPLAY_TOKEN), Some(seq1)).await;
    let snap = ws.recv().await.unwrap();
    assert_eq!(
        snap["seq"].as_u64(),
        Some(seq1 + 1),
        "one day_started event, no event per ticket"
    );
    // Yesterday's waiting ticket is a no-show, the served one stays done.
    let g = api
        .get(
            &format!("/api/v1/tickets/{}", waiting["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(g.body["status"], "done", "A001 was served first");
    let g = api
        .get(
            &format!("/api/v1/tickets/{}", served["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(g.body["status"], "no_show");
    assert_eq!(g.body["day"].as_str().unwrap(), day1);
    // Numbering restarts.
    let t = api.issue(KIOSK_TOKEN, "kham-noi", "d3").await;
    assert_eq!(t.body["number"], "A001");
    // A replay of yesterday's request answers yesterday's ticket as it is now.
    let r = api.issue(KIOSK_TOKEN, "kham-noi", "d2").await;
    assert_eq!(
        (r.status, r.body["id"].clone()),
        (200, served["id"].clone())
    );
    // Yesterday's report is kept; login tokens survive the restart.
    let rep = api
        .get(
            &format!("/api/v1/reports/daily?day={day1}"),
            Some(&admin_day1),
        )
        .await;
    assert_eq!(rep.status, 200, "{}", rep.text);
    let noi = &rep.body["services"][0];
    assert_eq!(
        (
            noi["issued"].as_u64(),
            noi["served"].as_u64(),
            noi["no_shows"].as_u64()
        ),
        (Some(2), Some(1), Some(1))
    );
    tokio::time::sleep(Duration::from_millis(10)).await;
}

#[tokio::test]
async fn a_damaged_data_dir_stops_start_up_with_a_pointer_to_restore() {
    let site = Site::hospital();
    let mut server = site.start();
    let api = Api::new(&server);
    api.issue(KIOSK_TOKEN, "kham-noi", "x1").await;
    assert!(server.terminate());
    // Empty the database file, as a failing SD card or a bad copy might.
    let db = site.data().join("db").join("db");
    std::fs::OpenOptions::new()
        .write(true)
        .open(&db)
        .unwrap()
        .set_len(0)
        .unwrap();
    std::fs::write(&db, vec![0u8; 512 * 1024]).unwrap();
    let err = start_fails(&site);
    assert!(err.contains("luot-server restore"), "{err}");
}

/// Starts the server on `site` and expects it to refuse: returns its stderr.
fn start_fails(site: &Site) -> String {
    let mut child = Command::new(binary("luot-server"))
        .args(["serve", "--config"])
        .arg(site.config())
        .env("LUOT_LISTEN", "127.0.0.1:0")
        .env("LUOT_DATA_DIR", site.data())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let t0 = std::time::Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if t0.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            panic!("a damaged store started as if nothing happened");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(
        !status.success(),
        "a damaged store never starts as an empty or shortened queue"
    );
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    err
}

/// The database file cut short after a crash (a bad copy, a failing card):
/// sled would recover the part before the cut and serve it; the server
/// notices acknowledged tickets are missing and points to `restore`.
#[tokio::test]
async fn a_log_cut_short_stops_start_up_with_a_pointer_to_restore() {
    let site = Site::hospital();
    let mut server = site.start();
    let api = Api::new(&server);
    let (mut k, _) = Ws::hello(&server, Some(KIOSK_TOKEN), None).await;
    k.recv().await.unwrap();
    for i in 0..400 {
        k.send(json!({"type": "issue", "request_id": format!("cut-{i}"), "service": "kham-noi"}))
            .await;
        k.recv_until(|v| v["type"] == "issued").await;
    }
    assert_eq!(
        api.get("/api/v1/site", None).await.body["services"][0]["waiting"],
        400
    );
    server.kill9();
    let db = site.data().join("db").join("db");
    let len = std::fs::metadata(&db).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&db)
        .unwrap()
        .set_len(len * 2 / 3)
        .unwrap();
    let err = start_fails(&site);
    eprintln!("{err}");
    assert!(err.contains("truncated or damaged"), "{err}");
    assert!(err.contains("luot-server restore"), "{err}");
}
