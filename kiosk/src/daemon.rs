//! The kiosk's one loop: take a press, check the printer, ask the server for
//! a ticket (with a request id that is on disk first), print it exactly once.
//! While the printer cannot print, presses are refused with clear feedback;
//! when no number can be had in time, a slip says where to go. A ticket the
//! server does not know is never printed. Print jobs from the server (rule
//! 88) print each `print_id` at most once, written down on disk first
//! (`printlog.rs`), as rule 67's reprint.

use std::time::{Duration, Instant};

use luot_protocol::{PrinterStatus, Ticket, TicketStatus, valid_request_id};
use tokio::sync::{mpsc, watch};

use crate::buttons::{Outcome, Press};
use crate::leds::LedMode;
use crate::link::{Link, PrintJob, Welcome};
use crate::printer::{Target, can_print, print_page, query_status};
use crate::printlog::{self, PrintLog};
use crate::render::{Reprint, TicketView, render_out_of_service, render_ticket};
use crate::reqid::RequestIds;

/// How long a press waits for the server (over reconnects) before the slip.
pub const ISSUE_DEADLINE: Duration = Duration::from_secs(8);
const STATUS_EVERY: Duration = Duration::from_secs(15);
const HEALTH_EVERY: Duration = Duration::from_secs(60);
/// How long a kiosk leaving at the end of its presses waits for its last
/// answers to print jobs to reach the socket.
const ANSWERS_SENT_WITHIN: Duration = Duration::from_secs(5);

pub struct Settings {
    pub width: u32,
    pub footer: String,
    pub help: String,
    pub issue_deadline: Duration,
}

#[derive(Default, Clone, Debug)]
pub struct Stats {
    pub printed: u64,
    pub refused: u64,
    pub out_of_service: u64,
    /// Print jobs printed (rule 88).
    pub jobs: u64,
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
        }
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
            tokio::select! {
                press = presses.recv() => match press {
                    Some(p) => {
                        let reply = p.reply;
                        let outcome = self.handle(&p.service, p.priority.as_deref()).await;
                        if let Some(r) = reply { let _ = r.send(outcome); }
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
                changed = link_status.changed() => if changed.is_err() { break },
                _ = stop.changed() => break,
            }
        }
        let _ = self.led.send(LedMode::Off);
        self.stats
    }

    fn update_led(&self) {
        let ready = self.link.connected() && self.printer.is_some_and(can_print);
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
            let why = match status {
                PrinterStatus::PaperOut => "Máy in hết giấy",
                PrinterStatus::CoverOpen => "Nắp máy in đang mở",
                _ => "Máy in không hoạt động",
            };
            tracing::warn!(service, printer = ?status, "press refused: the printer cannot print");
            self.update_led();
            return Outcome::PrinterNotReady(format!("{why}. {}", self.settings.help));
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
        let answer = self
            .link
            .issue(&request_id, service, priority, self.settings.issue_deadline)
            .await;
        let ticket = match answer {
            Ok(t) => t,
            Err(e) => return self.out_of_service(service, &e.to_string()).await,
        };
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
        };
        let page = render_ticket(&view, self.settings.width);
        match self.print(page).await {
            Ok(()) => {
                self.stats.printed += 1;
                tracing::info!(number = %ticket.number, id = %ticket.id, service, request_id = %request_id, "ticket printed");
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
        let site = self.link.welcome().map(|w| w.site_name).unwrap_or_default();
        let slip = render_out_of_service(&site, &self.settings.help, self.settings.width);
        if let Err(e) = self.print(slip).await {
            tracing::error!(error = %e, "the out-of-service slip could not be printed either");
        }
        Outcome::OutOfService(format!(
            "Máy lấy số tạm ngừng phục vụ. {}",
            self.settings.help
        ))
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

/// A print job's ticket as rule 67 prints it: §7's ticket as it is now
/// (people ahead only while waiting), "In lại" and the time, and for a
/// visit where to go now.
pub fn reprint_view(job: &PrintJob, welcome: &Welcome, footer: &str) -> TicketView {
    let t = &job.ticket;
    TicketView {
        site_name: welcome.site_name.clone(),
        service_name: job
            .service_name
            .clone()
            .unwrap_or_else(|| welcome.service_name(&t.service)),
        number: t.number.clone(),
        priority: t.priority.clone(),
        issued_at: t.issued_at.clone(),
        ahead: (t.status == TicketStatus::Waiting)
            .then(|| t.position.unwrap_or(1).saturating_sub(1)),
        url: ticket_url(welcome, t),
        footer: footer.to_string(),
        reprint: Some(Reprint {
            at: job
                .at
                .clone()
                .unwrap_or_else(|| chrono::Local::now().to_rfc3339()),
            places: places_now(t),
        }),
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
            slot_at: None,
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
        let link = Link::start(url, "t".into());
        let (led, _) = watch::channel(LedMode::Off);
        let settings = Settings {
            width: 576,
            footer: "Vui lòng chờ gọi số".into(),
            help: "Xin mời đến Quầy Tiếp đón.".into(),
            issue_deadline: ISSUE_DEADLINE,
        };
        let ids = RequestIds::open(dir).unwrap();
        let jobs = PrintLog::open(dir).unwrap();
        let k = Kiosk::new(link, target, settings, ids, jobs, led);
        let (presses, presses_rx) = mpsc::channel(4);
        let (stop, stop_rx) = watch::channel(false);
        (presses, stop, tokio::spawn(k.run(presses_rx, stop_rx)))
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
}
