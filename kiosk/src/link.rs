//! The link to luot-server: one task that moves frames between a websocket
//! (tokio-tungstenite 0.29) and a [`Session`], sleeps until the session's
//! next timer, dials or drops the connection when the session says so, and
//! hands each answer to the press or check-in waiting for it (and tells it
//! when it is held up, so the kiosk shows "please wait") and each print
//! job to the daemon.
//!
//! Every rule (hello, resend of unanswered issues with the same
//! `request_id`, after each reconnect and 1 s after `unavailable`, backoff,
//! silence, deadlines, at most one answer per press,
//! a ticket only from the server's `issued`) lives in `session.rs`; this
//! module decides nothing and never reads or writes JSON itself.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use luot_protocol::{Identity, PrinterStatus};
use rand::Rng;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use tracing::Instrument;

use crate::session::{Ask, Event, Session, Want};
pub use crate::session::{Booking, IssueError, Issued, PrintJob, Welcome};

/// Print jobs received and not yet taken by the daemon.
const JOBS_WAITING: usize = 64;

#[derive(Clone, Debug, Default)]
pub struct LinkStatus {
    pub connected: bool,
    pub welcome: Option<Welcome>,
}

type Reply = oneshot::Sender<Result<Issued, IssueError>>;

/// Who waits for a request: its one answer, and whether it is held up.
struct Waiter {
    reply: Reply,
    held_up: watch::Sender<bool>,
}

/// A request on its way to the server (an issue or a check-in).
pub struct Asked {
    answer: Pin<Box<dyn Future<Output = Result<Issued, IssueError>> + Send>>,
    /// Turns true once the request is held up (rule 107: answered
    /// `unavailable`, or no welcomed connection to carry it): the kiosk
    /// shows "please wait" while it is sent again. Closed once answered.
    pub held_up: watch::Receiver<bool>,
}

impl Asked {
    /// The one answer (a ticket, a refusal, or `Timeout` at the deadline),
    /// and the held-up flag to watch meanwhile.
    pub fn split(
        self,
    ) -> (
        impl Future<Output = Result<Issued, IssueError>>,
        watch::Receiver<bool>,
    ) {
        (self.answer, self.held_up)
    }

    /// Just the answer.
    pub async fn answer(self) -> Result<Issued, IssueError> {
        self.answer.await
    }
}

enum Cmd {
    /// An issue or a check-in.
    Ask {
        request_id: String,
        ask: Ask,
        identity: Option<Identity>,
        deadline: Instant,
        reply: Reply,
        held_up: watch::Sender<bool>,
    },
    Printer(PrinterStatus),
    Printed {
        print_id: String,
        ok: bool,
    },
    /// Answered once what was asked before is written to the socket (or
    /// dropped for want of a connection).
    Sync(oneshot::Sender<()>),
}

#[derive(Clone)]
pub struct Link {
    tx: mpsc::Sender<Cmd>,
    pub status: watch::Receiver<LinkStatus>,
    jobs: Arc<tokio::sync::Mutex<mpsc::Receiver<PrintJob>>>,
}

impl Link {
    /// Starts the link task for `ws_url` with the device `token`.
    pub fn start(ws_url: String, token: String) -> Link {
        let (tx, rx) = mpsc::channel(256);
        let (stx, srx) = watch::channel(LinkStatus::default());
        let (jobs_tx, jobs_rx) = mpsc::channel(JOBS_WAITING);
        let span = tracing::info_span!("link", url = %ws_url);
        let driver = Driver {
            session: Session::new(token, rand::rng().random(), now()),
            url: ws_url,
            conn: Conn::None,
            replies: HashMap::new(),
            status: stx,
            jobs: jobs_tx,
            syncs: Vec::new(),
        };
        tokio::spawn(driver.run(rx).instrument(span));
        Link {
            tx,
            status: srx,
            jobs: Arc::new(tokio::sync::Mutex::new(jobs_rx)),
        }
    }

    /// The next print job the server sent (each time it sends one: the
    /// daemon prints a `print_id` at most once). `None` once the link stopped.
    pub async fn next_job(&self) -> Option<PrintJob> {
        self.jobs.lock().await.recv().await
    }

    /// A print job already received, if any.
    pub fn try_job(&self) -> Option<PrintJob> {
        self.jobs.try_lock().ok()?.try_recv().ok()
    }

