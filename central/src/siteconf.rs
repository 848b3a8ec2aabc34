//! A configuration version (rule 116): the TOML of a site's site-managed
//! configuration. Refused, naming line and field, when it holds a
//! machine-local key (`[server]`, `[store]`, `[ha]`, `[central]`, `[site] id`,
//! `[[webhooks]]`, `[notify]`) or breaks a `check-config` rule of the site
//! (`luot_server::config::SiteConfig::parse`, under the name `central:vN`).
//!
//! Pure: text in, an error or the site's configuration out.

use luot_server::config::{ConfigError, SiteConfig};
use serde::Deserialize;
use toml::Spanned;

/// The top-level tables a version may not hold, in the order checked.
pub const MACHINE_LOCAL: [&str; 6] = ["server", "store", "ha", "central", "webhooks", "notify"];

#[derive(Deserialize)]
struct Probe {
    server: Option<Spanned<toml::Value>>,
    store: Option<Spanned<toml::Value>>,
    ha: Option<Spanned<toml::Value>>,
    central: Option<Spanned<toml::Value>>,
    webhooks: Option<Spanned<toml::Value>>,
    notify: Option<Spanned<toml::Value>>,
    site: Option<ProbeSite>,
}

#[derive(Deserialize)]
struct ProbeSite {
    id: Option<Spanned<toml::Value>>,
}

/// The name a version's errors carry: `central:v7`.
pub fn name(version: u64) -> String {
    format!("central:v{version}")
}

fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|b| **b == b'\n')
        .count()
        + 1
}

/// The line of `[table]` or `[[table]]` (or of `table =` / `table.x =`),
/// for tables whose span TOML gives as their content.
fn header_line(text: &str, table: &str) -> Option<usize> {
    text.lines()
        .position(|l| {
            let t = l.trim();
            let inner = t.trim_start_matches('[').trim_end_matches(']').trim();
            (t.starts_with('[') && (inner == table || inner.starts_with(&format!("{table}."))))
                || (!t.starts_with('[')
                    && t.split(['=', '.'])
                        .next()
                        .is_some_and(|k| k.trim() == table))
        })
        .map(|i| i + 1)
}

/// Checks version `name`'s text (rule 116); the parsed configuration when
/// it passes.
pub fn validate(name: &str, text: &str) -> Result<SiteConfig, ConfigError> {
    let probe: Probe = match toml::from_str(text) {
        Ok(p) => p,
        // A syntax error: the site's own parser names its field.
        Err(_) => return SiteConfig::parse(name, text),
    };
    let tables = [
        (&probe.server, "server"),
        (&probe.store, "store"),
        (&probe.ha, "ha"),
        (&probe.central, "central"),
        (&probe.webhooks, "webhooks"),
        (&probe.notify, "notify"),
    ];
    let mut found: Vec<(usize, &str)> = tables
        .iter()
        .filter_map(|(v, key)| {
            v.as_ref().map(|s| {
                let line = header_line(text, key).unwrap_or_else(|| line_of(text, s.span().start));
                (line, *key)
            })
        })
        .collect();
    if let Some(id) = probe.site.as_ref().and_then(|s| s.id.as_ref()) {
        found.push((line_of(text, id.span().start), "site.id"));
    }
    found.sort();
    if let Some((line, field)) = found.first() {
        return Err(ConfigError {
            file: name.to_string(),
            line: *line,
            field: (*field).to_string(),
            message: format!(
                "{field} is machine-local: a version holds only the site-managed configuration \
                 (not [server], [store], [ha], [central], [site] id, [[webhooks]] or [notify]); \
                 keep it in the site's own site.toml"
            ),
        });
    }
    SiteConfig::parse(name, text)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$Pq3XoxwGQ6aCCxHBv1AKNyHq+P3Rcda0LMgFQfpF7lM";

    fn good() -> String {
        format!(
            r#"[site]
name = "Bệnh viện"

[[services]]
id = "kham-noi"
name = "Khám Nội"
prefix = "A"

[[counters]]
id = "quay-1"
name = "Quầy 1"
services = ["kham-noi"]

[[users]]
username = "admin"
role = "admin"
password_hash = "{HASH}"
"#
        )
    }

    #[test]
    fn a_site_managed_version_passes() {
        let c = validate("central:v1", &good()).expect("valid");
        assert_eq!(c.services[0].id, "kham-noi");
    }

    #[test]
    fn machine_local_keys_are_refused_at_their_line() {
        for (extra, line, field) in [
            ("\n[server]\nlisten = \"0.0.0.0:8080\"\n", 19, "server"),
            ("\n[store]\nkind = \"sled\"\n", 19, "store"),
            ("\n[ha]\nnode = \"a\"\n", 19, "ha"),
            ("\n[central]\nurl = \"https://x\"\n", 19, "central"),
            (
                "\n[[webhooks]]\nid = \"his\"\nurl = \"https://x\"\nsecret = \"s\"\n",
                19,
                "webhooks",
            ),
            ("\n[notify]\nkind = \"none\"\n", 19, "notify"),
        ] {
            let e = validate("central:v3", &format!("{}{extra}", good())).expect_err(field);
            assert_eq!(
                (e.file.as_str(), e.line, e.field.as_str()),
                ("central:v3", line, field),
                "{e}"
            );
        }
        let t = good().replace("name = \"Bệnh viện\"", "name = \"Bệnh viện\"\nid = \"bv\"");
        let e = validate("central:v2", &t).expect_err("site.id");
        assert_eq!((e.line, e.field.as_str()), (3, "site.id"));
    }

    #[test]
    fn a_broken_rule_names_the_version_line_and_field() {
        let t = good().replace("services = [\"kham-noi\"]", "services = [\"khong-co\"]");
        let e = validate("central:v4", &t).expect_err("unknown service");
        assert!(
            e.to_string()
                .starts_with("central:v4:12: counters.services: "),
            "{e}"
        );
        let e = validate("central:v5", "[site\nname = 1").expect_err("syntax");
        assert!(e.to_string().starts_with("central:v5:1: "), "{e}");
    }
}
