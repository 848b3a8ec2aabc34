//! Where presses come from. Every source sends `Press`es into one channel the
//! daemon reads: GPIO buttons (rppal: input with pull-up, button to ground,
//! debounced, one press per push however long it is held), standard input
//! lines in `--simulate` (a service id, `scan:TEXT` or `code:N`), the QR
//! scanner (`scanner.rs`), the touch-screen page, and in tests the channel
//! itself. A press asks for a number, brings a scan, or a typed booking code.

use std::time::Duration;

use tokio::io::AsyncBufReadExt;
use tokio::sync::{mpsc, oneshot};

use crate::config::Button;
use crate::scanner::{Scan, classify_owned};

/// What became of a press, for a screen that wants to tell the person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Printed {
        number: String,
    },
    /// The printer cannot print (paper out, cover open, offline).
    PrinterNotReady(String),
    /// No number could be had from the server; a slip says where to go.
    OutOfService(String),
    /// The server refused (rule 84): the slip's headline and, when the
    /// error gives one, the time to come back (`HH:MM`).
    Refused {
        code: String,
        headline: String,
        comeback: Option<String>,
    },
    /// A CCCD was scanned; it waits for the next press or check-in.
    IdentityHeld,
    /// A scan or typed code the kiosk cannot use (what to tell the person).
    Unreadable(String),
}

impl Outcome {
    /// For a screen: whether it went well, a headline to show large, and a
    /// sentence.
    pub fn describe(&self) -> (bool, Option<String>, String) {
        match self {
            Outcome::Printed { number } => (
                true,
                Some(number.clone()),
                format!("Mời lấy phiếu số {number}"),
            ),
            Outcome::Refused {
                code,
                headline,
                comeback,
            } => {
                let message = match (comeback, code.as_str()) {
                    (Some(at), _) => format!("Mời quay lại lúc {at}"),
                    (None, "identity_required") => {
                        "Vui lòng quét mã QR trên thẻ CCCD gắn chip.".to_string()
                    }
                    (None, _) => String::new(),
                };
                (false, Some(headline.clone()), message)
            }
            Outcome::IdentityHeld => (
                true,
                Some("Đã quét CCCD".into()),
                "Mời chọn dịch vụ hoặc quét mã lịch hẹn.".into(),
            ),
            Outcome::PrinterNotReady(m) | Outcome::OutOfService(m) | Outcome::Unreadable(m) => {
                (false, None, m.clone())
            }
        }
    }
}

/// What a press asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// A number for a service (a button).
    Issue {
        service: String,
        priority: Option<String>,
    },
    /// A scanned line, already classified (`Debug` shows none of it).
    Scan(Scan),
    /// A booking code typed on the touch page or `code:N` in `--simulate`.
    Code(String),
}

#[derive(Debug)]
pub struct Press {
    pub request: Request,
    pub reply: Option<oneshot::Sender<Outcome>>,
}

impl Press {
    /// A press of the button for `service`.
    pub fn new(service: &str) -> Press {
        Press::issue(service, None)
    }

    pub fn issue(service: &str, priority: Option<&str>) -> Press {
        Press {
            request: Request::Issue {
                service: service.to_string(),
                priority: priority.map(String::from),
            },
            reply: None,
        }
    }

    pub fn scan(scan: Scan) -> Press {
        Press {
            request: Request::Scan(scan),
            reply: None,
        }
    }

    /// A scanned line, classified; the line itself is wiped.
    pub fn scanned(line: String, today: chrono::NaiveDate) -> Press {
        Press::scan(classify_owned(line, today))
    }

    pub fn code(code: &str) -> Press {
        Press {
            request: Request::Code(code.to_string()),
            reply: None,
        }
    }

    /// A line of `--simulate`'s standard input: `scan:TEXT`, `code:N`, or
    /// a service id; `None` for an empty line.
    pub fn from_line(line: &str, today: chrono::NaiveDate) -> Option<Press> {
        if let Some(text) = line.strip_prefix("scan:") {
            return Some(Press::scanned(text.to_string(), today));
        }
        if let Some(code) = line.strip_prefix("code:") {
            return Some(Press::code(code.trim()));
        }
        let service = line.trim();
        (!service.is_empty()).then(|| Press::new(service))
    }
}

