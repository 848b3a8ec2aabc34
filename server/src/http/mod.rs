//! The HTTP API of contract §4: routes and thin handlers. Each handler
//! takes its caller through an extractor (`extract.rs`: `Admin`, `Issuer`,
//! `Staff`, …), then its body, then asks the application layer (`app.rs`),
//! which owns the rights and the rules; together they keep rule 12's order
//! of checks (413, 401/403, 415/400, 404, 409). Nothing here knows queue
//! rules.
//!
//! Every handler carries `#[utoipa::path(...)]`: its method, full path,
//! body, each status the contract names for it and who may call; listed in
//! `openapi.rs`, these make the OpenAPI document (rule 86). Routes are
//! added through `Routes`, which remembers each path, so a test walks the
//! router's own table against the document.

pub mod extract;
pub mod openapi;

#[cfg(test)]
mod appointment_tests;
#[cfg(test)]
mod openapi_tests;

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, DefaultBodyLimit, Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get, post};
use axum::{Json, Router};
use luot_protocol::{
    Appointment, AppointmentList, AppointmentView, BookRequest, CheckInRequest, DailyReport,
    DevicesResponse, ErrorBody, FeedbackRequest, HaPrimary, HaStatus, Health, HolderTicket,
    IssueRequest, IssuedTicket, LoginRequest, LoginResponse, MAX_BODY_BYTES, NotifyRequest,
    PrintAccepted, PrintRequest, SiteView, SlotsResponse, TicketList, VisitsReport,
    WebhooksResponse,
};

use crate::app::appointments::{ListQuery, SlotsQuery};
use crate::app::{App, AppState, CounterAction, Issued, TicketQuery};
use crate::config::SiteConfig;
use crate::config::store::StoreKind;
use crate::error::ApiError;
use crate::ha::{Reason, Role, RoleState};
use crate::hub::{HubError, Outcome};
use extract::{Admin, Authed, Body, CounterPath, Issuer, Staff, parse};

/// A router that remembers the paths it was given: the OpenAPI test walks
/// every route the server serves from here, not from a list of its own.
pub struct Routes {
    router: Router<AppState>,
    paths: Vec<&'static str>,
}

impl Routes {
    fn new() -> Routes {
        Routes {
            router: Router::new(),
            paths: Vec::new(),
        }
    }

    /// `Router::route`, remembering `path`.
    fn route(mut self, path: &'static str, method_router: MethodRouter<AppState>) -> Routes {
        self.paths.push(path);
        self.router = self.router.route(path, method_router);
        self
    }
}

/// Every path the server serves but the screens' pages and assets
/// (`luot-display`), in full (`/api/v1/tickets/{id}`, `/healthz`), as the
/// router has them.
pub fn paths() -> Vec<String> {
    let root = root_routes().paths.into_iter().map(String::from);
    let api = api_routes()
        .paths
        .into_iter()
        .map(|p| format!("/api/v1{p}"));
    root.chain(api).collect()
}

/// The paths without prefix (§4, §13).
fn root_routes() -> Routes {
    Routes::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
}

/// The HTTP API under `/api/v1`. A new route goes here, its handler
/// annotated with `#[utoipa::path]` and listed in `openapi.rs`.
fn api_routes() -> Routes {
    Routes::new()
        .route("/openapi.json", get(openapi_json))
        .route("/site", get(site))
        .route("/ha", get(ha))
        .route("/login", post(login))
        .route("/tickets", post(issue).get(tickets))
        .route("/tickets/{id}", get(ticket))
        .route("/tickets/{id}/feedback", post(feedback))
        .route("/tickets/{id}/print", post(print))
        .route("/tickets/{id}/notify", post(notify).delete(notify_erase))
        .route("/counters/{id}/{action}", post(counter_action))
        .route("/reports/daily", get(daily_report))
        .route("/reports/visits", get(visits_report))
        .route("/devices", get(devices))
        .route("/webhooks", get(webhooks))
        .route("/appointments", post(book).get(appointments))
        .route("/appointments/slots", get(slots))
        .route("/appointments/check-in", post(check_in))
        .route("/appointments/{id}", get(appointment))
        .route("/appointments/{id}/cancel", post(cancel_booking))
        .route("/ws", get(crate::ws::upgrade))
}

pub fn router(app: AppState) -> Router {
    let api = api_routes()
        .router
        .fallback(|| async { ApiError::not_found() })
        .method_not_allowed_fallback(|| async { method_not_allowed() });
    let voice = app.config.server.data_dir.join("voice");
    Router::new()
        .merge(luot_display::router(Some(voice)))
        .merge(root_routes().router)
        .nest("/api/v1", api)
        .fallback(|| async { ApiError::not_found() })
        .method_not_allowed_fallback(|| async { method_not_allowed() })
        .layer(axum::middleware::from_fn(too_large_first))
        .layer(axum::middleware::from_fn_with_state(app.clone(), standby_first))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(
            tower_http::trace::TraceLayer::new_for_http().make_span_with(
                |req: &Request| tracing::info_span!("http", method = %req.method(), path = %req.uri().path()),
            ),
        )
        .with_state(app)
}

