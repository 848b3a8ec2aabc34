//! The hub: the one owner of the engine state and the store.
//!
//! It runs on its own OS thread (sled's flush is blocking I/O) and takes
//! requests from a channel in batches: it applies every command of a batch to
//! the state, writes all their events in one sled batch, flushes once, and only
//! then answers and broadcasts (group commit). Reads and subscriptions are
//! served after the commit, so nobody sees state that is not durable. A slow
//! websocket client never holds the hub up: broadcasting is a non-blocking
//! send into a bounded channel, and a client that lags behind gets a snapshot.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use axum::extract::ws::Utf8Bytes;
use luot_protocol::{CounterInfo, DeviceInfo, EventKind, PrinterStatus, ServerMessage, Ticket};
use tokio::sync::{broadcast, mpsc, oneshot};

use crate::config::{DeviceRole, SiteConfig};
use crate::engine::{Command, Rejection, Site, State, Subject, render_record};
use crate::metrics::Metrics;
use crate::report;
use crate::store::{Record, Session, Store, StoreError, StoredSnapshot, WriteBatch};

/// Most requests taken into one group commit.
const MAX_BATCH: usize = 1024;
/// Write a state snapshot every this many log records.
const SNAPSHOT_EVERY: u64 = 10_000;
/// Keep this many log records behind the latest snapshot (history, forensics).
const KEEP_BEHIND_SNAPSHOT: u64 = 200_000;
/// Events kept in memory for `hello` with `since`.
const RESUME_RING: usize = 20_000;
/// Group commits a websocket client may fall behind before it gets a snapshot.
pub const BROADCAST_CAPACITY: usize = 1024;

/// What one group commit broadcasts: its frames, in order. One message per
/// commit wakes each client once, however many events the commit holds.
pub type Frames = Arc<[Frame]>;

/// A frame for websocket clients.
#[derive(Clone, Debug)]
pub struct Frame {
    pub seq: Option<u64>,
    /// Device frames go only to admins.
    pub admin_only: bool,
    /// A call, recall or counter/day change: screens show or announce it at
    /// once. Other events (list updates) may wait a moment to share a write
    /// with the next ones (see `fanout.rs`).
    pub urgent: bool,
    pub text: Utf8Bytes,
}

/// What a command answers.
#[derive(Debug, Clone)]
pub enum Outcome {
    Ticket(Box<Ticket>),
    /// The same `request_id` again: the ticket as it is now.
    Replayed(Box<Ticket>),
    Counter(Box<CounterInfo>),
    Nothing,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum HubError {
    #[error(transparent)]
    Rejected(#[from] Rejection),
    #[error(
        "Hệ thống tạm thời không lưu được dữ liệu; vui lòng thử lại (the store cannot be written: {0})"
    )]
    Unavailable(String),
}

/// The start of a websocket subscription: what to send first, then `rx`.
pub struct Catchup {
    pub frames: Vec<Utf8Bytes>,
    pub rx: broadcast::Receiver<Frames>,
}

/// The hub's own state, given to read closures.
pub struct Inner {
    pub state: State,
    pub store: Arc<Store>,
    /// Hands snapshots to the writer thread; full while it is busy.
    snapshot_tx: std::sync::mpsc::SyncSender<StoredSnapshot>,
    /// Set while the writer thread works on a snapshot.
    snapshot_busy: Arc<std::sync::atomic::AtomicBool>,
    pub config: Arc<SiteConfig>,
    pub devices: HashMap<String, DeviceLive>,
    next_seq: u64,
    next_index: u64,
    last_snapshot_index: u64,
    ring: VecDeque<(u64, Utf8Bytes)>,
    /// Set after a failed commit whose state could not be rebuilt: the log
    /// index to truncate from before trying again.
    broken: Option<u64>,
    tx: broadcast::Sender<Frames>,
    metrics: Arc<Metrics>,
}

#[derive(Default, Clone)]
pub struct DeviceLive {
    pub connections: u32,
    pub printer: Option<PrinterStatus>,
    pub last_seen: Option<i64>,
}

type ReadFn = Box<dyn FnOnce(&mut Inner) + Send>;

pub enum DeviceUpdate {
    Connected,
    Disconnected,
    Seen,
    Printer(PrinterStatus),
}

