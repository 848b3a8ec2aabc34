//! The print jobs this kiosk has taken on (rule 88), on disk beside the
//! request counter, so that each `print_id` prints at most once, even
//! across restarts: a job is written down (and fsynced) before its page
//! goes to the printer, and its outcome after.
//!
//! The file `printed` holds one line per step: `{unix seconds} {print_id}
//! {claimed|ok|failed}`. Lines older than `KEEP` are dropped when the file
//! is opened (the server resends a job for 10 minutes, and jobs die with
//! its restart). It never decides whether to print; the daemon does.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How long a `print_id` is remembered.
pub const KEEP: Duration = Duration::from_secs(2 * 24 * 60 * 60);

/// What became of a job this kiosk took on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Written down before printing; no outcome after (the kiosk stopped
    /// while printing): it may or may not have come out.
    Claimed,
    Printed,
    Failed,
}

impl Outcome {
    fn word(self) -> &'static str {
        match self {
            Outcome::Claimed => "claimed",
            Outcome::Printed => "ok",
            Outcome::Failed => "failed",
        }
    }

    fn parse(w: &str) -> Option<Outcome> {
        match w {
            "claimed" => Some(Outcome::Claimed),
            "ok" => Some(Outcome::Printed),
            "failed" => Some(Outcome::Failed),
            _ => None,
        }
    }
}

pub struct PrintLog {
    path: PathBuf,
    /// print_id → (when first written, latest outcome).
    seen: HashMap<String, (u64, Outcome)>,
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl PrintLog {
    /// Opens (or creates) `dir/printed`, forgetting lines older than `KEEP`.
    pub fn open(dir: &Path) -> std::io::Result<PrintLog> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join("printed");
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(e),
        };
        let oldest = unix_now().saturating_sub(KEEP.as_secs());
        let mut seen: HashMap<String, (u64, Outcome)> = HashMap::new();
        for line in text.lines() {
            let mut w = line.split_whitespace();
            let (Some(at), Some(id), Some(outcome)) = (
                w.next().and_then(|a| a.parse::<u64>().ok()),
                w.next(),
                w.next().and_then(Outcome::parse),
            ) else {
                continue; // a line cut short by a power loss
            };
            let first = seen.get(id).map_or(at, |(t, _)| *t);
            seen.insert(id.to_string(), (first, outcome));
        }
        seen.retain(|_, (at, _)| *at >= oldest);
        let log = PrintLog { path, seen };
        log.compact()?;
        Ok(log)
    }

    /// Rewrites the file with what is remembered (write, fsync, rename).
    fn compact(&self) -> std::io::Result<()> {
        let tmp = self.path.with_extension("tmp");
        let mut f = std::fs::File::create(&tmp)?;
        let mut entries: Vec<_> = self.seen.iter().collect();
        entries.sort_by_key(|(id, (at, _))| (*at, (*id).clone()));
        for (id, (at, outcome)) in entries {
            writeln!(f, "{at} {id} {}", outcome.word())?;
        }
        f.sync_all()?;
        std::fs::rename(&tmp, &self.path)?;
        sync_dir(&self.path);
        Ok(())
    }

    /// What became of `print_id`, if this kiosk ever took it on.
    pub fn outcome(&self, print_id: &str) -> Option<Outcome> {
        self.seen.get(print_id).map(|(_, o)| *o)
    }

    /// Writes `print_id` down before it is printed; it is on disk when
    /// this returns. A `print_id` must be one word.
    pub fn claim(&mut self, print_id: &str) -> std::io::Result<()> {
        self.append(print_id, Outcome::Claimed)
    }

    /// Writes down whether `print_id` printed.
    pub fn finish(&mut self, print_id: &str, ok: bool) -> std::io::Result<()> {
        let outcome = if ok {
            Outcome::Printed
        } else {
            Outcome::Failed
        };
        self.append(print_id, outcome)
    }

    fn append(&mut self, print_id: &str, outcome: Outcome) -> std::io::Result<()> {
        if print_id.is_empty() || print_id.contains(char::is_whitespace) {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "a print_id is one word",
            ));
        }
        let at = self.seen.get(print_id).map_or_else(unix_now, |(at, _)| *at);
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(&self.path)?;
        writeln!(f, "{at} {print_id} {}", outcome.word())?;
        f.sync_all()?;
        sync_dir(&self.path);
        self.seen.insert(print_id.to_string(), (at, outcome));
        Ok(())
    }
}

/// Makes a new directory entry durable (best effort).
fn sync_dir(path: &Path) {
    if let Some(dir) = path.parent()
        && let Ok(d) = std::fs::File::open(dir)
    {
        let _ = d.sync_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_claimed_print_id_is_remembered_across_restarts() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = PrintLog::open(dir.path()).unwrap();
        assert_eq!(log.outcome("pr_a"), None);
        log.claim("pr_a").unwrap();
        assert_eq!(log.outcome("pr_a"), Some(Outcome::Claimed));
        log.finish("pr_a", true).unwrap();
        log.claim("pr_b").unwrap();
        log.finish("pr_b", false).unwrap();
        // Stopped while printing pr_c: claimed, no outcome.
        log.claim("pr_c").unwrap();
        drop(log);
        let log = PrintLog::open(dir.path()).unwrap();
        assert_eq!(log.outcome("pr_a"), Some(Outcome::Printed));
        assert_eq!(log.outcome("pr_b"), Some(Outcome::Failed));
        assert_eq!(log.outcome("pr_c"), Some(Outcome::Claimed));
        assert_eq!(log.outcome("pr_d"), None);
    }

    #[test]
    fn old_and_torn_lines_are_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let old = unix_now() - KEEP.as_secs() - 60;
        let recent = unix_now() - 60;
        std::fs::write(
            dir.path().join("printed"),
            format!("{old} pr_old ok\n{recent} pr_new claimed\n{recent} pr_new ok\n{recent} pr_to"),
        )
        .unwrap();
        let log = PrintLog::open(dir.path()).unwrap();
        assert_eq!(log.outcome("pr_old"), None);
        assert_eq!(log.outcome("pr_new"), Some(Outcome::Printed));
        assert_eq!(log.outcome("pr_to"), None);
        let text = std::fs::read_to_string(dir.path().join("printed")).unwrap();
        assert_eq!(text, format!("{recent} pr_new ok\n"), "compacted");
    }

    #[test]
    fn a_print_id_must_be_one_word() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = PrintLog::open(dir.path()).unwrap();
        assert!(log.claim("pr_a ok\n1 pr_b").is_err());
        assert!(log.claim("").is_err());
        assert_eq!(log.outcome("pr_b"), None);
    }
}
