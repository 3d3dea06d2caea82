//! The folders a host shares for remote browsing, and the file-system work behind it.
//!
//! A viewer names paths `/ROOT/sub/dir`: ROOT is one of the owner's roots (by its last
//! component; `/` lists them). Every path is opened by the kernel beneath its root's open
//! directory (`openat2` with `RESOLVE_BENEATH`, see [`beneath`]): `..` or a symlink out of
//! the root are refused in the same system call that opens, with no window between a check
//! and the open. Whatever the roots say, dot-files and dot-directories, key files and the
//! host's own data dir and config are never listed or served ([`hidden`]); only folders and
//! regular files are listed, and a download opens only a regular file, so a FIFO or device
//! node can neither block nor be read.

mod beneath;
pub mod hidden;

use std::io::Read;
use std::os::fd::OwnedFd;
use std::path::{Component, Path, PathBuf};

use portico_core::wire::session::{DirEntry, DOWNLOAD_CHUNK, MAX_LISTING};
use rustix::fs::{FileType, Mode, OFlags};
use sha2::{Digest, Sha256};

use beneath::{BeneathError, Open};
use hidden::{has_secret_component, is_secret_name, Private};

/// Why a browse request cannot be answered. The texts go to the viewer.
#[derive(Debug, thiserror::Error)]
pub enum BrowseError {
    /// Not of the form `/ROOT/…`.
    #[error("{path:?}: paths start with / and a shared folder's name")]
    NotAbsolute {
        /// The path asked for.
        path: String,
    },
    /// It names `..`.
    #[error("{path:?}: `..` is not allowed")]
    DotDot {
        /// The path asked for.
        path: String,
    },
    /// No root of that name.
    #[error("no shared folder called {name:?}")]
    NoSuchRoot {
        /// The root name asked for.
        name: String,
    },
    /// A dot-file, key file or the host's own data: never shared.
    #[error("{path:?} is not shared (hidden files, keys and the host's own data never are)")]
    Hidden {
        /// The path asked for.
        path: String,
    },
    /// A symlink or `..` out of the root.
    #[error("{path:?} leads outside the shared folder")]
    Outside {
        /// The path asked for.
        path: String,
    },
    /// A download of something that is not a regular file.
    #[error("{path:?} is not a file")]
    NotAFile {
        /// The path asked for.
        path: String,
    },
    /// The list of roots is not a file.
    #[error("`/` is the list of shared folders, not a file")]
    RootList,
    /// The system said no.
    #[error("{path:?}: {source}")]
    Io {
        /// The path asked for.
        path: String,
        /// What the system said.
        #[source]
        source: std::io::Error,
    },
}

impl BrowseError {
    /// What opening `path` beneath its root came to.
    fn beneath(path: &str, e: BeneathError) -> Self {
        let path = path.to_string();
        match e {
            BeneathError::Outside => Self::Outside { path },
            BeneathError::Io(source) => Self::Io { path, source },
        }
    }
}

/// One shared folder: its name for viewers, its real path, its open directory.
#[derive(Debug)]
struct Root {
    name: String,
    real: PathBuf,
    fd: OwnedFd,
}

/// The shared roots, and what is never served from them.
#[derive(Debug, Default)]
pub struct Roots {
    roots: Vec<Root>,
    private: Private,
}

/// A path resolved to its root and the open descriptor (`O_PATH`) of what it names.
struct Found<'a> {
    root: &'a Root,
    rel: PathBuf,
    fd: OwnedFd,
}