/// A body announced as over 16 KiB gets its 413 before any other check
/// (rule 12: "413 may come first"); one that turns out too long while read
/// gets it from `Body`.
async fn too_large_first(req: Request, next: Next) -> Response {
    let announced = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if announced.is_some_and(|n| n > MAX_BODY_BYTES) {
        return ApiError::too_large().into_response();
    }
    next.run(req).await
}

fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "This path does not take that method",
    )
}

fn ticket_response(outcome: Outcome) -> Response {
    match outcome {
        Outcome::Ticket(t) | Outcome::Replayed(t) => Json(*t).into_response(),
        Outcome::Counter(c) => Json(*c).into_response(),
        Outcome::Booking { appointment, .. } => Json(*appointment).into_response(),
        Outcome::ReplayedArchived(_) | Outcome::Nothing => StatusCode::NO_CONTENT.into_response(),
    }
}

/// Health: whether the store can be written (rules 33, 42).
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "operations",
    responses(
        (status = 200, description = "`ok`: the store is writable", body = Health),
        (status = 503, description = "`unavailable`, with `reason`", body = Health)
    )
)]
async fn healthz(State(app): State<AppState>) -> Response {
    let postgres = app.config.store != StoreKind::Sled;
    let role = app.hub.role().borrow().clone();
    let probe = if role.is_primary() {
        app.hub.probe().await.map_err(|e| match e {
            HubError::Unavailable(m) => m,
            HubError::Rejected(r) => r.to_string(),
        })
    } else {
        Err(String::new())
    };
    // With sled, §4's answer as it always was; with PostgreSQL, §13's.
    let (role_name, seq) = if postgres {
        (
            Some(role_name(role.role).to_string()),
            Some(app.hub.seq().await),
        )
    } else {
        (None, None)
    };
    match probe {
        Ok(()) => Json(Health {
            status: "ok".into(),
            reason: None,
            role: role_name,
            seq,
        })
        .into_response(),
        Err(message) => {
            let reason = match role.reason {
                Some(r) => r.as_str().to_string(),
                None if postgres => Reason::StoreStalled.as_str().to_string(),
                None => message,
            };
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(Health {
                    status: "unavailable".into(),
                    reason: Some(reason),
                    role: role_name,
                    seq,
                }),
            )
                .into_response()
        }
    }
}

fn role_name(r: Role) -> &'static str {
    match r {
        Role::Starting => "starting",
        Role::Standby => "standby",
        Role::Primary => "primary",
    }
}

/// "Anyone on localhost" (rule 106): a loopback peer, and no `Forwarded`
/// or `X-Forwarded-For` header (a reverse proxy on the same machine).
fn on_localhost(peer: &SocketAddr, headers: &HeaderMap) -> bool {
    peer.ip().is_loopback()
        && !headers.contains_key(header::FORWARDED)
        && !headers.contains_key("x-forwarded-for")
}

/// The server's role and its store's replication (§13, rule 106): anyone
/// on localhost, an admin elsewhere. A standby answers it too.
#[utoipa::path(
    get,
    path = "/api/v1/ha",
    tag = "operations",
    security((), ("bearer" = [])),
    responses(
        (status = 200, description = "The role, the store and its replication", body = HaStatus),
        (status = 401, description = "`unauthorized` (not on localhost)", body = ErrorBody),
        (status = 403, description = "`forbidden`: admins only", body = ErrorBody)
    )
)]
async fn ha(
    State(app): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    if !on_localhost(&peer, &headers) {
        App::require_admin(&extract::principal(&app, &headers).await?)?;
    }
    let role = app.hub.role().borrow().clone();
    let seq = app.hub.durable_seq();
    let (repl, epoch) = app.hub.replication().await.unwrap_or_default();
    let postgres = app.config.store != StoreKind::Sled;
    let store_seq = if role.is_primary() {
        Some(seq)
    } else {
        role.store_seq
    };
    let head = role.head.clone();
    let primary = match (&head, role.is_primary()) {
        (Some(h), _) => Some(HaPrimary {
            node: h.writer.clone(),
            url: h.writer_url.clone(),
            beat_at: h.beat_at.clone(),
        }),
        (None, true) if postgres => Some(HaPrimary {
            node: Some(crate::server::node_name(&app.config)),
            url: app.config.ha.as_ref().and_then(|h| h.url.clone()),
            beat_at: None,
        }),
        _ => None,
    };
    Ok(Json(HaStatus {
        role: role_name(role.role).into(),
        reason: role.reason.map(|r| r.as_str().to_string()),
        store: if postgres { "postgres" } else { "sled" }.into(),
        node: postgres.then(|| crate::server::node_name(&app.config)),
        epoch,
        term: repl.term,
        seq,
        store_seq,
        lag_events: store_seq.map(|s| s.saturating_sub(seq)),
        replica_lag_s: repl.replica_lag_s,
        sync_standby: repl.sync_standby,
        config_sha256: None,
        primary,
    })
    .into_response())
}

