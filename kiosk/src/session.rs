//! The kiosk's side of the websocket as a state machine without I/O, in the
//! style of quinn-proto's `Connection`: the link task tells it what happened
//! (`issue`, `printer`, `on_connected`, `on_message`, `on_disconnected`,
//! `handle_timeout`) with the time passed in, and asks it what to do
//! (`wants`, `poll_transmit`, `poll_event`, `poll_timeout`).
//!
//! It owns the kiosk's promise on the wire (ARCHITECTURE.md, "The kiosk's
//! promise"): hello with the device token, nothing else before `welcome`,
//! every unanswered issue or check-in (§11: answered as `issue` is) sent
//! again with the same `request_id` once per connection, and one answered
//! `unavailable` (rule 107: a standby, a failover, a store that cannot
//! write) sent again 1 s later on the same connection as well, one answer
//! per request at most, a ticket only from the server's `issued` for that
//! `request_id`, a request past its deadline (`issue_deadline_s` after the
//! press) forgotten (a late answer is dropped), a request held up (answered
//! `unavailable`, or waiting with no welcomed connection) reported once so
//! the kiosk shows "please wait", printer status after each welcome,
//! backoff 0.5 s doubling to 10 s with jitter (a `hello` answered
//! `unavailable` is a standby, not a refused token: the same backoff), a
//! connection silent for 45 s dropped;
//! print jobs (rule 88) reported as they come and their `printed` answers
//! sent on a welcomed connection (an answer that cannot be sent is not
//! kept: the server sends the job again after the next hello).
//!
//! A scanned CCCD's fields ride in a request's `identity` only: never
//! logged (`Identity`'s `Debug` prints nothing of it), dropped with the
//! request once it is answered or forgotten.
//!
//! It never touches a socket, a clock, a task or a printer.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use chrono::{DateTime, FixedOffset};
use luot_protocol::{ClientMessage, ErrorDetail, Identity, PrinterStatus, ServerMessage, Ticket};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde::Deserialize;

#[cfg(test)]
mod tests;

/// How long dialing, and then waiting for `welcome`, may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// The server pings every 15 s; silence this long means the link is dead.
pub const SILENCE: Duration = Duration::from_secs(45);
/// The first wait before reconnecting; it doubles after each failure.
pub const BACKOFF_MIN: Duration = Duration::from_millis(500);
/// The longest wait before reconnecting, and the wait after a refused token.
pub const BACKOFF_MAX: Duration = Duration::from_secs(10);
/// A request answered `unavailable` is sent again this long after (rule 107).
pub const RETRY_UNAVAILABLE: Duration = Duration::from_secs(1);
/// The error code of a server that cannot take commands now (rules 103–107).
pub const UNAVAILABLE: &str = "unavailable";

/// What the server told us in `welcome`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Welcome {
    pub site_name: String,
    pub public_url: String,
    /// This kiosk's buttons: (service id, name), in order.
    pub services: Vec<(String, String)>,
    /// The server's clock at the welcome (with the site's offset), and when
    /// the welcome came: the site's time now, as far as the kiosk can tell.
    pub server_time: Option<(DateTime<FixedOffset>, Instant)>,
}

impl Welcome {
    /// The server's time at `now` (the site's offset), if it gave one.
    pub fn server_now(&self, now: Instant) -> Option<DateTime<FixedOffset>> {
        let (at, heard) = self.server_time?;
        let since = chrono::Duration::from_std(now.saturating_duration_since(heard)).ok()?;
        Some(at + since)
    }

