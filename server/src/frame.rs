//! Frames: what the server sends on websockets, as typed values.
//!
//! The planner decides *what* goes out (`Outgoing`: a `ServerMessage` with
//! its `seq`, whether it is urgent for screens, and who may see it); the hub
//! encodes each one once into a `Frame` (its JSON text beside the same
//! facts), and everything downstream (resume ring, fan-out, each
//! connection) reads those facts from the frame, never from its text. The
//! websocket bytes of a frame are made by `wire::encode`.

use std::sync::Arc;

use axum::extract::ws::Utf8Bytes;
use luot_protocol::ServerMessage;

/// Who may receive a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Audience {
    /// Queue events and snapshots: every connection (rule 26).
    Everyone,
    /// Device status (`{"type":"device"}`): admins only (§5).
    Admins,
}

/// A frame decided by the planner, not yet encoded.
#[derive(Clone, Debug, PartialEq)]
pub struct Outgoing {
    pub message: ServerMessage,
    pub audience: Audience,
    /// A call, recall or counter/day change: screens show or announce it at
    /// once. Other events (list updates) may wait a moment to share a write
    /// with the next ones (rule 46, `fanout.rs`).
    pub urgent: bool,
}

/// An encoded frame with what its readers need to know about it.
#[derive(Clone, Debug)]
pub struct Frame {
    /// The event's or snapshot's seq; `None` for frames outside the stream.
    pub seq: Option<u64>,
    pub audience: Audience,
    pub urgent: bool,
    pub text: Utf8Bytes,
    /// The text display connections get when it differs (no `reason`, §10).
    pub public: Option<Utf8Bytes>,
}

/// What one group commit broadcasts: its frames, in order. One message per
/// commit wakes each client once, however many events the commit holds.
pub type Frames = Arc<[Frame]>;

/// The seq a message carries in the stream.
pub fn seq_of(m: &ServerMessage) -> Option<u64> {
    match m {
        ServerMessage::Event { seq, .. } | ServerMessage::Snapshot { seq, .. } => Some(*seq),
        _ => None,
    }
}

/// A message's JSON text.
pub fn text(m: &ServerMessage) -> Utf8Bytes {
    Utf8Bytes::from(serde_json::to_string(m).unwrap_or_default())
}

impl Frame {
    /// Encodes a planned frame.
    pub fn encode(o: &Outgoing) -> Frame {
        Frame {
            seq: seq_of(&o.message),
            audience: o.audience,
            urgent: o.urgent,
            text: text(&o.message),
            public: o.message.for_displays().map(|m| text(&m)),
        }
    }

    /// A frame for everyone that is not urgent (a snapshot, a reply).
    pub fn of(m: &ServerMessage) -> Frame {
        Frame {
            seq: seq_of(m),
            audience: Audience::Everyone,
            urgent: false,
            text: text(m),
            public: m.for_displays().map(|m| text(&m)),
        }
    }

    /// The text a connection gets: display connections (`public`) get
    /// tickets without reasons.
    pub fn text_for(&self, public: bool) -> &Utf8Bytes {
        match (&self.public, public) {
            (Some(p), true) => p,
            _ => &self.text,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use luot_protocol::{BoardState, ErrorDetail};

    #[test]
    fn a_frame_knows_its_seq_without_reading_its_text() {
        let snap = ServerMessage::Snapshot {
            seq: 41,
            state: BoardState {
                day: "2026-11-22".into(),
                services: vec![],
                counters: vec![],
                recent_calls: vec![],
            },
        };
        let f = Frame::of(&snap);
        assert_eq!(f.seq, Some(41));
        assert!(
            f.text
                .as_str()
                .starts_with(r#"{"type":"snapshot","seq":41"#)
        );
        let err = ServerMessage::Error {
            request_id: None,
            error: ErrorDetail {
                code: "bad_request".into(),
                message: "x".into(),
                extra: Default::default(),
            },
        };
        assert_eq!(Frame::of(&err).seq, None);
    }
}