/// Rule 105's answer of a standby to every `/api/v1` request but `/ha`:
/// 503 `unavailable` naming who writes, with `Retry-After: 2`.
pub fn standby_error(role: &RoleState) -> ApiError {
    let who = match (&role.writer, &role.writer_url) {
        (Some(w), Some(u)) => format!("{w} ({u})"),
        (Some(w), None) => w.clone(),
        _ => "another server".into(),
    };
    let mut e = ApiError::unavailable(format!(
        "Máy chủ này đang dự phòng, vui lòng thử lại (this server is a standby; {who} writes the queue)"
    ));
    e.extra
        .insert("writer".into(), serde_json::json!(role.writer.clone()));
    e.extra.insert(
        "writer_url".into(),
        serde_json::json!(role.writer_url.clone()),
    );
    e
}

/// Before anything else, a server that is not the primary answers `/api/v1`
/// (but `/api/v1/ha` and the websocket, whose hello is refused by a frame)
/// with 503 (rule 105).
async fn standby_first(State(app): State<AppState>, req: Request, next: Next) -> Response {
    let path = req.uri().path();
    let api = path == "/api/v1" || path.starts_with("/api/v1/");
    if api && path != "/api/v1/ha" && path != "/api/v1/ws" {
        let role = app.hub.role().borrow().clone();
        if !role.is_primary() {
            let mut r = standby_error(&role).into_response();
            r.headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from_static("2"));
            return r;
        }
    }
    next.run(req).await
}

/// This document: the OpenAPI 3.1 description of the HTTP API (rule 86),
/// the same bytes each time.
#[utoipa::path(
    get,
    path = "/api/v1/openapi.json",
    tag = "operations",
    responses(
        (status = 200, description = "The OpenAPI document", content_type = "application/json")
    )
)]
async fn openapi_json() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        openapi::document(),
    )
        .into_response()
}

/// Prometheus metrics: anyone on localhost, an admin elsewhere.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    security((), ("bearer" = [])),
    responses(
        (status = 200, description = "Prometheus text format", body = String, content_type = "text/plain"),
        (status = 401, description = "unauthorized: from elsewhere than localhost without a valid token", body = ErrorBody),
        (status = 403, description = "forbidden: not an admin", body = ErrorBody)
    )
)]
async fn metrics(
    State(app): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    if !on_localhost(&peer, &headers) {
        App::require_admin(&extract::principal(&app, &headers).await?)?;
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

/// The site: services with their waiting counts and capacity, counters.
#[utoipa::path(
    get,
    path = "/api/v1/site",
    tag = "site",
    responses(
        (status = 200, description = "The site now, with `push_key` and `notify` (rule 93)", body = SiteView)
    )
)]
async fn site(State(app): State<AppState>) -> Response {
    Json(app.site_view().await).into_response()
}

/// Log in as staff or an admin; the token lasts 12 hours (rules 8, 9).
#[utoipa::path(
    post,
    path = "/api/v1/login",
    tag = "site",
    request_body = LoginRequest,
    responses(
        (status = 200, description = "A bearer token", body = LoginResponse),
        (status = 400, description = "bad_request", body = ErrorBody),
        (status = 401, description = "unauthorized: wrong username or password", body = ErrorBody),
        (status = 413, description = "too_large: a body over 16 KiB", body = ErrorBody),
        (status = 415, description = "unsupported_media_type: the body is not application/json", body = ErrorBody),
        (status = 429, description = "too_many_attempts: 10 failures within a minute (rule 8)", body = ErrorBody),
        (status = 503, description = "unavailable: too many password checks wait", body = ErrorBody)
    )
)]
async fn login(
    State(app): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let req: LoginRequest = parse(&headers, &body)?;
    Ok(Json(app.login(req).await?).into_response())
}

