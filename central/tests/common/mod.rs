//! What the central tests share: a central on a fresh database of a real
//! PostgreSQL (luot-pgtest), served on 127.0.0.1:0, its users and site
//! tokens, and Batches made by hand as a site would ship them.

#![allow(dead_code, clippy::unwrap_used)]

use std::sync::OnceLock;

use luot_central::config::CentralConfig;
use luot_central::db::Db;
use luot_central::http::{self, Central};
use serde_json::{Value, json};

pub const TOKEN_A: &str = "token-of-site-a-0123456789";
pub const TOKEN_B: &str = "token-of-site-b-0123456789";
pub const ADMIN_PW: &str = "mật khẩu quản trị";
pub const VIEWER_PW: &str = "xem thôi";
pub const E1: &str = "ep_AAAAAAAAAAAAAAAAAAAAAA";
pub const E2: &str = "ep_BBBBBBBBBBBBBBBBBBBBBB";
pub const E3: &str = "ep_CCCCCCCCCCCCCCCCCCCCCC";

/// Argon2 hashes are slow in debug builds of the tests: made once.
pub fn hashes() -> &'static (String, String) {
    static H: OnceLock<(String, String)> = OnceLock::new();
    H.get_or_init(|| {
        (
            luot_server::secret::hash_password(ADMIN_PW),
            luot_server::secret::hash_password(VIEWER_PW),
        )
    })
}

/// central.toml for `db` listening on `listen`.
pub fn central_toml(db: &str, listen: &str) -> String {
    let (admin, viewer) = hashes();
    format!(
        r#"[central]
listen = "{listen}"
timezone = "Asia/Ho_Chi_Minh"

[store]
url = "{db}"

[[sites]]
id = "bv-a"
name = "Bệnh viện A"
token_sha256 = "{ta}"

[[sites]]
id = "bv-b"
name = "Trung tâm B"
token_sha256 = "{tb}"

[[users]]
username = "admin"
role = "admin"
password_hash = "{admin}"

[[users]]
username = "xem-a"
role = "viewer"
password_hash = "{viewer}"
sites = ["bv-a"]
"#,
        ta = luot_server::secret::sha256_hex(TOKEN_A),
        tb = luot_server::secret::sha256_hex(TOKEN_B),
    )
}

pub struct Env {
    pub base: String,
    pub db_url: String,
    pub http: reqwest::Client,
}

/// A central in this process on `db_url`.
pub async fn start_on(db_url: String) -> Env {
    let cfg = CentralConfig::parse("central.toml", &central_toml(&db_url, "127.0.0.1:0")).unwrap();
    let db = Db::new(&cfg.store).unwrap();
    db.init(&cfg.sites).await.unwrap();
    let app = Central::new(cfg, db);
    let router = http::router(app);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(luot_central::server::run(
        listener,
        None,
        router,
        std::future::pending(),
    ));
    Env {
        base: format!("http://{addr}"),
        db_url,
        http: reqwest::Client::new(),
    }
}

/// A central on a fresh database of the shared cluster.
pub async fn start() -> Env {
    let db = luot_pgtest::shared().fresh_database();
    start_on(db).await
}

pub struct Answer {
    pub status: u16,
    pub body: Value,
    pub headers: reqwest::header::HeaderMap,
    pub text: String,
}

impl Env {
    pub fn url(&self, path: &str) -> String {
        let root = ["/", "/healthz", "/metrics"].contains(&path) || path.starts_with("/api");
        if !root {
            format!("{}/api/central/v1{path}", self.base)
        } else {
            format!("{}{path}", self.base)
        }
    }

    pub async fn send(&self, req: reqwest::RequestBuilder) -> Answer {
        let r = req.send().await.unwrap();
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        let text = r.text().await.unwrap();
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Answer {
            status,
            body,
            headers,
            text,
        }
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: &Value) -> Answer {
        let mut r = self.http.post(self.url(path)).json(body);
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        self.send(r).await
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Answer {
        let mut r = self.http.get(self.url(path));
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        self.send(r).await
    }

    pub async fn login(&self, user: &str, pw: &str) -> String {
        let a = self
            .post("/login", None, &json!({"username": user, "password": pw}))
            .await;
        assert_eq!(a.status, 200, "{}", a.text);
        a.body["token"].as_str().unwrap().to_string()
    }

    pub async fn site(&self, admin: &str, id: &str) -> Value {
        let a = self.get("/sites", Some(admin)).await;
        assert_eq!(a.status, 200, "{}", a.text);
        a.body["sites"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["id"] == id)
            .cloned()
            .unwrap()
    }
}

/// A Ticket as a display connection gets it, its id already hashed.
#[allow(clippy::too_many_arguments)]
pub fn ticket(
    id: &str,
    number: &str,
    service: &str,
    status: &str,
    counter: Option<&str>,
    issued: &str,
    called: Option<&str>,
    finished: Option<&str>,
    day: &str,
) -> Value {
    json!({
        "id": id, "number": number, "service": service, "priority": null,
        "status": status, "counter": counter, "issued_at": issued,
        "called_at": called, "finished_at": finished, "day": day,
        "position": null, "estimated_wait_s": null,
        "calls": if called.is_some() { 1 } else { 0 },
    })
}

/// A shipped event: seq, `at`, body.
pub fn ev(seq: u64, at: &str, body: Value) -> Value {
    json!({"seq": seq, "at": at, "event": body})
}

/// Filler events: `ticket_issued` of ticket `h_<seq>` at minute `seq`.
pub fn filler(seqs: std::ops::RangeInclusive<u64>) -> Vec<Value> {
    seqs.map(|s| {
        let at = format!("2026-11-22T07:{:02}:{:02}+07:00", (s / 60) % 60, s % 60);
        ev(
            s,
            &at,
            json!({"kind": "ticket_issued", "service_name": "Khám",
                   "ticket": ticket(&format!("h_{s:032}"), &format!("A{s:03}"), "kham", "waiting", None, &at, None, None, "2026-11-22")}),
        )
    })
    .collect()
}

/// A Batch of `site` with `lineage` for `epoch`.
pub fn batch(
    site: &str,
    lineage: &[(&str, u64)],
    epoch: &str,
    head_seq: u64,
    oldest_seq: u64,
    events: Vec<Value>,
    ratings: Vec<Value>,
) -> Value {
    json!({
        "site_id": site, "node": "luot-a", "luot_version": "0.1.0",
        "head_seq": head_seq,
        "lineage": lineage.iter().map(|(e, f)| json!({"epoch": e, "first_seq": f})).collect::<Vec<_>>(),
        "epoch": epoch, "oldest_seq": oldest_seq,
        "config": {"applied": null, "pending": null, "rejected": null},
        "events": events, "ratings": ratings,
    })
}
