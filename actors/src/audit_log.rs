//! The host's local audit log: every access and service decision, append-only and
//! hash-chained (`DATA/audit.jsonl`, mode 0600) with the same chain as the server's log
//! (`portico_core::audit_chain`): each line carries the previous entry's hash, so an edited
//! or removed line breaks the chain ([`verify`]).
//!
//! The log rotates: past [`MAX_LOG_BYTES`] the file becomes `audit.1.jsonl` (older ones
//! move up to `audit.4.jsonl`, the oldest is dropped) and a new `audit.jsonl` goes on with
//! the same chain: its first entry links to the last entry of `audit.1.jsonl`. A stranger's
//! flood therefore costs bounded disk, and a removed or edited rotated file still breaks
//! the chain ([`verify`] anchors the live file on `audit.1.jsonl`'s last entry;
//! [`verify_all`] checks every kept file in order).

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use portico_core::audit_chain::{Chain, Fields, Tampered};
use serde::{Deserialize, Serialize};

/// Why the audit log cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// The file system said no.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What the system said.
        #[source]
        source: std::io::Error,
    },
    /// A line that is not an entry.
    #[error("{}: line {line}: not an entry ({reason})", path.display())]
    NotAnEntry {
        /// The file.
        path: PathBuf,
        /// Its line, from 1.
        line: usize,
        /// What the parser said.
        reason: String,
    },
    /// The hash chain does not verify.
    #[error("{}: audit chain broken at line {line} ({tampered})", path.display())]
    Broken {
        /// The file.
        path: PathBuf,
        /// Its line, from 1.
        line: usize,
        /// What does not check out.
        #[source]
        tampered: Tampered,
    },
    /// An entry could not be encoded.
    #[error("encoding an audit entry: {0}")]
    Encode(#[source] serde_json::Error),
    /// The writer thread could not start.
    #[error("cannot start the audit writer: {0}")]
    Thread(#[source] std::io::Error),
}

fn io_at(path: &Path) -> impl FnOnce(std::io::Error) -> AuditError + '_ {
    move |source| AuditError::Io {
        path: path.to_path_buf(),
        source,
    }
}

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

/// The live file's size past which it rotates.
pub const MAX_LOG_BYTES: u64 = 8 * 1024 * 1024;
/// Rotated files kept (`audit.1.jsonl` … `audit.4.jsonl`).
pub const KEEP_ROTATED: u32 = 4;

/// An open audit log.
#[derive(Debug)]
pub struct AuditLog {
    /// The file, opened for appending.
    file: File,
    /// Where it is.
    path: PathBuf,
    /// The chain's head.
    chain: Chain,
    /// Bytes in the live file.
    size: u64,
    /// Rotate past this many bytes.
    limit: u64,
}

fn open_append(path: &Path) -> Result<File, AuditError> {
    let mut opts = OpenOptions::new();
    opts.create(true).append(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    opts.open(path).map_err(io_at(path))
}

/// `audit.jsonl`'s `n`th rotated file, `audit.N.jsonl`.
pub fn rotated(path: &Path, n: u32) -> PathBuf {
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "audit".into());
    path.with_file_name(format!("{stem}.{n}.jsonl"))
}

impl AuditLog {
    /// Opens (or creates, mode 0600) the log, checking the existing chain.
    pub fn open(path: &Path) -> Result<Self, AuditError> {
        Self::open_with_limit(path, MAX_LOG_BYTES)
    }

    /// [`AuditLog::open`], rotating past `limit` bytes.
    pub fn open_with_limit(path: &Path, limit: u64) -> Result<Self, AuditError> {
        let chain = verify(path)?;
        let file = open_append(path)?;
        let size = file.metadata().map_err(io_at(path))?.len();
        Ok(Self {
            file,
            path: path.to_path_buf(),
            chain,
            size,
            limit,
        })
    }

