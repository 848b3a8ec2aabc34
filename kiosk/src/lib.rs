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
pub mod render;
pub mod reqid;
pub mod session;
pub mod touch;
