//! The websocket API of contract §5 (`GET /api/v1/ws`): the upgrade,
//! hello/welcome, snapshot or missed events, live events, kiosk `issue`,
//! `check_in` (§11) and `device_status`, pings. Each connection gets the
//! frames of its view (`frame::View`: staff and admins whole, kiosks,
//! displays, integrations). One task per connection; it only ever awaits its
//! own socket, so a slow client slows nobody else. Data frames go out through
//! the connection's `Wire` (encoded once, non-blocking `send`); tungstenite
//! reads the client's frames and writes control frames. Kiosks, staff and
//! admins forward events from the hub themselves. Screens (display devices,
//! public boards) move after their hello to a runtime of their own
//! (`App::screens`) and join the screens' fan-out (`fanout.rs`), which writes
//! each event to all of them, so thousands of screens never delay a kiosk's
//! issue or a staff call. A client that falls behind is sent a fresh snapshot.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::Utf8Bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::{SinkExt, StreamExt};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::sync::{broadcast, mpsc};
use tokio::time::{Instant, interval_at, sleep_until, timeout};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{self, Message, handshake::derive_accept_key};

use luot_protocol::{
    CheckInRequest, ClientMessage, IssueRequest, MAX_BODY_BYTES, PrinterStatus, ServerMessage,
};

use crate::app::AppState;
use crate::auth::Principal;
use crate::config::DeviceRole;
use crate::error::ApiError;
use crate::frame::{Audience, Frame, Frames, View, text};
use crate::hub::DeviceUpdate;
use crate::wire::{Pushed, Wire, WireIo, encode};

pub const PING_EVERY: Duration = Duration::from_secs(15);
pub const IDLE_DROP: Duration = Duration::from_secs(45);
pub const HELLO_WITHIN: Duration = Duration::from_secs(5);
/// A client whose socket takes nothing for this long is dropped.
const SEND_TIMEOUT: Duration = Duration::from_secs(10);
/// Most frames written to one client at once.
const FORWARD_BURST: usize = 256;

/// A browser's websocket must come from a page of this server (same host) or
/// of the site's `public_url`; other clients (kiosks) send no Origin at all.
fn origin_allowed(headers: &HeaderMap, public_url: &str) -> bool {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return true;
    };
    let Ok(origin) = origin.to_str() else {
        return false;
    };
    let host = headers
        .get(header::HOST)
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

/// Whether `name`'s comma-separated values include `token` (any case).
fn header_has(headers: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|v| v.trim().eq_ignore_ascii_case(token))
}

/// The client's `Sec-WebSocket-Key` when the request is a websocket upgrade
/// (RFC 6455 §4.2.1).
fn websocket_key(headers: &HeaderMap) -> Option<&[u8]> {
    let ok = header_has(headers, header::CONNECTION, "upgrade")
        && header_has(headers, header::UPGRADE, "websocket")
        && headers
            .get(header::SEC_WEBSOCKET_VERSION)
            .is_some_and(|v| v.as_bytes() == b"13");
    ok.then(|| headers.get(header::SEC_WEBSOCKET_KEY))
        .flatten()
        .map(|k| k.as_bytes())
}

fn config() -> WebSocketConfig {
    WebSocketConfig::default()
        // Clients send small frames (a hello, an issue): a small read buffer
        // is enough and costs little per screen.
        .read_buffer_size(512)
        // Control frames go straight to the wire, which queues what waits.
        .write_buffer_size(0)
        .max_message_size(Some(MAX_BODY_BYTES))
        .max_frame_size(Some(MAX_BODY_BYTES))
}

