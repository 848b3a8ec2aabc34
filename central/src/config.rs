//! `central.toml` (contract §14): `[central]` (listen, TLS, time zone),
//! `[store]` (as §13: a libpq `url` without a password, `password_file`, else
//! env `LUOT_CENTRAL_PG_PASSWORD`), `[[sites]]` and `[[users]]`, parsed into
//! typed values and validated once. Every error names the file, the line and
//! the field (`luot_server::config::ConfigError`, the site's own error type).
//!
//! Owns what a central configuration may say. Never connects to anything and
//! never prints a password or a token.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::ops::Range;
use std::path::{Path, PathBuf};

use chrono_tz::Tz;
use luot_server::config::ConfigError;
use luot_server::secret::is_argon2id_hash;
use serde::Deserialize;
use toml::Spanned;

/// The environment variable that holds the database password when
/// `[store] password_file` is absent.
pub const PASSWORD_ENV: &str = "LUOT_CENTRAL_PG_PASSWORD";

/// A validated `central.toml`.
#[derive(Clone, Debug)]
pub struct CentralConfig {
    pub listen: SocketAddr,
    /// PEM certificate chain and key; both or neither (neither only on a
    /// loopback `listen`).
    pub tls: Option<Tls>,
    /// The zone of "today" in reports.
    pub timezone: Tz,
    pub store: Store,
    pub sites: Vec<SiteEntry>,
    pub users: Vec<UserEntry>,
}

#[derive(Clone, Debug)]
pub struct Tls {
    pub cert: PathBuf,
    pub key: PathBuf,
}

#[derive(Clone)]
pub struct Store {
    /// libpq key=value or URI, never with a password.
    pub url: String,
    pub password_file: Option<PathBuf>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("password_file", &self.password_file)
            .finish_non_exhaustive()
    }
}

impl Store {
    /// The password: `password_file`'s first line, else the environment,
    /// else none.
    pub fn password(&self) -> anyhow::Result<Option<String>> {
        if let Some(p) = &self.password_file {
            let text = std::fs::read_to_string(p).map_err(|e| {
                anyhow::anyhow!("cannot read store.password_file {}: {e}", p.display())
            })?;
            return Ok(Some(text.lines().next().unwrap_or("").to_string()));
        }
        Ok(std::env::var(PASSWORD_ENV).ok())
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SiteEntry {
    /// The site's `[site] id`.
    pub id: String,
    pub name: String,
    /// Lowercase hex sha256 of the site's token (`luot-central token`).
    pub token_sha256: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Admin,
    Viewer,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Viewer => "viewer",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "admin" => Some(Role::Admin),
            "viewer" => Some(Role::Viewer),
            _ => None,
        }
    }
}

#[derive(Clone, Debug)]
pub struct UserEntry {
    pub username: String,
    pub role: Role,
    pub password_hash: String,
    /// A viewer's sites; `None`: all (admins always see all).
    pub sites: Option<Vec<String>>,
}

impl UserEntry {
    /// Whether this user may see `site`'s reports and status.
    pub fn sees(&self, site: &str) -> bool {
        match (&self.role, &self.sites) {
            (Role::Admin, _) | (_, None) => true,
            (Role::Viewer, Some(list)) => list.iter().any(|s| s == site),
        }
    }
}