    /// The live file becomes `audit.1.jsonl` (the older ones move up, the oldest goes) and
    /// a new live file goes on with the chain.
    fn rotate(&mut self) -> Result<(), AuditError> {
        self.sync()?;
        let oldest = rotated(&self.path, KEEP_ROTATED);
        match std::fs::remove_file(&oldest) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_at(&oldest)(e)),
        }
        for n in (1..KEEP_ROTATED).rev() {
            let from = rotated(&self.path, n);
            if from.exists() {
                std::fs::rename(&from, rotated(&self.path, n + 1)).map_err(io_at(&from))?;
            }
        }
        std::fs::rename(&self.path, rotated(&self.path, 1)).map_err(io_at(&self.path))?;
        self.file = open_append(&self.path)?;
        self.size = 0;
        Ok(())
    }

    /// Makes every entry written so far durable.
    fn sync(&mut self) -> Result<(), AuditError> {
        self.file.sync_data().map_err(io_at(&self.path))
    }

    /// Writes an entry made at `at` (durable at the next [`AuditLog::sync`]).
    fn write(&mut self, at: u64, action: &str, detail: &str) -> Result<(), AuditError> {
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
        let mut line = serde_json::to_string(&e).map_err(AuditError::Encode)?;
        line.push('\n');
        if self.size > 0 && self.size + line.len() as u64 > self.limit {
            self.rotate()?;
        }
        self.file
            .write_all(line.as_bytes())
            .map_err(io_at(&self.path))?;
        self.size += line.len() as u64;
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
    pub fn spawn(mut log: AuditLog, capacity: usize) -> Result<Self, AuditError> {
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
            .map_err(AuditError::Thread)?;
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

/// Checks the live file's chain, anchored on the last entry of `audit.1.jsonl` when the log
/// has rotated; returns its head (last sequence number and hash).
pub fn verify(path: &Path) -> Result<Chain, AuditError> {
    let anchor = match last_entry(&rotated(path, 1))? {
        Some(e) => Chain::at(e.seq, hex32(&e.hash).unwrap_or_default()),
        None => Chain::default(),
    };
    check_file(path, anchor)
}

/// Checks every kept file, oldest first: the oldest is anchored on its own first entry (its
/// predecessors were dropped by rotation), each later one must go on from the one before.
/// Returns the head and how many files there were.
pub fn verify_all(path: &Path) -> Result<(Chain, u32), AuditError> {
    let mut files: Vec<PathBuf> = (1..=KEEP_ROTATED)
        .rev()
        .map(|n| rotated(path, n))
        .filter(|p| p.exists())
        .collect();
    files.push(path.to_path_buf());
    let mut chain = None;
    for f in &files {
        let anchor = match chain {
            Some(c) => c,
            None => match first_entry(f)? {
                Some(e) => Chain::at(e.seq.saturating_sub(1), hex32(&e.prev).unwrap_or_default()),
                None => Chain::default(),
            },
        };
        chain = Some(check_file(f, anchor)?);
    }
    Ok((chain.unwrap_or_default(), files.len() as u32))
}

fn entries(
    path: &Path,
) -> Result<Option<impl Iterator<Item = Result<Entry, AuditError>> + '_>, AuditError> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_at(path)(e)),
    };
    Ok(Some(BufReader::new(file).lines().enumerate().map(
        move |(n, line)| {
            let line = line.map_err(io_at(path))?;
            serde_json::from_str::<Entry>(&line).map_err(|err| AuditError::NotAnEntry {
                path: path.to_path_buf(),
                line: n + 1,
                reason: err.to_string(),
            })
        },
    )))
}

fn first_entry(path: &Path) -> Result<Option<Entry>, AuditError> {
    match entries(path)? {
        Some(mut it) => it.next().transpose(),
        None => Ok(None),
    }
}

fn last_entry(path: &Path) -> Result<Option<Entry>, AuditError> {
    let mut last = None;
    if let Some(it) = entries(path)? {
        for e in it {
            last = Some(e?);
        }
    }
    Ok(last)
}

fn check_file(path: &Path, mut chain: Chain) -> Result<Chain, AuditError> {
    let Some(it) = entries(path)? else {
        return Ok(chain);
    };
    for (n, e) in it.enumerate() {
        let e = e?;
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
            .map_err(|tampered| AuditError::Broken {
                path: path.to_path_buf(),
                line: n + 1,
                tampered,
            })?;
    }
    Ok(chain)
}

#[cfg(test)]
mod tests {
    use super::*;

    impl AuditLog {
        /// Appends an entry, durable at once.
        fn append(&mut self, action: &str, detail: &str) -> Result<(), AuditError> {
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
    fn the_log_rotates_with_its_chain_and_a_removed_file_shows() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("audit.jsonl");
        let mut log = AuditLog::open_with_limit(&p, 2048).unwrap();
        for i in 0..200 {
            log.write(unix_now(), "resume_refused", &format!("attempt {i}"))
                .unwrap();
        }
        log.sync().unwrap();
        drop(log);
        for n in 1..=KEEP_ROTATED {
            assert!(rotated(&p, n).exists(), "audit.{n}.jsonl");
        }
        assert!(
            !rotated(&p, KEEP_ROTATED + 1).exists(),
            "the oldest is dropped"
        );
        let total: u64 = (1..=KEEP_ROTATED)
            .map(|n| rotated(&p, n))
            .chain([p.clone()])
            .map(|f| std::fs::metadata(f).unwrap().len())
            .sum();
        assert!(
            total <= 2048 * u64::from(KEEP_ROTATED + 1),
            "{total} bytes kept"
        );
        assert_eq!(verify(&p).unwrap().seq, 200);
        let (head, files) = verify_all(&p).unwrap();
        assert_eq!((head.seq, files), (200, KEEP_ROTATED + 1));
        // The live file goes on from where it was.
        let mut log = AuditLog::open_with_limit(&p, 2048).unwrap();
        log.append("kicked", "session 9").unwrap();
        drop(log);
        assert_eq!(verify(&p).unwrap().seq, 201);
        // Removing the newest rotated file breaks the live file's link.
        std::fs::remove_file(rotated(&p, 1)).unwrap();
        assert!(verify(&p).unwrap_err().to_string().contains("line 1"));
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
        assert!(verify(&p).unwrap_err().to_string().contains("line 2"));
        assert!(AuditLog::open(&p).is_err());
    }
}