/// The websocket of §5: hello, snapshot or missed events, then events;
/// kiosks issue and check in on it. The token goes in `hello`.
///
/// The upgrade is done here rather than by axum's extractor because the
/// screens' fan-out needs the socket itself (see `wire.rs`).
#[utoipa::path(
    get,
    path = "/api/v1/ws",
    tag = "websocket",
    responses(
        (status = 101, description = "Switching Protocols: the websocket of §5"),
        (status = 400, description = "bad_request: not a websocket upgrade", body = luot_protocol::ErrorBody),
        (status = 403, description = "forbidden: a browser page of another site (Origin)", body = luot_protocol::ErrorBody)
    )
)]
pub async fn upgrade(State(app): State<AppState>, mut req: Request) -> Response {
    let headers = req.headers();
    if !origin_allowed(headers, &app.config.site.public_url) {
        tracing::warn!(origin = ?headers.get(header::ORIGIN), "websocket from a foreign page refused");
        return ApiError::forbidden("websocket from a page of another site (Origin not allowed)")
            .into_response();
    }
    let Some(accept) = websocket_key(headers).map(derive_accept_key) else {
        return ApiError::bad_request(
            "a websocket upgrade was expected (Connection: upgrade, Upgrade: websocket, Sec-WebSocket-Version: 13)",
        )
        .into_response();
    };
    let Some(on_upgrade) = req.extensions_mut().remove::<hyper::upgrade::OnUpgrade>() else {
        return ApiError::bad_request("this connection cannot be upgraded to a websocket")
            .into_response();
    };
    tokio::spawn(async move {
        let upgraded = match on_upgrade.await {
            Ok(u) => u,
            Err(e) => {
                tracing::debug!(error = %e, "websocket upgrade failed");
                return;
            }
        };
        let Ok(parts) = upgraded.downcast::<TokioIo<TcpStream>>() else {
            tracing::error!("websocket upgrade on a connection that is not plain TCP");
            return;
        };
        let wire = Wire::new(parts.io.into_inner());
        let ws = WebSocketStream::from_partially_read(
            WireIo { wire: wire.clone() },
            parts.read_buf.to_vec(),
            Role::Server,
            Some(config()),
        )
        .await;
        client(ws, wire, app).await;
    });
    let mut r = Response::new(axum::body::Body::empty());
    *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = r.headers_mut();
    h.insert(
        header::CONNECTION,
        header::HeaderValue::from_static("upgrade"),
    );
    h.insert(
        header::UPGRADE,
        header::HeaderValue::from_static("websocket"),
    );
    if let Ok(v) = header::HeaderValue::from_str(&accept) {
        h.insert(header::SEC_WEBSOCKET_ACCEPT, v);
    }
    r
}

fn error_frame(request_id: Option<String>, e: &ApiError) -> Utf8Bytes {
    text(&ServerMessage::Error {
        request_id,
        error: e.detail(),
    })
}

/// Sends one data frame and waits until the socket has taken it.
async fn send(wire: &Wire, t: Utf8Bytes) -> Result<Flow, ()> {
    send_parts(wire, &encode(&t)).await
}

/// Sends encoded frames (`Wire::push`) and waits until the socket has taken them.
async fn send_parts(wire: &Wire, parts: &[bytes::Bytes]) -> Result<Flow, ()> {
    if wire.push(parts) == Pushed::Queued {
        drain(wire).await?;
    }
    Ok(Flow::Continue)
}

/// Waits until everything queued for the client is on its socket; fails
/// when the socket breaks or takes nothing for `SEND_TIMEOUT`.
async fn drain(wire: &Wire) -> Result<(), ()> {
    loop {
        let before = wire.sent();
        match timeout(SEND_TIMEOUT, wire.flush()).await {
            Ok(Ok(())) => return Ok(()),
            Ok(Err(_)) => return Err(()),
            Err(_) if wire.sent() == before => return Err(()),
            Err(_) => {}
        }
    }
}

struct Conn {
    app: AppState,
    who: Option<Principal>,
    /// The device this connection counts for in `/devices`.
    device: Option<String>,
    /// The hub's events, for clients that forward them themselves.
    rx: Option<broadcast::Receiver<Frames>>,
    /// A screen in the fan-out: it gets events from there instead.
    fanned: bool,
    last_seq: u64,
    /// A kiosk's connection: its id and handle among the print jobs'
    /// connections (rule 88).
    printer: Option<(String, u64)>,
}

