//! Webhook delivery (contract §12, rules 89–90): one task per
//! `[[webhooks]]` entry on the main runtime, never on the hub's thread.
//!
//! The planner writes each event's body (`{"site","seq","type","timestamp",
//! "event"}`, the event as admins get it) into the store's outbox in the
//! event's own commit, when a webhook takes its kind; the hub then bumps its
//! `head` watch. A delivery task reads the outbox after its cursor, POSTs
//! the bodies of its kinds one at a time in `seq` order with Standard
//! Webhooks headers (`webhook-id: {site}-{epoch}-{seq}`, the epoch of rule
//! 112; `webhook-timestamp`; `webhook-signature: v1,…`, signed anew for each
//! attempt), and moves on only after a 2xx within 15 s. A failure (any other
//! status, redirects included: none is followed; no answer) is retried
//! min(2^(n−1), 300) s after the n-th failed attempt ends. The cursor (last
//! acknowledged seq) is written after each acknowledgement and made durable
//! at least every 200 ms and whenever the task is idle, so a restart may
//! repeat a delivery, never lose one.
//!
//! Retention: a body goes once every webhook is past it, or after 7 days;
//! a webhook that still needed it then resumes at the oldest kept with
//! `"skipped_from": seq` added to its next body. A webhook seen for the first
//! time starts after the last event. Reading the outbox (not the event log)
//! means the log's own pruning never touches what a webhook needs.
//!
//! Never: hold the hub's lock, block a command, or write a secret anywhere.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use hmac::{Hmac, Mac};
use luot_protocol::{WebhookError, WebhookStatus, WebhooksResponse};
use sha2::Sha256;
use tokio::sync::watch;

use crate::clock::Clock;
use crate::config::{SiteConfig, Webhook};
use crate::hub::Hub;
use crate::store::{HookBody, HookCursor, LineageEntry, Store, epoch_of};

/// A 2xx must come within this long (rule 90).
const ANSWER_WITHIN: Duration = Duration::from_secs(15);
/// The longest wait between attempts (rule 90).
const MAX_BACKOFF_S: u64 = 300;
/// Events wait this long for a lagging webhook (rule 90).
pub const KEEP_MS: i64 = 7 * 24 * 3600 * 1000;
/// How often retention runs.
const PRUNE_EVERY: Duration = Duration::from_secs(60);
/// Bodies read from the outbox at once.
const READ_AHEAD: usize = 256;
/// A cursor written since is made durable within this long.
const SYNC_EVERY: Duration = Duration::from_millis(200);

/// The Standard Webhooks signature of one attempt: base64 of
/// HMAC-SHA256(key, "{id}.{timestamp}.{body}").
pub fn sign(key: &[u8], id: &str, timestamp: i64, body: &[u8]) -> String {
    // HMAC takes a key of any length; `new_from_slice` cannot fail for it.
    let mut mac = match Hmac::<Sha256>::new_from_slice(key) {
        Ok(m) => m,
        Err(_) => return String::new(),
    };
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// A body with `"skipped_from": seq` added at its top level.
fn with_skipped_from(body: &[u8], from: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 24);
    out.extend_from_slice(format!("{{\"skipped_from\":{from},").as_bytes());
    out.extend_from_slice(body.get(1..).unwrap_or_default());
    out
}

/// The wait after the n-th failed attempt in a row (rule 90).
pub fn backoff(failures: u32) -> Duration {
    let s = 1u64
        .checked_shl(failures.saturating_sub(1))
        .unwrap_or(u64::MAX)
        .min(MAX_BACKOFF_S);
    Duration::from_secs(s)
}

/// What admins see of a webhook besides its cursor.
#[derive(Default)]
struct Live {
    cursor: HookCursor,
    last_success_at: Option<i64>,
    next_attempt_at: Option<i64>,
    last_error: Option<(i64, Option<u16>, String)>,
}

/// One configured webhook and its live state.
struct Hook {
    cfg: Webhook,
    /// The wire names of the kinds it takes; `None`: every kind.
    kinds: Option<Vec<String>>,
    live: Mutex<Live>,
}

impl Hook {
    fn live(&self) -> std::sync::MutexGuard<'_, Live> {
        self.live.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn takes(&self, kind: &str) -> bool {
        self.kinds
            .as_ref()
            .is_none_or(|k| k.iter().any(|k| k == kind))
    }
}

struct Shared {
    hooks: Vec<Arc<Hook>>,
    store: Arc<dyn Store>,
    site_id: String,
    lineage: Vec<LineageEntry>,
    tz: Tz,
    client: reqwest::Client,
    clock: Clock,
}

