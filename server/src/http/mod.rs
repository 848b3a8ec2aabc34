//! The HTTP API of contract §4: thin adapters from requests to hub commands
//! and reads. This module owns the order of checks (rule 12: 413, then 401/403,
//! then 415/400, then 404, then 409) and nothing about queue rules.

pub mod error;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::extract::{ConnectInfo, DefaultBodyLimit, FromRequest, Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use bytes::Bytes;
use serde::de::DeserializeOwned;
use tokio::sync::watch;

use luot_protocol::{
    DevicesResponse, FeedbackRequest, IssueRequest, LoginRequest, LoginResponse, MAX_BODY_BYTES,
    MAX_COMMENT, MAX_PASSWORD, MAX_USERNAME, TransferRequest, valid_request_id,
};

use crate::auth::{self, LoginLimiter, Principal};
use crate::config::{SiteConfig, UserRole};
use crate::engine::Command;
use crate::hub::{Hub, Outcome};
use crate::metrics::Metrics;
use crate::report;
use crate::store::Session;
pub use error::ApiError;

/// Everything a request handler may use.
pub struct App {
    pub hub: Hub,
    pub config: Arc<SiteConfig>,
    pub metrics: Arc<Metrics>,
    pub limiter: Mutex<LoginLimiter>,
    /// Password checks running at once: argon2id takes 19 MiB and a core's
    /// worth of work each, so a flood of logins must queue, not pile up.
    pub login_slots: tokio::sync::Semaphore,
    /// The runtime screens' websockets run on after their hello.
    pub screens: tokio::runtime::Handle,
    /// Writes every event to the screens (see `fanout.rs`).
    pub fanout: crate::fanout::Fanout,
    pub shutdown: watch::Receiver<bool>,
}

pub type AppState = Arc<App>;

/// How long a login waits for a free password check before a 503.
const LOGIN_QUEUE_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Password checks at once: one per core.
pub fn login_slots() -> tokio::sync::Semaphore {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    tokio::sync::Semaphore::new(cores)
}

pub fn router(app: AppState) -> Router {
    let api = Router::new()
        .route("/site", get(site))
        .route("/login", post(login))
        .route("/tickets", post(issue))
        .route("/tickets/{id}", get(ticket))
        .route("/tickets/{id}/feedback", post(feedback))
        .route("/counters/{id}/{action}", post(counter_action))
        .route("/reports/daily", get(daily_report))
        .route("/devices", get(devices))
        .route("/ws", get(crate::ws::upgrade))
        .fallback(|| async { ApiError::not_found() })
        .method_not_allowed_fallback(|| async { method_not_allowed() });
    let voice = app.config.server.data_dir.join("voice");
    Router::new()
        .merge(luot_display::router(Some(voice)))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .nest("/api/v1", api)
        .fallback(|| async { ApiError::not_found() })
        .method_not_allowed_fallback(|| async { method_not_allowed() })
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(
            tower_http::trace::TraceLayer::new_for_http().make_span_with(
                |req: &Request| tracing::info_span!("http", method = %req.method(), path = %req.uri().path()),
            ),
        )
        .with_state(app)
}

fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "This path does not take that method",
    )
}

/// The request body, with the 16 KiB limit answered as 413 `too_large`.
pub struct Body(Bytes);

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
fn parse<T: DeserializeOwned>(headers: &HeaderMap, body: &Body) -> Result<T, ApiError> {
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
    serde_json::from_slice(&body.0).map_err(|e| ApiError::bad_request(format!("invalid body: {e}")))
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

impl App {
    /// Resolves a bearer token: a device token or a login token that has not
    /// expired.
    pub async fn resolve(&self, token: &str) -> Option<Principal> {
        if token.is_empty() || token.len() > 256 {
            return None;
        }
        if let Some(p) = auth::device_for_token(&self.config, token) {
            return Some(p);
        }
        let hash = auth::sha256_hex(token);
        let session = self
            .hub
            .read(move |inner| inner.store.session(&hash).ok().flatten())
            .await
            .ok()??;
        if session.expires_at <= chrono::Utc::now().timestamp_millis() {
            return None;
        }
        let user = self
            .config
            .users
            .iter()
            .find(|u| u.username == session.username)?;
        Some(Principal::User {
            username: user.username.clone(),
            role: user.role,
            counters: user.counters.clone(),
        })
    }

    /// `None` without a token; 401 with a token that is not valid.
    async fn principal(&self, headers: &HeaderMap) -> Result<Option<Principal>, ApiError> {
        match bearer(headers) {
            None if headers.contains_key(header::AUTHORIZATION) => Err(ApiError::unauthorized()),
            None => Ok(None),
            Some(t) => self
                .resolve(t)
                .await
                .map(Some)
                .ok_or_else(ApiError::unauthorized),
        }
    }

    async fn require(&self, headers: &HeaderMap) -> Result<Principal, ApiError> {
        self.principal(headers)
            .await?
            .ok_or_else(ApiError::unauthorized)
    }

    async fn require_admin(&self, headers: &HeaderMap) -> Result<Principal, ApiError> {
        let p = self.require(headers).await?;
        if !p.is_admin() {
            return Err(ApiError::forbidden("Chỉ quản trị viên (admins only)"));
        }
        Ok(p)
    }
}

fn ticket_response(outcome: Outcome, created: StatusCode) -> Response {
    match outcome {
        Outcome::Ticket(t) => (created, Json(*t)).into_response(),
        Outcome::Replayed(t) => (StatusCode::OK, Json(*t)).into_response(),
        Outcome::Counter(c) => (StatusCode::OK, Json(*c)).into_response(),
        Outcome::Nothing => StatusCode::NO_CONTENT.into_response(),
    }
}

async fn healthz(State(app): State<AppState>) -> Response {
    match app
        .hub
        .read(|inner| inner.probe().map_err(|e| e.to_string()))
        .await
    {
        Ok(Ok(())) => Json(serde_json::json!({"status": "ok"})).into_response(),
        Ok(Err(reason)) | Err(crate::hub::HubError::Unavailable(reason)) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(serde_json::json!({"status": "unavailable", "reason": reason})),
        )
            .into_response(),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(serde_json::json!({"status": "unavailable", "reason": e.to_string()})),
        )
            .into_response(),
    }
}

