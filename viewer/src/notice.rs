//! What a person should see during a session: the viewer emits [`Notice`]s, the CLI prints
//! them (and draws progress bars).

use std::path::PathBuf;
use std::sync::Arc;

use portico_core::policy::Permissions;

/// Something a person should see; the CLI prints it (and draws progress bars).
#[derive(Debug, Clone, PartialEq)]
pub enum Notice {
    /// The owner must accept first.
    Waiting {
        /// The request's number.
        request_id: u64,
        /// Seconds the owner has.
        timeout_secs: u64,
    },
    /// The session is live.
    Connected {
        /// `direct` or `relayed`.
        path: &'static str,
        /// What it may do.
        permissions: Permissions,
    },
    /// The host changed what the session may do.
    PermissionsChanged(Permissions),
    /// View-only: the input script is not sent.
    ScriptSkipped,
    /// A file is being offered.
    Offering(PathBuf),
    /// The host allowed a file: sending starts.
    FileStarted {
        /// Transfer number.
        id: u64,
        /// Bytes in all.
        size: u64,
    },
    /// Bytes of a file sent so far.
    FileProgress {
        /// Transfer number.
        id: u64,
        /// Bytes sent.
        sent: u64,
    },
    /// A file arrived whole.
    FileSent(String),
    /// A file was not sent (refused, failed).
    FileNotSent(String),
    /// The host's answer about the clipboard or a file, or that it waits for the owner.
    Decision(String),
    /// Text from the host's clipboard.
    Clipboard(String),
    /// A remote folder's listing, one line per entry.
    Listing(Vec<String>),
    /// The session moved off the relay onto a direct connection.
    MovedToDirect {
        /// When, in ms after the viewer started.
        after_ms: f64,
    },
}

/// Where notices go.
pub type Notify = Arc<dyn Fn(Notice) + Send + Sync>;

/// Hands `n` to the notice sink, if there is one.
pub(crate) fn notify(sink: &Option<Notify>, n: Notice) {
    if let Some(f) = sink {
        f(n);
    }
}