    pub fn service_name(&self, id: &str) -> String {
        self.services
            .iter()
            .find(|(s, _)| s == id)
            .map(|(_, n)| n.clone())
            .unwrap_or_else(|| id.to_string())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IssueError {
    /// The server's error for this request; `extra` holds what §11 adds
    /// (`next_open_at`, `number`, `checkin_opens_at`).
    #[error("the server refused: {code}: {message}")]
    Refused {
        code: String,
        message: String,
        extra: serde_json::Map<String, serde_json::Value>,
    },
    #[error("no answer from the server in time")]
    Timeout,
}

/// The server's `issued`: the ticket, and for a check-in its booking's
/// `slot_at` (rule 78's `Hẹn`).
#[derive(Debug, Clone, PartialEq)]
pub struct Issued {
    pub ticket: Ticket,
    pub slot_at: Option<String>,
}

/// Which booking a check-in names (§11): its 8-digit code or its id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Booking {
    Code(String),
    Appointment(String),
}

/// What a waiting request asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ask {
    Issue {
        service: String,
        priority: Option<String>,
    },
    CheckIn(Booking),
}

/// A print job from the server (rule 88): print `ticket` once per `print_id`.
#[derive(Debug, Clone, PartialEq)]
pub struct PrintJob {
    pub print_id: String,
    pub ticket: Ticket,
    /// The name of the ticket's current service, when the server gives it.
    pub service_name: Option<String>,
    /// The server's time when it sent the job (the reprint's time).
    pub at: Option<String>,
    /// For a checked-in ticket, its booking's `slot_at` (rule 78's `Hẹn`).
    pub slot_at: Option<String>,
    /// A `/print` job, printed as rule 67's reprint; false for a new
    /// ticket's `print_at`, printed as §7's ticket (rule 88).
    pub reprint: bool,
}

/// What the session reports to its owner.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// The one answer to an issue or check-in: a ticket from the server's
    /// `issued`, the server's refusal, or the deadline passed. Never two for
    /// one request.
    Answer {
        request_id: String,
        answer: Result<Box<Issued>, IssueError>,
    },
    /// The server welcomed this kiosk; issues can be had.
    Welcome(Welcome),
    /// The welcomed connection ended.
    Down,
    /// The server refused the device token; the session waits 10 s.
    TokenRefused { code: String, message: String },
    /// A request is held up: the server answered it `unavailable`, or no
    /// welcomed connection can carry it now. It is sent again (after 1 s,
    /// and after each welcome) until answered or its deadline; the kiosk
    /// shows "please wait". Reported once per request.
    HeldUp { request_id: String },
    /// A print job, each time the server sends it (after each hello until
    /// answered): the owner prints each `print_id` at most once.
    Print(Box<PrintJob>),
}

/// What the session wants done about the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Want {
    /// No connection: backing off.
    Wait,
    /// Dial the server now (and call `on_connected` or `on_disconnected`).
    Dial,
    /// Keep the open connection and move its frames.
    Open,
}

#[derive(Debug, Clone, Copy)]
enum Phase {
    Waiting {
        until: Instant,
    },
    Dialing {
        give_up: Instant,
    },
    Greeting {
        conn: u64,
        heard: Instant,
        give_up: Instant,
    },
    Ready {
        conn: u64,
        heard: Instant,
    },
}

#[derive(Debug)]
struct Pending {
    request_id: String,
    ask: Ask,
    /// A scanned CCCD's fields, sent with it (`Debug` prints none of it).
    identity: Option<Identity>,
    deadline: Instant,
    /// The connection it was last sent on, if any.
    sent_on: Option<u64>,
    /// Answered `unavailable`: sent again at this time on a welcomed
    /// connection (or after the next welcome, whichever comes first).
    retry_at: Option<Instant>,
    /// `Event::HeldUp` was reported for it.
    held_up: bool,
}

/// The link's state: the connection's phase, the unanswered issues, the
/// printer's last status, and what is waiting to be sent or reported.
pub struct Session {
    token: String,
    phase: Phase,
    conns: u64,
    backoff: Duration,
    rng: SmallRng,
    welcome: Option<Welcome>,
    printer: Option<PrinterStatus>,
    pending: Vec<Pending>,
    outbox: VecDeque<ClientMessage>,
    events: VecDeque<Event>,
}

/// Just the `type` of a server frame, read without building the rest.
#[derive(Deserialize)]
struct Peek<'a> {
    #[serde(rename = "type", borrow)]
    kind: std::borrow::Cow<'a, str>,
}

