//! Receiving files on the host: sanitised names, no hidden overwrite, bounded sizes, hash
//! checked at the end, and a partial file removed on any failure or when dropped unfinished.

use std::io::Write;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

pub use portico_core::session::{sanitize_name, MAX_FILE};

/// Why a file cannot be received.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// The download folder or file cannot be written.
    #[error("cannot write {path}: {source}")]
    Io {
        /// Where.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// More bytes than announced, or out of order.
    #[error("bad chunk: {0}")]
    Protocol(String),
    /// The content does not match the announced hash or size.
    #[error("the file arrived damaged (hash or size mismatch); nothing was kept")]
    Mismatch,
    /// Larger than allowed.
    #[error("file of {size} bytes exceeds the maximum of {MAX_FILE}")]
    TooLarge {
        /// Announced size.
        size: u64,
    },
    /// The download folder's disk would be left with less than [`SPACE_MARGIN`].
    #[error("not enough free space for {size} bytes in {path} ({free} bytes free, {SPACE_MARGIN} kept in reserve)")]
    NoSpace {
        /// Where.
        path: PathBuf,
        /// Announced size.
        size: u64,
        /// Bytes free for this user.
        free: u64,
    },
}

/// Free space a transfer must leave on the download folder's disk (a peer's file never
/// fills the owner's disk to the last byte).
pub const SPACE_MARGIN: u64 = 64 * 1024 * 1024;

/// Whether `size` bytes fit in `dir` with `free` bytes free, leaving [`SPACE_MARGIN`].
fn room(dir: &Path, size: u64, free: u64) -> Result<(), FileError> {
    if size.saturating_add(SPACE_MARGIN) > free {
        return Err(FileError::NoSpace {
            path: dir.to_path_buf(),
            size,
            free,
        });
    }
    Ok(())
}

/// `dir/name`, or `dir/name (1).ext`, `dir/name (2).ext`… — never an existing file.
pub fn unique_path(dir: &Path, name: &str) -> PathBuf {
    let first = dir.join(name);
    if !first.exists() {
        return first;
    }
    let (stem, ext) = match name.rsplit_once('.') {
        Some((s, e)) if !s.is_empty() => (s.to_string(), format!(".{e}")),
        _ => (name.to_string(), String::new()),
    };
    (1..)
        .map(|n| dir.join(format!("{stem} ({n}){ext}")))
        .find(|p| !p.exists())
        .unwrap_or(first)
}

/// How a partial file's name starts; the receiving process's id and the transfer number
/// follow, so a host that starts again can tell its dead predecessor's leftovers from the
/// live transfers of another host sharing the folder.
const PARTIAL_PREFIX: &str = ".portico-partial-";

/// Removes the partial files in `dir` left by a host that died mid-transfer (killed, or the
/// machine lost power: `Drop` never ran). Called when a host starts, before it receives
/// anything, so files with its own process id are leftovers too (a reused id); files of
/// other processes still running are left alone. Returns how many were removed.
pub fn sweep_partials(dir: &Path) -> Result<usize, FileError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(source) => {
            return Err(FileError::Io {
                path: dir.to_path_buf(),
                source,
            })
        }
    };
    let mut removed = 0;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix(PARTIAL_PREFIX))
            .and_then(|rest| rest.split_once('-'))
            .and_then(|(pid, _)| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if process_alive(pid) {
            continue;
        }
        let path = entry.path();
        std::fs::remove_file(&path).map_err(|source| FileError::Io { path, source })?;
        removed += 1;
    }
    Ok(removed)
}

/// Whether another process `pid` is running (where that cannot be told, it is assumed to
/// be, so a live transfer's file is never removed).
fn process_alive(pid: u32) -> bool {
    if cfg!(target_os = "linux") {
        pid != std::process::id() && Path::new("/proc").join(pid.to_string()).exists()
    } else {
        true
    }
}

/// A file being received.
#[derive(Debug)]
pub struct Incoming {
    /// The partial file.
    file: Option<std::fs::File>,
    /// Its path (hidden, in the download folder).
    partial: PathBuf,
    /// Where it lands when complete.
    dir: PathBuf,
    /// Sanitised name.
    name: String,
    /// Announced size.
    size: u64,
    /// Announced SHA-256.
    sha256: Vec<u8>,
    /// Bytes written.
    written: u64,
    /// Running hash.
    hasher: Sha256,
}

