//! Helpers for the end-to-end tests and benchmarks: build and start the real
//! `luot-server` binary on a temporary data directory and port 0, write test
//! sites, and talk to it over real HTTP and websockets.

pub mod booking;
pub mod browser;
pub mod chaos_proxy;
pub mod escpos;
pub mod fake_printer;
pub mod ha;
pub mod load;
pub mod webhook_receiver;
pub mod ws_pipe;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{LazyLock, Once};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

static BUILD: Once = Once::new();

/// The directory the test binary's profile builds into (target/debug or target/release).
pub fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    // target/<profile>/deps/<test> or target/<profile>/<bin>
    let mut dir = exe.parent().expect("exe dir").to_path_buf();
    if dir.ends_with("deps") {
        dir.pop();
    }
    dir
}

/// Builds the workspace binaries once per test process and returns the path of `name`.
pub fn binary(name: &str) -> PathBuf {
    BUILD.call_once(|| {
        let release = target_dir().ends_with("release");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.args([
            "build",
            "--quiet",
            "-p",
            "luot-server",
            "-p",
            "luot-kiosk",
            "--bins",
        ]);
        if release {
            cmd.arg("--release");
        }
        cmd.current_dir(env!("CARGO_MANIFEST_DIR"));
        let status = cmd.status().expect("run cargo build");
        assert!(status.success(), "cargo build of the binaries failed");
    });
    let p = target_dir().join(name);
    assert!(p.exists(), "{} was not built", p.display());
    p
}

pub const KIOSK_TOKEN: &str = "test-kiosk-token-aaaaaaaaaaaaaaaa";
pub const KIOSK2_TOKEN: &str = "test-kiosk2-token-bbbbbbbbbbbbbbb";
pub const DISPLAY_TOKEN: &str = "test-display-token-cccccccccccccc";
pub const PASSWORD: &str = "mật-khẩu-thử";

static PASSWORD_HASH: LazyLock<String> =
    LazyLock::new(|| luot_server::auth::hash_password(PASSWORD));

pub fn sha(s: &str) -> String {
    luot_server::auth::sha256_hex(s)
}

/// A small hospital: three services, four counters, two kiosks, one display,
/// staff `le.thu` (quay-1), `tran.an` (quay-2, quay-3) and admin `admin`.
pub fn test_site_toml(public_board: bool) -> String {
    format!(
        r#"
[site]
name = "Bệnh viện Thử nghiệm"
timezone = "Asia/Ho_Chi_Minh"
day_starts_at = "05:00"
public_url = "http://luot.test"

[server]
listen = "127.0.0.1:0"
data_dir = "unused"
public_board = {public_board}

[priority]
ratio = 2
classes = ["emergency", "child_under_6", "pregnant", "age_75_plus"]

[[services]]
id = "kham-noi"
name = "Khám Nội"
prefix = "A"
digits = 3

[[services]]
id = "kham-ngoai"
name = "Khám Ngoại"
prefix = "B"
digits = 3

[[services]]
id = "xet-nghiem"
name = "Xét nghiệm"
prefix = "C"
digits = 3

[[counters]]
id = "quay-1"
name = "Quầy 1"
services = ["kham-noi"]

[[counters]]
id = "quay-2"
name = "Quầy 2"
services = ["kham-noi", "kham-ngoai"]

[[counters]]
id = "quay-3"
name = "Quầy 3"
services = ["kham-ngoai"]

[[counters]]
id = "quay-4"
name = "Quầy 4"
services = ["xet-nghiem"]

[[devices]]
id = "kiosk-sanh-a"
role = "kiosk"
token_sha256 = "{k1}"
services = ["kham-noi", "kham-ngoai"]

[[devices]]
id = "kiosk-sanh-b"
role = "kiosk"
token_sha256 = "{k2}"
services = ["xet-nghiem"]

[[devices]]
id = "tv-sanh"
role = "display"
token_sha256 = "{d}"

[[users]]
username = "le.thu"
role = "staff"
password_hash = "{h}"
counters = ["quay-1"]

[[users]]
username = "tran.an"
role = "staff"
password_hash = "{h}"
counters = ["quay-2", "quay-3"]

[[users]]
username = "admin"
role = "admin"
password_hash = "{h}"
"#,
        k1 = sha(KIOSK_TOKEN),
        k2 = sha(KIOSK2_TOKEN),
        d = sha(DISPLAY_TOKEN),
        h = &*PASSWORD_HASH,
    )
}

/// A site on disk: its configuration file and data directory.
pub struct Site {
    pub dir: tempfile::TempDir,
}

impl Site {
    pub fn new(toml: &str) -> Site {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("site.toml"), toml).expect("write site.toml");
        Site { dir }
    }
    pub fn hospital() -> Site {
        Site::new(&test_site_toml(false))
    }
    pub fn config(&self) -> PathBuf {
        self.dir.path().join("site.toml")
    }
    pub fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }
    /// Starts the real server on this site.
    pub fn start(&self) -> Server {
        Server::start(&self.config(), &self.data(), &[])
    }
}

/// A running `luot-server` process.
pub struct Server {
    pub child: Child,
    pub addr: SocketAddr,
    pub log: PathBuf,
}

