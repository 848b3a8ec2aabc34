//! `ApiError`: every refusal the API gives, over HTTP (the contract's
//! `{"error": {"code", "message"}}` with its status) and in websocket error
//! frames (its `code` and `message`), with what some errors add (§11:
//! `next_open_at`, `number`, `checkin_opens_at`). Nothing else builds error
//! answers.

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
    /// Fields the error object adds beside `code` and `message`.
    pub extra: serde_json::Map<String, serde_json::Value>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            extra: serde_json::Map::new(),
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
            extra: self.extra.clone(),
        }
    }
}

/// A JSON body's error as a sentence, without the values serde quotes in
/// it (a card's number sent as a JSON number must not come back, rule 81).
pub fn json_error(e: &serde_json::Error) -> String {
    let s = e.to_string();
    if !s.starts_with("invalid") {
        return s;
    }
    s.split('`')
        .enumerate()
        .map(|(i, part)| if i % 2 == 1 { "…" } else { part })
        .collect::<Vec<_>>()
        .join("`")
}

impl From<Rejection> for ApiError {
    fn from(r: Rejection) -> ApiError {
        let status = match r {
            Rejection::BadRequest(_) => StatusCode::BAD_REQUEST,
            Rejection::TooManyAttempts => StatusCode::TOO_MANY_REQUESTS,
            _ if r.is_not_found() => StatusCode::NOT_FOUND,
            _ => StatusCode::CONFLICT,
        };
        let mut e = ApiError::new(status, r.code(), r.to_string());
        e.extra = r.extra();
        e
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_body_s_error_does_not_quote_the_value_sent() {
        #[derive(serde::Deserialize, Debug)]
        #[allow(dead_code)]
        struct Card {
            id_number: String,
        }
        let e = serde_json::from_str::<Card>(r#"{"id_number": 1099012345}"#).unwrap_err();
        let m = json_error(&e);
        assert!(!m.contains("1099012345"), "{m}");
        assert!(m.contains("expected a string"), "{m}");
        let unknown = serde_json::from_str::<serde_json::Value>("{").unwrap_err();
        assert_eq!(json_error(&unknown), unknown.to_string());
    }

    #[test]
    fn an_error_object_carries_what_the_rejection_adds() {
        let e = ApiError::from(Rejection::ServiceFull {
            next_open_at: Some("2026-11-22T11:30:00+07:00".into()),
        });
        let v = serde_json::to_value(e.detail()).unwrap();
        assert_eq!(e.status, StatusCode::CONFLICT);
        assert_eq!(v["code"], "service_full");
        assert_eq!(v["next_open_at"], "2026-11-22T11:30:00+07:00");
        let closed =
            serde_json::to_value(ApiError::from(Rejection::ServiceClosed).detail()).unwrap();
        assert!(closed.get("next_open_at").is_some_and(|v| v.is_null()));
        assert_eq!(
            ApiError::from(Rejection::UnknownSlot).status,
            StatusCode::NOT_FOUND
        );
    }
}
