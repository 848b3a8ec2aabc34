//! The application layer: what a caller may do, once for HTTP and the
//! websocket. It resolves tokens to a `Principal`, checks rights and
//! request fields in the order of rule 12 (the transports call its checks
//! in that order), and turns requests into hub commands and queries. It
//! knows nothing of HTTP status lines or websocket frames beyond the
//! contract's errors (`ApiError`). Appointments (§11) are in
//! `app/appointments.rs`.

pub mod appointments;
pub mod notify;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use luot_protocol::{
    CallRequest, CancelRequest, DailyReport, DevicesResponse, FeedbackRequest, HoldRequest,
    IssueRequest, LoginRequest, LoginResponse, MAX_COMMENT, MAX_KIOSK, MAX_NUMBER, MAX_PASSWORD,
    MAX_REASON, MAX_USERNAME, PrintRequest, PrinterStatus, RequeueRequest, SendRequest,
    ServerMessage, SiteInfo, Ticket, TicketList, TicketStatus, TransferRequest, VisitsReport,
    WelcomeService, WelcomeSite, valid_request_id,
};
use tokio::sync::{Semaphore, mpsc, watch};

use crate::auth::{self, LoginLimiter, Principal};
use crate::config::{DeviceRole, SiteConfig, UserRole};
use crate::engine::identity::Fresh;
use crate::engine::{Command, Named, Rejection, StopReq};
use crate::error::ApiError;
use crate::fanout::Fanout;
use crate::hub::{Hub, Outcome};
use crate::metrics::Metrics;
use crate::print::{Accepted, Answer, PrintOrder, Prints, Refusal};
use crate::store::Session;

/// How long a login waits for a free password check before a 503.
const LOGIN_QUEUE_WAIT: Duration = Duration::from_secs(10);

/// Everything a request handler or a websocket connection may use.
pub struct App {
    pub hub: Hub,
    pub config: Arc<SiteConfig>,
    pub metrics: Arc<Metrics>,
    limiter: Mutex<LoginLimiter>,
    /// Password checks running at once: argon2id takes 19 MiB and a core's
    /// worth of work each, so a flood of logins must queue, not pile up.
    login_slots: Semaphore,
    /// The runtime screens' websockets run on after their hello.
    pub screens: tokio::runtime::Handle,
    /// Writes every event to the screens (see `fanout.rs`).
    pub fanout: Fanout,
    pub shutdown: watch::Receiver<bool>,
    /// Print jobs for kiosks and desk printers (rule 88), in memory only.
    pub prints: Prints,
    /// Webhook delivery (rules 89–90); none unless `with_hooks`.
    pub hooks: crate::hooks::Hooks,
}

pub type AppState = Arc<App>;

/// A counter action of §4 and §9–10.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CounterAction {
    Next,
    Recall,
    Done,
    NoShow,
    Transfer(TransferRequest),
    Send(SendRequest),
    Call(CallRequest),
    Hold(HoldRequest),
    Requeue(RequeueRequest),
    Cancel(CancelRequest),
    Open,
    Close,
}

/// The kinds of counter action, by the last segment of their path.
pub const COUNTER_ACTIONS: [&str; 12] = [
    "next", "recall", "done", "no-show", "transfer", "send", "call", "hold", "requeue", "cancel",
    "open", "close",
];

/// The query of `GET /tickets` (rule 87).
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TicketQuery {
    pub external_ref: Option<String>,
    pub day: Option<String>,
}

/// An issued ticket: `created` false for a replay of its `request_id`;
/// `print_id` the print job of its `print_at` (rule 88).
pub struct Issued {
    pub ticket: Ticket,
    pub created: bool,
    pub print_id: Option<String>,
}

/// The kiosk a new ticket is printed at (`print_at`, rule 88), checked
/// before the ticket is made.
pub struct PrintAt {
    kiosk: String,
    /// The job an earlier answer to the same `request_id` made.
    replay: Option<String>,
}