enum Flow {
    Continue,
    Close(u16, &'static str),
}

/// One websocket connection and everything its loop needs.
struct Client {
    ws: WebSocketStream<WireIo>,
    wire: Arc<Wire>,
    reply_tx: mpsc::Sender<Utf8Bytes>,
    reply_rx: mpsc::Receiver<Utf8Bytes>,
    shutdown: tokio::sync::watch::Receiver<bool>,
    /// The server's role: a primary that becomes a standby closes every
    /// websocket with 1012 (rule 104).
    role: tokio::sync::watch::Receiver<crate::ha::RoleState>,
    conn: Conn,
    hello_deadline: Instant,
    last_heard: Instant,
    ping: tokio::time::Interval,
}

/// Why a connection's loop returned.
enum Stop {
    Ended(End),
    /// A screen said hello: it continues on the screens' runtime.
    Handoff,
}

/// How a connection ends.
enum End {
    /// The socket broke or the client went silent: nothing more to send.
    Silent,
    /// The server closes, with this code and reason.
    Close(u16, &'static str),
    /// The client sent a Close: send the Close tungstenite queued in answer
    /// (the same code), then end the connection.
    Answer,
}

async fn client(ws: WebSocketStream<WireIo>, wire: Arc<Wire>, app: AppState) {
    app.metrics.ws_clients.inc();
    let (reply_tx, reply_rx) = mpsc::channel::<Utf8Bytes>(64);
    let mut c = Client {
        ws,
        wire,
        reply_tx,
        reply_rx,
        shutdown: app.shutdown.clone(),
        role: app.hub.role(),
        conn: Conn {
            app: app.clone(),
            who: None,
            device: None,
            rx: None,
            fanned: false,
            last_seq: 0,
            printer: None,
        },
        hello_deadline: Instant::now() + HELLO_WITHIN,
        last_heard: Instant::now(),
        ping: interval_at(Instant::now() + PING_EVERY, PING_EVERY),
    };
    match c.run(true).await {
        Stop::Ended(end) => c.finish(end).await,
        // Screens (boards, counter signs, ticket pages) are many and only
        // listen: they run on a runtime of their own and the fan-out writes
        // to them, so thousands of them never delay a kiosk's issue or a
        // staff member's call.
        Stop::Handoff => {
            app.screens.spawn(async move {
                c.conn.join_fanout(&c.wire);
                let end = match c.run(false).await {
                    Stop::Ended(end) => end,
                    Stop::Handoff => End::Silent,
                };
                c.finish(end).await;
            });
        }
    }
}

impl Client {
    async fn run(&mut self, may_hand_off: bool) -> Stop {
        let Client {
            ws,
            wire,
            reply_tx,
            reply_rx,
            shutdown,
            role,
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
            let stop = tokio::select! {
                msg = ws.next() => {
                    *last_heard = Instant::now();
                    on_message(msg, conn, wire, reply_tx, may_hand_off).await
                }
                reply = reply_rx.recv() => match reply {
                    Some(m) => send(wire, m).await.err().map(|()| Stop::Ended(End::Silent)),
                    None => None,
                },
                frame = next_frame => on_frame(frame, conn, wire).await,
                // The fan-out left bytes queued, or let go of this screen.
                _ = wire.kick.notified() => on_kick(conn, wire).await,
                _ = ping.tick() => on_ping(ws, wire, *last_heard).await,
                _ = hello_wait => Some(Stop::Ended(End::Close(1008, "hello expected within 5 s"))),
                _ = shutdown.changed() => Some(Stop::Ended(End::Close(1001, "server stopping"))),
                stepped = stepped_down(role) => stepped.then_some(Stop::Ended(End::Close(1012, "this server is a standby now"))),
            };
            if let Some(stop) = stop {
                return stop;
            }
        }
    }

