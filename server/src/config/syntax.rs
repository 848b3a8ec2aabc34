//! Errors TOML itself reports (bad syntax, an unknown or mistyped field),
//! named like the other errors: file, line, and the field set on that line
//! (`services.digits`), found from the text since a broken file has no
//! structure to ask.

use super::check::Ctx;
use super::types::ConfigError;

/// The field when the line of the error sets no key.
const NO_FIELD: &str = "(syntax)";

pub(super) fn error(ctx: &Ctx, e: &toml::de::Error) -> ConfigError {
    let line = e.span().map(|s| ctx.line_of(s.start)).unwrap_or(0);
    ConfigError {
        file: ctx.file.to_string(),
        line,
        field: field_at(ctx.text, line).unwrap_or_else(|| NO_FIELD.into()),
        message: e.message().to_string(),
    }
}

/// The dotted name of the key set on 1-based `line` of `text`: the table
/// header above it (`[site]`, or `[[services]]` for each service) and the
/// key, e.g. `services.digits`. None when the line sets no key (a header, a
/// comment, the rest of a value begun above) or a name cannot be read.
fn field_at(text: &str, line: usize) -> Option<String> {
    let lines: Vec<&str> = text.lines().collect();
    let above = lines.get(..line.checked_sub(1)?)?;
    let key = key_of(lines.get(line - 1)?)?;
    let table = match above.iter().rev().find_map(|l| header_of(l)) {
        None => return Some(key),
        Some(header) => header?,
    };
    Some(format!("{table}.{key}"))
}

/// The key of a `key = value` line, dotted keys joined with `.`.
fn key_of(line: &str) -> Option<String> {
    let line = line.trim_start();
    if line.starts_with('[') || line.starts_with('#') {
        return None;
    }
    let (key, _) = line.split_once('=')?;
    dotted(key)
}

/// For a table header line, Some(its name, or None when unreadable).
fn header_of(line: &str) -> Option<Option<String>> {
    let line = line.trim_start();
    let inner = line.strip_prefix('[')?;
    let name = match inner.strip_prefix('[') {
        Some(array) => array.split_once("]]").map(|(n, _)| n),
        None => inner.split_once(']').map(|(n, _)| n),
    };
    Some(name.and_then(dotted))
}

/// A bare key or dotted bare keys (`a.b`, spaces around dots allowed).
fn dotted(key: &str) -> Option<String> {
    let parts: Vec<&str> = key.split('.').map(str::trim).collect();
    let bare = |p: &&str| {
        !p.is_empty()
            && p.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    };
    parts.iter().all(bare).then(|| parts.join("."))
}

#[cfg(test)]
mod tests {
    use super::field_at;

    #[test]
    fn names_the_key_under_its_table() {
        let text = "top = 1\n[site]\nname = = 1\n[[services]]\n  digits  = = 3\n[a . b]\nc.d=\n";
        assert_eq!(field_at(text, 1).as_deref(), Some("top"));
        assert_eq!(field_at(text, 3).as_deref(), Some("site.name"));
        assert_eq!(field_at(text, 5).as_deref(), Some("services.digits"));
        assert_eq!(field_at(text, 7).as_deref(), Some("a.b.c.d"));
    }

    #[test]
    fn no_key_no_field() {
        let text = "[site]\n[[services]\n# a = 1\n\"quoted\" = = 1\n  \"x\",\n";
        for line in 0..=7 {
            assert_eq!(field_at(text, line), None, "line {line}");
        }
        // Under a header that cannot be read, the key alone would mislead.
        assert_eq!(field_at("[[services]\nid = = 1\n", 2), None);
    }
}
