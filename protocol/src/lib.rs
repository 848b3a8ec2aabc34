//! luot-protocol: the wire types of `shared/contract.md`, v1.
//!
//! This crate owns every JSON shape that crosses a process boundary: HTTP
//! request and answer bodies, websocket frames, the Ticket, the daily report.
//! It is serde only: no I/O, no clock, no policy. Field names here are binding
//! for outside integrators; add fields, never rename or drop one.

use serde::{Deserialize, Serialize};

/// Largest request body or websocket message the server accepts (16 KiB).
pub const MAX_BODY_BYTES: usize = 16 * 1024;
/// Longest `request_id`.
pub const MAX_REQUEST_ID: usize = 64;
/// Longest username accepted by login.
pub const MAX_USERNAME: usize = 64;
/// Longest password accepted by login.
pub const MAX_PASSWORD: usize = 256;
/// Longest feedback comment, in characters.
pub const MAX_COMMENT: usize = 500;
/// Longest `reason` of a hold or a cancel, in characters (rule 60).
pub const MAX_REASON: usize = 200;
/// Longest `number` naming a ticket in a counter action (rule 60).
pub const MAX_NUMBER: usize = 16;
/// Most stops one `send` may add (rule 49).
pub const MAX_STOPS: usize = 8;
/// Longest `kiosk` of `POST /tickets/{id}/print` (rule 88).
pub const MAX_KIOSK: usize = 64;

/// `true` when `s` is a valid `request_id`: 1–64 of `[A-Za-z0-9_-]`.
pub fn valid_request_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_REQUEST_ID
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Lifecycle of a ticket (and of a step of a visit, §9: `pending` is a
/// step's only). A client takes a status it does not know as not waiting.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum TicketStatus {
    Waiting,
    Called,
    Done,
    NoShow,
    /// Parked at a counter with a reason (rule 62).
    Held,
    /// Cancelled with a reason (rule 64).
    Cancelled,
    /// A step whose stage has not begun (rule 50).
    Pending,
}

impl TicketStatus {
    /// Pending, waiting, called or held (rule 47).
    pub fn is_open(self) -> bool {
        matches!(
            self,
            TicketStatus::Pending
                | TicketStatus::Waiting
                | TicketStatus::Called
                | TicketStatus::Held
        )
    }
}

/// Damm's 2004 quasigroup of order 10, whose check digit rule 77's booking
/// codes end with (it catches every single-digit error and every swap of
/// neighbours).
const DAMM: [[u8; 10]; 10] = [
    [0, 3, 1, 7, 5, 9, 8, 6, 4, 2],
    [7, 0, 9, 2, 1, 5, 4, 8, 6, 3],
    [4, 2, 0, 6, 8, 7, 1, 3, 5, 9],
    [1, 7, 5, 0, 9, 8, 3, 4, 2, 6],
    [6, 1, 2, 3, 0, 4, 5, 9, 7, 8],
    [3, 6, 7, 4, 2, 0, 9, 5, 8, 1],
    [5, 8, 6, 9, 7, 2, 0, 1, 3, 4],
    [8, 9, 4, 5, 3, 6, 2, 0, 1, 7],
    [9, 4, 3, 8, 6, 1, 7, 2, 0, 5],
    [2, 5, 8, 1, 4, 3, 6, 7, 9, 0],
];

/// The Damm check digit of a string of ASCII digits (0 when the string
/// already ends with its own); None if a character is not a digit.
pub fn damm_digit(digits: &str) -> Option<u8> {
    digits.bytes().try_fold(0u8, |i, b| {
        b.is_ascii_digit()
            .then(|| DAMM[usize::from(i)][usize::from(b - b'0')])
    })
}

/// Whether `code` is a booking code as rule 77 has it: 8 digits, the last
/// the Damm check digit of the first seven.
pub fn valid_booking_code(code: &str) -> bool {
    code.len() == 8 && damm_digit(code) == Some(0)
}