enum Request {
    Command {
        cmd: Command,
        reply: oneshot::Sender<Result<Outcome, HubError>>,
    },
    PutSession {
        token_hash: String,
        session: Session,
        reply: oneshot::Sender<Result<(), HubError>>,
    },
    Read(ReadFn),
    Device {
        id: String,
        update: DeviceUpdate,
    },
    Shutdown(oneshot::Sender<()>),
}

/// A handle to the hub; cheap to clone.
#[derive(Clone)]
pub struct Hub {
    tx: mpsc::Sender<Request>,
}

impl Hub {
    /// Loads the store and starts the hub thread.
    pub fn start(
        config: Arc<SiteConfig>,
        store: Store,
        metrics: Arc<Metrics>,
    ) -> Result<Hub, StoreError> {
        let site = Site::from_config(&config);
        let (state, next_seq, next_index, last_snapshot_index) = rebuild(&site, &store)?;
        let store = Arc::new(store);
        let snapshot_busy = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let snapshot_tx = spawn_snapshot_writer(store.clone(), snapshot_busy.clone())?;
        // LUOT_BROADCAST_CAPACITY exists for tests that need a client to lag.
        let capacity = std::env::var("LUOT_BROADCAST_CAPACITY")
            .ok()
            .and_then(|v| v.parse().ok())
            .filter(|n| *n > 0)
            .unwrap_or(BROADCAST_CAPACITY);
        let (btx, _) = broadcast::channel(capacity);
        let (tx, rx) = mpsc::channel(64 * 1024);
        let devices = config
            .devices
            .iter()
            .map(|d| (d.id.clone(), DeviceLive::default()))
            .collect();
        let inner = Inner {
            state,
            store,
            snapshot_tx,
            snapshot_busy,
            config,
            devices,
            next_seq,
            next_index,
            last_snapshot_index,
            ring: VecDeque::new(),
            broken: None,
            tx: btx.clone(),
            metrics,
        };
        inner.update_gauges();
        std::thread::Builder::new()
            .name("luot-hub".into())
            .spawn(move || run(inner, rx))?;
        Ok(Hub { tx })
    }

    async fn send(&self, r: Request) -> Result<(), HubError> {
        self.tx.send(r).await.map_err(|_| stopping())
    }

    /// Applies a command; answers once its events are durable.
    pub async fn command(&self, cmd: Command) -> Result<Outcome, HubError> {
        let (reply, rx) = oneshot::channel();
        self.send(Request::Command { cmd, reply }).await?;
        rx.await.map_err(|_| stopping())?
    }

    pub async fn put_session(&self, token_hash: String, session: Session) -> Result<(), HubError> {
        let (reply, rx) = oneshot::channel();
        self.send(Request::PutSession {
            token_hash,
            session,
            reply,
        })
        .await?;
        rx.await.map_err(|_| stopping())?
    }

    /// Runs `f` on the hub's state after the current batch is durable.
    pub async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Inner) -> T + Send + 'static,
    ) -> Result<T, HubError> {
        let (tx, rx) = oneshot::channel();
        self.send(Request::Read(Box::new(move |inner| {
            let _ = tx.send(f(inner));
        })))
        .await?;
        rx.await.map_err(|_| stopping())
    }

    /// Subscribes to the event stream: the missed events after `since` when
    /// the hub still holds them all, otherwise a snapshot.
    pub async fn subscribe(&self, since: Option<u64>) -> Result<Catchup, HubError> {
        self.read(move |inner| inner.catchup(since)).await
    }

    pub fn device(&self, id: &str, update: DeviceUpdate) {
        let _ = self.tx.try_send(Request::Device {
            id: id.to_string(),
            update,
        });
    }

    /// Finishes what is queued, flushes, and stops the hub thread.
    pub async fn shutdown(&self) {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Request::Shutdown(tx)).await.is_ok() {
            let _ = rx.await;
        }
    }
}

fn stopping() -> HubError {
    HubError::Unavailable("the server is shutting down".into())
}

