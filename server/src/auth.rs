//! Who is calling: device tokens (stored as sha256), staff and admin
//! passwords (argon2id), login tokens, the login rate limit, and random ids.
//! Hashing itself lives in `secret` (shared with `config`); it is re-exported
//! here.
//!
//! This module decides identities and rights; it never touches sled (login
//! sessions are persisted by the hub through the store) and never logs a
//! secret.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordVerifier};
use base64::Engine as _;
use rand::RngCore;

use crate::config::{DeviceRole, SiteConfig, UserRole};
pub use crate::secret::{hash_password, is_argon2id_hash, sha256_hex};

/// How long a login token lasts (rule 9).
pub const LOGIN_TTL: chrono::Duration = chrono::Duration::hours(12);
/// Failed logins per username that trigger the lock (rule 8).
pub const MAX_FAILURES: usize = 10;
/// The window and the lock length of the rate limit.
pub const FAILURE_WINDOW: Duration = Duration::from_secs(60);

pub fn verify_password(password: &str, hash: &str) -> bool {
    let Ok(h) = PasswordHash::new(hash) else {
        return false;
    };
    match argon2_parts(&h) {
        Some((argon, salt, expected)) => {
            let mut memory = argon2_memory(argon.params().block_count());
            let mut out = vec![0u8; expected.len()];
            argon
                .hash_password_into_with_memory(password.as_bytes(), &salt, &mut out, &mut memory)
                .is_ok()
                // Output's equality is constant-time.
                && argon2::password_hash::Output::new(&out).is_ok_and(|o| o == expected)
        }
        // Not argon2 with its own parameters: the library's own check.
        None => Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok(),
    }
}

/// The hasher, salt and expected output of an argon2 PHC string.
fn argon2_parts(
    h: &PasswordHash<'_>,
) -> Option<(Argon2<'static>, Vec<u8>, argon2::password_hash::Output)> {
    let algorithm = argon2::Algorithm::try_from(h.algorithm).ok()?;
    let version = match h.version {
        Some(v) => argon2::Version::try_from(v).ok()?,
        None => argon2::Version::default(),
    };
    let params = argon2::Params::try_from(h).ok()?;
    let mut salt = [0u8; 64];
    let salt = h.salt?.decode_b64(&mut salt).ok()?.to_vec();
    Some((Argon2::new(algorithm, version, params), salt, h.hash?))
}

/// Working memory for one argon2 run (19 MiB with the default parameters).
/// Its capacity is at least 33 MiB, above the largest threshold glibc's
/// malloc ever uses for plain mmap, so the memory goes back to the system
/// when the check ends; otherwise each thread's arena kept its 19 MiB and a
/// few logins grew the server by tens of MB for good. Only the blocks used
/// are touched.
fn argon2_memory(blocks: usize) -> Vec<argon2::Block> {
    const MMAP_ALWAYS: usize = 33 << 20;
    let mut memory =
        Vec::with_capacity(blocks.max(MMAP_ALWAYS / std::mem::size_of::<argon2::Block>()));
    memory.resize(blocks, argon2::Block::default());
    memory
}

/// `n` random bytes, URL-safe base64 without padding.
pub fn random_b64(n: usize) -> String {
    let mut buf = vec![0u8; n];
    // ThreadRng is a CSPRNG (ChaCha12) seeded from the operating system.
    rand::rng().fill_bytes(&mut buf);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(buf)
}

/// 256 random bits, for the engine (day keys, booking codes).
pub fn random_bytes() -> [u8; 32] {
    let mut buf = [0u8; 32];
    rand::rng().fill_bytes(&mut buf);
    buf
}

/// A new unguessable ticket id: `tk_` + 128 random bits.
pub fn new_ticket_id() -> String {
    format!("tk_{}", random_b64(16))
}

/// A new bearer token (device or login): 256 random bits.
pub fn new_token() -> String {
    random_b64(32)
}

/// Whoever a request or a websocket speaks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Principal {
    Device {
        id: String,
        role: DeviceRole,
        services: Vec<String>,
    },
    User {
        username: String,
        role: UserRole,
        counters: Vec<String>,
    },
    /// A screen without a token on a site with `public_board = true`.
    PublicDisplay,
}

