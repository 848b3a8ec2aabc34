//! The kiosk's one loop: take a press, check the printer, ask the server for
//! a ticket (with a request id that is on disk first), print it exactly once.
//! While the printer cannot print, presses are refused with clear feedback.
//! While a press is held up (rule 107: the server answered `unavailable`,
//! or no connection carries it; the session sends it again) the touch page
//! shows a blinking "please wait" and the LED blinks; when no number can be
//! had by `issue_deadline_s` after the press, the out-of-service slip
//! (site, "Tạm ngưng cấp số, vui lòng thử lại", the time) is printed and
//! never a ticket for that press. A ticket the server does not know is
//! never printed. Print jobs from the server (rule
//! 88) print each `print_id` at most once, written down on disk first
//! (`printlog.rs`), as rule 67's reprint.
//!
//! §11 at the kiosk (rules 83, 84): a booking scanned or typed is checked
//! in and printed with `Hẹn HH:MM`; a scanned CCCD's two fields wait here,
//! in memory only, for the next press or check-in within `hold_s` (then
//! they are wiped), and a check-in refused with `identity_required` waits
//! as long for a CCCD scan and is tried again with it; a refusal of §11
//! prints a refusal slip, at most one per button a minute, and logs
//! `refused CODE`. Nothing of a CCCD is logged, written or shown.

use std::time::{Duration, Instant};

use luot_protocol::{Identity, PrinterStatus, Ticket, TicketStatus, valid_request_id};
use serde::Serialize;
use tokio::sync::{mpsc, watch};
use zeroize::Zeroize;

use crate::buttons::{Outcome, Press, Request};
use crate::config::KioskConfig;
use crate::leds::LedMode;
use crate::link::{Asked, Booking, IssueError, Issued, Link, PrintJob, Welcome};
use crate::printer::{Target, can_print, print_page, query_status};
use crate::printlog::{self, PrintLog};
use crate::refusal::{self, SlipLimit};
use crate::render::{
    OUT_OF_SERVICE_WORDS, RefusalView, Reprint, TicketView, render_out_of_service, render_refusal,
    render_ticket,
};
use crate::reqid::RequestIds;
use crate::scanner::{Scan, Unreadable, valid_code};

/// How long a press waits for the server (over reconnects and `unavailable`
/// answers) before the slip: rule 107's `issue_deadline_s`, 8 by default.
pub const ISSUE_DEADLINE: Duration = Duration::from_secs(8);
const STATUS_EVERY: Duration = Duration::from_secs(15);
const HEALTH_EVERY: Duration = Duration::from_secs(60);
/// How long a kiosk leaving at the end of its presses waits for its last
/// answers to print jobs to reach the socket.
const ANSWERS_SENT_WITHIN: Duration = Duration::from_secs(5);
/// How long a scanned CCCD waits for a press or check-in (rule 83's `hold_s`).
pub const HOLD: Duration = Duration::from_secs(30);

pub struct Settings {
    pub width: u32,
    pub footer: String,
    pub help: String,
    /// How long after a press (or check-in) the kiosk keeps trying before
    /// the out-of-service slip (`issue_deadline_s`, rule 107).
    pub issue_deadline: Duration,
    /// How long a scanned CCCD (or a check-in waiting for one) is kept.
    pub hold: Duration,
}

impl Settings {
    /// The daemon's settings from `kiosk.toml`.
    pub fn from_config(cfg: &KioskConfig) -> Settings {
        Settings {
            width: cfg.width_dots(),
            footer: cfg.site.footer.clone(),
            help: cfg.site.help.clone(),
            issue_deadline: cfg.issue_deadline(),
            hold: cfg.hold(),
        }
    }
}

#[derive(Default, Clone, Debug)]
pub struct Stats {
    pub printed: u64,
    pub refused: u64,
    pub out_of_service: u64,
    /// Print jobs printed (rule 88).
    pub jobs: u64,
    /// Presses and check-ins the server refused with a refusal of §11.
    pub refusals: u64,
}

/// What the touch page shows beside its buttons: whether a CCCD is held
/// (never any of its data), whether a check-in waits for one, whether a
/// press is held up (a blinking "please wait", rule 107), and the outcome
/// of the last press that did not come from the page itself.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Screen {
    pub cccd: bool,
    pub waiting_for_cccd: bool,
    pub please_wait: bool,
    pub notice: Option<Notice>,
}

/// An outcome to show once (`seq` tells the page it is new).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Notice {
    pub seq: u64,
    pub ok: bool,
    pub headline: Option<String>,
    pub message: String,
}

/// A scanned CCCD's two fields, until `until`; wiped when dropped.
struct Held {
    identity: Identity,
    until: tokio::time::Instant,
}

impl Drop for Held {
    fn drop(&mut self) {
        self.identity.id_number.zeroize();
        self.identity.birth_date.zeroize();
    }
}

/// A check-in refused with `identity_required`, tried again on a CCCD scan
/// until `until`.
struct Awaiting {
    booking: Booking,
    until: tokio::time::Instant,
}

pub struct Kiosk {
    pub link: Link,
    pub target: Target,
    pub settings: Settings,
    pub ids: RequestIds,
    pub led: watch::Sender<LedMode>,
    /// The print jobs taken on, on disk.
    pub jobs: PrintLog,
    printer: Option<PrinterStatus>,
    stats: Stats,
    started: Instant,
    held: Option<Held>,
    awaiting: Option<Awaiting>,
    slips: SlipLimit,
    screen: watch::Sender<Screen>,
    /// A press or check-in is held up (rule 107): "please wait".
    held_up: bool,
}

impl Kiosk {
    pub fn new(
        link: Link,
        target: Target,
        settings: Settings,
        ids: RequestIds,
        jobs: PrintLog,
        led: watch::Sender<LedMode>,
    ) -> Kiosk {
        Kiosk {
            link,
            target,
            settings,
            ids,
            jobs,
            led,
            printer: None,
            stats: Stats::default(),
            started: Instant::now(),
            held: None,
            awaiting: None,
            slips: SlipLimit::default(),
            screen: watch::channel(Screen::default()).0,
            held_up: false,
        }
    }

    /// What the touch page shows, as it changes.
    pub fn screen(&self) -> watch::Receiver<Screen> {
        self.screen.subscribe()
    }

