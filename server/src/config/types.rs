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
}

#[derive(Clone, Debug)]
pub struct Site {
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
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Counter {
    pub id: String,
    pub name: String,
    pub services: Vec<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceRole {
    Kiosk,
    Display,
}

impl DeviceRole {
    pub fn as_str(self) -> &'static str {
        match self {
            DeviceRole::Kiosk => "kiosk",
            DeviceRole::Display => "display",
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
