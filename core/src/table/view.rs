//! The table as the owner sees it (console page, `portico requests|sessions`).

use serde::{Deserialize, Serialize};

use super::{Clock, SessionTable};
use crate::wire::session::Service;

/// A pending request as the owner sees it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PendingView {
    /// Request number.
    pub id: u64,
    /// guest / visitor / user / peer.
    pub kind: String,
    /// Display name (guests) or account (visitors, users).
    pub name: String,
    /// The account, for visitors and users.
    pub account: Option<String>,
    /// The server the account signed in at.
    pub server_name: Option<String>,
    /// The viewer's message.
    pub message: String,
    /// The address the host sees.
    pub ip: String,
    /// Connection through the relay.
    pub relayed: bool,
    /// The viewer key's fingerprint.
    pub fingerprint: String,
    /// The viewer asked for view-only.
    pub view_only_asked: bool,
    /// Seconds left to answer.
    pub seconds_left: u64,
}

/// A live session as the owner sees it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SessionView {
    /// Session number.
    pub id: u64,
    /// guest / visitor / user / peer.
    pub kind: String,
    /// Name or account.
    pub name: String,
    /// Address.
    pub ip: String,
    /// `direct` or `relayed`.
    pub path: String,
    /// `interactive` or `view-only`.
    pub mode: String,
    /// Permissions now.
    pub permissions: String,
    /// Seconds since it started.
    pub seconds: u64,
    /// Seconds left of the owner's time limit.
    pub seconds_left: Option<u64>,
    /// What the viewer watches (`monitor 0`, `whole desktop`; empty until it starts).
    #[serde(default)]
    pub watching: String,
}

/// Everything the console shows.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ConsoleState {
    /// Requests waiting for the owner.
    pub pending: Vec<PendingView>,
    /// Live sessions.
    pub sessions: Vec<SessionView>,
    /// Service requests waiting for the owner.
    pub services: Vec<ServiceView>,
    /// Guest sharing on this host.
    pub allow_guests: bool,
    /// Visitor sharing on this host.
    pub allow_visitors: bool,
    /// The server's name, when registered.
    pub server: Option<String>,
}

/// A pending service request as the owner sees it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ServiceView {
    /// Request number.
    pub id: u64,
    /// The session asking.
    pub session_id: u64,
    /// Who.
    pub who: String,
    /// `file` or `clipboard`.
    pub service: String,
    /// What (file name and size).
    pub detail: String,
    /// Seconds left to answer.
    pub seconds_left: u64,
}

impl SessionTable {
    /// Everything the console shows, at `now`.
    pub fn view(&self, now: Clock) -> ConsoleState {
        let left =
            |deadline: std::time::Instant| deadline.saturating_duration_since(now.at).as_secs();
        let pending = self
            .pending
            .iter()
            .map(|(id, p)| PendingView {
                id: *id,
                kind: p.kind.to_string(),
                name: p.name.clone(),
                account: p.account.clone(),
                server_name: p.server_name.clone(),
                message: p.message.clone(),
                ip: p.ip.clone(),
                relayed: p.relayed,
                fingerprint: crate::identity::peer_fingerprint(&p.viewer).unwrap_or_default(),
                view_only_asked: p.mode == crate::policy::RequestedMode::ViewOnly,
                seconds_left: left(p.deadline),
            })
            .collect();
        let sessions = self
            .sessions
            .iter()
            .map(|(id, s)| SessionView {
                id: *id,
                kind: s.kind.to_string(),
                name: s.name.clone(),
                ip: s.ip.clone(),
                path: if s.relayed { "relayed" } else { "direct" }.into(),
                mode: if s.permissions.is_view_only() {
                    "view-only"
                } else {
                    "interactive"
                }
                .into(),
                permissions: s.permissions.to_string(),
                seconds: now.at.saturating_duration_since(s.started).as_secs(),
                seconds_left: s.time_limit.map(|t| left(s.started + t)),
                watching: s.watching.map(|a| a.to_string()).unwrap_or_default(),
            })
            .collect();
        let services = self
            .services
            .iter()
            .map(|(id, p)| ServiceView {
                id: *id,
                session_id: p.session_id,
                who: p.who.clone(),
                service: match p.service {
                    Service::File => "file".into(),
                    Service::Clipboard => "clipboard".into(),
                    Service::Browse => "browse".into(),
                },
                detail: p.detail.clone(),
                seconds_left: left(p.deadline),
            })
            .collect();
        ConsoleState {
            pending,
            sessions,
            services,
            allow_guests: self.settings.allow_guests,
            allow_visitors: self.settings.allow_visitors,
            server: self.server.as_ref().map(|_| "registered".to_string()),
        }
    }
}
