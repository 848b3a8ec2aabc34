//! Central's HTTP API (§14, prefix `/api/central/v1`) and the pages without
//! prefix (`/healthz`, `/metrics`, `/`): thin handlers over `db`, `ingest`,
//! `siteconf` and `reports`, in rule 12's order of checks: a body over 8 MiB
//! (413) first, then who calls (401/403), then the body (415/400), then 404,
//! then 409.
//!
//! Owns who may do what at central (rule 119). Never builds SQL or decides
//! a Batch's fate itself.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::extract::{ConnectInfo, FromRequestParts, Path, Query, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use bytes::Bytes;
use chrono::Utc;
use luot_server::auth::LoginLimiter;
use luot_server::error::ApiError;
use serde::Deserialize;
use serde_json::json;

use crate::config::{CentralConfig, Role, UserEntry};
use crate::db::{Db, DbError};
use crate::ingest::{self, Batch, Decision};
use crate::metrics::Metrics;
use crate::{reports, siteconf};

/// The largest body central reads (§14).
pub const MAX_BODY: usize = 8 * 1024 * 1024;

pub const PREFIX: &str = "/api/central/v1";

/// Everything a handler needs.
pub struct Central {
    pub cfg: CentralConfig,
    pub db: Db,
    pub metrics: Metrics,
    limiter: Mutex<LoginLimiter>,
    site_ids: Vec<String>,
}

pub type AppState = Arc<Central>;

impl Central {
    pub fn new(cfg: CentralConfig, db: Db) -> AppState {
        let metrics = Metrics::new();
        let site_ids: Vec<String> = cfg.sites.iter().map(|s| s.id.clone()).collect();
        for s in &site_ids {
            metrics.touch(s);
        }
        Arc::new(Central {
            cfg,
            db,
            metrics,
            limiter: Mutex::new(LoginLimiter::default()),
            site_ids,
        })
    }

    /// Fills the gauges from the database (at start-up).
    pub async fn load_metrics(&self) -> Result<(), DbError> {
        for s in self.db.sites(&self.site_ids).await? {
            self.metrics.set_behind(
                &s.id,
                s.head_seq.saturating_sub(s.acked_seq),
                &self.site_ids,
            );
            if let Some(l) = s.lag_s {
                self.metrics.set_lag(&s.id, l);
            }
        }
        Ok(())
    }
}

fn unavailable(e: &DbError) -> ApiError {
    tracing::warn!(error = %e, "database unavailable");
    ApiError::unavailable(
        "Cơ sở dữ liệu trung tâm không phản hồi; thử lại sau (central's database is unavailable; retry later)",
    )
}

fn with(mut e: ApiError, key: &str, v: serde_json::Value) -> ApiError {
    e.extra.insert(key.to_string(), v);
    e
}

// ------------------------------------------------------------------ callers

/// Who calls: a site by its token, or a user by a login token.
#[derive(Clone, Debug)]
pub enum Caller {
    Site(String),
    User(UserEntry),
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// The caller of a request; 401 without a valid token, 503 when a login
/// token cannot be checked.
async fn caller(app: &Central, headers: &HeaderMap) -> Result<Caller, ApiError> {
    let token = bearer(headers).ok_or_else(ApiError::unauthorized)?;
    let sha = luot_server::secret::sha256_hex(token);
    if let Some(s) = app.cfg.sites.iter().find(|s| s.token_sha256 == sha) {
        return Ok(Caller::Site(s.id.clone()));
    }
    let name = app
        .db
        .session(&sha)
        .await
        .map_err(|e| unavailable(&e))?
        .ok_or_else(ApiError::unauthorized)?;
    app.cfg
        .user(&name)
        .cloned()
        .map(Caller::User)
        .ok_or_else(ApiError::unauthorized)
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Self, ApiError> {
        caller(app, &parts.headers).await
    }
}

/// An admin or a viewer (401; 403 for a site token).
pub struct Person(pub UserEntry);

impl FromRequestParts<AppState> for Person {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Self, ApiError> {
        match caller(app, &parts.headers).await? {
            Caller::User(u) => Ok(Person(u)),
            Caller::Site(_) => Err(ApiError::forbidden(
                "Mã của cơ sở chỉ dùng để gửi dữ liệu (a site token may only ingest and read its configuration)",
            )),
        }
    }
}

/// An admin (401, 403).
pub struct Admin(pub UserEntry);

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Self, ApiError> {
        let Person(u) = Person::from_request_parts(parts, app).await?;
        if u.role != Role::Admin {
            return Err(ApiError::forbidden(
                "Chỉ quản trị viên được làm việc này (admins only)",
            ));
        }
        Ok(Admin(u))
    }
}

