//! The server's role (§13, rules 104–106): `starting` until loaded, then
//! `standby` or `primary`. A sled server is always the primary. With
//! PostgreSQL, `Controller` watches this machine's database (and, with
//! `[ha]`, its Patroni) and takes the store over when rule 104 holds: the
//! database out of recovery (with `[ha]`: for Patroni's `loop_wait` + 1 s,
//! and Patroni answering 200 on `/primary`), and `luot_head` naming this
//! server its writer or its `beat` unchanged for 3 s by this server's own
//! clock. The hub gives the role up when a commit or beat finds another
//! writer (rule 102).
//!
//! Owns the role and its reason; never writes the queue itself (the hub
//! does, after `Hub::take_over`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::watch;

use crate::config::store::Ha;
use crate::store::StoreError;
use crate::store::postgres::{HeadRow, PgStore};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Starting,
    Standby,
    Primary,
}

/// Why a server does not serve as a writable primary (rule 106).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    Loading,
    StoreUnreachable,
    StoreInRecovery,
    PatroniNotPrimary,
    AnotherWriter,
    StoreStalled,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Loading => "loading",
            Reason::StoreUnreachable => "store_unreachable",
            Reason::StoreInRecovery => "store_in_recovery",
            Reason::PatroniNotPrimary => "patroni_not_primary",
            Reason::AnotherWriter => "another_writer",
            Reason::StoreStalled => "store_stalled",
        }
    }
}

/// The role now, and what a standby tells its clients.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoleState {
    pub role: Role,
    /// `None` on a serving primary.
    pub reason: Option<Reason>,
    /// Who writes the store, from `luot_head` (null when unknown).
    pub writer: Option<String>,
    pub writer_url: Option<String>,
    /// The store's `luot_head.seq` as last read (a standby's `store_seq`).
    pub store_seq: Option<u64>,
    /// The head row as last read (`/api/v1/ha`'s `primary`).
    pub head: Option<HeadRow>,
}

impl RoleState {
    pub fn primary() -> RoleState {
        RoleState {
            role: Role::Primary,
            reason: None,
            writer: None,
            writer_url: None,
            store_seq: None,
            head: None,
        }
    }

    pub fn starting() -> RoleState {
        RoleState {
            role: Role::Starting,
            reason: Some(Reason::Loading),
            ..RoleState::primary()
        }
    }

    pub fn is_primary(&self) -> bool {
        self.role == Role::Primary
    }
}

/// Rule 104's clock: what a standby has seen of the store so far.
#[derive(Default)]
struct Watch {
    /// Since when the database has been out of recovery (and Patroni says
    /// primary).
    out_since: Option<Instant>,
    /// The last `beat` seen and since when it has not moved.
    beat: Option<(u64, u64, Instant)>,
}

/// What the controller needs of the hub: taking over, and the role it keeps.
pub trait Takeover: Send + Sync + 'static {
    /// Rebuilds the state from the store and serves as the primary.
    fn take_over(&self) -> impl std::future::Future<Output = Result<(), String>> + Send;
    fn role(&self) -> watch::Receiver<RoleState>;
    fn set_role(&self, r: RoleState);
}

/// Watches the store and Patroni and takes over when rule 104 holds.
pub struct Controller<H: Takeover> {
    store: Arc<PgStore>,
    ha: Option<Ha>,
    node: String,
    hub: H,
    http: reqwest::Client,
    watch: Watch,
}