impl Roots {
    /// The roots at `paths` (missing, hidden or private ones left out, with a warning);
    /// `private` are the host's own files (data dir, config), never served. Names are the
    /// last path components, made unique.
    pub fn new(paths: &[PathBuf], private: &[PathBuf]) -> Self {
        let private = Private::new(private);
        let mut roots: Vec<Root> = Vec::new();
        for p in paths {
            let Some((real, fd)) = open_root(p, &private) else {
                continue;
            };
            let base = real
                .file_name()
                .map(|n| portico_core::text::clean(&n.to_string_lossy(), 64))
                .filter(|n| !n.is_empty())
                .unwrap_or_else(|| "root".into());
            let mut name = base.clone();
            let mut n = 2;
            while roots.iter().any(|r| r.name == name) {
                name = format!("{base}-{n}");
                n += 1;
            }
            roots.push(Root { name, real, fd });
        }
        Self { roots, private }
    }

    /// The names of the shared folders.
    pub fn names(&self) -> Vec<&str> {
        self.roots.iter().map(|r| r.name.as_str()).collect()
    }

    /// Finds `/ROOT/…` (`None` for `/`, the list of roots), opened beneath its root.
    fn find(&self, path: &str) -> Result<Option<Found<'_>>, BrowseError> {
        let owned = || path.to_string();
        let mut parts = Path::new(path).components();
        if !matches!(parts.next(), Some(Component::RootDir)) {
            return Err(BrowseError::NotAbsolute { path: owned() });
        }
        let Some(first) = parts.next() else {
            return Ok(None);
        };
        let Component::Normal(root_name) = first else {
            return Err(BrowseError::DotDot { path: owned() });
        };
        let root_name = root_name.to_string_lossy();
        let root = self
            .roots
            .iter()
            .find(|r| r.name == root_name)
            .ok_or_else(|| BrowseError::NoSuchRoot {
                name: root_name.into_owned(),
            })?;
        let mut rel = PathBuf::new();
        for c in parts {
            match c {
                Component::Normal(s) => rel.push(s),
                Component::CurDir => {}
                _ => return Err(BrowseError::DotDot { path: owned() }),
            }
        }
        if has_secret_component(&rel) {
            return Err(BrowseError::Hidden { path: owned() });
        }
        let fd =
            beneath::open(&root.fd, &rel, Open::Path).map_err(|e| BrowseError::beneath(path, e))?;
        let found = Found { root, rel, fd };
        if !self.shareable(&found) {
            return Err(BrowseError::Hidden { path: owned() });
        }
        Ok(Some(found))
    }

    /// Whether what `found` opened (after the symlinks inside the root) may be shown: its
    /// real path is inside the root, names no secret and is not the host's own data.
    fn shareable(&self, found: &Found<'_>) -> bool {
        let Ok(real) = beneath::real_path(&found.fd) else {
            return false;
        };
        match real.strip_prefix(&found.root.real) {
            Ok(inside) => !has_secret_component(inside) && !self.private.covers(&real),
            Err(_) => false,
        }
    }

    /// The entries of `path`: directories first, then by name; `true` when cut at
    /// [`MAX_LISTING`].
    pub fn list(&self, path: &str) -> Result<(Vec<DirEntry>, bool), BrowseError> {
        let io = |source: std::io::Error| BrowseError::Io {
            path: path.to_string(),
            source,
        };
        let Some(found) = self.find(path)? else {
            let roots = self
                .roots
                .iter()
                .map(|r| DirEntry {
                    name: r.name.clone(),
                    dir: true,
                    size: 0,
                    modified: 0,
                })
                .collect();
            return Ok((roots, false));
        };
        let dir = beneath::open(&found.root.fd, &found.rel, Open::Dir)
            .map_err(|e| BrowseError::beneath(path, e))?;
        let read = rustix::fs::Dir::read_from(&dir).map_err(|e| io(e.into()))?;
        let mut entries = Vec::new();
        let mut truncated = false;
        for entry in read.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name == "." || name == ".." || is_secret_name(&name) {
                continue;
            }
            let Some(e) = self.entry(&found, &name) else {
                continue;
            };
            if entries.len() == MAX_LISTING {
                truncated = true;
                break;
            }
            entries.push(e);
        }
        entries.sort_by(|a, b| b.dir.cmp(&a.dir).then_with(|| a.name.cmp(&b.name)));
        Ok((entries, truncated))
    }

    /// One listed entry: followed beneath the root, kept when shareable and a folder or a
    /// regular file.
    fn entry(&self, dir: &Found<'_>, name: &str) -> Option<DirEntry> {
        let rel = dir.rel.join(name);
        let fd = beneath::open(&dir.root.fd, &rel, Open::Path).ok()?;
        let child = Found {
            root: dir.root,
            rel,
            fd,
        };
        if !self.shareable(&child) {
            return None;
        }
        let stat = rustix::fs::fstat(&child.fd).ok()?;
        let kind = FileType::from_raw_mode(stat.st_mode);
        let is_dir = kind == FileType::Directory;
        if !is_dir && kind != FileType::RegularFile {
            return None;
        }
        Some(DirEntry {
            name: portico_core::text::clean(name, 255),
            dir: is_dir,
            size: if is_dir {
                0
            } else {
                stat.st_size.max(0) as u64
            },
            modified: stat.st_mtime.max(0) as u64,
        })
    }

    /// Opens the regular file at `path` for a download: the file and its size. The file
    /// is checked through an `O_PATH` handle and then reopened through that same handle,
    /// so what is read is what was checked.
    pub fn open(&self, path: &str) -> Result<(std::fs::File, u64), BrowseError> {
        let io = |source: std::io::Error| BrowseError::Io {
            path: path.to_string(),
            source,
        };
        let found = self.find(path)?.ok_or(BrowseError::RootList)?;
        let stat = rustix::fs::fstat(&found.fd).map_err(|e| io(e.into()))?;
        if FileType::from_raw_mode(stat.st_mode) != FileType::RegularFile {
            return Err(BrowseError::NotAFile { path: path.into() });
        }
        let file = std::fs::File::from(
            beneath::reopen(&found.fd).map_err(|e| BrowseError::beneath(path, e))?,
        );
        let meta = file.metadata().map_err(io)?;
        if !meta.is_file() {
            return Err(BrowseError::NotAFile { path: path.into() });
        }
        Ok((file, meta.len()))
    }
}