impl App {
    pub fn new(
        hub: Hub,
        config: Arc<SiteConfig>,
        metrics: Arc<Metrics>,
        screens: tokio::runtime::Handle,
        fanout: Fanout,
        shutdown: watch::Receiver<bool>,
    ) -> App {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        App {
            hub,
            config,
            metrics,
            limiter: Mutex::new(LoginLimiter::default()),
            login_slots: Semaphore::new(cores),
            screens,
            fanout,
            shutdown,
            prints: Prints::default(),
            hooks: crate::hooks::Hooks::none(),
        }
    }

    /// The same application with the site's webhook delivery running.
    pub fn with_hooks(mut self, hooks: crate::hooks::Hooks) -> App {
        self.hooks = hooks;
        self
    }

    // -------------------------------------------------------- who calls

    /// Resolves a bearer token: a device token or a login token that has
    /// not expired.
    pub async fn resolve(&self, token: &str) -> Option<Principal> {
        if token.is_empty() || token.len() > 256 {
            return None;
        }
        if let Some(p) = auth::device_for_token(&self.config, token) {
            return Some(p);
        }
        let session = self.hub.session(&auth::sha256_hex(token)).await.ok()??;
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

    /// 403 unless an admin.
    pub fn require_admin(who: &Principal) -> Result<(), ApiError> {
        if who.is_admin() {
            return Ok(());
        }
        Err(ApiError::forbidden("Chỉ quản trị viên (admins only)"))
    }

    /// 403 unless a kiosk, staff or admin.
    pub fn may_issue(who: &Principal) -> Result<(), ApiError> {
        if who.may_issue() {
            return Ok(());
        }
        Err(ApiError::forbidden(
            "Chỉ ki-ốt và nhân viên được lấy số (only kiosks and staff issue tickets)",
        ))
    }

    /// 403 unless a user (staff or admin): who may act on counters at all.
    pub fn may_act(who: &Principal) -> Result<(), ApiError> {
        match who {
            Principal::User { .. } => Ok(()),
            _ => Err(not_your_counter()),
        }
    }

    /// 403 unless staff of `counter` or an admin.
    pub fn may_act_on(who: &Principal, counter: &str) -> Result<(), ApiError> {
        if who.may_act_on(counter) {
            return Ok(());
        }
        Err(not_your_counter())
    }

    // -------------------------------------------------------- commands

    /// Logs a user in (lengths 400, rule 8's 429, 401; 503 when too many
    /// password checks wait).
    pub async fn login(&self, req: LoginRequest) -> Result<LoginResponse, ApiError> {
        if req.username.is_empty() || req.username.chars().count() > MAX_USERNAME {
            return Err(ApiError::bad_request("username must be 1 to 64 characters"));
        }
        if req.password.chars().count() > MAX_PASSWORD {
            return Err(ApiError::bad_request(
                "password must be at most 256 characters",
            ));
        }
        if self.limited(&req.username) {
            tracing::warn!(username = %req.username, "login refused: too many attempts");
            return Err(ApiError::too_many_attempts());
        }
        let user = self
            .config
            .users
            .iter()
            .find(|u| u.username == req.username)
            .cloned();
        // Unknown users are checked against a dummy hash: timing tells nothing.
        let hash = user
            .as_ref()
            .map_or_else(|| DUMMY_HASH.clone(), |u| u.password_hash.clone());
        let ok = self.check_password(&req, hash).await?;
        let Some(user) = user.filter(|_| ok) else {
            if let Ok(mut l) = self.limiter.lock() {
                l.record_failure(&req.username, Instant::now());
            }
            tracing::warn!(username = %req.username, "login failed");
            return Err(ApiError::new(
                axum::http::StatusCode::UNAUTHORIZED,
                "unauthorized",
                "Sai tên đăng nhập hoặc mật khẩu (wrong username or password)",
            ));
        };
        if let Ok(mut l) = self.limiter.lock() {
            l.record_success(&user.username);
        }
        self.open_session(&user).await
    }

    fn limited(&self, username: &str) -> bool {
        self.limiter
            .lock()
            .map(|mut l| l.locked(username, Instant::now()))
            .unwrap_or(false)
    }

    /// One argon2id check, when a slot is free (one per core).
    async fn check_password(&self, req: &LoginRequest, hash: String) -> Result<bool, ApiError> {
        let Ok(Ok(slot)) = tokio::time::timeout(LOGIN_QUEUE_WAIT, self.login_slots.acquire()).await
        else {
            tracing::warn!(username = %req.username, "login refused: too many logins at once");
            return Err(ApiError::unavailable(
                "Máy chủ đang bận, vui lòng thử lại (too many logins at once, try again)",
            ));
        };
        let password = req.password.clone();
        let ok = tokio::task::spawn_blocking(move || auth::verify_password(&password, &hash))
            .await
            .unwrap_or(false);
        drop(slot);
        Ok(ok)
    }

    async fn open_session(&self, user: &crate::config::User) -> Result<LoginResponse, ApiError> {
        let token = auth::new_token();
        let expires = chrono::Utc::now() + auth::LOGIN_TTL;
        let session = Session {
            username: user.username.clone(),
            expires_at: expires.timestamp_millis(),
        };
        self.hub
            .put_session(auth::sha256_hex(&token), session)
            .await?;
        tracing::info!(username = %user.username, role = user.role.as_str(), "login");
        let counters = match user.role {
            UserRole::Admin => self.config.counters.iter().map(|c| c.id.clone()).collect(),
            UserRole::Staff => user.counters.clone(),
        };
        Ok(LoginResponse {
            token,
            role: user.role.as_str().into(),
            expires_at: expires
                .with_timezone(&self.config.site.timezone)
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, false),
            counters,
        })
    }

