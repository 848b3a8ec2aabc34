//! The hub: the one owner of the queue state and the store. Its loop does
//! the I/O and nothing else: it takes requests from a channel in batches,
//! asks the planner (`plan.rs`) what they do, commits the plan's batch to the
//! store in one write, and only then answers and broadcasts (group commit).
//! When a commit fails it asks the store what became of it (`recover`) and,
//! unless it is stored after all, answers 503 and has the planner rebuild
//! from what the store holds.
//!
//! Reads are named queries on `Hub` (ticket, site, report, visits_report, session,
//! devices, backup, subscribe) that run on the caller's task, not on the
//! writer thread: the planner sits behind a read-write lock that the loop
//! holds from planning until the batch is durable and broadcast, so a
//! query never sees state that is not durable, and a subscription never
//! misses or repeats an event. A slow websocket client never holds the hub
//! up: broadcasting is a non-blocking send into a bounded channel, and a
//! client that lags behind gets a snapshot.

#[cfg(test)]
mod tests;

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use chrono::NaiveDate;
use luot_protocol::{
    Appointment, Capacity, DailyReport, DeviceInfo, ServerMessage, SiteInfo, SlotsResponse, Ticket,
    VisitsReport,
};
use tokio::sync::{RwLock, broadcast, mpsc, oneshot, watch};

use crate::clock::Knobs;
use crate::config::SiteConfig;
use crate::engine::render::render_record;
use crate::engine::{Command, ListFilter, Site, TicketRec};
use crate::frame::{Frame, Frames};
use crate::ha::{Reason, Role, RoleState};
use crate::metrics::Metrics;
pub use crate::plan::{DeviceUpdate, HubError, Notice, NoticeKind, Outcome, Reply};
use crate::plan::{Input, Plan, Planner};
use crate::report;
use crate::store::{Appended, Recovered, Session, Store, StoreError, StoredSnapshot};

/// Most requests taken into one group commit.
const MAX_BATCH: usize = 1024;
/// Write a state snapshot every this many log records.
const SNAPSHOT_EVERY: u64 = 10_000;
/// Keep this many log records behind the latest snapshot (history, forensics).
const KEEP_BEHIND_SNAPSHOT: u64 = 200_000;
/// Events kept in memory for `hello` with `since`.
const RESUME_RING: usize = 20_000;

/// The start of a websocket subscription: what to send first, then `rx`.
pub struct Catchup {
    pub frames: Vec<Frame>,
    /// The seq of the last event `frames` bring the client to.
    pub last_seq: u64,
    pub rx: broadcast::Receiver<Frames>,
}

/// The planner and what goes with each committed batch, under one lock.
struct Core {
    planner: Planner,
    /// Recent event frames for resumes, oldest first.
    ring: VecDeque<Frame>,
    tx: broadcast::Sender<Frames>,
}

/// What the handle and the loop share.
struct Shared {
    core: RwLock<Core>,
    store: Arc<dyn Store>,
    site: Arc<Site>,
    config: Arc<SiteConfig>,
    metrics: Arc<Metrics>,
    /// The queue's clock, for queries whose answer depends on the time
    /// (capacities, slots).
    clock: crate::clock::Clock,
    /// The last durable public seq, for followers of the store's webhook
    /// outbox: set after each commit that stored webhook bodies, never
    /// waited on.
    head: watch::Sender<u64>,
    /// Where phone alerts due after a commit go (the notifier), if anywhere.
    notices: std::sync::OnceLock<mpsc::Sender<Notice>>,
    /// Primary, standby or starting (§13); a sled hub is always the primary.
    role: watch::Sender<RoleState>,
    /// With PostgreSQL, a command unanswered this long gets 503 (rule 103).
    answer_within: Option<std::time::Duration>,
    /// The last durable public seq, readable without the planner's lock
    /// (a commit that waits for a synchronous standby holds that lock;
    /// `/healthz` and `/api/v1/ha` must still answer).
    durable_seq: std::sync::atomic::AtomicU64,
}

