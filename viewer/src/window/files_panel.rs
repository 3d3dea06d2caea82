//! The window's files panel (Ctrl+Alt+F): the host's shared folders, browsed with the arrow
//! keys — Enter opens a folder or downloads a file (into the viewer's download folder),
//! Backspace goes up, Escape closes the panel. While it shows, keys and clicks stay local.
//! The host decides as for `portico files`: `files` is needed, and a guest or visitor waits
//! for the owner's yes once per session.

use portico_core::wire::session::{DirEntry, Listing};
use winit::keyboard::{Key, NamedKey};

use super::picker::Canvas;

/// What the panel asks the session for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrowseAsk {
    /// `/FOLDER/…`.
    pub path: String,
    /// Download it (a file) instead of listing it.
    pub get: bool,
}

/// The panel's state.
#[derive(Debug)]
pub(crate) struct FilesPanel {
    /// The folder shown (or being loaded).
    path: String,
    /// Its entries.
    entries: Vec<DirEntry>,
    /// The highlighted row.
    selected: usize,
    /// A line about what is going on (loading, a download's outcome, an error).
    status: String,
}

impl FilesPanel {
    /// A panel at `/`, loading.
    pub(crate) fn open() -> (Self, BrowseAsk) {
        let panel = Self {
            path: "/".into(),
            entries: Vec::new(),
            selected: 0,
            status: "asking the host…".into(),
        };
        (
            panel,
            BrowseAsk {
                path: "/".into(),
                get: false,
            },
        )
    }

    /// A listing arrived (for the folder asked last; older ones are dropped).
    pub(crate) fn listing(&mut self, path: &str, l: Listing) {
        if path != self.path {
            return;
        }
        match l.error {
            Some(e) => self.status = e,
            None => {
                self.status = format!(
                    "{} entries{}",
                    l.entries.len(),
                    if l.truncated { " (more left out)" } else { "" }
                );
                self.entries = l.entries;
                self.selected = 0;
            }
        }
        tracing::info!(path = %self.path, status = %self.status, "files panel listing");
    }

    /// A line about a download (progress, where it landed, why not).
    pub(crate) fn status(&mut self, line: String) {
        tracing::info!(status = %line, "files panel");
        self.status = line;
    }

    /// A key: `Some(ask)` when the session must list or download; `Err(())` for Escape
    /// (close the panel).
    pub(crate) fn key(&mut self, key: &Key) -> Result<Option<BrowseAsk>, ()> {
        match key {
            Key::Named(NamedKey::Escape) => return Err(()),
            Key::Named(NamedKey::ArrowUp) => self.selected = self.selected.saturating_sub(1),
            Key::Named(NamedKey::ArrowDown) if self.selected + 1 < self.entries.len() => {
                self.selected += 1
            }
            Key::Named(NamedKey::Backspace) if self.path != "/" => {
                let parent = match self.path.rsplit_once('/') {
                    Some(("", _)) | None => "/".to_string(),
                    Some((p, _)) => p.to_string(),
                };
                return Ok(Some(self.go(parent)));
            }
            Key::Named(NamedKey::Enter) => {
                let Some(e) = self.entries.get(self.selected) else {
                    return Ok(None);
                };
                let path = if self.path == "/" {
                    format!("/{}", e.name)
                } else {
                    format!("{}/{}", self.path, e.name)
                };
                if e.dir {
                    return Ok(Some(self.go(path)));
                }
                self.status = format!("downloading {}…", e.name);
                return Ok(Some(BrowseAsk { path, get: true }));
            }
            _ => {}
        }
        Ok(None)
    }

    fn go(&mut self, path: String) -> BrowseAsk {
        self.path = path.clone();
        self.entries.clear();
        self.selected = 0;
        self.status = "asking the host…".into();
        BrowseAsk { path, get: false }
    }

    /// Draws the panel over the right part of the window.
    pub(crate) fn draw(&self, buf: &mut [u32], w: u32, h: u32) {
        let x0 = w.saturating_sub(w.min(640));
        let mut c = Canvas::new(buf, w, h);
        c.fill(x0, 0, w - x0, h, 0x0020_2428);
        c.text(x0 + 16, 16, &format!("Files: {}", self.path), 0x00e8_e8e8);
        c.text(x0 + 16, 40, &self.status, 0x0090_9090);
        for (i, e) in self.entries.iter().enumerate() {
            let y = 72 + i as u32 * 24;
            if y + 24 > h {
                break;
            }
            if i == self.selected {
                c.fill(x0, y, w - x0, 24, 0x0030_5a8c);
            }
            let line = if e.dir {
                format!("{}/", e.name)
            } else {
                format!("{}  {} bytes", e.name, e.size)
            };
            c.text(x0 + 16, y + 4, &line, 0x00ff_ffff);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str, dir: bool) -> DirEntry {
        DirEntry {
            name: name.into(),
            dir,
            size: 3,
            modified: 0,
        }
    }

    fn listing(entries: Vec<DirEntry>) -> Listing {
        Listing {
            req: 1,
            entries,
            truncated: false,
            error: None,
        }
    }

    #[test]
    fn folders_open_files_download_and_backspace_goes_up() {
        let (mut p, ask) = FilesPanel::open();
        assert_eq!(ask.path, "/");
        p.listing("/", listing(vec![entry("share", true)]));
        let enter = Key::Named(NamedKey::Enter);
        let ask = p.key(&enter).unwrap().unwrap();
        assert_eq!((ask.path.as_str(), ask.get), ("/share", false));
        // A late answer for another folder is dropped.
        p.listing("/", listing(vec![entry("x", true)]));
        p.listing(
            "/share",
            listing(vec![entry("docs", true), entry("a.txt", false)]),
        );
        assert_eq!(p.key(&Key::Named(NamedKey::ArrowDown)), Ok(None));
        let ask = p.key(&enter).unwrap().unwrap();
        assert_eq!((ask.path.as_str(), ask.get), ("/share/a.txt", true));
        let up = p.key(&Key::Named(NamedKey::Backspace)).unwrap().unwrap();
        assert_eq!(up.path, "/");
        assert_eq!(p.key(&Key::Named(NamedKey::Escape)), Err(()));
    }
}