    /// Issues a ticket: role 403, then 400 (request id, priority,
    /// identity), 404 (service), the kiosk's buttons 403, then the hub
    /// (rule 75's 409s for a kiosk's or integration's walk-in, rule 24's).
    pub async fn issue(&self, who: &Principal, req: IssueRequest) -> Result<Issued, ApiError> {
        Self::may_issue(who)?;
        self.check_issue(who, &req).await?;
        let print_at = match &req.print_at {
            Some(kiosk) => Some(self.print_at(who, kiosk, &req.request_id).await?),
            None => None,
        };
        let request_id = req.request_id.clone();
        let alerts = self.check_issue_notify(who, req.notify.as_ref())?;
        let cmd = Command::Issue {
            scope: who.scope(),
            request_id: req.request_id,
            service: req.service,
            priority: req.priority,
            ticket_id: auth::new_ticket_id(),
            identity: req.identity,
            limited: who.limited(),
            external_ref: req.external_ref,
            fresh: Fresh(auth::random_bytes()),
        };
        let (ticket, created) = match self.hub.command(cmd).await? {
            Outcome::Ticket(t) => (*t, true),
            Outcome::Replayed(t) => (*t, false),
            _ => return Err(ApiError::unavailable("no ticket was made")),
        };
        let print_id = match print_at {
            Some(at) => Some(self.print_new(who, at, &request_id, &ticket).await),
            None => None,
        };
        self.issue_notify(&ticket, created, alerts).await?;
        Ok(Issued {
            ticket: Self::ticket_view(Some(who), ticket),
            created,
            print_id,
        })
    }

    /// 400 for a priority class the site does not list.
    fn check_class(&self, priority: Option<&str>) -> Result<(), ApiError> {
        if let Some(p) = priority
            && !self.config.priority.classes.iter().any(|c| c == p)
        {
            return Err(ApiError::bad_request(format!(
                "Không có diện ưu tiên \"{p}\" (unknown priority class)"
            )));
        }
        Ok(())
    }

