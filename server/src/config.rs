//! Site configuration: `site.toml` (contract §1) parsed into typed structs and
//! validated once at start-up.
//!
//! This module owns every rule about what a configuration may say, and the
//! demo site. Errors name the file, the line and the field. It never touches
//! the store or the network.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use chrono::NaiveTime;
use chrono_tz::Tz;
use serde::Deserialize;
use toml::Spanned;

/// Priority classes of Vietnam's 2023 Law on Medical Examination and Treatment.
pub const DEFAULT_PRIORITY_CLASSES: [&str; 6] = [
    "emergency",
    "child_under_6",
    "pregnant",
    "severe_disability",
    "age_75_plus",
    "merited_person",
];

#[derive(Clone, Debug)]
pub struct SiteConfig {
    pub site: Site,
    pub server: Server,
    pub services: Vec<Service>,
    pub counters: Vec<Counter>,
    pub devices: Vec<Device>,
    pub users: Vec<User>,
    pub priority: Priority,
}

#[derive(Clone, Debug)]
pub struct Site {
    pub name: String,
    pub timezone: Tz,
    pub day_starts_at: NaiveTime,
    pub public_url: String,
}

#[derive(Clone, Debug)]
pub struct Server {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub public_board: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Service {
    pub id: String,
    pub name: String,
    pub prefix: String,
    pub digits: u8,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Counter {
    pub id: String,
    pub name: String,
    pub services: Vec<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceRole {
    Kiosk,
    Display,
}

impl DeviceRole {
    pub fn as_str(self) -> &'static str {
        match self {
            DeviceRole::Kiosk => "kiosk",
            DeviceRole::Display => "display",
        }
    }
}

#[derive(Clone, Debug)]
pub struct Device {
    pub id: String,
    pub role: DeviceRole,
    pub token_sha256: String,
    pub services: Vec<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UserRole {
    Staff,
    Admin,
}

impl UserRole {
    pub fn as_str(self) -> &'static str {
        match self {
            UserRole::Staff => "staff",
            UserRole::Admin => "admin",
        }
    }
}

#[derive(Clone, Debug)]
pub struct User {
    pub username: String,
    pub role: UserRole,
    pub password_hash: String,
    pub counters: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Priority {
    pub ratio: u32,
    pub classes: Vec<String>,
}

/// A configuration that cannot be used, with where and why.
#[derive(Debug, thiserror::Error)]
#[error("{file}:{line}: {field}: {message}")]
pub struct ConfigError {
    pub file: String,
    pub line: usize,
    pub field: String,
    pub message: String,
}

// ------------------------------------------------------------------ raw TOML

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    site: Spanned<RawSite>,
    #[serde(default)]
    server: Option<Spanned<RawServer>>,
    #[serde(default)]
    services: Vec<RawService>,
    #[serde(default)]
    counters: Vec<RawCounter>,
    #[serde(default)]
    devices: Vec<RawDevice>,
    #[serde(default)]
    users: Vec<RawUser>,
    #[serde(default)]
    priority: Option<RawPriority>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSite {
    name: Spanned<String>,
    #[serde(default)]
    timezone: Option<Spanned<String>>,
    #[serde(default)]
    day_starts_at: Option<Spanned<String>>,
    #[serde(default)]
    public_url: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawServer {
    #[serde(default)]
    listen: Option<Spanned<String>>,
    #[serde(default)]
    data_dir: Option<Spanned<String>>,
    #[serde(default)]
    public_board: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawService {
    id: Spanned<String>,
    name: Spanned<String>,
    prefix: Spanned<String>,
    #[serde(default)]
    digits: Option<Spanned<i64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCounter {
    id: Spanned<String>,
    name: Spanned<String>,
    services: Spanned<Vec<Spanned<String>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDevice {
    id: Spanned<String>,
    role: Spanned<String>,
    token_sha256: Spanned<String>,
    #[serde(default)]
    services: Option<Spanned<Vec<Spanned<String>>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUser {
    username: Spanned<String>,
    role: Spanned<String>,
    password_hash: Spanned<String>,
    #[serde(default)]
    counters: Option<Spanned<Vec<Spanned<String>>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPriority {
    #[serde(default)]
    ratio: Option<Spanned<i64>>,
    #[serde(default)]
    classes: Option<Spanned<Vec<Spanned<String>>>>,
}

struct Ctx<'a> {
    file: &'a str,
    text: &'a str,
}

impl Ctx<'_> {
    fn line_of(&self, offset: usize) -> usize {
        let end = offset.min(self.text.len());
        self.text.as_bytes()[..end]
            .iter()
            .filter(|b| **b == b'\n')
            .count()
            + 1
    }
    fn err(&self, span: std::ops::Range<usize>, field: &str, message: String) -> ConfigError {
        ConfigError {
            file: self.file.to_string(),
            line: self.line_of(span.start),
            field: field.to_string(),
            message,
        }
    }
}

fn valid_id(s: &str) -> bool {
    (1..=32).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

fn valid_class(s: &str) -> bool {
    (1..=32).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// Tracks first occurrences to report duplicates at their second one (rule 4).
struct Seen<'a> {
    what: &'static str,
    first: HashMap<&'a str, usize>,
}

impl<'a> Seen<'a> {
    fn new(what: &'static str) -> Self {
        Seen {
            what,
            first: HashMap::new(),
        }
    }
    fn check(
        &mut self,
        ctx: &Ctx,
        value: &'a Spanned<String>,
        field: &str,
    ) -> Result<(), ConfigError> {
        let line = ctx.line_of(value.span().start);
        if let Some(first) = self.first.get(value.get_ref().as_str()) {
            return Err(ctx.err(
                value.span(),
                field,
                format!(
                    "duplicate {} \"{}\" (first used at line {first})",
                    self.what,
                    value.get_ref()
                ),
            ));
        }
        self.first.insert(value.get_ref().as_str(), line);
        Ok(())
    }
}

impl SiteConfig {
    /// Reads and validates a configuration file, then applies the
    /// `LUOT_LISTEN`, `LUOT_DATA_DIR` and `LUOT_PUBLIC_URL` overrides.
    pub fn load(path: &Path) -> Result<SiteConfig, ConfigError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: file.clone(),
            line: 0,
            field: "(file)".into(),
            message: format!("cannot read the configuration: {e}"),
        })?;
        let mut cfg = Self::parse(&file, &text)?;
        cfg.apply_env_overrides(&file)?;
        Ok(cfg)
    }

    /// Environment overrides, for tests and containers.
    pub fn apply_env_overrides(&mut self, file: &str) -> Result<(), ConfigError> {
        if let Ok(listen) = std::env::var("LUOT_LISTEN") {
            self.server.listen = listen.parse().map_err(|_| ConfigError {
                file: file.to_string(),
                line: 0,
                field: "LUOT_LISTEN".into(),
                message: format!("\"{listen}\" is not an address such as 127.0.0.1:8080"),
            })?;
        }
        if let Ok(dir) = std::env::var("LUOT_DATA_DIR") {
            self.server.data_dir = PathBuf::from(dir);
        }
        if let Ok(url) = std::env::var("LUOT_PUBLIC_URL") {
            self.site.public_url = url.trim_end_matches('/').to_string();
        }
        Ok(())
    }

    /// Parses and validates configuration text; `file` is only used in errors.
    pub fn parse(file: &str, text: &str) -> Result<SiteConfig, ConfigError> {
        let ctx = Ctx { file, text };
        let raw: Raw = toml::from_str(text).map_err(|e| {
            let line = e.span().map(|s| ctx.line_of(s.start)).unwrap_or(0);
            ConfigError {
                file: file.to_string(),
                line,
                field: "(syntax)".into(),
                message: e.message().to_string(),
            }
        })?;

        // [site]
        let rs = raw.site.get_ref();
        let name = rs.name.get_ref().trim().to_string();
        if name.is_empty() {
            return Err(ctx.err(rs.name.span(), "site.name", "the site needs a name".into()));
        }
        let timezone: Tz = match &rs.timezone {
            None => chrono_tz::Asia::Ho_Chi_Minh,
            Some(tz) => tz.get_ref().parse().map_err(|_| {
                ctx.err(
                    tz.span(),
                    "site.timezone",
                    format!(
                        "\"{}\" is not a time zone of the tz database (for example Asia/Ho_Chi_Minh)",
                        tz.get_ref()
                    ),
                )
            })?,
        };
        let day_starts_at = match &rs.day_starts_at {
            None => NaiveTime::from_hms_opt(5, 0, 0).unwrap_or_default(),
            Some(t) => NaiveTime::parse_from_str(t.get_ref(), "%H:%M").map_err(|_| {
                ctx.err(
                    t.span(),
                    "site.day_starts_at",
                    format!("\"{}\" is not a time of day like \"05:00\"", t.get_ref()),
                )
            })?,
        };

        // [server]
        let mut listen: SocketAddr = SocketAddr::from(([0, 0, 0, 0], 8080));
        let mut data_dir = PathBuf::from("/var/lib/luot");
        let mut public_board = false;
        if let Some(srv) = &raw.server {
            let srv = srv.get_ref();
            if let Some(l) = &srv.listen {
                listen = l.get_ref().parse().map_err(|_| {
                    ctx.err(
                        l.span(),
                        "server.listen",
                        format!("\"{}\" is not an address such as 0.0.0.0:8080", l.get_ref()),
                    )
                })?;
            }
            if let Some(d) = &srv.data_dir {
                if d.get_ref().is_empty() {
                    return Err(ctx.err(
                        d.span(),
                        "server.data_dir",
                        "the data directory cannot be empty".into(),
                    ));
                }
                data_dir = PathBuf::from(d.get_ref());
            }
            public_board = srv.public_board.unwrap_or(false);
        }
        let public_url = match &rs.public_url {
            Some(u) => {
                let s = u.get_ref().trim_end_matches('/').to_string();
                if !(s.starts_with("http://") || s.starts_with("https://")) {
                    return Err(ctx.err(
                        u.span(),
                        "site.public_url",
                        format!("\"{}\" must start with http:// or https://", u.get_ref()),
                    ));
                }
                s
            }
            None => format!("http://{listen}"),
        };

        // [priority]
        let mut priority = Priority {
            ratio: 3,
            classes: DEFAULT_PRIORITY_CLASSES
                .iter()
                .map(|s| s.to_string())
                .collect(),
        };
        if let Some(p) = &raw.priority {
            if let Some(r) = &p.ratio {
                if !(1..=100).contains(r.get_ref()) {
                    return Err(ctx.err(
                        r.span(),
                        "priority.ratio",
                        "the ratio must be between 1 and 100 (priority tickets called before one normal ticket)".into(),
                    ));
                }
                priority.ratio = *r.get_ref() as u32;
            }
            if let Some(classes) = &p.classes {
                let mut seen = Seen::new("priority class");
                priority.classes.clear();
                for c in classes.get_ref() {
                    if !valid_class(c.get_ref()) {
                        return Err(ctx.err(
                            c.span(),
                            "priority.classes",
                            format!(
                                "\"{}\" is not a class id (1-32 of a-z, 0-9, _)",
                                c.get_ref()
                            ),
                        ));
                    }
                    seen.check(&ctx, c, "priority.classes")?;
                    priority.classes.push(c.get_ref().clone());
                }
                if priority.classes.len() > 200 {
                    return Err(ctx.err(
                        classes.span(),
                        "priority.classes",
                        "at most 200 priority classes".into(),
                    ));
                }
            }
        }

        // [[services]]
        let mut services = Vec::new();
        let mut ids = Seen::new("service id");
        let mut prefixes = Seen::new("prefix");
        for s in &raw.services {
            if !valid_id(s.id.get_ref()) {
                return Err(ctx.err(
                    s.id.span(),
                    "services.id",
                    format!(
                        "\"{}\" is not a service id (1-32 of a-z, 0-9, -)",
                        s.id.get_ref()
                    ),
                ));
            }
            ids.check(&ctx, &s.id, "services.id")?;
            let p = s.prefix.get_ref();
            if p.len() > 3 || !p.bytes().all(|b| b.is_ascii_uppercase()) {
                return Err(ctx.err(
                    s.prefix.span(),
                    "services.prefix",
                    format!("\"{p}\" is not a prefix (0-3 uppercase letters A-Z)"),
                ));
            }
            prefixes.check(&ctx, &s.prefix, "services.prefix")?;
            if s.name.get_ref().trim().is_empty() {
                return Err(ctx.err(
                    s.name.span(),
                    "services.name",
                    "a service needs a name".into(),
                ));
            }
            let digits = match &s.digits {
                None => 3,
                Some(d) if (1..=6).contains(d.get_ref()) => *d.get_ref() as u8,
                Some(d) => {
                    return Err(ctx.err(
                        d.span(),
                        "services.digits",
                        "digits must be between 1 and 6".into(),
                    ));
                }
            };
            services.push(Service {
                id: s.id.get_ref().clone(),
                name: s.name.get_ref().trim().to_string(),
                prefix: p.clone(),
                digits,
            });
        }
        if services.is_empty() {
            return Err(ctx.err(
                0..0,
                "services",
                "the site needs at least one [[services]] entry".into(),
            ));
        }
        let known_service = |id: &str| services.iter().any(|s| s.id == id);

        // [[counters]]
        let mut counters = Vec::new();
        let mut cids = Seen::new("counter id");
        for c in &raw.counters {
            if !valid_id(c.id.get_ref()) {
                return Err(ctx.err(
                    c.id.span(),
                    "counters.id",
                    format!(
                        "\"{}\" is not a counter id (1-32 of a-z, 0-9, -)",
                        c.id.get_ref()
                    ),
                ));
            }
            cids.check(&ctx, &c.id, "counters.id")?;
            if c.name.get_ref().trim().is_empty() {
                return Err(ctx.err(
                    c.name.span(),
                    "counters.name",
                    "a counter needs a name".into(),
                ));
            }
            if c.services.get_ref().is_empty() {
                return Err(ctx.err(
                    c.services.span(),
                    "counters.services",
                    format!("counter \"{}\" serves no service", c.id.get_ref()),
                ));
            }
            let mut seen = Seen::new("service in this counter");
            for s in c.services.get_ref() {
                if !known_service(s.get_ref()) {
                    return Err(ctx.err(
                        s.span(),
                        "counters.services",
                        format!(
                            "counter \"{}\" names unknown service \"{}\"",
                            c.id.get_ref(),
                            s.get_ref()
                        ),
                    ));
                }
                seen.check(&ctx, s, "counters.services")?;
            }
            counters.push(Counter {
                id: c.id.get_ref().clone(),
                name: c.name.get_ref().trim().to_string(),
                services: c
                    .services
                    .get_ref()
                    .iter()
                    .map(|s| s.get_ref().clone())
                    .collect(),
            });
        }

        // [[devices]]
        let mut devices = Vec::new();
        let mut dids = Seen::new("device id");
        let mut tokens = Seen::new("token_sha256");
        for d in &raw.devices {
            if !valid_id(d.id.get_ref()) {
                return Err(ctx.err(
                    d.id.span(),
                    "devices.id",
                    format!(
                        "\"{}\" is not a device id (1-32 of a-z, 0-9, -)",
                        d.id.get_ref()
                    ),
                ));
            }
            dids.check(&ctx, &d.id, "devices.id")?;
            let role = match d.role.get_ref().as_str() {
                "kiosk" => DeviceRole::Kiosk,
                "display" => DeviceRole::Display,
                other => {
                    return Err(ctx.err(
                        d.role.span(),
                        "devices.role",
                        format!("\"{other}\" is not a device role (\"kiosk\" or \"display\")"),
                    ));
                }
            };
            let hash = d.token_sha256.get_ref();
            if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(ctx.err(
                    d.token_sha256.span(),
                    "devices.token_sha256",
                    format!(
                        "device \"{}\": not a sha256 in hex; make one with `luot-server token`",
                        d.id.get_ref()
                    ),
                ));
            }
            tokens.check(&ctx, &d.token_sha256, "devices.token_sha256")?;
            let mut dservices = Vec::new();
            if let Some(list) = &d.services {
                if role == DeviceRole::Display && !list.get_ref().is_empty() {
                    return Err(ctx.err(
                        list.span(),
                        "devices.services",
                        "only a kiosk has buttons for services".into(),
                    ));
                }
                let mut seen = Seen::new("service on this kiosk");
                for s in list.get_ref() {
                    if !known_service(s.get_ref()) {
                        return Err(ctx.err(
                            s.span(),
                            "devices.services",
                            format!(
                                "device \"{}\" names unknown service \"{}\"",
                                d.id.get_ref(),
                                s.get_ref()
                            ),
                        ));
                    }
                    seen.check(&ctx, s, "devices.services")?;
                    dservices.push(s.get_ref().clone());
                }
            }
            if role == DeviceRole::Kiosk && dservices.is_empty() {
                return Err(ctx.err(
                    d.id.span(),
                    "devices.services",
                    format!("kiosk \"{}\" has no services (its buttons)", d.id.get_ref()),
                ));
            }
            devices.push(Device {
                id: d.id.get_ref().clone(),
                role,
                token_sha256: hash.to_ascii_lowercase(),
                services: dservices,
            });
        }

        // [[users]]
        let mut users = Vec::new();
        let mut unames = Seen::new("username");
        for u in &raw.users {
            let name = u.username.get_ref();
            if name.is_empty()
                || name.len() > luot_protocol::MAX_USERNAME
                || name.chars().any(|c| c.is_whitespace() || c.is_control())
            {
                return Err(ctx.err(
                    u.username.span(),
                    "users.username",
                    format!("\"{name}\" is not a username (1-64 characters, no spaces)"),
                ));
            }
            unames.check(&ctx, &u.username, "users.username")?;
            let role = match u.role.get_ref().as_str() {
                "staff" => UserRole::Staff,
                "admin" => UserRole::Admin,
                other => {
                    return Err(ctx.err(
                        u.role.span(),
                        "users.role",
                        format!("\"{other}\" is not a user role (\"staff\" or \"admin\")"),
                    ));
                }
            };
            let hash = u.password_hash.get_ref();
            if !crate::auth::is_argon2id_hash(hash) {
                return Err(ctx.err(
                    u.password_hash.span(),
                    "users.password_hash",
                    format!(
                        "user \"{name}\": not an argon2id hash; make one with `luot-server hash-password`"
                    ),
                ));
            }
            let mut ucounters = Vec::new();
            if let Some(list) = &u.counters {
                let mut seen = Seen::new("counter of this user");
                for c in list.get_ref() {
                    if !counters.iter().any(|k| &k.id == c.get_ref()) {
                        return Err(ctx.err(
                            c.span(),
                            "users.counters",
                            format!("user \"{name}\" names unknown counter \"{}\"", c.get_ref()),
                        ));
                    }
                    seen.check(&ctx, c, "users.counters")?;
                    ucounters.push(c.get_ref().clone());
                }
            }
            users.push(User {
                username: name.clone(),
                role,
                password_hash: hash.clone(),
                counters: ucounters,
            });
        }

        Ok(SiteConfig {
            site: Site {
                name,
                timezone,
                day_starts_at,
                public_url,
            },
            server: Server {
                listen,
                data_dir,
                public_board,
            },
            services,
            counters,
            devices,
            users,
            priority,
        })
    }

    pub fn service(&self, id: &str) -> Option<&Service> {
        self.services.iter().find(|s| s.id == id)
    }

    pub fn counter(&self, id: &str) -> Option<&Counter> {
        self.counters.iter().find(|c| c.id == id)
    }
}

/// Secrets of the demo site, printed at start-up.
pub struct DemoSecrets {
    pub kiosk_token: String,
    pub display_token: String,
    pub staff: (String, String),
    pub admin: (String, String),
}

/// The demo site used when no configuration file is given (contract §1, rule 5).
pub fn demo_site() -> (SiteConfig, DemoSecrets) {
    let secrets = DemoSecrets {
        kiosk_token: "demo-kiosk-token".into(),
        display_token: "demo-display-token".into(),
        staff: ("nhanvien".into(), "demo-nhanvien".into()),
        admin: ("admin".into(), "demo-admin".into()),
    };
    let svc = |id: &str, name: &str, prefix: &str| Service {
        id: id.into(),
        name: name.into(),
        prefix: prefix.into(),
        digits: 3,
    };
    let ctr = |id: &str, name: &str, services: &[&str]| Counter {
        id: id.into(),
        name: name.into(),
        services: services.iter().map(|s| s.to_string()).collect(),
    };
    let cfg = SiteConfig {
        site: Site {
            name: "Bệnh viện Đa khoa Demo".into(),
            timezone: chrono_tz::Asia::Ho_Chi_Minh,
            day_starts_at: NaiveTime::from_hms_opt(5, 0, 0).unwrap_or_default(),
            public_url: "http://127.0.0.1:8080".into(),
        },
        server: Server {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from("./luot-data"),
            public_board: false,
        },
        services: vec![
            svc("kham-noi", "Khám Nội", "A"),
            svc("kham-ngoai", "Khám Ngoại", "B"),
            svc("xet-nghiem", "Xét nghiệm", "C"),
        ],
        counters: vec![
            ctr("quay-1", "Quầy 1", &["kham-noi"]),
            ctr("quay-2", "Quầy 2", &["kham-noi", "kham-ngoai"]),
            ctr("quay-3", "Quầy 3", &["kham-ngoai"]),
            ctr("quay-4", "Quầy 4", &["xet-nghiem"]),
        ],
        devices: vec![
            Device {
                id: "kiosk-sanh".into(),
                role: DeviceRole::Kiosk,
                token_sha256: crate::auth::sha256_hex(&secrets.kiosk_token),
                services: vec!["kham-noi".into(), "kham-ngoai".into(), "xet-nghiem".into()],
            },
            Device {
                id: "tv-sanh".into(),
                role: DeviceRole::Display,
                token_sha256: crate::auth::sha256_hex(&secrets.display_token),
                services: vec![],
            },
        ],
        users: vec![
            User {
                username: secrets.staff.0.clone(),
                role: UserRole::Staff,
                password_hash: crate::auth::hash_password(&secrets.staff.1),
                counters: vec!["quay-1".into(), "quay-2".into()],
            },
            User {
                username: secrets.admin.0.clone(),
                role: UserRole::Admin,
                password_hash: crate::auth::hash_password(&secrets.admin.1),
                counters: vec![],
            },
        ],
        priority: Priority {
            ratio: 3,
            classes: DEFAULT_PRIORITY_CLASSES
                .iter()
                .map(|s| s.to_string())
                .collect(),
        },
    };
    (cfg, secrets)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[site]
name = "Bệnh viện Demo"
timezone = "Asia/Ho_Chi_Minh"
day_starts_at = "05:00"
public_url = "http://192.168.1.10:8080/"

[server]
listen = "0.0.0.0:8080"
data_dir = "/var/lib/luot"

[[services]]
id = "kham-noi"
name = "Khám Nội"
prefix = "A"
digits = 3

[[services]]
id = "kham-ngoai"
name = "Khám Ngoại"
prefix = "B"

[[counters]]
id = "quay-1"
name = "Quầy 1"
services = ["kham-noi", "kham-ngoai"]
"#;

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(300))]

