//! Phone alerts' rights and 400s (rules 93–94): a `/notify` body's checks
//! (consent, a phone of Vietnam's mobile networks kept as `+84…`, a push
//! subscription's endpoint and keys), whether a channel asked for is off,
//! registering and erasing through the hub, and what the holder sees
//! (`notify` in `GET /tickets/{id}`, `push_key` and `notify` in `/site`).
//! Nothing here logs or answers a phone.

use luot_protocol::{HolderTicket, NotifyChannels, NotifyRequest, NotifyStatus, SiteView, Ticket};

use super::App;
use crate::auth::{self, Principal};
use crate::config::DeviceRole;
use crate::engine::notify::{Contacts, Subscription};
use crate::engine::{Command, NotifyCmd};
use crate::error::ApiError;
use crate::notify::push;

/// The longest push endpoint taken.
const MAX_ENDPOINT: usize = 2048;

/// A phone as rule 94 takes it: `0` or `+84`, then 9 digits starting 3, 5,
/// 7, 8 or 9; kept as `+84…`.
pub fn phone(s: &str) -> Option<String> {
    let rest = s.strip_prefix("+84").or_else(|| s.strip_prefix('0'))?;
    let b = rest.as_bytes();
    let ok = b.len() == 9
        && b.iter().all(u8::is_ascii_digit)
        && matches!(b[0], b'3' | b'5' | b'7' | b'8' | b'9');
    ok.then(|| format!("+84{rest}"))
}

fn bad(message: &str) -> ApiError {
    ApiError::bad_request(message)
}

