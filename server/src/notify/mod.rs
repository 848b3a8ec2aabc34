//! Phone alerts' sending half (rules 91–93). The planner decides which
//! alerts are due after each commit (`plan.rs`: `near` and `called`); the
//! hub hands them, once durable, to this task without waiting. For each it
//! opens the ticket's contacts and sends, each message on a task of its
//! own: the HTTP gateway (rule 92: one JSON POST with `authorization`, a
//! 2xx within 10 s succeeds, else again 5 s after the first failure and 30 s
//! after the second, then given up) and Web Push (rule 93: `aes128gcm`,
//! VAPID, `TTL: 600`, `Urgency: high`; a 404 or 410 drops the subscription;
//! other failures are tried again like the gateway's). Before every
//! attempt it checks the moment has not passed (a `near` for a ticket still
//! waiting, a `called` for one still called) and that the contact is still
//! kept (`DELETE` erases it). No command ever waits for any of this.
//!
//! It never logs a phone, a subscription or a message text; redirects are
//! not followed.

pub mod push;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use luot_protocol::{GatewayMessage, PushMessage, TicketStatus};
use tokio::sync::mpsc;

use crate::config::SiteConfig;
use crate::engine::Command;
use crate::hub::{Hub, Notice, NoticeKind};

/// How long an attempt may take (rule 92's 10 s, used for push too).
const ATTEMPT: Duration = Duration::from_secs(10);
/// The waits before the second and third attempts (rule 92).
const RETRIES: [Duration; 2] = [Duration::from_secs(5), Duration::from_secs(30)];
/// Alerts waiting for the notifier before new ones are dropped.
const QUEUE: usize = 4096;
/// How long a push service keeps a message (rule 93).
const TTL_S: u32 = 600;

/// The sending half (see the module doc).
pub struct Notifier {
    hub: Hub,
    config: Arc<SiteConfig>,
    http: reqwest::Client,
    /// Messages attempted per ticket and kind: the `n` of rule 92's key.
    counts: Mutex<HashMap<(String, NoticeKind), u32>>,
}

/// Starts the notifier when `[notify]` turns a channel on.
pub fn start(hub: &Hub, config: &Arc<SiteConfig>) -> anyhow::Result<()> {
    let n = &config.notify;
    if !(n.sms() || n.web_push) {
        return Ok(());
    }
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(ATTEMPT)
        .user_agent(concat!("luot/", env!("CARGO_PKG_VERSION")))
        .build()?;
    let notifier = Arc::new(Notifier {
        hub: hub.clone(),
        config: config.clone(),
        http,
        counts: Mutex::new(HashMap::new()),
    });
    let (tx, mut rx) = mpsc::channel(QUEUE);
    hub.send_notices_to(tx);
    tokio::spawn(async move {
        while let Some(notice) = rx.recv().await {
            notifier.clone().dispatch(notice).await;
        }
    });
    Ok(())
}

/// Makes the site's VAPID key pair unless the store has one (rule 93).
pub async fn ensure_vapid(hub: &Hub, config: &SiteConfig) -> anyhow::Result<()> {
    if !config.notify.web_push || hub.vapid().await.is_some() {
        return Ok(());
    }
    let key = loop {
        let k = crate::auth::random_bytes();
        if push::valid_secret(&k) {
            break k;
        }
    };
    hub.command(Command::VapidKey {
        key: crate::engine::identity::Fresh(key),
    })
    .await?;
    tracing::info!("Web Push key pair made");
    Ok(())
}

impl Notifier {
    /// One due alert: a message per channel the ticket has.
    async fn dispatch(self: Arc<Self>, notice: Notice) {
        let Some(contacts) = self.hub.notify_contacts(&notice.ticket).await else {
            return;
        };
        let n = &self.config.notify;
        let template = match notice.kind {
            NoticeKind::Near => &n.near_text,
            NoticeKind::Called => &n.called_text,
        };
        let position = notice.position.map(|p| p.to_string()).unwrap_or_default();
        let text = crate::config::notify::fill(
            template,
            &notice.number,
            &position,
            &notice.service_name,
            &notice.counter_name,
        );
        if contacts.phone.is_some() && n.sms() {
            let count = {
                let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
                let c = counts
                    .entry((notice.ticket.clone(), notice.kind))
                    .or_insert(0);
                *c += 1;
                *c
            };
            let key = format!("{}:{}:{count}", notice.ticket, notice.kind.as_str());
            tokio::spawn(self.clone().sms(notice.clone(), text.clone(), key));
        }
        if n.web_push {
            let message = PushMessage {
                kind: notice.kind.as_str().into(),
                number: notice.number.clone(),
                position: notice.position,
                counter_name: notice.counter_name.clone(),
                text,
                url: format!(
                    "{}/t/{}",
                    self.config.site.public_url.trim_end_matches('/'),
                    notice.ticket
                ),
            };
            let body = serde_json::to_vec(&message).unwrap_or_default();
            for s in contacts.push {
                tokio::spawn(self.clone().push(notice.clone(), body.clone(), s.endpoint));
            }
        }
    }

    /// Whether the alert's moment has not passed (rule 91).
    async fn due(&self, notice: &Notice) -> bool {
        let Ok(Some(t)) = self.hub.ticket(&notice.ticket).await else {
            return false;
        };
        match notice.kind {
            NoticeKind::Near => t.status == TicketStatus::Waiting,
            NoticeKind::Called => t.status == TicketStatus::Called,
        }
    }

