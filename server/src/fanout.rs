//! The screens' fan-out: every event to thousands of boards, counter signs
//! and ticket pages. A few shard tasks on the screens' runtime each read the
//! hub's broadcast once, keep the recent events encoded once as complete
//! websocket frames in one buffer (`Window`), and *sweep* their screens:
//! each screen is sent, in one `send`, every frame after the last one it
//! got. Events that arrive during a sweep join it for the screens not yet
//! reached, so a call never waits for a whole sweep to finish before
//! starting; the screens already passed are swept again at once.
//!
//! Calls, recalls and counter or day changes start a sweep at once; list
//! updates (a ticket issued, done, …) wait up to `HOLD` to share a sweep
//! with what follows: one write per screen per sweep instead of one per
//! event, which is most of what fan-out costs.
//!
//! No task is woken per screen and nothing is copied per screen. A screen
//! whose socket does not keep up gets its bytes queued on its `Wire` (its own
//! task flushes them); past `wire::MAX_QUEUED` the shard lets go of it and
//! its task sends it a fresh snapshot and joins again. The window keeps the
//! last `KEEP` frames, so a screen joining just after its catch-up misses
//! nothing.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};

use bytes::Bytes;
use tokio::sync::{broadcast, mpsc};
use tokio::time::{Duration, Instant, sleep_until};

use crate::frame::{Audience, Frames, View};
use crate::hub::Hub;
use crate::wire::{Fanned, Wire, encode};

/// Frames each shard keeps for screens that join a little behind it (a
/// join takes milliseconds; one further behind gets a snapshot).
const KEEP: usize = 128;
/// Screens written between looks at the hub's broadcast during a sweep.
const CHUNK: usize = 256;

/// How long list updates (a ticket issued, done, …) may wait to share a
/// write with what follows. Calls and recalls go out at once, with whatever
/// waits before them. Fewer, larger writes cost the server (and every
/// board) far less than one write per event per screen.
pub const HOLD: Duration = Duration::from_millis(1000);

/// A screen handed to a shard: send it every event after `last_seq`.
struct Join {
    wire: Weak<Wire>,
    ticket: u64,
    last_seq: u64,
}

pub struct Fanout {
    shards: Vec<mpsc::UnboundedSender<Join>>,
    next: AtomicUsize,
    tickets: AtomicU64,
}

impl Fanout {
    /// Starts `shards` shard tasks on `rt`.
    pub fn start(rt: &tokio::runtime::Handle, hub: &Hub, shards: usize) -> Fanout {
        let shards = (0..shards.max(1))
            .map(|_| {
                let (tx, rx) = mpsc::unbounded_channel();
                rt.spawn(shard(hub.clone(), rx));
                tx
            })
            .collect();
        Fanout {
            shards,
            next: AtomicUsize::new(0),
            tickets: AtomicU64::new(1),
        }
    }

    /// From now on a shard sends `wire` every event after `last_seq` (the
    /// connection has sent everything up to it).
    pub fn join(&self, wire: &Arc<Wire>, last_seq: u64) {
        let ticket = self.tickets.fetch_add(1, Ordering::Relaxed);
        wire.join(ticket);
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.shards.len();
        let _ = self.shards[i].send(Join {
            wire: Arc::downgrade(wire),
            ticket,
            last_seq,
        });
    }
}

struct Screen {
    wire: Weak<Wire>,
    ticket: u64,
    last_seq: u64,
    /// Closed, or let go of: removed at the end of the sweep.
    gone: bool,
}

/// Recent events as complete frames in one buffer, oldest first: every
/// frame after `base`.
#[derive(Default)]
struct Window {
    base: u64,
    seqs: Vec<u64>,
    urgent: Vec<bool>,
    /// Where each frame starts in `all`.
    starts: Vec<usize>,
    all: Bytes,
}

impl Window {
    fn new(base: u64) -> Window {
        Window {
            base,
            ..Window::default()
        }
    }

    fn last(&self) -> Option<u64> {
        self.seqs.last().copied()
    }

    /// Appends the screens' frames of `batch`; whether one is urgent.
    fn extend(&mut self, batches: &[Frames]) -> bool {
        if batches.is_empty() {
            return false;
        }
        let mut all = Vec::with_capacity(self.all.len() + 2048);
        all.extend_from_slice(&self.all);
        let mut urgent = false;
        // Screens never get admin frames, and every other frame has a seq.
        for f in batches.iter().flat_map(|b| b.iter()) {
            let Some(seq) = f.seq.filter(|_| f.audience == Audience::Everyone) else {
                continue;
            };
            if seq <= self.last().unwrap_or(self.base) {
                continue;
            }
            self.seqs.push(seq);
            self.urgent.push(f.urgent);
            self.starts.push(all.len());
            for part in encode(f.text_for(&View::Display)) {
                all.extend_from_slice(&part);
            }
            urgent |= f.urgent;
        }
        self.all = Bytes::from(all);
        urgent
    }