        /// Arbitrary text never panics the parser, and an error always names a file and field.
        #[test]
        fn arbitrary_text_is_an_error_not_a_panic(text in "\\PC{0,400}") {
            if let Err(e) = SiteConfig::parse("x.toml", &text) {
                proptest::prop_assert!(e.to_string().starts_with("x.toml:"));
                proptest::prop_assert!(!e.field.is_empty());
            }
        }

        /// Damaging a good file anywhere gives a clear error or a valid config.
        #[test]
        fn damaged_good_file(at in 0usize..600, junk in "[\\[\\]=\"a-z0-9 \n]{1,8}") {
            let mut text = GOOD.to_string();
            let at = at.min(text.len());
            if text.is_char_boundary(at) {
                text.insert_str(at, &junk);
                let _ = SiteConfig::parse("x.toml", &text);
            }
        }
    }

    #[test]
    fn good_config_loads_with_defaults() {
        let c = SiteConfig::parse("site.toml", GOOD).unwrap();
        assert_eq!(c.site.public_url, "http://192.168.1.10:8080");
        assert_eq!(c.services[1].digits, 3);
        assert_eq!(c.priority.ratio, 3);
        assert_eq!(c.priority.classes.len(), 6);
        assert!(!c.server.public_board);
    }

    fn err_of(text: &str) -> ConfigError {
        SiteConfig::parse("site.toml", text).unwrap_err()
    }