    async fn finish(mut self, end: End) {
        self.wire.leave();
        match end {
            End::Silent => {}
            End::Close(code, why) => {
                let frame = CloseFrame {
                    code: code.into(),
                    reason: why.into(),
                };
                let _ = timeout(SEND_TIMEOUT, self.ws.close(Some(frame))).await;
            }
            End::Answer => {
                // tungstenite queued the answering Close when it read the
                // client's; a flush writes it (and reports the connection
                // closed), then the wire sends what the socket did not take.
                let _ = self.ws.flush().await;
                let _ = timeout(SEND_TIMEOUT, self.wire.flush()).await;
            }
        }
        let app = self.conn.app.clone();
        if let Some((kiosk, handle)) = self.conn.printer.take() {
            app.prints.detach(&kiosk, handle);
        }
        if let Some(d) = self.conn.device.take() {
            app.hub.device(&d, DeviceUpdate::Disconnected);
        }
        app.metrics.ws_clients.dec();
    }
}

/// The `request_id` of a message that looks like an `issue` or a
/// `check_in` but does not parse, so its error frame can carry it (rules
/// 27, 85).
fn issue_request_id(raw: &str) -> Option<String> {
    let v = serde_json::from_str::<serde_json::Value>(raw).ok()?;
    if !matches!(v.get("type")?.as_str()?, "issue" | "check_in") {
        return None;
    }
    v.get("request_id")?.as_str().map(String::from)
}

/// A message from the client; `Some` when the loop must stop.
/// Waits for a change of the server's role; true when it is no longer the
/// primary.
async fn stepped_down(role: &mut tokio::sync::watch::Receiver<crate::ha::RoleState>) -> bool {
    if role.changed().await.is_err() {
        std::future::pending::<()>().await;
    }
    !role.borrow_and_update().is_primary()
}

async fn on_message(
    msg: Option<Result<Message, tungstenite::Error>>,
    conn: &mut Conn,
    wire: &Arc<Wire>,
    replies: &mpsc::Sender<Utf8Bytes>,
    may_hand_off: bool,
) -> Option<Stop> {
    let msg = match msg {
        None => return Some(Stop::Ended(End::Silent)),
        Some(Err(tungstenite::Error::Capacity(_))) => {
            return Some(Stop::Ended(End::Close(1009, "message over 16 KiB")));
        }
        Some(Err(e)) => {
            tracing::debug!(error = %e, "websocket read error");
            return Some(Stop::Ended(End::Silent));
        }
        Some(Ok(m)) => m,
    };
    let flow = match msg {
        // Boxed: the hello's future is large and rare; inline it would sit
        // in every connection's task for its whole life.
        Message::Text(t) => Box::pin(conn.on_text(t.as_str(), wire, replies)).await,
        Message::Binary(_) => {
            let e = ApiError::bad_request("send JSON text frames");
            send(wire, error_frame(None, &e)).await
        }
        Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => Ok(Flow::Continue),
        // RFC 6455 §5.5.1: answer a Close with a Close, then end.
        Message::Close(_) => return Some(Stop::Ended(End::Answer)),
    };
    match flow {
        // A screen after its hello: on to the screens' runtime and fan-out
        // (or back into the fan-out after a new hello).
        Ok(Flow::Continue) if conn.is_screen() && conn.rx.is_some() => {
            if may_hand_off {
                return Some(Stop::Handoff);
            }
            conn.join_fanout(wire);
            None
        }
        Ok(Flow::Continue) => None,
        Ok(Flow::Close(code, why)) => Some(Stop::Ended(End::Close(code, why))),
        Err(()) => Some(Stop::Ended(End::Silent)),
    }
}

/// Frames from the hub's broadcast, for a connection that forwards its own.
async fn on_frame(
    frame: Result<Frames, broadcast::error::RecvError>,
    conn: &mut Conn,
    wire: &Wire,
) -> Option<Stop> {
    let sent = match frame {
        Ok(f) => conn.forward(f, wire).await,
        Err(broadcast::error::RecvError::Lagged(n)) => {
            tracing::debug!(missed = n, "websocket client lagged; sending a snapshot");
            Box::pin(conn.resubscribe(None, wire)).await
        }
        Err(broadcast::error::RecvError::Closed) => {
            return Some(Stop::Ended(End::Close(1001, "server stopping")));
        }
    };
    sent.err().map(|()| Stop::Ended(End::Silent))
}

/// The fan-out left bytes queued for this screen, or let go of it.
async fn on_kick(conn: &mut Conn, wire: &Arc<Wire>) -> Option<Stop> {
    if drain(wire).await.is_err() {
        return Some(Stop::Ended(End::Silent));
    }
    if conn.fanned && wire.lagged() {
        tracing::debug!("screen fell behind; sending a snapshot");
        if Box::pin(conn.resubscribe(None, wire)).await.is_err() {
            return Some(Stop::Ended(End::Silent));
        }
        conn.join_fanout(wire);
    }
    None
}

/// Every `PING_EVERY`: drop a client silent for `IDLE_DROP`, else ping it.
async fn on_ping(
    ws: &mut WebSocketStream<WireIo>,
    wire: &Wire,
    last_heard: Instant,
) -> Option<Stop> {
    if last_heard.elapsed() >= IDLE_DROP {
        return Some(Stop::Ended(End::Close(1001, "idle for 45 s")));
    }
    let pinged = ws.feed(Message::Ping(Default::default())).await.is_ok();
    if !pinged || drain(wire).await.is_err() {
        return Some(Stop::Ended(End::Silent));
    }
    None
}

impl Conn {
    async fn on_text(
        &mut self,
        raw: &str,
        wire: &Wire,
        replies: &mpsc::Sender<Utf8Bytes>,
    ) -> Result<Flow, ()> {
        let msg: ClientMessage = match serde_json::from_str(raw) {
            Ok(m) => m,
            Err(e) => {
                let err = ApiError::bad_request(format!(
                    "invalid message: {}",
                    crate::error::json_error(&e)
                ));
                return send(wire, error_frame(issue_request_id(raw), &err)).await;
            }
        };
        match msg {
            ClientMessage::Hello { token, since } => {
                let flow = self.hello(token, since, wire).await?;
                self.attach_printer(replies);
                Ok(flow)
            }
            _ if self.who.is_none() => {
                let err = ApiError::unauthorized();
                send(wire, error_frame(None, &err)).await?;
                Ok(Flow::Close(1008, "hello first"))
            }
            ClientMessage::Issue {
                request_id,
                service,
                priority,
                identity,
            } => {
                let req = IssueRequest {
                    service,
                    priority,
                    request_id,
                    identity,
                    external_ref: None,
                    print_at: None,
                    notify: None,
                };
                self.issue(req, replies);
                Ok(Flow::Continue)
            }
            ClientMessage::CheckIn {
                request_id,
                code,
                appointment,
                identity,
            } => {
                if self.kiosk().is_none() {
                    let e = ApiError::forbidden("only kiosks check bookings in on the websocket");
                    return send(wire, error_frame(Some(request_id), &e)).await;
                }
                let req = CheckInRequest {
                    code,
                    appointment,
                    request_id,
                    identity,
                    print_at: None,
                };
                self.check_in(req, replies);
                Ok(Flow::Continue)
            }
            ClientMessage::DeviceStatus { printer } => self.device_status(printer, wire).await,
            ClientMessage::Printed { print_id, ok } => self.printed(&print_id, ok, wire).await,
        }
    }

