//! Where presses come from. Every source sends `Press`es into one channel the
//! daemon reads: GPIO buttons (rppal: input with pull-up, button to ground,
//! debounced, one press per push however long it is held), standard input
//! lines in `--simulate`, the touch-screen page, and in tests the channel itself.

use std::time::Duration;

use tokio::io::AsyncBufReadExt;
use tokio::sync::{mpsc, oneshot};

use crate::config::Button;

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
}

#[derive(Debug)]
pub struct Press {
    pub service: String,
    pub priority: Option<String>,
    pub reply: Option<oneshot::Sender<Outcome>>,
}

impl Press {
    pub fn new(service: &str) -> Press {
        Press {
            service: service.to_string(),
            priority: None,
            reply: None,
        }
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
                let press = Press {
                    service: service.clone(),
                    priority: priority.clone(),
                    reply: None,
                };
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

/// `--simulate`: every line of standard input is a press of that service.
/// The channel closes at the end of input.
pub struct StdinButtons;

impl Buttons for StdinButtons {
    fn start(self: Box<Self>, tx: mpsc::Sender<Press>) -> anyhow::Result<Box<dyn Send>> {
        tokio::spawn(async move {
            let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let service = line.trim();
                if service.is_empty() {
                    continue;
                }
                if tx.send(Press::new(service)).await.is_err() {
                    break;
                }
            }
        });
        Ok(Box::new(()))
    }
}
