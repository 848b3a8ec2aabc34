//! `[notify]` (contract §12, rules 91–94): phone alerts through an HTTP SMS
//! or Zalo ZNS gateway and Web Push, with the texts of the `near` and
//! `called` messages. Checks what `check-config` refuses: an unknown kind,
//! `kind = "http"` without `url`, a non-http(s) URL, placeholders other
//! than `{number}`, `{position}`, `{service_name}` and `{counter_name}`,
//! and `web_push` with an `http://` public URL or no subject.

use toml::Spanned;

use super::check::{Ctx, number_in};
use super::raw::RawNotify;
use super::types::{ConfigError, Gateway, Notify, Site};

/// The placeholders a text may use (rule 91).
pub const PLACEHOLDERS: [&str; 4] = ["number", "position", "service_name", "counter_name"];

const MAX_TEXT: usize = 500;

pub(super) fn parse(
    ctx: &Ctx,
    raw: Option<&Spanned<RawNotify>>,
    site: &Site,
) -> Result<Notify, ConfigError> {
    let mut notify = Notify::default();
    let Some(raw) = raw else {
        return Ok(notify);
    };
    let span = raw.span();
    let raw = raw.get_ref();
    let kind = raw.kind.as_ref().map_or("none", |k| k.get_ref().as_str());
    if let Some(url) = &raw.url {
        check_url(ctx, url, "notify.url")?;
    }
    match kind {
        "none" => {}
        "http" => {
            let Some(url) = &raw.url else {
                let at = raw.kind.as_ref().map_or(span, |k| k.span());
                return Err(ctx.err(
                    at,
                    "notify.url",
                    "kind = \"http\" needs the gateway's url (https://…)".into(),
                ));
            };
            notify.gateway = Some(Gateway {
                url: url.get_ref().clone(),
                authorization: raw.authorization.as_ref().map(|a| a.get_ref().clone()),
            });
        }
        other => {
            let at = raw.kind.as_ref().map_or(span, |k| k.span());
            return Err(ctx.err(
                at,
                "notify.kind",
                format!("\"{other}\" is not a kind of alert gateway (\"none\" or \"http\")"),
            ));
        }
    }
    if let Some(n) = &raw.near_position {
        notify.near_position = number_in(ctx, n, "notify.near_position", 1..=100, "people ahead")?;
    }
    if let Some(t) = &raw.near_text {
        notify.near_text = text(ctx, t, "notify.near_text")?;
    }
    if let Some(t) = &raw.called_text {
        notify.called_text = text(ctx, t, "notify.called_text")?;
    }
    if let Some(w) = &raw.web_push
        && *w.get_ref()
    {
        if !site.public_url.starts_with("https://") {
            return Err(ctx.err(
                w.span(),
                "notify.web_push",
                format!(
                    "Web Push needs an https public_url (browsers only push to secure pages), not \"{}\"",
                    site.public_url
                ),
            ));
        }
        let Some(subject) = &raw.push_subject else {
            return Err(ctx.err(
                w.span(),
                "notify.push_subject",
                "web_push needs push_subject, a contact for push services (mailto:… or https://…)"
                    .into(),
            ));
        };
        let s = subject.get_ref();
        if !(s.starts_with("mailto:") || s.starts_with("https://")) || s.len() > 256 {
            return Err(ctx.err(
                subject.span(),
                "notify.push_subject",
                format!("\"{s}\" is not a contact (mailto:… or https://…)"),
            ));
        }
        notify.web_push = true;
        notify.push_subject = Some(s.clone());
    }
    Ok(notify)
}

fn check_url(ctx: &Ctx, url: &Spanned<String>, field: &str) -> Result<(), ConfigError> {
    let u = url.get_ref();
    let rest = u
        .strip_prefix("https://")
        .or_else(|| u.strip_prefix("http://"));
    if rest.is_none_or(|r| r.is_empty() || r.starts_with('/') || r.contains(char::is_whitespace)) {
        return Err(ctx.err(url.span(), field, format!("\"{u}\" is not an http(s) URL")));
    }
    Ok(())
}

