//! Appointments in the application layer (§11): who may book, list, read,
//! cancel and check in (rule 76's roles, an integration only its own
//! bookings and services), the 400s of each body in rule 12's order
//! (`request_id`, priority, `external_ref` of rule 87, identity of rule 80,
//! `slot_at`, a check-in's code of rule 77), then the hub's 404s and 409s.
//! Which view of a booking or ticket a caller gets (rules 85, 87) is decided
//! here too.

use luot_protocol::{
    Appointment, AppointmentList, AppointmentStatus, AppointmentView, BookRequest, CheckInRequest,
    Identity, SlotsResponse, Ticket, valid_request_id,
};

use super::{App, Issued, bad_request_id};
use crate::auth::{self, Principal};
use crate::config::DeviceRole;
use crate::engine::identity::{self, Fresh};
use crate::engine::{BookCmd, Booking, CheckInCmd, Command, ListFilter, Rejection};
use crate::error::ApiError;
use crate::frame::public_ticket;
use crate::hub::Outcome;

/// Longest `external_ref` (rule 87) and appointment id accepted.
const MAX_REF: usize = 64;

/// The query of `GET /appointments`.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    pub day: Option<String>,
    pub service: Option<String>,
    pub status: Option<String>,
    pub external_ref: Option<String>,
}

/// The query of `GET /appointments/slots`.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlotsQuery {
    pub service: Option<String>,
    pub day: Option<String>,
}

/// A checked-in ticket and its booking's slot (rule 78's `Hẹn`).
pub struct CheckedIn {
    pub issued: Issued,
    pub slot_at: Option<String>,
}

/// Random bytes for the engine, which never draws any.
fn fresh() -> Fresh {
    Fresh(auth::random_bytes())
}