/// Shift of the hub's clock, from `LUOT_CLOCK_OFFSET_S` (for tests and
/// rehearsals of a day change; never set it on a real site).
static CLOCK_OFFSET_MS: std::sync::LazyLock<i64> = std::sync::LazyLock::new(|| {
    std::env::var("LUOT_CLOCK_OFFSET_S")
        .ok()
        .and_then(|s| s.parse::<i64>().ok())
        .map(|s| s * 1000)
        .unwrap_or(0)
});

/// Speed of the hub's clock, from `LUOT_CLOCK_SPEED` (tests only: a factor
/// of 720 runs a 12-hour day in a minute), with the real time it started at.
static CLOCK_SPEED: std::sync::LazyLock<(f64, i64)> = std::sync::LazyLock::new(|| {
    let speed = std::env::var("LUOT_CLOCK_SPEED")
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s > 0.0)
        .unwrap_or(1.0);
    (speed, chrono::Utc::now().timestamp_millis())
});

/// The hub's clock: the only place the queue reads the time.
pub fn now_ms() -> i64 {
    let real = chrono::Utc::now().timestamp_millis();
    let (speed, since) = *CLOCK_SPEED;
    let t = if speed == 1.0 {
        real
    } else {
        since + ((real - since) as f64 * speed) as i64
    };
    t + *CLOCK_OFFSET_MS
}

/// The thread that writes state snapshots, so the hub never waits for one.
/// The log is the truth: a snapshot that is lost or late only makes the next
/// start-up replay more.
fn spawn_snapshot_writer(
    store: Arc<Store>,
    busy: Arc<std::sync::atomic::AtomicBool>,
) -> std::io::Result<std::sync::mpsc::SyncSender<StoredSnapshot>> {
    let (tx, rx) = std::sync::mpsc::sync_channel::<StoredSnapshot>(1);
    std::thread::Builder::new()
        .name("luot-snapshot".into())
        .spawn(move || {
            for snap in rx {
                let t0 = std::time::Instant::now();
                match store.write_snapshot(&snap) {
                    Ok(()) => {
                        tracing::debug!(index = snap.index, took_ms = t0.elapsed().as_millis() as u64, "state snapshot written");
                        if snap.index > KEEP_BEHIND_SNAPSHOT
                            && let Err(e) =
                                store.prune_log(snap.index - KEEP_BEHIND_SNAPSHOT, 20_000)
                            {
                                tracing::warn!(error = %e, "pruning old log records failed");
                            }
                    }
                    Err(e) => tracing::warn!(error = %e, "writing a state snapshot failed; the log still has everything"),
                }
                busy.store(false, std::sync::atomic::Ordering::Release);
            }
        })?;
    Ok(tx)
}

/// Rebuilds the state from the latest snapshot plus the log after it, and
/// checks that `seq` has no gap.
fn rebuild(site: &Arc<Site>, store: &Store) -> Result<(State, u64, u64, u64), StoreError> {
    let loaded = store.load()?;
    let (mut state, mut last_seq, mut last_index) = match loaded.snapshot {
        Some(s) => (
            State::from_snapshot(site.clone(), s.state),
            s.seq,
            Some(s.index),
        ),
        None => (State::new(site.clone()), 0, None),
    };
    let snap_index = last_index.unwrap_or(0);
    for (index, rec) in loaded.records {
        if let Some(prev) = last_index
            && index != prev + 1
        {
            return Err(StoreError::Corrupt(format!(
                "event log jumps from record {prev} to {index}"
            )));
        }
        if let Some(seq) = rec.seq {
            if seq != last_seq + 1 {
                return Err(StoreError::Corrupt(format!(
                    "seq jumps from {last_seq} to {seq}"
                )));
            }
            last_seq = seq;
        }
        state.apply_event(&rec.event);
        last_index = Some(index);
    }
    let next_index = last_index.map(|i| i + 1).unwrap_or(0);
    Ok((state, last_seq + 1, next_index, snap_index))
}

struct Pending {
    reply: PendingReply,
    result: Result<Outcome, HubError>,
}

enum PendingReply {
    Command(oneshot::Sender<Result<Outcome, HubError>>),
    Session(oneshot::Sender<Result<(), HubError>>),
}

