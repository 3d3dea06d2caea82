//! The host's local audit log: every access and service decision, append-only and
//! hash-chained (`DATA/audit.jsonl`, mode 0600) with the same chain as the server's log
//! (`portico_core::audit_chain`): each line carries the previous entry's hash, so an edited
//! or removed line breaks the chain ([`verify`]).

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use portico_core::audit_chain::{Chain, Fields};
use serde::{Deserialize, Serialize};

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

/// The actor of every host entry (the server's log names admins and users).
const ACTOR: &str = "host";

fn hex32(s: &str) -> Option<[u8; 32]> {
    hex::decode(s).ok()?.try_into().ok()
}

/// An open audit log.
#[derive(Debug)]
pub struct AuditLog {
    /// The file, opened for appending.
    file: File,
    /// Where it is.
    path: PathBuf,
    /// The chain's head.
    chain: Chain,
}

impl AuditLog {
    /// Opens (or creates, mode 0600) the log, checking the existing chain.
    pub fn open(path: &Path) -> Result<Self, String> {
        let chain = verify(path).map_err(|e| format!("{}: {e}", path.display()))?;
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
            chain,
        })
    }

    /// Makes every entry written so far durable.
    fn sync(&mut self) -> Result<(), String> {
        self.file
            .sync_data()
            .map_err(|e| format!("{}: {e}", self.path.display()))
    }

    /// Writes an entry made at `at` (durable at the next [`AuditLog::sync`]).
    fn write(&mut self, at: u64, action: &str, detail: &str) -> Result<(), String> {
        let mut chain = self.chain;
        let (seq, prev, hash) = chain.append(at, ACTOR, action, detail);
        let e = Entry {
            seq,
            at,
            action: action.into(),
            detail: detail.into(),
            prev: hex::encode(prev),
            hash: hex::encode(hash),
        };
        let mut line = serde_json::to_string(&e).map_err(|e| e.to_string())?;
        line.push('\n');
        self.file
            .write_all(line.as_bytes())
            .map_err(|e| format!("{}: {e}", self.path.display()))?;
        self.chain = chain;
        Ok(())
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Entries waiting for the writer thread.
pub const WRITER_QUEUE: usize = 4096;

/// The audit log on its own thread: the access actor hands entries over without waiting
/// for the disk, and the thread writes whatever has queued up with one sync per batch. A
/// flood that fills the queue is not lost silently: the next batch records how many entries
/// it could not keep (`audit_overflow`).
#[derive(Debug)]
pub struct AuditWriter {
    /// The queue (`None` once closing).
    tx: Option<crossbeam_channel::Sender<(u64, &'static str, String)>>,
    /// Entries refused because the queue was full, not yet recorded.
    dropped: std::sync::Arc<std::sync::atomic::AtomicU64>,
    /// The thread (joined on drop, so queued entries reach the disk).
    thread: Option<std::thread::JoinHandle<()>>,
}

impl AuditWriter {
    /// Moves `log` to a writer thread with a queue of `capacity` entries.
    pub fn spawn(mut log: AuditLog, capacity: usize) -> Result<Self, String> {
        let (tx, rx) = crossbeam_channel::bounded::<(u64, &'static str, String)>(capacity);
        let dropped = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let lost = dropped.clone();
        let thread = std::thread::Builder::new()
            .name("portico-audit".into())
            .spawn(move || {
                while let Ok(first) = rx.recv() {
                    let mut result = Ok(());
                    for (at, action, detail) in std::iter::once(first).chain(rx.try_iter()) {
                        result = result.and_then(|()| log.write(at, action, &detail));
                    }
                    let n = lost.swap(0, std::sync::atomic::Ordering::Relaxed);
                    if n > 0 {
                        let detail = format!("{n} entries not kept: the queue was full");
                        result =
                            result.and_then(|()| log.write(unix_now(), "audit_overflow", &detail));
                    }
                    if let Err(e) = result.and_then(|()| log.sync()) {
                        tracing::error!(error = %e, "cannot write the host audit log");
                    }
                }
            })
            .map_err(|e| format!("cannot start the audit writer: {e}"))?;
        Ok(Self {
            tx: Some(tx),
            dropped,
            thread: Some(thread),
        })
    }

    /// Queues an entry (never blocks; counted when the queue is full).
    pub fn append(&self, action: &'static str, detail: String) {
        let Some(tx) = &self.tx else { return };
        if tx.try_send((unix_now(), action, detail)).is_err() {
            self.dropped
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }
}

impl Drop for AuditWriter {
    fn drop(&mut self) {
        self.tx = None;
        if let Some(t) = self.thread.take() {
            if t.join().is_err() {
                tracing::error!("the audit writer thread panicked");
            }
        }
    }
}

/// Checks the chain; returns its head (last sequence number and hash).
pub fn verify(path: &Path) -> Result<Chain, String> {
    let mut chain = Chain::default();
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(chain),
        Err(e) => return Err(e.to_string()),
    };
    for (n, line) in BufReader::new(file).lines().enumerate() {
        let line = line.map_err(|e| e.to_string())?;
        let e: Entry = serde_json::from_str(&line)
            .map_err(|err| format!("line {}: not an entry ({err})", n + 1))?;
        let fields = Fields {
            seq: e.seq,
            at: e.at,
            actor: ACTOR,
            action: &e.action,
            detail: &e.detail,
        };
        let (prev, hash) = (
            hex32(&e.prev).unwrap_or_default(),
            hex32(&e.hash).unwrap_or_default(),
        );
        chain
            .check(&fields, &prev, &hash)
            .map_err(|t| format!("audit chain broken at line {} ({t})", n + 1))?;
    }
    Ok(chain)
}

#[cfg(test)]
mod tests {
    use super::*;

    impl AuditLog {
        /// Appends an entry, durable at once.
        fn append(&mut self, action: &str, detail: &str) -> Result<(), String> {
            self.write(unix_now(), action, detail)?;
            self.sync()
        }
    }

    #[test]
    fn the_writer_keeps_every_entry_or_says_how_many_it_could_not() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("audit.jsonl");
        let w = AuditWriter::spawn(AuditLog::open(&p).unwrap(), 4).unwrap();
        for i in 0..5000 {
            w.append("refused", format!("request {i}"));
        }
        drop(w);
        let chain = verify(&p).unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        let kept = text.lines().filter(|l| l.contains("\"refused\"")).count() as u64;
        let lost: u64 = text
            .lines()
            .filter_map(|l| serde_json::from_str::<Entry>(l).ok())
            .filter(|e| e.action == "audit_overflow")
            .filter_map(|e| e.detail.split(' ').next()?.parse::<u64>().ok())
            .sum();
        assert_eq!(kept + lost, 5000, "kept {kept}, recorded as lost {lost}");
        assert!(chain.seq >= kept);
    }

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
        assert_eq!(verify(&p).unwrap().seq, 3);
        let text = std::fs::read_to_string(&p)
            .unwrap()
            .replace("session 1", "session 2");
        std::fs::write(&p, text).unwrap();
        assert!(verify(&p).unwrap_err().contains("line 2"));
        assert!(AuditLog::open(&p).is_err());
    }
}