    /// Answers a print job (`ok`: it printed).
    pub fn printed(&self, print_id: &str, ok: bool) {
        let cmd = Cmd::Printed {
            print_id: print_id.to_string(),
            ok,
        };
        if self.tx.try_send(cmd).is_err() {
            tracing::warn!(
                print_id,
                "the link is busy; the server will send the job again"
            );
        }
    }

    /// Waits (up to `limit`) until everything asked of the link so far has
    /// been written to the socket, or dropped for want of a connection.
    pub async fn sync(&self, limit: Duration) {
        let (reply, rx) = oneshot::channel();
        if self.tx.send(Cmd::Sync(reply)).await.is_ok() {
            let _ = tokio::time::timeout(limit, rx).await;
        }
    }

    /// Asks for a ticket; gives up after `deadline`, and then the request is
    /// forgotten: a late answer to it is never returned.
    pub async fn issue(
        &self,
        request_id: &str,
        service: &str,
        priority: Option<&str>,
        identity: Option<Identity>,
        deadline: Duration,
    ) -> Asked {
        let ask = Ask::Issue {
            service: service.to_string(),
            priority: priority.map(String::from),
        };
        self.ask(request_id, ask, identity, deadline).await
    }

    /// Checks a booking in (§11), as `issue` asks for a ticket.
    pub async fn check_in(
        &self,
        request_id: &str,
        booking: Booking,
        identity: Option<Identity>,
        deadline: Duration,
    ) -> Asked {
        self.ask(request_id, Ask::CheckIn(booking), identity, deadline)
            .await
    }