enum Request {
    /// Boxed: a command with a card and random bytes is large, a shutdown small.
    Input(Box<Input>, Option<oneshot::Sender<Reply>>),
    Shutdown(oneshot::Sender<()>),
    /// Rebuild from the store and serve as the primary (rule 104).
    TakeOver(oneshot::Sender<Result<(), String>>),
    /// An idle primary's beat (rule 102), every second.
    Beat,
}

/// A handle to the hub; cheap to clone.
#[derive(Clone)]
pub struct Hub {
    tx: mpsc::Sender<Request>,
    shared: Arc<Shared>,
}

impl Hub {
    /// Loads the store and starts the hub thread, as the primary.
    pub fn start(
        config: Arc<SiteConfig>,
        store: Arc<dyn Store>,
        metrics: Arc<Metrics>,
        knobs: Knobs,
    ) -> Result<Hub, StoreError> {
        let loaded = store.load()?;
        Self::start_as(
            config,
            store,
            metrics,
            knobs,
            loaded,
            RoleState::primary(),
            None,
        )
    }

    /// Starts the hub of a PostgreSQL site as `starting`, with what the
    /// store holds now when it can be read (a replica may not have the
    /// site's tables yet): it serves once `take_over` succeeds, and answers
    /// every command within 10 s (rule 103).
    pub fn start_standby(
        config: Arc<SiteConfig>,
        store: Arc<dyn Store>,
        metrics: Arc<Metrics>,
        knobs: Knobs,
    ) -> Result<Hub, StoreError> {
        let loaded = store.load().unwrap_or(crate::store::Loaded {
            snapshot: None,
            records: Vec::new(),
            index: None,
            day_keys: Vec::new(),
        });
        Self::start_as(
            config,
            store,
            metrics,
            knobs,
            loaded,
            RoleState::starting(),
            Some(std::time::Duration::from_secs(10)),
        )
    }

    fn start_as(
        config: Arc<SiteConfig>,
        store: Arc<dyn Store>,
        metrics: Arc<Metrics>,
        knobs: Knobs,
        loaded: crate::store::Loaded,
        role: RoleState,
        answer_within: Option<std::time::Duration>,
    ) -> Result<Hub, StoreError> {
        let index = loaded.index;
        let planner = Planner::new(config.clone(), loaded)?;
        let seq0 = planner.seq();
        let (btx, _) = broadcast::channel(knobs.broadcast_capacity);
        let head = watch::Sender::new(planner.seq());
        let shared = Arc::new(Shared {
            head,
            site: planner.state().site().clone(),
            core: RwLock::new(Core {
                planner,
                ring: VecDeque::new(),
                tx: btx,
            }),
            store: store.clone(),
            config,
            metrics,
            clock: knobs.clock,
            notices: std::sync::OnceLock::new(),
            role: watch::Sender::new(role),
            answer_within,
            durable_seq: std::sync::atomic::AtomicU64::new(seq0),
        });
        let (tx, rx) = mpsc::channel(64 * 1024);
        let writer = Writer {
            shared: shared.clone(),
            clock: knobs.clock,
            snapshots: SnapshotWriter::start(store)?,
            index,
            snapshot_index: index,
            broken: false,
            last_write: std::time::Instant::now(),
        };
        writer.update_gauges(&*shared.core.try_read().map_err(|_| StoreError::Closed)?);
        std::thread::Builder::new()
            .name("luot-hub".into())
            .spawn(move || writer.run(rx))?;
        Ok(Hub { tx, shared })
    }

    /// The role now and its changes (§13).
    pub fn role(&self) -> watch::Receiver<RoleState> {
        self.shared.role.subscribe()
    }

    /// Sets the role of a server that is not the primary (the controller's
    /// view of the store); the primary's role is the hub's own.
    pub fn set_role(&self, r: RoleState) {
        self.shared.role.send_if_modified(|now| {
            if now.is_primary() || *now == r {
                return false;
            }
            *now = r;
            true
        });
    }

