//! `[store]` and `[ha]` (§13, rule 100): which backend keeps the queue
//! (`sled`, the default, in `data_dir/db`; or `postgres` at `url`) and, on a
//! PostgreSQL site with a standby, this server's name and addresses. A
//! password never sits in site.toml: a `url` that holds one is refused
//! without echoing it; it comes from `password_file` or `LUOT_PG_PASSWORD`.

use std::path::PathBuf;

use toml::Spanned;

use super::check::Ctx;
use super::raw::{RawHa, RawStore};
use super::types::ConfigError;

/// Where the queue is kept.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub enum StoreKind {
    /// sled in `data_dir/db` (rules 1–8 unchanged).
    #[default]
    Sled,
    Postgres(Postgres),
}

/// `[store] kind = "postgres"`.
#[derive(Clone, PartialEq, Eq)]
pub struct Postgres {
    /// libpq key=value or a URI, without a password.
    pub url: String,
    /// Its first line is the password.
    pub password_file: Option<PathBuf>,
}

impl std::fmt::Debug for Postgres {
    // The url may name hosts and users; it never holds a password, but
    // there is no reason to print it in a debug dump either.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Postgres")
            .field("password_file", &self.password_file)
            .finish_non_exhaustive()
    }
}

impl Postgres {
    /// The password: `password_file`'s first line, else `LUOT_PG_PASSWORD`,
    /// else none.
    pub fn password(&self) -> std::io::Result<Option<String>> {
        if let Some(p) = &self.password_file {
            let text = std::fs::read_to_string(p).map_err(|e| {
                std::io::Error::new(
                    e.kind(),
                    format!("cannot read store.password_file {}: {e}", p.display()),
                )
            })?;
            return Ok(text.lines().next().map(str::to_string));
        }
        Ok(std::env::var("LUOT_PG_PASSWORD").ok())
    }
}

/// `[ha]` (postgres only).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ha {
    /// This server's name among the site's servers.
    pub node: String,
    /// Its own HTTP address (not the moving one), shown to clients of a
    /// standby as `writer_url`.
    pub url: Option<String>,
    /// This machine's Patroni REST API.
    pub patroni_url: String,
}

pub(super) fn parse(
    ctx: &Ctx,
    store: Option<&Spanned<RawStore>>,
    ha: Option<&Spanned<RawHa>>,
) -> Result<(StoreKind, Option<Ha>), ConfigError> {
    let kind = match store {
        None => StoreKind::Sled,
        Some(s) => parse_store(ctx, s)?,
    };
    let ha = match ha {
        None => None,
        Some(h) => {
            if kind == StoreKind::Sled {
                return Err(ctx.err(
                    h.span(),
                    "ha",
                    "[ha] needs [store] kind = \"postgres\" (a standby follows a PostgreSQL replica)"
                        .into(),
                ));
            }
            Some(parse_ha(ctx, h.get_ref())?)
        }
    };
    Ok((kind, ha))
}

fn parse_store(ctx: &Ctx, raw: &Spanned<RawStore>) -> Result<StoreKind, ConfigError> {
    let s = raw.get_ref();
    let kind = s
        .kind
        .as_ref()
        .map(|k| k.get_ref().as_str())
        .unwrap_or("sled");
    match kind {
        "sled" => {
            if let Some(u) = &s.url {
                return Err(ctx.err(
                    u.span(),
                    "store.url",
                    "a url is only for kind = \"postgres\"".into(),
                ));
            }
            Ok(StoreKind::Sled)
        }
        "postgres" => {
            let Some(url) = &s.url else {
                return Err(ctx.err(
                    raw.span(),
                    "store.url",
                    "kind = \"postgres\" needs a url, such as \
                     \"host=/var/run/postgresql dbname=luot user=luot\""
                        .into(),
                ));
            };
            if holds_password(url.get_ref()) {
                return Err(ctx.err(
                    url.span(),
                    "store.url",
                    "the url holds a password; put it in password_file (or LUOT_PG_PASSWORD) \
                     instead (the url is not shown here)"
                        .into(),
                ));
            }
            if url.get_ref().trim().is_empty() {
                return Err(ctx.err(url.span(), "store.url", "the url is empty".into()));
            }
            Ok(StoreKind::Postgres(Postgres {
                url: url.get_ref().clone(),
                password_file: s.password_file.as_ref().map(|p| PathBuf::from(p.get_ref())),
            }))
        }
        other => Err(ctx.err(
            s.kind.as_ref().map_or(raw.span(), |k| k.span()),
            "store.kind",
            format!("\"{other}\" is not a store kind (\"sled\" or \"postgres\")"),
        )),
    }
}

