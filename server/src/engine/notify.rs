//! Phone alerts as the engine keeps them (rules 91–94): a ticket's
//! contacts (a phone as `+84…`, up to 3 Web Push subscriptions), how a new
//! `/notify` call merges into them, and how they are sealed: AES-256-GCM
//! under a key derived from the ticket's day key (rule 81), so the sealed
//! bytes that reach the log and snapshots read as nothing once that key is
//! erased when the next day starts.
//!
//! Nothing here logs or prints a contact (`Contacts`' `Debug` shows only
//! counts); it never draws random numbers (the caller passes the nonce).
//! A leaf: it imports nothing of the engine.

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

/// A ticket keeps its last this many push subscriptions (rule 93).
pub const MAX_PUSH: usize = 3;
/// A waiting ticket takes at most this many `/notify` calls (rule 94).
pub const MAX_CALLS: u8 = 3;

/// A browser's push subscription (RFC 8030 endpoint, RFC 8291 keys), as
/// checked by the caller.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subscription {
    pub endpoint: String,
    /// The browser's P-256 key, base64url of the uncompressed point.
    pub p256dh: String,
    /// The 16-byte authentication secret, base64url.
    pub auth: String,
}

/// Where a ticket's alerts go. Never printed.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Contacts {
    /// `+84` and 9 digits.
    #[serde(default)]
    pub phone: Option<String>,
    #[serde(default)]
    pub push: Vec<Subscription>,
}

impl std::fmt::Debug for Contacts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Contacts(sms: {}, push: {})",
            self.phone.is_some(),
            self.push.len()
        )
    }
}

impl Contacts {
    /// A new call's contacts over the kept ones: a new phone replaces the
    /// old, a subscription is added (again last if its endpoint is known)
    /// and only the last `MAX_PUSH` stay.
    pub fn merge(&mut self, new: Contacts) {
        if new.phone.is_some() {
            self.phone = new.phone;
        }
        for s in new.push {
            self.push.retain(|o| o.endpoint != s.endpoint);
            self.push.push(s);
        }
        let extra = self.push.len().saturating_sub(MAX_PUSH);
        self.push.drain(..extra);
    }

    pub fn is_empty(&self) -> bool {
        self.phone.is_none() && self.push.is_empty()
    }
}

/// The AES-256-GCM key of a day's sealed contacts: HMAC-SHA256 of a fixed
/// label under the day key, so the key of person hashes is never used as
/// a cipher key itself.
fn cipher(day_key: &[u8; 32]) -> Aes256Gcm {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(day_key).expect("any key length");
    mac.update(b"luot notify contacts v1");
    let key = mac.finalize().into_bytes();
    Aes256Gcm::new_from_slice(&key).expect("a 256-bit key")
}

/// Seals contacts under a day key with a fresh 96-bit nonce: base64url of
/// nonce ‖ ciphertext.
pub fn seal(day_key: &[u8; 32], nonce: &[u8; 12], contacts: &Contacts) -> String {
    let plain = serde_json::to_vec(contacts).unwrap_or_default();
    let sealed = cipher(day_key)
        .encrypt(Nonce::from_slice(nonce), plain.as_slice())
        .unwrap_or_default();
    let mut out = nonce.to_vec();
    out.extend_from_slice(&sealed);
    URL_SAFE_NO_PAD.encode(out)
}

/// Opens what `seal` made under the same day key; `None` under any other
/// key (an erased day's) or for damaged bytes.
pub fn unseal(day_key: &[u8; 32], sealed: &str) -> Option<Contacts> {
    let bytes = URL_SAFE_NO_PAD.decode(sealed).ok()?;
    if bytes.len() < 12 {
        return None;
    }
    let (nonce, ct) = bytes.split_at(12);
    let plain = cipher(day_key).decrypt(Nonce::from_slice(nonce), ct).ok()?;
    serde_json::from_slice(&plain).ok()
}

/// What a ticket's alerts are, kept in the state (and its snapshots):
/// the sealed contacts and the counts anyone may see.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotifyRec {
    /// `/notify` calls taken while waiting (rule 94: `DELETE` keeps them).
    pub calls: u8,
    /// `seal`'s output; `None` once erased.
    pub sealed: Option<String>,
    pub sms: bool,
    pub push: u8,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sub(n: u8) -> Subscription {
        Subscription {
            endpoint: format!("https://push.example/{n}"),
            p256dh: "k".into(),
            auth: "a".into(),
        }
    }

    #[test]
    fn sealed_contacts_open_only_under_their_day_key_and_hide_the_phone() {
        let c = Contacts {
            phone: Some("+84912345678".into()),
            push: vec![sub(1)],
        };
        let sealed = seal(&[1; 32], &[2; 12], &c);
        assert!(!sealed.contains("912345678"));
        assert_eq!(unseal(&[1; 32], &sealed), Some(c));
        assert_eq!(unseal(&[3; 32], &sealed), None);
        assert_eq!(
            format!("{:?}", unseal(&[1; 32], &sealed)),
            "Some(Contacts(sms: true, push: 1))"
        );
    }

    #[test]
    fn a_new_phone_replaces_the_old_and_only_the_last_three_subscriptions_stay() {
        let mut c = Contacts {
            phone: Some("+84912345678".into()),
            push: vec![sub(1), sub(2)],
        };
        c.merge(Contacts {
            phone: None,
            push: vec![sub(3), sub(1), sub(4)],
        });
        assert_eq!(c.phone.as_deref(), Some("+84912345678"));
        let ends: Vec<_> = c.push.iter().map(|s| s.endpoint.as_str()).collect();
        assert_eq!(
            ends,
            [
                "https://push.example/3",
                "https://push.example/1",
                "https://push.example/4"
            ]
        );
        c.merge(Contacts {
            phone: Some("+84387654321".into()),
            push: vec![],
        });
        assert_eq!(c.phone.as_deref(), Some("+84387654321"));
    }
}