fn day_param(day: Option<&str>) -> Result<Option<chrono::NaiveDate>, ApiError> {
    day.map(|d| chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d"))
        .transpose()
        .map_err(|_| ApiError::bad_request("day phải có dạng YYYY-MM-DD (day must be YYYY-MM-DD)"))
}

/// Rule 87: null or 1–64 characters, none a control character.
pub(crate) fn check_external_ref(r: Option<&str>) -> Result<(), ApiError> {
    match r {
        Some(r)
            if r.is_empty() || r.chars().count() > MAX_REF || r.chars().any(char::is_control) =>
        {
            Err(ApiError::bad_request(
                "external_ref phải từ 1 đến 64 ký tự, không có ký tự điều khiển (external_ref must be 1 to 64 characters, no control characters)",
            ))
        }
        _ => Ok(()),
    }
}

fn unknown_service() -> ApiError {
    Rejection::UnknownService.into()
}

fn not_its_service() -> ApiError {
    ApiError::forbidden(
        "Thiết bị này không được phục vụ dịch vụ đó (this device may not book or issue for that service)",
    )
}

impl App {
    /// 403 unless an integration, staff or an admin (slots and lists).
    pub fn may_read_bookings(who: &Principal) -> Result<(), ApiError> {
        if who.is_integration() || matches!(who, Principal::User { .. }) {
            return Ok(());
        }
        Err(ApiError::forbidden(
            "Chỉ hệ thống tích hợp, nhân viên và quản trị viên (integrations, staff and admins only)",
        ))
    }

    /// 403 unless an integration or an admin (book, cancel).
    pub fn may_book(who: &Principal) -> Result<(), ApiError> {
        if who.is_integration() || who.is_admin() {
            return Ok(());
        }
        Err(ApiError::forbidden(
            "Chỉ hệ thống tích hợp và quản trị viên được đặt hoặc huỷ lịch (only integrations and admins book and cancel)",
        ))
    }

    /// 403 unless a kiosk, an integration, staff or an admin.
    pub fn may_check_in(who: &Principal) -> Result<(), ApiError> {
        let kiosk = matches!(
            who,
            Principal::Device {
                role: DeviceRole::Kiosk,
                ..
            }
        );
        if kiosk || Self::may_read_bookings(who).is_ok() {
            return Ok(());
        }
        Err(ApiError::forbidden(
            "Thiết bị này không nhận lịch hẹn (this device does not check bookings in)",
        ))
    }

    /// A scanned identity: 12 digits, a real date not after today (400).
    pub(super) async fn check_person(&self, identity: Option<&Identity>) -> Result<(), ApiError> {
        if let Some(i) = identity {
            let today = self.hub.today().await;
            identity::birth_date(i, today).map_err(ApiError::bad_request)?;
        }
        Ok(())
    }

    /// A ticket as `who` may see it: kiosks, displays and the public get no
    /// `external_ref` (rule 87).
    pub fn ticket_view(who: Option<&Principal>, t: Ticket) -> Ticket {
        let full = who.is_some_and(|w| w.is_integration() || matches!(w, Principal::User { .. }));
        if full { t } else { public_ticket(t) }
    }

    /// `GET /appointments/slots?service=S&day=D` (default today).
    pub async fn slots(&self, who: &Principal, q: SlotsQuery) -> Result<SlotsResponse, ApiError> {
        Self::may_read_bookings(who)?;
        let day = day_param(q.day.as_deref())?;
        let Some(service) = q.service else {
            return Err(ApiError::bad_request("Thiếu service (service is required)"));
        };
        let day = match day {
            Some(d) => d,
            None => self.hub.today().await,
        };
        self.hub
            .slots(&service, day)
            .await
            .ok_or_else(unknown_service)
    }

    /// `POST /appointments`: 400s, 404 `unknown_service`, 403 for an
    /// integration's other services, then the hub (replay, 404
    /// `unknown_slot`, 409s). `created` false for a replay.
    pub async fn book(
        &self,
        who: &Principal,
        req: BookRequest,
    ) -> Result<(Appointment, bool), ApiError> {
        Self::may_book(who)?;
        if !valid_request_id(&req.request_id) {
            return Err(bad_request_id());
        }
        self.check_class(req.priority.as_deref())?;
        check_external_ref(req.external_ref.as_deref())?;
        self.check_person(req.identity.as_ref()).await?;
        let slot_at = chrono::DateTime::parse_from_rfc3339(&req.slot_at)
            .map_err(|_| {
                ApiError::bad_request(
                    "slot_at phải là thời điểm RFC 3339 (slot_at must be an RFC 3339 time)",
                )
            })?
            .timestamp_millis();
        if self.config.service(&req.service).is_none() {
            return Err(unknown_service());
        }
        if !who.may_issue_for(&req.service) {
            return Err(not_its_service());
        }
        let cmd = BookCmd {
            scope: who.scope(),
            request_id: req.request_id,
            by: who.name().unwrap_or_default(),
            service: req.service,
            slot_at,
            priority: req.priority,
            external_ref: req.external_ref,
            identity: req.identity,
            appointment_id: format!("ap_{}", auth::random_b64(16)),
            fresh: fresh(),
            code_seed: fresh(),
        };
        match self.hub.command(Command::Book(Box::new(cmd))).await? {
            Outcome::Booking {
                appointment,
                created,
            } => Ok((*appointment, created)),
            _ => Err(ApiError::unavailable("no booking was made")),
        }
    }

    /// `GET /appointments?day&service&status&external_ref`.
    pub async fn appointments(
        &self,
        who: &Principal,
        q: ListQuery,
    ) -> Result<AppointmentList, ApiError> {
        Self::may_read_bookings(who)?;
        let day = day_param(q.day.as_deref())?;
        let status = match q.status.as_deref() {
            None => None,
            Some(s) => Some(parse_status(s)?),
        };
        if let Some(s) = &q.service
            && self.config.service(s).is_none()
        {
            return Err(unknown_service());
        }
        let day = match day {
            Some(d) => d,
            None => self.hub.today().await,
        };
        let only = who.only_own();
        let filter = ListFilter {
            day,
            service: q.service.as_deref(),
            status,
            external_ref: q.external_ref.as_deref(),
            only: only.as_deref(),
        };
        let appointments = self.hub.appointments(filter).await;
        Ok(AppointmentList { appointments })
    }

    /// `GET /appointments/{id}`: staff and admins see it whole, its maker
    /// too; another integration gets 404; anyone else holding the id its
    /// brief (rules 76, 85).
    pub async fn appointment(
        &self,
        who: Option<&Principal>,
        id: &str,
    ) -> Result<AppointmentView, ApiError> {
        let (a, maker) = self
            .hub
            .appointment(id)
            .await
            .ok_or_else(|| ApiError::from(Rejection::UnknownAppointment))?;
        match who {
            Some(Principal::User { .. }) => Ok(AppointmentView::Full(a)),
            Some(w) if w.is_integration() && w.scope() == maker => Ok(AppointmentView::Full(a)),
            Some(w) if w.is_integration() => Err(Rejection::UnknownAppointment.into()),
            _ => Ok(AppointmentView::Brief(a.brief())),
        }
    }

    /// `POST /appointments/{id}/cancel`.
    pub async fn cancel_booking(
        &self,
        who: &Principal,
        id: String,
    ) -> Result<Appointment, ApiError> {
        Self::may_book(who)?;
        let cmd = Command::CancelBooking {
            id,
            only: who.only_own(),
            by: who.name(),
        };
        match self.hub.command(cmd).await? {
            Outcome::Booking { appointment, .. } => Ok(*appointment),
            _ => Err(ApiError::unavailable("no booking was changed")),
        }
    }

    /// `POST /appointments/check-in` and the kiosk's `check_in`: 400s (one
    /// of `code` and `appointment`, the code's shape and check digit,
    /// `request_id`, identity, `print_at`), 403 for `print_at` from a kiosk,
    /// `print_at`'s 404 `unknown_device` and 409 `kiosk_unavailable` (rule
    /// 88: nothing is checked in), then the hub (replay, 404, rule 78's
    /// 409s); with `print_at` the kiosk prints the ticket with `Hẹn`.
    pub async fn check_in(
        &self,
        who: &Principal,
        req: CheckInRequest,
    ) -> Result<CheckedIn, ApiError> {
        Self::may_check_in(who)?;
        let booking = match (&req.code, &req.appointment) {
            (Some(c), None) => Booking::Code(identity::parse_code(c).ok_or_else(|| {
                ApiError::bad_request(
                    "code phải là chuỗi 8 chữ số hợp lệ (code must be a string of 8 digits with a valid check digit)",
                )
            })?),
            (None, Some(a)) if !a.is_empty() && a.len() <= MAX_REF => Booking::Id(a.clone()),
            _ => {
                return Err(ApiError::bad_request(
                    "Cần đúng một trong code hoặc appointment (give exactly one of code and appointment)",
                ));
            }
        };
        if !valid_request_id(&req.request_id) {
            return Err(bad_request_id());
        }
        self.check_person(req.identity.as_ref()).await?;
        super::check_print_at(req.print_at.as_deref())?;
        let kiosk = matches!(
            who,
            Principal::Device {
                role: DeviceRole::Kiosk,
                ..
            }
        );
        if kiosk && req.print_at.is_some() {
            return Err(ApiError::forbidden(
                "Ki-ốt không gửi print_at (a kiosk may not send print_at)",
            ));
        }
        let print_at = match &req.print_at {
            Some(at) => Some(self.print_at(who, at, &req.request_id).await?),
            None => None,
        };
        let request_id = req.request_id.clone();
        let cmd = CheckInCmd {
            scope: who.scope(),
            request_id: req.request_id,
            booking,
            identity: req.identity,
            only: who.only_own(),
            kiosk,
            ticket_id: auth::new_ticket_id(),
            fresh: fresh(),
        };
        let issued = match self.hub.command(Command::CheckIn(Box::new(cmd))).await? {
            Outcome::Ticket(t) => Issued {
                ticket: *t,
                created: true,
                print_id: None,
            },
            Outcome::Replayed(t) => Issued {
                ticket: *t,
                created: false,
                print_id: None,
            },
            _ => return Err(ApiError::unavailable("no ticket was made")),
        };
        let slot_at = match &issued.ticket.appointment {
            Some(a) => self.hub.appointment(a).await.map(|(a, _)| a.slot_at),
            None => None,
        };
        let print_id = match print_at {
            Some(at) => Some(self.print_new(who, at, &request_id, &issued.ticket).await),
            None => None,
        };
        let issued = Issued {
            ticket: Self::ticket_view(Some(who), issued.ticket),
            created: issued.created,
            print_id,
        };
        Ok(CheckedIn { issued, slot_at })
    }
}

fn parse_status(s: &str) -> Result<AppointmentStatus, ApiError> {
    serde_json::from_value(serde_json::Value::String(s.to_string())).map_err(|_| {
        ApiError::bad_request(
            "status phải là booked, checked_in, cancelled hoặc expired (status must be booked, checked_in, cancelled or expired)",
        )
    })
}