    /// An issue request's fields, in contract order after who-checks: 400, 404, 403.
    async fn check_issue(&self, who: &Principal, req: &IssueRequest) -> Result<(), ApiError> {
        if !valid_request_id(&req.request_id) {
            return Err(bad_request_id());
        }
        self.check_class(req.priority.as_deref())?;
        self.check_person(req.identity.as_ref()).await?;
        appointments::check_external_ref(req.external_ref.as_deref())?;
        check_print_at(req.print_at.as_deref())?;
        if let Some(n) = &req.notify {
            self.notify_fields(n)?;
        }
        if who.is_kiosk()
            && (req.external_ref.is_some() || req.print_at.is_some() || req.notify.is_some())
        {
            return Err(ApiError::forbidden(
                "Ki-ốt không gửi external_ref, print_at hay notify (a kiosk may not send external_ref, print_at or notify)",
            ));
        }
        if self.config.service(&req.service).is_none() {
            return Err(Rejection::UnknownService.into());
        }
        if !who.may_issue_for(&req.service) {
            return Err(ApiError::forbidden(
                "Ki-ốt này không có nút cho dịch vụ đó (this kiosk has no button for that service)",
            ));
        }
        Ok(())
    }

    /// A counter action by staff of it or an admin (404 unknown counter, 409s).
    pub async fn counter(
        &self,
        who: &Principal,
        counter: &str,
        action: CounterAction,
    ) -> Result<Outcome, ApiError> {
        Self::may_act_on(who, counter)?;
        let cmd = counter_command(counter.to_string(), who.name(), action)?;
        Ok(self.hub.command(cmd).await?)
    }

    /// A rating from whoever holds the ticket's id.
    pub async fn feedback(&self, ticket: String, req: FeedbackRequest) -> Result<(), ApiError> {
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
        let cmd = Command::Feedback {
            ticket,
            rating: req.rating,
            comment: req.comment,
        };
        self.hub.command(cmd).await?;
        Ok(())
    }

    // -------------------------------------------------------- queries

    pub async fn ticket(&self, id: &str) -> Result<Ticket, ApiError> {
        self.hub
            .ticket(id)
            .await?
            .ok_or_else(|| Rejection::UnknownTicket.into())
    }

    /// `GET /tickets/{id}` in the caller's view (rule 87).
    pub async fn ticket_as(&self, who: Option<&Principal>, id: &str) -> Result<Ticket, ApiError> {
        Ok(Self::ticket_view(who, self.ticket(id).await?))
    }