// ------------------------------------------------------------------ bodies

/// The body, with the 8 MiB limit answered 413 `too_large`.
pub struct Body(pub Bytes);

impl<S: Send + Sync> axum::extract::FromRequest<S> for Body {
    type Rejection = ApiError;
    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        match Bytes::from_request(req, state).await {
            Ok(b) => Ok(Body(b)),
            Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => Err(too_large()),
            Err(e) => Err(ApiError::bad_request(format!("cannot read the body: {e}"))),
        }
    }
}

fn too_large() -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "too_large",
        "The body is over 8 MiB (central reads at most 8 MiB)",
    )
}

/// 415 unless sent as JSON, then 400 unless it parses into `T`.
fn parse<T: serde::de::DeserializeOwned>(headers: &HeaderMap, body: &Body) -> Result<T, ApiError> {
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
        ApiError::bad_request(format!(
            "invalid body: {}",
            luot_server::error::json_error(&e)
        ))
    })
}

/// An announced body over 8 MiB: 413 before anything else (rule 12).
async fn limit(req: Request, next: Next) -> Response {
    let announced = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if announced.is_some_and(|n| n > MAX_BODY as u64) {
        return too_large().into_response();
    }
    next.run(req).await
}

// ------------------------------------------------------------------ router

pub fn router(app: AppState) -> Router {
    let api = Router::new()
        .route("/login", post(login))
        .route("/ingest", post(ingest_batch))
        .route("/sites", get(sites))
        .route("/sites/{id}/config", get(get_config).post(post_config))
        .route("/reports/daily", get(reports::daily_handler))
        .route("/reports/hourly", get(reports::hourly_handler))
        .route("/reports/visits", get(reports::visits_handler))
        .fallback(not_found);
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/", get(dashboard))
        .nest(PREFIX, api)
        .fallback(not_found)
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY))
        .layer(middleware::from_fn(limit))
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .with_state(app)
}

async fn not_found() -> ApiError {
    ApiError::not_found()
}

async fn dashboard() -> Response {
    (
        [(header::CACHE_CONTROL, "no-cache")],
        Html(crate::DASHBOARD_HTML),
    )
        .into_response()
}

async fn healthz(State(app): State<AppState>) -> Response {
    match app.db.writable().await {
        Ok(()) => Json(json!({"status": "ok"})).into_response(),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "unavailable", "reason": "store_unreachable", "message": e.to_string()})),
        )
            .into_response(),
    }
}

/// Anyone on localhost (a loopback peer without `Forwarded` or
/// `X-Forwarded-For`), else an admin (rule 106).
async fn metrics(State(app): State<AppState>, req: Request) -> Result<Response, ApiError> {
    let peer = req.extensions().get::<ConnectInfo<SocketAddr>>().copied();
    let headers = req.headers();
    let local = peer.is_some_and(|ConnectInfo(p)| p.ip().is_loopback())
        && !headers.contains_key("forwarded")
        && !headers.contains_key("x-forwarded-for");
    if !local {
        match caller(&app, headers).await? {
            Caller::User(u) if u.role == Role::Admin => {}
            _ => return Err(ApiError::forbidden("/metrics is for admins (or localhost)")),
        }
    }
    Ok((
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        app.metrics.render(),
    )
        .into_response())
}

// ------------------------------------------------------------------ login

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LoginBody {
    username: String,
    password: String,
}

/// Rules 8 and 9: 12 h tokens kept in PostgreSQL; 10 failures a minute
/// lock a username.
async fn login(
    State(app): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let b: LoginBody = parse(&headers, &body)?;
    if b.username.chars().count() > luot_protocol::MAX_USERNAME || b.password.chars().count() > 256
    {
        return Err(ApiError::bad_request(
            "username is at most 64 and password at most 256 characters",
        ));
    }
    let now = Instant::now();
    if app
        .limiter
        .lock()
        .map(|mut l| l.locked(&b.username, now))
        .unwrap_or(false)
    {
        return Err(ApiError::too_many_attempts());
    }
    let user = app.cfg.user(&b.username).cloned();
    // An unknown user costs a hash check too, so timing tells nothing.
    let hash = user.as_ref().map(|u| u.password_hash.clone()).unwrap_or_else(|| {
        "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$Pq3XoxwGQ6aCCxHBv1AKNyHq+P3Rcda0LMgFQfpF7lM"
            .into()
    });
    let pw = b.password.clone();
    let ok = tokio::task::spawn_blocking(move || luot_server::auth::verify_password(&pw, &hash))
        .await
        .unwrap_or(false);
    let Some(user) = user.filter(|_| ok) else {
        if let Ok(mut l) = app.limiter.lock() {
            l.record_failure(&b.username, Instant::now());
        }
        return Err(ApiError::unauthorized());
    };
    if let Ok(mut l) = app.limiter.lock() {
        l.record_success(&b.username);
    }
    let token = luot_server::auth::new_token();
    let expires = Utc::now() + luot_server::auth::LOGIN_TTL;
    app.db
        .create_session(
            &luot_server::secret::sha256_hex(&token),
            &user.username,
            expires,
        )
        .await
        .map_err(|e| unavailable(&e))?;
    let expires_at = expires
        .with_timezone(&app.cfg.timezone)
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, false);
    Ok(Json(json!({
        "token": token,
        "role": user.role.as_str(),
        "expires_at": expires_at,
        "sites": user.sites.clone().unwrap_or_else(|| app.site_ids.clone()),
    }))
    .into_response())
}