/// Issue a ticket: kiosks, staff, admins and integrations (§4, §11, §12).
///
/// `external_ref`, `print_at` (and `notify`) from a kiosk: 403 after the 400s.
#[utoipa::path(
    post,
    path = "/api/v1/tickets",
    tag = "tickets",
    request_body = IssueRequest,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "The new ticket (durable); `print_id` with `print_at`", body = IssuedTicket),
        (status = 200, description = "The same `request_id` again: the same ticket as it is now", body = IssuedTicket),
        (status = 400, description = "bad_request: a field, the priority class, the identity, external_ref or print_at", body = ErrorBody),
        (status = 401, description = "unauthorized: no valid bearer token", body = ErrorBody),
        (status = 403, description = "forbidden: not an issuer, a service without a button or outside an integration's, or external_ref/print_at from a kiosk", body = ErrorBody),
        (status = 404, description = "unknown_service; unknown_device (print_at)", body = ErrorBody),
        (status = 413, description = "too_large: a body over 16 KiB", body = ErrorBody),
        (status = 415, description = "unsupported_media_type: the body is not application/json", body = ErrorBody),
        (status = 409, description = "request_id_reused; service_closed, appointment_required, identity_required, person_limit, service_full (rule 75's order); kiosk_unavailable (print_at: nothing issued)", body = ErrorBody),
        (status = 503, description = "unavailable: the command could not be made durable (rule 42)", body = ErrorBody)
    )
)]
async fn issue(
    State(app): State<AppState>,
    Issuer(who): Issuer,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let req: IssueRequest = parse(&headers, &body)?;
    let issued = app.issue(&who, req).await?;
    Ok(issued_response(issued))
}

/// 201 for a new ticket, 200 for a replay, with `print_id` after `print_at`.
fn issued_response(issued: Issued) -> Response {
    let status = created_or_ok(issued.created);
    let body = IssuedTicket {
        ticket: issued.ticket,
        print_id: issued.print_id,
    };
    (status, Json(body)).into_response()
}

/// Tickets by `external_ref` (rule 87): the day's whose reference is
/// exactly R, in order of issue; an integration's services only.
#[utoipa::path(
    get,
    path = "/api/v1/tickets",
    tag = "tickets",
    params(
        ("external_ref" = String, Query, description = "The reference, exactly"),
        ("day" = Option<String>, Query, description = "YYYY-MM-DD, default today"),
    ),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The tickets", body = TicketList),
        (status = 400, description = "bad_request: no external_ref, a bad one, or a day that is not YYYY-MM-DD", body = ErrorBody),
        (status = 401, description = "unauthorized: no valid bearer token", body = ErrorBody),
        (status = 403, description = "forbidden: not an integration or admin", body = ErrorBody)
    )
)]
async fn tickets(
    State(app): State<AppState>,
    Authed(who): Authed,
    q: Result<Query<TicketQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    Ok(Json(app.tickets_by_ref(&who, query(q)?).await?).into_response())
}

/// `GET /tickets/{id}`: anyone; a token of staff, an admin or an
/// integration shows `external_ref` (rule 87).
#[utoipa::path(
    get,
    path = "/api/v1/tickets/{id}",
    tag = "tickets",
    params(("id" = String, Path, description = "The ticket's id")),
    security((), ("bearer" = [])),
    responses(
        (status = 200, description = "The ticket as it is now; `notify` where the site has an alert channel on", body = HolderTicket),
        (status = 404, description = "unknown_ticket", body = ErrorBody)
    )
)]
async fn ticket(
    State(app): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let who = extract::principal(&app, &headers).await.ok();
    Ok(Json(app.holder_ticket(who.as_ref(), &id).await?).into_response())
}

/// The caller of a holder's request: none, or a token that must be valid
/// (401).
async fn holder(app: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    if headers.contains_key(header::AUTHORIZATION) {
        extract::principal(app, headers).await?;
    }
    Ok(())
}