fn run(mut inner: Inner, mut rx: mpsc::Receiver<Request>) {
    let mut requests = Vec::with_capacity(MAX_BATCH);
    loop {
        let Some(first) = rx.blocking_recv() else {
            break;
        };
        requests.push(first);
        while requests.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(r) => requests.push(r),
                Err(_) => break,
            }
        }
        let shutdown = inner.process(&mut requests);
        if let Some(done) = shutdown {
            tracing::info!("hub stopped; every acknowledged command is on disk");
            let _ = done.send(());
            break;
        }
    }
}

impl Inner {
    /// After a failed commit whose state could not be rebuilt: try again.
    fn recover(&mut self) -> bool {
        let Some(index0) = self.broken else {
            return true;
        };
        let rebuilt = self
            .store
            .reopen()
            .and_then(|()| self.store.truncate_log_from(index0))
            .and_then(|_| rebuild(self.state.site(), &self.store));
        match rebuilt {
            Ok((state, next_seq, next_index, snap)) => {
                tracing::info!("store back; state rebuilt from disk");
                self.state = state;
                self.next_seq = next_seq;
                self.next_index = next_index;
                self.last_snapshot_index = snap;
                self.broken = None;
                true
            }
            Err(_) => false,
        }
    }

    /// One group commit. Returns the shutdown reply when asked to stop.
    fn process(&mut self, requests: &mut Vec<Request>) -> Option<oneshot::Sender<()>> {
        if !self.recover() {
            let why = "Hệ thống tạm thời không lưu được dữ liệu (the store is unavailable)";
            for req in requests.drain(..) {
                match req {
                    Request::Command { reply, .. } => {
                        let _ = reply.send(Err(HubError::Unavailable(why.into())));
                    }
                    Request::PutSession { reply, .. } => {
                        let _ = reply.send(Err(HubError::Unavailable(why.into())));
                    }
                    Request::Read(f) => f(self),
                    Request::Device { .. } => {}
                    Request::Shutdown(tx) => return Some(tx),
                }
            }
            return None;
        }
        let now = now_ms();
        let mut batch = WriteBatch::default();
        let mut pending: Vec<Pending> = Vec::new();
        // (seq, frame, urgent) of each public event.
        let mut frames: Vec<(u64, Utf8Bytes, bool)> = Vec::new();
        let mut reads: Vec<ReadFn> = Vec::new();
        let mut device_frames: Vec<Utf8Bytes> = Vec::new();
        let mut shutdown = None;
        let mut issued = 0u64;
        let mut day_started = false;
        let (seq0, index0) = (self.next_seq, self.next_index);

        for req in requests.drain(..) {
            match req {
                Request::Command { cmd, reply } => {
                    let applied = self.state.apply(cmd, now);
                    for e in &applied.events {
                        let seq = if e.is_public() {
                            let s = self.next_seq;
                            self.next_seq += 1;
                            if let Some(w) = self.state.render_event(e) {
                                let urgent = !matches!(
                                    w.kind,
                                    EventKind::TicketIssued
                                        | EventKind::TicketDone
                                        | EventKind::TicketNoShow
                                        | EventKind::TicketTransferred
                                );
                                let msg = ServerMessage::Event { seq: s, event: w };
                                frames.push((s, to_text(&msg), urgent));
                            }
                            Some(s)
                        } else {
                            None
                        };
                        if matches!(e, crate::engine::Event::TicketIssued { .. }) {
                            issued += 1;
                        }
                        batch.record(
                            self.next_index,
                            &Record {
                                seq,
                                event: e.clone(),
                            },
                        );
                        self.next_index += 1;
                    }
                    day_started |= !applied.archives.is_empty();
                    for a in &applied.archives {
                        let day = a.day.to_string();
                        for t in &a.tickets {
                            batch.archive_ticket(&t.id, t);
                        }
                        batch.report(&day, &report::daily(&self.config, &day, &a.tickets));
                    }
                    let result = match applied.result {
                        Some(Ok(subject)) => Ok(self.outcome(subject)),
                        Some(Err(r)) => Err(HubError::Rejected(r)),
                        None => Ok(Outcome::Nothing),
                    };
                    pending.push(Pending {
                        reply: PendingReply::Command(reply),
                        result,
                    });
                }
                Request::PutSession {
                    token_hash,
                    session,
                    reply,
                } => {
                    batch.session(&token_hash, &session);
                    pending.push(Pending {
                        reply: PendingReply::Session(reply),
                        result: Ok(Outcome::Nothing),
                    });
                }
                Request::Read(f) => reads.push(f),
                Request::Device { id, update } => {
                    if let Some(f) = self.device_update(&id, update, now) {
                        device_frames.push(f);
                    }
                }
                Request::Shutdown(tx) => shutdown = Some(tx),
            }
        }

        let committed = if batch.is_empty() {
            Ok(())
        } else {
            match self.store.commit(batch) {
                Ok(took) => {
                    self.metrics.flush_seconds.observe(took.as_secs_f64());
                    Ok(())
                }
                Err(e) => Err(e),
            }
        };

        match committed {
            Ok(()) => {
                self.metrics.tickets_issued.inc_by(issued);
                self.maybe_snapshot();
                if day_started {
                    // Sessions expire in real time, whatever the queue clock says.
                    match self
                        .store
                        .prune_sessions(chrono::Utc::now().timestamp_millis())
                    {
                        Ok(n) if n > 0 => {
                            tracing::info!(removed = n, "expired login sessions removed")
                        }
                        Ok(_) => {}
                        Err(e) => tracing::warn!(error = %e, "pruning login sessions failed"),
                    }
                }
                // Gauges first: whoever got an answer and reads /metrics next
                // sees its own ticket counted.
                if seq0 != self.next_seq {
                    self.update_gauges();
                }
                for p in pending {
                    match p.reply {
                        PendingReply::Command(tx) => {
                            let _ = tx.send(p.result);
                        }
                        PendingReply::Session(tx) => {
                            let _ = tx.send(Ok(()));
                        }
                    }
                }
                if !frames.is_empty() {
                    let batch: Frames = frames
                        .iter()
                        .map(|(seq, text, urgent)| Frame {
                            seq: Some(*seq),
                            admin_only: false,
                            urgent: *urgent,
                            text: text.clone(),
                        })
                        .collect();
                    let _ = self.tx.send(batch);
                }
                self.ring
                    .extend(frames.into_iter().map(|(seq, text, _)| (seq, text)));
                while self.ring.len() > RESUME_RING {
                    self.ring.pop_front();
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "group commit failed; answering 503 and reloading state from disk");
                self.metrics.store_errors.inc();
                let why = e.to_string();
                for p in pending {
                    match p.reply {
                        PendingReply::Command(tx) => {
                            let _ = tx.send(Err(HubError::Unavailable(why.clone())));
                        }
                        PendingReply::Session(tx) => {
                            let _ = tx.send(Err(HubError::Unavailable(why.clone())));
                        }
                    }
                }
                // sled refuses every write after an I/O error: reopen it, drop
                // whatever of this batch reached the log (never acknowledged),
                // and rebuild the state from what was. Until that works, every
                // command is answered 503.
                self.broken = Some(index0);
                if !self.recover() {
                    tracing::error!(
                        "the store cannot be reopened yet; refusing commands until it can"
                    );
                }
            }
        }
        if !device_frames.is_empty() {
            let batch: Frames = device_frames
                .into_iter()
                .map(|text| Frame {
                    seq: None,
                    admin_only: true,
                    urgent: true,
                    text,
                })
                .collect();
            let _ = self.tx.send(batch);
        }
        for f in reads {
            f(self);
        }
        shutdown
    }