impl Shared {
    fn fmt(&self, ms: i64) -> String {
        DateTime::<Utc>::from_timestamp_millis(ms)
            .unwrap_or_default()
            .with_timezone(&self.tz)
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, false)
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&dyn Store) -> Result<T, crate::store::StoreError> + Send + 'static,
    ) -> Result<T, String> {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || f(store.as_ref()))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())
    }
}

/// The webhooks of a site: their delivery tasks and what `GET /webhooks`
/// shows. Cheap to clone; `Hooks::none()` when the site has none.
#[derive(Clone, Default)]
pub struct Hooks {
    shared: Option<Arc<Shared>>,
}

impl Hooks {
    pub fn none() -> Hooks {
        Hooks::default()
    }

    /// Reads each webhook's cursor (a new one starts after the last event,
    /// durably, before any command is taken) and starts its delivery task
    /// and the retention task.
    pub async fn start(hub: &Hub, config: &Arc<SiteConfig>, clock: Clock) -> anyhow::Result<Hooks> {
        if config.webhooks.is_empty() {
            return Ok(Hooks::none());
        }
        let store = hub.store();
        let head = hub.seq().await;
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(ANSWER_WITHIN)
            .connect_timeout(ANSWER_WITHIN)
            .user_agent(concat!("luot/", env!("CARGO_PKG_VERSION")))
            .build()?;
        // The store's reads and writes off the runtime's threads (a
        // database client blocks).
        let (cursors, lineage) = {
            let (store, ids) = (
                store.clone(),
                config
                    .webhooks
                    .iter()
                    .map(|w| w.id.clone())
                    .collect::<Vec<_>>(),
            );
            tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
                let mut cursors = Vec::new();
                for id in &ids {
                    let cursor = match store.hook_cursor(id)? {
                        Some(c) => c,
                        None => {
                            let c = HookCursor {
                                after: head,
                                acked: None,
                                skipped_from: None,
                            };
                            store.put_hook_cursor(id, &c, true)?;
                            c
                        }
                    };
                    cursors.push(cursor);
                }
                Ok((cursors, store.lineage()?))
            })
            .await??
        };
        let mut hooks = Vec::new();
        for (w, cursor) in config.webhooks.iter().zip(cursors) {
            tracing::info!(webhook = %w.id, after = cursor.after, "webhook delivery starts");
            hooks.push(Arc::new(Hook {
                kinds: w.events.as_ref().map(|k| {
                    k.iter()
                        .map(|k| crate::config::webhooks_kind_name(*k))
                        .collect()
                }),
                cfg: w.clone(),
                live: Mutex::new(Live {
                    cursor,
                    ..Live::default()
                }),
            }));
        }
        let shared = Arc::new(Shared {
            lineage,
            hooks,
            store,
            site_id: config.site.id.clone(),
            tz: config.site.timezone,
            client,
            clock,
        });
        // Bodies that waited 7 days go before any delivery starts.
        prune(&shared).await;
        for h in &shared.hooks {
            tokio::spawn(deliver(shared.clone(), h.clone(), hub.head()));
        }
        tokio::spawn(retain(shared.clone()));
        Ok(Hooks {
            shared: Some(shared),
        })
    }

    /// `GET /api/v1/webhooks`.
    pub async fn status(&self) -> Result<WebhooksResponse, String> {
        let Some(shared) = &self.shared else {
            return Ok(WebhooksResponse { webhooks: vec![] });
        };
        let mut out = Vec::with_capacity(shared.hooks.len());
        for h in &shared.hooks {
            let (after, acked, success, next, error) = {
                let l = h.live();
                (
                    l.cursor.after,
                    l.cursor.acked,
                    l.last_success_at,
                    l.next_attempt_at,
                    l.last_error.clone(),
                )
            };
            // Events it takes after what is acknowledged (or not its kind).
            let from = after.max(acked.unwrap_or(0));
            let hook = h.clone();
            let pending = shared
                .blocking(move |s| {
                    let mut n = 0u64;
                    let mut at = from;
                    loop {
                        let bodies = s.hook_bodies(at, 4096)?;
                        let Some(last) = bodies.last() else { break };
                        at = last.seq;
                        n += bodies.iter().filter(|b| hook.takes(&b.kind)).count() as u64;
                    }
                    Ok(n)
                })
                .await?;
            out.push(WebhookStatus {
                id: h.cfg.id.clone(),
                url: h.cfg.url.clone(),
                events: h.cfg.event_names(),
                last_delivered_seq: acked,
                pending,
                last_success_at: success.map(|t| shared.fmt(t)),
                next_attempt_at: next.map(|t| shared.fmt(t)),
                last_error: error.map(|(at, status, message)| WebhookError {
                    at: shared.fmt(at),
                    status,
                    message,
                }),
            });
        }
        Ok(WebhooksResponse { webhooks: out })
    }
}