/// `POST /tickets/{id}/notify` (rules 93–94): 204.
#[utoipa::path(
    post,
    path = "/api/v1/tickets/{id}/notify",
    tag = "tickets",
    params(("id" = String, Path, description = "The ticket's id")),
    request_body = NotifyRequest,
    security((), ("bearer" = [])),
    responses(
        (status = 204, description = "Registered, durable: alerts when the ticket comes near and when it is called"),
        (status = 400, description = "bad_request: consent not true, neither phone nor push, a bad phone or subscription", body = ErrorBody),
        (status = 401, description = "unauthorized: a token that is not valid", body = ErrorBody),
        (status = 404, description = "unknown_ticket", body = ErrorBody),
        (status = 409, description = "not_waiting, notify_off (in this order)", body = ErrorBody),
        (status = 413, description = "too_large: a body over 16 KiB", body = ErrorBody),
        (status = 415, description = "unsupported_media_type: the body is not application/json", body = ErrorBody),
        (status = 429, description = "too_many_attempts: a fourth /notify for this wait", body = ErrorBody),
        (status = 503, description = "unavailable: the store cannot be written", body = ErrorBody)
    )
)]
async fn notify(
    State(app): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    holder(&app, &headers).await?;
    let req: NotifyRequest = parse(&headers, &body)?;
    app.notify(&id, req).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `DELETE /tickets/{id}/notify`: 204, its phone and subscriptions erased.
#[utoipa::path(
    delete,
    path = "/api/v1/tickets/{id}/notify",
    tag = "tickets",
    params(("id" = String, Path, description = "The ticket's id")),
    security((), ("bearer" = [])),
    responses(
        (status = 204, description = "Its phone and subscriptions are erased"),
        (status = 401, description = "unauthorized: a token that is not valid", body = ErrorBody),
        (status = 404, description = "unknown_ticket", body = ErrorBody),
        (status = 503, description = "unavailable: the store cannot be written", body = ErrorBody)
    )
)]
async fn notify_erase(
    State(app): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    holder(&app, &headers).await?;
    app.notify_erase(&id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

fn created_or_ok(created: bool) -> StatusCode {
    if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    }
}

/// A query string, 400 when it does not parse.
fn query<T: serde::de::DeserializeOwned>(
    q: Result<Query<T>, axum::extract::rejection::QueryRejection>,
) -> Result<T, ApiError> {
    q.map(|Query(v)| v)
        .map_err(|e| ApiError::bad_request(e.to_string()))
}

/// `GET /appointments/slots` (rule 76).
#[utoipa::path(
    get,
    path = "/api/v1/appointments/slots",
    tag = "appointments",
    params(
        ("service" = String, Query, description = "A service id"),
        ("day" = Option<String>, Query, description = "YYYY-MM-DD, default today"),
    ),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The day's sessions and slots", body = SlotsResponse),
        (status = 400, description = "bad_request: no service, or a day that is not YYYY-MM-DD", body = ErrorBody),
        (status = 401, description = "unauthorized: no valid bearer token", body = ErrorBody),
        (status = 403, description = "forbidden: not an integration, staff or admin", body = ErrorBody),
        (status = 404, description = "unknown_service", body = ErrorBody)
    )
)]
async fn slots(
    State(app): State<AppState>,
    Authed(who): Authed,
    q: Result<Query<SlotsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    App::may_read_bookings(&who)?;
    Ok(Json(app.slots(&who, query(q)?).await?).into_response())
}

/// `POST /appointments`: 201, or 200 for a replay.
#[utoipa::path(
    post,
    path = "/api/v1/appointments",
    tag = "appointments",
    request_body = BookRequest,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "The booking", body = Appointment),
        (status = 200, description = "The same `request_id` again: the same booking", body = Appointment),
        (status = 400, description = "bad_request", body = ErrorBody),
        (status = 401, description = "unauthorized: no valid bearer token", body = ErrorBody),
        (status = 403, description = "forbidden: not an integration or admin, or a service outside an integration's", body = ErrorBody),
        (status = 404, description = "unknown_service, unknown_slot", body = ErrorBody),
        (status = 413, description = "too_large: a body over 16 KiB", body = ErrorBody),
        (status = 415, description = "unsupported_media_type: the body is not application/json", body = ErrorBody),
        (status = 409, description = "booking_closed, slot_full, person_limit (in this order); request_id_reused", body = ErrorBody),
        (status = 503, description = "unavailable: the command could not be made durable (rule 42)", body = ErrorBody)
    )
)]
async fn book(
    State(app): State<AppState>,
    Authed(who): Authed,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    App::may_book(&who)?;
    let req: BookRequest = parse(&headers, &body)?;
    let (a, created) = app.book(&who, req).await?;
    Ok((created_or_ok(created), Json(a)).into_response())
}

/// `GET /appointments`.
#[utoipa::path(
    get,
    path = "/api/v1/appointments",
    tag = "appointments",
    params(
        ("day" = Option<String>, Query, description = "YYYY-MM-DD, default today"),
        ("service" = Option<String>, Query, description = "A service id"),
        ("status" = Option<String>, Query, description = "booked, checked_in, cancelled or expired"),
        ("external_ref" = Option<String>, Query, description = "The booking's reference, exactly"),
    ),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The day's bookings by `slot_at`, then `created_at`", body = AppointmentList),
        (status = 400, description = "bad_request: a bad day or status", body = ErrorBody),
        (status = 401, description = "unauthorized: no valid bearer token", body = ErrorBody),
        (status = 403, description = "forbidden: not an integration, staff or admin", body = ErrorBody),
        (status = 404, description = "unknown_service", body = ErrorBody)
    )
)]
async fn appointments(
    State(app): State<AppState>,
    Authed(who): Authed,
    q: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    App::may_read_bookings(&who)?;
    Ok(Json(app.appointments(&who, query(q)?).await?).into_response())
}