impl CentralConfig {
    /// Reads and validates `path`.
    pub fn load(path: &Path) -> Result<CentralConfig, ConfigError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: file.clone(),
            line: 0,
            field: "(file)".into(),
            message: format!("cannot read the configuration: {e}"),
        })?;
        Self::parse(&file, &text)
    }

    /// Parses and validates `text`; `file` names it in errors.
    pub fn parse(file: &str, text: &str) -> Result<CentralConfig, ConfigError> {
        let ctx = Ctx { file, text };
        let raw: Raw = toml::from_str(text).map_err(|e| ctx.syntax(&e))?;
        let c = raw.central.get_ref();
        let listen = ctx.parse_addr(&c.listen, "central.listen")?;
        let tls = match (&c.tls_cert, &c.tls_key) {
            (Some(cert), Some(key)) => Some(Tls {
                cert: ctx.path(cert, "central.tls_cert")?,
                key: ctx.path(key, "central.tls_key")?,
            }),
            (Some(cert), None) => {
                return Err(ctx.err(
                    cert.span(),
                    "central.tls_key",
                    "tls_cert needs tls_key (the PEM private key) beside it".into(),
                ));
            }
            (None, Some(key)) => {
                return Err(ctx.err(
                    key.span(),
                    "central.tls_cert",
                    "tls_key needs tls_cert (the PEM certificate chain) beside it".into(),
                ));
            }
            (None, None) => None,
        };
        if tls.is_none() && !is_loopback(listen.ip()) {
            return Err(ctx.err(
                c.listen.span(),
                "central.listen",
                format!(
                    "{listen} is not a loopback address: plain HTTP is only for 127.0.0.0/8 or ::1; \
                     set tls_cert and tls_key"
                ),
            ));
        }
        let timezone = match &c.timezone {
            None => chrono_tz::Asia::Ho_Chi_Minh,
            Some(tz) => tz.get_ref().parse().map_err(|_| {
                ctx.err(
                    tz.span(),
                    "central.timezone",
                    format!(
                        "\"{}\" is not a time zone of the tz database (for example Asia/Ho_Chi_Minh)",
                        tz.get_ref()
                    ),
                )
            })?,
        };
        let store = ctx.store(&raw.store)?;
        let sites = ctx.sites(&raw.sites)?;
        let users = ctx.users(&raw.users, &sites)?;
        Ok(CentralConfig {
            listen,
            tls,
            timezone,
            store,
            sites,
            users,
        })
    }

    pub fn site(&self, id: &str) -> Option<&SiteEntry> {
        self.sites.iter().find(|s| s.id == id)
    }

    pub fn user(&self, name: &str) -> Option<&UserEntry> {
        self.users.iter().find(|u| u.username == name)
    }
}

/// 127.0.0.0/8 or ::1 (rule 119).
pub fn is_loopback(ip: IpAddr) -> bool {
    ip.is_loopback()
}