    /// `GET /tickets?external_ref=R&day=D` (rule 87): integrations and
    /// admins (403), R required and valid and `day` a date (400); the day's
    /// tickets with exactly that reference, in order of issue, an
    /// integration's only of its services. Past days' tickets are not
    /// indexed by reference: a past day answers an empty list.
    pub async fn tickets_by_ref(
        &self,
        who: &Principal,
        q: TicketQuery,
    ) -> Result<TicketList, ApiError> {
        if !(who.is_integration() || who.is_admin()) {
            return Err(ApiError::forbidden(
                "Chỉ hệ thống tích hợp và quản trị viên tra cứu theo external_ref (integrations and admins only)",
            ));
        }
        let Some(r) = q.external_ref else {
            return Err(ApiError::bad_request(
                "Thiếu external_ref (external_ref is required)",
            ));
        };
        appointments::check_external_ref(Some(&r))?;
        let day = match q.day.as_deref() {
            Some(d) => Some(
                chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d").map_err(|_| {
                    ApiError::bad_request("day phải có dạng YYYY-MM-DD (day must be YYYY-MM-DD)")
                })?,
            ),
            None => None,
        };
        let today = self.hub.site().await.day;
        if day.is_some_and(|d| d.to_string() != today) {
            return Ok(TicketList { tickets: vec![] });
        }
        let tickets = self
            .hub
            .tickets_by_ref(&r)
            .await
            .into_iter()
            .filter(|(service, _)| who.may_issue_for(service))
            .map(|(_, t)| t)
            .collect();
        Ok(TicketList { tickets })
    }

    pub async fn site(&self) -> SiteInfo {
        self.hub.site().await
    }

    /// The daily report of `day` (YYYY-MM-DD, default today).
    pub async fn report(&self, day: Option<String>) -> Result<DailyReport, ApiError> {
        if let Some(d) = &day {
            chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d")
                .map_err(|_| ApiError::bad_request("day must be YYYY-MM-DD"))?;
        }
        Ok(self.hub.report(day).await?)
    }

    /// The visits report of `day` (rule 58; YYYY-MM-DD, default today).
    pub async fn visits_report(&self, day: Option<String>) -> Result<VisitsReport, ApiError> {
        if let Some(d) = &day {
            chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d")
                .map_err(|_| ApiError::bad_request("day must be YYYY-MM-DD"))?;
        }
        Ok(self.hub.visits_report(day).await?)
    }

    pub async fn devices(&self) -> DevicesResponse {
        DevicesResponse {
            devices: self.hub.devices().await,
        }
    }

    /// The `welcome` of a websocket connection for `who`, with each
    /// service's capacity now (rule 74).
    pub async fn welcome(&self, who: &Principal) -> ServerMessage {
        let cfg = &self.config;
        let services: Vec<&str> = match who {
            Principal::Device {
                role: DeviceRole::Kiosk,
                services,
                ..
            } => services.iter().map(String::as_str).collect(),
            Principal::Device {
                role: DeviceRole::Integration,
                services,
                ..
            } if !services.is_empty() => services.iter().map(String::as_str).collect(),
            _ => cfg.services.iter().map(|s| s.id.as_str()).collect(),
        };
        let capacities = self.hub.capacities().await;
        let capacity = |id: &str| {
            capacities
                .iter()
                .find(|(s, _)| s == id)
                .map(|(_, c)| c.clone())
                .unwrap_or_default()
        };
        ServerMessage::Welcome {
            role: who.role_str().into(),
            server_time: chrono::Utc::now()
                .with_timezone(&cfg.site.timezone)
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, false),
            site: WelcomeSite {
                name: cfg.site.name.clone(),
                public_url: cfg.site.public_url.clone(),
            },
            services: services
                .into_iter()
                .filter_map(|id| cfg.service(id))
                .map(|s| WelcomeService {
                    id: s.id.clone(),
                    name: s.name.clone(),
                    prefix: s.prefix.clone(),
                    capacity: capacity(&s.id),
                })
                .collect(),
            name: who.name(),
        }
    }
}

/// Print jobs (rules 66, 67 and 88): who may ask, the checks in rule 88's
/// order, and the `print` frames for a kiosk's connections.
impl App {
    /// 403 unless staff, an admin or an integration (rule 88).
    pub fn may_print(who: &Principal) -> Result<(), ApiError> {
        match who {
            Principal::User { .. } => Ok(()),
            w if w.is_integration() => Ok(()),
            _ => Err(ApiError::forbidden(
                "Chỉ nhân viên, quản trị viên và hệ thống tích hợp được in lại vé (only staff, admins and integrations print tickets)",
            )),
        }
    }

    /// `POST /tickets/{id}/print`: 400, 404 `unknown_ticket`, 404
    /// `unknown_device`, a replay's same `print_id`, then 409
    /// `ticket_closed` and `kiosk_unavailable`; a new job is sent at once
    /// to the kiosk's connections.
    pub async fn print(
        &self,
        who: &Principal,
        ticket: &str,
        req: PrintRequest,
    ) -> Result<Accepted, ApiError> {
        Self::may_print(who)?;
        if req.kiosk.chars().count() > MAX_KIOSK {
            return Err(ApiError::bad_request(
                "kiosk phải tối đa 64 ký tự (kiosk must be at most 64 characters)",
            ));
        }
        if !valid_request_id(&req.request_id) {
            return Err(ApiError::bad_request(
                "request_id must be 1 to 64 characters of A-Z, a-z, 0-9, _ and -",
            ));
        }
        let ticket = self.ticket(ticket).await?;
        self.known_kiosk(&req.kiosk)?;
        let today = self.hub.site().await.day;
        let closed = matches!(
            ticket.status,
            TicketStatus::Done | TicketStatus::NoShow | TicketStatus::Cancelled
        ) || ticket.day != today;
        let available = self.kiosk_available(&req.kiosk).await;
        let order = PrintOrder {
            scope: who.scope(),
            request_id: req.request_id,
            ticket: ticket.id.clone(),
            kiosk: req.kiosk.clone(),
            closed,
            available,
            reprint: true,
        };
        let print_id = format!("pr_{}", auth::random_b64(16));
        let accepted = self
            .prints
            .request(order, print_id, Instant::now())
            .map_err(refused)?;
        if accepted.created {
            tracing::info!(print_id = %accepted.print_id, ticket = %ticket.id, number = %ticket.number, kiosk = %req.kiosk, by = ?who.name(), "print job");
            self.send_job(&accepted.print_id, &req.kiosk, ticket, true)
                .await;
        }
        Ok(accepted)
    }

