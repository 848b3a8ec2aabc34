//! luot-server as a library: the binary in `main.rs` is a thin command line
//! around these modules.

pub mod auth;
pub mod config;
pub mod engine;
