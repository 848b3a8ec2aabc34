//! Who calls, and with what body, as axum extractors. The principal
//! extractors answer 401 for a missing or wrong token and 403 for the wrong
//! role (rule 12's who-checks, which come before any look at the body);
//! `Body` answers 413 for a body over 16 KiB and `parse` 415/400.

use axum::extract::{FromRequest, FromRequestParts, Path, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use bytes::Bytes;
use serde::de::DeserializeOwned;

use crate::app::{App, AppState, COUNTER_ACTIONS};
use crate::auth::Principal;
use crate::error::ApiError;

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// The caller's principal; 401 without a valid token.
pub async fn principal(app: &App, headers: &HeaderMap) -> Result<Principal, ApiError> {
    let token = bearer(headers).ok_or_else(ApiError::unauthorized)?;
    app.resolve(token).await.ok_or_else(ApiError::unauthorized)
}

/// Any caller with a valid token.
pub struct Authed(pub Principal);

/// An admin (401, 403).
pub struct Admin(pub Principal);

/// Whoever may issue tickets: a kiosk, staff or an admin (401, 403).
pub struct Issuer(pub Principal);

/// Staff or an admin (401, 403); whether of this counter is the app's check.
pub struct Staff(pub Principal);

macro_rules! principal_extractor {
    ($name:ident, $check:expr) => {
        impl FromRequestParts<AppState> for $name {
            type Rejection = ApiError;
            async fn from_request_parts(
                parts: &mut Parts,
                app: &AppState,
            ) -> Result<Self, ApiError> {
                let who = principal(app, &parts.headers).await?;
                let check: fn(&Principal) -> Result<(), ApiError> = $check;
                check(&who)?;
                Ok($name(who))
            }
        }
    };
}

principal_extractor!(Authed, |_| Ok(()));
principal_extractor!(Admin, App::require_admin);
principal_extractor!(Issuer, App::may_issue);
principal_extractor!(Staff, App::may_act);

/// `/counters/{id}/{action}` with a known action (else 404, before any
/// who-check, as for any unknown path).
pub struct CounterPath {
    pub counter: String,
    pub action: &'static str,
}

impl FromRequestParts<AppState> for CounterPath {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Self, ApiError> {
        let Path((counter, action)) = Path::<(String, String)>::from_request_parts(parts, app)
            .await
            .map_err(|_| ApiError::not_found())?;
        let action = COUNTER_ACTIONS
            .into_iter()
            .find(|a| *a == action)
            .ok_or_else(ApiError::not_found)?;
        Ok(CounterPath { counter, action })
    }
}

/// The request body, with the 16 KiB limit answered as 413 `too_large`.
pub struct Body(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for Body {
    type Rejection = ApiError;
    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Bytes::from_request(req, state).await {
            Ok(b) => Ok(Body(b)),
            Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => Err(ApiError::too_large()),
            Err(e) => Err(ApiError::bad_request(format!("cannot read the body: {e}"))),
        }
    }
}

/// 415 unless the body is sent as JSON, then 400 unless it parses into `T`.
pub fn parse<T: DeserializeOwned>(headers: &HeaderMap, body: &Body) -> Result<T, ApiError> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let mime = ct.split(';').next().unwrap_or("").trim();
    if !mime.eq_ignore_ascii_case("application/json") {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "Send the body as Content-Type: application/json",
        ));
    }
    serde_json::from_slice(&body.0).map_err(|e| {
        ApiError::bad_request(format!("invalid body: {}", crate::error::json_error(&e)))
    })
}
