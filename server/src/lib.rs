//! luot-server as a library: the binary in `main.rs` is a thin command line
//! around these modules. See ARCHITECTURE.md for the map and the invariants.

pub mod app;
pub mod auth;
pub mod clock;
pub mod config;
pub mod engine;
pub mod error;
pub mod fanout;
pub mod frame;
pub mod ha;
pub mod hooks;
pub mod http;
pub mod hub;
pub mod metrics;
pub mod notify;
pub mod plan;
pub mod print;
pub mod report;
pub mod secret;
pub mod server;
pub mod store;
pub mod wire;
pub mod ws;