/// `GET /appointments/{id}`: anyone holding the id (a wrong token: 401).
#[utoipa::path(
    get,
    path = "/api/v1/appointments/{id}",
    tag = "appointments",
    params(("id" = String, Path, description = "The booking's id")),
    security((), ("bearer" = [])),
    responses(
        (status = 200, description = "The booking: whole for its maker, staff and admins, brief for others (rule 85)", body = AppointmentView),
        (status = 401, description = "unauthorized: a token was sent and is not valid", body = ErrorBody),
        (status = 404, description = "unknown_appointment", body = ErrorBody)
    )
)]
async fn appointment(
    State(app): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let who = match headers.contains_key(header::AUTHORIZATION) {
        true => Some(extract::principal(&app, &headers).await?),
        false => None,
    };
    Ok(Json(app.appointment(who.as_ref(), &id).await?).into_response())
}

/// `POST /appointments/{id}/cancel`.
#[utoipa::path(
    post,
    path = "/api/v1/appointments/{id}/cancel",
    tag = "appointments",
    params(("id" = String, Path, description = "The booking's id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The booking, cancelled (also when it already was)", body = Appointment),
        (status = 401, description = "unauthorized: no valid bearer token", body = ErrorBody),
        (status = 403, description = "forbidden: not an integration or admin", body = ErrorBody),
        (status = 404, description = "unknown_appointment", body = ErrorBody),
        (status = 409, description = "already_checked_in, appointment_expired", body = ErrorBody),
        (status = 503, description = "unavailable: the command could not be made durable (rule 42)", body = ErrorBody)
    )
)]
async fn cancel_booking(
    State(app): State<AppState>,
    Path(id): Path<String>,
    Authed(who): Authed,
) -> Result<Response, ApiError> {
    App::may_book(&who)?;
    Ok(Json(app.cancel_booking(&who, id).await?).into_response())
}

/// `POST /appointments/check-in`: 201 Ticket, or 200 for a replay.
#[utoipa::path(
    post,
    path = "/api/v1/appointments/check-in",
    tag = "appointments",
    request_body = CheckInRequest,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "The booking's ticket; `print_id` with `print_at`", body = IssuedTicket),
        (status = 200, description = "The same `request_id` again: the same ticket", body = IssuedTicket),
        (status = 400, description = "bad_request: code or appointment, the code's check digit, request_id, identity, print_at", body = ErrorBody),
        (status = 401, description = "unauthorized: no valid bearer token", body = ErrorBody),
        (status = 403, description = "forbidden: not a kiosk, integration, staff or admin; print_at from a kiosk", body = ErrorBody),
        (status = 404, description = "unknown_appointment; unknown_device (print_at)", body = ErrorBody),
        (status = 413, description = "too_large: a body over 16 KiB", body = ErrorBody),
        (status = 415, description = "unsupported_media_type: the body is not application/json", body = ErrorBody),
        (status = 409, description = "appointment_cancelled, already_checked_in (adds number), appointment_expired, too_early (adds checkin_opens_at), identity_required, identity_mismatch (in this order); request_id_reused; kiosk_unavailable (print_at: nothing checked in)", body = ErrorBody),
        (status = 503, description = "unavailable: the command could not be made durable (rule 42)", body = ErrorBody)
    )
)]
async fn check_in(
    State(app): State<AppState>,
    Authed(who): Authed,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    App::may_check_in(&who)?;
    let req: CheckInRequest = parse(&headers, &body)?;
    let done = app.check_in(&who, req).await?;
    Ok(issued_response(done.issued))
}

/// Rate a ticket that was served: anyone holding its id.
#[utoipa::path(
    post,
    path = "/api/v1/tickets/{id}/feedback",
    tag = "tickets",
    params(("id" = String, Path, description = "The ticket's id")),
    request_body = FeedbackRequest,
    responses(
        (status = 204, description = "Recorded"),
        (status = 400, description = "bad_request: rating outside 1–5, comment over 500 characters", body = ErrorBody),
        (status = 404, description = "unknown_ticket", body = ErrorBody),
        (status = 413, description = "too_large: a body over 16 KiB", body = ErrorBody),
        (status = 415, description = "unsupported_media_type: the body is not application/json", body = ErrorBody),
        (status = 409, description = "not_served, already_rated", body = ErrorBody),
        (status = 503, description = "unavailable: the command could not be made durable (rule 42)", body = ErrorBody)
    )
)]
async fn feedback(
    State(app): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let req: FeedbackRequest = parse(&headers, &body)?;
    app.feedback(id, req).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `POST /tickets/{id}/print` (rule 88): who (401/403), the body (415/400),
/// then the app's 404s and 409s; 202 with the job's `print_id`.
#[utoipa::path(
    post,
    path = "/api/v1/tickets/{id}/print",
    tag = "tickets",
    params(("id" = String, Path, description = "The ticket's id")),
    request_body = PrintRequest,
    security(("bearer" = [])),
    responses(
        (status = 202, description = "The job, sent to the kiosk; a replay: the same `print_id`", body = PrintAccepted),
        (status = 400, description = "bad_request: kiosk over 64 characters, request_id", body = ErrorBody),
        (status = 401, description = "unauthorized: no valid bearer token", body = ErrorBody),
        (status = 403, description = "forbidden: not staff, an admin or an integration", body = ErrorBody),
        (status = 404, description = "unknown_ticket, unknown_device", body = ErrorBody),
        (status = 413, description = "too_large: a body over 16 KiB", body = ErrorBody),
        (status = 415, description = "unsupported_media_type: the body is not application/json", body = ErrorBody),
        (status = 409, description = "ticket_closed, kiosk_unavailable (in this order); request_id_reused", body = ErrorBody)
    )
)]
async fn print(
    State(app): State<AppState>,
    Path(id): Path<String>,
    Authed(who): Authed,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    App::may_print(&who)?;
    let req: PrintRequest = parse(&headers, &body)?;
    let accepted = app.print(&who, &id, req).await?;
    let body = PrintAccepted {
        print_id: accepted.print_id,
    };
    Ok((StatusCode::ACCEPTED, Json(body)).into_response())
}

