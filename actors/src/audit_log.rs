//! The host's local audit log: every access and service decision, append-only and
//! hash-chained (`DATA/audit.jsonl`, mode 0600). Each line carries the SHA-256 of the previous
//! line's entry, so an edited or removed line breaks the chain ([`verify`]).

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// One entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// Position, from 1.
    pub seq: u64,
    /// Unix seconds.
    pub at: u64,
    /// What happened (`allowed`, `refused`, `owner_accepted`, `kicked`, …).
    pub action: String,
    /// Details.
    pub detail: String,
    /// Hash of the previous entry (hex; zeros first).
    pub prev: String,
    /// This entry's hash (hex).
    pub hash: String,
}

fn entry_hash(seq: u64, at: u64, action: &str, detail: &str, prev: &str) -> String {
    let mut h = Sha256::new();
    for part in [
        seq.to_string().as_str(),
        &at.to_string(),
        action,
        detail,
        prev,
    ] {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part.as_bytes());
    }
    hex::encode(h.finalize())
}

/// An open audit log.
#[derive(Debug)]
pub struct AuditLog {
    /// The file, opened for appending.
    file: File,
    /// Where it is.
    path: PathBuf,
    /// Last sequence number.
    seq: u64,
    /// Last hash.
    last: String,
}

impl AuditLog {
    /// Opens (or creates, mode 0600) the log, checking the existing chain.
    pub fn open(path: &Path) -> Result<Self, String> {
        let (seq, last) = match verify(path) {
            Ok(v) => v,
            Err(e) => return Err(format!("{}: {e}", path.display())),
        };
        let mut opts = OpenOptions::new();
        opts.create(true).append(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let file = opts
            .open(path)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(Self {
            file,
            path: path.to_path_buf(),
            seq,
            last,
        })
    }

    /// Appends an entry (flushed to disk).
    pub fn append(&mut self, action: &str, detail: &str) -> Result<(), String> {
        let at = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let seq = self.seq + 1;
        let hash = entry_hash(seq, at, action, detail, &self.last);
        let e = Entry {
            seq,
            at,
            action: action.into(),
            detail: detail.into(),
            prev: self.last.clone(),
            hash: hash.clone(),
        };
        let mut line = serde_json::to_string(&e).map_err(|e| e.to_string())?;
        line.push('\n');
        self.file
            .write_all(line.as_bytes())
            .and_then(|()| self.file.sync_data())
            .map_err(|e| format!("{}: {e}", self.path.display()))?;
        self.seq = seq;
        self.last = hash;
        Ok(())
    }
}

/// Checks the chain; returns the last sequence number and hash.
pub fn verify(path: &Path) -> Result<(u64, String), String> {
    let zero = "0".repeat(64);
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((0, zero)),
        Err(e) => return Err(e.to_string()),
    };
    let (mut seq, mut last) = (0u64, zero);
    for (n, line) in BufReader::new(file).lines().enumerate() {
        let line = line.map_err(|e| e.to_string())?;
        let e: Entry = serde_json::from_str(&line)
            .map_err(|err| format!("line {}: not an entry ({err})", n + 1))?;
        if e.seq != seq + 1
            || e.prev != last
            || entry_hash(e.seq, e.at, &e.action, &e.detail, &e.prev) != e.hash
        {
            return Err(format!(
                "audit chain broken at line {} (entry {})",
                n + 1,
                e.seq
            ));
        }
        seq = e.seq;
        last = e.hash;
    }
    Ok((seq, last))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_and_tamper() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("audit.jsonl");
        let mut log = AuditLog::open(&p).unwrap();
        log.append("allowed", "peer x").unwrap();
        log.append("kicked", "session 1").unwrap();
        drop(log);
        let mut log = AuditLog::open(&p).unwrap();
        log.append("refused", "guest y").unwrap();
        assert_eq!(verify(&p).unwrap().0, 3);
        let text = std::fs::read_to_string(&p)
            .unwrap()
            .replace("session 1", "session 2");
        std::fs::write(&p, text).unwrap();
        assert!(verify(&p).unwrap_err().contains("line 2"));
        assert!(AuditLog::open(&p).is_err());
    }
}
