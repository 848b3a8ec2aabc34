//! `request_id`s that are unique per device and never reused, even across
//! restarts: a counter persisted (write, fsync, rename) before each id is
//! used, behind a random instance tag made when the counter file is created,
//! so a wiped SD card cannot replay an old id into an old ticket.

use std::io::Write;
use std::path::{Path, PathBuf};

use rand::Rng;

pub struct RequestIds {
    path: PathBuf,
    instance: String,
    next: u64,
}

impl RequestIds {
    pub fn open(dir: &Path) -> std::io::Result<RequestIds> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join("request-counter");
        let (instance, next) = match std::fs::read_to_string(&path) {
            Ok(text) => {
                let mut parts = text.split_whitespace();
                let instance = parts.next().unwrap_or_default().to_string();
                let next = parts.next().and_then(|n| n.parse().ok()).unwrap_or(0);
                if instance.is_empty() {
                    (new_instance(), 0)
                } else {
                    (instance, next)
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => (new_instance(), 0),
            Err(e) => return Err(e),
        };
        let ids = RequestIds {
            path,
            instance,
            next,
        };
        ids.persist(ids.next)?;
        Ok(ids)
    }

    fn persist(&self, next: u64) -> std::io::Result<()> {
        let tmp = self.path.with_extension("tmp");
        let mut f = std::fs::File::create(&tmp)?;
        writeln!(f, "{} {next}", self.instance)?;
        f.sync_all()?;
        std::fs::rename(&tmp, &self.path)?;
        if let Some(dir) = self.path.parent()
            && let Ok(d) = std::fs::File::open(dir)
        {
            let _ = d.sync_all();
        }
        Ok(())
    }

    /// The next id; the counter is on disk before the id is returned.
    pub fn next_id(&mut self) -> std::io::Result<String> {
        let n = self.next;
        self.persist(n + 1)?;
        self.next = n + 1;
        Ok(format!("{}-{n:06}", self.instance))
    }
}

fn new_instance() -> String {
    const ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyz23456789";
    let mut rng = rand::rng();
    (0..8)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_continue_across_restarts_and_are_valid_request_ids() {
        let dir = tempfile::tempdir().unwrap();
        let mut a = RequestIds::open(dir.path()).unwrap();
        let first = a.next_id().unwrap();
        let second = a.next_id().unwrap();
        assert_ne!(first, second);
        drop(a);
        let mut b = RequestIds::open(dir.path()).unwrap();
        let third = b.next_id().unwrap();
        assert!(third.ends_with("-000002"), "{third}");
        assert_eq!(third.split('-').next(), first.split('-').next());
        for id in [&first, &second, &third] {
            assert!(luot_protocol::valid_request_id(id), "{id}");
        }
        // A wiped state directory starts a new instance: no id comes back.
        let other = tempfile::tempdir().unwrap();
        let mut c = RequestIds::open(other.path()).unwrap();
        assert_ne!(c.next_id().unwrap(), first);
    }
}
