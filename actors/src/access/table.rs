//! The owner's actions (answer, kick, view-only/interactive, sharing toggles), server changes,
//! and the state the console shows.

use std::time::Duration;

use actix::prelude::*;
use portico_core::policy::{OwnerAnswer, Permissions};
use portico_core::wire::session::ByeReason;
use portico_core::wire::signal::Change;
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

use super::{AccessControl, Refusal, ServerTrust, SessionControl};

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
}

/// Everything the console shows.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ConsoleState {
    /// Requests waiting for the owner.
    pub pending: Vec<PendingView>,
    /// Live sessions.
    pub sessions: Vec<SessionView>,
    /// Service requests waiting for the owner.
    pub services: Vec<super::ServiceView>,
    /// Guest sharing on this host.
    pub allow_guests: bool,
    /// Visitor sharing on this host.
    pub allow_visitors: bool,
    /// The server's name, when registered.
    pub server: Option<String>,
}

/// The console's view of the state.
#[derive(Message)]
#[rtype(result = "ConsoleState")]
pub struct GetState;

impl Handler<GetState> for AccessControl {
    type Result = MessageResult<GetState>;
    fn handle(&mut self, _: GetState, _: &mut Context<Self>) -> Self::Result {
        let mut pending: Vec<PendingView> = self
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
                fingerprint: p.fingerprint.clone(),
                view_only_asked: p.view_only_asked,
                seconds_left: p.timeout.saturating_sub(p.created.elapsed()).as_secs(),
            })
            .collect();
        pending.sort_by_key(|p| p.id);
        let mut sessions: Vec<SessionView> = self
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
                seconds: s.started.elapsed().as_secs(),
                seconds_left: s
                    .time_limit
                    .map(|t| t.saturating_sub(s.started.elapsed()).as_secs()),
            })
            .collect();
        sessions.sort_by_key(|s| s.id);
        MessageResult(ConsoleState {
            pending,
            sessions,
            services: self.service_views(),
            allow_guests: self.settings.allow_guests,
            allow_visitors: self.settings.allow_visitors,
            server: self.server.as_ref().map(|_| "registered".to_string()),
        })
    }
}

/// A feed that ticks whenever the state changes.
#[derive(Message)]
#[rtype(result = "broadcast::Receiver<u64>")]
pub struct WatchChanges;

impl Handler<WatchChanges> for AccessControl {
    type Result = MessageResult<WatchChanges>;
    fn handle(&mut self, _: WatchChanges, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.changes.subscribe())
    }
}

/// The owner answers a request.
#[derive(Message, Debug, Clone, Deserialize)]
#[rtype(result = "Result<(), String>")]
pub struct Answer {
    /// Request number.
    pub request_id: u64,
    /// Accept, accept view-only, or refuse.
    pub answer: OwnerAnswer,
    /// Time limit for the session (None: until kicked).
    pub time_limit_secs: Option<u64>,
}

impl Handler<Answer> for AccessControl {
    type Result = Result<(), String>;
    fn handle(&mut self, m: Answer, _: &mut Context<Self>) -> Self::Result {
        let p = self.pending.remove(&m.request_id).ok_or_else(|| {
            format!(
                "no pending request {} (answered, withdrawn or timed out)",
                m.request_id
            )
        })?;
        let result = match portico_core::policy::apply_owner_answer(p.offered, m.answer) {
            Some(permissions) => {
                let limit = m
                    .time_limit_secs
                    .filter(|s| *s > 0)
                    .map(Duration::from_secs);
                self.log(
                    "owner_accepted",
                    format!(
                        "request {}: {} {} with {permissions}{}",
                        m.request_id,
                        p.kind,
                        p.name,
                        limit
                            .map(|l| format!(" for {} s", l.as_secs()))
                            .unwrap_or_default()
                    ),
                );
                let g = self.grant(
                    p.viewer,
                    p.kind,
                    p.name.clone(),
                    p.ip.clone(),
                    p.relayed,
                    permissions,
                    limit,
                    p.ticket,
                );
                // "Interactive" later restores what an interactive acceptance grants, even for
                // a session accepted view-only (the owner decides, not the first answer).
                let ceiling = if portico_core::policy::services_need_confirmation(p.kind) {
                    portico_core::policy::OWNER_ACCEPTED
                } else {
                    p.offered
                };
                if let Some(s) = self.sessions.get_mut(&g.session_id) {
                    s.granted = ceiling;
                }
                Ok(g)
            }
            None => {
                self.log(
                    "owner_refused",
                    format!("request {}: {} {}", m.request_id, p.kind, p.name),
                );
                Err(Refusal::new(
                    "owner_refused",
                    "the owner refused the request",
                ))
            }
        };
        self.changed();
        p.reply
            .send(result)
            .map_err(|_| "the viewer left before the answer".to_string())
    }
}

/// The owner ends a session.
#[derive(Message, Debug)]
#[rtype(result = "Result<(), String>")]
pub struct Kick(pub u64);

impl Handler<Kick> for AccessControl {
    type Result = Result<(), String>;
    fn handle(&mut self, m: Kick, _: &mut Context<Self>) -> Self::Result {
        let s = self
            .sessions
            .remove(&m.0)
            .ok_or_else(|| format!("no session {}", m.0))?;
        self.log(
            "kicked",
            format!("session {} {} ({})", m.0, s.name, s.viewer),
        );
        self.changed();
        s.control
            .try_send(SessionControl::End(
                ByeReason::Kicked,
                "disconnected by the owner".into(),
            ))
            .map_err(|_| "the session is already closing".to_string())
    }
}

