//! Rules 116 and 119: configuration versions posted, refused, read with
//! ETag and 304, by the site itself or an admin; and `push-config`.

#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use serde_json::json;

fn version_toml(name: &str) -> String {
    let (admin, _) = hashes();
    format!(
        r#"[site]
name = "{name}"

[[services]]
id = "kham"
name = "Khám"
prefix = "A"

[[counters]]
id = "q1"
name = "Quầy 1"
services = ["kham"]

[[users]]
username = "admin"
role = "admin"
password_hash = "{admin}"
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_that_does_not_validate_is_refused_and_never_offered() {
    let c = start().await;
    let admin = c.login("admin", ADMIN_PW).await;
    let bad = version_toml("A").replace("services = [\"kham\"]", "services = [\"nope\"]");
    let a = c
        .post("/sites/bv-a/config", Some(&admin), &json!({"toml": bad}))
        .await;
    assert_eq!(a.status, 400, "{}", a.text);
    assert_eq!(a.body["error"]["code"], "invalid_config");
    let msg = a.body["error"]["message"].as_str().unwrap();
    assert!(
        msg.starts_with("central:v1:12: counters.services: "),
        "{msg}"
    );
    assert_eq!(a.body["error"]["line"], 12);
    assert_eq!(a.body["error"]["field"], "counters.services");
    // A machine-local key.
    let local = format!("{}\n[server]\nlisten = \"0.0.0.0:80\"\n", version_toml("A"));
    let a = c
        .post("/sites/bv-a/config", Some(&admin), &json!({"toml": local}))
        .await;
    assert_eq!(a.status, 400);
    assert_eq!(a.body["error"]["field"], "server");
    // Nothing is offered.
    let a = c.get("/sites/bv-a/config", Some(TOKEN_A)).await;
    assert_eq!(
        (a.status, a.body["error"]["code"].clone()),
        (404, json!("no_config"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn versions_are_numbered_and_read_with_etags() {
    let c = start().await;
    let admin = c.login("admin", ADMIN_PW).await;
    let v1 = version_toml("Bệnh viện A");
    let a = c
        .post(
            "/sites/bv-a/config",
            Some(&admin),
            &json!({"toml": v1, "note": "đầu tiên"}),
        )
        .await;
    assert_eq!(a.status, 201, "{}", a.text);
    assert_eq!(a.body["version"], 1);
    assert_eq!(a.body["sha256"], luot_server::secret::sha256_hex(&v1));
    let v2 = version_toml("Bệnh viện A mới");
    let a = c
        .post("/sites/bv-a/config", Some(&admin), &json!({"toml": v2}))
        .await;
    assert_eq!(a.body["version"], 2);
    // The site reads its newest.
    let a = c.get("/sites/bv-a/config", Some(TOKEN_A)).await;
    assert_eq!(a.status, 200);
    assert_eq!(a.headers["etag"], "\"2\"");
    assert_eq!(a.body["version"], 2);
    assert_eq!(a.body["toml"], v2);
    assert_eq!(a.body["created_by"], "admin");
    assert_eq!(a.body["note"], json!(null));
    // 304 on If-None-Match.
    let r = c
        .http
        .get(c.url("/sites/bv-a/config"))
        .bearer_auth(TOKEN_A)
        .header("if-none-match", "\"2\"");
    let a = c.send(r).await;
    assert_eq!(a.status, 304);
    assert_eq!(a.headers["etag"], "\"2\"");
    let r = c
        .http
        .get(c.url("/sites/bv-a/config"))
        .bearer_auth(TOKEN_A)
        .header("if-none-match", "\"1\"");
    assert_eq!(c.send(r).await.status, 200);
    // ?version=N
    let a = c.get("/sites/bv-a/config?version=1", Some(&admin)).await;
    assert_eq!(
        (a.body["version"].clone(), a.body["note"].clone()),
        (json!(1), json!("đầu tiên"))
    );
    let a = c.get("/sites/bv-a/config?version=9", Some(&admin)).await;
    assert_eq!(
        (a.status, a.body["error"]["code"].clone()),
        (404, json!("no_config"))
    );
    // Another site's token, or a viewer: 403.
    assert_eq!(c.get("/sites/bv-a/config", Some(TOKEN_B)).await.status, 403);
    let viewer = c.login("xem-a", VIEWER_PW).await;
    assert_eq!(c.get("/sites/bv-a/config", Some(&viewer)).await.status, 403);
    // The ingest answer names the newest version, and /sites shows it.
    let b = batch("bv-a", &[(E1, 1)], E1, 0, 1, vec![], vec![]);
    let a = c.post("/ingest", Some(TOKEN_A), &b).await;
    assert_eq!(a.body["config_version"], 2, "{}", a.text);
    assert_eq!(c.site(&admin, "bv-a").await["config"]["latest"], 2);
}

#[test]
fn push_config_prints_the_version() {
    let cluster = luot_pgtest::shared();
    let db = cluster.fresh_database();
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("central.toml");
    std::fs::write(&conf, central_toml(&db, "127.0.0.1:0")).unwrap();
    let file = dir.path().join("v.toml");
    std::fs::write(&file, version_toml("A")).unwrap();
    let run = |file: &std::path::Path| {
        std::process::Command::new(env!("CARGO_BIN_EXE_luot-central"))
            .args(["push-config", "--config"])
            .arg(&conf)
            .args(["--site", "bv-a", "--file"])
            .arg(file)
            .args(["--note", "từ dòng lệnh"])
            .output()
            .unwrap()
    };
    let out = run(&file);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "1\n");
    let out = run(&file);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "2\n");
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[site]\nname = \"A\"\nid = \"bv-a\"\n").unwrap();
    let out = run(&bad);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("central:v3:3: site.id: "), "{err}");
    // check-config, token, hash-password.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_luot-central"))
        .arg("check-config")
        .arg(&conf)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_luot-central"))
        .arg("token")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[1], luot_server::secret::sha256_hex(lines[0]));
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_luot-central"))
        .arg("hash-password")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"mat khau\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let hash = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(luot_server::auth::verify_password("mat khau", &hash));
    // A bad central.toml names file, line and field.
    std::fs::write(&conf, central_toml(&db, "0.0.0.0:80")).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_luot-central"))
        .arg("check-config")
        .arg(&conf)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("central.toml:2: central.listen: "), "{err}");
}