async fn metrics(
    State(app): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    if !peer.ip().is_loopback() {
        app.require_admin(&headers).await?;
    }
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        app.metrics.render(),
    )
        .into_response())
}

async fn site(State(app): State<AppState>) -> Result<Response, ApiError> {
    let info = app.hub.read(|inner| inner.state.site_info()).await?;
    Ok(Json(info).into_response())
}

async fn login(
    State(app): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let req: LoginRequest = parse(&headers, &body)?;
    if req.username.is_empty() || req.username.chars().count() > MAX_USERNAME {
        return Err(ApiError::bad_request("username must be 1 to 64 characters"));
    }
    if req.password.chars().count() > MAX_PASSWORD {
        return Err(ApiError::bad_request(
            "password must be at most 256 characters",
        ));
    }
    let now = Instant::now();
    if app
        .limiter
        .lock()
        .map(|mut l| l.locked(&req.username, now))
        .unwrap_or(false)
    {
        tracing::warn!(username = %req.username, "login refused: too many attempts");
        return Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_attempts",
            "Đăng nhập sai quá nhiều lần; thử lại sau một phút (too many failed logins, try again in a minute)",
        ));
    }
    let user = app
        .config
        .users
        .iter()
        .find(|u| u.username == req.username)
        .cloned();
    // Verify against a dummy hash for unknown users, so timing tells nothing.
    let hash = user
        .as_ref()
        .map(|u| u.password_hash.clone())
        .unwrap_or_else(|| DUMMY_HASH.clone());
    let password = req.password.clone();
    let Ok(Ok(slot)) = tokio::time::timeout(LOGIN_QUEUE_WAIT, app.login_slots.acquire()).await
    else {
        tracing::warn!(username = %req.username, "login refused: too many logins at once");
        return Err(ApiError::unavailable(
            "Máy chủ đang bận, vui lòng thử lại (too many logins at once, try again)",
        ));
    };
    let ok = tokio::task::spawn_blocking(move || auth::verify_password(&password, &hash))
        .await
        .unwrap_or(false);
    drop(slot);
    let Some(user) = user.filter(|_| ok) else {
        if let Ok(mut l) = app.limiter.lock() {
            l.record_failure(&req.username, Instant::now());
        }
        tracing::warn!(username = %req.username, "login failed");
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "Sai tên đăng nhập hoặc mật khẩu (wrong username or password)",
        ));
    };
    if let Ok(mut l) = app.limiter.lock() {
        l.record_success(&user.username);
    }
    let token = auth::new_token();
    let expires = chrono::Utc::now() + auth::LOGIN_TTL;
    app.hub
        .put_session(
            auth::sha256_hex(&token),
            Session {
                username: user.username.clone(),
                expires_at: expires.timestamp_millis(),
            },
        )
        .await?;
    tracing::info!(username = %user.username, role = user.role.as_str(), "login");
    let counters = match user.role {
        UserRole::Admin => app.config.counters.iter().map(|c| c.id.clone()).collect(),
        UserRole::Staff => user.counters.clone(),
    };
    Ok(Json(LoginResponse {
        token,
        role: user.role.as_str().into(),
        expires_at: expires
            .with_timezone(&app.config.site.timezone)
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, false),
        counters,
    })
    .into_response())
}

static DUMMY_HASH: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| auth::hash_password("luot-dummy-password"));