/// A queue ticket as every client sees it (contract §3).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Ticket {
    pub id: String,
    pub number: String,
    pub service: String,
    pub priority: Option<String>,
    pub status: TicketStatus,
    pub counter: Option<String>,
    pub issued_at: String,
    pub called_at: Option<String>,
    pub finished_at: Option<String>,
    pub day: String,
    pub position: Option<u32>,
    pub estimated_wait_s: Option<u64>,
    /// 1 at a call, +1 per recall, 0 while waiting (§10).
    #[serde(default)]
    pub calls: u32,
    /// Why it is held or cancelled, else null (§10).
    #[serde(default)]
    pub reason: Option<String>,
    /// The visit's steps once the ticket was first sent (§9), else null.
    #[serde(default)]
    pub visit: Option<Visit>,
    /// The booking's id for a check-in, else null (rule 78).
    #[serde(default)]
    pub appointment: Option<String>,
    /// The caller's reference (rule 87): null for kiosks, displays and
    /// public pages.
    #[serde(default)]
    pub external_ref: Option<String>,
}

/// A person as a CCCD scan gives it (rule 80): 12 digits and a date of
/// birth. Sent by kiosks and integrations, never stored or echoed.
#[derive(Serialize, Deserialize, Clone, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Identity {
    pub id_number: String,
    pub birth_date: String,
}

impl std::fmt::Debug for Identity {
    /// Never prints the person: logs and panics must not hold it (rule 81).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Identity(..)")
    }
}

/// A visit with several stops (§9).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Visit {
    pub steps: Vec<Step>,
}

/// One stop of a visit (§9, rules 47–52).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Step {
    pub stage: u32,
    pub service: String,
    pub counter: Option<String>,
    pub place: String,
    pub returning: bool,
    pub status: TicketStatus,
    pub busy: bool,
    pub waiting_since: Option<String>,
    pub first_joined_at: Option<String>,
    pub first_called_at: Option<String>,
    pub called_at: Option<String>,
    pub finished_at: Option<String>,
    pub calls: u32,
    pub reason: Option<String>,
    pub position: Option<u32>,
    pub estimated_wait_s: Option<u64>,
}

/// `{"error": {"code", "message"}}`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(as = Error))]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorDetail {
    pub code: String,
    pub message: String,
    /// What some errors add (§11): `next_open_at` of `service_full` and
    /// `service_closed`, `number` of `already_checked_in`,
    /// `checkin_opens_at` of `too_early`.
    #[serde(flatten, default)]
    #[cfg_attr(feature = "openapi", schema(ignore))]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

// ---------------------------------------------------------------- HTTP bodies

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LoginRequest {
    pub username: String,
    pub password: String,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LoginResponse {
    pub token: String,
    pub role: String,
    pub expires_at: String,
    /// Added field: the counters a staff member may act on (all for admin).
    #[serde(default)]
    pub counters: Vec<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct IssueRequest {
    pub service: String,
    #[serde(default)]
    pub priority: Option<String>,
    pub request_id: String,
    /// A scanned CCCD's fields (rule 80).
    #[serde(default)]
    pub identity: Option<Identity>,
    /// The caller's own reference (rule 87): 1–64 characters, no control
    /// character. Staff, admins and integrations only.
    #[serde(default)]
    pub external_ref: Option<String>,
    /// A kiosk (or desk printer) that prints the new ticket as §7's ticket
    /// (rule 88); the answer then carries `print_id`. Not from a kiosk.
    #[serde(default)]
    pub print_at: Option<String>,
    /// A `/notify` body (rule 94): alerts for the new ticket.
    #[serde(default)]
    pub notify: Option<NotifyRequest>,
}

// ---------------------------------------------------------------- appointments (§11)

/// `POST /appointments`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BookRequest {
    pub service: String,
    pub slot_at: String,
    pub request_id: String,
    #[serde(default)]
    pub priority: Option<String>,
    #[serde(default)]
    pub external_ref: Option<String>,
    #[serde(default)]
    pub identity: Option<Identity>,
}

/// `POST /appointments/check-in`: `code` (a JSON string of 8 digits; the
/// server refuses anything else with 400) or `appointment`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CheckInRequest {
    /// The booking's code, a JSON string of 8 digits (rule 77).
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub code: Option<serde_json::Value>,
    #[serde(default)]
    pub appointment: Option<String>,
    pub request_id: String,
    #[serde(default)]
    pub identity: Option<Identity>,
    #[serde(default)]
    pub print_at: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum AppointmentStatus {
    Booked,
    CheckedIn,
    Cancelled,
    Expired,
}

impl AppointmentStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            AppointmentStatus::Booked => "booked",
            AppointmentStatus::CheckedIn => "checked_in",
            AppointmentStatus::Cancelled => "cancelled",
            AppointmentStatus::Expired => "expired",
        }
    }
}

