//! `site.toml` as TOML gives it: every value with its span, so that an error
//! can name its line. Unknown fields are refused here (serde); every other
//! rule is checked by the section modules.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

/// A list of ids (`services`, `counters`) with the span of each.
pub(super) type RawIds = Spanned<Vec<Spanned<String>>>;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Raw {
    pub site: Spanned<RawSite>,
    #[serde(default)]
    pub server: Option<Spanned<RawServer>>,
    #[serde(default)]
    pub services: Vec<RawService>,
    #[serde(default)]
    pub counters: Vec<RawCounter>,
    #[serde(default)]
    pub devices: Vec<RawDevice>,
    #[serde(default)]
    pub users: Vec<RawUser>,
    #[serde(default)]
    pub priority: Option<RawPriority>,
    #[serde(default)]
    pub queue: Option<RawQueue>,
    #[serde(default)]
    pub reports: Option<RawReports>,
    #[serde(default)]
    pub appointments: Option<RawAppointments>,
    #[serde(default)]
    pub identity: Option<RawIdentity>,
    #[serde(default)]
    pub webhooks: Vec<RawWebhook>,
    pub notify: Option<Spanned<RawNotify>>,
    #[serde(default)]
    pub store: Option<Spanned<RawStore>>,
    #[serde(default)]
    pub ha: Option<Spanned<RawHa>>,
}

/// `[store]` (§13).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawStore {
    #[serde(default)]
    pub kind: Option<Spanned<String>>,
    #[serde(default)]
    pub url: Option<Spanned<String>>,
    #[serde(default)]
    pub password_file: Option<Spanned<String>>,
}

/// `[ha]` (§13).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawHa {
    #[serde(default)]
    pub node: Option<Spanned<String>>,
    #[serde(default)]
    pub url: Option<Spanned<String>>,
    #[serde(default)]
    pub patroni_url: Option<Spanned<String>>,
}

/// `[notify]` (§12).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawNotify {
    #[serde(default)]
    pub kind: Option<Spanned<String>>,
    #[serde(default)]
    pub url: Option<Spanned<String>>,
    #[serde(default)]
    pub authorization: Option<Spanned<String>>,
    #[serde(default)]
    pub near_position: Option<Spanned<i64>>,
    #[serde(default)]
    pub near_text: Option<Spanned<String>>,
    #[serde(default)]
    pub called_text: Option<Spanned<String>>,
    #[serde(default)]
    pub web_push: Option<Spanned<bool>>,
    #[serde(default)]
    pub push_subject: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSite {
    pub name: Spanned<String>,
    /// The site's id (§12, §13): names it to webhook receivers.
    #[serde(default)]
    pub id: Option<Spanned<String>>,
    #[serde(default)]
    pub timezone: Option<Spanned<String>>,
    #[serde(default)]
    pub day_starts_at: Option<Spanned<String>>,
    #[serde(default)]
    pub public_url: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawServer {
    #[serde(default)]
    pub listen: Option<Spanned<String>>,
    #[serde(default)]
    pub data_dir: Option<Spanned<String>>,
    #[serde(default)]
    pub public_board: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawService {
    pub id: Spanned<String>,
    pub name: Spanned<String>,
    pub prefix: Spanned<String>,
    #[serde(default)]
    pub digits: Option<Spanned<i64>>,
    #[serde(default)]
    pub daily_cap: Option<Spanned<i64>>,
    #[serde(default)]
    pub walk_ins: Option<Spanned<String>>,
    #[serde(default)]
    pub identity: Option<Spanned<String>>,
    #[serde(default)]
    pub sessions: Option<Spanned<Vec<Spanned<RawSession>>>>,
}

/// One entry of a service's `sessions` (an inline table).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSession {
    pub id: Spanned<String>,
    pub start: Spanned<String>,
    pub end: Spanned<String>,
    #[serde(default)]
    pub cap: Option<Spanned<i64>>,
    #[serde(default)]
    pub appointment_quota: Option<Spanned<i64>>,
    #[serde(default)]
    pub slot_minutes: Option<Spanned<i64>>,
    #[serde(default)]
    pub slot_capacity: Option<Spanned<i64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCounter {
    pub id: Spanned<String>,
    pub name: Spanned<String>,
    pub services: RawIds,
    #[serde(default)]
    pub policy: Option<Spanned<String>>,
    #[serde(default)]
    pub returning_ratio: Option<Spanned<i64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDevice {
    pub id: Spanned<String>,
    pub role: Spanned<String>,
    pub token_sha256: Spanned<String>,
    #[serde(default)]
    pub services: Option<RawIds>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawUser {
    pub username: Spanned<String>,
    pub role: Spanned<String>,
    pub password_hash: Spanned<String>,
    #[serde(default)]
    pub counters: Option<RawIds>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPriority {
    #[serde(default)]
    pub ratio: Option<Spanned<i64>>,
    #[serde(default)]
    pub classes: Option<RawIds>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawQueue {
    #[serde(default)]
    pub policy: Option<Spanned<String>>,
    #[serde(default)]
    pub returning_ratio: Option<Spanned<i64>>,
    #[serde(default)]
    pub no_show_grace_min: Option<Spanned<i64>>,
    #[serde(default)]
    pub min_calls_before_no_show: Option<Spanned<i64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawReports {
    #[serde(default)]
    pub test_services: Option<RawIds>,
    #[serde(default)]
    pub visit_limits_min: Option<Spanned<Vec<Spanned<i64>>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAppointments {
    #[serde(default)]
    pub book_ahead_days: Option<Spanned<i64>>,
    #[serde(default)]
    pub checkin_early_min: Option<Spanned<i64>>,
    #[serde(default)]
    pub checkin_late_min: Option<Spanned<i64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawIdentity {
    #[serde(default)]
    pub max_tickets_per_person_per_day: Option<Spanned<i64>>,
    /// class → bounds; TOML refuses a class given twice.
    #[serde(default)]
    pub age_priority: Option<Spanned<BTreeMap<Spanned<String>, Spanned<RawAge>>>>,
}

/// The ages of one class in `age_priority`: `min <= age <= max`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAge {
    #[serde(default)]
    pub min: Option<Spanned<i64>>,
    #[serde(default)]
    pub max: Option<Spanned<i64>>,
}

/// One `[[webhooks]]` entry (§12).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawWebhook {
    pub id: Spanned<String>,
    pub url: Spanned<String>,
    pub secret: Spanned<String>,
    #[serde(default)]
    pub events: Option<RawIds>,
}
