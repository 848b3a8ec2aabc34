//! The link to luot-server: one websocket (tokio-tungstenite 0.29), hello
//! with the device token, `issue` with a `request_id`, reconnect with
//! jittered backoff (0.5 s up to 10 s), and after a reconnect every
//! unanswered issue is sent again with the same `request_id`, so the server
//! makes one ticket per press whatever the network does. An issue the daemon
//! gave up on is forgotten: a late answer to it is never printed.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use luot_protocol::{PrinterStatus, ServerMessage, Ticket};
use rand::Rng;
use serde_json::json;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// The server pings every 15 s; silence this long means the link is dead.
const SILENCE: Duration = Duration::from_secs(45);

/// What the server told us in `welcome`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Welcome {
    pub site_name: String,
    pub public_url: String,
    /// This kiosk's buttons: (service id, name), in order.
    pub services: Vec<(String, String)>,
}

impl Welcome {
    pub fn service_name(&self, id: &str) -> String {
        self.services
            .iter()
            .find(|(s, _)| s == id)
            .map(|(_, n)| n.clone())
            .unwrap_or_else(|| id.to_string())
    }
}

#[derive(Clone, Debug, Default)]
pub struct LinkStatus {
    pub connected: bool,
    pub welcome: Option<Welcome>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IssueError {
    #[error("the server refused: {code}: {message}")]
    Refused { code: String, message: String },
    #[error("no answer from the server in time")]
    Timeout,
}

enum Cmd {
    Issue {
        request_id: String,
        frame: String,
        reply: oneshot::Sender<Result<Ticket, IssueError>>,
    },
    Forget(String),
    Printer(PrinterStatus),
}

#[derive(Clone)]
pub struct Link {
    tx: mpsc::Sender<Cmd>,
    pub status: watch::Receiver<LinkStatus>,
}

impl Link {
    /// Starts the link task for `ws_url` with the device `token`.
    pub fn start(ws_url: String, token: String) -> Link {
        let (tx, rx) = mpsc::channel(256);
        let (stx, srx) = watch::channel(LinkStatus::default());
        tokio::spawn(run(ws_url, token, rx, stx));
        Link { tx, status: srx }
    }

    /// Asks for a ticket; gives up after `deadline` (and forgets the request).
    pub async fn issue(
        &self,
        request_id: &str,
        service: &str,
        priority: Option<&str>,
        deadline: Duration,
    ) -> Result<Ticket, IssueError> {
        let frame = json!({"type": "issue", "request_id": request_id, "service": service, "priority": priority}).to_string();
        let (reply, rx) = oneshot::channel();
        if self
            .tx
            .send(Cmd::Issue {
                request_id: request_id.to_string(),
                frame,
                reply,
            })
            .await
            .is_err()
        {
            return Err(IssueError::Timeout);
        }
        match tokio::time::timeout(deadline, rx).await {
            Ok(Ok(r)) => r,
            _ => {
                let _ = self.tx.send(Cmd::Forget(request_id.to_string())).await;
                Err(IssueError::Timeout)
            }
        }
    }

    /// Reports the printer's state (sent now and after every reconnect).
    pub fn printer(&self, s: PrinterStatus) {
        let _ = self.tx.try_send(Cmd::Printer(s));
    }

    pub fn connected(&self) -> bool {
        self.status.borrow().connected
    }