/// A booking (§11), as its maker, staff and admins see it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Appointment {
    pub id: String,
    /// Empty (and then absent) in events: rule 85 never sends it there.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub code: String,
    /// Empty (and then absent) in events, as `code`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub qr: String,
    pub service: String,
    pub session: String,
    pub day: String,
    pub slot_at: String,
    pub status: AppointmentStatus,
    pub priority: Option<String>,
    pub external_ref: Option<String>,
    /// True if booked with an identity (never the identity itself).
    pub identity: bool,
    pub ticket: Option<String>,
    pub checkin_opens_at: String,
    pub checkin_closes_at: String,
    pub booked_by: String,
    pub created_at: String,
}

/// A booking as kiosks, displays, an id's holder and integrations that did
/// not make it see it in events (rule 85): the other fields absent.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AppointmentBrief {
    pub id: String,
    pub service: String,
    pub session: String,
    pub day: String,
    pub slot_at: String,
    pub status: AppointmentStatus,
    pub ticket: Option<String>,
    pub checkin_opens_at: String,
    pub checkin_closes_at: String,
}

impl Appointment {
    pub fn brief(&self) -> AppointmentBrief {
        AppointmentBrief {
            id: self.id.clone(),
            service: self.service.clone(),
            session: self.session.clone(),
            day: self.day.clone(),
            slot_at: self.slot_at.clone(),
            status: self.status,
            ticket: self.ticket.clone(),
            checkin_opens_at: self.checkin_opens_at.clone(),
            checkin_closes_at: self.checkin_closes_at.clone(),
        }
    }
}

/// The `appointment` of an event: whole for its maker, staff and admins,
/// brief for everyone else (rule 85).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(untagged)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum AppointmentView {
    Full(Appointment),
    Brief(AppointmentBrief),
}

/// `GET /appointments`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AppointmentList {
    pub appointments: Vec<Appointment>,
}

/// `GET /appointments/slots`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SlotsResponse {
    pub service: String,
    pub day: String,
    pub sessions: Vec<SessionSlots>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SessionSlots {
    pub id: String,
    pub start: String,
    pub end: String,
    pub open: bool,
    pub booked: u32,
    pub slots: Vec<Slot>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Slot {
    pub at: String,
    pub capacity: u32,
    pub booked: u32,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FeedbackRequest {
    pub rating: u8,
    #[serde(default)]
    pub comment: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TransferRequest {
    pub service: String,
    pub front: bool,
}

/// One stop of `POST /counters/{id}/send` (rule 49).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Stop {
    pub service: String,
    #[serde(default)]
    pub counter: Option<String>,
    #[serde(default)]
    pub stage: Option<u32>,
}

/// `POST /counters/{id}/send` (rule 49).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SendRequest {
    pub stops: Vec<Stop>,
    #[serde(default, rename = "return")]
    pub return_here: Option<bool>,
    #[serde(default)]
    pub ticket: Option<String>,
}

/// `POST /counters/{id}/call` (rule 61).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CallRequest {
    #[serde(default)]
    pub ticket: Option<String>,
    #[serde(default)]
    pub number: Option<String>,
}

/// `POST /counters/{id}/hold` (rule 62).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HoldRequest {
    pub reason: String,
    #[serde(default)]
    pub ticket: Option<String>,
}

/// `POST /counters/{id}/requeue` (rule 63).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RequeueRequest {
    #[serde(default)]
    pub ticket: Option<String>,
    #[serde(default)]
    pub number: Option<String>,
    #[serde(default)]
    pub front: Option<bool>,
}

/// `POST /counters/{id}/cancel` (rule 64).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CancelRequest {
    pub reason: String,
    #[serde(default)]
    pub ticket: Option<String>,
    #[serde(default)]
    pub number: Option<String>,
}