impl Session {
    /// A session that wants to dial at once. `seed` feeds the backoff jitter.
    pub fn new(token: String, seed: u64, now: Instant) -> Session {
        Session {
            token,
            phase: Phase::Dialing {
                give_up: now + CONNECT_TIMEOUT,
            },
            conns: 0,
            backoff: BACKOFF_MIN,
            rng: SmallRng::seed_from_u64(seed),
            welcome: None,
            printer: None,
            pending: Vec::new(),
            outbox: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    pub fn wants(&self) -> Want {
        match self.phase {
            Phase::Waiting { .. } => Want::Wait,
            Phase::Dialing { .. } => Want::Dial,
            Phase::Greeting { .. } | Phase::Ready { .. } => Want::Open,
        }
    }

    /// `true` once the server has welcomed the current connection.
    pub fn is_ready(&self) -> bool {
        matches!(self.phase, Phase::Ready { .. })
    }

    /// The last `welcome` (kept over reconnects).
    pub fn welcome(&self) -> Option<&Welcome> {
        self.welcome.as_ref()
    }

    /// Asks for a ticket. It is sent now if the server has welcomed this
    /// connection, else after the next welcome (and reported held up);
    /// sent again 1 s after an `unavailable` answer and after each
    /// reconnect; answered at most once, and forgotten at `deadline`. A
    /// `request_id` already waiting is ignored.
    pub fn issue(
        &mut self,
        request_id: String,
        service: String,
        priority: Option<String>,
        identity: Option<Identity>,
        deadline: Instant,
    ) {
        self.ask(
            request_id,
            Ask::Issue { service, priority },
            identity,
            deadline,
        );
    }

    /// Checks a booking in (§11), with the same rules as [`Session::issue`]
    /// (the same code): sent after a welcome, again with the same
    /// `request_id` 1 s after an `unavailable` answer and after each
    /// reconnect, answered at most once (`issued` or an error), forgotten at
    /// `deadline`.
    pub fn check_in(
        &mut self,
        request_id: String,
        booking: Booking,
        identity: Option<Identity>,
        deadline: Instant,
    ) {
        self.ask(request_id, Ask::CheckIn(booking), identity, deadline);
    }

    fn ask(&mut self, request_id: String, ask: Ask, identity: Option<Identity>, deadline: Instant) {
        if self.pending.iter().any(|p| p.request_id == request_id) {
            tracing::warn!(request_id, "this request is already waiting; ignored");
            return;
        }
        self.pending.push(Pending {
            request_id,
            ask,
            identity,
            deadline,
            sent_on: None,
            retry_at: None,
            held_up: false,
        });
        match self.phase {
            Phase::Ready { conn, .. } => self.send_unsent(conn),
            _ => self.hold_up_all(),
        }
    }

    /// Records the printer's status; sent now if welcomed, and after each welcome.
    pub fn printer(&mut self, status: PrinterStatus) {
        self.printer = Some(status);
        if self.is_ready() {
            self.outbox
                .push_back(ClientMessage::DeviceStatus { printer: status });
        }
    }

    /// Answers a print job: sent now if welcomed; otherwise not kept (the
    /// server sends the job again after the next hello).
    pub fn printed(&mut self, print_id: String, ok: bool) {
        if self.is_ready() {
            self.outbox
                .push_back(ClientMessage::Printed { print_id, ok });
        } else {
            tracing::info!(
                print_id,
                "not connected: the print job's answer waits for the server to send it again"
            );
        }
    }

    /// The dial succeeded: say hello.
    pub fn on_connected(&mut self, now: Instant) {
        let Phase::Dialing { .. } = self.phase else {
            return;
        };
        self.conns += 1;
        self.phase = Phase::Greeting {
            conn: self.conns,
            heard: now,
            give_up: now + CONNECT_TIMEOUT,
        };
        self.outbox.push_back(ClientMessage::Hello {
            token: Some(self.token.clone()),
            since: None,
        });
    }

    /// The dial failed or the connection ended (`why` is for the log).
    pub fn on_disconnected(&mut self, now: Instant, why: &str) {
        match self.phase {
            Phase::Waiting { .. } => return,
            Phase::Dialing { .. } => tracing::warn!(error = why, "cannot reach luot-server"),
            Phase::Greeting { .. } => {
                tracing::warn!(error = why, "luot-server did not welcome this kiosk")
            }
            Phase::Ready { .. } => {
                tracing::warn!(error = why, "connection to luot-server lost; reconnecting")
            }
        }
        self.back_off(now);
    }

    /// Any frame from the server (a ping too) shows the link is alive.
    pub fn on_heard(&mut self, now: Instant) {
        match &mut self.phase {
            Phase::Greeting { heard, .. } | Phase::Ready { heard, .. } => *heard = now,
            Phase::Waiting { .. } | Phase::Dialing { .. } => {}
        }
    }

    /// A text frame from the server. Only `welcome`, `issued`, `error` and
    /// `print` matter to a kiosk; board events and snapshots are skipped
    /// unparsed.
    pub fn on_message(&mut self, text: &str, now: Instant) {
        if !matches!(self.wants(), Want::Open) {
            return;
        }
        self.on_heard(now);
        let wanted = match serde_json::from_str::<Peek>(text) {
            Ok(p) => matches!(p.kind.as_ref(), "welcome" | "issued" | "error" | "print"),
            Err(_) => false,
        };
        if !wanted {
            return;
        }
        match serde_json::from_str::<ServerMessage>(text) {
            Ok(msg) => self.on_server_message(msg, now),
            Err(e) => tracing::warn!(error = %e, "cannot read a frame from luot-server"),
        }
    }

    fn on_server_message(&mut self, msg: ServerMessage, now: Instant) {
        match msg {
            ServerMessage::Welcome {
                site,
                services,
                server_time,
                ..
            } => self.on_welcome(Welcome {
                site_name: site.name,
                public_url: site.public_url,
                services: services.into_iter().map(|s| (s.id, s.name)).collect(),
                server_time: DateTime::parse_from_rfc3339(&server_time)
                    .ok()
                    .map(|t| (t, now)),
            }),
            ServerMessage::Issued {
                request_id,
                ticket,
                slot_at,
            } => self.answer(&request_id, Ok(Box::new(Issued { ticket, slot_at }))),
            ServerMessage::Error {
                request_id: Some(request_id),
                error,
            } if error.code == UNAVAILABLE => self.unavailable(&request_id, &error.message, now),
            ServerMessage::Error {
                request_id: Some(request_id),
                error,
            } => {
                let refused = IssueError::Refused {
                    code: error.code,
                    message: error.message,
                    extra: error.extra,
                };
                self.answer(&request_id, Err(refused));
            }
            ServerMessage::Error {
                request_id: None,
                error,
            } => self.on_error(error, now),
            ServerMessage::Print {
                print_id,
                ticket,
                service_name,
                at,
                slot_at,
                reprint,
            } if self.is_ready() => self.events.push_back(Event::Print(Box::new(PrintJob {
                print_id,
                ticket,
                service_name,
                at,
                slot_at,
                reprint,
            }))),
            _ => {}
        }
    }

    fn on_welcome(&mut self, welcome: Welcome) {
        let conn = match self.phase {
            Phase::Greeting { conn, heard, .. } | Phase::Ready { conn, heard } => {
                self.phase = Phase::Ready { conn, heard };
                conn
            }
            Phase::Waiting { .. } | Phase::Dialing { .. } => return,
        };
        tracing::info!(site = %welcome.site_name, buttons = welcome.services.len(), "connected to luot-server");
        self.backoff = BACKOFF_MIN;
        self.welcome = Some(welcome.clone());
        self.events.push_back(Event::Welcome(welcome));
        if let Some(printer) = self.printer {
            self.outbox
                .push_back(ClientMessage::DeviceStatus { printer });
        }
        self.send_unsent(conn);
    }

    /// An error frame that answers no issue: before welcome it refuses the
    /// token (wait the longest backoff), or, `unavailable`, says this server
    /// is not the primary now (a standby closes with 1013: reconnect with
    /// the usual backoff); after welcome it is only logged.
    fn on_error(&mut self, error: ErrorDetail, now: Instant) {
        if self.is_ready() {
            tracing::warn!(code = %error.code, message = %error.message, "server error");
            return;
        }
        if error.code == UNAVAILABLE {
            tracing::warn!(message = %error.message, "luot-server cannot serve now (a standby, or a failover under way); reconnecting");
            self.back_off(now);
            return;
        }
        tracing::error!(code = %error.code, message = %error.message, "the server refused this kiosk's token; check [server] token in kiosk.toml");
        self.events.push_back(Event::TokenRefused {
            code: error.code,
            message: error.message,
        });
        self.backoff = BACKOFF_MAX;
        self.back_off(now);
    }

    /// Reports the answer to `request_id` if it is waiting and was sent;
    /// anything else (a duplicate, a late or a stray answer) is dropped.
    fn answer(&mut self, request_id: &str, answer: Result<Box<Issued>, IssueError>) {
        let Some(i) = self
            .pending
            .iter()
            .position(|p| p.request_id == request_id && p.sent_on.is_some())
        else {
            tracing::debug!(request_id, "an answer to no waiting issue; dropped");
            return;
        };
        let request_id = self.pending.remove(i).request_id;
        self.events.push_back(Event::Answer { request_id, answer });
    }

    /// An `unavailable` answer to `request_id` (rule 107): not an answer
    /// for the press; the request is sent again in 1 s (or after the next
    /// welcome) with the same `request_id`, until its deadline.
    fn unavailable(&mut self, request_id: &str, message: &str, now: Instant) {
        let Some(p) = self
            .pending
            .iter_mut()
            .find(|p| p.request_id == request_id && p.sent_on.is_some())
        else {
            tracing::debug!(request_id, "unavailable for no waiting request; dropped");
            return;
        };
        tracing::warn!(
            request_id,
            message,
            "luot-server answered unavailable; sending the request again in 1 s"
        );
        p.retry_at = Some(now + RETRY_UNAVAILABLE);
        Self::hold_up(&mut self.events, p);
    }

    /// Reports `p` held up, once.
    fn hold_up(events: &mut VecDeque<Event>, p: &mut Pending) {
        if !p.held_up {
            p.held_up = true;
            events.push_back(Event::HeldUp {
                request_id: p.request_id.clone(),
            });
        }
    }

    /// No welcomed connection: every waiting request is held up.
    fn hold_up_all(&mut self) {
        for p in &mut self.pending {
            Self::hold_up(&mut self.events, p);
        }
    }

    /// Sends again, on the welcomed connection, each request whose 1 s
    /// after `unavailable` is up; without one, they wait for the next
    /// welcome (which sends every request not sent on its connection).
    fn retry_unavailable(&mut self, now: Instant) {
        let conn = match self.phase {
            Phase::Ready { conn, .. } => Some(conn),
            _ => None,
        };
        for i in 0..self.pending.len() {
            let p = &mut self.pending[i];
            if p.retry_at.is_none_or(|at| at > now) {
                continue;
            }
            p.retry_at = None;
            if let Some(conn) = conn {
                self.send(i, conn);
            }
        }
    }

    /// Queues every waiting request not yet sent on connection `conn`.
    fn send_unsent(&mut self, conn: u64) {
        for i in 0..self.pending.len() {
            if self.pending[i].sent_on != Some(conn) {
                self.send(i, conn);
            }
        }
    }

    /// Queues the waiting request `i` on connection `conn`: the one frame
    /// for an issue or a check-in, the same each time it is sent.
    fn send(&mut self, i: usize, conn: u64) {
        let p = &mut self.pending[i];
        if p.sent_on.is_some() {
            match p.ask {
                Ask::Issue { .. } => {
                    tracing::info!(request_id = %p.request_id, "sending an unanswered issue again")
                }
                Ask::CheckIn(_) => {
                    tracing::info!(request_id = %p.request_id, "sending an unanswered check-in again")
                }
            }
        }
        p.sent_on = Some(conn);
        p.retry_at = None;
        let request_id = p.request_id.clone();
        let identity = p.identity.clone();
        self.outbox.push_back(match &p.ask {
            Ask::Issue { service, priority } => ClientMessage::Issue {
                request_id,
                service: service.clone(),
                priority: priority.clone(),
                identity,
            },
            Ask::CheckIn(booking) => ClientMessage::CheckIn {
                request_id,
                code: match booking {
                    Booking::Code(c) => Some(serde_json::Value::String(c.clone())),
                    Booking::Appointment(_) => None,
                },
                appointment: match booking {
                    Booking::Appointment(a) => Some(a.clone()),
                    Booking::Code(_) => None,
                },
                identity,
            },
        });
    }

    /// Drops the connection (if any) and waits a jittered backoff, which
    /// doubles for next time up to 10 s.
    fn back_off(&mut self, now: Instant) {
        if self.is_ready() {
            self.events.push_back(Event::Down);
        }
        self.hold_up_all();
        self.outbox.clear();
        let wait = self.backoff.mul_f64(self.rng.random_range(0.5..1.0));
        tracing::debug!(
            retry_in_ms = wait.as_millis() as u64,
            "waiting to reconnect"
        );
        self.phase = Phase::Waiting { until: now + wait };
        self.backoff = (self.backoff * 2).min(BACKOFF_MAX);
    }

    /// When `handle_timeout` must next be called. There is always a timer:
    /// the phase's (backoff, dial, welcome or silence), a request's deadline
    /// or its resend 1 s after `unavailable`.
    pub fn poll_timeout(&self) -> Instant {
        let phase = match self.phase {
            Phase::Waiting { until } => until,
            Phase::Dialing { give_up } => give_up,
            Phase::Greeting { heard, give_up, .. } => give_up.min(heard + SILENCE),
            Phase::Ready { heard, .. } => heard + SILENCE,
        };
        let issues = self
            .pending
            .iter()
            .map(|p| p.retry_at.map_or(p.deadline, |r| r.min(p.deadline)))
            .min();
        issues.map_or(phase, |d| d.min(phase))
    }

    /// Acts on every timer that is due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.expire_issues(now);
        self.retry_unavailable(now);
        match self.phase {
            Phase::Waiting { until } if now >= until => {
                self.phase = Phase::Dialing {
                    give_up: now + CONNECT_TIMEOUT,
                };
            }
            Phase::Dialing { give_up } if now >= give_up => self.on_disconnected(now, "timed out"),
            Phase::Greeting { give_up, .. } if now >= give_up => {
                self.on_disconnected(now, "no welcome in 5 s")
            }
            Phase::Greeting { heard, .. } | Phase::Ready { heard, .. }
                if now >= heard + SILENCE =>
            {
                self.on_disconnected(now, "no word from the server for 45 s")
            }
            _ => {}
        }
    }

    /// Forgets every issue past its deadline: it is answered `Timeout`, and
    /// an `issued` that comes later finds nothing to answer.
    fn expire_issues(&mut self, now: Instant) {
        while let Some(i) = self.pending.iter().position(|p| p.deadline <= now) {
            let request_id = self.pending.remove(i).request_id;
            tracing::warn!(request_id, "no answer in time; the request is forgotten");
            self.events.push_back(Event::Answer {
                request_id,
                answer: Err(IssueError::Timeout),
            });
        }
    }

    /// The next frame to send on the open connection, as JSON text.
    pub fn poll_transmit(&mut self) -> Option<String> {
        let msg = self.outbox.pop_front()?;
        match serde_json::to_string(&msg) {
            Ok(text) => Some(text),
            Err(e) => {
                tracing::error!(error = %e, "cannot write a frame; skipped");
                self.poll_transmit()
            }
        }
    }

    /// The next thing to report to the kiosk.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }
}