    /// The kiosk this connection speaks for, if it does.
    fn kiosk(&self) -> Option<&str> {
        match &self.who {
            Some(Principal::Device {
                id,
                role: DeviceRole::Kiosk,
                ..
            }) => Some(id),
            _ => None,
        }
    }

    /// After each hello: a kiosk's connection takes print jobs and gets
    /// the ones it has not answered again (rule 88).
    fn attach_printer(&mut self, replies: &mpsc::Sender<Utf8Bytes>) {
        if let Some((kiosk, handle)) = self.printer.take() {
            self.app.prints.detach(&kiosk, handle);
        }
        if let Some(kiosk) = self.kiosk().map(String::from) {
            let handle = self.app.attach_printer(&kiosk, replies.clone());
            self.printer = Some((kiosk, handle));
        }
    }

    /// A kiosk's answer to a print job (others get `forbidden`, as rule 41).
    async fn printed(&self, print_id: &str, ok: bool, wire: &Wire) -> Result<Flow, ()> {
        self.seen();
        match self.kiosk() {
            Some(kiosk) => {
                self.app.printed(kiosk, print_id, ok);
                Ok(Flow::Continue)
            }
            None => {
                let e = ApiError::forbidden("only kiosks answer print jobs");
                send(wire, error_frame(None, &e)).await
            }
        }
    }

    /// A kiosk's `issue`, answered asynchronously (`issued` or an error
    /// frame with its request id) so a kiosk may have several in flight.
    fn issue(&self, req: IssueRequest, replies: &mpsc::Sender<Utf8Bytes>) {
        self.seen();
        let Some(who) = self.who.clone() else {
            return;
        };
        let app = self.app.clone();
        let replies = replies.clone();
        tokio::spawn(async move {
            let request_id = req.request_id.clone();
            let m = match app.issue(&who, req).await {
                Ok(issued) => text(&ServerMessage::Issued {
                    request_id,
                    ticket: issued.ticket,
                    slot_at: None,
                }),
                Err(e) => error_frame(Some(request_id), &e),
            };
            let _ = replies.send(m).await;
        });
    }

    /// A kiosk's `check_in` (§11), answered as `issue` is: `issued` with
    /// the booking's `slot_at`, or an error frame with its request id.
    fn check_in(&self, req: CheckInRequest, replies: &mpsc::Sender<Utf8Bytes>) {
        self.seen();
        let Some(who) = self.who.clone() else {
            return;
        };
        let app = self.app.clone();
        let replies = replies.clone();
        tokio::spawn(async move {
            let request_id = req.request_id.clone();
            let m = match app.check_in(&who, req).await {
                Ok(done) => text(&ServerMessage::Issued {
                    request_id,
                    ticket: done.issued.ticket,
                    slot_at: done.slot_at,
                }),
                Err(e) => error_frame(Some(request_id), &e),
            };
            let _ = replies.send(m).await;
        });
    }