    /// 404 `unknown_device` unless `kiosk` is a kiosk device (rule 88).
    fn known_kiosk(&self, kiosk: &str) -> Result<(), ApiError> {
        let is_kiosk = self
            .config
            .devices
            .iter()
            .any(|d| d.id == kiosk && d.role == DeviceRole::Kiosk);
        if is_kiosk {
            return Ok(());
        }
        Err(ApiError::new(
            axum::http::StatusCode::NOT_FOUND,
            "unknown_device",
            format!("Không có ki-ốt hay máy in \"{kiosk}\" (no kiosk or desk printer of that id)"),
        ))
    }

    /// The kiosk is connected and its printer reports `ok` or `paper_low`.
    async fn kiosk_available(&self, kiosk: &str) -> bool {
        self.hub.devices().await.iter().any(|d| {
            d.id == kiosk
                && d.connected
                && matches!(d.printer, Some(PrinterStatus::Ok | PrinterStatus::PaperLow))
        })
    }

    /// A `print` job to every open connection of `kiosk`.
    async fn send_job(&self, print_id: &str, kiosk: &str, ticket: Ticket, reprint: bool) {
        let frame = crate::frame::text(&self.print_message(print_id, ticket, reprint).await);
        for tx in self.prints.connections(kiosk) {
            let frame = frame.clone();
            tokio::spawn(async move { tx.send(frame).await });
        }
    }

    /// `print_at` of an issue or a check-in (rule 88), before the ticket is
    /// made: 404 `unknown_device`, then, unless this `request_id` made a job
    /// before (a replay), 409 `kiosk_unavailable`: nothing is issued.
    pub(crate) async fn print_at(
        &self,
        who: &Principal,
        kiosk: &str,
        request_id: &str,
    ) -> Result<PrintAt, ApiError> {
        self.known_kiosk(kiosk)?;
        let replay = self.prints.made_by(&who.scope(), &issued_key(request_id));
        if replay.is_none() && !self.kiosk_available(kiosk).await {
            return Err(refused(Refusal::KioskUnavailable));
        }
        Ok(PrintAt {
            kiosk: kiosk.to_string(),
            replay,
        })
    }

    /// The print job of a ticket just issued or checked in with `print_at`:
    /// the same `print_id` for a replay of its `request_id`, else a new job
    /// sent at once (printed as §7's ticket, not as a reprint).
    pub(crate) async fn print_new(
        &self,
        who: &Principal,
        at: PrintAt,
        request_id: &str,
        ticket: &Ticket,
    ) -> String {
        if let Some(id) = at.replay {
            return id;
        }
        let order = PrintOrder {
            scope: who.scope(),
            request_id: issued_key(request_id),
            ticket: ticket.id.clone(),
            kiosk: at.kiosk.clone(),
            closed: false,
            available: true,
            reprint: false,
        };
        let print_id = format!("pr_{}", auth::random_b64(16));
        match self.prints.request(order, print_id, Instant::now()) {
            Ok(accepted) => {
                if accepted.created {
                    tracing::info!(print_id = %accepted.print_id, ticket = %ticket.id, number = %ticket.number, kiosk = %at.kiosk, by = ?who.name(), "print job of a new ticket");
                    self.send_job(&accepted.print_id, &at.kiosk, ticket.clone(), false)
                        .await;
                }
                accepted.print_id
            }
            // Two answers of one request at once: the other made the job.
            Err(_) => self
                .prints
                .made_by(&who.scope(), &issued_key(request_id))
                .unwrap_or_default(),
        }
    }

