//! The backup file, the same for every backend: a magic line, then
//! length-prefixed key/value entries, a zero-length key, the entry count and
//! a sha256 of everything before it. Keys name what a value is, by prefix:
//! `L` + u64 BE log position (a `Record`), `M` + name (metadata: `Mformat`,
//! `Mlineage` the lineage of rule 112),
//! `S` + sha256 of a login token (a `Session`), `A` + ticket id (an archived
//! `TicketRec`), `R` + day (a past day's report), `V` + day (a past day's
//! visits report), and `Xsnapshot` (the
//! latest `StoredSnapshot`). Values are JSON. sled keeps these keys and
//! three more that never go into a backup: `K` day keys (rule 81), `W`
//! webhook bodies and `H` webhook cursors (rule 90), so its backup is a walk
//! over its tree that leaves those out.

use std::io::{Read, Write};

use sha2::{Digest, Sha256};

use super::StoreError;

pub const MAGIC: &[u8] = b"LUOT-BACKUP 1\n";
/// The key under which the latest snapshot travels.
pub const SNAPSHOT_KEY: &[u8] = b"Xsnapshot";

pub fn prefixed(p: u8, rest: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + rest.len());
    k.push(p);
    k.extend_from_slice(rest);
    k
}

pub fn log_key(index: u64) -> Vec<u8> {
    prefixed(b'L', &index.to_be_bytes())
}

/// The log position in a log key.
pub fn log_index(key: &[u8]) -> Result<u64, StoreError> {
    key.get(1..)
        .and_then(|k| k.try_into().ok())
        .map(u64::from_be_bytes)
        .ok_or_else(|| StoreError::Corrupt("log key".into()))
}

/// Writes a backup entry by entry.
pub struct Writer<'a> {
    out: &'a mut dyn Write,
    hasher: Sha256,
    n: u64,
}

impl<'a> Writer<'a> {
    pub fn new(out: &'a mut dyn Write) -> Result<Writer<'a>, StoreError> {
        let mut w = Writer {
            out,
            hasher: Sha256::new(),
            n: 0,
        };
        w.put(MAGIC)?;
        Ok(w)
    }

    fn put(&mut self, buf: &[u8]) -> Result<(), StoreError> {
        self.hasher.update(buf);
        Ok(self.out.write_all(buf)?)
    }

    pub fn entry(&mut self, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        self.put(&(key.len() as u32).to_be_bytes())?;
        self.put(key)?;
        self.put(&(value.len() as u32).to_be_bytes())?;
        self.put(value)?;
        self.n += 1;
        Ok(())
    }

    /// Writes the trailer; returns the number of entries.
    pub fn finish(mut self) -> Result<u64, StoreError> {
        self.put(&0u32.to_be_bytes())?;
        let n = self.n;
        self.put(&n.to_be_bytes())?;
        let digest = self.hasher.finalize();
        self.out.write_all(&digest)?;
        self.out.flush()?;
        Ok(n)
    }
}

/// A backup's entries: (key, value), in order.
pub type Entries = Vec<(Vec<u8>, Vec<u8>)>;

/// Reads and verifies a whole backup; its entries in order.
pub fn read(input: &mut dyn Read) -> Result<Entries, StoreError> {
    let mut all = Vec::new();
    input.read_to_end(&mut all)?;
    if all.len() < MAGIC.len() + 4 + 8 + 32 || !all.starts_with(MAGIC) {
        return Err(bad("not a luot backup"));
    }
    let (body, digest) = all.split_at(all.len() - 32);
    if Sha256::digest(body).as_slice() != digest {
        return Err(bad("checksum mismatch (truncated or damaged)"));
    }
    let mut c = Cursor {
        body,
        at: MAGIC.len(),
    };
    let mut entries = Vec::new();
    loop {
        let klen = c.len()?;
        if klen == 0 {
            break;
        }
        let k = c.take(klen)?.to_vec();
        let vlen = c.len()?;
        entries.push((k, c.take(vlen)?.to_vec()));
    }
    let n = u64::from_be_bytes(c.take(8)?.try_into().unwrap_or_default());
    if n != entries.len() as u64 || c.at != body.len() {
        return Err(bad("entry count mismatch"));
    }
    Ok(entries)
}

fn bad(m: &str) -> StoreError {
    StoreError::Corrupt(format!("backup file: {m}"))
}

struct Cursor<'a> {
    body: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], StoreError> {
        let s = self
            .body
            .get(self.at..self.at + n)
            .ok_or_else(|| bad("truncated"))?;
        self.at += n;
        Ok(s)
    }

    fn len(&mut self) -> Result<usize, StoreError> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes(b.try_into().unwrap_or_default()) as usize)
    }
}