    /// A kiosk's printer status (rule 41: others get `forbidden`).
    async fn device_status(&self, printer: PrinterStatus, wire: &Wire) -> Result<Flow, ()> {
        let kiosk = matches!(
            self.who,
            Some(Principal::Device {
                role: DeviceRole::Kiosk,
                ..
            })
        );
        match &self.device {
            Some(id) if kiosk => {
                self.app.hub.device(id, DeviceUpdate::Printer(printer));
                Ok(Flow::Continue)
            }
            _ => {
                let e = ApiError::forbidden("only kiosks report a printer");
                send(wire, error_frame(None, &e)).await
            }
        }
    }

    /// Which text of each frame this connection gets (rules 85, 87, §10).
    fn view(&self) -> View {
        if self.is_screen() {
            return View::Display;
        }
        match &self.who {
            Some(w) if w.is_integration() => View::Integration(w.scope()),
            Some(Principal::Device { .. }) => View::Kiosk,
            _ => View::Full,
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

    /// Hands this screen's events over to the fan-out, from its last seq on.
    fn join_fanout(&mut self, wire: &Arc<Wire>) {
        if self.rx.take().is_some() {
            self.app.fanout.join(wire, self.last_seq);
            self.fanned = true;
        }
    }

    fn seen(&self) {
        if let Some(d) = &self.device {
            self.app.hub.device(d, DeviceUpdate::Seen);
        }
    }

    async fn hello(
        &mut self,
        token: Option<String>,
        since: Option<u64>,
        wire: &Wire,
    ) -> Result<Flow, ()> {
        // Rule 105: a standby takes no hello; the client tries again (1013).
        let role = self.app.hub.role().borrow().clone();
        if !role.is_primary() {
            send(wire, error_frame(None, &crate::http::standby_error(&role))).await?;
            return Ok(Flow::Close(
                1013,
                "this server is a standby; try again later",
            ));
        }
        let who = match token.as_deref() {
            None | Some("") if self.app.config.server.public_board => {
                Some(Principal::PublicDisplay)
            }
            None | Some("") => None,
            Some(t) => self.app.resolve(t).await,
        };
        let Some(who) = who else {
            send(wire, error_frame(None, &ApiError::unauthorized())).await?;
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
        let welcome = self.app.welcome(&who).await;
        self.who = Some(who);
        send(wire, text(&welcome)).await?;
        self.resubscribe(since, wire).await
    }

    /// (Re)starts the event stream after `since`, or with a snapshot. The
    /// connection forwards events itself until a screen joins the fan-out.
    async fn resubscribe(&mut self, since: Option<u64>, wire: &Wire) -> Result<Flow, ()> {
        self.rx = None;
        if self.fanned {
            wire.leave();
            self.fanned = false;
        }
        let catchup = self.app.hub.subscribe(since).await;
        // Each connection its view: displays get tickets without reasons
        // (§10), kiosks and displays without `external_ref` (rule 87).
        let view = self.view();
        let parts: Vec<bytes::Bytes> = catchup
            .frames
            .iter()
            .flat_map(|f| encode(f.text_for(&view)))
            .collect();
        send_parts(wire, &parts).await?;
        self.last_seq = catchup.last_seq;
        self.rx = Some(catchup.rx);
        Ok(Flow::Continue)
    }

    /// Sends the frames of `first` and of whatever else is already waiting in
    /// the broadcast channel in one write, then waits until the socket took them.
    async fn forward(&mut self, first: Frames, wire: &Wire) -> Result<Flow, ()> {
        let mut next = Some(first);
        let mut parts = Vec::new();
        let view = self.view();
        while let Some(batch) = next.take() {
            for f in batch.iter() {
                if self.wants(f) {
                    parts.extend(encode(f.text_for(&view)));
                }
            }
            if parts.len() >= 2 * FORWARD_BURST {
                break;
            }
            next = match self.rx.as_mut().map(|rx| rx.try_recv()) {
                Some(Ok(f)) => Some(f),
                Some(Err(broadcast::error::TryRecvError::Lagged(_))) => {
                    return self.resubscribe(None, wire).await;
                }
                _ => None,
            };
        }
        send_parts(wire, &parts).await
    }

    /// Whether this client gets `f`, and bookkeeping of the last seq sent.
    fn wants(&mut self, f: &Frame) -> bool {
        if f.audience == Audience::Admins && !self.who.as_ref().is_some_and(|w| w.is_admin()) {
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
