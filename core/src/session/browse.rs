//! The host machine's side of remote browsing: who may browse, the owner's answer for the
//! session, and the answers the machine sends. The shell does the file-system work.

use crate::policy::Permission;
use crate::wire::session::{Browse, Download, DownloadEnd, Listing, Service, SessionMessage};

use super::host::{Ask, HostEvent, HostSession};
use super::SessionError;

/// Browse requests that may wait for the owner's answer.
const MAX_QUEUED: usize = 8;

/// Where a session stands with the owner about browsing.
#[derive(Debug, Default)]
pub(crate) enum Gate {
    /// Not asked yet.
    #[default]
    NotAsked,
    /// Asked; these requests wait for the answer.
    Asked(Vec<Browse>),
    /// Allowed for the rest of the session.
    Allowed,
    /// Refused for the rest of the session.
    Denied,
}

impl HostSession {
    /// A `Browse` from the viewer: refused without `browse`; for guests and visitors the
    /// owner is asked once per session; otherwise handed to the shell.
    pub(super) fn browse_in(&mut self, b: Browse) -> Result<(), SessionError> {
        if !self.permissions.has(Permission::Browse) {
            return self.browse_refused(
                &b,
                "this session may not browse files (it needs the browse permission)",
            );
        }
        if !self.confirm {
            self.events.push_back(HostEvent::Browse(b));
            return Ok(());
        }
        match &mut self.browse {
            Gate::Allowed => self.events.push_back(HostEvent::Browse(b)),
            Gate::Denied => return self.browse_refused(&b, "the owner refused browsing"),
            Gate::Asked(queue) if queue.len() >= MAX_QUEUED => {
                return self.browse_refused(&b, "too many requests wait for the owner")
            }
            Gate::Asked(queue) => queue.push(b),
            Gate::NotAsked => {
                let detail = format!(
                    "browse the shared folders (first: {})",
                    crate::text::clean(&b.path, 120)
                );
                self.browse = Gate::Asked(vec![b]);
                self.events.push_back(HostEvent::AskOwner {
                    ask: Ask::Browse,
                    service: Service::Browse,
                    detail,
                });
            }
        }
        Ok(())
    }

    /// The owner's answer about browsing: the waiting requests go ahead or are refused.
    pub(super) fn browse_answered(&mut self, allowed: bool) -> Result<(), SessionError> {
        let allowed = allowed && self.permissions.has(Permission::Browse);
        let waiting = match std::mem::take(&mut self.browse) {
            Gate::Asked(q) => q,
            other => {
                self.browse = other;
                return Ok(());
            }
        };
        self.browse = if allowed { Gate::Allowed } else { Gate::Denied };
        for b in waiting {
            if allowed {
                self.events.push_back(HostEvent::Browse(b));
            } else {
                self.browse_refused(&b, "the owner refused browsing")?;
            }
        }
        Ok(())
    }

    fn browse_refused(&mut self, b: &Browse, why: &str) -> Result<(), SessionError> {
        let error = Some(why.to_string());
        if b.get {
            self.download_end(DownloadEnd {
                req: b.req,
                sha256: None,
                error,
            })
        } else {
            self.listing(Listing {
                req: b.req,
                entries: Vec::new(),
                truncated: false,
                error,
            })
        }
    }

    /// The shell's listing (or why not).
    pub fn listing(&mut self, l: Listing) -> Result<(), SessionError> {
        self.send_live(&SessionMessage::Listing(l))
    }

    /// A chunk of a download; `false` when the session may no longer have it (it lost
    /// `browse`, or ended): the shell stops reading, the viewer is told why.
    pub fn download(&mut self, d: Download) -> Result<bool, SessionError> {
        if !self.is_live() {
            return Ok(false);
        }
        if !self.permissions.has(Permission::Browse) {
            self.download_end(DownloadEnd {
                req: d.req,
                sha256: None,
                error: Some("the session lost the browse permission".into()),
            })?;
            return Ok(false);
        }
        self.send_live(&SessionMessage::Download(d))?;
        Ok(true)
    }

    /// The end of a download.
    pub fn download_end(&mut self, e: DownloadEnd) -> Result<(), SessionError> {
        self.send_live(&SessionMessage::DownloadEnd(e))
    }
}
