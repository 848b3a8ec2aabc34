//! The configuration's types: what a validated `site.toml` says. Sections
//! are read into these by their own files; nothing here parses or checks.

use std::net::SocketAddr;
use std::path::PathBuf;

use chrono::NaiveTime;
use chrono_tz::Tz;

/// Priority classes of Vietnam's 2023 Law on Medical Examination and
/// Treatment, in its order: people with especially severe disabilities and
/// people with severe disabilities are two groups.
pub const DEFAULT_PRIORITY_CLASSES: [&str; 7] = [
    "emergency",
    "child_under_6",
    "pregnant",
    "especially_severe_disability",
    "severe_disability",
    "age_75_plus",
    "merited_person",
];

#[derive(Clone, Debug)]
pub struct SiteConfig {
    pub site: Site,
    pub server: Server,
    pub services: Vec<Service>,
    pub counters: Vec<Counter>,
    pub devices: Vec<Device>,
    pub users: Vec<User>,
    pub priority: Priority,
    /// `[queue]` (§9–10): calling policy, returning patients, no-shows.
    pub queue: Queue,
    /// `[reports]` (§9): what the visits report counts as a test stop.
    pub reports: Reports,
    /// `[appointments]` (§11): how far ahead bookings go, check-in windows.
    pub appointments: Appointments,
    /// `[identity]` (§11): the per-person cap and the age classes.
    pub identity: Identity,
    /// `[[webhooks]]` (§12, rules 89–90), in file order.
    pub webhooks: Vec<super::webhooks::Webhook>,
    /// `[notify]` (§12): phone alerts.
    pub notify: Notify,
    /// `[store]` (§13): sled (the default) or PostgreSQL.
    pub store: super::store::StoreKind,
    /// `[ha]` (§13): this server's name and addresses on a site with a standby.
    pub ha: Option<super::store::Ha>,
}

/// `[notify]` (rules 91–94).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Notify {
    /// `kind = "http"`: the SMS or Zalo gateway; `None` for `"none"`.
    pub gateway: Option<Gateway>,
    pub near_position: u32,
    pub near_text: String,
    pub called_text: String,
    pub web_push: bool,
    pub push_subject: Option<String>,
}

impl Default for Notify {
    fn default() -> Notify {
        Notify {
            gateway: None,
            near_position: 3,
            near_text:
                "Số {number} sắp đến lượt, còn {position} người. Mời về khu chờ {service_name}."
                    .into(),
            called_text: "Mời số {number} đến {counter_name}.".into(),
            web_push: false,
            push_subject: None,
        }
    }
}

impl Notify {
    /// Whether SMS alerts are on.
    pub fn sms(&self) -> bool {
        self.gateway.is_some()
    }
}

/// An HTTP SMS or Zalo ZNS gateway (rule 92).
#[derive(Clone, PartialEq, Eq)]
pub struct Gateway {
    pub url: String,
    /// Sent as `Authorization`; never printed.
    pub authorization: Option<String>,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway")
            .field("url", &self.url)
            .field("authorization", &self.authorization.as_ref().map(|_| ".."))
            .finish()
    }
}

/// `[appointments]` (rule 76).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Appointments {
    /// Bookable days: today … today + this.
    pub book_ahead_days: u32,
    /// Check-in opens this many minutes before the slot.
    pub checkin_early_min: u32,
    /// Check-in closes this many minutes after the slot; the booking expires.
    pub checkin_late_min: u32,
}

impl Default for Appointments {
    fn default() -> Appointments {
        Appointments {
            book_ahead_days: 14,
            checkin_early_min: 30,
            checkin_late_min: 15,
        }
    }
}

/// `[identity]` (rules 80–82).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    /// 0: no cap (rule 82).
    pub max_tickets_per_person_per_day: u32,
    /// Priority classes derived from age, in the site's `[priority]` order
    /// (rule 80).
    pub age_priority: Vec<AgeClass>,
}

impl Default for Identity {
    fn default() -> Identity {
        Identity {
            max_tickets_per_person_per_day: 0,
            // In the order of DEFAULT_PRIORITY_CLASSES.
            age_priority: vec![
                AgeClass {
                    class: "child_under_6".into(),
                    min: None,
                    max: Some(5),
                },
                AgeClass {
                    class: "age_75_plus".into(),
                    min: Some(75),
                    max: None,
                },
            ],
        }
    }
}

/// A priority class given by age: `min <= age <= max`, a missing bound holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AgeClass {
    pub class: String,
    pub min: Option<u32>,
    pub max: Option<u32>,
}

/// `walk_ins` of a service (rule 75).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum WalkIns {
    #[default]
    All,
    /// Only walk-ins with a priority class (sent or derived).
    Priority,
    None,
}

impl WalkIns {
    pub fn as_str(self) -> &'static str {
        match self {
            WalkIns::All => "all",
            WalkIns::Priority => "priority",
            WalkIns::None => "none",
        }
    }
}