    /// Every `SNAPSHOT_EVERY` records, saves the state so a restart replays
    /// little; then drops log records far behind it.
    fn maybe_snapshot(&mut self) {
        if self.next_index - self.last_snapshot_index < SNAPSHOT_EVERY
            || self.next_index == 0
            || self
                .snapshot_busy
                .load(std::sync::atomic::Ordering::Acquire)
        {
            return;
        }
        let index = self.next_index - 1;
        let snap = StoredSnapshot {
            index,
            seq: self.next_seq - 1,
            state: self.state.to_snapshot(),
        };
        // Serialising and writing happen on the writer thread.
        self.snapshot_busy
            .store(true, std::sync::atomic::Ordering::Release);
        if self.snapshot_tx.try_send(snap).is_ok() {
            self.last_snapshot_index = index;
        } else {
            self.snapshot_busy
                .store(false, std::sync::atomic::Ordering::Release);
        }
    }

    /// The answer for a successful command, rendered right after it.
    fn outcome(&self, subject: Subject) -> Outcome {
        match subject {
            Subject::Ticket(id) => match self.state.ticket(&id) {
                Some(t) => Outcome::Ticket(Box::new(self.state.render_ticket(t))),
                None => Outcome::Nothing,
            },
            Subject::Replayed(id) => match self.ticket(&id) {
                Some(t) => Outcome::Replayed(Box::new(t)),
                None => Outcome::Nothing,
            },
            Subject::Counter(id) => match self.state.counter_info(&id) {
                Some(c) => Outcome::Counter(Box::new(c)),
                None => Outcome::Nothing,
            },
            Subject::Nothing => Outcome::Nothing,
        }
    }