/// A message text: 1–500 characters, only the known placeholders.
fn text(ctx: &Ctx, t: &Spanned<String>, field: &str) -> Result<String, ConfigError> {
    let s = t.get_ref();
    if s.trim().is_empty() || s.chars().count() > MAX_TEXT {
        return Err(ctx.err(
            t.span(),
            field,
            format!("the text must be 1 to {MAX_TEXT} characters"),
        ));
    }
    let mut rest = s.as_str();
    while let Some(open) = rest.find('{') {
        let after = &rest[open + 1..];
        let Some(close) = after.find('}') else {
            return Err(ctx.err(t.span(), field, "a \"{\" without its \"}\"".into()));
        };
        let name = &after[..close];
        if !PLACEHOLDERS.contains(&name) {
            return Err(ctx.err(
                t.span(),
                field,
                format!(
                    "{{{name}}} is not a placeholder (use {{number}}, {{position}}, {{service_name}}, {{counter_name}})"
                ),
            ));
        }
        rest = &after[close + 1..];
    }
    Ok(s.clone())
}

/// Fills a text's placeholders.
pub fn fill(
    text: &str,
    number: &str,
    position: &str,
    service_name: &str,
    counter_name: &str,
) -> String {
    text.replace("{number}", number)
        .replace("{position}", position)
        .replace("{service_name}", service_name)
        .replace("{counter_name}", counter_name)
}

#[cfg(test)]
mod tests {
    use super::super::SiteConfig;

    fn site(public_url: &str, notify: &str) -> String {
        format!(
            "[site]\nname = \"BV\"\npublic_url = \"{public_url}\"\n\n[[services]]\nid = \"kham\"\nname = \"Khám\"\nprefix = \"A\"\n\n[[counters]]\nid = \"q1\"\nname = \"Quầy 1\"\nservices = [\"kham\"]\n\n[notify]\n{notify}"
        )
    }

    /// The error's field and line for a `[notify]` body on an https site.
    fn refused(public_url: &str, notify: &str) -> (String, usize, String) {
        let e = SiteConfig::parse("site.toml", &site(public_url, notify)).unwrap_err();
        (e.field, e.line, e.message)
    }

    #[test]
    fn notify_defaults_to_none_with_the_contracts_texts() {
        let c = SiteConfig::parse("site.toml", &site("https://bv.vn", "")).unwrap();
        assert!(!c.notify.sms() && !c.notify.web_push);
        assert_eq!(c.notify.near_position, 3);
        assert_eq!(c.notify.called_text, "Mời số {number} đến {counter_name}.");
        let c = SiteConfig::parse(
            "site.toml",
            &site(
                "https://bv.vn",
                "kind = \"http\"\nurl = \"https://sms.vn/send\"\nauthorization = \"Bearer x\"\nnear_position = 5\nweb_push = true\npush_subject = \"mailto:it@bv.vn\"\n",
            ),
        )
        .unwrap();
        assert!(c.notify.sms() && c.notify.web_push);
        assert_eq!(c.notify.near_position, 5);
        assert!(
            !format!("{:?}", c.notify).contains("Bearer x"),
            "the authorization is never printed"
        );
    }

    #[test]
    fn check_config_refuses_what_section_12_lists() {
        let https = "https://bv.vn";
        let cases = [
            (https, "kind = \"http\"\n", "notify.url", 16),
            (https, "kind = \"sms\"\n", "notify.kind", 16),
            (
                https,
                "kind = \"http\"\nurl = \"ftp://sms.vn\"\n",
                "notify.url",
                17,
            ),
            (
                https,
                "near_text = \"Số {number}, quầy {counter}\"\n",
                "notify.near_text",
                16,
            ),
            (
                https,
                "called_text = \"Mời {number\"\n",
                "notify.called_text",
                16,
            ),
            (https, "near_position = 0\n", "notify.near_position", 16),
            (
                "http://bv.vn",
                "web_push = true\npush_subject = \"mailto:a@b.vn\"\n",
                "notify.web_push",
                16,
            ),
            (https, "web_push = true\n", "notify.push_subject", 16),
            (
                https,
                "web_push = true\npush_subject = \"cntt\"\n",
                "notify.push_subject",
                17,
            ),
        ];
        for (url, notify, field, line) in cases {
            let (f, l, m) = refused(url, notify);
            assert_eq!((f.as_str(), l), (field, line), "{notify}: {m}");
        }
    }
}