/// Whether a libpq connection string holds a password: `password=` (key=value),
/// `user:pw@` or `?password=` / `&password=` (a URI).
fn holds_password(url: &str) -> bool {
    let lower = url.to_ascii_lowercase();
    if lower.starts_with("postgres://") || lower.starts_with("postgresql://") {
        let rest = &lower[lower.find("://").map_or(0, |i| i + 3)..];
        let authority = rest.split(['/', '?']).next().unwrap_or("");
        let userinfo = authority.rsplit_once('@').map(|(u, _)| u);
        return userinfo.is_some_and(|u| u.contains(':'))
            || lower.contains("?password=")
            || lower.contains("&password=");
    }
    lower
        .split_whitespace()
        .any(|kv| kv.trim_start().starts_with("password") && kv.contains('='))
        || lower.contains("password =")
}

fn parse_ha(ctx: &Ctx, raw: &RawHa) -> Result<Ha, ConfigError> {
    let node = match &raw.node {
        Some(n) => {
            let s = n.get_ref();
            if !valid_node(s) {
                return Err(ctx.err(
                    n.span(),
                    "ha.node",
                    format!("\"{s}\" is not a node name (1-32 of a-z, 0-9, -)"),
                ));
            }
            s.clone()
        }
        None => host_node(),
    };
    let http = |v: &Option<Spanned<String>>, field: &str| -> Result<Option<String>, ConfigError> {
        let Some(u) = v else { return Ok(None) };
        let s = u.get_ref().trim_end_matches('/');
        if !(s.starts_with("http://") || s.starts_with("https://")) {
            return Err(ctx.err(
                u.span(),
                field,
                format!("\"{}\" must start with http:// or https://", u.get_ref()),
            ));
        }
        Ok(Some(s.to_string()))
    };
    Ok(Ha {
        node,
        url: http(&raw.url, "ha.url")?,
        patroni_url: http(&raw.patroni_url, "ha.patroni_url")?
            .unwrap_or_else(|| "http://127.0.0.1:8008".into()),
    })
}

fn valid_node(s: &str) -> bool {
    (1..=32).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// The default node name: the host name's first label, made a valid name.
pub fn host_node() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .unwrap_or_default();
    let label = host
        .trim()
        .split('.')
        .next()
        .unwrap_or("")
        .to_ascii_lowercase();
    let mut node: String = label
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .take(32)
        .collect();
    if node.is_empty() {
        node = "luot".into();
    }
    node
}

#[cfg(test)]
mod tests {
    use super::holds_password;

    #[test]
    fn a_password_is_found_in_every_spelling_libpq_takes() {
        for url in [
            "host=/var/run/postgresql dbname=luot user=luot password=x",
            "host=db password = x",
            "postgres://luot:secret@db/luot",
            "postgresql://db/luot?password=x",
            "postgresql://db/luot?sslmode=disable&password=x",
        ] {
            assert!(holds_password(url), "{url}");
        }
        for url in [
            "host=/var/run/postgresql dbname=luot user=luot",
            "postgres://luot@db/luot",
            "postgresql://db:5432/luot?sslmode=disable",
        ] {
            assert!(!holds_password(url), "{url}");
        }
    }
}
