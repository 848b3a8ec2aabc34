//! `ApiError`: every refusal the API gives, over HTTP (the contract's
//! `{"error": {"code", "message"}}` with its status) and in websocket error
//! frames (its `code` and `message`). Nothing else builds error answers.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use luot_protocol::{ErrorBody, ErrorDetail};

use crate::engine::Rejection;
use crate::plan::HubError;

#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }
    pub fn unauthorized() -> ApiError {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "Cần đăng nhập hoặc mã thiết bị hợp lệ (a valid bearer token is required)",
        )
    }
    pub fn forbidden(message: impl Into<String>) -> ApiError {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }
    pub fn too_large() -> ApiError {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            "Request body over 16 KiB",
        )
    }
    pub fn not_found() -> ApiError {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "No such path in the luot API",
        )
    }
    pub fn too_many_attempts() -> ApiError {
        Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_attempts",
            "Đăng nhập sai quá nhiều lần; thử lại sau một phút (too many failed logins, try again in a minute)",
        )
    }
    pub fn unavailable(message: impl Into<String>) -> ApiError {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message)
    }
    pub fn detail(&self) -> ErrorDetail {
        ErrorDetail {
            code: self.code.to_string(),
            message: self.message.clone(),
            extra: Default::default(),
        }
    }
}

impl From<Rejection> for ApiError {
    fn from(r: Rejection) -> ApiError {
        let status = match r {
            Rejection::BadRequest(_) => StatusCode::BAD_REQUEST,
            Rejection::UnknownService | Rejection::UnknownCounter | Rejection::UnknownTicket => {
                StatusCode::NOT_FOUND
            }
            Rejection::QueueEmpty
            | Rejection::CounterClosed
            | Rejection::NothingCalled
            | Rejection::NotServed
            | Rejection::AlreadyRated
            | Rejection::RequestIdReused
            | Rejection::TicketBusy
            | Rejection::NotCallable
            | Rejection::NotRequeueable
            | Rejection::TooFewCalls => StatusCode::CONFLICT,
        };
        ApiError::new(status, r.code(), r.to_string())
    }
}

impl From<HubError> for ApiError {
    fn from(e: HubError) -> ApiError {
        match e {
            HubError::Rejected(r) => r.into(),
            HubError::Unavailable(m) => ApiError::unavailable(m),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: self.detail(),
        };
        (self.status, axum::Json(body)).into_response()
    }
}
