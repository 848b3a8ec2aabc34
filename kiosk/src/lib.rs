//! luot-kiosk: the Raspberry Pi daemon behind a kiosk's buttons and printer.
//! `daemon` holds the flow: press → issue over the websocket → print once;
//! `session` holds the link's rules without I/O, and `link` drives it.

pub mod buttons;
pub mod config;
pub mod daemon;
pub mod leds;
pub mod link;
pub mod printer;
pub mod printlog;
pub mod refusal;
pub mod render;
pub mod reqid;
pub mod scanner;
pub mod session;
pub mod touch;

/// The log filter: `RUST_LOG`'s (or `default`), with the websocket crates
/// held at `info` whatever it says, since their traces dump frames, and a
/// frame may carry a scanned CCCD's fields (rule 83: never logged).
pub fn log_filter(default: &str) -> tracing_subscriber::EnvFilter {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    ["tungstenite=info", "tokio_tungstenite=info"]
        .into_iter()
        .filter_map(|d| d.parse().ok())
        .fold(filter, |f, d| f.add_directive(d))
}