    /// After a kiosk's `hello`: its connection gets new jobs from now on,
    /// and every job it has not answered (younger than 10 minutes) again,
    /// with the ticket as it is now. Returns the handle for `Prints::detach`.
    pub fn attach_printer(
        self: &Arc<Self>,
        kiosk: &str,
        tx: mpsc::Sender<axum::extract::ws::Utf8Bytes>,
    ) -> u64 {
        let handle = self.prints.attach(kiosk, tx.clone());
        let pending = self.prints.pending(kiosk, Instant::now());
        if !pending.is_empty() {
            let app = self.clone();
            tokio::spawn(async move {
                for (print_id, ticket) in pending {
                    let Ok(ticket) = app.ticket(&ticket).await else {
                        continue;
                    };
                    tracing::info!(%print_id, number = %ticket.number, "print job sent again");
                    let reprint = app.prints.reprint(&print_id);
                    let frame =
                        crate::frame::text(&app.print_message(&print_id, ticket, reprint).await);
                    if tx.send(frame).await.is_err() {
                        return;
                    }
                }
            });
        }
        handle
    }

    /// A kiosk's `printed` answer.
    pub fn printed(&self, kiosk: &str, print_id: &str, ok: bool) {
        match self.prints.answered(kiosk, print_id, ok) {
            Answer::Recorded if ok => tracing::info!(kiosk, print_id, "print job printed"),
            Answer::Recorded => {
                tracing::warn!(
                    kiosk,
                    print_id,
                    "print job answered: the kiosk could not print it"
                )
            }
            Answer::Again => tracing::debug!(kiosk, print_id, "print job answered again"),
            Answer::Unknown => {
                tracing::debug!(kiosk, print_id, "answer to no print job of this kiosk")
            }
        }
    }

    /// A `print` job: the ticket as kiosks see it (rule 87), with its
    /// booking's slot for a check-in (rule 78's `Hẹn`); `reprint` false for
    /// a new ticket's `print_at`.
    async fn print_message(&self, print_id: &str, ticket: Ticket, reprint: bool) -> ServerMessage {
        let cfg = &self.config;
        let slot_at = match &ticket.appointment {
            Some(a) => self.hub.appointment(a).await.map(|(a, _)| a.slot_at),
            None => None,
        };
        let ticket = crate::frame::public_ticket(ticket);
        ServerMessage::Print {
            print_id: print_id.to_string(),
            service_name: cfg.service(&ticket.service).map(|s| s.name.clone()),
            at: Some(
                chrono::Utc::now()
                    .with_timezone(&cfg.site.timezone)
                    .to_rfc3339_opts(chrono::SecondsFormat::Secs, false),
            ),
            ticket,
            slot_at,
            reprint,
        }
    }
}

/// The key under which an issue's or check-in's `print_at` job is kept
/// with its caller's `request_id`: apart from `/print`'s own request ids,
/// which cannot hold a `:`.
fn issued_key(request_id: &str) -> String {
    format!("issued:{request_id}")
}

/// `print_at`: a kiosk id of at most 64 characters (rule 88).
pub(crate) fn check_print_at(kiosk: Option<&str>) -> Result<(), ApiError> {
    match kiosk {
        Some(k) if k.is_empty() || k.chars().count() > MAX_KIOSK => Err(ApiError::bad_request(
            "print_at phải từ 1 đến 64 ký tự (print_at must be 1 to 64 characters)",
        )),
        _ => Ok(()),
    }
}

fn bad_request_id() -> ApiError {
    ApiError::bad_request("request_id must be 1 to 64 characters of A-Z, a-z, 0-9, _ and -")
}