/// `POST /tickets/{id}/print` (rule 88): print the ticket as it is now at
/// a kiosk or desk printer.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PrintRequest {
    /// The id of a kiosk device (a desk printer is a kiosk with no services).
    pub kiosk: String,
    pub request_id: String,
}

/// The 202 answer of `POST /tickets/{id}/print` (rule 88).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PrintAccepted {
    pub print_id: String,
}

/// `GET /api/v1/site`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SiteInfo {
    pub name: String,
    pub day: String,
    pub services: Vec<SiteService>,
    pub counters: Vec<SiteCounter>,
    /// Added field: where tickets' QR codes point.
    #[serde(default)]
    pub public_url: String,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SiteService {
    pub id: String,
    pub name: String,
    pub prefix: String,
    pub waiting: u32,
    #[serde(flatten)]
    pub capacity: Capacity,
}

/// What a walk-in can get now (rule 74), in `/site`, `welcome` and
/// snapshots: `remaining` null when uncapped, 0 once full or closed
/// ("hết số" on the board).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Capacity {
    #[serde(default)]
    pub remaining: Option<u32>,
    /// `all`, `priority` or `none`.
    #[serde(default = "default_walk_ins")]
    pub walk_ins: String,
    /// `optional` or `required`.
    #[serde(default = "default_identity")]
    pub identity: String,
}

fn default_walk_ins() -> String {
    "all".into()
}

fn default_identity() -> String {
    "optional".into()
}

impl Default for Capacity {
    fn default() -> Capacity {
        Capacity {
            remaining: None,
            walk_ins: default_walk_ins(),
            identity: default_identity(),
        }
    }
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SiteCounter {
    pub id: String,
    pub name: String,
    pub services: Vec<String>,
    pub open: bool,
    pub serving: Option<String>,
}

/// A counter as answered by open/close.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CounterInfo {
    pub id: String,
    pub name: String,
    pub services: Vec<String>,
    pub open: bool,
    pub serving: Option<Ticket>,
}

