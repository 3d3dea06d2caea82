//! `portico files ls|get`: one remote-browsing request in a headless session — a listing
//! printed, or a file downloaded to a hidden partial file, its SHA-256 checked, then moved
//! into place (never over an existing file).

use std::io::Write;
use std::path::PathBuf;

use portico_core::wire::session::{Download, DownloadEnd, Listing};
use sha2::{Digest, Sha256};

use crate::notice::Notice;

/// What to ask the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BrowseJob {
    /// List `/ROOT/…` (`/`: the shared folders).
    List(String),
    /// Download the file at `path` to `out` (a directory keeps the remote name).
    Get {
        /// `/ROOT/…/file`.
        path: String,
        /// Where to put it.
        out: PathBuf,
    },
}

impl BrowseJob {
    /// The remote path.
    pub(crate) fn path(&self) -> &str {
        match self {
            BrowseJob::List(p) | BrowseJob::Get { path: p, .. } => p,
        }
    }
}

/// A download in progress.
pub(crate) struct Fetch {
    /// Where it ends up.
    dest: PathBuf,
    /// The hidden file being written.
    partial: PathBuf,
    /// The open partial file.
    file: Option<std::fs::File>,
    /// Bytes so far.
    written: u64,
    /// Running hash.
    hasher: Sha256,
}

impl Fetch {
    /// A download of `remote` into `out` (a directory: the remote file's name in it).
    pub(crate) fn new(remote: &str, out: &std::path::Path) -> Self {
        let name = portico_core::session::sanitize_name(remote);
        let dest = if out.is_dir() {
            out.join(name)
        } else {
            out.to_path_buf()
        };
        let partial = dest.with_file_name(format!(
            ".{}.portico-partial",
            dest.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        ));
        Self {
            dest,
            partial,
            file: None,
            written: 0,
            hasher: Sha256::new(),
        }
    }

    /// A chunk: written in order. Returns the notice to show.
    pub(crate) fn chunk(&mut self, d: Download) -> Result<Notice, String> {
        if d.offset != self.written || d.offset.saturating_add(d.data.len() as u64) > d.total {
            return Err("the host sent the file out of order".into());
        }
        let first = self.file.is_none();
        if first {
            if self.dest.exists() {
                return Err(format!(
                    "{} exists already; nothing overwritten",
                    self.dest.display()
                ));
            }
            let f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&self.partial)
                .map_err(|e| format!("{}: {e}", self.partial.display()))?;
            self.file = Some(f);
        }
        if let Some(f) = self.file.as_mut() {
            f.write_all(&d.data).map_err(|e| e.to_string())?;
        }
        self.hasher.update(&d.data);
        self.written += d.data.len() as u64;
        Ok(if first {
            Notice::FileStarted {
                id: u64::from(d.req),
                size: d.total,
            }
        } else {
            Notice::FileProgress {
                id: u64::from(d.req),
                sent: self.written,
            }
        })
    }

    /// The end: the hash checked and the file moved into place (where it is), or why not.
    pub(crate) fn finish(mut self, end: DownloadEnd) -> Result<PathBuf, String> {
        if let Some(e) = end.error {
            return Err(e);
        }
        let file = match self.file.take() {
            Some(f) => f,
            // An empty file: no chunk came.
            None => std::fs::File::create(&self.partial).map_err(|e| e.to_string())?,
        };
        file.sync_all().map_err(|e| e.to_string())?;
        drop(file);
        let ours = std::mem::take(&mut self.hasher).finalize().to_vec();
        if end.sha256.as_deref() != Some(ours.as_slice()) {
            return Err(
                "the file's SHA-256 does not match what the host sent; nothing kept".into(),
            );
        }
        // A hard link never replaces an existing file (unlike rename).
        std::fs::hard_link(&self.partial, &self.dest)
            .map_err(|e| format!("{}: {e}", self.dest.display()))?;
        Ok(self.dest.clone())
    }
}

impl Drop for Fetch {
    fn drop(&mut self) {
        // Finished or not, the partial name never stays behind.
        if let Err(e) = std::fs::remove_file(&self.partial) {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!(error = %e, "cannot remove a partial download");
            }
        }
    }
}

/// A listing as lines: `d name/` or `f name  SIZE`.
pub fn listing_lines(l: &Listing) -> Vec<String> {
    let mut lines: Vec<String> = l
        .entries
        .iter()
        .map(|e| {
            if e.dir {
                format!("{}/", e.name)
            } else {
                format!("{}\t{} bytes", e.name, e.size)
            }
        })
        .collect();
    if l.truncated {
        lines.push("… (more entries left out)".into());
    }
    lines
}

/// The window's files panel on the session side: its requests (numbered from 100, apart
/// from `portico files`' 1) and downloads into the viewer's download folder.
#[derive(Default)]
pub(crate) struct WindowFiles {
    /// The next request number.
    next: u32,
    /// Listings asked: request → folder.
    lists: std::collections::HashMap<u32, String>,
    /// Downloads running.
    fetches: std::collections::HashMap<u32, Fetch>,
}

/// Request numbers from here on are the window's.
const FIRST_WINDOW_REQ: u32 = 100;

impl WindowFiles {
    /// Whether `req` is one of the window's.
    pub(crate) fn owns(&self, req: u32) -> bool {
        req >= FIRST_WINDOW_REQ
    }

    /// Sends the panel's ask; a download goes to the viewer's download folder.
    pub(crate) fn ask(
        &mut self,
        m: &mut portico_core::session::ViewerSession,
        ask: crate::window::files_panel::BrowseAsk,
    ) -> Result<Option<String>, portico_core::session::SessionError> {
        let req = FIRST_WINDOW_REQ + self.next;
        self.next = self.next.wrapping_add(1) % (u32::MAX - FIRST_WINDOW_REQ);
        if ask.get {
            let Some(dir) = portico_core::data_dir::default_downloads() else {
                return Ok(Some("no download folder (no home folder)".into()));
            };
            if let Err(e) = std::fs::create_dir_all(&dir) {
                return Ok(Some(format!("{}: {e}", dir.display())));
            }
            self.fetches.insert(req, Fetch::new(&ask.path, &dir));
        } else {
            self.lists.insert(req, ask.path.clone());
        }
        m.browse(req, &ask.path, ask.get)?;
        Ok(None)
    }

    /// A listing for the panel: the folder it was for, and the listing.
    pub(crate) fn listing(&mut self, l: Listing) -> Option<(String, Listing)> {
        let path = self.lists.remove(&l.req)?;
        Some((path, l))
    }

    /// A chunk of a panel download: a status line now and then.
    pub(crate) fn download(&mut self, d: Download) -> Option<String> {
        let req = d.req;
        let total = d.total;
        let f = self.fetches.get_mut(&req)?;
        match f.chunk(d) {
            Ok(Notice::FileStarted { .. }) => Some(format!("downloading: {total} bytes")),
            Ok(_) => None,
            Err(e) => {
                self.fetches.remove(&req);
                Some(e)
            }
        }
    }

    /// The end of a panel download: where it landed, or why not.
    pub(crate) fn end(&mut self, e: DownloadEnd) -> Option<String> {
        let f = self.fetches.remove(&e.req)?;
        Some(match f.finish(e) {
            Ok(path) => format!("saved as {}", path.display()),
            Err(e) => e,
        })
    }
}