    /// Rule 92: up to three attempts, 5 s and 30 s apart.
    async fn sms(self: Arc<Self>, notice: Notice, text: String, key: String) {
        let kind = notice.kind.as_str();
        for attempt in 0..=RETRIES.len() {
            if attempt > 0 {
                tokio::time::sleep(RETRIES[attempt - 1]).await;
            }
            if !self.due(&notice).await {
                tracing::info!(ticket = %notice.ticket, kind, "alert dropped: its moment has passed");
                return;
            }
            let Some(phone) = self
                .hub
                .notify_contacts(&notice.ticket)
                .await
                .and_then(|c| c.phone)
            else {
                return;
            };
            match self.post_gateway(&notice, &phone, &text, &key).await {
                Ok(()) => {
                    tracing::info!(ticket = %notice.ticket, kind, attempt = attempt + 1, "SMS alert sent");
                    return;
                }
                Err(e) => {
                    tracing::warn!(ticket = %notice.ticket, kind, attempt = attempt + 1, error = %e, "SMS gateway failed")
                }
            }
        }
        tracing::warn!(ticket = %notice.ticket, kind, "SMS alert given up after 3 attempts");
    }

    async fn post_gateway(
        &self,
        notice: &Notice,
        phone: &str,
        text: &str,
        key: &str,
    ) -> Result<(), String> {
        let Some(gw) = &self.config.notify.gateway else {
            return Err("no gateway".into());
        };
        let body = GatewayMessage {
            site: self.config.site.id.clone(),
            to: phone.into(),
            text: text.into(),
            kind: notice.kind.as_str().into(),
            ticket: notice.ticket.clone(),
            number: notice.number.clone(),
            idempotency_key: key.into(),
        };
        let mut req = self.http.post(&gw.url).json(&body);
        if let Some(a) = &gw.authorization {
            req = req.header(reqwest::header::AUTHORIZATION, a);
        }
        // The error's text may hold the URL, never the body.
        let resp = req.send().await.map_err(|e| e.without_url().to_string())?;
        let status = resp.status();
        if status.is_success() {
            return Ok(());
        }
        Err(format!("HTTP {}", status.as_u16()))
    }

    /// Rule 93 for one subscription.
    async fn push(self: Arc<Self>, notice: Notice, body: Vec<u8>, endpoint: String) {
        let kind = notice.kind.as_str();
        for attempt in 0..=RETRIES.len() {
            if attempt > 0 {
                tokio::time::sleep(RETRIES[attempt - 1]).await;
            }
            if !self.due(&notice).await {
                tracing::info!(ticket = %notice.ticket, kind, "push alert dropped: its moment has passed");
                return;
            }
            let sub = self
                .hub
                .notify_contacts(&notice.ticket)
                .await
                .and_then(|c| c.push.into_iter().find(|s| s.endpoint == endpoint));
            let Some(sub) = sub else {
                return;
            };
            match self.post_push(&sub, &body).await {
                Ok(status) if (200..300).contains(&status) => {
                    tracing::info!(ticket = %notice.ticket, kind, attempt = attempt + 1, "push alert sent");
                    return;
                }
                Ok(status @ (404 | 410)) => {
                    tracing::info!(ticket = %notice.ticket, status, "push subscription gone; dropped");
                    let mut nonce = [0u8; 12];
                    nonce.copy_from_slice(&crate::auth::random_bytes()[..12]);
                    let _ = self
                        .hub
                        .command(Command::NotifyDrop {
                            ticket: notice.ticket.clone(),
                            endpoint,
                            nonce,
                        })
                        .await;
                    return;
                }
                Ok(status) => {
                    tracing::warn!(ticket = %notice.ticket, kind, attempt = attempt + 1, status, "push service refused")
                }
                Err(e) => {
                    tracing::warn!(ticket = %notice.ticket, kind, attempt = attempt + 1, error = %e, "push service failed")
                }
            }
        }
        tracing::warn!(ticket = %notice.ticket, kind, "push alert given up after 3 attempts");
    }

    /// One encrypted, VAPID-signed push request; its status.
    async fn post_push(
        &self,
        sub: &crate::engine::notify::Subscription,
        message: &[u8],
    ) -> Result<u16, String> {
        let secret = self.hub.vapid().await.ok_or("no VAPID key yet")?;
        let subject = self.config.notify.push_subject.clone().unwrap_or_default();
        let exp = chrono::Utc::now().timestamp() + 12 * 3600;
        let auth = push::vapid_header(&secret, &sub.endpoint, &subject, exp)
            .ok_or("the endpoint has no origin")?;
        let body = loop {
            let r = crate::auth::random_bytes();
            let mut salt = [0u8; 16];
            salt.copy_from_slice(&r[..16]);
            let seed = push::Seed {
                ephemeral: crate::auth::random_bytes(),
                salt,
            };
            if !push::valid_secret(&seed.ephemeral) {
                continue;
            }
            break push::encrypt(message, &sub.p256dh, &sub.auth, &seed)
                .ok_or("the subscription's keys are unusable")?;
        };
        let resp = self
            .http
            .post(&sub.endpoint)
            .header(reqwest::header::AUTHORIZATION, auth)
            .header("TTL", TTL_S.to_string())
            .header("Urgency", "high")
            .header(reqwest::header::CONTENT_ENCODING, "aes128gcm")
            .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
            .body(body)
            .send()
            .await
            .map_err(|e| e.without_url().to_string())?;
        Ok(resp.status().as_u16())
    }
}