impl Server {
    pub fn start(config: &Path, data: &Path, env: &[(&str, &str)]) -> Server {
        let log = data.with_extension(format!("log.{}", rand::random::<u32>()));
        let _ = std::fs::create_dir_all(data.parent().unwrap_or(data));
        let stderr = std::fs::File::create(&log).expect("log file");
        let mut cmd = Command::new(binary("luot-server"));
        cmd.arg("serve")
            .arg("--config")
            .arg(config)
            .env("LUOT_LISTEN", "127.0.0.1:0")
            .env("LUOT_DATA_DIR", data)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn luot-server");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            while let Some(Ok(line)) = lines.next() {
                if let Some(rest) = line.strip_prefix("luot-server listening on http://") {
                    let _ = tx.send(rest.trim().to_string());
                }
            }
        });
        let addr = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(a) => a.parse().expect("address"),
            Err(_) => {
                let _ = child.kill();
                panic!(
                    "luot-server did not start: {}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
        };
        Server { child, addr, log }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn ws_url(&self) -> String {
        format!("ws://{}/api/v1/ws", self.addr)
    }

    /// `kill -9`: no chance to flush or say goodbye.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM and wait; returns whether it exited 0.
    pub fn terminate(&mut self) -> bool {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        for _ in 0..200 {
            if let Ok(Some(s)) = self.child.try_wait() {
                return s.success();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.kill9();
        false
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An HTTP client for one server.
#[derive(Clone)]
pub struct Api {
    pub base: String,
    pub http: reqwest::Client,
}

/// A status and a JSON body (Null when empty or not JSON).
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub body: Value,
    pub text: String,
}

impl Answer {
    pub fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }
}

impl Api {
    pub fn new(server: &Server) -> Api {
        Api {
            base: server.url(""),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .expect("client"),
        }
    }

    pub async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Answer {
        self.try_call(method, path, token, body)
            .await
            .unwrap_or_else(|e| panic!("request: {e:?}"))
    }

    /// The same, with a connection that fails or is cut as an error (a
    /// client that keeps trying through a failover).
    pub async fn try_call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Result<Answer, reqwest::Error> {
        let m = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut req = self.http.request(m, format!("{}{}", self.base, path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await?;
        let status = resp.status().as_u16();
        let text = resp.text().await?;
        Ok(Answer {
            status,
            body: serde_json::from_str(&text).unwrap_or(Value::Null),
            text,
        })
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Answer {
        self.call("GET", path, token, None).await
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: Option<Value>) -> Answer {
        self.call("POST", path, token, body).await
    }

    pub async fn login(&self, username: &str) -> String {
        let a = self
            .post(
                "/api/v1/login",
                None,
                Some(json!({"username": username, "password": PASSWORD})),
            )
            .await;
        assert_eq!(a.status, 200, "login {username}: {}", a.text);
        a.body["token"].as_str().expect("token").to_string()
    }

    /// An issue whose connection may fail (see `try_call`).
    pub async fn try_issue(
        &self,
        token: &str,
        service: &str,
        request_id: &str,
    ) -> Result<Answer, reqwest::Error> {
        self.try_call(
            "POST",
            "/api/v1/tickets",
            Some(token),
            Some(json!({"service": service, "request_id": request_id})),
        )
        .await
    }

    pub async fn issue(&self, token: &str, service: &str, request_id: &str) -> Answer {
        self.post(
            "/api/v1/tickets",
            Some(token),
            Some(json!({"service": service, "request_id": request_id})),
        )
        .await
    }
}

pub type WsStream = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A websocket client speaking the contract's JSON frames.
pub struct Ws {
    pub stream: WsStream,
}

impl Ws {
    pub async fn connect(server: &Server) -> Ws {
        Self::connect_url(&server.ws_url()).await
    }

    pub async fn connect_url(url: &str) -> Ws {
        let (stream, _) = tokio_tungstenite::connect_async(url)
            .await
            .expect("websocket connect");
        Ws { stream }
    }

    /// Connects, says hello, and returns the client with the `welcome` frame.
    pub async fn hello(server: &Server, token: Option<&str>, since: Option<u64>) -> (Ws, Value) {
        let mut ws = Self::connect(server).await;
        ws.send(json!({"type": "hello", "token": token, "since": since}))
            .await;
        let welcome = ws.recv().await.expect("welcome");
        (ws, welcome)
    }

    pub async fn send(&mut self, v: Value) {
        self.stream
            .send(Message::Text(v.to_string().into()))
            .await
            .expect("send");
    }

    pub async fn send_text(&mut self, s: &str) {
        self.stream
            .send(Message::Text(s.to_string().into()))
            .await
            .expect("send");
    }

    /// The next JSON frame within 10 s; `None` when the socket closed.
    pub async fn recv(&mut self) -> Option<Value> {
        self.recv_within(Duration::from_secs(10)).await
    }

    pub async fn recv_within(&mut self, limit: Duration) -> Option<Value> {
        loop {
            let msg = tokio::time::timeout(limit, self.stream.next())
                .await
                .ok()??
                .ok()?;
            match msg {
                Message::Text(t) => return serde_json::from_str(t.as_str()).ok(),
                Message::Close(_) => return None,
                _ => continue,
            }
        }
    }

    /// Frames until one matches `pred` (others are returned too, in order).
    pub async fn recv_until(&mut self, pred: impl Fn(&Value) -> bool) -> Vec<Value> {
        let mut out = vec![];
        while let Some(v) = self.recv().await {
            let done = pred(&v);
            out.push(v);
            if done {
                return out;
            }
        }
        panic!("socket ended before the expected frame; got {out:?}");
    }

    /// Waits for the close frame and returns its code.
    pub async fn close_code(&mut self) -> Option<u16> {
        loop {
            let msg = tokio::time::timeout(Duration::from_secs(15), self.stream.next())
                .await
                .ok()??;
            match msg {
                Ok(Message::Close(Some(f))) => return Some(f.code.into()),
                Ok(Message::Close(None)) => return Some(1005),
                Ok(_) => continue,
                Err(_) => return None,
            }
        }
    }
}