/// Checks an issue request in contract order after who-checks: 400, 404, 403.
pub fn check_issue(
    config: &SiteConfig,
    who: &Principal,
    req: &IssueRequest,
) -> Result<(), ApiError> {
    if !valid_request_id(&req.request_id) {
        return Err(ApiError::bad_request(
            "request_id must be 1 to 64 characters of A-Z, a-z, 0-9, _ and -",
        ));
    }
    if let Some(p) = &req.priority
        && !config.priority.classes.iter().any(|c| c == p)
    {
        return Err(ApiError::bad_request(format!(
            "Không có diện ưu tiên \"{p}\" (unknown priority class)"
        )));
    }
    if config.service(&req.service).is_none() {
        return Err(crate::engine::Rejection::UnknownService.into());
    }
    if !who.may_issue_for(&req.service) {
        return Err(ApiError::forbidden(
            "Ki-ốt này không có nút cho dịch vụ đó (this kiosk has no button for that service)",
        ));
    }
    Ok(())
}

pub fn issue_command(who: &Principal, req: IssueRequest) -> Command {
    Command::Issue {
        scope: who.scope(),
        request_id: req.request_id,
        service: req.service,
        priority: req.priority,
        ticket_id: auth::new_ticket_id(),
    }
}

async fn issue(
    State(app): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let who = app.require(&headers).await?;
    if !who.may_issue() {
        return Err(ApiError::forbidden(
            "Chỉ ki-ốt và nhân viên được lấy số (only kiosks and staff issue tickets)",
        ));
    }
    let req: IssueRequest = parse(&headers, &body)?;
    check_issue(&app.config, &who, &req)?;
    let outcome = app.hub.command(issue_command(&who, req)).await?;
    Ok(ticket_response(outcome, StatusCode::CREATED))
}

async fn ticket(State(app): State<AppState>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let t = app.hub.read(move |inner| inner.ticket(&id)).await?;
    match t {
        Some(t) => Ok(Json(t).into_response()),
        None => Err(crate::engine::Rejection::UnknownTicket.into()),
    }
}

async fn feedback(
    State(app): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let req: FeedbackRequest = parse(&headers, &body)?;
    if !(1..=5).contains(&req.rating) {
        return Err(ApiError::bad_request(
            "rating phải từ 1 đến 5 (rating must be 1 to 5)",
        ));
    }
    if req
        .comment
        .as_ref()
        .is_some_and(|c| c.chars().count() > MAX_COMMENT)
    {
        return Err(ApiError::bad_request(
            "comment must be at most 500 characters",
        ));
    }
    app.hub
        .command(Command::Feedback {
            ticket: id,
            rating: req.rating,
            comment: req.comment,
        })
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn counter_action(
    State(app): State<AppState>,
    Path((id, action)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    const ACTIONS: [&str; 7] = [
        "next", "recall", "done", "no-show", "transfer", "open", "close",
    ];
    if !ACTIONS.contains(&action.as_str()) {
        return Err(ApiError::not_found());
    }
    let who = app.require(&headers).await?;
    if !who.may_act_on(&id) {
        return Err(ApiError::forbidden(
            "Bạn không phụ trách quầy này (you are not staff of this counter)",
        ));
    }
    let by = who.name();
    let counter = id.clone();
    let cmd = match action.as_str() {
        "next" => Command::Next { counter, by },
        "recall" => Command::Recall { counter, by },
        "done" => Command::Done { counter, by },
        "no-show" => Command::NoShow { counter, by },
        "open" => Command::Open { counter, by },
        "close" => Command::Close { counter, by },
        _ => {
            let req: TransferRequest = parse(&headers, &body)?;
            Command::Transfer {
                counter,
                by,
                service: req.service,
                front: req.front,
            }
        }
    };
    let outcome = app.hub.command(cmd).await?;
    Ok(ticket_response(outcome, StatusCode::OK))
}

#[derive(serde::Deserialize)]
struct DayQuery {
    day: Option<String>,
}

async fn daily_report(
    State(app): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<DayQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    app.require_admin(&headers).await?;
    let Query(q) = query.map_err(|e| ApiError::bad_request(e.to_string()))?;
    if let Some(d) = &q.day {
        chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d")
            .map_err(|_| ApiError::bad_request("day must be YYYY-MM-DD"))?;
    }
    let config = app.config.clone();
    let r = app
        .hub
        .read(move |inner| {
            let today = inner.state.day().map(|d| d.to_string()).unwrap_or_default();
            let day = q.day.unwrap_or(today.clone());
            if day == today {
                report::daily(&config, &day, inner.state.tickets())
            } else {
                inner
                    .store
                    .archived_report(&day)
                    .unwrap_or_else(|| report::daily(&config, &day, &[]))
            }
        })
        .await?;
    let wants_csv = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("text/csv"));
    if wants_csv {
        let name = format!("attachment; filename=\"luot-{}.csv\"", r.day);
        return Ok((
            [
                (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
                (header::CONTENT_DISPOSITION, name),
            ],
            report::csv(&r),
        )
            .into_response());
    }
    Ok(Json(r).into_response())
}

async fn devices(State(app): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    app.require_admin(&headers).await?;
    let list = app
        .hub
        .read(|inner| {
            inner
                .config
                .devices
                .iter()
                .filter_map(|d| inner.device_info(&d.id))
                .collect::<Vec<_>>()
        })
        .await?;
    Ok(Json(DevicesResponse { devices: list }).into_response())
}