    /// A ticket of today or of a past day, as it is now.
    pub fn ticket(&self, id: &str) -> Option<Ticket> {
        if let Some(t) = self.state.ticket(id) {
            return Some(self.state.render_ticket(t));
        }
        self.store
            .archived_ticket(id)
            .map(|t| render_record(self.state.site(), &t, None, None))
    }

    /// The last public seq.
    pub fn seq(&self) -> u64 {
        self.next_seq - 1
    }

    pub fn snapshot_frame(&self) -> Utf8Bytes {
        to_text(&ServerMessage::Snapshot {
            seq: self.seq(),
            state: self.state.board(),
        })
    }

    fn catchup(&mut self, since: Option<u64>) -> Catchup {
        let rx = self.tx.subscribe();
        let last = self.seq();
        let frames = match since {
            Some(s) if s == last => vec![],
            Some(s) if s < last && self.ring.front().is_some_and(|(first, _)| *first <= s + 1) => {
                let start = self.ring.len() - (last - s) as usize;
                self.ring
                    .iter()
                    .skip(start)
                    .map(|(_, t)| t.clone())
                    .collect()
            }
            _ => vec![self.snapshot_frame()],
        };
        Catchup { frames, rx }
    }

    fn device_update(&mut self, id: &str, update: DeviceUpdate, now: i64) -> Option<Utf8Bytes> {
        let d = self.devices.get_mut(id)?;
        let before = (d.connections > 0, d.printer);
        match update {
            DeviceUpdate::Connected => d.connections += 1,
            DeviceUpdate::Disconnected => d.connections = d.connections.saturating_sub(1),
            DeviceUpdate::Seen => {}
            DeviceUpdate::Printer(p) => {
                if d.printer != Some(p) {
                    tracing::info!(device = id, printer = ?p, "printer status");
                }
                d.printer = Some(p);
            }
        }
        d.last_seen = Some(now);
        let after = (d.connections > 0, d.printer);
        self.metrics.set_printer(id, d.printer);
        if before == after {
            return None;
        }
        let info = self.device_info(id)?;
        Some(to_text(&ServerMessage::Device { device: info }))
    }

    pub fn device_info(&self, id: &str) -> Option<DeviceInfo> {
        let cfg = self.config.devices.iter().find(|d| d.id == id)?;
        let live = self.devices.get(id).cloned().unwrap_or_default();
        Some(DeviceInfo {
            id: cfg.id.clone(),
            role: match cfg.role {
                DeviceRole::Kiosk => "kiosk".into(),
                DeviceRole::Display => "display".into(),
            },
            connected: live.connections > 0,
            printer: live.printer,
            last_seen: live.last_seen.map(|t| self.state.site().fmt_time(t)),
        })
    }

    fn update_gauges(&self) {
        for (i, s) in self.state.site().services.iter().enumerate() {
            self.metrics.set_waiting(&s.id, self.state.waiting_count(i));
        }
    }

    /// Writes a consistent backup: called between batches, so no write races it.
    pub fn backup(&self) -> Result<Vec<u8>, StoreError> {
        let mut buf = Vec::new();
        self.store.backup_to(&mut buf)?;
        Ok(buf)
    }

    pub fn probe(&self) -> Result<(), StoreError> {
        self.store.probe()
    }
}

fn to_text(m: &ServerMessage) -> Utf8Bytes {
    Utf8Bytes::from(serde_json::to_string(m).unwrap_or_default())
}
