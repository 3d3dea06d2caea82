//! Opening a path beneath a shared folder's directory without a check-then-open race.
//!
//! The kernel resolves the path relative to the root's file descriptor with `openat2` and
//! `RESOLVE_BENEATH`: `..` or a symlink that would leave the root fails inside the same
//! system call, so nothing can swap a component for a link between a check and the open.
//! Kernels without `openat2` (before 5.6) get a walk one component at a time with
//! `O_NOFOLLOW`: no symlink is followed at all there.

use std::ffi::OsStr;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fs::{Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

/// How a path beneath the root is opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Open {
    /// A handle for `fstat` and the real path only (`O_PATH`): opens nothing for reading,
    /// so a FIFO or device node has no effect.
    Path,
    /// A directory to read.
    Dir,
    /// A file to read; `O_NONBLOCK` so a FIFO cannot block the host.
    Read,
}

impl Open {
    fn flags(self) -> OFlags {
        // openat2 refuses flags O_PATH ignores (EINVAL), so O_NOCTTY only where it counts.
        match self {
            Self::Path => OFlags::CLOEXEC | OFlags::PATH,
            Self::Dir => OFlags::CLOEXEC | OFlags::RDONLY | OFlags::DIRECTORY,
            Self::Read => OFlags::CLOEXEC | OFlags::NOCTTY | OFlags::RDONLY | OFlags::NONBLOCK,
        }
    }
}

/// Why a path could not be opened beneath its root.
#[derive(Debug, thiserror::Error)]
pub(crate) enum BeneathError {
    /// It leads outside the root (`..` or a symlink out).
    #[error("it leads outside the shared folder")]
    Outside,
    /// The system said no.
    #[error("{0}")]
    Io(#[source] std::io::Error),
}

impl From<Errno> for BeneathError {
    fn from(e: Errno) -> Self {
        if e == Errno::XDEV {
            Self::Outside
        } else {
            Self::Io(e.into())
        }
    }
}

/// Opens `rel` (relative, only normal components) beneath the directory `root`.
pub(crate) fn open(root: &OwnedFd, rel: &Path, how: Open) -> Result<OwnedFd, BeneathError> {
    let rel: &OsStr = if rel.as_os_str().is_empty() {
        OsStr::new(".")
    } else {
        rel.as_os_str()
    };
    let resolve = ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS;
    match rustix::fs::openat2(root.as_fd(), rel, how.flags(), Mode::empty(), resolve) {
        Err(Errno::NOSYS) => walk(root, Path::new(rel), how),
        other => Ok(other?),
    }
}

/// The fallback: one component at a time, never following a symlink.
fn walk(root: &OwnedFd, rel: &Path, how: Open) -> Result<OwnedFd, BeneathError> {
    let mut dir = rustix::fs::openat(root, ".", Open::Path.flags(), Mode::empty())?;
    let parts: Vec<&OsStr> = rel
        .components()
        .filter_map(|c| match c {
            std::path::Component::Normal(s) => Some(Ok(s)),
            std::path::Component::CurDir => None,
            _ => Some(Err(BeneathError::Outside)),
        })
        .collect::<Result<_, _>>()?;
    for (i, part) in parts.iter().enumerate() {
        let last = i + 1 == parts.len();
        let flags = if last {
            how.flags()
        } else {
            Open::Path.flags() | OFlags::DIRECTORY
        };
        dir = rustix::fs::openat(&dir, *part, flags | OFlags::NOFOLLOW, Mode::empty()).map_err(
            |e| {
                if e == Errno::LOOP {
                    BeneathError::Outside
                } else {
                    e.into()
                }
            },
        )?;
    }
    if parts.is_empty() && how != Open::Path {
        dir = rustix::fs::openat(root, ".", how.flags(), Mode::empty())?;
    }
    Ok(dir)
}

/// The real path the kernel has for an open descriptor (`/proc/self/fd`), or an error: a
/// path that cannot be told is refused, never assumed harmless.
pub(crate) fn real_path(fd: &OwnedFd) -> Result<PathBuf, BeneathError> {
    use std::os::fd::AsRawFd;
    let link = format!("/proc/self/fd/{}", fd.as_raw_fd());
    let target = rustix::fs::readlinkat(rustix::fs::CWD, link, Vec::new())?;
    Ok(PathBuf::from(OsStr::from_bytes(target.as_bytes())))
}

/// Opens for reading the very file `fd` (an `O_PATH` handle) names, through
/// `/proc/self/fd`: no path is resolved again, so nothing can be swapped in between.
pub(crate) fn reopen(fd: &OwnedFd) -> Result<OwnedFd, BeneathError> {
    use std::os::fd::AsRawFd;
    let link = format!("/proc/self/fd/{}", fd.as_raw_fd());
    Ok(rustix::fs::open(link, Open::Read.flags(), Mode::empty())?)
}

#[cfg(test)]
pub(crate) fn walk_for_test(
    root: &OwnedFd,
    rel: &Path,
    how: Open,
) -> Result<OwnedFd, BeneathError> {
    walk(root, rel, how)
}