/// One webhook's delivery loop: read the outbox after the cursor, deliver
/// each body of its kinds until acknowledged, wait for the next commit.
async fn deliver(shared: Arc<Shared>, hook: Arc<Hook>, mut head: watch::Receiver<u64>) {
    let mut pos = hook.live().cursor.after;
    let mut last_sync = Instant::now();
    let mut dirty = false;
    loop {
        // Seen before reading, so a commit made meanwhile wakes us below.
        head.mark_unchanged();
        let bodies = match shared
            .blocking(move |s| s.hook_bodies(pos, READ_AHEAD))
            .await
        {
            // Only what the hub has acknowledged as durable: a batch being
            // written (or failing) is not delivered.
            Ok(mut b) => {
                let durable = *head.borrow();
                b.retain(|b| b.seq <= durable);
                b
            }
            Err(e) => {
                tracing::warn!(webhook = %hook.cfg.id, error = %e, "cannot read webhook bodies");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        if bodies.is_empty() {
            if dirty {
                dirty = !save(&shared, &hook, true).await;
                last_sync = Instant::now();
            }
            if head.changed().await.is_err() {
                return; // the hub stopped
            }
            continue;
        }
        for b in bodies {
            // The retention task may have moved past what we hold.
            pos = b.seq;
            if hook.takes(&b.kind) {
                let told = send_until_acknowledged(&shared, &hook, &b).await;
                {
                    let mut l = hook.live();
                    l.cursor.acked = Some(b.seq);
                    l.cursor.after = l.cursor.after.max(b.seq);
                    if l.cursor.skipped_from == told {
                        l.cursor.skipped_from = None;
                    }
                    l.last_success_at = Some(now_ms());
                    l.next_attempt_at = None;
                }
                let durable = last_sync.elapsed() >= SYNC_EVERY;
                dirty = !save(&shared, &hook, durable).await || !durable;
                if durable {
                    last_sync = Instant::now();
                }
            } else {
                {
                    let mut l = hook.live();
                    l.cursor.after = l.cursor.after.max(b.seq);
                }
                dirty = true;
            }
        }
    }
}

/// Writes the cursor; true when written.
async fn save(shared: &Arc<Shared>, hook: &Arc<Hook>, durable: bool) -> bool {
    let cursor = hook.live().cursor.clone();
    let id = hook.cfg.id.clone();
    match shared
        .blocking(move |s| s.put_hook_cursor(&id, &cursor, durable))
        .await
    {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!(webhook = %hook.cfg.id, error = %e, "cannot save the webhook cursor");
            false
        }
    }
}

fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

/// Attempts one body until a 2xx, waiting as rule 90 says between attempts.
/// Returns the `skipped_from` the acknowledged attempt carried.
async fn send_until_acknowledged(
    shared: &Arc<Shared>,
    hook: &Arc<Hook>,
    b: &HookBody,
) -> Option<u64> {
    let epoch = epoch_of(&shared.lineage, b.seq).unwrap_or("ep_");
    let id = format!("{}-{epoch}-{}", shared.site_id, b.seq);
    let mut failures = 0u32;
    loop {
        let skipped = hook.live().cursor.skipped_from;
        let body = match skipped {
            Some(from) => with_skipped_from(&b.body, from),
            None => b.body.clone(),
        };
        match attempt(shared, hook, &id, body).await {
            Ok(()) => return skipped,
            Err((status, message)) => {
                failures += 1;
                let wait = backoff(failures);
                let now = now_ms();
                tracing::warn!(
                    webhook = %hook.cfg.id, seq = b.seq, ?status, %message,
                    retry_in_s = wait.as_secs(), "webhook delivery failed"
                );
                {
                    let mut l = hook.live();
                    l.last_error = Some((now, status, message));
                    l.next_attempt_at = Some(now + wait.as_millis() as i64);
                }
                tokio::time::sleep(wait).await;
            }
        }
    }
}

/// One POST. `Err((status, message))` unless a 2xx came within 15 s.
async fn attempt(
    shared: &Arc<Shared>,
    hook: &Arc<Hook>,
    id: &str,
    body: Vec<u8>,
) -> Result<(), (Option<u16>, String)> {
    let timestamp = Utc::now().timestamp();
    let signature = sign(&hook.cfg.key, id, timestamp, &body);
    let request = shared
        .client
        .post(&hook.cfg.url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header("webhook-id", id)
        .header("webhook-timestamp", timestamp.to_string())
        .header("webhook-signature", format!("v1,{signature}"))
        .body(body)
        .send();
    let response = match tokio::time::timeout(ANSWER_WITHIN, request).await {
        Err(_) => {
            return Err((
                None,
                "không có trả lời trong 15 giây (no answer within 15 s)".into(),
            ));
        }
        Ok(Err(e)) if e.is_timeout() => {
            return Err((
                None,
                "không có trả lời trong 15 giây (no answer within 15 s)".into(),
            ));
        }
        Ok(Err(e)) => {
            return Err((
                None,
                format!("không gửi được (cannot send): {}", error_chain(&e)),
            ));
        }
        Ok(Ok(r)) => r,
    };
    let status = response.status();
    if status.is_success() {
        // Read a little of the answer so the connection can be reused; a
        // large or slow one is simply dropped (it never delays the next).
        let mut response = response;
        let _ = tokio::time::timeout(Duration::from_millis(200), async {
            let mut read = 0usize;
            while let Ok(Some(chunk)) = response.chunk().await {
                read += chunk.len();
                if read > 64 * 1024 {
                    break;
                }
            }
        })
        .await;
        return Ok(());
    }
    let what = if status.is_redirection() {
        "chuyển hướng không được theo (redirects are not followed)"
    } else {
        "trả lời không phải 2xx (not a 2xx answer)"
    };
    Err((Some(status.as_u16()), format!("HTTP {status}: {what}")))
}

/// What went wrong, without the URL (its query may hold a token): the
/// kind of failure and its deepest cause.
fn error_chain(e: &reqwest::Error) -> String {
    let kind = if e.is_connect() {
        "connection failed"
    } else if e.is_body() {
        "body failed"
    } else {
        "request failed"
    };
    let mut cause = None;
    let mut source = std::error::Error::source(e);
    while let Some(c) = source {
        cause = Some(c.to_string());
        source = c.source();
    }
    match cause {
        Some(c) => format!("{kind}: {c}"),
        None => kind.to_string(),
    }
}

/// Retention (rule 90): every minute, drops the bodies every webhook is
/// past and those older than 7 days.
async fn retain(shared: Arc<Shared>) {
    let mut every = tokio::time::interval(PRUNE_EVERY);
    every.tick().await; // the first pass ran in `start`
    loop {
        every.tick().await;
        prune(&shared).await;
    }
}

/// One retention pass; a webhook that still needed a body older than 7
/// days notes `skipped_from` (durably) for its next delivery.
async fn prune(shared: &Arc<Shared>) {
    let through = shared
        .hooks
        .iter()
        .map(|h| h.live().cursor.after)
        .min()
        .unwrap_or(0);
    let before = shared.clock.now_ms() - KEEP_MS;
    let dropped = match shared
        .blocking(move |s| s.prune_hooks(through, before, 200_000))
        .await
    {
        Ok(d) => d,
        Err(e) => {
            tracing::warn!(error = %e, "pruning webhook bodies failed");
            return;
        }
    };
    if dropped.is_empty() {
        return;
    }
    let last_dropped = dropped.iter().map(|(s, _)| *s).max().unwrap_or(0);
    for h in &shared.hooks {
        let skipped = {
            let mut l = h.live();
            let after = l.cursor.after;
            let first = dropped
                .iter()
                .filter(|(seq, kind)| *seq > after && h.takes(kind))
                .map(|(seq, _)| *seq)
                .min();
            first.map(|first| {
                l.cursor.skipped_from = Some(l.cursor.skipped_from.map_or(first, |s| s.min(first)));
                l.cursor.after = l.cursor.after.max(last_dropped);
                (first, l.cursor.clone())
            })
        };
        if let Some((first, cursor)) = skipped {
            tracing::warn!(webhook = %h.cfg.id, from = first, "events older than 7 days dropped before delivery");
            let id = h.cfg.id.clone();
            if let Err(e) = shared
                .blocking(move |s| s.put_hook_cursor(&id, &cursor, true))
                .await
            {
                tracing::warn!(webhook = %h.cfg.id, error = %e, "cannot save the webhook cursor");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_one_second_to_five_minutes() {
        let s: Vec<u64> = (1..=11).map(|n| backoff(n).as_secs()).collect();
        assert_eq!(s, [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300]);
        assert_eq!(backoff(200).as_secs(), 300);
    }

    #[test]
    fn skipped_from_is_added_at_the_top_level() {
        let b = with_skipped_from(br#"{"site":"luot","seq":9}"#, 4);
        let v: serde_json::Value = serde_json::from_slice(&b).expect("json");
        assert_eq!(v["skipped_from"], 4);
        assert_eq!(v["seq"], 9);
        assert_eq!(v["site"], "luot");
    }
}
