//! Errors TOML itself reports (bad syntax, an unknown, missing or mistyped
//! field), named like the other errors: file, line, and the field whose
//! value holds the error (`services.digits`, or `services.sessions.cap` in a
//! session's inline table), found from the text since a broken file has no
//! structure to ask.

use super::check::Ctx;
use super::types::ConfigError;

/// The field when no key can be named.
const NO_FIELD: &str = "(syntax)";

pub(super) fn error(ctx: &Ctx, e: &toml::de::Error) -> ConfigError {
    let at = e.span().map(|s| s.start);
    let message = e.message();
    let mut field = at.and_then(|at| field_at(ctx.text, at));
    // A table missing a field: name the field under the table's key, or
    // its header (the error is at the header's line).
    if let Some(missing) = missing_field(message) {
        let header = at.and_then(|at| header_of(ctx.text.get(at..)?.lines().next()?)?);
        field = match (field, header) {
            _ if missing == "site" => Some(missing.into()),
            (Some(key), _) => Some(format!("{key}.{missing}")),
            (None, Some(table)) => Some(format!("{table}.{missing}")),
            (None, None) => None,
        };
    }
    ConfigError {
        file: ctx.file.to_string(),
        line: at.map(|at| ctx.line_of(at)).unwrap_or(0),
        field: field.unwrap_or_else(|| NO_FIELD.into()),
        message: message.to_string(),
    }
}

/// The name in serde's "missing field `end`". `site` is the one field the
/// file itself must have: its error is at the start of the file, which may
/// also be a header.
fn missing_field(message: &str) -> Option<&str> {
    let rest = message.strip_prefix("missing field `")?;
    let name = &rest[..rest.find('`')?];
    dotted(name).is_some().then_some(name)
}

/// The dotted name of the key being set at byte `at` of `text`: the table
/// header above it (`[site]`, or `[[services]]` for each service), the key
/// of the table's line, and the keys of the inline tables open at `at`
/// (`services.sessions.cap`). An error at a key (`digit = 3`, unknown) names
/// that key. None when no key is being set there (a header, a stray word)
/// or a name cannot be read (a quoted key, a broken header).
fn field_at(text: &str, at: usize) -> Option<String> {
    let at = past_key(text, at)?;
    let before = &text[..at];
    let (mut table, mut body) = (None, 0);
    let mut pos = 0;
    for line in before.split_inclusive('\n') {
        if let Some(header) = header_of(line) {
            (table, body) = (Some(header), pos + line.len());
        }
        pos += line.len();
    }
    let path = path_of(&before[body..])?;
    match table {
        None => Some(path),
        Some(header) => Some(format!("{}.{path}", header?)),
    }
}

/// `at`, or just past the `=` when a key and `=` start there.
fn past_key(text: &str, at: usize) -> Option<usize> {
    let rest = text.get(at..)?;
    let key_len = rest
        .bytes()
        .take_while(|b| bare(*b) || matches!(b, b'.' | b' ' | b'\t'))
        .count();
    let (key, after) = rest.split_at(key_len);
    Some(match after.strip_prefix('=') {
        Some(_) if !key.trim().is_empty() => at + key_len + 1,
        _ => at,
    })
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

fn bare(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'-'
}

/// A bare key or dotted bare keys (`a.b`, spaces around dots allowed).
fn dotted(key: &str) -> Option<String> {
    let parts: Vec<&str> = key.split('.').map(str::trim).collect();
    let ok = |p: &&str| !p.is_empty() && p.bytes().all(bare);
    parts.iter().all(ok).then(|| parts.join("."))
}

/// What a key in an open table is: not set since its last `,` (or line, at
/// the top), set, or set by a name that cannot be read.
#[derive(Clone)]
enum Key {
    Unset,
    Named(String),
    Unreadable,
}

/// The keys being set at the end of `body` (a table's text up to the
/// error): the table's own key, then one per inline table open there;
/// arrays add nothing.
fn path_of(body: &str) -> Option<String> {
    // Open tables (Some: the key last set in it) and arrays (None).
    let mut open: Vec<Option<Key>> = vec![Some(Key::Unset)];
    let b = body.as_bytes();
    let mut word: Option<(usize, usize)> = None;
    let mut quoted = false;
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c == b'"' || c == b'\'' {
            i = string_end(b, i);
            (word, quoted) = (None, true);
            continue;
        }
        match c {
            b'#' => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
                continue;
            }
            b'=' => {
                let key = match word {
                    _ if quoted => Some(Key::Unreadable),
                    Some((from, to)) => {
                        Some(dotted(&body[from..to]).map_or(Key::Unreadable, Key::Named))
                    }
                    None => None,
                };
                if let (Some(key), Some(Some(top))) = (key, open.last_mut()) {
                    *top = key;
                }
            }
            b'{' => open.push(Some(Key::Unset)),
            b'[' => open.push(None),
            b'}' | b']' if open.len() > 1 => {
                open.pop();
            }
            b',' => {
                if let Some(Some(top)) = open.last_mut() {
                    *top = Key::Unset;
                }
            }
            b'\n' if open.len() == 1 => open[0] = Some(Key::Unset),
            b' ' | b'\t' | b'\r' => {
                i += 1;
                continue;
            }
            c if bare(c) || c == b'.' => {
                word = match word {
                    Some((from, to)) if to == i || body[from..to].ends_with('.') || c == b'.' => {
                        Some((from, i + 1))
                    }
                    _ => Some((i, i + 1)),
                };
                quoted = false;
                i += 1;
                continue;
            }
            _ => {}
        }
        (word, quoted) = (None, false);
        i += 1;
    }
    let mut keys = Vec::new();
    for key in open.into_iter().flatten() {
        match key {
            Key::Named(k) => keys.push(k),
            Key::Unreadable => return None,
            Key::Unset => break,
        }
    }
    (!keys.is_empty()).then(|| keys.join("."))
}