    /// Rebuilds the state from the store and serves (rule 104).
    pub async fn take_over(&self) -> Result<(), String> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(Request::TakeOver(tx))
            .await
            .map_err(|_| "the hub stopped".to_string())?;
        rx.await.map_err(|_| "the hub stopped".to_string())?
    }

    /// Asks the hub to beat if it has been idle (rule 102).
    pub fn beat(&self) {
        let _ = self.tx.try_send(Request::Beat);
    }

    async fn send(&self, input: Input) -> Result<Reply, HubError> {
        let (reply, rx) = oneshot::channel();
        let send = async {
            self.tx
                .send(Request::Input(Box::new(input), Some(reply)))
                .await
                .map_err(|_| stopping())?;
            rx.await.map_err(|_| stopping())
        };
        match self.shared.answer_within {
            None => send.await,
            Some(d) => tokio::time::timeout(d, send).await.unwrap_or_else(|_| {
                Err(HubError::Unavailable(
                    "Hệ thống chưa lưu được yêu cầu trong 10 giây (no answer from the store within 10 s)"
                        .into(),
                ))
            }),
        }
    }

    /// Applies a command; answers once its events are durable.
    pub async fn command(&self, cmd: Command) -> Result<Outcome, HubError> {
        match self.send(Input::Command(cmd)).await?? {
            Outcome::ReplayedArchived(id) => match self.ticket(&id).await? {
                Some(t) => Ok(Outcome::Replayed(Box::new(t))),
                None => Ok(Outcome::Nothing),
            },
            other => Ok(other),
        }
    }

    /// Stores a login session; answers once it is durable.
    pub async fn put_session(&self, token_hash: String, session: Session) -> Result<(), HubError> {
        self.send(Input::Session {
            token_hash,
            session,
        })
        .await??;
        Ok(())
    }

    /// From now on, phone alerts due after each commit (rule 91) go to `tx`,
    /// without waiting: when it is full they are dropped and logged.
    pub fn send_notices_to(&self, tx: mpsc::Sender<Notice>) {
        let _ = self.shared.notices.set(tx);
    }

    /// A ticket's alert contacts, opened (for the notifier only).
    pub async fn notify_contacts(&self, ticket: &str) -> Option<crate::engine::notify::Contacts> {
        self.shared
            .core
            .read()
            .await
            .planner
            .state()
            .notify_contacts(ticket)
    }

    /// A ticket's alert channels as its holder sees them: (sms, push).
    pub async fn notify_status(&self, ticket: &str) -> (bool, u8) {
        self.shared
            .core
            .read()
            .await
            .planner
            .state()
            .notify_status(ticket)
    }

    /// The site's VAPID private key, once made (rule 93).
    pub async fn vapid(&self) -> Option<[u8; 32]> {
        self.shared.core.read().await.planner.state().vapid()
    }

    /// Notes a device's connection or printer change (nobody waits for it).
    pub fn device(&self, id: &str, update: DeviceUpdate) {
        let input = Input::Device {
            id: id.to_string(),
            update,
        };
        let _ = self.tx.try_send(Request::Input(Box::new(input), None));
    }

    /// Finishes what is queued, flushes, and stops the hub thread.
    pub async fn shutdown(&self) {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Request::Shutdown(tx)).await.is_ok() {
            let _ = rx.await;
        }
    }

    // ------------------------------------------------------------ queries

    /// Runs a store read off the async runtime.
    async fn store_read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&dyn Store) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, HubError> {
        let store = self.shared.store.clone();
        tokio::task::spawn_blocking(move || f(store.as_ref()))
            .await
            .map_err(|_| stopping())?
            .map_err(|e| HubError::Unavailable(e.to_string()))
    }

    /// A ticket of today or of a past day, as it is now.
    pub async fn ticket(&self, id: &str) -> Result<Option<Ticket>, HubError> {
        {
            let core = self.shared.core.read().await;
            let st = core.planner.state();
            if let Some(t) = st.ticket(id) {
                return Ok(Some(st.render_ticket(t)));
            }
        }
        let id = id.to_string();
        let site = self.shared.site.clone();
        let rec = self.store_read(move |s| s.archived_ticket(&id)).await?;
        Ok(rec.map(|t| render_record(&site, &t)))
    }

    /// Today's tickets whose `external_ref` is exactly `r` (rule 87), in
    /// order of issue, each with the service it was issued for.
    pub async fn tickets_by_ref(&self, r: &str) -> Vec<(String, Ticket)> {
        let core = self.shared.core.read().await;
        let st = core.planner.state();
        st.tickets()
            .iter()
            .filter(|t| t.external_ref.as_deref() == Some(r))
            .map(|t| (t.issued_service.clone(), st.render_ticket(t)))
            .collect()
    }

    /// `GET /api/v1/site`.
    pub async fn site(&self) -> SiteInfo {
        let now = self.shared.clock.now_ms();
        self.shared.core.read().await.planner.state().site_info(now)
    }

    /// The queue's day now (rule 6).
    pub async fn today(&self) -> NaiveDate {
        let now = self.shared.clock.now_ms();
        self.shared.core.read().await.planner.state().today(now)
    }

    /// Every service's capacity now (rule 74), by id.
    pub async fn capacities(&self) -> Vec<(String, Capacity)> {
        let now = self.shared.clock.now_ms();
        let core = self.shared.core.read().await;
        let st = core.planner.state();
        st.site()
            .services
            .iter()
            .enumerate()
            .map(|(i, s)| (s.id.clone(), st.capacity(i, now)))
            .collect()
    }

    /// A kept booking, whole, with the scope of its maker.
    pub async fn appointment(&self, id: &str) -> Option<(Appointment, String)> {
        let core = self.shared.core.read().await;
        let st = core.planner.state();
        let rec = st.appointment(id)?;
        Some((st.render_appointment(rec), rec.scope.clone()))
    }

    /// `GET /appointments`.
    pub async fn appointments(&self, filter: ListFilter<'_>) -> Vec<Appointment> {
        let core = self.shared.core.read().await;
        core.planner.state().appointments(&filter)
    }

    /// `GET /appointments/slots` of a known service on `day`.
    pub async fn slots(&self, service: &str, day: NaiveDate) -> Option<SlotsResponse> {
        let now = self.shared.clock.now_ms();
        let core = self.shared.core.read().await;
        let st = core.planner.state();
        let s = st.site().service_idx(service)?;
        Some(st.slots(s, day, now))
    }

    /// The daily report of `day` (default: today).
    pub async fn report(&self, day: Option<String>) -> Result<DailyReport, HubError> {
        self.day_report(day, report::daily, |s, d| s.archived_report(d))
            .await
    }

    /// The visits report of `day` (rule 58; default: today).
    pub async fn visits_report(&self, day: Option<String>) -> Result<VisitsReport, HubError> {
        self.day_report(day, report::visits, |s, d| s.archived_visits(d))
            .await
    }

    /// A report of `day` (default: today): today's made from the state off
    /// the hub's thread, a past day's as the planner stored it when the day
    /// ended (an empty one for a day with none stored).
    async fn day_report<R: Send + 'static>(
        &self,
        day: Option<String>,
        make: fn(&SiteConfig, &str, &[TicketRec]) -> R,
        stored: fn(&dyn Store, &str) -> Result<Option<R>, StoreError>,
    ) -> Result<R, HubError> {
        let config = self.shared.config.clone();
        let (today, tickets) = {
            let core = self.shared.core.read().await;
            let st = core.planner.state();
            let today = st.day().map(|d| d.to_string()).unwrap_or_default();
            let tickets =
                (day.is_none() || day.as_ref() == Some(&today)).then(|| st.tickets().to_vec());
            (today, tickets)
        };
        let day = day.unwrap_or(today);
        if let Some(tickets) = tickets {
            return tokio::task::spawn_blocking(move || make(&config, &day, &tickets))
                .await
                .map_err(|_| stopping());
        }
        let d = day.clone();
        let kept = self.store_read(move |s| stored(s, &d)).await?;
        Ok(kept.unwrap_or_else(|| make(&config, &day, &[])))
    }

    /// A login session by the sha256 of its token.
    pub async fn session(&self, token_hash: &str) -> Result<Option<Session>, HubError> {
        let h = token_hash.to_string();
        self.store_read(move |s| s.session(&h)).await
    }

    /// Every configured device's status.
    pub async fn devices(&self) -> Vec<DeviceInfo> {
        let core = self.shared.core.read().await;
        self.shared
            .config
            .devices
            .iter()
            .filter_map(|d| core.planner.device_info(&d.id))
            .collect()
    }

    /// A consistent backup: no batch is committed while it is written.
    pub async fn backup(&self) -> Result<Vec<u8>, HubError> {
        let shared = self.shared.clone();
        tokio::task::spawn_blocking(move || {
            let _no_writes = shared.core.blocking_read();
            let mut buf = Vec::new();
            shared.store.backup(&mut buf).map(|_| buf)
        })
        .await
        .map_err(|_| stopping())?
        .map_err(|e| HubError::Unavailable(e.to_string()))
    }

    /// Proves the store writable now (`/healthz`).
    pub async fn probe(&self) -> Result<(), HubError> {
        self.store_read(|s| s.probe()).await
    }

    /// What the store knows of its replication, and its last epoch (rule 106).
    pub async fn replication(
        &self,
    ) -> Result<(crate::store::Replication, Option<String>), HubError> {
        self.store_read(|s| {
            let r = s.replication()?;
            let epoch = s
                .lineage()
                .ok()
                .and_then(|l| l.last().map(|e| e.epoch.clone()));
            Ok((r, epoch))
        })
        .await
    }

    /// The store, for those that follow it off the hub's thread (webhook
    /// delivery reads its outbox and keeps its cursors there).
    pub fn store(&self) -> Arc<dyn Store> {
        self.shared.store.clone()
    }

    /// The last durable public seq, updated after each commit.
    pub fn head(&self) -> watch::Receiver<u64> {
        self.shared.head.subscribe()
    }

    /// The last public seq.
    pub async fn seq(&self) -> u64 {
        self.shared.core.read().await.planner.seq()
    }

    /// The last durable public seq, without waiting for a commit in flight.
    pub fn durable_seq(&self) -> u64 {
        self.shared.durable_seq.load(Ordering::Acquire)
    }

    /// Subscribes to the event stream: the missed events after `since` when
    /// the hub still holds them all, otherwise a snapshot.
    pub async fn subscribe(&self, since: Option<u64>) -> Catchup {
        let core = self.shared.core.read().await;
        let rx = core.tx.subscribe();
        let last = core.planner.seq();
        let held = |s: u64| {
            core.ring
                .front()
                .and_then(|f| f.seq)
                .is_some_and(|first| first <= s + 1)
        };
        let frames = match since {
            Some(s) if s == last => vec![],
            Some(s) if s < last && held(s) => {
                let start = core.ring.len() - (last - s) as usize;
                core.ring.iter().skip(start).cloned().collect()
            }
            _ => vec![Frame::of(&ServerMessage::Snapshot {
                seq: last,
                state: core.planner.state().board(self.shared.clock.now_ms()),
            })],
        };
        Catchup {
            frames,
            last_seq: last,
            rx,
        }
    }
}