/// A source of presses.
pub trait Buttons {
    /// Starts sending presses to `tx`. The returned guard keeps the hardware
    /// claimed; dropping it releases it.
    fn start(self: Box<Self>, tx: mpsc::Sender<Press>) -> anyhow::Result<Box<dyn Send>>;
}

/// Physical buttons on the Raspberry Pi's header.
pub struct GpioButtons {
    pub buttons: Vec<Button>,
    pub debounce: Duration,
}

impl Buttons for GpioButtons {
    fn start(self: Box<Self>, tx: mpsc::Sender<Press>) -> anyhow::Result<Box<dyn Send>> {
        use rppal::gpio::{Gpio, Trigger};
        let gpio = Gpio::new().map_err(|e| {
            anyhow::anyhow!("cannot open the GPIO chip ({e}); is this a Raspberry Pi, and is the user in the gpio group?")
        })?;
        let mut pins = Vec::new();
        for b in self.buttons {
            let mut pin = gpio
                .get(b.pin)
                .map_err(|e| anyhow::anyhow!("GPIO {}: {e}", b.pin))?
                .into_input_pullup();
            let tx = tx.clone();
            let (service, priority) = (b.service.clone(), b.priority.clone());
            // Falling edge: the button pulls the pin to ground once per push.
            pin.set_async_interrupt(Trigger::FallingEdge, Some(self.debounce), move |_| {
                let press = Press::issue(&service, priority.as_deref());
                if tx.try_send(press).is_err() {
                    tracing::warn!("press dropped: the kiosk is still busy with earlier ones");
                }
            })
            .map_err(|e| anyhow::anyhow!("GPIO {}: {e}", b.pin))?;
            tracing::info!(pin = b.pin, service = %b.service, "button ready");
            pins.push(pin);
        }
        Ok(Box::new(pins))
    }
}

/// `--simulate`: every line of standard input is a press of that service,
/// a scan (`scan:TEXT`) or a typed booking code (`code:N`). The channel
/// closes at the end of input.
pub struct StdinButtons;

impl Buttons for StdinButtons {
    fn start(self: Box<Self>, tx: mpsc::Sender<Press>) -> anyhow::Result<Box<dyn Send>> {
        tokio::spawn(async move {
            let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let today = chrono::Local::now().date_naive();
                let Some(press) = Press::from_line(&line, today) else {
                    continue;
                };
                if tx.send(press).await.is_err() {
                    break;
                }
            }
        });
        Ok(Box::new(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scanner::Unreadable;

    #[test]
    fn a_press_with_a_scan_shows_nothing_of_it() {
        let today = chrono::NaiveDate::from_ymd_opt(2026, 11, 22).unwrap();
        let p = Press::from_line(
            "scan:001099012345|1|Tên|01031950|Nam|Địa chỉ|01012021",
            today,
        );
        let shown = format!("{p:?}");
        assert!(shown.contains("Cccd"), "{shown}");
        assert!(
            !shown.contains("001099012345") && !shown.contains("1950"),
            "{shown}"
        );
    }

    #[test]
    fn simulate_lines_are_presses_scans_and_codes() {
        let today = chrono::NaiveDate::from_ymd_opt(2026, 11, 22).unwrap();
        let req = |l: &str| Press::from_line(l, today).map(|p| p.request);
        assert_eq!(
            req(" kham-noi "),
            Some(Request::Issue {
                service: "kham-noi".into(),
                priority: None
            })
        );
        assert_eq!(req("code:40817269"), Some(Request::Code("40817269".into())));
        assert_eq!(
            req("scan:http://luot.test/a/ap_x1"),
            Some(Request::Scan(Scan::Booking("ap_x1".into())))
        );
        assert!(matches!(
            req("scan:001099012345|1|Tên|01031950|Nam|Địa chỉ|01012021"),
            Some(Request::Scan(Scan::Cccd(_)))
        ));
        assert_eq!(
            req("scan:"),
            Some(Request::Scan(Scan::Unreadable(Unreadable::Empty)))
        );
        assert_eq!(req("   "), None);
    }
}
