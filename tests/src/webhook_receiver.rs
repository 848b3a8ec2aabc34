//! A webhook receiver on 127.0.0.1 for the end-to-end tests and the bench:
//! a small HTTP/1.1 server of its own (keep-alive, `Content-Length` bodies)
//! that records every request it gets and answers each as the test says:
//! a status, a redirect, an answer too large to read, or nothing at all.
//! Signatures are checked by the tests' own HMAC code (`verify`), never by
//! the server's.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

/// One request as received.
#[derive(Clone, Debug)]
pub struct Delivery {
    pub path: String,
    pub content_type: String,
    pub id: String,
    pub timestamp: String,
    pub signature: String,
    pub body: Vec<u8>,
    /// When its last byte arrived.
    pub at: Instant,
}

impl Delivery {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    pub fn seq(&self) -> u64 {
        self.json()["seq"].as_u64().unwrap_or(0)
    }
}

/// How to answer a request.
#[derive(Clone, Debug)]
pub enum Reply {
    Status(u16),
    /// This status after a pause.
    After(Duration, u16),
    /// 307 to this location.
    Redirect(String),
    /// 200 announcing this many bytes and sending them slowly (64 KiB
    /// every 50 ms).
    Huge(u64),
    /// Read the request, answer nothing, keep the connection open.
    Hang,
}

type Policy = dyn Fn(usize, &Delivery) -> Reply + Send + Sync;

/// A running receiver.
pub struct Receiver {
    pub addr: SocketAddr,
    got: Arc<Mutex<Vec<Delivery>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Receiver {
    /// Answers 204 to everything.
    pub async fn ok() -> Receiver {
        Self::start(|_, _| Reply::Status(204)).await
    }

    /// Answers request number n (0-based, over all requests) as `policy` says.
    pub async fn start(
        policy: impl Fn(usize, &Delivery) -> Reply + Send + Sync + 'static,
    ) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let got: Arc<Mutex<Vec<Delivery>>> = Arc::default();
        let policy: Arc<Policy> = Arc::new(policy);
        let g = got.clone();
        let task = tokio::spawn(async move {
            while let Ok((sock, _)) = listener.accept().await {
                let (g, policy) = (g.clone(), policy.clone());
                tokio::spawn(async move {
                    let _ = serve(sock, g, policy).await;
                });
            }
        });
        Receiver { addr, got, task }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Everything received so far, in order of arrival.
    pub fn got(&self) -> Vec<Delivery> {
        self.got.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Waits up to `limit` until `done` holds for what was received.
    pub async fn wait(&self, limit: Duration, done: impl Fn(&[Delivery]) -> bool) -> Vec<Delivery> {
        let t0 = Instant::now();
        loop {
            let got = self.got();
            if done(&got) || t0.elapsed() > limit {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(
    sock: tokio::net::TcpStream,
    got: Arc<Mutex<Vec<Delivery>>>,
    policy: Arc<Policy>,
) -> std::io::Result<()> {
    let _ = sock.set_nodelay(true);
    let (r, mut w) = sock.into_split();
    let mut r = BufReader::new(r);
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
        let mut headers = Vec::new();
        loop {
            let mut h = String::new();
            r.read_line(&mut h).await?;
            let h = h.trim_end().to_string();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
            }
        }
        let header = |name: &str| {
            headers
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
        };
        let len: usize = header("content-length").parse().unwrap_or(0);
        let mut body = vec![0; len];
        r.read_exact(&mut body).await?;
        let d = Delivery {
            path,
            content_type: header("content-type"),
            id: header("webhook-id"),
            timestamp: header("webhook-timestamp"),
            signature: header("webhook-signature"),
            body,
            at: Instant::now(),
        };
        let n = {
            let mut g = got.lock().unwrap_or_else(|e| e.into_inner());
            g.push(d.clone());
            g.len() - 1
        };
        match (*policy)(n, &d) {
            Reply::Status(s) => {
                w.write_all(format!("HTTP/1.1 {s} X\r\ncontent-length: 0\r\n\r\n").as_bytes())
                    .await?;
            }
            Reply::After(pause, s) => {
                tokio::time::sleep(pause).await;
                w.write_all(format!("HTTP/1.1 {s} X\r\ncontent-length: 0\r\n\r\n").as_bytes())
                    .await?;
            }
            Reply::Redirect(to) => {
                w.write_all(
                    format!(
                        "HTTP/1.1 307 Temporary Redirect\r\nlocation: {to}\r\ncontent-length: 0\r\n\r\n"
                    )
                    .as_bytes(),
                )
                .await?;
            }
            Reply::Huge(n) => {
                w.write_all(format!("HTTP/1.1 200 OK\r\ncontent-length: {n}\r\n\r\n").as_bytes())
                    .await?;
                let chunk = vec![b'x'; 64 * 1024];
                let mut left = n;
                while left > 0 {
                    let k = left.min(chunk.len() as u64) as usize;
                    w.write_all(&chunk[..k]).await?;
                    left -= k as u64;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
            Reply::Hang => {
                tokio::time::sleep(Duration::from_secs(3600)).await;
                return Ok(());
            }
        }
    }
}

/// Checks a Standard Webhooks signature with our own HMAC: the base64 of
/// HMAC-SHA256(key, "{id}.{timestamp}.{body}") with key the base64 after
/// `whsec_`.
pub fn verify(secret: &str, d: &Delivery) -> bool {
    let Some(b64) = secret.strip_prefix("whsec_") else {
        return false;
    };
    let Ok(key) = base64::engine::general_purpose::STANDARD.decode(b64) else {
        return false;
    };
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(&key) else {
        return false;
    };
    mac.update(format!("{}.{}.", d.id, d.timestamp).as_bytes());
    mac.update(&d.body);
    let want = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    d.signature
        .split(' ')
        .any(|s| s.strip_prefix("v1,") == Some(want.as_str()))
}