/// The owner switches a session between view-only and interactive.
#[derive(Message, Debug)]
#[rtype(result = "Result<(), String>")]
pub struct SetViewOnly {
    /// Session number.
    pub session_id: u64,
    /// View-only (true) or back to what was granted.
    pub view_only: bool,
}

impl Handler<SetViewOnly> for AccessControl {
    type Result = Result<(), String>;
    fn handle(&mut self, m: SetViewOnly, _: &mut Context<Self>) -> Self::Result {
        let s = self
            .sessions
            .get_mut(&m.session_id)
            .ok_or_else(|| format!("no session {}", m.session_id))?;
        s.permissions = if m.view_only {
            s.granted.intersect(Permissions::VIEW_ONLY)
        } else {
            s.granted
        };
        let (p, name) = (s.permissions, s.name.clone());
        let sent = s
            .control
            .try_send(SessionControl::Permissions(p))
            .map_err(|_| "the session is closing".to_string());
        self.log("mode", format!("session {} {name}: {p}", m.session_id));
        self.changed();
        sent
    }
}

/// The owner turns guest or visitor sharing on or off on this host.
#[derive(Message, Debug, Clone, Deserialize)]
#[rtype(result = "()")]
pub struct SetSharing {
    /// Guests.
    pub allow_guests: Option<bool>,
    /// Visitors.
    pub allow_visitors: Option<bool>,
}

impl Handler<SetSharing> for AccessControl {
    type Result = ();
    fn handle(&mut self, m: SetSharing, _: &mut Context<Self>) {
        if let Some(g) = m.allow_guests {
            self.settings.allow_guests = g;
        }
        if let Some(v) = m.allow_visitors {
            self.settings.allow_visitors = v;
        }
        self.log(
            "sharing",
            format!(
                "guests={} visitors={}",
                self.settings.allow_guests, self.settings.allow_visitors
            ),
        );
        self.recheck();
    }
}

/// The host registered (or re-registered) with its server, or its flags changed.
#[derive(Message)]
#[rtype(result = "()")]
pub struct SetServer(pub Option<ServerTrust>);

impl Handler<SetServer> for AccessControl {
    type Result = ();
    fn handle(&mut self, m: SetServer, _: &mut Context<Self>) {
        self.server = m.0;
        self.recheck();
    }
}

/// The server says a user's groups or state changed.
#[derive(Message)]
#[rtype(result = "()")]
pub struct ServerChange(pub Change);

impl Handler<ServerChange> for AccessControl {
    type Result = ();
    fn handle(&mut self, m: ServerChange, _: &mut Context<Self>) {
        if let Change::User {
            user,
            groups,
            disabled,
        } = m.0
        {
            let mut gone = Vec::new();
            for (id, s) in self.sessions.iter_mut() {
                let Some(t) = s.ticket.as_mut() else { continue };
                if t.subject.user != user {
                    continue;
                }
                if disabled {
                    gone.push(*id);
                } else {
                    // The ticket's groups were true at issue time; the server's word is newer.
                    t.subject.groups = groups.clone();
                }
            }
            for id in gone {
                if let Some(s) = self.sessions.remove(&id) {
                    self.log(
                        "revoked",
                        format!("session {id} {}: account disabled at the server", s.name),
                    );
                    if s.control
                        .try_send(SessionControl::End(
                            ByeReason::Revoked,
                            "access revoked: your account was disabled".into(),
                        ))
                        .is_err()
                    {
                        tracing::debug!(session = id, "session already gone");
                    }
                }
            }
            self.recheck();
        }
    }
}

/// A session ended.
#[derive(Message)]
#[rtype(result = "()")]
pub struct SessionEnded(pub u64);

impl Handler<SessionEnded> for AccessControl {
    type Result = ();
    fn handle(&mut self, m: SessionEnded, _: &mut Context<Self>) {
        if let Some(s) = self.sessions.remove(&m.0) {
            self.log(
                "ended",
                format!(
                    "session {} {} after {} s",
                    m.0,
                    s.name,
                    s.started.elapsed().as_secs()
                ),
            );
            self.changed();
        }
    }
}

/// Withdraw a pending request (the viewer left while waiting).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Withdraw(pub u64);

impl Handler<Withdraw> for AccessControl {
    type Result = ();
    fn handle(&mut self, m: Withdraw, _: &mut Context<Self>) {
        if self.pending.remove(&m.0).is_some() {
            self.log("withdrawn", format!("request {}", m.0));
            self.changed();
        }
    }
}

/// Whether a session's permissions allow input.
pub fn may_control(p: Permissions) -> bool {
    p.has(portico_core::policy::Permission::Control)
}

/// Replace the managed part of the ACL (`DATA/acl.toml`); sessions it no longer allows end.
#[derive(Message, Debug, Clone, Deserialize)]
#[rtype(result = "()")]
pub struct SetManagedAcl(pub Vec<portico_core::policy::AclEntry>);

impl Handler<SetManagedAcl> for AccessControl {
    type Result = ();
    fn handle(&mut self, m: SetManagedAcl, _: &mut Context<Self>) {
        self.managed_acl = m.0;
        self.acl = self
            .base_acl
            .iter()
            .chain(self.managed_acl.iter())
            .cloned()
            .collect();
        self.log("acl", format!("{} managed entries", self.managed_acl.len()));
        self.recheck();
    }
}
