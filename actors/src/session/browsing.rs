//! A live session's remote browsing: listings, and downloads read on the blocking pool and
//! fed to the session loop through a small bounded channel (a slow viewer slows the reader,
//! memory stays bounded).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use portico_core::session::HostSession;
use portico_core::wire::session::{Browse, Download, DownloadEnd, Listing};
use portico_signal_client::session_io::StreamError;
use tokio::sync::mpsc;

use crate::browse::{read_chunks, Roots};

/// Downloads one session may run at once.
const MAX_DOWNLOADS: usize = 2;

/// What the reader threads report.
pub(crate) enum Read {
    /// A chunk to send.
    Chunk(Download),
    /// The end (its hash or error), with what to audit.
    End(DownloadEnd, String),
}

/// The session's browsing state.
pub(crate) struct Browsing {
    /// The shared folders.
    roots: Arc<Roots>,
    /// Reader threads send here…
    tx: mpsc::Sender<Read>,
    /// …and the session loop reads here.
    pub(crate) rx: mpsc::Receiver<Read>,
    /// Running downloads and their stop flags.
    running: HashMap<u32, Arc<AtomicBool>>,
}

impl Browsing {
    pub(crate) fn new(roots: Arc<Roots>) -> Self {
        let (tx, rx) = mpsc::channel(4);
        Self {
            roots,
            tx,
            rx,
            running: HashMap::new(),
        }
    }

    /// An allowed `Browse`: a listing now, or a download started. Returns an audit line.
    pub(crate) async fn start(
        &mut self,
        b: Browse,
        m: &mut HostSession,
    ) -> Result<(&'static str, String), StreamError> {
        let roots = self.roots.clone();
        if !b.get {
            let path = b.path.clone();
            let listed =
                tokio::task::spawn_blocking(move || roots.list(&path).map_err(|e| e.to_string()))
                    .await
                    .unwrap_or_else(|e| Err(format!("the listing stopped: {e}")));
            let audit = format!(
                "{} ({})",
                b.path,
                listed
                    .as_ref()
                    .map_or_else(|e| e.clone(), |l| format!("{} entries", l.0.len()))
            );
            let (entries, truncated, error) = match listed {
                Ok((entries, truncated)) => (entries, truncated, None),
                Err(e) => (Vec::new(), false, Some(e)),
            };
            m.listing(Listing {
                req: b.req,
                entries,
                truncated,
                error,
            })?;
            return Ok(("browse_list", audit));
        }
        if self.running.len() >= MAX_DOWNLOADS || self.running.contains_key(&b.req) {
            m.download_end(DownloadEnd {
                req: b.req,
                sha256: None,
                error: Some(format!("at most {MAX_DOWNLOADS} downloads at once")),
            })?;
            return Ok(("download_refused", b.path));
        }
        let path = b.path.clone();
        let opened =
            tokio::task::spawn_blocking(move || roots.open(&path).map_err(|e| e.to_string()))
                .await
                .unwrap_or_else(|e| Err(format!("opening stopped: {e}")));
        let (file, total) = match opened {
            Ok(f) => f,
            Err(e) => {
                m.download_end(DownloadEnd {
                    req: b.req,
                    sha256: None,
                    error: Some(e.clone()),
                })?;
                return Ok(("download_refused", format!("{}: {e}", b.path)));
            }
        };
        let stop = Arc::new(AtomicBool::new(false));
        self.running.insert(b.req, stop.clone());
        let (tx, req, path) = (self.tx.clone(), b.req, b.path.clone());
        tokio::task::spawn_blocking(move || {
            let read = read_chunks(file, |offset, data| {
                !stop.load(Ordering::Relaxed)
                    && tx
                        .blocking_send(Read::Chunk(Download {
                            req,
                            offset,
                            total,
                            data,
                        }))
                        .is_ok()
            });
            let (sha256, error) = match read {
                Ok(Some(sha)) => (Some(sha), None),
                Ok(None) => return,
                Err(e) => (None, Some(e)),
            };
            let audit = format!(
                "{path} ({total} bytes){}",
                error
                    .as_deref()
                    .map(|e| format!(": {e}"))
                    .unwrap_or_default()
            );
            if tx
                .blocking_send(Read::End(DownloadEnd { req, sha256, error }, audit))
                .is_err()
            {
                tracing::debug!("the session ended during a download");
            }
        });
        Ok(("download_started", format!("{} ({total} bytes)", b.path)))
    }

    /// A reader's report: sent on, or the download stopped. Returns an audit line at the end.
    pub(crate) fn on_read(
        &mut self,
        r: Read,
        m: &mut HostSession,
    ) -> Result<Option<(&'static str, String)>, StreamError> {
        match r {
            Read::Chunk(d) => {
                let req = d.req;
                if !self.running.contains_key(&req) {
                    return Ok(None);
                }
                if !m.download(d)? {
                    if let Some(stop) = self.running.remove(&req) {
                        stop.store(true, Ordering::Relaxed);
                    }
                    return Ok(Some(("download_stopped", format!("request {req}"))));
                }
                Ok(None)
            }
            Read::End(end, audit) => {
                if self.running.remove(&end.req).is_none() {
                    return Ok(None);
                }
                let action = if end.error.is_none() {
                    "file_sent"
                } else {
                    "download_failed"
                };
                m.download_end(end)?;
                Ok(Some((action, audit)))
            }
        }
    }
}

impl Drop for Browsing {
    fn drop(&mut self) {
        for stop in self.running.values() {
            stop.store(true, Ordering::Relaxed);
        }
    }
}