// ---------------------------------------------------------------- devices

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum PrinterStatus {
    Ok,
    PaperLow,
    PaperOut,
    CoverOpen,
    Offline,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DeviceInfo {
    pub id: String,
    pub role: String,
    pub connected: bool,
    pub printer: Option<PrinterStatus>,
    pub last_seen: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DevicesResponse {
    pub devices: Vec<DeviceInfo>,
}

// ---------------------------------------------------------------- websocket

/// Messages a client sends on `/api/v1/ws`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientMessage {
    Hello {
        #[serde(default)]
        token: Option<String>,
        #[serde(default)]
        since: Option<u64>,
    },
    Issue {
        request_id: String,
        service: String,
        #[serde(default)]
        priority: Option<String>,
        /// A scanned CCCD's fields (rule 80). Left out when none, so an
        /// issue without one is §5's frame exactly.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        identity: Option<Identity>,
    },
    /// A booking checked in at the kiosk (§11), answered as `issue` is.
    /// Fields not given are left out (`"code"` or `"appointment"`).
    CheckIn {
        request_id: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        code: Option<serde_json::Value>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        appointment: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        identity: Option<Identity>,
    },
    DeviceStatus {
        printer: PrinterStatus,
    },
    /// A kiosk's answer to a `print` job (rule 88): `ok` false when it
    /// could not print it. Either ends the server's resending.
    Printed {
        print_id: String,
        ok: bool,
    },
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct WelcomeSite {
    pub name: String,
    pub public_url: String,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct WelcomeService {
    pub id: String,
    pub name: String,
    pub prefix: String,
    #[serde(flatten)]
    pub capacity: Capacity,
}

/// The state a snapshot carries.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct BoardState {
    pub day: String,
    pub services: Vec<BoardService>,
    pub counters: Vec<BoardCounter>,
    pub recent_calls: Vec<RecentCall>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct BoardService {
    pub id: String,
    pub name: String,
    pub prefix: String,
    pub waiting: u32,
    pub next_numbers: Vec<String>,
    /// Up to 10 waiting returning steps that are not busy (rule 56).
    #[serde(default)]
    pub returning: Vec<Returning>,
    #[serde(flatten)]
    pub capacity: Capacity,
}

/// A patient coming back to a room (rule 56).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Returning {
    pub number: String,
    pub counter: String,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct BoardCounter {
    pub id: String,
    pub name: String,
    pub open: bool,
    pub serving: Option<Ticket>,
    /// Added field: the services this counter calls, in order.
    #[serde(default)]
    pub services: Vec<String>,
    /// The numbers held here, earliest hold first (rule 56).
    #[serde(default)]
    pub held: Vec<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct RecentCall {
    pub number: String,
    pub counter: String,
    pub counter_name: String,
    pub service_name: String,
    pub at: String,
    /// A patient coming back to this room (rule 56): "Quay lại".
    #[serde(default)]
    pub returning: bool,
}

/// The `event` object inside an `event` frame (contract §5, rule 29).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct WireEvent {
    pub kind: EventKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ticket: Option<Ticket>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub counter: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub counter_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub day: Option<String>,
    /// Added field for `ticket_transferred`: the service it left.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_service: Option<String>,
    /// Added field: when it happened.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<String>,
    /// The waiting count, next numbers and returning patients of exactly
    /// the services the event changed (rule 55).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub services: Option<Vec<BoardService>>,
    /// On a ticket with a visit: the index in `ticket.visit.steps` of the
    /// step the event is about (rule 55).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<usize>,
    /// The booking of an `appointment_*` event (rule 85).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub appointment: Option<AppointmentView>,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    TicketIssued,
    TicketCalled,
    TicketRecalled,
    TicketDone,
    TicketNoShow,
    TicketTransferred,
    CounterOpened,
    CounterClosed,
    DayStarted,
    TicketSent,
    StepFinished,
    TicketHeld,
    TicketRequeued,
    TicketCancelled,
    AppointmentBooked,
    AppointmentCancelled,
    AppointmentCheckedIn,
    AppointmentExpired,
}

/// Messages the server sends on `/api/v1/ws`.
// An event (with §11's `appointment`) is the largest frame by far; frames
// are built once and encoded at once, never kept in bulk as this type, so
// boxing it would only add an allocation per event.
#[allow(clippy::large_enum_variant)]
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMessage {
    Welcome {
        role: String,
        server_time: String,
        site: WelcomeSite,
        services: Vec<WelcomeService>,
        /// Added field: the device id or username this connection speaks for.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
    },
    Snapshot {
        seq: u64,
        state: BoardState,
    },
    Event {
        seq: u64,
        event: WireEvent,
    },
    Issued {
        request_id: String,
        ticket: Ticket,
        /// Added field: for a check-in, the booking's `slot_at`, which the
        /// printed ticket shows as `Hẹn 08:30` (rule 78).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        slot_at: Option<String>,
    },
    Error {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        request_id: Option<String>,
        error: ErrorDetail,
    },
    Device {
        device: DeviceInfo,
    },
    /// A print job for this kiosk (rule 88): print `ticket` once per
    /// `print_id`, then answer `printed`. Not a queue event: no `seq`.
    Print {
        print_id: String,
        ticket: Ticket,
        /// Added field: the name of the ticket's current service (a desk
        /// printer has no buttons to learn it from).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        service_name: Option<String>,
        /// Added field: the server's time when it sent this job, with the
        /// site's offset (the time a reprint shows).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        at: Option<String>,
        /// Added field: for a checked-in ticket, its booking's `slot_at`
        /// (rule 78's `Hẹn`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        slot_at: Option<String>,
        /// Added field (issue 16): `true` for a `POST /tickets/{id}/print`
        /// job, printed as rule 67's reprint ("In lại"); `false` for a new
        /// ticket's `print_at` job, printed as §7's ticket (with `Hẹn` for a
        /// check-in). Absent (an older server) reads as `true`.
        #[serde(default = "reprint_default")]
        reprint: bool,
    },
}

/// A `print` frame without `reprint` is a `/print` job (rule 67).
fn reprint_default() -> bool {
    true
}

impl Ticket {
    /// Whether the ticket or a step of its visit carries a `reason`.
    pub fn has_reason(&self) -> bool {
        self.reason.is_some()
            || self
                .visit
                .as_ref()
                .is_some_and(|v| v.steps.iter().any(|s| s.reason.is_some()))
    }

    /// The ticket as a display connection sees it: no `reason` (§10).
    pub fn without_reasons(&self) -> Ticket {
        let mut t = self.clone();
        t.reason = None;
        if let Some(v) = &mut t.visit {
            for s in &mut v.steps {
                s.reason = None;
            }
        }
        t
    }
}

impl ServerMessage {
    /// The message as a display connection must see it, when that differs:
    /// tickets without `reason` (§10).
    pub fn for_displays(&self) -> Option<ServerMessage> {
        match self {
            ServerMessage::Event { seq, event }
                if event.ticket.as_ref().is_some_and(Ticket::has_reason) =>
            {
                let mut event = event.clone();
                event.ticket = event.ticket.map(|t| t.without_reasons());
                Some(ServerMessage::Event { seq: *seq, event })
            }
            ServerMessage::Snapshot { seq, state }
                if state
                    .counters
                    .iter()
                    .any(|c| c.serving.as_ref().is_some_and(Ticket::has_reason)) =>
            {
                let mut state = state.clone();
                for c in &mut state.counters {
                    c.serving = c.serving.take().map(|t| t.without_reasons());
                }
                Some(ServerMessage::Snapshot { seq: *seq, state })
            }
            _ => None,
        }
    }
}

// ---------------------------------------------------------------- reports

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DailyReport {
    pub day: String,
    pub services: Vec<ReportRow>,
    pub counters: Vec<ReportRow>,
    pub staff: Vec<ReportRow>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReportRow {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issued: Option<u32>,
    pub served: u32,
    pub no_shows: u32,
    pub wait_s: Stats,
    pub service_s: Stats,
    pub ratings: Ratings,
    /// Added field: mean wait per local hour of issue (`"07": 540.0`), for charts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait_by_hour: Option<std::collections::BTreeMap<String, f64>>,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Stats {
    pub mean: Option<f64>,
    pub p50: Option<f64>,
    pub p90: Option<f64>,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Ratings {
    pub count: u32,
    pub mean: Option<f64>,
}

/// `GET /api/v1/reports/visits` (rule 58).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct VisitsReport {
    pub day: String,
    pub visits: Vec<VisitRow>,
    pub steps: Vec<StepRow>,
}

/// Visits that ended done with `tests` test stops (null: all of them).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct VisitRow {
    pub tests: Option<u32>,
    pub limit_min: Option<u32>,
    pub count: u32,
    pub within_limit: u32,
    pub share: Option<f64>,
    pub total_s: Stats,
}

/// The steps of one service (returning or not) called at least once.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StepRow {
    pub service: String,
    pub returning: bool,
    pub count: u32,
    pub wait_s: Stats,
    pub service_s: Stats,
}

pub const VISITS_CSV_HEADER: &str = "kind,tests,limit_min,service,returning,count,within_limit,share,total_mean_s,total_p50_s,total_p90_s,wait_mean_s,wait_p50_s,wait_p90_s,service_mean_s,service_p50_s,service_p90_s";

pub const REPORT_CSV_HEADER: &str = "kind,id,issued,served,no_shows,wait_mean_s,wait_p50_s,wait_p90_s,service_mean_s,service_p50_s,service_p90_s,ratings,rating_mean";

// ---------------------------------------------------------------- integration (§12)

/// `GET /api/v1/tickets?external_ref=R&day=D` (rule 87): the day's tickets
/// whose `external_ref` is exactly R, in order of issue.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TicketList {
    pub tickets: Vec<Ticket>,
}

/// The answer of `POST /tickets` and `POST /appointments/check-in`: the
/// Ticket, plus `print_id` when `print_at` named a kiosk (rule 88).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct IssuedTicket {
    #[serde(flatten)]
    pub ticket: Ticket,
    /// The print job of `print_at`; absent without it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub print_id: Option<String>,
}