// ------------------------------------------------------------------ raw

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    central: Spanned<RawCentral>,
    store: Spanned<RawStore>,
    #[serde(default)]
    sites: Vec<RawSite>,
    #[serde(default)]
    users: Vec<RawUser>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCentral {
    listen: Spanned<String>,
    #[serde(default)]
    tls_cert: Option<Spanned<String>>,
    #[serde(default)]
    tls_key: Option<Spanned<String>>,
    #[serde(default)]
    timezone: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStore {
    url: Spanned<String>,
    #[serde(default)]
    password_file: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSite {
    id: Spanned<String>,
    name: Spanned<String>,
    token_sha256: Spanned<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUser {
    username: Spanned<String>,
    role: Spanned<String>,
    password_hash: Spanned<String>,
    #[serde(default)]
    sites: Option<Spanned<Vec<Spanned<String>>>>,
}

// ------------------------------------------------------------------ checks

struct Ctx<'a> {
    file: &'a str,
    text: &'a str,
}

/// `[a-z0-9-]{1,32}`, a site id as `[site] id` allows.
pub fn valid_site_id(s: &str) -> bool {
    (1..=32).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// Whether a libpq URL holds a password (§13, rule 100).
pub fn url_has_password(url: &str) -> bool {
    let lower = url.to_ascii_lowercase();
    if lower.contains("password=") {
        return true;
    }
    // URI form: scheme://user:pw@host
    if let Some(rest) = lower
        .strip_prefix("postgresql://")
        .or_else(|| lower.strip_prefix("postgres://"))
    {
        let authority = rest.split(['/', '?']).next().unwrap_or("");
        if let Some((userinfo, _)) = authority.rsplit_once('@') {
            return userinfo.contains(':');
        }
    }
    false
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

    fn err(&self, span: Range<usize>, field: &str, message: String) -> ConfigError {
        ConfigError {
            file: self.file.to_string(),
            line: self.line_of(span.start),
            field: field.to_string(),
            message,
        }
    }

    /// A TOML error: the field from serde's message (unknown or missing
    /// field) or the key on the error's line.
    fn syntax(&self, e: &toml::de::Error) -> ConfigError {
        let at = e.span().map(|s| s.start);
        let message = e.message().to_string();
        let line = at.map(|a| self.line_of(a)).unwrap_or(0);
        let table = at.and_then(|a| self.table_at(a));
        let quoted = message.split('`').nth(1).map(str::to_string);
        let key_on_line = at.and_then(|a| {
            let start = self.text[..a.min(self.text.len())]
                .rfind('\n')
                .map_or(0, |i| i + 1);
            let l = self.text[start..].lines().next()?.trim();
            let (k, _) = l.split_once('=')?;
            Some(k.trim().to_string())
        });
        let leaf = if message.contains("missing field") || message.contains("unknown field") {
            quoted.or(key_on_line)
        } else {
            key_on_line
        };
        let field = match (table, leaf) {
            (Some(t), Some(k)) if t != k => format!("{t}.{k}"),
            (Some(t), _) => t,
            (None, Some(k)) => k,
            (None, None) => "(syntax)".into(),
        };
        ConfigError {
            file: self.file.to_string(),
            line,
            field,
            message,
        }
    }

    /// The table whose header precedes `offset` (`central`, `sites`).
    fn table_at(&self, offset: usize) -> Option<String> {
        let before = &self.text[..offset.min(self.text.len())];
        let mut header = None;
        for l in before.lines() {
            let t = l.trim();
            if t.starts_with('[') {
                let name = t.trim_start_matches('[');
                let name = name.split(']').next().unwrap_or("").trim();
                header = Some(name.to_string());
            }
        }
        // The error may sit on the header line itself.
        let rest = self.text.get(offset..)?.lines().next().unwrap_or("").trim();
        if rest.starts_with('[') {
            let name = rest.trim_start_matches('[');
            return Some(name.split(']').next().unwrap_or("").trim().to_string());
        }
        header
    }

    fn parse_addr(&self, v: &Spanned<String>, field: &str) -> Result<SocketAddr, ConfigError> {
        let s = v.get_ref();
        if let Some(port) = s.strip_prefix("localhost:")
            && let Ok(p) = port.parse::<u16>()
        {
            return Ok(SocketAddr::from(([127, 0, 0, 1], p)));
        }
        s.parse().map_err(|_| {
            self.err(
                v.span(),
                field,
                format!("\"{s}\" is not an address such as 127.0.0.1:8090 or 0.0.0.0:443"),
            )
        })
    }

    fn path(&self, v: &Spanned<String>, field: &str) -> Result<PathBuf, ConfigError> {
        if v.get_ref().trim().is_empty() {
            return Err(self.err(v.span(), field, "the path cannot be empty".into()));
        }
        Ok(PathBuf::from(v.get_ref()))
    }

    fn store(&self, raw: &Spanned<RawStore>) -> Result<Store, ConfigError> {
        let r = raw.get_ref();
        let url = r.url.get_ref();
        if url.trim().is_empty() {
            return Err(self.err(
                r.url.span(),
                "store.url",
                "the PostgreSQL url cannot be empty (libpq key=value or URI)".into(),
            ));
        }
        if url_has_password(url) {
            return Err(self.err(
                r.url.span(),
                "store.url",
                format!(
                    "the url must not hold a password: put it in store.password_file or env {PASSWORD_ENV}"
                ),
            ));
        }
        let password_file = match &r.password_file {
            Some(p) => Some(self.path(p, "store.password_file")?),
            None => None,
        };
        Ok(Store {
            url: url.clone(),
            password_file,
        })
    }

    fn sites(&self, raw: &[RawSite]) -> Result<Vec<SiteEntry>, ConfigError> {
        let mut ids: HashMap<&str, usize> = HashMap::new();
        let mut tokens: HashMap<&str, usize> = HashMap::new();
        let mut out = Vec::new();
        for s in raw {
            let id = s.id.get_ref();
            if !valid_site_id(id) {
                return Err(self.err(
                    s.id.span(),
                    "sites.id",
                    format!("\"{id}\" is not a site id (1-32 of a-z, 0-9, -)"),
                ));
            }
            if let Some(first) = ids.insert(id, self.line_of(s.id.span().start)) {
                return Err(self.err(
                    s.id.span(),
                    "sites.id",
                    format!("site id \"{id}\" is used twice (first at line {first})"),
                ));
            }
            let name = s.name.get_ref().trim();
            if name.is_empty() {
                return Err(self.err(
                    s.name.span(),
                    "sites.name",
                    format!("site \"{id}\" needs a name"),
                ));
            }
            let t = s.token_sha256.get_ref();
            if t.len() != 64
                || !t
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
            {
                return Err(self.err(
                    s.token_sha256.span(),
                    "sites.token_sha256",
                    format!(
                        "site \"{id}\": not a lowercase hex sha256 (64 of 0-9, a-f); make one with `luot-central token`"
                    ),
                ));
            }
            if let Some(first) = tokens.insert(t, self.line_of(s.token_sha256.span().start)) {
                return Err(self.err(
                    s.token_sha256.span(),
                    "sites.token_sha256",
                    format!(
                        "site \"{id}\": this token is already another site's (line {first}); each site needs its own"
                    ),
                ));
            }
            out.push(SiteEntry {
                id: id.clone(),
                name: name.to_string(),
                token_sha256: t.clone(),
            });
        }
        Ok(out)
    }

    fn users(&self, raw: &[RawUser], sites: &[SiteEntry]) -> Result<Vec<UserEntry>, ConfigError> {
        let mut names: HashMap<&str, usize> = HashMap::new();
        let mut out = Vec::new();
        for u in raw {
            let name = u.username.get_ref();
            if name.is_empty()
                || name.len() > luot_protocol::MAX_USERNAME
                || name.chars().any(|c| c.is_whitespace() || c.is_control())
            {
                return Err(self.err(
                    u.username.span(),
                    "users.username",
                    format!("\"{name}\" is not a username (1-64 characters, no spaces)"),
                ));
            }
            if let Some(first) = names.insert(name, self.line_of(u.username.span().start)) {
                return Err(self.err(
                    u.username.span(),
                    "users.username",
                    format!("username \"{name}\" is used twice (first at line {first})"),
                ));
            }
            let Some(role) = Role::parse(u.role.get_ref()) else {
                return Err(self.err(
                    u.role.span(),
                    "users.role",
                    format!(
                        "\"{}\" is not a central role (\"admin\" or \"viewer\")",
                        u.role.get_ref()
                    ),
                ));
            };
            if !is_argon2id_hash(u.password_hash.get_ref()) {
                return Err(self.err(
                    u.password_hash.span(),
                    "users.password_hash",
                    format!(
                        "user \"{name}\": not an argon2id hash; make one with `luot-central hash-password`"
                    ),
                ));
            }
            let user_sites = match &u.sites {
                None => None,
                Some(list) => {
                    if role == Role::Admin {
                        return Err(self.err(
                            list.span(),
                            "users.sites",
                            format!(
                                "user \"{name}\": an admin sees every site; sites is for viewers"
                            ),
                        ));
                    }
                    let mut v = Vec::new();
                    for s in list.get_ref() {
                        if !sites.iter().any(|x| x.id == *s.get_ref()) {
                            return Err(self.err(
                                s.span(),
                                "users.sites",
                                format!(
                                    "user \"{name}\": \"{}\" is not a site of [[sites]]",
                                    s.get_ref()
                                ),
                            ));
                        }
                        if v.contains(s.get_ref()) {
                            return Err(self.err(
                                s.span(),
                                "users.sites",
                                format!(
                                    "user \"{name}\": site \"{}\" is listed twice",
                                    s.get_ref()
                                ),
                            ));
                        }
                        v.push(s.get_ref().clone());
                    }
                    Some(v)
                }
            };
            out.push(UserEntry {
                username: name.clone(),
                role,
                password_hash: u.password_hash.get_ref().clone(),
                sites: user_sites,
            });
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$Pq3XoxwGQ6aCCxHBv1AKNyHq+P3Rcda0LMgFQfpF7lM";
    const SHA: &str = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

    fn good() -> String {
        format!(
            r#"[central]
listen = "127.0.0.1:8090"
timezone = "Asia/Ho_Chi_Minh"

[store]
url = "host=/var/run/postgresql dbname=luot_central user=luot"

[[sites]]
id = "bvdk-demo"
name = "Bệnh viện Đa khoa"
token_sha256 = "{SHA}"

[[users]]
username = "admin"
role = "admin"
password_hash = "{HASH}"

[[users]]
username = "xem"
role = "viewer"
password_hash = "{HASH}"
sites = ["bvdk-demo"]
"#
        )
    }

    fn err(text: &str) -> String {
        CentralConfig::parse("central.toml", text)
            .expect_err("refused")
            .to_string()
    }

    #[test]
    fn a_good_file_parses() {
        let c = CentralConfig::parse("central.toml", &good()).expect("parses");
        assert_eq!(c.listen.port(), 8090);
        assert!(c.tls.is_none());
        assert_eq!(c.sites[0].id, "bvdk-demo");
        assert_eq!(c.users[1].role, Role::Viewer);
        assert!(c.users[1].sees("bvdk-demo") && !c.users[1].sees("other"));
        assert!(c.users[0].sees("other"));
    }

    #[test]
    fn plain_http_only_on_loopback() {
        let t = good().replace("127.0.0.1:8090", "0.0.0.0:8090");
        assert_eq!(
            err(&t).split(": ").take(2).collect::<Vec<_>>(),
            ["central.toml:2", "central.listen"]
        );
        let t = good().replace(
            "listen = \"127.0.0.1:8090\"",
            "listen = \"0.0.0.0:443\"\ntls_cert = \"/c.pem\"\ntls_key = \"/k.pem\"",
        );
        assert!(CentralConfig::parse("c", &t).is_ok());
        let t = good().replace("127.0.0.1:8090", "localhost:8090");
        assert!(CentralConfig::parse("c", &t).is_ok());
        let t = good().replace("127.0.0.1:8090", "[::1]:8090");
        assert!(CentralConfig::parse("c", &t).is_ok());
        let t = good().replace(
            "listen = \"127.0.0.1:8090\"",
            "listen = \"0.0.0.0:443\"\ntls_cert = \"/c.pem\"",
        );
        assert!(err(&t).contains(":3: central.tls_key:"), "{}", err(&t));
    }

    #[test]
    fn errors_name_file_line_and_field() {
        let t = good().replace("Asia/Ho_Chi_Minh", "Mars/Olympus");
        assert!(err(&t).starts_with("central.toml:3: central.timezone: "));
        let t = good().replace("user=luot\"", "user=luot password=x\"");
        let e = err(&t);
        assert!(e.starts_with("central.toml:6: store.url: "), "{e}");
        assert!(!e.contains("password=x"), "never echoes the url: {e}");
        let t = good().replace("role = \"viewer\"", "role = \"staff\"");
        assert!(err(&t).starts_with("central.toml:20: users.role: "));
        let t = good().replace("sites = [\"bvdk-demo\"]", "sites = [\"khac\"]");
        assert!(err(&t).starts_with("central.toml:22: users.sites: "));
        let t = good().replace(
            &format!("token_sha256 = \"{SHA}\""),
            "token_sha256 = \"ABC\"",
        );
        assert!(err(&t).starts_with("central.toml:11: sites.token_sha256: "));
        let t = good().replace("id = \"bvdk-demo\"", "id = \"BV DK\"");
        assert!(err(&t).starts_with("central.toml:9: sites.id: "));
        let t = good().replace("timezone =", "colour = \"x\"\ntimezone =");
        let e = err(&t);
        assert!(e.starts_with("central.toml:3: central.colour: "), "{e}");
        let t = good().replace(&format!("password_hash = \"{HASH}\"\n\n"), "\n");
        let e = err(&t);
        assert!(e.contains("password_hash"), "{e}");
    }

    #[test]
    fn urls_with_passwords_are_found() {
        assert!(url_has_password("host=x password=y"));
        assert!(url_has_password("postgresql://u:p@h/db"));
        assert!(url_has_password("postgres://h/db?password=p"));
        assert!(!url_has_password("postgresql://u@h/db"));
        assert!(!url_has_password("host=/run/postgresql dbname=c user=luot"));
    }
}