async fn counter_action(
    State(app): State<AppState>,
    path: CounterPath,
    Staff(who): Staff,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    App::may_act_on(&who, &path.counter)?;
    let action = match path.action {
        "next" => CounterAction::Next,
        "recall" => CounterAction::Recall,
        "done" => CounterAction::Done,
        "no-show" => CounterAction::NoShow,
        "open" => CounterAction::Open,
        "close" => CounterAction::Close,
        "transfer" => CounterAction::Transfer(parse(&headers, &body)?),
        "send" => CounterAction::Send(parse(&headers, &body)?),
        "call" => CounterAction::Call(parse(&headers, &body)?),
        "hold" => CounterAction::Hold(parse(&headers, &body)?),
        "requeue" => CounterAction::Requeue(parse(&headers, &body)?),
        _ => CounterAction::Cancel(parse(&headers, &body)?),
    };
    let outcome = app.counter(&who, &path.counter, action).await?;
    Ok(ticket_response(outcome))
}

#[derive(serde::Deserialize)]
struct DayQuery {
    day: Option<String>,
    /// `json`, `csv` or `xlsx`: the form for a download link, which cannot
    /// set `Accept`; it wins over the header.
    format: Option<String>,
}

/// The form a report is answered in.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Form {
    Json,
    Csv,
    Xlsx,
}

/// `?format=`, else `Accept` (an Excel workbook, else CSV, else JSON).
fn report_form(headers: &HeaderMap, format: Option<&str>) -> Result<Form, ApiError> {
    match format {
        Some("json") => return Ok(Form::Json),
        Some("csv") => return Ok(Form::Csv),
        Some("xlsx") => return Ok(Form::Xlsx),
        Some(_) => {
            return Err(ApiError::bad_request(
                "format phải là json, csv hoặc xlsx (format must be json, csv or xlsx)",
            ));
        }
        None => {}
    }
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    Ok(if accept.contains(crate::report::xlsx::MEDIA_TYPE) {
        Form::Xlsx
    } else if accept.contains("text/csv") {
        Form::Csv
    } else {
        Form::Json
    })
}

/// A file to download: its media type, name and bytes.
fn download(media_type: &str, name: String, body: impl IntoResponse) -> Response {
    (
        [
            (header::CONTENT_TYPE, media_type.to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
        ],
        body,
    )
        .into_response()
}

fn xlsx_failed(e: rust_xlsxwriter::XlsxError) -> ApiError {
    tracing::error!(error = %e, "writing a report workbook failed");
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal_error",
        "Không tạo được tệp Excel; hãy tải CSV (the Excel workbook could not be made; download the CSV)",
    )
}

/// The daily report (rules 34, 45, 59): JSON, CSV or an Excel workbook.
#[utoipa::path(
    get,
    path = "/api/v1/reports/daily",
    tag = "reports",
    params(
        ("day" = Option<String>, Query, description = "YYYY-MM-DD, default today"),
        ("format" = Option<String>, Query, description = "json, csv or xlsx; else the Accept header"),
    ),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The report: JSON; CSV for `format=csv` or `Accept: text/csv`; an Excel workbook for `format=xlsx` or its Accept", content((DailyReport = "application/json"), (String = "text/csv"))),
        (status = 400, description = "bad_request: a day that is not YYYY-MM-DD, an unknown format", body = ErrorBody),
        (status = 401, description = "unauthorized: no valid bearer token", body = ErrorBody),
        (status = 403, description = "forbidden: not an admin", body = ErrorBody),
        (status = 500, description = "internal_error: the workbook could not be made", body = ErrorBody)
    )
)]
async fn daily_report(
    State(app): State<AppState>,
    Admin(_): Admin,
    headers: HeaderMap,
    query: Result<Query<DayQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let (form, day) = report_request(&headers, query)?;
    let r = app.report(day).await?;
    let name = format!("luot-{}", r.day);
    DAILY.respond(&app.config, form, &name, r)
}