    /// Whether the window holds every frame after `seq` (a screen at `seq`
    /// can be brought up to date from it).
    fn covers(&self, seq: u64) -> bool {
        seq >= self.base
    }

    /// The frames after `seq`, as one buffer.
    fn after(&self, seq: u64) -> Option<Bytes> {
        let i = self.seqs.partition_point(|s| *s <= seq);
        (i < self.seqs.len()).then(|| self.all.slice(self.starts[i]..))
    }

    fn urgent_after(&self, seq: u64) -> bool {
        let i = self.seqs.partition_point(|s| *s <= seq);
        self.urgent[i..].iter().any(|u| *u)
    }

    /// Forgets frames at or before `seq`, keeping at least the last `KEEP`.
    fn trim(&mut self, seq: u64) {
        let by_seq = self.seqs.partition_point(|s| *s <= seq);
        let n = by_seq.min(self.seqs.len().saturating_sub(KEEP));
        if n == 0 {
            return;
        }
        let cut = self.starts[n];
        self.base = self.seqs[n - 1];
        self.seqs.drain(..n);
        self.urgent.drain(..n);
        self.starts.drain(..n);
        for s in &mut self.starts {
            *s -= cut;
        }
        self.all = self.all.slice(cut..);
    }
}

impl Screen {
    /// Sends this screen everything in `w` it has not had; false when the
    /// screen is no longer this shard's.
    fn catch_up(&mut self, w: &Window) -> bool {
        if self.gone {
            return false;
        }
        let last = w.last().unwrap_or(w.base);
        if self.last_seq >= last {
            return self.wire.strong_count() > 0;
        }
        let Some(wire) = self.wire.upgrade() else {
            return false;
        };
        if !w.covers(self.last_seq) {
            wire.let_go(self.ticket);
            return false;
        }
        let Some(frames) = w.after(self.last_seq) else {
            return true;
        };
        self.last_seq = last;
        match wire.fan(self.ticket, &[Bytes::new(), frames]) {
            Fanned::Sent | Fanned::Queued => true,
            Fanned::Lagged | Fanned::Gone => false,
        }
    }
}

/// One shard: its screens, the window of recent frames, the hub's broadcast.
struct Shard {
    hub: Hub,
    rx: broadcast::Receiver<Frames>,
    window: Window,
    screens: Vec<Screen>,
    /// When held list updates must be swept out.
    due: Option<Instant>,
}

