//! Site configuration: `site.toml` (contract §1) parsed into typed structs and
//! validated once at start-up.
//!
//! This module owns every rule about what a configuration may say, and the
//! demo site. Errors name the file, the line and the field. It never touches
//! the store or the network.
//!
//! Here: the typed configuration, loading and environment overrides. Each
//! section is checked in its own file (`site`, `priority`, `services`,
//! `counters`, `devices`, `users`) from the spanned TOML of `raw`, with the
//! shared checks of `check`; `syntax` names the field of an error TOML
//! itself reports; `demo` builds the demo site.

mod check;
mod counters;
mod demo;
mod devices;
mod priority;
mod raw;
mod services;
mod site;
mod syntax;
#[cfg(test)]
mod tests;
mod users;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use chrono::NaiveTime;
use chrono_tz::Tz;

use check::Ctx;
pub use demo::{DemoSecrets, demo_site};
use raw::Raw;

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

impl SiteConfig {
    /// Reads and validates a configuration file, then applies the
    /// `LUOT_LISTEN`, `LUOT_DATA_DIR` and `LUOT_PUBLIC_URL` overrides.
    pub fn load(path: &Path) -> Result<SiteConfig, ConfigError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: file.clone(),
            line: 0,
            field: "(file)".into(),
            message: format!("cannot read the configuration: {e}"),
        })?;
        let mut cfg = Self::parse(&file, &text)?;
        cfg.apply_env_overrides(&file)?;
        Ok(cfg)
    }

    /// Environment overrides, for tests and containers.
    pub fn apply_env_overrides(&mut self, file: &str) -> Result<(), ConfigError> {
        if let Ok(listen) = std::env::var("LUOT_LISTEN") {
            self.server.listen = listen.parse().map_err(|_| ConfigError {
                file: file.to_string(),
                line: 0,
                field: "LUOT_LISTEN".into(),
                message: format!("\"{listen}\" is not an address such as 127.0.0.1:8080"),
            })?;
        }
        if let Ok(dir) = std::env::var("LUOT_DATA_DIR") {
            self.server.data_dir = PathBuf::from(dir);
        }
        if let Ok(url) = std::env::var("LUOT_PUBLIC_URL") {
            self.site.public_url = url.trim_end_matches('/').to_string();
        }
        Ok(())
    }

    /// Parses and validates configuration text; `file` is only used in
    /// errors. Sections are checked in this order, so that a file with
    /// several mistakes always reports the same one first.
    pub fn parse(file: &str, text: &str) -> Result<SiteConfig, ConfigError> {
        let ctx = Ctx { file, text };
        let raw: Raw = toml::from_str(text).map_err(|e| syntax::error(&ctx, &e))?;
        let server = raw.server.as_ref().map(|s| s.get_ref());
        let (site, server) = site::parse(&ctx, raw.site.get_ref(), server)?;
        let priority = priority::parse(&ctx, raw.priority.as_ref())?;
        let services = services::parse(&ctx, &raw.services)?;
        let counters = counters::parse(&ctx, &raw.counters, &services)?;
        let devices = devices::parse(&ctx, &raw.devices, &services)?;
        let users = users::parse(&ctx, &raw.users, &counters)?;
        Ok(SiteConfig {
            site,
            server,
            services,
            counters,
            devices,
            users,
            priority,
        })
    }

    pub fn service(&self, id: &str) -> Option<&Service> {
        self.services.iter().find(|s| s.id == id)
    }

    pub fn counter(&self, id: &str) -> Option<&Counter> {
        self.counters.iter().find(|c| c.id == id)
    }
}
