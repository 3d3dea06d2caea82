//! The folders a host shares for remote browsing, and the file-system work behind it.
//!
//! A viewer names paths `/ROOT/sub/dir`: ROOT is one of the owner's roots (by its last
//! component; `/` lists them). Every path is resolved to its real path (symlinks followed)
//! and must stay inside its root's real path: `..`, a symlink out of the root, or a root
//! that is not there are refused. Listings leave out entries that lead outside.

use std::io::Read;
use std::path::{Component, Path, PathBuf};

use portico_core::wire::session::{DirEntry, DOWNLOAD_CHUNK, MAX_LISTING};
use sha2::{Digest, Sha256};

/// The shared roots: a name each, and the real path.
#[derive(Debug, Clone, Default)]
pub struct Roots(Vec<(String, PathBuf)>);

impl Roots {
    /// The roots at `paths` (missing ones left out, with a warning); names are the last
    /// path components, made unique.
    pub fn new(paths: &[PathBuf]) -> Self {
        let mut roots: Vec<(String, PathBuf)> = Vec::new();
        for p in paths {
            let real = match p.canonicalize() {
                Ok(r) if r.is_dir() => r,
                _ => {
                    tracing::warn!(path = %p.display(), "a shared folder for browsing is not there; left out");
                    continue;
                }
            };
            let base = real
                .file_name()
                .map(|n| portico_core::text::clean(&n.to_string_lossy(), 64))
                .filter(|n| !n.is_empty())
                .unwrap_or_else(|| "root".into());
            let mut name = base.clone();
            let mut n = 2;
            while roots.iter().any(|(m, _)| *m == name) {
                name = format!("{base}-{n}");
                n += 1;
            }
            roots.push((name, real));
        }
        Self(roots)
    }

    /// The real path for `/ROOT/…` (`None` for `/`, the list of roots), or why not.
    pub fn resolve(&self, path: &str) -> Result<Option<PathBuf>, String> {
        Ok(self.resolve_in(path)?.map(|(_, real)| real))
    }

    /// [`Roots::resolve`], with the real path of the root it is inside.
    fn resolve_in(&self, path: &str) -> Result<Option<(&Path, PathBuf)>, String> {
        let mut parts = Path::new(path).components().peekable();
        if !matches!(parts.next(), Some(Component::RootDir)) {
            return Err(format!(
                "{path:?}: paths start with / and a shared folder's name"
            ));
        }
        let Some(first) = parts.next() else {
            return Ok(None);
        };
        let Component::Normal(root_name) = first else {
            return Err(format!("{path:?}: `..` is not allowed"));
        };
        let (_, root) = self
            .0
            .iter()
            .find(|(n, _)| n.as_str() == root_name.to_string_lossy())
            .ok_or_else(|| format!("no shared folder called {:?}", root_name.to_string_lossy()))?;
        let mut p = root.clone();
        for c in parts {
            match c {
                Component::Normal(s) => p.push(s),
                Component::CurDir => {}
                _ => return Err(format!("{path:?}: `..` is not allowed")),
            }
        }
        let real = p.canonicalize().map_err(|e| format!("{path:?}: {e}"))?;
        if !real.starts_with(root) {
            return Err(format!("{path:?} leads outside the shared folder"));
        }
        Ok(Some((root, real)))
    }

    /// The entries of `path`: directories first, then by name; `true` when cut at
    /// [`MAX_LISTING`].
    pub fn list(&self, path: &str) -> Result<(Vec<DirEntry>, bool), String> {
        let Some((root, dir)) = self.resolve_in(path)? else {
            let roots = self
                .0
                .iter()
                .map(|(name, _)| DirEntry {
                    name: name.clone(),
                    dir: true,
                    size: 0,
                    modified: 0,
                })
                .collect();
            return Ok((roots, false));
        };
        let read = std::fs::read_dir(&dir).map_err(|e| format!("{path:?}: {e}"))?;
        let mut entries = Vec::new();
        let mut truncated = false;
        for entry in read.flatten() {
            // Followed, and kept only when it stays inside the root.
            let Ok(real) = entry.path().canonicalize() else {
                continue;
            };
            if !real.starts_with(root) {
                continue;
            }
            let Ok(meta) = std::fs::metadata(&real) else {
                continue;
            };
            if entries.len() == MAX_LISTING {
                truncated = true;
                break;
            }
            let modified = meta
                .modified()
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_secs());
            entries.push(DirEntry {
                name: portico_core::text::clean(&entry.file_name().to_string_lossy(), 255),
                dir: meta.is_dir(),
                size: if meta.is_dir() { 0 } else { meta.len() },
                modified,
            });
        }
        entries.sort_by(|a, b| b.dir.cmp(&a.dir).then_with(|| a.name.cmp(&b.name)));
        Ok((entries, truncated))
    }

    /// Opens the regular file at `path` for a download: the file and its size.
    pub fn open(&self, path: &str) -> Result<(std::fs::File, u64), String> {
        let real = self
            .resolve(path)?
            .ok_or("`/` is the list of shared folders, not a file")?;
        let file = std::fs::File::open(&real).map_err(|e| format!("{path:?}: {e}"))?;
        let meta = file.metadata().map_err(|e| format!("{path:?}: {e}"))?;
        if !meta.is_file() {
            return Err(format!("{path:?} is not a file"));
        }
        Ok((file, meta.len()))
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
mod tests {
    use super::*;

    #[test]
    fn paths_stay_inside_their_root() {
        let dir = tempfile::tempdir().unwrap();
        let share = dir.path().join("share");
        let secret = dir.path().join("secret");
        std::fs::create_dir_all(share.join("docs")).unwrap();
        std::fs::create_dir_all(&secret).unwrap();
        std::fs::write(share.join("docs/a.txt"), b"hello").unwrap();
        std::fs::write(secret.join("key"), b"no").unwrap();
        std::os::unix::fs::symlink(&secret, share.join("escape")).unwrap();
        std::os::unix::fs::symlink(share.join("docs/a.txt"), share.join("inside")).unwrap();
        let roots = Roots::new(&[share.clone(), dir.path().join("missing")]);

        let (top, _) = roots.list("/").unwrap();
        assert_eq!(
            top.iter().map(|e| e.name.as_str()).collect::<Vec<_>>(),
            ["share"]
        );
        let (entries, truncated) = roots.list("/share").unwrap();
        assert!(!truncated);
        let names: Vec<_> = entries.iter().map(|e| (e.name.as_str(), e.dir)).collect();
        assert_eq!(
            names,
            [("docs", true), ("inside", false)],
            "the escaping link is not listed"
        );
        assert!(roots
            .resolve("/share/../secret")
            .unwrap_err()
            .contains(".."));
        assert!(roots
            .resolve("/share/escape/key")
            .unwrap_err()
            .contains("outside"));
        assert!(roots
            .resolve("/share/escape")
            .unwrap_err()
            .contains("outside"));
        assert!(roots.resolve("share").is_err());
        assert!(roots
            .resolve("/nope/x")
            .unwrap_err()
            .contains("no shared folder"));
        let (file, size) = roots.open("/share/docs/a.txt").unwrap();
        assert_eq!(size, 5);
        let mut got = Vec::new();
        let sha = read_chunks(file, |_, d| {
            got.extend(d);
            true
        })
        .unwrap()
        .unwrap();
        assert_eq!(got, b"hello");
        assert_eq!(sha, Sha256::digest(b"hello").to_vec());
        assert!(roots
            .open("/share/docs")
            .unwrap_err()
            .contains("not a file"));
    }
}