fn stopping() -> HubError {
    HubError::Unavailable("the server is shutting down".into())
}

fn unavailable(e: &StoreError) -> HubError {
    HubError::Unavailable(e.to_string())
}

/// The loop's own state: the I/O half of the hub.
struct Writer {
    shared: Arc<Shared>,
    clock: crate::clock::Clock,
    snapshots: SnapshotWriter,
    /// The store's position of the last record stored.
    index: Option<u64>,
    /// The position the latest snapshot covers.
    snapshot_index: Option<u64>,
    /// A commit failed and the store could not be recovered yet.
    broken: bool,
    /// When the last commit or beat reached the store.
    last_write: std::time::Instant,
}

impl Writer {
    fn run(mut self, mut rx: mpsc::Receiver<Request>) {
        let mut requests = Vec::with_capacity(MAX_BATCH);
        while let Some(first) = rx.blocking_recv() {
            requests.push(first);
            while requests.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(r) => requests.push(r),
                    Err(_) => break,
                }
            }
            if let Some(done) = self.process(&mut requests) {
                let _ = done.send(());
                return;
            }
        }
    }

    /// One group commit. Returns the shutdown reply when asked to stop.
    fn process(&mut self, requests: &mut Vec<Request>) -> Option<oneshot::Sender<()>> {
        let mut inputs = Vec::with_capacity(requests.len());
        let mut waiting = Vec::with_capacity(requests.len());
        let mut shutdown = None;
        let mut take_over = Vec::new();
        let mut beat = false;
        for r in requests.drain(..) {
            match r {
                Request::Input(input, reply) => {
                    inputs.push(*input);
                    waiting.push(reply);
                }
                Request::Shutdown(tx) => shutdown = Some(tx),
                Request::TakeOver(tx) => take_over.push(tx),
                Request::Beat => beat = true,
            }
        }
        // The beat holds no lock: one that waits on the database must not
        // stop queries.
        if beat
            && inputs.is_empty()
            && take_over.is_empty()
            && self.shared.role.borrow().is_primary()
        {
            self.beat();
        }
        let shared = self.shared.clone();
        let mut core = shared.core.blocking_write();
        for tx in take_over {
            let _ = tx.send(self.take_over(&mut core));
        }
        let primary = self.shared.role.borrow().is_primary();
        let (replies, broadcasts) = if !primary {
            let why = "Máy chủ này đang dự phòng (this server is a standby)";
            let refused = inputs
                .iter()
                .map(|_| Some(Err(HubError::Unavailable(why.into()))))
                .collect();
            (refused, vec![])
        } else if self.recovered(&mut core) {
            let plan = core.planner.plan(inputs, self.clock.now_ms());
            self.commit(&mut core, plan)
        } else {
            let why = "Hệ thống tạm thời không lưu được dữ liệu (the store is unavailable)";
            let refused = inputs
                .iter()
                .map(|_| Some(Err(HubError::Unavailable(why.into()))))
                .collect();
            (refused, vec![])
        };
        // Answers first (the commit's clients wait for them), then the
        // broadcast, still under the lock so that no subscriber misses it.
        for (reply, to) in replies.into_iter().zip(waiting) {
            if let (Some(reply), Some(to)) = (reply, to) {
                let _ = to.send(reply);
            }
        }
        for frames in broadcasts {
            let _ = core.tx.send(frames.into());
        }
        drop(core);
        shutdown
    }

    /// Stores a plan's batch. The replies to send, and the frames to
    /// broadcast once they are sent (the events', then the devices').
    fn commit(&mut self, core: &mut Core, mut plan: Plan) -> (Vec<Option<Reply>>, Vec<Vec<Frame>>) {
        let stored = if plan.batch.is_empty() {
            Ok(Appended { index: self.index })
        } else {
            let t0 = std::time::Instant::now();
            let r = self.shared.store.append(&plan.batch);
            self.shared
                .metrics
                .flush_seconds
                .observe(t0.elapsed().as_secs_f64());
            r
        };
        let stored = match stored {
            Ok(appended) => {
                self.last_write = std::time::Instant::now();
                Ok(appended)
            }
            Err(e) => self.failed(core, e),
        };
        let mut broadcasts = Vec::with_capacity(2);
        match stored {
            Ok(appended) => {
                broadcasts.push(self.committed(core, &plan, appended));
                self.notices(std::mem::take(&mut plan.notices));
            }
            Err(e) => {
                for r in plan.replies.iter_mut().flatten() {
                    *r = Err(e.clone());
                }
            }
        }
        broadcasts.push(self.devices_changed(&plan));
        broadcasts.retain(|b| !b.is_empty());
        (plan.replies, broadcasts)
    }

    /// After a failed commit: what became of it. `Ok` when it is stored
    /// after all; else the planner is rebuilt from the store (or the store
    /// is marked broken until it can be).
    fn failed(&mut self, core: &mut Core, e: StoreError) -> Result<Appended, HubError> {
        tracing::error!(error = %e, "group commit failed");
        self.shared.metrics.store_errors.inc();
        if let StoreError::NotPrimary(why) = &e {
            self.step_down(why);
            return Err(unavailable(&e));
        }
        let known_lost = !matches!(e, StoreError::OutcomeUnknown(_));
        match self.shared.store.recover() {
            Ok(Recovered::Committed) if !known_lost => {
                tracing::warn!("the failed commit is stored after all; answering it");
                let index = self.shared.store.load().ok().and_then(|l| l.index);
                return Ok(Appended { index });
            }
            Ok(_) => self.reload(core),
            Err(StoreError::NotPrimary(why)) => self.step_down(&why),
            Err(re) => {
                tracing::error!(error = %re, "the store cannot be recovered yet; refusing commands until it can");
                self.broken = true;
            }
        }
        Err(unavailable(&e))
    }

    /// Another server writes the store, or this one's database became a
    /// replica (rule 102): a standby from now on. What this hub holds is
    /// answered 503; the state is rebuilt when it takes over again.
    fn step_down(&mut self, why: &str) {
        tracing::error!(reason = %why, "this server is a standby now");
        let reason = if why.contains("read-only") || why.contains("recovery") {
            Reason::StoreInRecovery
        } else {
            Reason::AnotherWriter
        };
        self.shared.role.send_replace(RoleState {
            role: Role::Standby,
            reason: Some(reason),
            ..RoleState::primary()
        });
    }

    /// Rule 104: the controller took the store over; rebuild from what it
    /// holds (the other writer's events included) and serve.
    fn take_over(&mut self, core: &mut Core) -> Result<(), String> {
        self.broken = false;
        self.reload(core);
        if self.broken {
            return Err("cannot rebuild the state from the store".into());
        }
        // Events another server wrote are not in the resume ring: a client
        // resuming from before now gets a snapshot.
        core.ring.clear();
        self.shared.head.send_replace(core.planner.seq());
        self.update_gauges(core);
        self.last_write = std::time::Instant::now();
        self.shared.role.send_replace(RoleState::primary());
        Ok(())
    }

    /// An idle primary's beat, when nothing reached the store for a second.
    fn beat(&mut self) {
        if self.last_write.elapsed() < std::time::Duration::from_millis(900) {
            return;
        }
        match self.shared.store.beat() {
            Ok(()) => self.last_write = std::time::Instant::now(),
            Err(StoreError::NotPrimary(why)) => self.step_down(&why),
            Err(e) => tracing::warn!(error = %e, "the store's beat failed"),
        }
    }

    /// Whether the store works; after a failure, tries to recover it first.
    fn recovered(&mut self, core: &mut Core) -> bool {
        if !self.broken {
            return true;
        }
        match self.shared.store.recover() {
            Ok(_) => {
                self.reload(core);
                !self.broken
            }
            Err(_) => false,
        }
    }

    /// Rebuilds the planner from what the store holds.
    fn reload(&mut self, core: &mut Core) {
        match self.shared.store.load().and_then(|l| {
            let index = l.index;
            core.planner.rebuild(l).map(|()| index)
        }) {
            Ok(index) => {
                tracing::info!("state rebuilt from the store");
                self.index = index;
                self.shared
                    .durable_seq
                    .store(core.planner.seq(), Ordering::Release);
                self.broken = false;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot rebuild the state from the store yet");
                self.broken = true;
            }
        }
    }

    /// What follows a durable commit: gauges, snapshot, the resume ring;
    /// the batch's frames to broadcast.
    fn committed(&mut self, core: &mut Core, plan: &Plan, appended: Appended) -> Vec<Frame> {
        self.index = appended.index;
        self.shared
            .durable_seq
            .store(core.planner.seq(), Ordering::Release);
        self.shared.metrics.tickets_issued.inc_by(plan.issued);
        self.maybe_snapshot(core);
        if plan.day_started {
            self.prune_sessions();
        }
        // Gauges first: whoever got an answer and reads /metrics next sees
        // its own ticket counted.
        if !plan.frames.is_empty() {
            self.update_gauges(core);
        }
        let frames: Vec<Frame> = plan.frames.iter().map(Frame::encode).collect();
        if !plan.batch.hooks.is_empty() {
            self.shared.head.send_replace(core.planner.seq());
        }
        core.ring.extend(frames.iter().cloned());
        while core.ring.len() > RESUME_RING {
            core.ring.pop_front();
        }
        frames
    }

    /// Hands a durable batch's phone alerts to the notifier, never waiting.
    fn notices(&self, notices: Vec<Notice>) {
        let Some(tx) = self.shared.notices.get() else {
            return;
        };
        for n in notices {
            if tx.try_send(n).is_err() {
                tracing::warn!("phone alert dropped: the notifier is behind");
            }
        }
    }

    /// Printer gauges; the admins' device frames to broadcast (not
    /// durable: sent whatever became of the commit).
    fn devices_changed(&self, plan: &Plan) -> Vec<Frame> {
        for o in &plan.device_frames {
            if let ServerMessage::Device { device } = &o.message {
                self.shared.metrics.set_printer(&device.id, device.printer);
            }
        }
        plan.device_frames.iter().map(Frame::encode).collect()
    }

    fn prune_sessions(&self) {
        // Sessions expire in real time, whatever the queue clock says.
        match self
            .shared
            .store
            .prune_sessions(chrono::Utc::now().timestamp_millis())
        {
            Ok(n) if n > 0 => tracing::info!(removed = n, "expired login sessions removed"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "pruning login sessions failed"),
        }
    }

    /// Every `SNAPSHOT_EVERY` records, has the state saved so a restart
    /// replays little (written by another thread; the log stays the truth).
    fn maybe_snapshot(&mut self, core: &Core) {
        let Some(index) = self.index else { return };
        let since = index.saturating_sub(self.snapshot_index.unwrap_or(0));
        if since < SNAPSHOT_EVERY || self.snapshots.busy() {
            return;
        }
        let snap = StoredSnapshot {
            index,
            seq: core.planner.seq(),
            state: core.planner.state().to_snapshot(),
        };
        if self.snapshots.offer(snap) {
            self.snapshot_index = Some(index);
        }
    }

    fn update_gauges(&self, core: &Core) {
        let st = core.planner.state();
        for (i, s) in st.site().services.iter().enumerate() {
            self.shared.metrics.set_waiting(&s.id, st.waiting_count(i));
        }
    }
}