impl Principal {
    pub fn role_str(&self) -> &'static str {
        match self {
            Principal::Device { role, .. } => role.as_str(),
            Principal::User { role, .. } => role.as_str(),
            Principal::PublicDisplay => "display",
        }
    }

    /// The scope of `request_id`s (rule 24).
    pub fn scope(&self) -> String {
        match self {
            Principal::Device { id, .. } => format!("device:{id}"),
            Principal::User { username, .. } => format!("user:{username}"),
            Principal::PublicDisplay => "public".into(),
        }
    }

    pub fn name(&self) -> Option<String> {
        match self {
            Principal::Device { id, .. } => Some(id.clone()),
            Principal::User { username, .. } => Some(username.clone()),
            Principal::PublicDisplay => None,
        }
    }

    pub fn is_admin(&self) -> bool {
        matches!(
            self,
            Principal::User {
                role: UserRole::Admin,
                ..
            }
        )
    }

    /// An integration (§2, §11): a portal or hospital app.
    pub fn is_integration(&self) -> bool {
        matches!(
            self,
            Principal::Device {
                role: DeviceRole::Integration,
                ..
            }
        )
    }

    pub fn is_kiosk(&self) -> bool {
        matches!(
            self,
            Principal::Device {
                role: DeviceRole::Kiosk,
                ..
            }
        )
    }

    /// An integration's scope: it sees, lists, cancels and checks in only
    /// the bookings it made (rule 76).
    pub fn only_own(&self) -> Option<String> {
        self.is_integration().then(|| self.scope())
    }

    /// A kiosk's or integration's issue: rules 73–75 and 82 apply to it
    /// (never to staff or admins).
    pub fn limited(&self) -> bool {
        matches!(
            self,
            Principal::Device {
                role: DeviceRole::Kiosk | DeviceRole::Integration,
                ..
            }
        )
    }

    /// Staff, admins, integrations and kiosks with buttons: a desk printer
    /// (a kiosk with no services, rule 66) only prints.
    pub fn may_issue(&self) -> bool {
        match self {
            Principal::User { .. } => true,
            Principal::Device {
                role: DeviceRole::Integration,
                ..
            } => true,
            Principal::Device {
                role: DeviceRole::Kiosk,
                services,
                ..
            } => !services.is_empty(),
            _ => false,
        }
    }

    /// Whether this principal may act on counter `id` (staff of it, admin).
    pub fn may_act_on(&self, counter: &str) -> bool {
        match self {
            Principal::User {
                role: UserRole::Admin,
                ..
            } => true,
            Principal::User {
                role: UserRole::Staff,
                counters,
                ..
            } => counters.iter().any(|c| c == counter),
            _ => false,
        }
    }

    /// For a kiosk, whether `service` is one of its buttons; for an
    /// integration, one of its services (none listed: all); staff and
    /// admins may issue any.
    pub fn may_issue_for(&self, service: &str) -> bool {
        match self {
            Principal::Device {
                role: DeviceRole::Kiosk,
                services,
                ..
            } => services.iter().any(|s| s == service),
            Principal::Device {
                role: DeviceRole::Integration,
                services,
                ..
            } => services.is_empty() || services.iter().any(|s| s == service),
            Principal::User { .. } => true,
            _ => false,
        }
    }
}

/// Looks a device token up in the configuration.
pub fn device_for_token(cfg: &SiteConfig, token: &str) -> Option<Principal> {
    let h = sha256_hex(token);
    cfg.devices
        .iter()
        .find(|d| d.token_sha256 == h)
        .map(|d| Principal::Device {
            id: d.id.clone(),
            role: d.role,
            services: d.services.clone(),
        })
}

/// Per-username failed-login tracking (rule 8). In memory: a restart forgets it.
#[derive(Default)]
pub struct LoginLimiter {
    failures: HashMap<String, Vec<Instant>>,
}

impl LoginLimiter {
    /// `true` when this username is locked at `now`.
    pub fn locked(&mut self, username: &str, now: Instant) -> bool {
        let Some(list) = self.failures.get_mut(username) else {
            return false;
        };
        let Some(last) = list.last().copied() else {
            return false;
        };
        if now.duration_since(last) >= FAILURE_WINDOW {
            self.failures.remove(username);
            return false;
        }
        // Locked when the last MAX_FAILURES failures all fell within one window.
        list.len() >= MAX_FAILURES
            && last.duration_since(list[list.len() - MAX_FAILURES]) < FAILURE_WINDOW
    }

    pub fn record_failure(&mut self, username: &str, now: Instant) {
        let list = self.failures.entry(username.to_string()).or_default();
        list.retain(|t| now.duration_since(*t) < FAILURE_WINDOW);
        list.push(now);
        if self.failures.len() > 100_000 {
            self.failures.retain(|_, v| {
                v.last()
                    .is_some_and(|t| now.duration_since(*t) < FAILURE_WINDOW)
            });
        }
    }

    pub fn record_success(&mut self, username: &str) {
        self.failures.remove(username);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_round_trip() {
        let h = hash_password("mật khẩu");
        assert!(is_argon2id_hash(&h));
        assert!(verify_password("mật khẩu", &h));
        assert!(!verify_password("mat khau", &h));
    }

    #[test]
    fn ticket_ids_are_long_and_url_safe() {
        let a = new_ticket_id();
        let b = new_ticket_id();
        assert_ne!(a, b);
        assert!(a.len() >= 3 + 22);
        assert!(
            a[3..]
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
        );
    }

    #[test]
    fn a_desk_printer_may_not_issue() {
        let kiosk = |services: &[&str]| Principal::Device {
            id: "k".into(),
            role: DeviceRole::Kiosk,
            services: services.iter().map(|s| s.to_string()).collect(),
        };
        assert!(kiosk(&["kham-noi"]).may_issue());
        assert!(
            !kiosk(&[]).may_issue(),
            "a kiosk with no services only prints"
        );
    }

    #[test]
    fn limiter_locks_after_ten_failures_and_unlocks_a_minute_later() {
        let mut l = LoginLimiter::default();
        let t0 = Instant::now();
        for i in 0..9 {
            l.record_failure("a", t0 + Duration::from_secs(i));
            assert!(!l.locked("a", t0 + Duration::from_secs(i)));
        }
        l.record_failure("a", t0 + Duration::from_secs(9));
        assert!(l.locked("a", t0 + Duration::from_secs(10)));
        assert!(!l.locked("b", t0 + Duration::from_secs(10)));
        assert!(l.locked("a", t0 + Duration::from_secs(68)));
        assert!(!l.locked("a", t0 + Duration::from_secs(69)));
    }
}