/// The index just past the string starting at `b[from]` (a quote), or the
/// end of its line when it is not closed there (the end of the text for an
/// unclosed multi-line string).
fn string_end(b: &[u8], from: usize) -> usize {
    let q = b[from];
    if b[from..].starts_with(&[q, q, q]) {
        let close = b[from + 3..].windows(3).position(|w| w == [q, q, q]);
        return close.map_or(b.len(), |p| from + 3 + p + 3);
    }
    let mut i = from + 1;
    while i < b.len() && b[i] != b'\n' {
        if b[i] == b'\\' && q == b'"' {
            i += 2;
            continue;
        }
        if b[i] == q {
            return i + 1;
        }
        i += 1;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::field_at;

    /// The field at the end of 1-based `line` of `text`.
    fn at_end(text: &str, line: usize) -> Option<String> {
        let end: usize = text.split_inclusive('\n').take(line).map(str::len).sum();
        let last = text.split_inclusive('\n').nth(line - 1)?;
        field_at(text, end - (last.len() - last.trim_end_matches('\n').len()))
    }

    #[test]
    fn names_the_key_under_its_table() {
        let text = "top = 1\n[site]\nname = = 1\n[[services]]\n  digits  = = 3\n[a . b]\nc.d=\n";
        assert_eq!(at_end(text, 1).as_deref(), Some("top"));
        assert_eq!(at_end(text, 3).as_deref(), Some("site.name"));
        assert_eq!(at_end(text, 5).as_deref(), Some("services.digits"));
        assert_eq!(at_end(text, 7).as_deref(), Some("a.b.c.d"));
        // An error at a key names it (an unknown or repeated field).
        let at = text.find("digits").unwrap();
        assert_eq!(field_at(text, at).as_deref(), Some("services.digits"));
        assert_eq!(field_at(text, at - 2).as_deref(), Some("services.digits"));
    }

    #[test]
    fn no_key_no_field() {
        let text = "[site]\n[[services]\n# a = 1\n\"quoted\" = = 1\n  \"x\",\n";
        for line in 1..=5 {
            assert_eq!(at_end(text, line), None, "line {line}");
        }
        // Under a header that cannot be read, the key alone would mislead.
        assert_eq!(at_end("[[services]\nid = = 1\n", 2), None);
        // A line after a finished value sets nothing; a comment hides keys.
        assert_eq!(at_end("[site]\nname = \"a\"\nstray\n", 3), None);
        assert_eq!(
            at_end("[site]\nname = \"a\" # x = 1\n", 2).as_deref(),
            Some("site.name")
        );
    }

    #[test]
    fn names_keys_inside_inline_tables_and_long_arrays() {
        let text = "[[services]]\nid = \"a\"\nsessions = [\n  { id = \"s\", cap = \"2\" },\n  \
                    { id = \"t\", \"q\" = 1, x = [1, 2], strt = \"07:00\" },\n]\n\
                    [identity]\nage_priority = { old = { min = \"x\" }, kid = { max = 5 } }\n";
        let at = |s: &str| field_at(text, text.find(s).unwrap());
        assert_eq!(at("\"2\"").as_deref(), Some("services.sessions.cap"));
        assert_eq!(at("{ id = \"s\"").as_deref(), Some("services.sessions"));
        assert_eq!(at("strt").as_deref(), Some("services.sessions.strt"));
        assert_eq!(at("2]").as_deref(), Some("services.sessions.x"));
        assert_eq!(at("1, x"), None, "a quoted key");
        assert_eq!(
            at("\"x\"").as_deref(),
            Some("identity.age_priority.old.min")
        );
        assert_eq!(at("5 }").as_deref(), Some("identity.age_priority.kid.max"));
        assert_eq!(at("]\n[identity]").as_deref(), Some("services.sessions"));
        let strings = "[site]\nname = \"a = {\" \nx = 'b, c = [' \nok = = 1\n";
        assert_eq!(at_end(strings, 4).as_deref(), Some("site.ok"));
    }
}