async fn shard(hub: Hub, mut joins: mpsc::UnboundedReceiver<Join>) {
    let catchup = hub.subscribe(None).await;
    let mut sh = Shard {
        hub,
        window: Window::new(catchup.last_seq),
        rx: catchup.rx,
        screens: Vec::new(),
        due: None,
    };
    loop {
        let due = sh.due;
        let wait = async {
            match due {
                Some(at) => sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            batch = sh.rx.recv() => match batch {
                Ok(batch) => match sh.absorb(Some(batch)) {
                    Absorbed::Urgent => sh.sweep().await,
                    Absorbed::Held => {
                        if sh.due.is_none() {
                            sh.due = Some(Instant::now() + HOLD);
                        }
                    }
                    Absorbed::Lagged(missed) => sh.resync(missed).await,
                },
                Err(broadcast::error::RecvError::Lagged(missed)) => sh.resync(missed).await,
                Err(broadcast::error::RecvError::Closed) => return,
            },
            _ = wait => sh.sweep().await,
            join = joins.recv() => {
                let Some(j) = join else { return };
                let mut s = Screen { wire: j.wire, ticket: j.ticket, last_seq: j.last_seq, gone: false };
                if s.catch_up(&sh.window) {
                    sh.screens.push(s);
                }
            }
        }
    }
}

/// What `Shard::absorb` took in.
enum Absorbed {
    Urgent,
    /// Only list updates (or nothing new).
    Held,
    /// The broadcast ran ahead of this shard.
    Lagged(u64),
}

impl Shard {
    /// Takes `first` and every batch already waiting into the window.
    fn absorb(&mut self, first: Option<Frames>) -> Absorbed {
        let mut batches: Vec<Frames> = first.into_iter().collect();
        loop {
            match self.rx.try_recv() {
                Ok(b) => batches.push(b),
                Err(broadcast::error::TryRecvError::Lagged(n)) => return Absorbed::Lagged(n),
                Err(_) => break,
            }
        }
        if self.window.extend(&batches) {
            Absorbed::Urgent
        } else {
            Absorbed::Held
        }
    }

    /// Brings every screen up to date, taking in events that arrive on the
    /// way; sweeps again while a screen passed early lacks an urgent one.
    async fn sweep(&mut self) {
        loop {
            self.due = None;
            let mut i = 0;
            while i < self.screens.len() {
                let end = (i + CHUNK).min(self.screens.len());
                for s in &mut self.screens[i..end] {
                    if !s.catch_up(&self.window) {
                        s.gone = true;
                    }
                }
                i = end;
                if let Absorbed::Lagged(missed) = self.absorb(None) {
                    self.resync(missed).await;
                    return;
                }
                tokio::task::yield_now().await;
            }
            self.screens.retain(|s| !s.gone);
            let last = self.window.last().unwrap_or(self.window.base);
            let behind = self
                .screens
                .iter()
                .map(|s| s.last_seq)
                .min()
                .unwrap_or(last);
            self.window.trim(behind);
            if behind < last {
                if self.window.urgent_after(behind) {
                    continue;
                }
                self.due = Some(Instant::now() + HOLD);
            }
            return;
        }
    }

    /// The shard fell behind the hub: it takes a new receiver and every one
    /// of its screens starts again from a snapshot (their tasks fetch it).
    async fn resync(&mut self, missed: u64) {
        tracing::warn!(
            missed,
            screens = self.screens.len(),
            "screens' fan-out fell behind; sending snapshots"
        );
        self.due = None;
        let catchup = self.hub.subscribe(None).await;
        self.rx = catchup.rx;
        self.window = Window::new(catchup.last_seq);
        for s in self.screens.drain(..) {
            if let Some(w) = s.wire.upgrade() {
                w.let_go(s.ticket);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::Frame;
    use axum::extract::ws::Utf8Bytes;

    fn batch(seqs: &[(u64, bool)]) -> Frames {
        seqs.iter()
            .map(|(seq, urgent)| Frame {
                seq: Some(*seq),
                audience: Audience::Everyone,
                urgent: *urgent,
                text: Utf8Bytes::from(format!(r#"{{"type":"event","seq":{seq}}}"#)),
                kiosk: None,
                public: None,
                maker: None,
            })
            .collect()
    }

    /// The seqs of the frames in a buffer of encoded frames (each payload
    /// as `batch` writes it: `{"type":"event","seq":N}`).
    fn seqs(b: &Bytes) -> Vec<u64> {
        let text = String::from_utf8_lossy(b);
        text.split("\"seq\":")
            .skip(1)
            .map(|rest| {
                let end = rest.find('}').unwrap();
                rest[..end].parse().unwrap()
            })
            .collect()
    }

    #[test]
    fn a_screen_gets_exactly_the_frames_after_its_last_seq() {
        let mut w = Window::new(10);
        assert!(!w.extend(&[batch(&[(11, false), (12, false)])]));
        assert!(w.extend(&[batch(&[(13, true)]), batch(&[(14, false)])]));
        // Duplicates and admin frames are not screens' frames.
        let admin: Frames = vec![Frame {
            seq: None,
            audience: Audience::Admins,
            urgent: true,
            text: Utf8Bytes::from("{}"),
            kiosk: None,
            public: None,
            maker: None,
        }]
        .into();
        assert!(!w.extend(&[batch(&[(12, true)]), admin]));
        assert_eq!(w.last(), Some(14));
        assert_eq!(seqs(&w.after(10).unwrap()), vec![11, 12, 13, 14]);
        assert_eq!(seqs(&w.after(12).unwrap()), vec![13, 14]);
        assert!(w.after(14).is_none());
        assert!(w.urgent_after(12));
        assert!(!w.urgent_after(13));
        assert!(w.covers(10) && w.covers(14) && !w.covers(9));
    }

    #[test]
    fn the_window_forgets_what_every_screen_has_but_keeps_recent_frames() {
        let mut w = Window::new(0);
        let many: Vec<(u64, bool)> = (1..=(KEEP as u64 + 100)).map(|s| (s, false)).collect();
        w.extend(&[batch(&many)]);
        w.trim(KEEP as u64 + 100);
        // The last KEEP frames stay for screens that join a little behind.
        assert_eq!(w.seqs.len(), KEEP);
        assert_eq!(w.base, 100);
        assert!(w.covers(100) && !w.covers(99));
        assert_eq!(seqs(&w.after(100).unwrap()).first(), Some(&101));
        assert_eq!(
            seqs(&w.after(KEEP as u64 + 99).unwrap()),
            vec![KEEP as u64 + 100]
        );
        // Trimming to what a screen still lacks keeps its frames.
        w.trim(50);
        assert_eq!(w.base, 100);
    }
}