impl<H: Takeover> Controller<H> {
    pub fn new(store: Arc<PgStore>, ha: Option<Ha>, node: String, hub: H) -> Controller<H> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(1))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap_or_default();
        Controller {
            store,
            ha,
            node,
            hub,
            http,
            watch: Watch::default(),
        }
    }

    /// Runs until `stop` changes.
    pub async fn run(mut self, mut stop: watch::Receiver<bool>) {
        let mut every = tokio::time::interval(Duration::from_millis(250));
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = every.tick() => self.step().await,
                _ = stop.changed() => return,
            }
        }
    }

    async fn step(&mut self) {
        let now = self.hub.role().borrow().clone();
        if now.is_primary() {
            self.watch = Watch::default();
            return;
        }
        let store = self.store.clone();
        let status = tokio::task::spawn_blocking(move || store.status()).await;
        let status = match status {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                let reason = match e {
                    StoreError::NotPrimary(_) => Reason::StoreInRecovery,
                    _ => Reason::StoreUnreachable,
                };
                self.watch.out_since = None;
                return self.standby(reason, None);
            }
            Err(_) => return,
        };
        if status.in_recovery {
            self.watch.out_since = None;
            return self.standby(Reason::StoreInRecovery, status.head);
        }
        if let Some(ha) = &self.ha {
            if !self.patroni_primary(ha).await {
                self.watch.out_since = None;
                return self.standby(Reason::PatroniNotPrimary, status.head);
            }
            let since = *self.watch.out_since.get_or_insert_with(Instant::now);
            let settle = Duration::from_secs(self.loop_wait(ha).await + 1);
            if since.elapsed() < settle {
                return self.standby(Reason::StoreInRecovery, status.head);
            }
        }
        let Some(head) = status.head else {
            return self.standby(Reason::StoreUnreachable, None);
        };
        let mine = head.writer.as_deref() == Some(self.node.as_str());
        let still = match self.watch.beat {
            Some((beat, term, since)) if beat == head.beat && term == head.term => since.elapsed(),
            _ => {
                self.watch.beat = Some((head.beat, head.term, Instant::now()));
                Duration::ZERO
            }
        };
        if !mine && still < Duration::from_secs(3) {
            return self.standby(Reason::AnotherWriter, Some(head));
        }
        let store = self.store.clone();
        let read = head.clone();
        let claimed = tokio::task::spawn_blocking(move || store.claim(&read)).await;
        match claimed {
            Ok(Ok(true)) => match self.hub.take_over().await {
                Ok(()) => {
                    tracing::info!(node = %self.node, term = head.term + 1, seq = head.seq, "serving as the primary");
                }
                Err(e) => {
                    tracing::error!(error = %e, "took the store over but cannot load it");
                    self.standby(Reason::StoreUnreachable, Some(head));
                }
            },
            Ok(Ok(false)) => self.watch.beat = None,
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "cannot take the store over");
                self.standby(Reason::StoreUnreachable, Some(head));
            }
            Err(_) => {}
        }
    }

    fn standby(&self, reason: Reason, head: Option<HeadRow>) {
        let prev = self.hub.role().borrow().clone();
        let role = if prev.role == Role::Starting && reason == Reason::StoreUnreachable {
            Role::Starting
        } else {
            Role::Standby
        };
        let next = RoleState {
            role,
            reason: Some(reason),
            writer: head.as_ref().and_then(|h| h.writer.clone()),
            writer_url: head.as_ref().and_then(|h| h.writer_url.clone()),
            store_seq: head.as_ref().map(|h| h.seq),
            head,
        };
        if next != prev {
            if next.role != prev.role || next.reason != prev.reason {
                tracing::info!(role = ?next.role, reason = reason.as_str(), "not serving as the primary");
            }
            self.hub.set_role(next);
        }
    }

    async fn patroni_primary(&self, ha: &Ha) -> bool {
        let url = format!("{}/primary", ha.patroni_url);
        matches!(self.http.get(&url).send().await, Ok(r) if r.status() == reqwest::StatusCode::OK)
    }

    /// Patroni's `loop_wait` from its `GET /config` (default 10, as Patroni's).
    async fn loop_wait(&self, ha: &Ha) -> u64 {
        let url = format!("{}/config", ha.patroni_url);
        let Ok(r) = self.http.get(&url).send().await else {
            return 10;
        };
        let Ok(v) = r.json::<serde_json::Value>().await else {
            return 10;
        };
        v.get("loop_wait").and_then(|w| w.as_u64()).unwrap_or(10)
    }
}
