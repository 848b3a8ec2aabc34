//! The queue's clock and the knobs that exist for tests only. The engine
//! never reads a clock; the hub asks `Clock::now_ms` once per batch. The
//! knobs are read from the environment once, at the command line's edge
//! (`Knobs::from_env`), and passed in; nothing else reads them.

/// Milliseconds since the Unix epoch, as the queue sees them.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    /// Added to the real time (`LUOT_CLOCK_OFFSET_S`).
    offset_ms: i64,
    /// How much faster than real time it runs (`LUOT_CLOCK_SPEED`), from `since`.
    speed: f64,
    since: i64,
}

impl Clock {
    /// The real time.
    pub fn real() -> Clock {
        Clock::shifted(0, 1.0)
    }

    /// Real time shifted by `offset_s` and running `speed` times faster from now.
    pub fn shifted(offset_s: i64, speed: f64) -> Clock {
        Clock {
            offset_ms: offset_s * 1000,
            speed: if speed.is_finite() && speed > 0.0 {
                speed
            } else {
                1.0
            },
            since: chrono::Utc::now().timestamp_millis(),
        }
    }

    pub fn now_ms(&self) -> i64 {
        let real = chrono::Utc::now().timestamp_millis();
        let t = if self.speed == 1.0 {
            real
        } else {
            self.since + ((real - self.since) as f64 * self.speed) as i64
        };
        t + self.offset_ms
    }

    /// Whether the clock differs from the real time.
    pub fn is_real(&self) -> bool {
        self.offset_ms == 0 && self.speed == 1.0
    }
}

/// Group commits a websocket client may fall behind before it gets a snapshot.
pub const BROADCAST_CAPACITY: usize = 1024;

/// Settings that exist for tests and rehearsals, never for a real site.
#[derive(Clone, Copy, Debug)]
pub struct Knobs {
    pub clock: Clock,
    /// Group commits a client may fall behind (`LUOT_BROADCAST_CAPACITY`).
    pub broadcast_capacity: usize,
}

impl Default for Knobs {
    fn default() -> Knobs {
        Knobs {
            clock: Clock::real(),
            broadcast_capacity: BROADCAST_CAPACITY,
        }
    }
}

impl Knobs {
    /// `LUOT_CLOCK_OFFSET_S` (seconds added to the queue's clock),
    /// `LUOT_CLOCK_SPEED` (720 runs a 12-hour day in a minute) and
    /// `LUOT_BROADCAST_CAPACITY`; each one set is logged as a warning.
    pub fn from_env() -> Knobs {
        fn var<T: std::str::FromStr>(name: &str) -> Option<T> {
            let v = std::env::var(name).ok()?;
            tracing::warn!(%name, value = %v, "test-only setting in the environment");
            v.parse().ok()
        }
        let offset_s = var::<i64>("LUOT_CLOCK_OFFSET_S").unwrap_or(0);
        let speed = var::<f64>("LUOT_CLOCK_SPEED").unwrap_or(1.0);
        Knobs {
            clock: Clock::shifted(offset_s, speed),
            broadcast_capacity: var::<usize>("LUOT_BROADCAST_CAPACITY")
                .filter(|n| *n > 0)
                .unwrap_or(BROADCAST_CAPACITY),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shifted_clock_is_ahead_and_a_fast_one_runs_ahead() {
        let real = chrono::Utc::now().timestamp_millis();
        let ahead = Clock::shifted(3600, 1.0).now_ms() - real;
        assert!((3_600_000..3_601_000).contains(&ahead), "{ahead}");
        let fast = Clock::shifted(0, 1000.0);
        std::thread::sleep(std::time::Duration::from_millis(20));
        assert!(fast.now_ms() - chrono::Utc::now().timestamp_millis() >= 10_000);
        assert!(Clock::real().is_real() && !fast.is_real());
    }
}