impl Incoming {
    /// Starts receiving `name` (sanitised) into `dir` (created, mode 0700, when missing).
    pub fn start(
        dir: &Path,
        transfer_id: u64,
        name: &str,
        size: u64,
        sha256: Vec<u8>,
    ) -> Result<Self, FileError> {
        if size > MAX_FILE {
            return Err(FileError::TooLarge { size });
        }
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| FileError::Io { path, source }
        };
        let mut b = std::fs::DirBuilder::new();
        b.recursive(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::DirBuilderExt;
            b.mode(0o700);
        }
        b.create(dir).map_err(io(dir))?;
        // Checked before accepting (fail closed: a free space that cannot be read refuses).
        room(dir, size, fs4::available_space(dir).map_err(io(dir))?)?;
        let partial = dir.join(format!(
            "{PARTIAL_PREFIX}{}-{transfer_id}",
            std::process::id()
        ));
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&partial)
            .map_err(io(&partial))?;
        Ok(Self {
            file: Some(file),
            partial,
            dir: dir.to_path_buf(),
            name: sanitize_name(name),
            size,
            sha256,
            written: 0,
            hasher: Sha256::new(),
        })
    }

    /// Bytes received so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Writes the chunk at `offset` (must follow the previous one).
    pub fn write(&mut self, offset: u64, data: &[u8]) -> Result<(), FileError> {
        if offset != self.written {
            return Err(FileError::Protocol(format!(
                "chunk at {offset}, expected {}",
                self.written
            )));
        }
        if self.written + data.len() as u64 > self.size {
            return Err(FileError::Protocol("more bytes than announced".into()));
        }
        let f = self
            .file
            .as_mut()
            .ok_or_else(|| FileError::Protocol("transfer already finished".into()))?;
        f.write_all(data).map_err(|source| FileError::Io {
            path: self.partial.clone(),
            source,
        })?;
        self.hasher.update(data);
        self.written += data.len() as u64;
        Ok(())
    }

    /// Checks size and hash and moves the file to its final, unique name.
    pub fn finish(mut self) -> Result<PathBuf, FileError> {
        let file = self
            .file
            .take()
            .ok_or_else(|| FileError::Protocol("transfer already finished".into()))?;
        file.sync_all().map_err(|source| FileError::Io {
            path: self.partial.clone(),
            source,
        })?;
        drop(file);
        let hash = std::mem::take(&mut self.hasher).finalize();
        if self.written != self.size || hash.as_slice() != self.sha256.as_slice() {
            return Err(FileError::Mismatch);
        }
        let dest = unique_path(&self.dir, &self.name);
        // hard_link fails if `dest` appeared meanwhile: never overwrite.
        std::fs::hard_link(&self.partial, &dest).map_err(|source| FileError::Io {
            path: dest.clone(),
            source,
        })?;
        Ok(dest)
    }
}

impl Drop for Incoming {
    fn drop(&mut self) {
        // Unfinished, failed or finished: the partial name never stays behind.
        match std::fs::remove_file(&self.partial) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                tracing::warn!(error = %e, path = %self.partial.display(), "cannot remove a partial file")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_sanitised() {
        assert_eq!(sanitize_name("../../etc/passwd"), "passwd");
        assert_eq!(sanitize_name("..\\..\\windows\\system.ini"), "system.ini");
        assert_eq!(sanitize_name(".bashrc"), "bashrc");
        assert_eq!(sanitize_name(".."), "file");
        assert_eq!(sanitize_name("/"), "file");
        assert_eq!(sanitize_name("a\u{0}b\nc.txt"), "abc.txt");
        assert_eq!(sanitize_name("report.pdf"), "report.pdf");
        assert_eq!(sanitize_name("invoice\u{202E}fdp.exe"), "invoicefdp.exe");
        assert_eq!(sanitize_name("a\u{200B}b\u{2066}.txt"), "ab.txt");
        assert_eq!(sanitize_name(&"x".repeat(500)).len(), 200);
    }

    #[test]
    fn leftovers_of_dead_hosts_are_swept_and_live_ones_kept() {
        let dir = tempfile::tempdir().unwrap();
        // A pid above the kernel's maximum (4194304) is never alive; ours is a leftover
        // (the sweep runs before this process receives anything); pid 1 is alive.
        let dead = dir.path().join(format!("{PARTIAL_PREFIX}4294967295-7"));
        let reused = dir
            .path()
            .join(format!("{PARTIAL_PREFIX}{}-9", std::process::id()));
        let live = dir.path().join(format!("{PARTIAL_PREFIX}1-8"));
        let other = dir.path().join(".portico-partial-notes.txt");
        for p in [&dead, &reused, &live, &other] {
            std::fs::write(p, b"half").unwrap();
        }
        assert_eq!(sweep_partials(dir.path()).unwrap(), 2);
        assert!(!dead.exists() && !reused.exists() && live.exists() && other.exists());
        assert_eq!(sweep_partials(&dir.path().join("missing")).unwrap(), 0);
    }

    #[test]
    fn receive_verify_and_no_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let data = b"hello portico".to_vec();
        let sha = Sha256::digest(&data).to_vec();
        std::fs::write(dir.path().join("note.txt"), b"keep me").unwrap();
        let mut inc =
            Incoming::start(dir.path(), 1, "../note.txt", data.len() as u64, sha.clone()).unwrap();
        inc.write(0, &data[..5]).unwrap();
        assert!(inc.write(0, &data[5..]).is_err(), "out of order");
        inc.write(5, &data[5..]).unwrap();
        let dest = inc.finish().unwrap();
        assert_eq!(dest, dir.path().join("note (1).txt"));
        assert_eq!(std::fs::read(&dest).unwrap(), data);
        assert_eq!(
            std::fs::read(dir.path().join("note.txt")).unwrap(),
            b"keep me"
        );

        // Wrong hash: nothing kept. Dropped unfinished: nothing kept.
        let mut bad = Incoming::start(dir.path(), 2, "x.bin", 3, vec![0; 32]).unwrap();
        bad.write(0, b"abc").unwrap();
        assert!(matches!(bad.finish(), Err(FileError::Mismatch)));
        let mut half = Incoming::start(dir.path(), 3, "y.bin", 10, sha).unwrap();
        half.write(0, b"abc").unwrap();
        assert!(half.write(3, &[0; 20]).is_err(), "more than announced");
        drop(half);
        let names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        let mut names = names;
        names.sort();
        assert_eq!(names, vec!["note (1).txt", "note.txt"]);
        assert!(fs4::available_space(dir.path()).unwrap() > 0);
        assert!(room(dir.path(), 1000, 1000 + SPACE_MARGIN).is_ok());
        assert!(matches!(
            room(dir.path(), 1001, 1000 + SPACE_MARGIN),
            Err(FileError::NoSpace { .. })
        ));
        assert!(matches!(
            Incoming::start(dir.path(), 4, "big", MAX_FILE + 1, vec![]),
            Err(FileError::TooLarge { .. })
        ));
    }
}