/// Opens a root the owner named: its real path and directory, unless it is not there, is a
/// hidden folder or holds the host's own data.
fn open_root(p: &Path, private: &Private) -> Option<(PathBuf, OwnedFd)> {
    let warn = |why: &str| {
        tracing::warn!(path = %p.display(), "a shared folder for browsing is left out: {why}");
    };
    let Ok(real) = p.canonicalize() else {
        warn("it is not there");
        return None;
    };
    let secret = real
        .file_name()
        .is_some_and(|n| is_secret_name(&n.to_string_lossy()));
    if secret || private.covers(&real) {
        warn("hidden folders and the host's own data are never shared");
        return None;
    }
    let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC;
    match rustix::fs::open(&real, flags, Mode::empty()) {
        Ok(fd) => Some((real, fd)),
        Err(e) => {
            warn(&format!("it is not a folder that can be opened ({e})"));
            None
        }
    }
}

/// Reads `file` in download chunks, calling `chunk(offset, data)` for each until it says
/// stop; the SHA-256 of everything read when it went to the end.
pub fn read_chunks(
    mut file: std::fs::File,
    mut chunk: impl FnMut(u64, Vec<u8>) -> bool,
) -> Result<Option<Vec<u8>>, String> {
    let mut hasher = Sha256::new();
    let mut offset = 0u64;
    loop {
        let mut buf = vec![0u8; DOWNLOAD_CHUNK];
        let n = file.read(&mut buf).map_err(|e| e.to_string())?;
        if n == 0 {
            return Ok(Some(hasher.finalize().to_vec()));
        }
        buf.truncate(n);
        hasher.update(&buf);
        if !chunk(offset, buf) {
            return Ok(None);
        }
        offset += n as u64;
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
impl Roots {
    fn resolve_for_test(&self, path: &str) -> Result<(), BrowseError> {
        self.find(path).map(|_| ())
    }
}
