//! `[[webhooks]]` (contract §12, rules 89–90): each receiver's id, URL,
//! signing secret and the event kinds it takes. `check-config` refuses a bad
//! or repeated id, a URL that is not http(s), a secret that is not
//! `whsec_` + base64 of 24–64 bytes, and an unknown event kind. The secret
//! is kept decoded (the HMAC key) and never printed (`Debug` hides it).

use base64::Engine;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::{DecodePaddingMode, general_purpose};
use luot_protocol::EventKind;

use super::check::{Ctx, Seen};
use super::raw::RawWebhook;
use super::types::ConfigError;

/// One webhook receiver.
#[derive(Clone, PartialEq, Eq)]
pub struct Webhook {
    pub id: String,
    pub url: String,
    /// The HMAC-SHA256 key: the secret's bytes after `whsec_`, decoded.
    pub key: Vec<u8>,
    /// The kinds it takes, in the order given; `None`: every kind.
    pub events: Option<Vec<EventKind>>,
}

impl Webhook {
    /// Whether it takes events of `kind`.
    pub fn takes(&self, kind: EventKind) -> bool {
        self.events.as_ref().is_none_or(|k| k.contains(&kind))
    }

    /// The kinds it takes, by their wire names (every kind when none listed).
    pub fn event_names(&self) -> Vec<String> {
        match &self.events {
            Some(k) => k.iter().map(|k| kind_name(*k)).collect(),
            None => ALL_KINDS.iter().map(|k| kind_name(*k)).collect(),
        }
    }
}

impl std::fmt::Debug for Webhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Webhook")
            .field("id", &self.id)
            .field("url", &self.url)
            .field("key", &"(hidden)")
            .field("events", &self.events)
            .finish()
    }
}

/// Every event kind, in the contract's order.
pub const ALL_KINDS: [EventKind; 18] = [
    EventKind::TicketIssued,
    EventKind::TicketCalled,
    EventKind::TicketRecalled,
    EventKind::TicketDone,
    EventKind::TicketNoShow,
    EventKind::TicketTransferred,
    EventKind::CounterOpened,
    EventKind::CounterClosed,
    EventKind::DayStarted,
    EventKind::TicketSent,
    EventKind::StepFinished,
    EventKind::TicketHeld,
    EventKind::TicketRequeued,
    EventKind::TicketCancelled,
    EventKind::AppointmentBooked,
    EventKind::AppointmentCancelled,
    EventKind::AppointmentCheckedIn,
    EventKind::AppointmentExpired,
];

