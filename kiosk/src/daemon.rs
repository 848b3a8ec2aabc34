//! The kiosk's one loop: take a press, check the printer, ask the server for
//! a ticket (with a request id that is on disk first), print it exactly once.
//! While the printer cannot print, presses are refused with clear feedback;
//! when no number can be had in time, a slip says where to go. A ticket the
//! server does not know is never printed.

use std::time::{Duration, Instant};

use luot_protocol::PrinterStatus;
use tokio::sync::{mpsc, watch};

use crate::buttons::{Outcome, Press};
use crate::leds::LedMode;
use crate::link::Link;
use crate::printer::{Target, can_print, print_page, query_status};
use crate::render::{TicketView, render_out_of_service, render_ticket};
use crate::reqid::RequestIds;

/// How long a press waits for the server (over reconnects) before the slip.
pub const ISSUE_DEADLINE: Duration = Duration::from_secs(8);
const STATUS_EVERY: Duration = Duration::from_secs(15);
const HEALTH_EVERY: Duration = Duration::from_secs(60);

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
}

pub struct Kiosk {
    pub link: Link,
    pub target: Target,
    pub settings: Settings,
    pub ids: RequestIds,
    pub led: watch::Sender<LedMode>,
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
        led: watch::Sender<LedMode>,
    ) -> Kiosk {
        Kiosk {
            link,
            target,
            settings,
            ids,
            led,
            printer: None,
            stats: Stats::default(),
            started: Instant::now(),
        }
    }

    /// Runs until the presses end (end of standard input) or `stop` is set.
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
        loop {
            self.update_led();
            tokio::select! {
                press = presses.recv() => match press {
                    Some(p) => {
                        let reply = p.reply;
                        let outcome = self.handle(&p.service, p.priority.as_deref()).await;
                        if let Some(r) = reply { let _ = r.send(outcome); }
                    }
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
            ahead: ticket.position.unwrap_or(1).saturating_sub(1),
            url: format!(
                "{}/t/{}",
                welcome.public_url.trim_end_matches('/'),
                ticket.id
            ),
            footer: self.settings.footer.clone(),
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
        (
            Kiosk::new(link, Target::Capture(capture.clone()), settings, ids, led),
            led_rx,
        )
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