/// `GET /api/v1/reports/visits` (rule 58), as JSON, CSV or an Excel workbook.
#[utoipa::path(
    get,
    path = "/api/v1/reports/visits",
    tag = "reports",
    params(
        ("day" = Option<String>, Query, description = "YYYY-MM-DD, default today"),
        ("format" = Option<String>, Query, description = "json, csv or xlsx; else the Accept header"),
    ),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The report: JSON; CSV for `format=csv` or `Accept: text/csv`; an Excel workbook for `format=xlsx` or its Accept", content((VisitsReport = "application/json"), (String = "text/csv"))),
        (status = 400, description = "bad_request: a day that is not YYYY-MM-DD, an unknown format", body = ErrorBody),
        (status = 401, description = "unauthorized: no valid bearer token", body = ErrorBody),
        (status = 403, description = "forbidden: not an admin", body = ErrorBody),
        (status = 500, description = "internal_error: the workbook could not be made", body = ErrorBody)
    )
)]
async fn visits_report(
    State(app): State<AppState>,
    Admin(_): Admin,
    headers: HeaderMap,
    query: Result<Query<DayQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let (form, day) = report_request(&headers, query)?;
    let r = app.visits_report(day).await?;
    let name = format!("luot-visits-{}", r.day);
    VISITS.respond(&app.config, form, &name, r)
}

/// The form and day a report request asks for.
fn report_request(
    headers: &HeaderMap,
    query: Result<Query<DayQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<(Form, Option<String>), ApiError> {
    let Query(q) = query.map_err(|e| ApiError::bad_request(e.to_string()))?;
    Ok((report_form(headers, q.format.as_deref())?, q.day))
}

const DAILY: Outputs<DailyReport> = Outputs {
    csv: crate::report::csv::daily,
    xlsx: crate::report::xlsx::daily,
};

const VISITS: Outputs<VisitsReport> = Outputs {
    csv: crate::report::csv::visits,
    xlsx: crate::report::xlsx::visits,
};

/// How a report is written as CSV and as an Excel workbook.
struct Outputs<R> {
    csv: fn(&R) -> String,
    xlsx: fn(&SiteConfig, &R) -> Result<Vec<u8>, rust_xlsxwriter::XlsxError>,
}

impl<R: serde::Serialize> Outputs<R> {
    /// The report `r` in the form asked for, a file named `name` + extension.
    fn respond(
        &self,
        cfg: &SiteConfig,
        form: Form,
        name: &str,
        r: R,
    ) -> Result<Response, ApiError> {
        Ok(match form {
            Form::Json => Json(r).into_response(),
            Form::Csv => download(
                "text/csv; charset=utf-8",
                format!("{name}.csv"),
                (self.csv)(&r),
            ),
            Form::Xlsx => download(
                crate::report::xlsx::MEDIA_TYPE,
                format!("{name}.xlsx"),
                (self.xlsx)(cfg, &r).map_err(xlsx_failed)?,
            ),
        })
    }
}

/// Every device's last status and contact (rule 11).
#[utoipa::path(
    get,
    path = "/api/v1/devices",
    tag = "site",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The devices", body = DevicesResponse),
        (status = 401, description = "unauthorized: no valid bearer token", body = ErrorBody),
        (status = 403, description = "forbidden: not an admin", body = ErrorBody)
    )
)]
async fn devices(State(app): State<AppState>, Admin(_): Admin) -> Response {
    Json(app.devices().await).into_response()
}

/// `GET /webhooks` (§12): each webhook's delivery state, never a secret.
#[utoipa::path(
    get,
    path = "/api/v1/webhooks",
    tag = "site",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Each webhook's last delivered seq, backlog and last error, never a secret", body = WebhooksResponse),
        (status = 401, description = "unauthorized: no valid bearer token", body = ErrorBody),
        (status = 403, description = "forbidden: not an admin", body = ErrorBody),
        (status = 503, description = "unavailable: the store cannot be read", body = ErrorBody)
    )
)]
async fn webhooks(State(app): State<AppState>, Admin(_): Admin) -> Result<Response, ApiError> {
    let status = app.hooks.status().await.map_err(|e| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            format!("Không đọc được trạng thái webhook (cannot read the webhook state: {e})"),
        )
    })?;
    Ok(Json(status).into_response())
}