    #[test]
    fn duplicate_prefix_reported_at_second_line() {
        let text = GOOD.replace("prefix = \"B\"", "prefix = \"A\"");
        let e = err_of(&text);
        let line = text
            .lines()
            .enumerate()
            .filter(|(_, l)| l.contains("prefix = \"A\""))
            .nth(1)
            .unwrap()
            .0
            + 1;
        assert_eq!(e.line, line);
        assert_eq!(e.field, "services.prefix");
        assert!(
            e.to_string()
                .starts_with(&format!("site.toml:{line}: services.prefix"))
        );
    }

    #[test]
    fn unknown_service_in_counter_is_named() {
        let e = err_of(&GOOD.replace("\"kham-noi\", \"kham-ngoai\"]", "\"kham-noi\", \"rang\"]"));
        assert_eq!(e.field, "counters.services");
        assert!(e.message.contains("rang"), "{e}");
        assert_eq!(e.line, GOOD.lines().count());
    }

    #[test]
    fn duplicate_service_id() {
        let e = err_of(&GOOD.replace("id = \"kham-ngoai\"", "id = \"kham-noi\""));
        assert_eq!(e.field, "services.id");
        assert!(e.message.contains("duplicate"));
    }

    #[test]
    fn syntax_error_has_a_line() {
        let e = err_of("[site]\nname = \"x\"\n[[services]\n");
        assert_eq!(e.line, 3);
    }

