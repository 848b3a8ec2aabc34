//! The "ready" LED: steady when the kiosk can give numbers, blinking while it
//! is offline or its printer cannot print, off when stopped.

use std::time::Duration;

use tokio::sync::watch;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LedMode {
    Ready,
    Attention,
    Off,
}

/// One LED.
pub trait Led: Send {
    fn set(&mut self, on: bool);
}

/// An LED on a GPIO pin (to ground through a resistor).
pub struct GpioLed(rppal::gpio::OutputPin);

impl GpioLed {
    pub fn open(pin: u8) -> anyhow::Result<GpioLed> {
        let gpio = rppal::gpio::Gpio::new()
            .map_err(|e| anyhow::anyhow!("cannot open the GPIO chip for the LED: {e}"))?;
        let pin = gpio
            .get(pin)
            .map_err(|e| anyhow::anyhow!("LED GPIO {pin}: {e}"))?
            .into_output_low();
        Ok(GpioLed(pin))
    }
}

impl Led for GpioLed {
    fn set(&mut self, on: bool) {
        if on {
            self.0.set_high()
        } else {
            self.0.set_low()
        }
    }
}

/// Drives `led` from the mode channel until it closes.
pub fn spawn(mut led: Box<dyn Led>, mut mode: watch::Receiver<LedMode>) {
    tokio::spawn(async move {
        let mut on = false;
        let mut tick = tokio::time::interval(Duration::from_millis(400));
        loop {
            tokio::select! {
                changed = mode.changed() => if changed.is_err() { led.set(false); return; },
                _ = tick.tick() => {}
            }
            let want = match *mode.borrow() {
                LedMode::Ready => true,
                LedMode::Attention => !on,
                LedMode::Off => false,
            };
            if want != on {
                led.set(want);
                on = want;
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    struct Recorder(Arc<Mutex<Vec<bool>>>);
    impl Led for Recorder {
        fn set(&mut self, on: bool) {
            self.0.lock().unwrap().push(on);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn steady_when_ready_blinking_when_not() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = watch::channel(LedMode::Ready);
        spawn(Box::new(Recorder(seen.clone())), rx);
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert_eq!(*seen.lock().unwrap(), vec![true], "steady on");
        tx.send(LedMode::Attention).unwrap();
        tokio::time::sleep(Duration::from_secs(3)).await;
        let toggles = seen.lock().unwrap().len();
        assert!(toggles >= 6, "blinking: {toggles} changes in 3 s");
        tx.send(LedMode::Off).unwrap();
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(seen.lock().unwrap().last(), Some(&false));
    }
}