    /// Runs until the presses end (end of standard input) or `stop` is set.
    /// At the end of the presses, print jobs already received are printed
    /// and answered first (as rule 32 has it for presses).
    pub async fn run(
        mut self,
        mut presses: mpsc::Receiver<Press>,
        mut stop: watch::Receiver<bool>,
    ) -> Stats {
        self.refresh_printer().await;
        // Under systemd (Type=notify, WatchdogSec=): ready now, alive on every status tick.
        let _ = sd_notify::notify(&[sd_notify::NotifyState::Ready]);
        let mut status_tick = tokio::time::interval(STATUS_EVERY);
        let mut health =
            tokio::time::interval_at(tokio::time::Instant::now() + HEALTH_EVERY, HEALTH_EVERY);
        let mut link_status = self.link.status.clone();
        let link = self.link.clone();
        loop {
            self.update_led();
            let expiry = self.next_expiry();
            let forget = async move {
                match expiry {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                press = presses.recv() => match press {
                    Some(p) => {
                        let Press { request, reply } = p;
                        let outcome = self.press(request).await;
                        match reply {
                            Some(r) => { let _ = r.send(outcome); }
                            None => self.notice(&outcome),
                        }
                    }
                    None => {
                        self.finish_jobs().await;
                        break;
                    }
                },
                job = link.next_job() => match job {
                    Some(job) => self.print_job(job).await,
                    None => break,
                },
                _ = status_tick.tick() => {
                    self.refresh_printer().await;
                    let _ = sd_notify::notify(&[sd_notify::NotifyState::Watchdog]);
                }
                _ = health.tick() => self.health(),
                () = forget => self.forget_expired(),
                changed = link_status.changed() => if changed.is_err() { break },
                _ = stop.changed() => break,
            }
        }
        let _ = self.led.send(LedMode::Off);
        self.held = None;
        self.awaiting = None;
        self.stats
    }

    /// One press of any kind, start to finish.
    pub async fn press(&mut self, request: Request) -> Outcome {
        match request {
            Request::Issue { service, priority } => {
                self.handle(&service, priority.as_deref()).await
            }
            Request::Scan(Scan::Cccd(identity)) => self.cccd(identity).await,
            Request::Scan(Scan::Booking(id)) => self.check_in(Booking::Appointment(id)).await,
            Request::Scan(Scan::Unreadable(why)) => {
                tracing::warn!(reason = why.reason(), "scan refused");
                Outcome::Unreadable(why.message().into())
            }
            Request::Code(code) if valid_code(&code) => self.check_in(Booking::Code(code)).await,
            Request::Code(_) => {
                let why = Unreadable::BadCode;
                tracing::warn!(reason = why.reason(), "typed booking code refused");
                Outcome::Unreadable(why.message().into())
            }
        }
    }

    /// A scanned CCCD: held for the next press or check-in; a check-in
    /// that waits for one is tried again with it at once.
    async fn cccd(&mut self, identity: Identity) -> Outcome {
        let now = tokio::time::Instant::now();
        self.held = Some(Held {
            identity,
            until: now + self.settings.hold,
        });
        tracing::info!(
            hold_s = self.settings.hold.as_secs(),
            "CCCD scanned; held in memory for the next press or check-in"
        );
        if let Some(a) = self.awaiting.take()
            && a.until > now
        {
            tracing::info!("checking in again with the scanned CCCD");
            return self.check_in(a.booking).await;
        }
        self.show();
        Outcome::IdentityHeld
    }

    /// The held CCCD's fields, if any and still within `hold_s`; taken, so
    /// they go with one request only.
    fn take_identity(&mut self) -> Option<Identity> {
        let mut held = self.held.take()?;
        if held.until <= tokio::time::Instant::now() {
            return None;
        }
        let identity = Identity {
            id_number: std::mem::take(&mut held.identity.id_number),
            birth_date: std::mem::take(&mut held.identity.birth_date),
        };
        self.show();
        Some(identity)
    }

    fn next_expiry(&self) -> Option<tokio::time::Instant> {
        let held = self.held.as_ref().map(|h| h.until);
        let awaiting = self.awaiting.as_ref().map(|a| a.until);
        match (held, awaiting) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Wipes a CCCD and drops a waiting check-in once `hold_s` has passed.
    fn forget_expired(&mut self) {
        let now = tokio::time::Instant::now();
        if self.held.as_ref().is_some_and(|h| h.until <= now) {
            self.held = None;
            tracing::info!("the scanned CCCD was not used within hold_s; forgotten");
        }
        if self.awaiting.as_ref().is_some_and(|a| a.until <= now) {
            self.awaiting = None;
            tracing::info!("no CCCD was scanned within hold_s; the check-in stopped waiting");
        }
        self.show();
    }

    /// Tells the touch page whether a CCCD is held or awaited.
    fn show(&self) {
        let cccd = self.held.is_some();
        let waiting = self.awaiting.is_some();
        self.screen.send_if_modified(|s| {
            let changed = s.cccd != cccd || s.waiting_for_cccd != waiting;
            s.cccd = cccd;
            s.waiting_for_cccd = waiting;
            changed
        });
    }

    /// Shows the outcome of a press that did not come from the touch page.
    fn notice(&self, outcome: &Outcome) {
        let (ok, headline, message) = outcome.describe();
        self.screen.send_modify(|s| {
            let seq = s.notice.as_ref().map_or(1, |n| n.seq + 1);
            s.notice = Some(Notice {
                seq,
                ok,
                headline,
                message,
            });
        });
    }

    fn update_led(&self) {
        let ready = self.link.connected() && self.printer.is_some_and(can_print) && !self.held_up;
        self.led.send_if_modified(|m| {
            let want = if ready {
                LedMode::Ready
            } else {
                LedMode::Attention
            };
            let changed = *m != want;
            *m = want;
            changed
        });
    }

    fn health(&self) {
        tracing::info!(
            server = if self.link.connected() { "connected" } else { "unreachable" },
            printer = ?self.printer,
            printed = self.stats.printed,
            refused = self.stats.refused,
            out_of_service = self.stats.out_of_service,
            up_s = self.started.elapsed().as_secs(),
            "health"
        );
    }

    /// Reads the printer's status; reports changes to the server.
    async fn refresh_printer(&mut self) -> PrinterStatus {
        let target = self.target.clone();
        let s = tokio::task::spawn_blocking(move || query_status(&target))
            .await
            .unwrap_or(PrinterStatus::Offline);
        if self.printer != Some(s) {
            if can_print(s) {
                tracing::info!(printer = ?s, "printer status");
            } else {
                tracing::warn!(printer = ?s, "printer cannot print; presses are refused until it can");
            }
            self.printer = Some(s);
            self.link.printer(s);
        }
        s
    }

    async fn print(&mut self, page: image::GrayImage) -> Result<(), String> {
        let target = self.target.clone();
        let r = tokio::task::spawn_blocking(move || print_page(&target, &page))
            .await
            .unwrap_or_else(|e| Err(e.to_string()));
        if r.is_err() && self.printer != Some(PrinterStatus::Offline) {
            self.printer = Some(PrinterStatus::Offline);
            self.link.printer(PrinterStatus::Offline);
        }
        r
    }

    /// One press, start to finish.
    pub async fn handle(&mut self, service: &str, priority: Option<&str>) -> Outcome {
        let status = self.refresh_printer().await;
        if !can_print(status) {
            self.stats.refused += 1;
            tracing::warn!(service, printer = ?status, "press refused: the printer cannot print");
            self.update_led();
            return Outcome::PrinterNotReady(format!(
                "{}. {}",
                printer_trouble(status),
                self.settings.help
            ));
        }
        let request_id = match self.ids.next_id() {
            Ok(id) => id,
            Err(e) => {
                tracing::error!(error = %e, "cannot save the request counter; refusing the press");
                return self
                    .out_of_service(service, "request counter not writable")
                    .await;
            }
        };
        // A press is the newest person at the kiosk: a check-in still
        // waiting for a CCCD stops waiting.
        self.awaiting = None;
        let identity = self.take_identity();
        let asked = self
            .link
            .issue(
                &request_id,
                service,
                priority,
                identity,
                self.settings.issue_deadline,
            )
            .await;
        let answer = self.wait_for(asked).await;
        self.show();
        match answer {
            Ok(issued) => self.print_ticket(issued, &request_id).await,
            Err(IssueError::Refused { code, extra, .. })
                if refusal::headline(&code, &extra).is_some() =>
            {
                let welcome = self.link.welcome().unwrap_or_default();
                let key = format!("button {service} {}", priority.unwrap_or(""));
                self.refused(&code, &extra, Some(welcome.service_name(service)), &key)
                    .await
            }
            Err(e) => self.out_of_service(service, &e.to_string()).await,
        }
    }

    /// A booking checked in (§11): printer check, a request id on disk,
    /// `check_in` with a held CCCD if any; its ticket printed with `Hẹn`.
    pub async fn check_in(&mut self, booking: Booking) -> Outcome {
        self.awaiting = None;
        let status = self.refresh_printer().await;
        if !can_print(status) {
            self.stats.refused += 1;
            tracing::warn!(printer = ?status, "check-in refused: the printer cannot print");
            self.update_led();
            self.show();
            return Outcome::PrinterNotReady(format!(
                "{}. {}",
                printer_trouble(status),
                self.settings.help
            ));
        }
        let request_id = match self.ids.next_id() {
            Ok(id) => id,
            Err(e) => {
                tracing::error!(error = %e, "cannot save the request counter; refusing the check-in");
                self.show();
                return self
                    .out_of_service("(check-in)", "request counter not writable")
                    .await;
            }
        };
        let identity = self.take_identity();
        let with_identity = identity.is_some();
        let asked = self
            .link
            .check_in(
                &request_id,
                booking.clone(),
                identity,
                self.settings.issue_deadline,
            )
            .await;
        let answer = self.wait_for(asked).await;
        let outcome = match answer {
            Ok(issued) => self.print_ticket(issued, &request_id).await,
            Err(IssueError::Refused { code, extra, .. })
                if refusal::headline(&code, &extra).is_some() =>
            {
                if code == "identity_required" && !with_identity {
                    self.awaiting = Some(Awaiting {
                        booking: booking.clone(),
                        until: tokio::time::Instant::now() + self.settings.hold,
                    });
                    tracing::info!(
                        hold_s = self.settings.hold.as_secs(),
                        "the booking needs a CCCD; a scan within hold_s checks it in"
                    );
                }
                let key = match &booking {
                    Booking::Code(c) => format!("code {c} {code}"),
                    Booking::Appointment(a) => format!("booking {a} {code}"),
                };
                self.refused(&code, &extra, None, &key).await
            }
            Err(e) => self.out_of_service("(check-in)", &e.to_string()).await,
        };
        self.show();
        outcome
    }

    /// Waits for the one answer to an issue or a check-in (the same wait for
    /// both). While the session reports it held up (rule 107: answered
    /// `unavailable`, or no connection; it is sent again meanwhile) the touch
    /// page blinks "please wait" and so does the LED; the deadline ends it
    /// with `Timeout`, and a late answer never reaches this press.
    async fn wait_for(&mut self, asked: Asked) -> Result<Issued, IssueError> {
        let (answer, mut held_up) = asked.split();
        tokio::pin!(answer);
        let result = loop {
            tokio::select! {
                a = &mut answer => break a,
                changed = held_up.changed() => match changed {
                    Ok(()) => {
                        let held = *held_up.borrow_and_update();
                        self.please_wait(held);
                    }
                    // Answered: the answer is on its way.
                    Err(_) => break answer.await,
                },
            }
        };
        self.please_wait(false);
        result
    }

    /// Shows (or stops showing) "please wait" on the touch page and the LED.
    fn please_wait(&mut self, on: bool) {
        if self.held_up != on {
            if on {
                tracing::info!("the press is held up; please wait");
            }
            self.held_up = on;
        }
        self.screen.send_if_modified(|s| {
            let changed = s.please_wait != on;
            s.please_wait = on;
            changed
        });
        self.update_led();
    }

    /// A refusal of §11 (rule 84): `refused CODE` in the log, and a slip
    /// unless this button (or booking) had one within the minute.
    async fn refused(
        &mut self,
        code: &str,
        extra: &serde_json::Map<String, serde_json::Value>,
        service_name: Option<String>,
        key: &str,
    ) -> Outcome {
        self.stats.refusals += 1;
        let welcome = self.link.welcome().unwrap_or_default();
        let headline = refusal::headline(code, extra).unwrap_or_default();
        let today = welcome
            .server_now(tokio::time::Instant::now().into_std())
            .map(|t| t.date_naive());
        let comeback = refusal::comeback(extra, today);
        let slip = self
            .slips
            .allow(key, tokio::time::Instant::now().into_std());
        tracing::info!(
            service = service_name.as_deref().unwrap_or(""),
            slip,
            comeback = comeback.as_deref().unwrap_or(""),
            "refused {code}"
        );
        if slip {
            let view = RefusalView {
                site_name: welcome.site_name.clone(),
                service_name,
                headline: headline.clone(),
                comeback: comeback.clone(),
            };
            let page = render_refusal(&view, self.settings.width);
            if let Err(e) = self.print(page).await {
                tracing::error!(error = %e, "the refusal slip could not be printed");
            }
        }
        Outcome::Refused {
            code: code.to_string(),
            headline,
            comeback,
        }
    }

    /// Prints the server's ticket (with `Hẹn` for a check-in).
    async fn print_ticket(&mut self, issued: Issued, request_id: &str) -> Outcome {
        let Issued { ticket, slot_at } = issued;
        let welcome = self.link.welcome().unwrap_or_default();
        let view = TicketView {
            site_name: welcome.site_name.clone(),
            service_name: welcome.service_name(&ticket.service),
            number: ticket.number.clone(),
            priority: ticket.priority.clone(),
            issued_at: ticket.issued_at.clone(),
            ahead: Some(ticket.position.unwrap_or(1).saturating_sub(1)),
            url: ticket_url(&welcome, &ticket),
            footer: self.settings.footer.clone(),
            reprint: None,
            slot_at,
        };
        let page = render_ticket(&view, self.settings.width);
        let service = ticket.service.as_str();
        match self.print(page).await {
            Ok(()) => {
                self.stats.printed += 1;
                let checked_in = ticket.appointment.is_some();
                tracing::info!(number = %ticket.number, id = %ticket.id, service, request_id = %request_id, checked_in, "ticket printed");
                Outcome::Printed {
                    number: ticket.number,
                }
            }
            Err(e) => {
                self.stats.refused += 1;
                tracing::error!(number = %ticket.number, id = %ticket.id, error = %e, "ticket issued but the printer failed");
                Outcome::PrinterNotReady(format!(
                    "Máy in gặp sự cố; số của bạn là {}. {}",
                    ticket.number, self.settings.help
                ))
            }
        }
    }

    /// Prints the jobs already received, then waits a little for their
    /// answers to reach the server.
    async fn finish_jobs(&mut self) {
        while let Some(job) = self.link.try_job() {
            self.print_job(job).await;
        }
        self.link.sync(ANSWERS_SENT_WITHIN).await;
    }

    /// One print job (rule 88): printed at most once per `print_id`, and
    /// answered every time the server sends it.
    pub async fn print_job(&mut self, job: PrintJob) {
        let id = job.print_id.clone();
        if let Some(before) = self.jobs.outcome(&id) {
            let ok = before == printlog::Outcome::Printed;
            tracing::info!(print_id = %id, outcome = ?before, "print job taken on before; answered again, not printed again");
            self.link.printed(&id, ok);
            return;
        }
        if !valid_request_id(&id) {
            tracing::warn!(print_id = %id, "a print job with a malformed print_id; refused");
            self.link.printed(&id, false);
            return;
        }
        let status = self.refresh_printer().await;
        if !can_print(status) {
            tracing::warn!(print_id = %id, printer = ?status, "print job refused: the printer cannot print");
            self.link.printed(&id, false);
            return;
        }
        // On disk before the page goes out: never printed twice.
        if let Err(e) = self.jobs.claim(&id) {
            tracing::error!(print_id = %id, error = %e, "cannot write the print job down; not printing it");
            self.link.printed(&id, false);
            return;
        }
        let welcome = self.link.welcome().unwrap_or_default();
        let view = reprint_view(&job, &welcome, &self.settings.footer);
        let page = render_ticket(&view, self.settings.width);
        let ok = match self.print(page).await {
            Ok(()) => {
                self.stats.jobs += 1;
                tracing::info!(print_id = %id, number = %job.ticket.number, id = %job.ticket.id, "printed");
                true
            }
            Err(e) => {
                tracing::error!(print_id = %id, number = %job.ticket.number, error = %e, "print job failed at the printer");
                false
            }
        };
        if let Err(e) = self.jobs.finish(&id, ok) {
            tracing::warn!(print_id = %id, error = %e, "cannot write the print job's outcome down");
        }
        self.link.printed(&id, ok);
    }

    async fn out_of_service(&mut self, service: &str, why: &str) -> Outcome {
        self.stats.out_of_service += 1;
        tracing::warn!(
            service,
            reason = why,
            "no number could be had; printing the out-of-service slip"
        );
        let welcome = self.link.welcome().unwrap_or_default();
        let at = welcome
            .server_now(tokio::time::Instant::now().into_std())
            .unwrap_or_else(|| chrono::Local::now().fixed_offset());
        let slip = render_out_of_service(&welcome.site_name, &at, self.settings.width);
        if let Err(e) = self.print(slip).await {
            tracing::error!(error = %e, "the out-of-service slip could not be printed either");
        }
        Outcome::OutOfService(format!("{OUT_OF_SERVICE_WORDS}. {}", self.settings.help))
    }
}

/// What is wrong with a printer that cannot print, for the person.
fn printer_trouble(status: PrinterStatus) -> &'static str {
    match status {
        PrinterStatus::PaperOut => "Máy in hết giấy",
        PrinterStatus::CoverOpen => "Nắp máy in đang mở",
        _ => "Máy in không hoạt động",
    }
}

/// `{public_url}/t/{id}`: the live ticket page the QR code opens.
fn ticket_url(welcome: &Welcome, ticket: &Ticket) -> String {
    format!(
        "{}/t/{}",
        welcome.public_url.trim_end_matches('/'),
        ticket.id
    )
}

/// A print job's ticket. A `/print` job as rule 67 prints it: §7's ticket
/// as it is now (people ahead only while waiting), "In lại" and the time,
/// and for a visit where to go now. A new ticket's `print_at` job (rule
/// 88, `reprint: false`) as the kiosk prints its own issue: §7's ticket with
/// the people ahead, and `Hẹn` for a check-in.
pub fn reprint_view(job: &PrintJob, welcome: &Welcome, footer: &str) -> TicketView {
    let t = &job.ticket;
    let ahead = t.position.unwrap_or(1).saturating_sub(1);
    let (ahead, reprint) = if job.reprint {
        let reprint = Reprint {
            at: job
                .at
                .clone()
                .unwrap_or_else(|| chrono::Local::now().to_rfc3339()),
            places: places_now(t),
        };
        (
            (t.status == TicketStatus::Waiting).then_some(ahead),
            Some(reprint),
        )
    } else {
        (Some(ahead), None)
    };
    TicketView {
        site_name: welcome.site_name.clone(),
        service_name: job
            .service_name
            .clone()
            .unwrap_or_else(|| welcome.service_name(&t.service)),
        number: t.number.clone(),
        priority: t.priority.clone(),
        issued_at: t.issued_at.clone(),
        ahead,
        url: ticket_url(welcome, t),
        footer: footer.to_string(),
        slot_at: job.slot_at.clone(),
        reprint,
    }
}

/// Rule 57's current places of a visit: the `place` of each open step of
/// the lowest stage that has one, in `steps` order; none without a visit.
pub fn places_now(t: &Ticket) -> Vec<String> {
    let Some(visit) = &t.visit else {
        return Vec::new();
    };
    let open = || visit.steps.iter().filter(|s| s.status.is_open());
    let Some(stage) = open().map(|s| s.stage).min() else {
        return Vec::new();
    };
    open()
        .filter(|s| s.stage == stage)
        .map(|s| s.place.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::printer::{CaptureDriver, STATUS_COVER_OPEN, STATUS_PAPER_OUT};

    fn kiosk(capture: &CaptureDriver, dir: &std::path::Path) -> (Kiosk, watch::Receiver<LedMode>) {
        // Nothing listens on port 9 of loopback: the server is unreachable.
        let link = Link::start("ws://127.0.0.1:9/api/v1/ws".into(), "t".into());
        let (led, led_rx) = watch::channel(LedMode::Off);
        let settings = Settings {
            width: 576,
            footer: "Vui lòng chờ gọi số".into(),
            help: "Xin mời đến Quầy Tiếp đón.".into(),
            issue_deadline: Duration::from_millis(800),
            hold: HOLD,
        };
        let ids = RequestIds::open(dir).unwrap();
        let jobs = PrintLog::open(dir).unwrap();
        (
            Kiosk::new(
                link,
                Target::Capture(capture.clone()),
                settings,
                ids,
                jobs,
                led,
            ),
            led_rx,
        )
    }

    fn job(print_id: &str, status: TicketStatus) -> PrintJob {
        PrintJob {
            print_id: print_id.into(),
            ticket: Ticket {
                id: "tk_1".into(),
                number: "A015".into(),
                service: "kham-noi".into(),
                priority: None,
                status,
                counter: None,
                issued_at: "2026-11-22T07:31:02+07:00".into(),
                called_at: None,
                finished_at: None,
                day: "2026-11-22".into(),
                position: (status == TicketStatus::Waiting).then_some(3),
                estimated_wait_s: None,
                calls: 0,
                reason: None,
                visit: None,
                appointment: None,
                external_ref: None,
            },
            service_name: Some("Khám Nội".into()),
            at: Some("2026-11-22T09:12:40+07:00".into()),
            slot_at: None,
            reprint: true,
        }
    }

    /// Tickets (pages ending in a cut) the printer got.
    fn cuts(capture: &CaptureDriver) -> usize {
        capture
            .bytes()
            .windows(4)
            .filter(|w| *w == crate::printer::PARTIAL_CUT)
            .count()
    }

    #[tokio::test]
    async fn a_print_id_prints_once_even_across_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let capture = CaptureDriver::new();
        let (mut k, _led) = kiosk(&capture, dir.path());
        k.print_job(job("pr_1", TicketStatus::Waiting)).await;
        assert_eq!(cuts(&capture), 1, "printed");
        // Sent again (after a reconnect): answered, not printed again.
        k.print_job(job("pr_1", TicketStatus::Waiting)).await;
        assert_eq!(cuts(&capture), 1, "not printed twice");
        assert_eq!(k.stats.jobs, 1);
        // Another job prints.
        k.print_job(job("pr_2", TicketStatus::Called)).await;
        assert_eq!(cuts(&capture), 2);
        drop(k);
        // A restarted kiosk remembers both.
        let (mut k, _led) = kiosk(&capture, dir.path());
        k.print_job(job("pr_1", TicketStatus::Waiting)).await;
        k.print_job(job("pr_2", TicketStatus::Called)).await;
        assert_eq!(cuts(&capture), 2, "a restart never prints a job twice");
        assert_eq!(k.stats.jobs, 0);
    }

    #[tokio::test]
    async fn a_job_at_a_printer_that_cannot_print_is_refused_and_not_taken_on() {
        let dir = tempfile::tempdir().unwrap();
        let capture = CaptureDriver::new();
        let (mut k, _led) = kiosk(&capture, dir.path());
        capture.set_status(STATUS_PAPER_OUT);
        k.print_job(job("pr_1", TicketStatus::Waiting)).await;
        assert!(capture.bytes().is_empty(), "nothing printed");
        assert_eq!(k.jobs.outcome("pr_1"), None, "not written down");
        // A malformed print_id is never printed.
        capture.set_status(crate::printer::STATUS_OK);
        k.print_job(job("pr 1\nx", TicketStatus::Waiting)).await;
        assert!(capture.bytes().is_empty());
    }

    /// A stand-in for luot-server on loopback: websockets accepted one at
    /// a time, frames sent and read as luot-protocol's types.
    mod stand_in {
        use std::time::Duration;

        use futures_util::{SinkExt, StreamExt};
        use luot_protocol::{ClientMessage, ServerMessage, WelcomeService, WelcomeSite};
        use tokio::net::{TcpListener, TcpStream};
        use tokio_tungstenite::WebSocketStream;
        use tokio_tungstenite::tungstenite::Message;

        pub struct Server {
            listener: TcpListener,
        }

        pub struct Conn(WebSocketStream<TcpStream>);

        impl Server {
            pub async fn bind() -> Server {
                Server {
                    listener: TcpListener::bind("127.0.0.1:0").await.unwrap(),
                }
            }

            pub fn url(&self) -> String {
                format!("ws://{}/api/v1/ws", self.listener.local_addr().unwrap())
            }

            /// The kiosk's next connection, after its hello and our welcome.
            pub async fn welcome(&self) -> Conn {
                let accept = async {
                    let (tcp, _) = self.listener.accept().await.unwrap();
                    tokio_tungstenite::accept_async(tcp).await.unwrap()
                };
                let ws = tokio::time::timeout(Duration::from_secs(20), accept)
                    .await
                    .expect("the kiosk (re)connects");
                let mut c = Conn(ws);
                let hello = c.recv(|m| matches!(m, ClientMessage::Hello { .. })).await;
                assert!(matches!(hello, ClientMessage::Hello { .. }));
                c.send(&ServerMessage::Welcome {
                    role: "kiosk".into(),
                    server_time: "2026-11-22T09:00:00+07:00".into(),
                    site: WelcomeSite {
                        name: "Bệnh viện Thử nghiệm".into(),
                        public_url: "http://luot.test".into(),
                    },
                    services: vec![WelcomeService {
                        id: "kham-noi".into(),
                        name: "Khám Nội".into(),
                        prefix: "A".into(),
                        capacity: Default::default(),
                    }],
                    name: Some("kiosk-sanh-a".into()),
                })
                .await;
                c
            }
        }

        impl Conn {
            pub async fn send(&mut self, m: &ServerMessage) {
                let text = serde_json::to_string(m).unwrap();
                self.0.send(Message::text(text)).await.unwrap();
            }

            /// The next frame from the kiosk that `want` takes; others are
            /// skipped.
            pub async fn recv(&mut self, want: impl Fn(&ClientMessage) -> bool) -> ClientMessage {
                let next = async {
                    loop {
                        match self.0.next().await {
                            Some(Ok(Message::Text(t))) => {
                                let m: ClientMessage = serde_json::from_str(&t).unwrap();
                                if want(&m) {
                                    return m;
                                }
                            }
                            Some(Ok(_)) => {}
                            other => panic!("the kiosk's connection ended: {other:?}"),
                        }
                    }
                };
                tokio::time::timeout(Duration::from_secs(20), next)
                    .await
                    .expect("the kiosk sent what was awaited")
            }

            /// The kiosk's answer to a print job.
            pub async fn printed(&mut self) -> (String, bool) {
                match self
                    .recv(|m| matches!(m, ClientMessage::Printed { .. }))
                    .await
                {
                    ClientMessage::Printed { print_id, ok } => (print_id, ok),
                    _ => unreachable!(),
                }
            }
        }
    }

    fn print_frame(job: &PrintJob) -> luot_protocol::ServerMessage {
        luot_protocol::ServerMessage::Print {
            print_id: job.print_id.clone(),
            ticket: job.ticket.clone(),
            service_name: job.service_name.clone(),
            at: job.at.clone(),
            slot_at: job.slot_at.clone(),
            reprint: job.reprint,
        }
    }

    /// A running kiosk daemon with `target` and a link to `url`; the sender
    /// keeps its presses open, the watch stops it.
    fn run_kiosk(
        url: String,
        target: Target,
        dir: &std::path::Path,
    ) -> (
        mpsc::Sender<Press>,
        watch::Sender<bool>,
        tokio::task::JoinHandle<Stats>,
    ) {
        let r = start_kiosk(url, target, dir, HOLD);
        (r.presses, r.stop, r.handle)
    }

    struct Running {
        presses: mpsc::Sender<Press>,
        stop: watch::Sender<bool>,
        handle: tokio::task::JoinHandle<Stats>,
        screen: watch::Receiver<Screen>,
        led: watch::Receiver<LedMode>,
    }

    fn start_kiosk(url: String, target: Target, dir: &std::path::Path, hold: Duration) -> Running {
        let settings = Settings {
            width: 576,
            footer: "Vui lòng chờ gọi số".into(),
            help: "Xin mời đến Quầy Tiếp đón.".into(),
            issue_deadline: ISSUE_DEADLINE,
            hold,
        };
        start_with(url, target, dir, settings)
    }

    fn start_with(
        url: String,
        target: Target,
        dir: &std::path::Path,
        settings: Settings,
    ) -> Running {
        let link = Link::start(url, "t".into());
        let (led, led_rx) = watch::channel(LedMode::Off);
        let ids = RequestIds::open(dir).unwrap();
        let jobs = PrintLog::open(dir).unwrap();
        let k = Kiosk::new(link, target, settings, ids, jobs, led);
        let screen = k.screen();
        let (presses, presses_rx) = mpsc::channel(4);
        let (stop, stop_rx) = watch::channel(false);
        Running {
            presses,
            stop,
            handle: tokio::spawn(k.run(presses_rx, stop_rx)),
            screen,
            led: led_rx,
        }
    }

    #[tokio::test]
    async fn a_job_sent_again_after_a_reconnect_is_answered_again_and_printed_once() {
        let dir = tempfile::tempdir().unwrap();
        let capture = CaptureDriver::new();
        let server = stand_in::Server::bind().await;
        let (_presses, stop, kiosk) =
            run_kiosk(server.url(), Target::Capture(capture.clone()), dir.path());
        let first = job("pr_1", TicketStatus::Waiting);

        let mut c = server.welcome().await;
        c.send(&print_frame(&first)).await;
        assert_eq!(c.printed().await, ("pr_1".to_string(), true));
        assert_eq!(cuts(&capture), 1, "printed");
        // The connection drops (say the answer never reached the server):
        // after the next hello the server sends the job again.
        drop(c);
        let mut c = server.welcome().await;
        c.send(&print_frame(&first)).await;
        assert_eq!(
            c.printed().await,
            ("pr_1".to_string(), true),
            "answered again, from what the kiosk wrote down"
        );
        assert_eq!(cuts(&capture), 1, "not printed a second time");
        // A new job on the new connection prints.
        c.send(&print_frame(&job("pr_2", TicketStatus::Called)))
            .await;
        assert_eq!(c.printed().await, ("pr_2".to_string(), true));
        assert_eq!(cuts(&capture), 2);
        let pages = capture.bytes();
        stop.send(true).unwrap();
        let stats = kiosk.await.unwrap();
        assert_eq!(stats.jobs, 2, "two jobs printed, one of them sent twice");
        assert_eq!(
            capture.bytes(),
            pages,
            "nothing more printed on the way out"
        );
    }

    #[tokio::test]
    async fn a_printer_out_of_paper_or_offline_answers_not_printed() {
        use luot_protocol::ClientMessage;
        let dir = tempfile::tempdir().unwrap();
        let capture = CaptureDriver::new();
        capture.set_status(STATUS_PAPER_OUT);
        let server = stand_in::Server::bind().await;
        let (_presses, stop, kiosk) =
            run_kiosk(server.url(), Target::Capture(capture.clone()), dir.path());
        let mut c = server.welcome().await;
        // The server learns the printer's state after the welcome (so it
        // answers `kiosk_unavailable` itself), and a job that comes anyway
        // is answered `ok: false`, not printed, not written down.
        let status = c
            .recv(|m| matches!(m, ClientMessage::DeviceStatus { .. }))
            .await;
        assert_eq!(
            status,
            ClientMessage::DeviceStatus {
                printer: PrinterStatus::PaperOut
            }
        );
        c.send(&print_frame(&job("pr_1", TicketStatus::Waiting)))
            .await;
        assert_eq!(c.printed().await, ("pr_1".to_string(), false));
        assert!(capture.bytes().is_empty(), "nothing printed");
        // Paper is back: a later job (or the same one, were it sent again)
        // prints, since the refusal was not written down as taken on.
        capture.set_status(crate::printer::STATUS_OK);
        c.send(&print_frame(&job("pr_1", TicketStatus::Waiting)))
            .await;
        assert_eq!(c.printed().await, ("pr_1".to_string(), true));
        assert_eq!(cuts(&capture), 1);
        stop.send(true).unwrap();
        kiosk.await.unwrap();

        // A printer that cannot be reached at all: offline, answered `ok: false`.
        let dir = tempfile::tempdir().unwrap();
        let server = stand_in::Server::bind().await;
        let offline = Target::parse("tcp:127.0.0.1:9").unwrap();
        let (_presses, stop, kiosk) = run_kiosk(server.url(), offline, dir.path());
        let mut c = server.welcome().await;
        let status = c
            .recv(|m| matches!(m, ClientMessage::DeviceStatus { .. }))
            .await;
        assert_eq!(
            status,
            ClientMessage::DeviceStatus {
                printer: PrinterStatus::Offline
            }
        );
        c.send(&print_frame(&job("pr_9", TicketStatus::Waiting)))
            .await;
        assert_eq!(c.printed().await, ("pr_9".to_string(), false));
        stop.send(true).unwrap();
        let stats = kiosk.await.unwrap();
        assert_eq!(stats.jobs, 0);
    }

    #[test]
    fn a_reprint_shows_people_ahead_only_while_waiting_and_where_to_go() {
        use luot_protocol::{Step, Visit};
        let welcome = Welcome {
            site_name: "Bệnh viện".into(),
            public_url: "http://luot.test/".into(),
            services: vec![],
            server_time: None,
        };
        let v = reprint_view(
            &job("pr_1", TicketStatus::Waiting),
            &welcome,
            "Vui lòng chờ",
        );
        assert_eq!(v.ahead, Some(2), "position 3: two ahead");
        assert_eq!(v.url, "http://luot.test/t/tk_1");
        assert_eq!(
            v.service_name, "Khám Nội",
            "the server's name, not a button's"
        );
        let r = v.reprint.unwrap();
        assert_eq!(r.at, "2026-11-22T09:12:40+07:00");
        assert!(r.places.is_empty(), "no visit: no places");

        let mut called = job("pr_2", TicketStatus::Called);
        let step = |stage: u32, place: &str, status: TicketStatus| Step {
            stage,
            service: "x".into(),
            counter: None,
            place: place.into(),
            returning: false,
            status,
            busy: false,
            waiting_since: None,
            first_joined_at: None,
            first_called_at: None,
            called_at: None,
            finished_at: None,
            calls: 0,
            reason: None,
            position: None,
            estimated_wait_s: None,
        };
        called.ticket.visit = Some(Visit {
            steps: vec![
                step(1, "Quầy 2", TicketStatus::Done),
                step(2, "Phòng 38", TicketStatus::Called),
                step(2, "Phòng 12", TicketStatus::Cancelled),
                step(2, "Lấy mẫu xét nghiệm", TicketStatus::Waiting),
                step(3, "Phòng 13", TicketStatus::Pending),
            ],
        });
        let v = reprint_view(&called, &welcome, "");
        assert_eq!(v.ahead, None, "not waiting: no people ahead");
        assert_eq!(
            v.reprint.unwrap().places,
            ["Phòng 38", "Lấy mẫu xét nghiệm"],
            "the open steps of the lowest open stage"
        );
        let mut ended = called.ticket.clone();
        for s in &mut ended.visit.as_mut().unwrap().steps {
            s.status = TicketStatus::Done;
        }
        assert!(places_now(&ended).is_empty());
    }

    #[test]
    fn a_print_at_job_prints_the_plain_ticket_with_hen_for_a_check_in() {
        let welcome = Welcome {
            site_name: "Bệnh viện".into(),
            public_url: "http://luot.test".into(),
            services: vec![],
            server_time: None,
        };
        let mut checked_in = job("pr_1", TicketStatus::Waiting);
        checked_in.reprint = false;
        checked_in.slot_at = Some("2026-11-22T08:30:00+07:00".into());
        let v = reprint_view(&checked_in, &welcome, "Vui lòng chờ");
        let plain = TicketView {
            site_name: "Bệnh viện".into(),
            service_name: "Khám Nội".into(),
            number: "A015".into(),
            priority: None,
            issued_at: "2026-11-22T07:31:02+07:00".into(),
            ahead: Some(2),
            url: "http://luot.test/t/tk_1".into(),
            footer: "Vui lòng chờ".into(),
            reprint: None,
            slot_at: Some("2026-11-22T08:30:00+07:00".into()),
        };
        assert_eq!(v, plain, "§7's ticket with Hẹn 08:30, not In lại");
        let mut reprint = checked_in.clone();
        reprint.reprint = true;
        let r = reprint_view(&reprint, &welcome, "Vui lòng chờ");
        assert!(
            render_ticket(&r, 576) != render_ticket(&v, 576),
            "the two kinds of job print differently"
        );
    }

    #[tokio::test]
    async fn unreachable_server_gives_a_slip_not_a_ticket() {
        let dir = tempfile::tempdir().unwrap();
        let capture = CaptureDriver::new();
        let (mut k, led) = kiosk(&capture, dir.path());
        let t0 = Instant::now();
        let outcome = k.handle("kham-noi", None).await;
        assert!(
            matches!(outcome, Outcome::OutOfService(ref m) if m.contains("Quầy Tiếp đón")),
            "{outcome:?}"
        );
        assert!(
            t0.elapsed() >= Duration::from_millis(800),
            "it retried for a while first"
        );
        // A slip was printed, and it is not a ticket (no QR code).
        let bytes = capture.bytes();
        assert!(bytes.windows(3).any(|w| w == [0x1D, b'v', b'0']));
        k.update_led();
        assert_eq!(
            *led.borrow(),
            LedMode::Attention,
            "the LED blinks while offline"
        );
        assert_eq!(k.stats.out_of_service, 1);
        assert_eq!(k.stats.printed, 0);
    }

    #[tokio::test]
    async fn a_printer_that_cannot_print_refuses_before_asking_the_server() {
        let dir = tempfile::tempdir().unwrap();
        let capture = CaptureDriver::new();
        let (mut k, _led) = kiosk(&capture, dir.path());
        for (status, words) in [
            (STATUS_PAPER_OUT, "hết giấy"),
            (STATUS_COVER_OPEN, "Nắp máy in"),
        ] {
            capture.set_status(status);
            let t0 = Instant::now();
            let outcome = k.handle("kham-noi", None).await;
            assert!(
                matches!(outcome, Outcome::PrinterNotReady(ref m) if m.contains(words)),
                "{outcome:?}"
            );
            assert!(t0.elapsed() < Duration::from_millis(500), "refused at once");
        }
        assert!(capture.bytes().is_empty(), "nothing printed");
        // No request id was used up by refused presses.
        let next = k.ids.next_id().unwrap();
        assert!(next.ends_with("-000000"), "{next}");
    }

    // ------------------------------------------------------- §11 at the kiosk

    use crate::scanner::Scan;
    use luot_protocol::{ClientMessage, ErrorDetail, Identity, ServerMessage};
    use tokio::sync::oneshot;

    fn person() -> Identity {
        Identity {
            id_number: "001099012345".into(),
            birth_date: "1950-03-01".into(),
        }
    }

    fn ticket(number: &str, appointment: Option<&str>) -> Ticket {
        let mut t = job("x", TicketStatus::Waiting).ticket;
        t.id = format!("tk_{number}");
        t.number = number.into();
        t.appointment = appointment.map(String::from);
        t
    }

    fn issued(request_id: &str, t: Ticket, slot_at: Option<&str>) -> ServerMessage {
        ServerMessage::Issued {
            request_id: request_id.into(),
            ticket: t,
            slot_at: slot_at.map(String::from),
        }
    }

    fn refusal(request_id: &str, code: &str, extra: serde_json::Value) -> ServerMessage {
        ServerMessage::Error {
            request_id: Some(request_id.into()),
            error: ErrorDetail {
                code: code.into(),
                message: "Không được (refused)".into(),
                extra: extra.as_object().cloned().unwrap_or_default(),
            },
        }
    }

    /// Sends a press with a reply channel; the answer comes once the
    /// stand-in server has answered.
    fn ask(presses: &mpsc::Sender<Press>, request: Request) -> oneshot::Receiver<Outcome> {
        let (tx, rx) = oneshot::channel();
        presses
            .try_send(Press {
                request,
                reply: Some(tx),
            })
            .unwrap();
        rx
    }

    /// The next issue or check-in the kiosk sends.
    async fn next_request(c: &mut stand_in::Conn) -> ClientMessage {
        c.recv(|m| {
            matches!(
                m,
                ClientMessage::Issue { .. } | ClientMessage::CheckIn { .. }
            )
        })
        .await
    }

    fn request_id(m: &ClientMessage) -> String {
        match m {
            ClientMessage::Issue { request_id, .. } | ClientMessage::CheckIn { request_id, .. } => {
                request_id.clone()
            }
            other => panic!("{other:?}"),
        }
    }

    /// The bytes `pages` make at a printer, one after the other.
    fn printed_as(pages: &[image::GrayImage]) -> Vec<u8> {
        let c = CaptureDriver::new();
        for p in pages {
            print_page(&Target::Capture(c.clone()), p).unwrap();
        }
        c.bytes()
    }

    fn view(t: &Ticket, slot_at: Option<&str>) -> TicketView {
        TicketView {
            site_name: "Bệnh viện Thử nghiệm".into(),
            service_name: "Khám Nội".into(),
            number: t.number.clone(),
            priority: None,
            issued_at: t.issued_at.clone(),
            ahead: Some(2),
            url: format!("http://luot.test/t/{}", t.id),
            footer: "Vui lòng chờ gọi số".into(),
            reprint: None,
            slot_at: slot_at.map(String::from),
        }
    }

    #[tokio::test]
    async fn a_scanned_booking_is_checked_in_and_printed_with_its_time() {
        let dir = tempfile::tempdir().unwrap();
        let capture = CaptureDriver::new();
        let server = stand_in::Server::bind().await;
        let k = start_kiosk(
            server.url(),
            Target::Capture(capture.clone()),
            dir.path(),
            HOLD,
        );
        let mut c = server.welcome().await;
        let outcome = ask(&k.presses, Request::Scan(Scan::Booking("ap_5Jq2".into())));
        let sent = next_request(&mut c).await;
        let ClientMessage::CheckIn {
            request_id,
            code,
            appointment,
            identity,
        } = sent.clone()
        else {
            panic!("{sent:?}");
        };
        assert_eq!(appointment.as_deref(), Some("ap_5Jq2"));
        assert_eq!((code, identity), (None, None), "no CCCD was scanned");
        let t = ticket("A007", Some("ap_5Jq2"));
        let slot = "2026-11-22T08:30:00+07:00";
        c.send(&issued(&request_id, t.clone(), Some(slot))).await;
        assert_eq!(
            outcome.await.unwrap(),
            Outcome::Printed {
                number: "A007".into()
            }
        );
        assert_eq!(
            capture.bytes(),
            printed_as(&[render_ticket(&view(&t, Some(slot)), 576)]),
            "the ticket with Hẹn 08:30, printed once"
        );

        // A typed code: checked in by its code; a mistyped one is refused
        // without asking the server or printing.
        let wrong = ask(&k.presses, Request::Code("40817268".into()));
        assert!(matches!(wrong.await.unwrap(), Outcome::Unreadable(m) if m.contains("8 chữ số")));
        let typed = ask(&k.presses, Request::Code("40817269".into()));
        let sent = next_request(&mut c).await;
        assert!(
            matches!(&sent, ClientMessage::CheckIn { code: Some(serde_json::Value::String(s)), appointment: None, .. } if s == "40817269"),
            "{sent:?}"
        );
        let t2 = ticket("A008", Some("ap_other"));
        c.send(&issued(&request_id_of(&sent), t2, Some(slot))).await;
        assert!(matches!(typed.await.unwrap(), Outcome::Printed { number } if number == "A008"));
        assert_eq!(cuts(&capture), 2);
        k.stop.send(true).unwrap();
        k.handle.await.unwrap();
    }

    fn request_id_of(m: &ClientMessage) -> String {
        request_id(m)
    }

    #[tokio::test]
    async fn a_scanned_cccd_goes_with_the_next_press_only() {
        let dir = tempfile::tempdir().unwrap();
        let capture = CaptureDriver::new();
        let server = stand_in::Server::bind().await;
        let mut k = start_kiosk(
            server.url(),
            Target::Capture(capture.clone()),
            dir.path(),
            HOLD,
        );
        let mut c = server.welcome().await;
        let held = ask(&k.presses, Request::Scan(Scan::Cccd(person())));
        assert_eq!(held.await.unwrap(), Outcome::IdentityHeld);
        assert!(
            k.screen.borrow_and_update().cccd,
            "the page shows a CCCD is held"
        );
        assert!(capture.bytes().is_empty(), "a scan alone prints nothing");

        let first = ask(
            &k.presses,
            Request::Issue {
                service: "kham-noi".into(),
                priority: None,
            },
        );
        let sent = next_request(&mut c).await;
        assert!(
            matches!(&sent, ClientMessage::Issue { identity: Some(i), .. } if *i == person()),
            "{sent:?}"
        );
        c.send(&issued(&request_id(&sent), ticket("A001", None), None))
            .await;
        assert!(matches!(first.await.unwrap(), Outcome::Printed { .. }));
        assert!(!k.screen.borrow().cccd, "taken by that press");

        let second = ask(
            &k.presses,
            Request::Issue {
                service: "kham-noi".into(),
                priority: None,
            },
        );
        let sent = next_request(&mut c).await;
        assert!(
            matches!(&sent, ClientMessage::Issue { identity: None, .. }),
            "the next press carries no identity: {sent:?}"
        );
        c.send(&issued(&request_id(&sent), ticket("A002", None), None))
            .await;
        assert!(matches!(second.await.unwrap(), Outcome::Printed { .. }));
        k.stop.send(true).unwrap();
        k.handle.await.unwrap();
    }

    #[tokio::test]
    async fn a_cccd_past_hold_s_is_not_sent() {
        let dir = tempfile::tempdir().unwrap();
        let capture = CaptureDriver::new();
        let server = stand_in::Server::bind().await;
        // hold_s 0: the CCCD is already past its time at the next press.
        let k = start_kiosk(
            server.url(),
            Target::Capture(capture.clone()),
            dir.path(),
            Duration::ZERO,
        );
        let mut c = server.welcome().await;
        ask(&k.presses, Request::Scan(Scan::Cccd(person())))
            .await
            .unwrap();
        let press = ask(
            &k.presses,
            Request::Issue {
                service: "kham-noi".into(),
                priority: None,
            },
        );
        let sent = next_request(&mut c).await;
        assert!(
            matches!(&sent, ClientMessage::Issue { identity: None, .. }),
            "{sent:?}"
        );
        c.send(&issued(&request_id(&sent), ticket("A001", None), None))
            .await;
        press.await.unwrap();
        k.stop.send(true).unwrap();
        k.handle.await.unwrap();
    }

    /// Everything the kiosk logs (every level) while `f` runs on this thread.
    fn logged() -> (
        tracing::subscriber::DefaultGuard,
        std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
    ) {
        use std::sync::{Arc, Mutex};
        #[derive(Clone)]
        struct Buf(Arc<Mutex<Vec<u8>>>);
        impl std::io::Write for Buf {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let buf = Arc::new(Mutex::new(Vec::new()));
        let writer = Buf(buf.clone());
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(
                "trace,tungstenite=info,tokio_tungstenite=info",
            ))
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        (tracing::subscriber::set_default(subscriber), buf)
    }

    #[tokio::test]
    async fn identity_required_then_a_cccd_scan_checks_the_booking_in() {
        let (_guard, log) = logged();
        let dir = tempfile::tempdir().unwrap();
        let capture = CaptureDriver::new();
        let server = stand_in::Server::bind().await;
        let mut k = start_kiosk(
            server.url(),
            Target::Capture(capture.clone()),
            dir.path(),
            HOLD,
        );
        let mut c = server.welcome().await;

        let scan = ask(&k.presses, Request::Scan(Scan::Booking("ap_9".into())));
        let first = next_request(&mut c).await;
        assert!(matches!(
            &first,
            ClientMessage::CheckIn { identity: None, .. }
        ));
        c.send(&refusal(
            &request_id(&first),
            "identity_required",
            serde_json::json!({}),
        ))
        .await;
        let outcome = scan.await.unwrap();
        assert_eq!(
            outcome,
            Outcome::Refused {
                code: "identity_required".into(),
                headline: "CẦN QUÉT CCCD".into(),
                comeback: None
            }
        );
        let slip = render_refusal(
            &RefusalView {
                site_name: "Bệnh viện Thử nghiệm".into(),
                service_name: None,
                headline: "CẦN QUÉT CCCD".into(),
                comeback: None,
            },
            576,
        );
        assert_eq!(
            capture.bytes(),
            printed_as(std::slice::from_ref(&slip)),
            "the refusal slip"
        );
        assert!(k.screen.borrow_and_update().waiting_for_cccd);

        // The CCCD scan checks the same booking in, with its fields.
        let cccd = ask(&k.presses, Request::Scan(Scan::Cccd(person())));
        let again = next_request(&mut c).await;
        let ClientMessage::CheckIn {
            request_id: rid,
            appointment,
            identity,
            ..
        } = &again
        else {
            panic!("{again:?}");
        };
        assert_eq!(appointment.as_deref(), Some("ap_9"), "the same booking");
        assert_eq!(identity.as_ref(), Some(&person()));
        assert_ne!(
            *rid,
            request_id(&first),
            "a new request: the first was refused"
        );
        let t = ticket("A003", Some("ap_9"));
        c.send(&issued(rid, t.clone(), Some("2026-11-22T09:30:00+07:00")))
            .await;
        assert!(matches!(cccd.await.unwrap(), Outcome::Printed { number } if number == "A003"));
        assert_eq!(
            capture.bytes(),
            printed_as(&[
                slip,
                render_ticket(&view(&t, Some("2026-11-22T09:30:00+07:00")), 576)
            ])
        );
        let screen = k.screen.borrow_and_update().clone();
        assert!(!screen.waiting_for_cccd && !screen.cccd, "{screen:?}");
        k.stop.send(true).unwrap();
        k.handle.await.unwrap();

        // Only what must be absent is asserted of this log: tracing caches
        // a callsite's interest process-wide, so a line first hit by a test
        // running on another thread may be missing from this thread's
        // subscriber (the refusal and the print are asserted above, and the
        // `refused CODE` and `ticket printed` lines in tests/tests/kiosk.rs,
        // a process of their own).
        let log = String::from_utf8(log.lock().unwrap().clone()).unwrap();
        for secret in ["001099012345", "1950-03-01", "01031950"] {
            assert!(!log.contains(secret), "the log holds {secret}: {log}");
        }
    }

    #[tokio::test]
    async fn refusals_print_one_slip_per_button_a_minute() {
        let (_guard, log) = logged();
        let dir = tempfile::tempdir().unwrap();
        let capture = CaptureDriver::new();
        let server = stand_in::Server::bind().await;
        let k = start_kiosk(
            server.url(),
            Target::Capture(capture.clone()),
            dir.path(),
            HOLD,
        );
        let mut c = server.welcome().await;
        let full = serde_json::json!({"next_open_at": "2026-11-22T13:30:00+07:00"});
        for _ in 0..3 {
            let press = ask(
                &k.presses,
                Request::Issue {
                    service: "kham-noi".into(),
                    priority: None,
                },
            );
            let sent = next_request(&mut c).await;
            c.send(&refusal(&request_id(&sent), "service_full", full.clone()))
                .await;
            assert_eq!(
                press.await.unwrap(),
                Outcome::Refused {
                    code: "service_full".into(),
                    headline: "HẾT SỐ".into(),
                    comeback: Some("13:30".into())
                }
            );
        }
        let slip = render_refusal(
            &RefusalView {
                site_name: "Bệnh viện Thử nghiệm".into(),
                service_name: Some("Khám Nội".into()),
                headline: "HẾT SỐ".into(),
                comeback: Some("13:30".into()),
            },
            576,
        );
        assert_eq!(
            capture.bytes(),
            printed_as(&[slip]),
            "one slip for three presses of one button"
        );
        // A booking not found: its own slip, no number, no QR code.
        let scan = ask(&k.presses, Request::Scan(Scan::Booking("ap_gone".into())));
        let sent = next_request(&mut c).await;
        c.send(&refusal(
            &request_id(&sent),
            "unknown_appointment",
            serde_json::json!({}),
        ))
        .await;
        assert!(
            matches!(scan.await.unwrap(), Outcome::Refused { headline, .. } if headline == "KHÔNG TÌM THẤY LỊCH HẸN")
        );
        assert_eq!(cuts(&capture), 2);
        // A refusal outside §11 is not a refusal slip: the out-of-service one.
        let press = ask(
            &k.presses,
            Request::Issue {
                service: "kham-noi".into(),
                priority: None,
            },
        );
        let sent = next_request(&mut c).await;
        c.send(&refusal(
            &request_id(&sent),
            "forbidden",
            serde_json::json!({}),
        ))
        .await;
        assert!(matches!(press.await.unwrap(), Outcome::OutOfService(_)));
        k.stop.send(true).unwrap();
        let stats = k.handle.await.unwrap();
        assert_eq!(stats.refusals, 4);
        assert_eq!(stats.printed, 0);
        let log = String::from_utf8(log.lock().unwrap().clone()).unwrap();
        assert_eq!(log.matches("refused service_full").count(), 3, "{log}");
        assert_eq!(
            log.matches("refused unknown_appointment").count(),
            1,
            "{log}"
        );
    }

    #[tokio::test]
    async fn a_scan_from_the_scanner_shows_on_the_touch_page() {
        let dir = tempfile::tempdir().unwrap();
        let capture = CaptureDriver::new();
        let server = stand_in::Server::bind().await;
        let mut k = start_kiosk(
            server.url(),
            Target::Capture(capture.clone()),
            dir.path(),
            HOLD,
        );
        let _c = server.welcome().await;
        // No reply channel: a scanner's press; the page learns of it.
        k.presses
            .send(Press::scan(Scan::Unreadable(
                crate::scanner::Unreadable::BadCccd,
            )))
            .await
            .unwrap();
        k.presses
            .send(Press::scan(Scan::Cccd(person())))
            .await
            .unwrap();
        let screen = loop {
            k.screen.changed().await.unwrap();
            let s = k.screen.borrow_and_update().clone();
            if s.notice.as_ref().is_some_and(|n| n.seq == 2) {
                break s;
            }
        };
        assert!(screen.cccd);
        let n = screen.notice.unwrap();
        assert_eq!(n.headline.as_deref(), Some("Đã quét CCCD"));
        let shown = serde_json::to_string(&k.screen.borrow().clone()).unwrap();
        assert!(
            !shown.contains("001099012345") && !shown.contains("1950"),
            "{shown}"
        );
        k.stop.send(true).unwrap();
        k.handle.await.unwrap();
    }

    // ------------------------------------------- rule 107: `unavailable`

    fn unavailable(request_id: &str) -> ServerMessage {
        refusal(
            request_id,
            crate::session::UNAVAILABLE,
            serde_json::json!({"writer": "luot-b", "writer_url": null}),
        )
    }

    /// Waits (up to 5 s) until the touch page's "please wait" is `on`.
    async fn please_wait(screen: &mut watch::Receiver<Screen>, on: bool) {
        let wait = screen.wait_for(|s| s.please_wait == on);
        tokio::time::timeout(Duration::from_secs(5), wait)
            .await
            .expect("the touch page changed in time")
            .unwrap();
    }

    fn press_kham_noi(presses: &mpsc::Sender<Press>) -> oneshot::Receiver<Outcome> {
        ask(
            presses,
            Request::Issue {
                service: "kham-noi".into(),
                priority: None,
            },
        )
    }

    #[tokio::test]
    async fn a_press_answered_unavailable_blinks_please_wait_and_prints_the_one_ticket() {
        let dir = tempfile::tempdir().unwrap();
        let capture = CaptureDriver::new();
        let server = stand_in::Server::bind().await;
        let mut k = start_kiosk(
            server.url(),
            Target::Capture(capture.clone()),
            dir.path(),
            HOLD,
        );
        let mut c = server.welcome().await;
        let outcome = press_kham_noi(&k.presses);
        let first = next_request(&mut c).await;
        let rid = request_id(&first);
        // A failover: the server cannot take the issue now.
        c.send(&unavailable(&rid)).await;
        let t0 = Instant::now();
        please_wait(&mut k.screen, true).await;
        assert_eq!(
            *k.led.borrow(),
            LedMode::Attention,
            "the LED blinks while the press is held up"
        );
        let again = next_request(&mut c).await;
        let waited = t0.elapsed();
        assert_eq!(again, first, "the same issue, the same request_id");
        assert!(
            waited >= Duration::from_millis(900) && waited < Duration::from_secs(3),
            "sent again after 1 s: {waited:?}"
        );
        // The connection is closed with 1012; after the reconnect's
        // welcome the issue goes out once more, and is answered.
        drop(c);
        let mut c = server.welcome().await;
        assert_eq!(next_request(&mut c).await, first, "after the reconnect");
        let t = ticket("A021", None);
        c.send(&issued(&rid, t.clone(), None)).await;
        c.send(&issued(&rid, t.clone(), None)).await;
        assert_eq!(
            outcome.await.unwrap(),
            Outcome::Printed {
                number: "A021".into()
            }
        );
        please_wait(&mut k.screen, false).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(
            capture.bytes(),
            printed_as(&[render_ticket(&view(&t, None), 576)]),
            "the server's ticket, printed once"
        );
        k.stop.send(true).unwrap();
        k.handle.await.unwrap();
    }

    #[tokio::test]
    async fn unavailable_past_issue_deadline_s_prints_the_slip_and_never_the_late_ticket() {
        // issue_deadline_s from kiosk.toml: 2 s here, not the default 8.
        let cfg = crate::config::KioskConfig::parse(
            "kiosk.toml",
            "issue_deadline_s = 2\n[server]\nurl = \"http://127.0.0.1:9\"\ntoken = \"t\"\n\
             [printer]\ntarget = \"tcp:127.0.0.1:9100\"\n",
        )
        .unwrap();
        let settings = Settings::from_config(&cfg);
        assert_eq!(settings.issue_deadline, Duration::from_secs(2));
        let dir = tempfile::tempdir().unwrap();
        let capture = CaptureDriver::new();
        let server = stand_in::Server::bind().await;
        let mut k = start_with(
            server.url(),
            Target::Capture(capture.clone()),
            dir.path(),
            settings,
        );
        let mut c = server.welcome().await;
        let t0 = Instant::now();
        let mut outcome = press_kham_noi(&k.presses);
        let rid = request_id(&next_request(&mut c).await);
        // Every send is answered unavailable, until the kiosk gives up.
        let mut sends = 1;
        let answer = loop {
            c.send(&unavailable(&rid)).await;
            tokio::select! {
                o = &mut outcome => break o.unwrap(),
                m = next_request(&mut c) => {
                    assert_eq!(request_id(&m), rid);
                    sends += 1;
                }
            }
        };
        let took = t0.elapsed();
        assert!(
            matches!(&answer, Outcome::OutOfService(m) if m.starts_with("Tạm ngưng cấp số, vui lòng thử lại")),
            "{answer:?}"
        );
        assert!(
            took >= Duration::from_secs(2) && took < Duration::from_secs(4),
            "given up issue_deadline_s after the press: {took:?}"
        );
        assert!((2..=3).contains(&sends), "sent at 0 s and 1 s: {sends}");
        please_wait(&mut k.screen, false).await;
        // The slip: site, the words and the time (the server's clock,
        // 09:00 at the welcome); no number, no QR code.
        let at = chrono::DateTime::parse_from_rfc3339("2026-11-22T09:00:00+07:00").unwrap();
        let slip = render_out_of_service("Bệnh viện Thử nghiệm", &at, 576);
        let mut prepared = rqrr::PreparedImage::prepare(slip.clone());
        assert!(prepared.detect_grids().is_empty(), "no QR code");
        assert_eq!(
            capture.bytes(),
            printed_as(&[slip]),
            "the out-of-service slip, once"
        );
        // The outcome was unknown: the ticket may exist, and comes late.
        c.send(&issued(&rid, ticket("A022", None), None)).await;
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert_eq!(cuts(&capture), 1, "the late ticket is never printed");
        k.stop.send(true).unwrap();
        let stats = k.handle.await.unwrap();
        assert_eq!((stats.printed, stats.out_of_service), (0, 1));
    }

    #[tokio::test]
    async fn a_check_in_answered_unavailable_is_asked_again_the_same_way() {
        let dir = tempfile::tempdir().unwrap();
        let capture = CaptureDriver::new();
        let server = stand_in::Server::bind().await;
        let mut k = start_kiosk(
            server.url(),
            Target::Capture(capture.clone()),
            dir.path(),
            HOLD,
        );
        let mut c = server.welcome().await;
        let outcome = ask(&k.presses, Request::Code("40817269".into()));
        let first = next_request(&mut c).await;
        let rid = request_id(&first);
        c.send(&unavailable(&rid)).await;
        please_wait(&mut k.screen, true).await;
        assert_eq!(next_request(&mut c).await, first, "the same check-in");
        let t = ticket("A023", Some("ap_1"));
        let slot = "2026-11-22T08:30:00+07:00";
        c.send(&issued(&rid, t.clone(), Some(slot))).await;
        assert_eq!(
            outcome.await.unwrap(),
            Outcome::Printed {
                number: "A023".into()
            }
        );
        assert_eq!(
            capture.bytes(),
            printed_as(&[render_ticket(&view(&t, Some(slot)), 576)])
        );
        k.stop.send(true).unwrap();
        k.handle.await.unwrap();
    }
}
