//! Frames: what the server sends on websockets, as typed values.
//!
//! The planner decides *what* goes out (`Outgoing`: a `ServerMessage` with
//! its `seq`, whether it is urgent for screens, and who may see it); the hub
//! encodes each one once into a `Frame` (its JSON text beside the same
//! facts), and everything downstream (resume ring, fan-out, each
//! connection) reads those facts from the frame, never from its text. The
//! websocket bytes of a frame are made by `wire::encode`.
//!
//! Who sees what (rules 85, 87, §10): staff and admins get the frame whole;
//! kiosks get tickets without `external_ref` and bookings as their brief;
//! displays get that less `reason`s; an integration gets the frame whole
//! but another maker's booking as its brief. Each text is made once, and
//! only when it differs.

use std::sync::Arc;

use axum::extract::ws::Utf8Bytes;
use luot_protocol::{AppointmentView, ServerMessage, Ticket};

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
    /// For a booking's event: the `request_id` scope of who made it (an
    /// integration sees other makers' bookings only as their brief).
    pub maker: Option<String>,
}

/// Whose view of a frame a connection gets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum View {
    /// Staff and admins.
    Full,
    Kiosk,
    /// Display devices and public boards.
    Display,
    /// An integration, by its `request_id` scope.
    Integration(String),
}

/// An encoded frame with what its readers need to know about it.
#[derive(Clone, Debug)]
pub struct Frame {
    /// The event's or snapshot's seq; `None` for frames outside the stream.
    pub seq: Option<u64>,
    pub audience: Audience,
    pub urgent: bool,
    pub text: Utf8Bytes,
    /// The text kiosks get when it differs (no `external_ref`, bookings brief).
    pub kiosk: Option<Utf8Bytes>,
    /// The text display connections get when it differs from the kiosks'
    /// (no `reason`, §10).
    pub public: Option<Utf8Bytes>,
    /// For a booking's event, the scope of its maker.
    pub maker: Option<Arc<str>>,
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
        let mut f = Frame::of(&o.message);
        f.audience = o.audience;
        f.urgent = o.urgent;
        f.maker = o.maker.as_deref().map(Arc::from);
        f
    }

    /// A frame for everyone that is not urgent (a snapshot, a reply).
    pub fn of(m: &ServerMessage) -> Frame {
        let kiosk = for_kiosks(m);
        let base = kiosk.as_ref().unwrap_or(m);
        Frame {
            seq: seq_of(m),
            audience: Audience::Everyone,
            urgent: false,
            text: text(m),
            kiosk: kiosk.as_ref().map(text),
            public: base.for_displays().map(|m| text(&m)),
            maker: None,
        }
    }

    /// The text a connection with this view gets.
    pub fn text_for(&self, view: &View) -> &Utf8Bytes {
        let kiosk = self.kiosk.as_ref().unwrap_or(&self.text);
        match view {
            View::Full => &self.text,
            View::Kiosk => kiosk,
            View::Display => self.public.as_ref().unwrap_or(kiosk),
            View::Integration(me) => match &self.maker {
                Some(m) if **m != **me => kiosk,
                _ => &self.text,
            },
        }
    }
}

/// A ticket as kiosks, displays and public pages see it: no `external_ref`
/// (rule 87).
pub fn public_ticket(mut t: Ticket) -> Ticket {
    t.external_ref = None;
    t
}

/// The message as kiosks must see it, when that differs (rules 85, 87).
pub fn for_kiosks(m: &ServerMessage) -> Option<ServerMessage> {
    match m {
        ServerMessage::Event { seq, event } => {
            let has_ref = event
                .ticket
                .as_ref()
                .is_some_and(|t| t.external_ref.is_some());
            let full = matches!(event.appointment, Some(AppointmentView::Full(_)));
            if !has_ref && !full {
                return None;
            }
            let mut event = event.clone();
            event.ticket = event.ticket.map(public_ticket);
            if let Some(AppointmentView::Full(a)) = &event.appointment {
                event.appointment = Some(AppointmentView::Brief(a.brief()));
            }
            Some(ServerMessage::Event { seq: *seq, event })
        }
        ServerMessage::Snapshot { seq, state } => {
            let serving = || state.counters.iter().filter_map(|c| c.serving.as_ref());
            if !serving().any(|t| t.external_ref.is_some()) {
                return None;
            }
            let mut state = state.clone();
            for c in &mut state.counters {
                c.serving = c.serving.take().map(public_ticket);
            }
            Some(ServerMessage::Snapshot { seq: *seq, state })
        }
        _ => None,
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
