//! luot-central as a library: many sites' event logs in one PostgreSQL
//! (contract §14), cross-site reports and each site's configuration versions.
//! The binary in `main.rs` is a thin command line around these modules.
//!
//! `config` reads `central.toml`; `ingest` decides about a Batch (pure);
//! `db` is the only module that speaks SQL; `siteconf` validates a
//! configuration version; `reports` rebuilds a site's days from its events
//! and hands them to the site's own report code; `http` is the API and its
//! rights; `server` binds, serves (TLS or loopback HTTP) and drains;
//! `metrics` owns the Prometheus registry.

pub mod config;
pub mod db;
pub mod http;
pub mod ingest;
pub mod metrics;
pub mod reports;
pub mod server;
pub mod siteconf;

/// The dashboard at `/` (Vietnamese first; plain HTML, JS and SVG).
pub const DASHBOARD_HTML: &str = include_str!("dashboard.html");
