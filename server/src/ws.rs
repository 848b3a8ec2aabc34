//! The websocket API of contract §5 (`GET /api/v1/ws`): hello/welcome,
//! snapshot or missed events, live events, kiosk `issue` and `device_status`,
//! pings. One task per connection; it only ever awaits its own socket, so a
//! slow client slows nobody else. A client that falls behind the broadcast
//! channel is sent a fresh snapshot. Screens move, after their hello, to a
//! runtime of their own (`App::screens`), so writing an event to thousands
//! of them never queues ahead of a kiosk's issue or a staff call.

use std::time::Duration;

use axum::extract::State;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use futures_util::{SinkExt, StreamExt};
use tokio::sync::{broadcast, mpsc};
use tokio::time::{Instant, interval_at, sleep_until, timeout};

use luot_protocol::{
    ClientMessage, IssueRequest, MAX_BODY_BYTES, ServerMessage, WelcomeService, WelcomeSite,
};

use crate::auth::Principal;
use crate::config::DeviceRole;
use crate::http::{ApiError, AppState, check_issue, issue_command};
use crate::hub::{DeviceUpdate, Frame, Frames, Outcome};

pub const PING_EVERY: Duration = Duration::from_secs(15);
pub const IDLE_DROP: Duration = Duration::from_secs(45);
pub const HELLO_WITHIN: Duration = Duration::from_secs(5);
const SEND_TIMEOUT: Duration = Duration::from_secs(10);
/// Most frames written to one client before a flush.
const FORWARD_BURST: usize = 256;