    /// Issue and check-in alike: one request, one answer, one deadline.
    async fn ask(
        &self,
        request_id: &str,
        ask: Ask,
        identity: Option<Identity>,
        deadline: Duration,
    ) -> Asked {
        let deadline = tokio::time::Instant::now() + deadline;
        let (reply, rx) = oneshot::channel();
        let (held_tx, held_up) = watch::channel(false);
        let cmd = Cmd::Ask {
            request_id: request_id.to_string(),
            ask,
            identity,
            deadline: deadline.into_std(),
            reply,
            held_up: held_tx,
        };
        let sent = self.tx.send(cmd).await.is_ok();
        let answer = async move {
            if !sent {
                return Err(IssueError::Timeout);
            }
            // The session answers `Timeout` at the deadline itself; this
            // bound only matters if the link task is held up in a send.
            match tokio::time::timeout_at(deadline, rx).await {
                Ok(Ok(answer)) => answer,
                _ => Err(IssueError::Timeout),
            }
        };
        Asked {
            answer: Box::pin(answer),
            held_up,
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

/// The session's clock: tokio's, so a paused test clock pauses it too.
fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;
type Dial = Pin<Box<dyn Future<Output = Result<Box<Ws>, String>> + Send>>;

/// The socket as it is: none, being dialed, or open.
enum Conn {
    None,
    Dialing(Dial),
    Open(Box<Ws>),
}

/// What the socket did.
enum Io {
    Dialed(Result<Box<Ws>, String>),
    Frame(Option<Result<Message, tungstenite::Error>>),
}

impl Conn {
    /// The socket's next happening; never ready without a socket.
    async fn next(&mut self) -> Io {
        match self {
            Conn::None => std::future::pending().await,
            Conn::Dialing(dial) => Io::Dialed(dial.await),
            Conn::Open(ws) => Io::Frame(ws.next().await),
        }
    }
}

fn dial(url: String) -> Dial {
    let config = WebSocketConfig::default()
        .read_buffer_size(8 * 1024)
        .max_message_size(Some(4 << 20));
    Box::pin(async move {
        tokio_tungstenite::connect_async_with_config(&url, Some(config), true)
            .await
            .map(|(ws, _)| Box::new(ws))
            .map_err(|e| e.to_string())
    })
}

struct Driver {
    session: Session,
    url: String,
    conn: Conn,
    replies: HashMap<String, Waiter>,
    status: watch::Sender<LinkStatus>,
    jobs: mpsc::Sender<PrintJob>,
    /// `Link::sync` calls to answer after the next flush.
    syncs: Vec<oneshot::Sender<()>>,
}

impl Driver {
    async fn run(mut self, mut rx: mpsc::Receiver<Cmd>) {
        loop {
            self.settle().await;
            let wake = tokio::time::Instant::from_std(self.session.poll_timeout());
            tokio::select! {
                cmd = rx.recv() => match cmd {
                    Some(cmd) => self.command(cmd),
                    None => return self.drop_conn(),
                },
                () = tokio::time::sleep_until(wake) => self.session.handle_timeout(now()),
                io = self.conn.next() => self.io(io),
            }
        }
    }

    /// Sends what the session wants sent, makes the socket what the session
    /// wants, and hands out what it reports.
    async fn settle(&mut self) {
        self.flush().await;
        self.reconcile();
        self.deliver();
    }

    async fn flush(&mut self) {
        self.send_all().await;
        for s in self.syncs.drain(..) {
            let _ = s.send(());
        }
    }

    async fn send_all(&mut self) {
        let Conn::Open(ws) = &mut self.conn else {
            return;
        };
        while let Some(text) = self.session.poll_transmit() {
            if let Err(e) = ws.send(Message::Text(text.into())).await {
                self.conn = Conn::None;
                self.session.on_disconnected(now(), &e.to_string());
                return;
            }
        }
    }

    fn reconcile(&mut self) {
        match (self.session.wants(), &self.conn) {
            (Want::Wait, Conn::Dialing(_) | Conn::Open(_)) | (Want::Dial, Conn::Open(_)) => {
                self.drop_conn()
            }
            (Want::Open, Conn::None | Conn::Dialing(_)) => {
                self.drop_conn();
                self.session.on_disconnected(now(), "no socket");
            }
            _ => {}
        }
        if let (Want::Dial, Conn::None) = (self.session.wants(), &self.conn) {
            self.conn = Conn::Dialing(dial(self.url.clone()));
        }
    }

    /// Lets go of the socket; an open one is closed politely in the background.
    fn drop_conn(&mut self) {
        if let Conn::Open(mut ws) = std::mem::replace(&mut self.conn, Conn::None) {
            tokio::spawn(async move {
                let _ = tokio::time::timeout(
                    Duration::from_secs(1),
                    WebSocketStream::close(&mut ws, None),
                )
                .await;
            });
        }
    }

    fn deliver(&mut self) {
        while let Some(event) = self.session.poll_event() {
            match event {
                Event::Answer { request_id, answer } => {
                    if let Some(w) = self.replies.remove(&request_id) {
                        let _ = w.reply.send(answer.map(|i| *i));
                    }
                }
                Event::HeldUp { request_id } => {
                    if let Some(w) = self.replies.get(&request_id) {
                        w.held_up.send_replace(true);
                    }
                }
                Event::Welcome(w) => {
                    self.status.send_replace(LinkStatus {
                        connected: true,
                        welcome: Some(w),
                    });
                }
                Event::Down => self.status.send_modify(|s| s.connected = false),
                Event::TokenRefused { .. } => {} // logged by the session
                Event::Print(job) => {
                    if self.jobs.try_send(*job).is_err() {
                        tracing::warn!(
                            "too many print jobs waiting; the server sends this one again after the next hello"
                        );
                    }
                }
            }
        }
    }

    fn command(&mut self, cmd: Cmd) {
        match cmd {
            Cmd::Ask {
                request_id,
                ask,
                identity,
                deadline,
                reply,
                held_up,
            } => {
                self.replies
                    .insert(request_id.clone(), Waiter { reply, held_up });
                match ask {
                    Ask::Issue { service, priority } => self
                        .session
                        .issue(request_id, service, priority, identity, deadline),
                    Ask::CheckIn(booking) => self
                        .session
                        .check_in(request_id, booking, identity, deadline),
                }
            }
            Cmd::Printer(p) => self.session.printer(p),
            Cmd::Printed { print_id, ok } => self.session.printed(print_id, ok),
            Cmd::Sync(reply) => self.syncs.push(reply),
        }
    }

    fn io(&mut self, io: Io) {
        let now = now();
        match io {
            Io::Dialed(Ok(ws)) => {
                self.conn = Conn::Open(ws);
                self.session.on_connected(now);
            }
            Io::Frame(Some(Ok(Message::Text(text)))) => self.session.on_message(text.as_str(), now),
            Io::Frame(Some(Ok(Message::Close(_))) | None) => self.lost(now, "closed by the server"),
            Io::Frame(Some(Ok(_))) => self.session.on_heard(now),
            Io::Dialed(Err(e)) => self.lost(now, &e),
            Io::Frame(Some(Err(e))) => self.lost(now, &e.to_string()),
        }
    }

    fn lost(&mut self, now: Instant, why: &str) {
        self.conn = Conn::None;
        self.session.on_disconnected(now, why);
    }
}