fn refused(r: Refusal) -> ApiError {
    use axum::http::StatusCode;
    match r {
        Refusal::RequestIdReused => ApiError::new(
            StatusCode::CONFLICT,
            "request_id_reused",
            "request_id này đã dùng cho vé hoặc ki-ốt khác (this request_id was used for another ticket or kiosk)",
        ),
        Refusal::TicketClosed => ApiError::new(
            StatusCode::CONFLICT,
            "ticket_closed",
            "Vé đã kết thúc hoặc thuộc ngày trước, không in lại được (the ticket is done, no-show, cancelled or of a past day)",
        ),
        Refusal::KioskUnavailable => ApiError::new(
            StatusCode::CONFLICT,
            "kiosk_unavailable",
            "Ki-ốt không kết nối hoặc máy in không sẵn sàng (the kiosk is not connected or its printer cannot print)",
        ),
    }
}

/// The engine's command for a counter action, after the 400s of its body
/// that the engine does not check (rule 60).
fn counter_command(
    counter: String,
    by: Option<String>,
    action: CounterAction,
) -> Result<Command, ApiError> {
    Ok(match action {
        CounterAction::Next => Command::Next { counter, by },
        CounterAction::Recall => Command::Recall { counter, by },
        CounterAction::Done => Command::Done { counter, by },
        CounterAction::NoShow => Command::NoShow { counter, by },
        CounterAction::Open => Command::Open { counter, by },
        CounterAction::Close => Command::Close { counter, by },
        CounterAction::Transfer(r) => Command::Transfer {
            counter,
            by,
            service: r.service,
            front: r.front,
        },
        CounterAction::Send(r) => Command::Send {
            counter,
            by,
            stops: r
                .stops
                .into_iter()
                .map(|s| StopReq {
                    service: s.service,
                    counter: s.counter,
                    stage: s.stage,
                })
                .collect(),
            return_here: r.return_here.unwrap_or(false),
            ticket: r.ticket,
        },
        CounterAction::Call(r) => Command::Call {
            counter,
            by,
            ticket: named(r.ticket, r.number)?.ok_or_else(one_of)?,
        },
        CounterAction::Hold(r) => Command::Hold {
            counter,
            by,
            reason: reason(r.reason)?,
            ticket: r.ticket,
        },
        CounterAction::Requeue(r) => Command::Requeue {
            counter,
            by,
            ticket: named(r.ticket, r.number)?.ok_or_else(one_of)?,
            front: r.front.unwrap_or(true),
        },
        CounterAction::Cancel(r) => Command::Cancel {
            counter,
            by,
            reason: reason(r.reason)?,
            ticket: named(r.ticket, r.number)?,
        },
    })
}

/// A ticket named by at most one of `ticket` and `number` (rule 60).
fn named(ticket: Option<String>, number: Option<String>) -> Result<Option<Named>, ApiError> {
    match (ticket, number) {
        (Some(_), Some(_)) => Err(one_of()),
        (Some(id), None) => Ok(Some(Named::Id(id))),
        (None, Some(n)) if n.is_empty() || n.chars().count() > MAX_NUMBER => {
            Err(ApiError::bad_request(
                "number phải từ 1 đến 16 ký tự (number must be 1 to 16 characters)",
            ))
        }
        (None, Some(n)) => Ok(Some(Named::Number(n))),
        (None, None) => Ok(None),
    }
}

fn one_of() -> ApiError {
    ApiError::bad_request(
        "Cần đúng một trong ticket hoặc number (give exactly one of ticket and number)",
    )
}

/// A hold's or cancel's reason: 1–200 characters (rule 60).
fn reason(r: String) -> Result<String, ApiError> {
    let n = r.trim().chars().count();
    if n == 0 || r.chars().count() > MAX_REASON {
        return Err(ApiError::bad_request(
            "Lý do phải từ 1 đến 200 ký tự (reason must be 1 to 200 characters)",
        ));
    }
    Ok(r)
}

fn not_your_counter() -> ApiError {
    ApiError::forbidden("Bạn không phụ trách quầy này (you are not staff of this counter)")
}

static DUMMY_HASH: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| auth::hash_password("luot-dummy-password"));

#[cfg(test)]
mod tests;
