//! Remote-browsing answers, on the driver's side: the window's files panel (its requests)
//! or `portico files` (request 1, which ends the session when answered).

use portico_core::session::ViewerEvent;

use super::{notify, Driver, Notice};
use crate::{window, ViewerError};

impl Driver<'_> {
    /// A listing, download chunk or download end.
    pub(super) fn browse_event(&mut self, ev: ViewerEvent) {
        match ev {
            ViewerEvent::Listing(l) if self.window_files.owns(l.req) => {
                if let Some((path, l)) = self.window_files.listing(l) {
                    self.to_window(window::UiEvent::Listing(path, l));
                }
            }
            ViewerEvent::Download(d) if self.window_files.owns(d.req) => {
                if let Some(line) = self.window_files.download(d) {
                    self.to_window(window::UiEvent::FilesStatus(line));
                }
            }
            ViewerEvent::DownloadEnd(e) if self.window_files.owns(e.req) => {
                if let Some(line) = self.window_files.end(e) {
                    self.to_window(window::UiEvent::FilesStatus(line));
                }
            }
            ViewerEvent::Listing(l) => {
                notify(
                    &self.opts.notify,
                    Notice::Listing(crate::fetch::listing_lines(&l)),
                );
                self.ended = Some(l.error.map(ViewerError::Browse));
            }
            ViewerEvent::Download(d) => {
                let step = match self.fetch.as_mut() {
                    Some(f) => f.chunk(d),
                    None => Err("a download nobody asked for".into()),
                };
                match step {
                    Ok(n) => notify(&self.opts.notify, n),
                    Err(e) => {
                        self.fetch = None;
                        self.ended = Some(Some(ViewerError::Browse(e)));
                    }
                }
            }
            ViewerEvent::DownloadEnd(e) => {
                let done = match self.fetch.take() {
                    Some(f) => f.finish(e),
                    None => Err(e
                        .error
                        .unwrap_or_else(|| "a download nobody asked for".into())),
                };
                self.ended = Some(match done {
                    Ok(path) => {
                        let msg = format!("saved as {}", path.display());
                        notify(&self.opts.notify, Notice::FileSent(msg.clone()));
                        self.report.file_result = Some(msg);
                        None
                    }
                    Err(e) => Some(ViewerError::Browse(e)),
                });
            }
            _ => {}
        }
    }
}