/// `GET /healthz` (rules 33, 42): `ok`, or 503 `unavailable` with why.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Health {
    /// `ok` or `unavailable`.
    pub status: String,
    /// Why the store cannot be written; absent when `ok`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// §13, with PostgreSQL: `starting`, `standby` or `primary`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// §13, with PostgreSQL: the last event applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
}

/// `GET /api/v1/ha` (§13, rule 106).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HaStatus {
    /// `starting`, `standby` or `primary`.
    pub role: String,
    /// Null on a serving primary; else `loading`, `store_unreachable`,
    /// `store_in_recovery`, `patroni_not_primary`, `another_writer` or
    /// `store_stalled`.
    pub reason: Option<String>,
    /// `sled` or `postgres`.
    pub store: String,
    pub node: Option<String>,
    /// The last epoch of the lineage (rule 112).
    pub epoch: Option<String>,
    pub term: Option<u64>,
    /// The last event applied.
    pub seq: u64,
    /// The store's `luot_head.seq`.
    pub store_seq: Option<u64>,
    pub lag_events: Option<u64>,
    pub replica_lag_s: Option<f64>,
    pub sync_standby: Option<String>,
    pub config_sha256: Option<String>,
    pub primary: Option<HaPrimary>,
}

/// Who writes the store, from `luot_head`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HaPrimary {
    pub node: Option<String>,
    pub url: Option<String>,
    pub beat_at: Option<String>,
}