/// `identity` of a service (rule 75).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum IdentityRule {
    #[default]
    Optional,
    /// Kiosk and integration walk-ins must carry `identity`.
    Required,
}

impl IdentityRule {
    pub fn as_str(self) -> &'static str {
        match self {
            IdentityRule::Optional => "optional",
            IdentityRule::Required => "required",
        }
    }
}

/// One session of a service's day (rule 73): wall-clock times within the
/// site's day.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Session {
    pub id: String,
    pub start: NaiveTime,
    pub end: NaiveTime,
    /// Tickets this session may count; None: no cap.
    pub cap: Option<u32>,
    /// Seats kept for bookings (0: no bookings).
    pub appointment_quota: u32,
    /// Length of a slot, 1–240 (default 30).
    pub slot_minutes: u32,
    /// Bookings per slot; None: ceil(quota ÷ slots).
    pub slot_capacity: Option<u32>,
}

/// How a counter picks among its services' normal tickets (rule 65).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Policy {
    /// The first service in the counter's order that has one (rule 18).
    #[default]
    Preference,
    /// The oldest across the counter's services.
    LongestWait,
}

impl Policy {
    pub fn as_str(self) -> &'static str {
        match self {
            Policy::Preference => "preference",
            Policy::LongestWait => "longest_wait",
        }
    }
}

/// `[queue]`; a counter's own `policy` and `returning_ratio` win over these.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Queue {
    pub policy: Policy,
    /// 0: returning patients first; N: up to N in a row, then one other (rule 53).
    pub returning_ratio: u32,
    /// How long after a no-show a requeue is allowed (0: never; rule 63).
    pub no_show_grace_min: u32,
    /// Calls (the call and recalls) a ticket needs before a no-show (rule 63).
    pub min_calls_before_no_show: u32,
}

impl Default for Queue {
    fn default() -> Queue {
        Queue {
            policy: Policy::Preference,
            returning_ratio: 0,
            no_show_grace_min: 15,
            min_calls_before_no_show: 1,
        }
    }
}

/// `[reports]` (rule 58).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reports {
    /// Services whose done steps count as tests of a visit.
    pub test_services: Vec<String>,
    /// Minutes a visit may take with 0, 1, 2, 3+ tests (the last entry
    /// counts for more tests too): Decision 1313/QĐ-BYT (2013).
    pub visit_limits_min: Vec<u32>,
}

impl Default for Reports {
    fn default() -> Reports {
        Reports {
            test_services: Vec::new(),
            visit_limits_min: vec![120, 180, 210, 240],
        }
    }
}

#[derive(Clone, Debug)]
pub struct Site {
    /// `[site] id` (§12): `[a-z0-9-]{1,32}`, default "luot".
    pub id: String,
    pub name: String,
    pub timezone: Tz,
    pub day_starts_at: NaiveTime,
    pub public_url: String,
}

#[derive(Clone, Debug)]
pub struct Server {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub public_board: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Service {
    pub id: String,
    pub name: String,
    pub prefix: String,
    pub digits: u8,
    /// Tickets a day, all sessions together (§11); None: no cap.
    pub daily_cap: Option<u32>,
    pub walk_ins: WalkIns,
    pub identity: IdentityRule,
    /// In time order, not overlapping; empty: one session all day.
    pub sessions: Vec<Session>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Counter {
    pub id: String,
    pub name: String,
    pub services: Vec<String>,
    /// This counter's own calling policy (else `[queue] policy`).
    pub policy: Option<Policy>,
    /// This counter's own returning ratio (else `[queue] returning_ratio`).
    pub returning_ratio: Option<u32>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceRole {
    Kiosk,
    Display,
    /// A portal or hospital app (§2, §11).
    Integration,
}

impl DeviceRole {
    pub fn as_str(self) -> &'static str {
        match self {
            DeviceRole::Kiosk => "kiosk",
            DeviceRole::Display => "display",
            DeviceRole::Integration => "integration",
        }
    }
}

#[derive(Clone, Debug)]
pub struct Device {
    pub id: String,
    pub role: DeviceRole,
    pub token_sha256: String,
    pub services: Vec<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UserRole {
    Staff,
    Admin,
}

impl UserRole {
    pub fn as_str(self) -> &'static str {
        match self {
            UserRole::Staff => "staff",
            UserRole::Admin => "admin",
        }
    }
}

#[derive(Clone, Debug)]
pub struct User {
    pub username: String,
    pub role: UserRole,
    pub password_hash: String,
    pub counters: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Priority {
    pub ratio: u32,
    pub classes: Vec<String>,
}

/// A configuration that cannot be used, with where and why.
#[derive(Debug, thiserror::Error)]
#[error("{file}:{line}: {field}: {message}")]
pub struct ConfigError {
    pub file: String,
    pub line: usize,
    pub field: String,
    pub message: String,
}