/// The thread that writes state snapshots, so the hub never waits for one.
/// A snapshot that is lost or late only makes the next start-up replay more.
struct SnapshotWriter {
    tx: std::sync::mpsc::SyncSender<StoredSnapshot>,
    busy: Arc<AtomicBool>,
}

impl SnapshotWriter {
    fn start(store: Arc<dyn Store>) -> std::io::Result<SnapshotWriter> {
        let (tx, rx) = std::sync::mpsc::sync_channel::<StoredSnapshot>(1);
        let busy = Arc::new(AtomicBool::new(false));
        let flag = busy.clone();
        std::thread::Builder::new()
            .name("luot-snapshot".into())
            .spawn(move || {
                for snap in rx {
                    write_snapshot(store.as_ref(), &snap);
                    flag.store(false, Ordering::Release);
                }
            })?;
        Ok(SnapshotWriter { tx, busy })
    }

    fn busy(&self) -> bool {
        self.busy.load(Ordering::Acquire)
    }

    /// Hands a snapshot over; false when the writer is still busy.
    fn offer(&self, snap: StoredSnapshot) -> bool {
        self.busy.store(true, Ordering::Release);
        let ok = self.tx.try_send(snap).is_ok();
        if !ok {
            self.busy.store(false, Ordering::Release);
        }
        ok
    }
}

fn write_snapshot(store: &dyn Store, snap: &StoredSnapshot) {
    let t0 = std::time::Instant::now();
    match store.write_snapshot(snap) {
        Ok(()) => {
            tracing::debug!(
                index = snap.index,
                took_ms = t0.elapsed().as_millis() as u64,
                "state snapshot written"
            );
            if snap.index > KEEP_BEHIND_SNAPSHOT
                && let Err(e) = store.prune_log(snap.index - KEEP_BEHIND_SNAPSHOT, 20_000)
            {
                tracing::warn!(error = %e, "pruning old log records failed");
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, "writing a state snapshot failed; the log still has everything")
        }
    }
}

impl crate::ha::Takeover for Hub {
    async fn take_over(&self) -> Result<(), String> {
        Hub::take_over(self).await
    }

    fn role(&self) -> watch::Receiver<RoleState> {
        Hub::role(self)
    }

    fn set_role(&self, r: RoleState) {
        Hub::set_role(self, r)
    }
}