impl App {
    /// A `/notify` body's 400s: consent, a channel, the phone, the
    /// subscription. Returns the contacts and whether a channel asked for
    /// is off at this site.
    pub fn notify_fields(&self, req: &NotifyRequest) -> Result<(Contacts, bool), ApiError> {
        if req.consent != Some(true) {
            return Err(bad("Cần đồng ý nhận tin báo (consent must be true)"));
        }
        if req.phone.is_none() && req.push.is_none() {
            return Err(bad(
                "Cần số điện thoại hoặc đăng ký thông báo (give phone or push)",
            ));
        }
        let phone = match &req.phone {
            Some(p) => Some(phone(p).ok_or_else(|| {
                bad("Số điện thoại không hợp lệ: 0 hoặc +84 rồi 9 chữ số bắt đầu bằng 3, 5, 7, 8 hoặc 9 (phone must be a Vietnamese mobile number)")
            })?),
            None => None,
        };
        let mut subs = Vec::new();
        if let Some(p) = &req.push {
            let endpoint_ok = p.endpoint.len() <= MAX_ENDPOINT
                && reqwest::Url::parse(&p.endpoint)
                    .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.has_host());
            if !endpoint_ok {
                return Err(bad(
                    "push.endpoint phải là địa chỉ http(s) (push.endpoint must be an http(s) URL)",
                ));
            }
            if !push::valid_keys(&p.keys.p256dh, &p.keys.auth) {
                return Err(bad(
                    "push.keys không hợp lệ (push.keys.p256dh must be a P-256 key and push.keys.auth 16 bytes, base64url)",
                ));
            }
            subs.push(Subscription {
                endpoint: p.endpoint.clone(),
                p256dh: p.keys.p256dh.clone(),
                auth: p.keys.auth.clone(),
            });
        }
        let n = &self.config.notify;
        let off = (phone.is_some() && !n.sms()) || (!subs.is_empty() && !n.web_push);
        Ok((Contacts { phone, push: subs }, off))
    }

    /// `POST /tickets/{id}/notify`: 400s, 404, 409 `not_waiting`, 409
    /// `notify_off`, 429; durable before it returns.
    pub async fn notify(&self, ticket: &str, req: NotifyRequest) -> Result<(), ApiError> {
        let (contacts, off) = self.notify_fields(&req)?;
        self.register(ticket, contacts, off).await
    }

    async fn register(&self, ticket: &str, contacts: Contacts, off: bool) -> Result<(), ApiError> {
        let mut nonce = [0u8; 12];
        nonce.copy_from_slice(&auth::random_bytes()[..12]);
        let cmd = NotifyCmd {
            ticket: ticket.to_string(),
            contacts,
            off,
            fresh: crate::engine::identity::Fresh(auth::random_bytes()),
            nonce,
        };
        self.hub.command(Command::Notify(Box::new(cmd))).await?;
        tracing::info!(ticket, "alerts registered");
        Ok(())
    }

    /// `notify` on `POST /tickets`: its 400s, then a kiosk's 403, then
    /// 409 `notify_off` (before anything is issued).
    pub fn check_issue_notify(
        &self,
        who: &Principal,
        req: Option<&NotifyRequest>,
    ) -> Result<Option<Contacts>, ApiError> {
        let Some(req) = req else {
            return Ok(None);
        };
        let (contacts, off) = self.notify_fields(req)?;
        if matches!(
            who,
            Principal::Device {
                role: DeviceRole::Kiosk,
                ..
            }
        ) {
            return Err(ApiError::forbidden(
                "Ki-ốt không đăng ký báo tin cho bệnh nhân (kiosks cannot register alerts)",
            ));
        }
        if off {
            return Err(crate::engine::Rejection::NotifyOff.into());
        }
        Ok(Some(contacts))
    }

    /// After an issue with `notify`: registers it for a new ticket, or for
    /// a replay whose ticket has none yet.
    pub async fn issue_notify(
        &self,
        ticket: &Ticket,
        created: bool,
        contacts: Option<Contacts>,
    ) -> Result<(), ApiError> {
        let Some(contacts) = contacts else {
            return Ok(());
        };
        if !created && self.hub.notify_status(&ticket.id).await != (false, 0) {
            return Ok(());
        }
        self.register(&ticket.id, contacts, false).await
    }

    /// `DELETE /tickets/{id}/notify`: 404 for an unknown ticket; its
    /// contacts erased (durable before it returns), its count kept.
    pub async fn notify_erase(&self, ticket: &str) -> Result<(), ApiError> {
        self.hub
            .command(Command::NotifyErase {
                ticket: ticket.to_string(),
            })
            .await?;
        tracing::info!(ticket, "alerts erased");
        Ok(())
    }

    /// Whether any alert channel is on.
    pub fn notify_on(&self) -> bool {
        self.config.notify.sms() || self.config.notify.web_push
    }

    /// `GET /tickets/{id}` for its holder: with `notify` when the site
    /// has alerts.
    pub async fn holder_ticket(
        &self,
        who: Option<&Principal>,
        id: &str,
    ) -> Result<serde_json::Value, ApiError> {
        let ticket = self.ticket_as(who, id).await?;
        if !self.notify_on() {
            return Ok(serde_json::to_value(ticket).unwrap_or_default());
        }
        let (sms, push) = self.hub.notify_status(id).await;
        let view = HolderTicket {
            ticket,
            notify: NotifyStatus {
                sms,
                push: u32::from(push),
            },
        };
        Ok(serde_json::to_value(view).unwrap_or_default())
    }

    /// `GET /site` with `push_key` and `notify` (rule 93).
    pub async fn site_view(&self) -> SiteView {
        let site = self.site().await;
        let n = &self.config.notify;
        let push_key = match n.web_push {
            true => self.hub.vapid().await.and_then(|k| push::public_key(&k)),
            false => None,
        };
        let push = push_key.is_some();
        SiteView {
            site,
            push_key,
            notify: NotifyChannels { sms: n.sms(), push },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::phone;

    #[test]
    fn phones_of_vietnams_mobile_networks_are_kept_as_plus_84() {
        assert_eq!(phone("0912345678").as_deref(), Some("+84912345678"));
        assert_eq!(phone("+84387654321").as_deref(), Some("+84387654321"));
        for bad in [
            "0212345678",
            "091234567",
            "09123456789",
            "84912345678",
            "+840912345678",
            "09123a5678",
            "",
        ] {
            assert_eq!(phone(bad), None, "{bad}");
        }
    }
}