    #[test]
    fn bad_timezone_and_time() {
        assert_eq!(
            err_of(&GOOD.replace("Asia/Ho_Chi_Minh", "Mars/Base")).field,
            "site.timezone"
        );
        assert_eq!(
            err_of(&GOOD.replace("\"05:00\"", "\"5h\"")).field,
            "site.day_starts_at"
        );
    }

    #[test]
    fn replace_placeholder_is_explained() {
        let text = format!(
            "{GOOD}\n[[devices]]\nid = \"k\"\nrole = \"kiosk\"\ntoken_sha256 = \"REPLACE\"\nservices = [\"kham-noi\"]\n"
        );
        let e = err_of(&text);
        assert_eq!(e.field, "devices.token_sha256");
        assert!(e.message.contains("luot-server token"));
    }

    #[test]
    fn unknown_field_is_rejected() {
        let e = err_of(&GOOD.replace("digits = 3", "digit = 3"));
        assert!(e.message.contains("digit"), "{e}");
    }

    #[test]
    fn shared_examples_parse_once_secrets_are_filled() {
        for name in ["benh-vien.toml", "mot-cua.toml"] {
            let path = Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../shared/examples")
                .join(name);
            let Ok(text) = std::fs::read_to_string(&path) else {
                continue;
            };
            let hash = crate::auth::hash_password("x");
            let text = text
                .replace(
                    "token_sha256 = \"REPLACE\"",
                    &format!("token_sha256 = \"{}\"", "ab".repeat(32)),
                )
                .replace("\"REPLACE\"", &format!("'{hash}'"));
            // Two devices would share the placeholder token: give each its own.
            let mut n = 0;
            let text: String = text
                .lines()
                .map(|l| {
                    if l.starts_with("token_sha256") {
                        n += 1;
                        format!("token_sha256 = \"{:064x}\"", n)
                    } else {
                        l.to_string()
                    }
                })
                .collect::<Vec<_>>()
                .join("\n");
            let c = SiteConfig::parse(name, &text).unwrap();
            assert!(c.services.len() >= 7);
        }
    }
}
