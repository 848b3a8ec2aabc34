//! Site configuration: `site.toml` (contract §1) parsed into typed structs and
//! validated once at start-up.
//!
//! This module owns every rule about what a configuration may say, and the
//! demo site. Errors name the file, the line and the field. It never touches
//! the store or the network.
//!
//! Here: loading and environment overrides; the typed configuration is in
//! `types`. Each
//! section is checked in its own file (`site`, `priority`, `queue`,
//! `services` with its `sessions` and caps, `counters`, `devices`, `users`,
//! `reports`, `appointments` for `[appointments]` and `[identity]`, and
//! `webhooks` for `[[webhooks]]`, `notify` for `[notify]`, `store` for
//! `[store]` and `[ha]`) from
//! the spanned TOML of `raw`, with the
//! shared checks of `check`; `syntax` names the field of an error TOML
//! itself reports; `demo` builds the demo site.

mod appointments;
mod check;
mod counters;
mod demo;
mod devices;
pub mod notify;
mod priority;
mod queue;
mod raw;
mod reports;
mod services;
mod sessions;
mod site;
pub mod store;
mod syntax;
#[cfg(test)]
mod tests;
mod types;
mod users;
mod webhooks;

use std::path::{Path, PathBuf};

use check::Ctx;
pub use demo::{DemoSecrets, demo_site};
use raw::Raw;
pub use types::*;
pub use webhooks::{ALL_KINDS, Webhook, kind_name as webhooks_kind_name};

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
        let queue = queue::parse(&ctx, raw.queue.as_ref())?;
        let services = services::parse(&ctx, &raw.services, site.day_starts_at)?;
        let counters = counters::parse(&ctx, &raw.counters, &services)?;
        let devices = devices::parse(&ctx, &raw.devices, &services)?;
        let users = users::parse(&ctx, &raw.users, &counters)?;
        let reports = reports::parse(&ctx, raw.reports.as_ref(), &services)?;
        let appointments = appointments::appointments(&ctx, raw.appointments.as_ref())?;
        let identity = appointments::identity(&ctx, raw.identity.as_ref(), &priority)?;
        let webhooks = webhooks::parse(&ctx, &raw.webhooks)?;
        let notify = notify::parse(&ctx, raw.notify.as_ref(), &site)?;
        let (store, ha) = store::parse(&ctx, raw.store.as_ref(), raw.ha.as_ref())?;
        Ok(SiteConfig {
            site,
            server,
            services,
            counters,
            devices,
            users,
            priority,
            queue,
            reports,
            appointments,
            identity,
            webhooks,
            notify,
            store,
            ha,
        })
    }

    pub fn service(&self, id: &str) -> Option<&Service> {
        self.services.iter().find(|s| s.id == id)
    }

    pub fn counter(&self, id: &str) -> Option<&Counter> {
        self.counters.iter().find(|c| c.id == id)
    }
}