    pub fn welcome(&self) -> Option<Welcome> {
        self.status.borrow().welcome.clone()
    }
}

struct Pending {
    request_id: String,
    frame: String,
    reply: oneshot::Sender<Result<Ticket, IssueError>>,
}

fn jitter(base: Duration) -> Duration {
    let f: f64 = rand::rng().random_range(0.5..1.0);
    base.mul_f64(f)
}

async fn run(
    url: String,
    token: String,
    mut rx: mpsc::Receiver<Cmd>,
    status: watch::Sender<LinkStatus>,
) {
    let mut pending: Vec<Pending> = Vec::new();
    let mut printer: Option<PrinterStatus> = None;
    let mut backoff = Duration::from_millis(500);
    let config = WebSocketConfig::default()
        .read_buffer_size(8 * 1024)
        .max_message_size(Some(4 << 20));
    loop {
        let attempt = tokio::time::timeout(
            CONNECT_TIMEOUT,
            tokio_tungstenite::connect_async_with_config(&url, Some(config), true),
        )
        .await;
        let mut ws = match attempt {
            Ok(Ok((ws, _))) => ws,
            failure => {
                let why = match failure {
                    Ok(Err(e)) => e.to_string(),
                    _ => "timed out".into(),
                };
                tracing::warn!(url = %url, error = %why, retry_in_ms = backoff.as_millis() as u64, "cannot reach luot-server");
                // Keep taking commands while waiting to retry.
                let wait = tokio::time::sleep(jitter(backoff));
                tokio::pin!(wait);
                loop {
                    tokio::select! {
                        _ = &mut wait => break,
                        cmd = rx.recv() => match cmd {
                            None => return,
                            Some(c) => take(c, &mut pending, &mut printer),
                        },
                    }
                }
                backoff = (backoff * 2).min(Duration::from_secs(10));
                continue;
            }
        };
        // hello → welcome (then a snapshot, which a kiosk does not need).
        let hello = json!({"type": "hello", "token": token, "since": null}).to_string();
        if ws.send(Message::Text(hello.into())).await.is_err() {
            continue;
        }
        let welcome = loop {
            match tokio::time::timeout(CONNECT_TIMEOUT, ws.next()).await {
                Ok(Some(Ok(Message::Text(t)))) => {
                    match serde_json::from_str::<ServerMessage>(t.as_str()) {
                        Ok(ServerMessage::Welcome { site, services, .. }) => {
                            break Some(Welcome {
                                site_name: site.name,
                                public_url: site.public_url,
                                services: services.into_iter().map(|s| (s.id, s.name)).collect(),
                            });
                        }
                        Ok(ServerMessage::Error { error, .. }) => {
                            tracing::error!(code = %error.code, message = %error.message, "the server refused this kiosk's token; check [server] token in kiosk.toml");
                            break None;
                        }
                        _ => continue,
                    }
                }
                Ok(Some(Ok(_))) => continue,
                _ => break None,
            }
        };
        let Some(welcome) = welcome else {
            let _ = ws.close(None).await;
            tokio::time::sleep(jitter(Duration::from_secs(10))).await;
            continue;
        };
        tracing::info!(site = %welcome.site_name, buttons = welcome.services.len(), "connected to luot-server");
        backoff = Duration::from_millis(500);
        status.send_replace(LinkStatus {
            connected: true,
            welcome: Some(welcome),
        });
        let mut ok = true;
        if let Some(p) = printer {
            ok &= send_status(&mut ws, p).await;
        }
        pending.retain(|p| !p.reply.is_closed());
        for p in &pending {
            tracing::info!(request_id = %p.request_id, "sending an unanswered issue again");
            ok &= ws.send(Message::Text(p.frame.clone().into())).await.is_ok();
        }
        while ok {
            tokio::select! {
                msg = tokio::time::timeout(SILENCE, ws.next()) => {
                    let text = match msg {
                        Ok(Some(Ok(Message::Text(t)))) => t,
                        Ok(Some(Ok(Message::Close(_)))) | Ok(None) | Ok(Some(Err(_))) => break,
                        Ok(Some(Ok(_))) => continue,
                        Err(_) => { tracing::warn!("no word from the server for 45 s; reconnecting"); break; }
                    };
                    // Most frames are board events; only answers matter here.
                    if !(text.as_str().starts_with(r#"{"type":"issued""#) || text.as_str().starts_with(r#"{"type":"error""#)) {
                        continue;
                    }
                    match serde_json::from_str::<ServerMessage>(text.as_str()) {
                        Ok(ServerMessage::Issued { request_id, ticket }) => {
                            if let Some(i) = pending.iter().position(|p| p.request_id == request_id) {
                                let _ = pending.remove(i).reply.send(Ok(ticket));
                            }
                        }
                        Ok(ServerMessage::Error { request_id: Some(rid), error }) => {
                            if let Some(i) = pending.iter().position(|p| p.request_id == rid) {
                                let refused = IssueError::Refused { code: error.code, message: error.message };
                                let _ = pending.remove(i).reply.send(Err(refused));
                            }
                        }
                        Ok(ServerMessage::Error { error, .. }) => {
                            tracing::warn!(code = %error.code, message = %error.message, "server error");
                        }
                        _ => {}
                    }
                }
                cmd = rx.recv() => {
                    let Some(cmd) = cmd else { let _ = ws.close(None).await; return; };
                    match &cmd {
                        Cmd::Issue { frame, .. } => {
                            ok = ws.send(Message::Text(frame.clone().into())).await.is_ok();
                        }
                        Cmd::Printer(p) => ok = send_status(&mut ws, *p).await,
                        Cmd::Forget(_) => {}
                    }
                    take(cmd, &mut pending, &mut printer);
                }
            }
        }
        tracing::warn!("connection to luot-server lost; reconnecting");
        status.send_modify(|s| s.connected = false);
        tokio::time::sleep(jitter(Duration::from_millis(500))).await;
    }
}

fn take(cmd: Cmd, pending: &mut Vec<Pending>, printer: &mut Option<PrinterStatus>) {
    match cmd {
        Cmd::Issue {
            request_id,
            frame,
            reply,
        } => pending.push(Pending {
            request_id,
            frame,
            reply,
        }),
        Cmd::Forget(rid) => pending.retain(|p| p.request_id != rid),
        Cmd::Printer(p) => *printer = Some(p),
    }
}

async fn send_status<S>(ws: &mut S, p: PrinterStatus) -> bool
where
    S: SinkExt<Message> + Unpin,
{
    let frame = json!({"type": "device_status", "printer": p}).to_string();
    ws.send(Message::Text(frame.into())).await.is_ok()
}
