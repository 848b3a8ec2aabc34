//! luot-kiosk: the Raspberry Pi daemon behind a kiosk's buttons and printer.
//! See `daemon` for the flow: press → issue over the websocket → print.

pub mod config;
pub mod printer;
pub mod render;