// ------------------------------------------------------------------ ingest

/// Rule 114 with rule 119's rights.
async fn ingest_batch(
    State(app): State<AppState>,
    who: Caller,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let Caller::Site(me) = who else {
        return Err(ApiError::forbidden(
            "Only a site's token may ingest (POST /ingest takes a site token)",
        ));
    };
    let batch: Batch = parse(&headers, &body)?;
    if batch.site_id != me {
        return Err(ApiError::forbidden(format!(
            "This token is site \"{me}\"'s; it may not ingest for \"{}\"",
            batch.site_id
        )));
    }
    let valid = match ingest::check(&batch) {
        Ok(v) => v,
        Err(m) => {
            app.metrics.batch(&me, "bad_request");
            return Err(ApiError::bad_request(m));
        }
    };
    let started = Instant::now();
    let out = match app.db.ingest(&batch, &valid).await {
        Ok(o) => o,
        Err(e) => {
            app.metrics.batch(&me, "unavailable");
            return Err(unavailable(&e));
        }
    };
    app.metrics
        .ingest_seconds
        .observe(started.elapsed().as_secs_f64());
    match out.decision {
        Decision::Take { acked_seq, .. } => {
            app.metrics.batch(&me, "ok");
            app.metrics.add_ingested(&me, out.inserted);
            app.metrics
                .set_behind(&me, batch.head_seq.saturating_sub(acked_seq), &app.site_ids);
            if let Some(l) = out.lag_s {
                app.metrics.set_lag(&me, l);
            }
            tracing::info!(site = %me, epoch = %batch.epoch, acked_seq, new = out.inserted, "batch taken");
            Ok(Json(json!({
                "epoch": batch.epoch,
                "acked_seq": acked_seq,
                "config_version": out.config_version,
            }))
            .into_response())
        }
        Decision::Gap { acked_seq } => {
            app.metrics.batch(&me, "gap");
            app.metrics
                .set_behind(&me, batch.head_seq.saturating_sub(acked_seq), &app.site_ids);
            let first = valid.events.first().map(|e| e.seq).unwrap_or(0);
            Err(with(
                ApiError::new(
                    StatusCode::CONFLICT,
                    "gap",
                    format!(
                        "central holds {} up to seq {acked_seq}; send from {} (this Batch starts at {first})",
                        batch.epoch,
                        acked_seq + 1
                    ),
                ),
                "acked_seq",
                json!(acked_seq),
            ))
        }
        Decision::Conflict { seq } => {
            app.metrics.batch(&me, "seq_conflict");
            tracing::warn!(site = %me, epoch = %batch.epoch, seq, "seq_conflict: central keeps its own event");
            Err(with(
                ApiError::new(
                    StatusCode::CONFLICT,
                    "seq_conflict",
                    format!(
                        "central holds another event at seq {seq} of {}; it keeps its own (start a new lineage entry at {seq})",
                        batch.epoch
                    ),
                ),
                "seq",
                json!(seq),
            ))
        }
    }
}

// ------------------------------------------------------------------ sites

async fn sites(State(app): State<AppState>, Person(u): Person) -> Result<Response, ApiError> {
    let ids: Vec<String> = app.site_ids.iter().filter(|s| u.sees(s)).cloned().collect();
    let states = app.db.sites(&ids).await.map_err(|e| unavailable(&e))?;
    let tz = app.cfg.timezone;
    let rows: Vec<serde_json::Value> = states
        .iter()
        .map(|s| {
            let name = app.cfg.site(&s.id).map(|e| e.name.clone()).unwrap_or_default();
            let cfg = s.config.clone().unwrap_or_default();
            json!({
                "id": s.id,
                "name": name,
                "epoch": s.epoch,
                "acked_seq": s.acked_seq,
                "head_seq": s.head_seq,
                "behind": s.head_seq.saturating_sub(s.acked_seq),
                "missing": s.missing.iter().map(|(a, b)| json!([a, b])).collect::<Vec<_>>(),
                "orphaned_events": s.orphaned_events,
                "last_contact_at": s.last_contact_at.map(|t| t.with_timezone(&tz).to_rfc3339_opts(chrono::SecondsFormat::Secs, false)),
                "lag_s": s.lag_s,
                "node": s.node,
                "luot_version": s.luot_version,
                "lineage": s.lineage,
                "config": {
                    "latest": s.config_latest,
                    "applied": cfg.applied,
                    "pending": cfg.pending,
                    "rejected": cfg.rejected,
                },
            })
        })
        .collect();
    Ok(Json(json!({ "sites": rows })).into_response())
}