/// A kind's wire name (`ticket_called`).
pub fn kind_name(kind: EventKind) -> String {
    serde_json::to_value(kind)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

fn kind_of(name: &str) -> Option<EventKind> {
    serde_json::from_value(serde_json::Value::String(name.to_string())).ok()
}

/// Standard base64, padded or not (Standard Webhooks writes it padded).
const SECRET_B64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// The HMAC key of a `whsec_` secret: base64 of 24–64 bytes.
pub fn secret_key(secret: &str) -> Option<Vec<u8>> {
    let b64 = secret.strip_prefix("whsec_")?;
    let key = SECRET_B64
        .decode(b64)
        .or_else(|_| general_purpose::STANDARD.decode(b64))
        .ok()?;
    (24..=64).contains(&key.len()).then_some(key)
}

/// An http(s) URL with a host.
fn valid_url(url: &str) -> bool {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"));
    let Some(rest) = rest else { return false };
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    !host.is_empty() && !host.contains(char::is_whitespace) && !url.contains(char::is_whitespace)
}

pub(super) fn parse(ctx: &Ctx, raw: &[RawWebhook]) -> Result<Vec<Webhook>, ConfigError> {
    let mut ids = Seen::new("webhook id", "webhooks.id");
    let mut out = Vec::with_capacity(raw.len());
    for w in raw {
        ids.check_id(ctx, &w.id)?;
        let id = w.id.get_ref();
        let url = w.url.get_ref().trim();
        if !valid_url(url) {
            return Err(ctx.err(
                w.url.span(),
                "webhooks.url",
                format!(
                    "webhook \"{id}\": \"{}\" is not an http:// or https:// URL",
                    w.url.get_ref()
                ),
            ));
        }
        let key = secret_key(w.secret.get_ref()).ok_or_else(|| {
            // Never echo the secret itself.
            ctx.err(
                w.secret.span(),
                "webhooks.secret",
                format!(
                    "webhook \"{id}\": the secret must be whsec_ followed by the base64 of 24 to 64 random bytes"
                ),
            )
        })?;
        let events = match &w.events {
            None => None,
            Some(list) => {
                let mut seen = Seen::new("event kind in this webhook", "webhooks.events");
                let mut kinds = Vec::with_capacity(list.get_ref().len());
                for k in list.get_ref() {
                    let Some(kind) = kind_of(k.get_ref()) else {
                        return Err(ctx.err(
                            k.span(),
                            "webhooks.events",
                            format!(
                                "webhook \"{id}\": \"{}\" is not an event kind (one of {})",
                                k.get_ref(),
                                ALL_KINDS
                                    .iter()
                                    .map(|k| kind_name(*k))
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            ),
                        ));
                    };
                    seen.check(ctx, k)?;
                    kinds.push(kind);
                }
                Some(kinds)
            }
        };
        out.push(Webhook {
            id: id.clone(),
            url: url.to_string(),
            key,
            events,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use crate::config::SiteConfig;

    const BASE: &str =
        "[site]\nname = \"T\"\n[[services]]\nid = \"a\"\nname = \"A\"\nprefix = \"A\"\n";
    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

    fn with(extra: &str) -> Result<SiteConfig, String> {
        SiteConfig::parse("site.toml", &format!("{BASE}{extra}")).map_err(|e| e.to_string())
    }

    fn hook(id: &str, url: &str, secret: &str, events: &str) -> String {
        format!("[[webhooks]]\nid = \"{id}\"\nurl = \"{url}\"\nsecret = \"{secret}\"\n{events}\n")
    }

    #[test]
    fn a_webhook_is_read_with_its_key_and_kinds() {
        let c = with(&format!(
            "{}{}",
            hook(
                "his",
                "https://his.example.vn/luot",
                SECRET,
                "events = [\"ticket_called\", \"appointment_checked_in\"]"
            ),
            hook("lis", "http://10.0.0.5:9000/x", SECRET, "")
        ))
        .expect("valid");
        assert_eq!(c.site.id, "luot");
        assert_eq!(c.webhooks.len(), 2);
        let his = &c.webhooks[0];
        assert_eq!(his.key.len(), 24);
        assert!(his.takes(luot_protocol::EventKind::TicketCalled));
        assert!(!his.takes(luot_protocol::EventKind::TicketIssued));
        assert!(c.webhooks[1].takes(luot_protocol::EventKind::TicketIssued));
        assert_eq!(c.webhooks[1].event_names().len(), 18);
        assert!(!format!("{his:?}").contains("MfKQ"), "Debug hides the key");
    }

    #[test]
    fn check_config_refuses_what_section_12_names() {
        let cases = [
            (hook("HIS", "https://x.vn", SECRET, ""), "webhooks.id"),
            (
                format!(
                    "{}{}",
                    hook("his", "https://x.vn", SECRET, ""),
                    hook("his", "https://y.vn", SECRET, "")
                ),
                "duplicate webhook id",
            ),
            (hook("his", "ftp://x.vn/a", SECRET, ""), "webhooks.url"),
            (hook("his", "https://", SECRET, ""), "webhooks.url"),
            (
                hook(
                    "his",
                    "https://x.vn",
                    "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
                    "",
                ),
                "webhooks.secret",
            ),
            (
                hook("his", "https://x.vn", "whsec_c2hvcnQ=", ""),
                "webhooks.secret",
            ),
            (
                hook("his", "https://x.vn", "whsec_!!!", ""),
                "webhooks.secret",
            ),
            (
                hook("his", "https://x.vn", SECRET, "events = [\"ticket_eaten\"]"),
                "ticket_eaten",
            ),
        ];
        for (toml, want) in cases {
            let err = with(&toml).expect_err(&toml);
            assert!(err.contains(want), "{toml}\n→ {err}");
            assert!(
                !err.contains("MfKQ9r8"),
                "an error never echoes a secret: {err}"
            );
        }
    }

    #[test]
    fn the_site_id_is_checked() {
        let c = SiteConfig::parse(
            "s.toml",
            &BASE.replace("name = \"T\"", "name = \"T\"\nid = \"bvdk-demo\""),
        )
        .expect("valid");
        assert_eq!(c.site.id, "bvdk-demo");
        let err = SiteConfig::parse(
            "s.toml",
            &BASE.replace("name = \"T\"", "name = \"T\"\nid = \"BV ĐK\""),
        )
        .expect_err("refused");
        assert!(err.to_string().contains("site.id"), "{err}");
    }
}
