//! The HTTP API of contract §4: routes and thin handlers. Each handler
//! takes its caller through an extractor (`extract.rs`: `Admin`, `Issuer`,
//! `Staff`, …), then its body, then asks the application layer (`app.rs`),
//! which owns the rights and the rules; together they keep rule 12's order
//! of checks (413, 401/403, 415/400, 404, 409). Nothing here knows queue
//! rules.

pub mod extract;

#[cfg(test)]
mod appointment_tests;

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, DefaultBodyLimit, Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use luot_protocol::{
    BookRequest, CheckInRequest, DailyReport, FeedbackRequest, IssueRequest, LoginRequest,
    MAX_BODY_BYTES, NotifyRequest, PrintAccepted, PrintRequest, VisitsReport,
};

use crate::app::appointments::{ListQuery, SlotsQuery};
use crate::app::{App, AppState, CounterAction};
use crate::config::SiteConfig;
use crate::error::ApiError;
use crate::hub::Outcome;
use extract::{Admin, Authed, Body, CounterPath, Issuer, Staff, parse};

pub fn router(app: AppState) -> Router {
    let api = Router::new()
        .route("/site", get(site))
        .route("/login", post(login))
        .route("/tickets", post(issue))
        .route("/tickets/{id}", get(ticket))
        .route("/tickets/{id}/feedback", post(feedback))
        .route("/tickets/{id}/print", post(print))
        .route("/tickets/{id}/notify", post(notify).delete(notify_erase))
        .route("/counters/{id}/{action}", post(counter_action))
        .route("/reports/daily", get(daily_report))
        .route("/reports/visits", get(visits_report))
        .route("/devices", get(devices))
        .route("/appointments", post(book).get(appointments))
        .route("/appointments/slots", get(slots))
        .route("/appointments/check-in", post(check_in))
        .route("/appointments/{id}", get(appointment))
        .route("/appointments/{id}/cancel", post(cancel_booking))
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
        .layer(axum::middleware::from_fn(too_large_first))
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

async fn healthz(State(app): State<AppState>) -> Response {
    match app.hub.probe().await {
        Ok(()) => Json(serde_json::json!({"status": "ok"})).into_response(),
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

async fn site(State(app): State<AppState>) -> Response {
    Json(app.site_view().await).into_response()
}

async fn login(
    State(app): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let req: LoginRequest = parse(&headers, &body)?;
    Ok(Json(app.login(req).await?).into_response())
}

async fn issue(
    State(app): State<AppState>,
    Issuer(who): Issuer,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let req: IssueRequest = parse(&headers, &body)?;
    let issued = app.issue(&who, req).await?;
    let status = if issued.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(issued.ticket)).into_response())
}

/// `GET /tickets/{id}`: anyone; a token of staff, an admin or an
/// integration shows `external_ref` (rule 87).
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
async fn slots(
    State(app): State<AppState>,
    Authed(who): Authed,
    q: Result<Query<SlotsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    App::may_read_bookings(&who)?;
    Ok(Json(app.slots(&who, query(q)?).await?).into_response())
}

/// `POST /appointments`: 201, or 200 for a replay.
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
async fn appointments(
    State(app): State<AppState>,
    Authed(who): Authed,
    q: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    App::may_read_bookings(&who)?;
    Ok(Json(app.appointments(&who, query(q)?).await?).into_response())
}

/// `GET /appointments/{id}`: anyone holding the id (a wrong token: 401).
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
async fn cancel_booking(
    State(app): State<AppState>,
    Path(id): Path<String>,
    Authed(who): Authed,
) -> Result<Response, ApiError> {
    App::may_book(&who)?;
    Ok(Json(app.cancel_booking(&who, id).await?).into_response())
}

/// `POST /appointments/check-in`: 201 Ticket, or 200 for a replay.
async fn check_in(
    State(app): State<AppState>,
    Authed(who): Authed,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    App::may_check_in(&who)?;
    let req: CheckInRequest = parse(&headers, &body)?;
    let done = app.check_in(&who, req).await?;
    let status = created_or_ok(done.issued.created);
    Ok((status, Json(done.issued.ticket)).into_response())
}

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

async fn devices(State(app): State<AppState>, Admin(_): Admin) -> Response {
    Json(app.devices().await).into_response()
}