// ------------------------------------------------------------------ configuration

#[derive(Deserialize)]
struct VersionQuery {
    version: Option<String>,
}

fn known_site(app: &Central, id: &str) -> Result<(), ApiError> {
    if app.cfg.site(id).is_none() {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_site",
            format!("No site \"{id}\" in central.toml's [[sites]]"),
        ));
    }
    Ok(())
}

/// `GET /sites/{id}/config`: its own site token or an admin (rule 119).
async fn get_config(
    State(app): State<AppState>,
    who: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    query: Result<Query<VersionQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    match &who {
        Caller::Site(me) if *me == id => {}
        Caller::User(u) if u.role == Role::Admin => {}
        _ => {
            return Err(ApiError::forbidden(
                "Only the site itself or an admin may read a site's configuration",
            ));
        }
    }
    let Query(q) = query.map_err(|e| ApiError::bad_request(e.to_string()))?;
    let version = match q.version.as_deref() {
        None => None,
        Some(v) => Some(
            v.parse::<u64>()
                .ok()
                .filter(|n| *n >= 1)
                .ok_or_else(|| ApiError::bad_request("version must be a whole number from 1"))?,
        ),
    };
    known_site(&app, &id)?;
    let Some(c) = app
        .db
        .config(&id, version)
        .await
        .map_err(|e| unavailable(&e))?
    else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "no_config",
            match version {
                Some(v) => format!("Site \"{id}\" has no configuration version {v}"),
                None => format!("Central holds no configuration for site \"{id}\""),
            },
        ));
    };
    let etag = format!("\"{}\"", c.version);
    let matches = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .map(|t| t.trim().trim_start_matches("W/"))
                .any(|t| t == etag || t == "*")
        });
    let etag_value = HeaderValue::from_str(&etag).unwrap_or(HeaderValue::from_static("\"0\""));
    if matches {
        return Ok((StatusCode::NOT_MODIFIED, [(header::ETAG, etag_value)]).into_response());
    }
    let tz = app.cfg.timezone;
    Ok((
        [(header::ETAG, etag_value)],
        Json(json!({
            "version": c.version,
            "sha256": c.sha256,
            "toml": c.toml,
            "note": c.note,
            "created_at": c.created_at.with_timezone(&tz).to_rfc3339_opts(chrono::SecondsFormat::Secs, false),
            "created_by": c.created_by,
        })),
    )
        .into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigBody {
    toml: String,
    #[serde(default)]
    note: Option<String>,
}

/// `POST /sites/{id}/config` (rule 116): admins only.
async fn post_config(
    State(app): State<AppState>,
    Admin(u): Admin,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let b: ConfigBody = parse(&headers, &body)?;
    if b.note.as_ref().is_some_and(|n| n.chars().count() > 500) {
        return Err(ApiError::bad_request("note is at most 500 characters"));
    }
    known_site(&app, &id)?;
    let (version, sha256) = add_version(&app.db, &id, &b.toml, b.note.as_deref(), &u.username)
        .await
        .map_err(|e| unavailable(&e))?
        .map_err(|e| {
            let mut err = ApiError::new(StatusCode::BAD_REQUEST, "invalid_config", e.to_string());
            err.extra.insert("line".into(), json!(e.line));
            err.extra.insert("field".into(), json!(e.field));
            err
        })?;
    tracing::info!(site = %id, version, by = %u.username, "configuration version stored");
    Ok((
        StatusCode::CREATED,
        Json(json!({"version": version, "sha256": sha256})),
    )
        .into_response())
}

/// Validates `toml` as the next version of `site` and stores it (used by
/// `POST /sites/{id}/config` and `push-config`).
pub async fn add_version(
    db: &Db,
    site: &str,
    toml: &str,
    note: Option<&str>,
    by: &str,
) -> Result<Result<(u64, String), luot_server::config::ConfigError>, DbError> {
    db.add_config(site, toml, note, by, |v| {
        siteconf::validate(&siteconf::name(v), toml).map(|_| ())
    })
    .await
}