/// A browser's websocket must come from a page of this server (same host) or
/// of the site's `public_url`; other clients (kiosks) send no Origin at all.
fn origin_allowed(headers: &axum::http::HeaderMap, public_url: &str) -> bool {
    let Some(origin) = headers.get(axum::http::header::ORIGIN) else {
        return true;
    };
    let Ok(origin) = origin.to_str() else {
        return false;
    };
    let host = headers
        .get(axum::http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    let public = public_url.trim_end_matches('/');
    let public_origin = public
        .find("://")
        .and_then(|i| public[i + 3..].find('/').map(|j| &public[..i + 3 + j]))
        .unwrap_or(public);
    origin == public_origin
        || origin.strip_prefix("http://") == Some(host)
        || origin.strip_prefix("https://") == Some(host)
}

pub async fn upgrade(
    State(app): State<AppState>,
    headers: axum::http::HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    if !origin_allowed(&headers, &app.config.site.public_url) {
        tracing::warn!(origin = ?headers.get(axum::http::header::ORIGIN), "websocket from a foreign page refused");
        return axum::response::IntoResponse::into_response(ApiError::forbidden(
            "websocket from a page of another site (Origin not allowed)",
        ));
    }
    ws.read_buffer_size(2 * 1024)
        .write_buffer_size(4 * 1024)
        .max_write_buffer_size(256 * 1024)
        .max_message_size(MAX_BODY_BYTES)
        .max_frame_size(MAX_BODY_BYTES)
        .on_upgrade(move |socket| client(socket, app))
}

fn text(m: &ServerMessage) -> Message {
    Message::Text(Utf8Bytes::from(
        serde_json::to_string(m).unwrap_or_default(),
    ))
}

fn error_frame(request_id: Option<String>, e: &ApiError) -> Message {
    text(&ServerMessage::Error {
        request_id,
        error: e.detail(),
    })
}

fn close(code: u16, reason: &str) -> Message {
    Message::Close(Some(CloseFrame {
        code,
        reason: Utf8Bytes::from(reason.to_string()),
    }))
}

struct Conn {
    app: AppState,
    who: Option<Principal>,
    /// The device this connection counts for in `/devices`.
    device: Option<String>,
    rx: Option<broadcast::Receiver<Frames>>,
    last_seq: u64,
}

enum Flow {
    Continue,
    Close(u16, &'static str),
}

type Sink = futures_util::stream::SplitSink<WebSocket, Message>;
type Stream = futures_util::stream::SplitStream<WebSocket>;

/// One websocket connection and everything its loop needs.
struct Client {
    sink: Sink,
    stream: Stream,
    reply_tx: mpsc::Sender<Message>,
    reply_rx: mpsc::Receiver<Message>,
    shutdown: tokio::sync::watch::Receiver<bool>,
    conn: Conn,
    hello_deadline: Instant,
    last_heard: Instant,
    ping: tokio::time::Interval,
}

/// Why a connection's loop returned.
enum Stop {
    /// Closed, with the close frame to send if any.
    Ended(Option<(u16, &'static str)>),
    /// A screen said hello: it continues on the screens' runtime.
    Handoff,
}

async fn client(socket: WebSocket, app: AppState) {
    app.metrics.ws_clients.inc();
    let (sink, stream) = socket.split();
    let (reply_tx, reply_rx) = mpsc::channel::<Message>(64);
    let mut c = Client {
        sink,
        stream,
        reply_tx,
        reply_rx,
        shutdown: app.shutdown.clone(),
        conn: Conn {
            app: app.clone(),
            who: None,
            device: None,
            rx: None,
            last_seq: 0,
        },
        hello_deadline: Instant::now() + HELLO_WITHIN,
        last_heard: Instant::now(),
        ping: interval_at(Instant::now() + PING_EVERY, PING_EVERY),
    };
    match c.run(true).await {
        Stop::Ended(end) => c.finish(end).await,
        // Screens (boards, counter signs, ticket pages) are many and only
        // listen: their fan-out runs on a runtime of its own, so thousands of
        // them never delay a kiosk's issue or a staff member's call.
        Stop::Handoff => {
            app.screens.spawn(async move {
                let end = match c.run(false).await {
                    Stop::Ended(end) => end,
                    Stop::Handoff => None,
                };
                c.finish(end).await;
            });
        }
    }
}

impl Client {
    async fn run(&mut self, may_hand_off: bool) -> Stop {
        let Client {
            sink,
            stream,
            reply_tx,
            reply_rx,
            shutdown,
            conn,
            hello_deadline,
            last_heard,
            ping,
        } = self;
        loop {
            let hello_wait = async {
                if conn.who.is_none() {
                    sleep_until(*hello_deadline).await
                } else {
                    std::future::pending::<()>().await
                }
            };
            let next_frame = async {
                match conn.rx.as_mut() {
                    Some(rx) => rx.recv().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                msg = stream.next() => {
                    *last_heard = Instant::now();
                    let msg = match msg {
                        None => return Stop::Ended(None),
                        Some(Err(e)) => {
                            let s = e.to_string();
                            // tungstenite's capacity error: a message or frame over max_message_size.
                            if s.starts_with("Space limit exceeded") {
                                return Stop::Ended(Some((1009, "message over 16 KiB")));
                            }
                            tracing::debug!(error = %s, "websocket read error");
                            return Stop::Ended(None);
                        }
                        Some(Ok(m)) => m,
                    };
                    let flow = match msg {
                        // Boxed: the hello's future is large and rare; inline it
                        // would sit in every connection's task for its whole life.
                        Message::Text(t) => Box::pin(conn.on_text(t.as_str(), sink, reply_tx)).await,
                        Message::Binary(_) => {
                            send(sink, error_frame(None, &ApiError::bad_request("send JSON text frames"))).await
                        }
                        Message::Ping(_) | Message::Pong(_) => Ok(Flow::Continue),
                        Message::Close(_) => return Stop::Ended(None),
                    };
                    match flow {
                        Ok(Flow::Continue) => {
                            if may_hand_off && conn.is_screen() {
                                return Stop::Handoff;
                            }
                        }
                        Ok(Flow::Close(code, why)) => return Stop::Ended(Some((code, why))),
                        Err(()) => return Stop::Ended(None),
                    }
                }
                reply = reply_rx.recv() => {
                    if let Some(m) = reply
                        && send(sink, m).await.is_err() { return Stop::Ended(None); }
                }
                frame = next_frame => {
                    let ok = match frame {
                        Ok(f) => conn.forward(f, sink).await,
                        Err(broadcast::error::RecvError::Lagged(n)) => {
                            tracing::debug!(missed = n, "websocket client lagged; sending a snapshot");
                            Box::pin(conn.resubscribe(None, sink)).await
                        }
                        Err(broadcast::error::RecvError::Closed) => return Stop::Ended(Some((1001, "server stopping"))),
                    };
                    if ok.is_err() { return Stop::Ended(None); }
                }
                _ = ping.tick() => {
                    if last_heard.elapsed() >= IDLE_DROP {
                        return Stop::Ended(Some((1001, "idle for 45 s")));
                    }
                    if send(sink, Message::Ping(Default::default())).await.is_err() { return Stop::Ended(None); }
                }
                _ = hello_wait => {
                    return Stop::Ended(Some((1008, "hello expected within 5 s")));
                }
                _ = shutdown.changed() => {
                    return Stop::Ended(Some((1001, "server stopping")));
                }
            }
        }
    }

    async fn finish(mut self, end: Option<(u16, &'static str)>) {
        if let Some((code, why)) = end {
            let _ = send(&mut self.sink, close(code, why)).await;
        }
        let _ = self.sink.close().await;
        let app = self.conn.app.clone();
        if let Some(d) = self.conn.device.take() {
            app.hub.device(&d, DeviceUpdate::Disconnected);
        }
        app.metrics.ws_clients.dec();
    }
}

async fn send<S>(sink: &mut S, m: Message) -> Result<Flow, ()>
where
    S: SinkExt<Message> + Unpin,
{
    match timeout(SEND_TIMEOUT, sink.send(m)).await {
        Ok(Ok(())) => Ok(Flow::Continue),
        _ => Err(()),
    }
}

impl Conn {
    async fn on_text<S>(
        &mut self,
        raw: &str,
        sink: &mut S,
        replies: &mpsc::Sender<Message>,
    ) -> Result<Flow, ()>
    where
        S: SinkExt<Message> + Unpin,
    {
        let msg: ClientMessage = match serde_json::from_str(raw) {
            Ok(m) => m,
            Err(e) => {
                // An issue that does not parse still gets its request_id back.
                let rid = serde_json::from_str::<serde_json::Value>(raw)
                    .ok()
                    .filter(|v| v.get("type").and_then(|t| t.as_str()) == Some("issue"))
                    .and_then(|v| {
                        v.get("request_id")
                            .and_then(|r| r.as_str())
                            .map(String::from)
                    });
                let err = ApiError::bad_request(format!("invalid message: {e}"));
                return send(sink, error_frame(rid, &err)).await;
            }
        };
        match msg {
            ClientMessage::Hello { token, since } => self.hello(token, since, sink).await,
            _ if self.who.is_none() => {
                let err = ApiError::unauthorized();
                send(sink, error_frame(None, &err)).await?;
                Ok(Flow::Close(1008, "hello first"))
            }
            ClientMessage::Issue {
                request_id,
                service,
                priority,
            } => {
                self.seen();
                let Some(who) = self.who.clone() else {
                    return Ok(Flow::Continue);
                };
                let req = IssueRequest {
                    service,
                    priority,
                    request_id: request_id.clone(),
                };
                let check = if who.may_issue() {
                    check_issue(&self.app.config, &who, &req)
                } else {
                    Err(ApiError::forbidden("only kiosks and staff issue tickets"))
                };
                if let Err(e) = check {
                    return send(sink, error_frame(Some(request_id), &e)).await;
                }
                // Answer asynchronously so a kiosk may have several in flight.
                let hub = self.app.hub.clone();
                let replies = replies.clone();
                tokio::spawn(async move {
                    let m = match hub.command(issue_command(&who, req)).await {
                        Ok(Outcome::Ticket(t)) | Ok(Outcome::Replayed(t)) => {
                            text(&ServerMessage::Issued {
                                request_id,
                                ticket: *t,
                            })
                        }
                        Ok(_) => error_frame(
                            Some(request_id),
                            &ApiError::unavailable("no ticket was made"),
                        ),
                        Err(e) => error_frame(Some(request_id), &ApiError::from(e)),
                    };
                    let _ = replies.send(m).await;
                });
                Ok(Flow::Continue)
            }
            ClientMessage::DeviceStatus { printer } => match (&self.who, &self.device) {
                (
                    Some(Principal::Device {
                        role: DeviceRole::Kiosk,
                        ..
                    }),
                    Some(id),
                ) => {
                    self.app.hub.device(id, DeviceUpdate::Printer(printer));
                    Ok(Flow::Continue)
                }
                _ => {
                    send(
                        sink,
                        error_frame(None, &ApiError::forbidden("only kiosks report a printer")),
                    )
                    .await
                }
            },
        }
    }

    /// A screen: a display device or a public board (they only listen).
    fn is_screen(&self) -> bool {
        matches!(
            self.who,
            Some(Principal::PublicDisplay)
                | Some(Principal::Device {
                    role: DeviceRole::Display,
                    ..
                })
        )
    }

    fn seen(&self) {
        if let Some(d) = &self.device {
            self.app.hub.device(d, DeviceUpdate::Seen);
        }
    }

    async fn hello<S>(
        &mut self,
        token: Option<String>,
        since: Option<u64>,
        sink: &mut S,
    ) -> Result<Flow, ()>
    where
        S: SinkExt<Message> + Unpin,
    {
        let who = match token.as_deref() {
            None | Some("") if self.app.config.server.public_board => {
                Some(Principal::PublicDisplay)
            }
            None | Some("") => None,
            Some(t) => self.app.resolve(t).await,
        };
        let Some(who) = who else {
            send(sink, error_frame(None, &ApiError::unauthorized())).await?;
            return Ok(Flow::Close(1008, "unauthorized"));
        };
        // Device accounting for /devices.
        let device = match &who {
            Principal::Device { id, .. } => Some(id.clone()),
            _ => None,
        };
        if device != self.device {
            if let Some(old) = self.device.take() {
                self.app.hub.device(&old, DeviceUpdate::Disconnected);
            }
            if let Some(new) = &device {
                self.app.hub.device(new, DeviceUpdate::Connected);
            }
            self.device = device;
        } else {
            self.seen();
        }
        let cfg = &self.app.config;
        let services = match &who {
            Principal::Device {
                role: DeviceRole::Kiosk,
                services,
                ..
            } => services.clone(),
            _ => cfg.services.iter().map(|s| s.id.clone()).collect(),
        };
        let welcome = ServerMessage::Welcome {
            role: who.role_str().into(),
            server_time: chrono::Utc::now()
                .with_timezone(&cfg.site.timezone)
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, false),
            site: WelcomeSite {
                name: cfg.site.name.clone(),
                public_url: cfg.site.public_url.clone(),
            },
            services: services
                .iter()
                .filter_map(|id| cfg.service(id))
                .map(|s| WelcomeService {
                    id: s.id.clone(),
                    name: s.name.clone(),
                    prefix: s.prefix.clone(),
                })
                .collect(),
            name: who.name(),
        };
        self.who = Some(who);
        send(sink, text(&welcome)).await?;
        self.resubscribe(since, sink).await
    }

    /// (Re)starts the event stream after `since`, or with a snapshot.
    async fn resubscribe<S>(&mut self, since: Option<u64>, sink: &mut S) -> Result<Flow, ()>
    where
        S: SinkExt<Message> + Unpin,
    {
        self.rx = None;
        let catchup = match self.app.hub.subscribe(since).await {
            Ok(c) => c,
            Err(e) => {
                send(sink, error_frame(None, &ApiError::from(e))).await?;
                return Ok(Flow::Close(1011, "server unavailable"));
            }
        };
        let mut last = since.unwrap_or(0);
        for f in catchup.frames {
            if let Some(seq) = frame_seq(f.as_str()) {
                last = seq;
            }
            send(sink, Message::Text(f)).await?;
        }
        self.last_seq = last;
        self.rx = Some(catchup.rx);
        Ok(Flow::Continue)
    }

    /// Sends the frames of `first` and of whatever else is already waiting in
    /// the broadcast channel, then flushes once: one write for a burst.
    async fn forward<S>(&mut self, first: Frames, sink: &mut S) -> Result<Flow, ()>
    where
        S: SinkExt<Message> + Unpin,
    {
        let mut next = Some(first);
        let mut fed = 0;
        while let Some(batch) = next.take() {
            for f in batch.iter() {
                if self.wants(f) {
                    match timeout(SEND_TIMEOUT, sink.feed(Message::Text(f.text.clone()))).await {
                        Ok(Ok(())) => fed += 1,
                        _ => return Err(()),
                    }
                }
            }
            if fed >= FORWARD_BURST {
                break;
            }
            next = match self.rx.as_mut().map(|rx| rx.try_recv()) {
                Some(Ok(f)) => Some(f),
                Some(Err(broadcast::error::TryRecvError::Lagged(_))) => {
                    return self.resubscribe(None, sink).await;
                }
                _ => None,
            };
        }
        match timeout(SEND_TIMEOUT, sink.flush()).await {
            Ok(Ok(())) => Ok(Flow::Continue),
            _ => Err(()),
        }
    }

    /// Whether this client gets `f`, and bookkeeping of the last seq sent.
    fn wants(&mut self, f: &Frame) -> bool {
        if f.admin_only && !self.who.as_ref().is_some_and(|w| w.is_admin()) {
            return false;
        }
        if let Some(seq) = f.seq {
            if seq <= self.last_seq {
                return false;
            }
            self.last_seq = seq;
        }
        true
    }
}

/// The `seq` of a snapshot or event frame, read without a full parse.
fn frame_seq(s: &str) -> Option<u64> {
    let i = s.find("\"seq\":")? + 6;
    let rest = &s[i..];
    let end = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    rest[..end].parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::{HeaderMap, HeaderValue, header};

    fn h(origin: Option<&str>, host: &str) -> HeaderMap {
        let mut m = HeaderMap::new();
        m.insert(header::HOST, HeaderValue::from_str(host).unwrap());
        if let Some(o) = origin {
            m.insert(header::ORIGIN, HeaderValue::from_str(o).unwrap());
        }
        m
    }

    #[test]
    fn origins() {
        let public = "https://luot.benhvien.vn";
        assert!(
            origin_allowed(&h(None, "10.0.0.5:8080"), public),
            "kiosks send no Origin"
        );
        assert!(origin_allowed(
            &h(Some("http://10.0.0.5:8080"), "10.0.0.5:8080"),
            public
        ));
        assert!(origin_allowed(
            &h(Some("https://luot.benhvien.vn"), "127.0.0.1:8080"),
            public
        ));
        assert!(!origin_allowed(
            &h(Some("https://evil.example"), "10.0.0.5:8080"),
            public
        ));
        assert!(!origin_allowed(
            &h(Some("http://10.0.0.5:8080.evil.example"), "10.0.0.5:8080"),
            public
        ));
    }
}