// ---------------------------------------------------------------- phone alerts (§12, rules 91–94)

/// The body of `POST /tickets/{id}/notify`, and `notify` on `POST /tickets`.
#[derive(Serialize, Deserialize, Clone, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NotifyRequest {
    /// `0…` or `+84…` (rule 94).
    #[serde(default)]
    pub phone: Option<String>,
    #[serde(default)]
    pub push: Option<PushSubscription>,
    /// Must be `true`.
    #[serde(default)]
    pub consent: Option<bool>,
}

impl std::fmt::Debug for NotifyRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "NotifyRequest(phone: {}, push: {}, consent: {:?})",
            self.phone.is_some(),
            self.push.is_some(),
            self.consent
        )
    }
}

/// A browser's `PushSubscription` as `toJSON()` gives it (other fields,
/// such as `expirationTime`, are ignored).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PushSubscription {
    pub endpoint: String,
    pub keys: PushKeys,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PushKeys {
    pub p256dh: String,
    pub auth: String,
}

/// A ticket's alert channels as its holder sees them in `GET /tickets/{id}`.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NotifyStatus {
    pub sms: bool,
    pub push: u32,
}

/// `GET /tickets/{id}` for the ticket's holder: the Ticket and `notify`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HolderTicket {
    #[serde(flatten)]
    pub ticket: Ticket,
    pub notify: NotifyStatus,
}

/// The alert channels a site offers (`/site`'s `notify`).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NotifyChannels {
    pub sms: bool,
    pub push: bool,
}

/// `GET /site` with rule 93's fields.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SiteView {
    #[serde(flatten)]
    pub site: SiteInfo,
    /// The VAPID public key, base64url of the uncompressed point; null
    /// while Web Push is off.
    pub push_key: Option<String>,
    pub notify: NotifyChannels,
}

/// What a Web Push message carries (rule 93), before encryption.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct PushMessage {
    /// `near` or `called`.
    pub kind: String,
    pub number: String,
    pub position: Option<u32>,
    pub counter_name: String,
    pub text: String,
    /// The ticket page.
    pub url: String,
}

/// What the HTTP gateway is sent (rule 92).
#[derive(Serialize, Deserialize, Clone, PartialEq, Eq)]
pub struct GatewayMessage {
    pub site: String,
    /// `+84…`.
    pub to: String,
    pub text: String,
    /// `near` or `called`.
    pub kind: String,
    /// The ticket's id.
    pub ticket: String,
    pub number: String,
    /// `{ticket id}:{kind}:{n}`.
    pub idempotency_key: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_id_rules() {
        assert!(valid_request_id("kiosk-sanh-a-000173"));
        assert!(valid_request_id(&"a".repeat(64)));
        assert!(!valid_request_id(&"a".repeat(65)));
        assert!(!valid_request_id(""));
        assert!(!valid_request_id("có dấu"));
        assert!(!valid_request_id("a b"));
    }

    #[test]
    fn hello_with_null_token_parses() {
        let m: ClientMessage =
            serde_json::from_str(r#"{"type":"hello","token":null,"since":null}"#).unwrap();
        assert_eq!(
            m,
            ClientMessage::Hello {
                token: None,
                since: None
            }
        );
    }

    #[test]
    fn issue_request_rejects_unknown_fields() {
        let r: Result<IssueRequest, _> =
            serde_json::from_str(r#"{"service":"a","request_id":"x","extra":1}"#);
        assert!(r.is_err());
    }

    #[test]
    fn client_messages_reject_unknown_fields() {
        let r: Result<ClientMessage, _> =
            serde_json::from_str(r#"{"type":"issue","request_id":"a","service":"b","extra":1}"#);
        assert!(r.is_err());
        let r: Result<ClientMessage, _> =
            serde_json::from_str(r#"{"type":"device_status","printer":"ok"}"#);
        assert!(r.is_ok());
    }

    #[test]
    fn print_frames_round_trip() {
        let m: ClientMessage =
            serde_json::from_str(r#"{"type":"printed","print_id":"pr_1","ok":true}"#).unwrap();
        assert_eq!(
            m,
            ClientMessage::Printed {
                print_id: "pr_1".into(),
                ok: true
            }
        );
        let r: Result<PrintRequest, _> =
            serde_json::from_str(r#"{"kiosk":"k","request_id":"r","x":1}"#);
        assert!(r.is_err(), "unknown fields are refused");
    }

    #[test]
    fn issue_and_check_in_frames_leave_out_what_they_lack() {
        let issue = ClientMessage::Issue {
            request_id: "k-1".into(),
            service: "kham-noi".into(),
            priority: None,
            identity: None,
        };
        assert_eq!(
            serde_json::to_string(&issue).unwrap(),
            r#"{"type":"issue","request_id":"k-1","service":"kham-noi","priority":null}"#,
            "§5's issue frame, as before §11"
        );
        let check_in = ClientMessage::CheckIn {
            request_id: "k-2".into(),
            code: None,
            appointment: Some("ap_1".into()),
            identity: None,
        };
        let text = serde_json::to_string(&check_in).unwrap();
        assert_eq!(
            text,
            r#"{"type":"check_in","request_id":"k-2","appointment":"ap_1"}"#
        );
        let back: ClientMessage = serde_json::from_str(&text).unwrap();
        assert_eq!(back, check_in);
        let with_nulls: ClientMessage = serde_json::from_str(
            r#"{"type":"check_in","request_id":"k-2","code":null,"appointment":"ap_1","identity":null}"#,
        )
        .unwrap();
        assert_eq!(with_nulls, check_in, "nulls read as absent");
    }

    #[test]
    fn error_frame_omits_request_id_when_absent() {
        let m = ServerMessage::Error {
            request_id: None,
            error: ErrorDetail {
                code: "bad_request".into(),
                message: "x".into(),
                extra: Default::default(),
            },
        };
        let s = serde_json::to_string(&m).unwrap();
        assert_eq!(
            s,
            r#"{"type":"error","error":{"code":"bad_request","message":"x"}}"#
        );
    }
}

// ---------------------------------------------------------------- webhooks (§12)

/// `GET /api/v1/webhooks` (admin): every configured webhook's delivery
/// state, never its secret.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WebhooksResponse {
    pub webhooks: Vec<WebhookStatus>,
}

/// One webhook's delivery state (§12, rule 90).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WebhookStatus {
    pub id: String,
    pub url: String,
    /// The kinds it takes (every kind when the configuration lists none).
    pub events: Vec<String>,
    /// `null` before the first acknowledged delivery.
    pub last_delivered_seq: Option<u64>,
    /// Events it takes after its start point not yet acknowledged.
    pub pending: u64,
    pub last_success_at: Option<String>,
    /// When the next attempt of a failing delivery is due; `null` otherwise.
    pub next_attempt_at: Option<String>,
    /// The last failure; stays until the next one.
    pub last_error: Option<WebhookError>,
}

/// A failed delivery attempt: when, the HTTP status (`null` when none came:
/// no connection, no answer within 15 s) and what happened.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WebhookError {
    pub at: String,
    pub status: Option<u16>,
    pub message: String,
}
