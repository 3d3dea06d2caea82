//! The `AccessControl` actor: decides every incoming request with `portico-core`'s policy,
//! verifies tickets against the pinned server key, and holds the live session table.
//!
//! Requests the policy sends to the owner (guests, visitors, `approval = always`) are refused
//! with `owner_unavailable` until the owner console exists; nothing is ever allowed on error.

use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

use actix::prelude::*;
use libp2p::identity::PublicKey;
use libp2p::PeerId;
use portico_core::policy::{
    self, AclEntry, Decision, HostSettings, Permission, Permissions, Request, ServerFlags,
};
use portico_core::ticket::{self, ReplayCache, Ticket};
use portico_core::wire::handshake::AccessRequest;

/// Tickets checked per request at most.
const MAX_TICKETS: usize = 4;

/// The host's server, once registered.
#[derive(Debug, Clone)]
pub struct ServerTrust {
    /// The pinned server key (tickets must verify against it).
    pub key: PublicKey,
    /// What the server says about this host.
    pub flags: ServerFlags,
}

/// A live session.
#[derive(Debug, Clone)]
pub struct SessionInfo {
    /// The viewer's PeerId.
    pub viewer: PeerId,
    /// Display name (request name, or the ticket's account).
    pub name: String,
    /// What it may do.
    pub permissions: Permissions,
    /// Unix seconds at start.
    pub started: u64,
}

/// The access-control actor.
pub struct AccessControl {
    /// This host's PeerId (ticket audience).
    me: PeerId,
    /// Host switches.
    settings: HostSettings,
    /// The ACL.
    acl: Vec<AclEntry>,
    /// The server, when registered.
    server: Option<ServerTrust>,
    /// Seen ticket nonces.
    replay: ReplayCache,
    /// Next session number.
    next_id: u64,
    /// Live sessions.
    sessions: HashMap<u64, SessionInfo>,
}

impl AccessControl {
    /// An access controller for host `me`.
    pub fn new(me: PeerId, settings: HostSettings, acl: Vec<AclEntry>) -> Self {
        Self {
            me,
            settings,
            acl,
            server: None,
            replay: ReplayCache::new(4096),
            next_id: 1,
            sessions: HashMap::new(),
        }
    }
}

impl Actor for AccessControl {
    type Context = Context<Self>;
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Decide a request from `viewer` (proven by the session handshake).
#[derive(Message, Debug)]
#[rtype(result = "Result<Granted, Refusal>")]
pub struct Decide {
    /// The viewer's PeerId.
    pub viewer: PeerId,
    /// What it asks.
    pub request: AccessRequest,
}

/// Access granted.
#[derive(Debug, Clone)]
pub struct Granted {
    /// The session's number.
    pub session_id: u64,
    /// What it may do.
    pub permissions: Permissions,
}

/// Access refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// Stable code.
    pub code: String,
    /// Sentence for the viewer.
    pub message: String,
}

impl Handler<Decide> for AccessControl {
    type Result = Result<Granted, Refusal>;

    fn handle(&mut self, m: Decide, _: &mut Context<Self>) -> Self::Result {
        let now = unix_now();
        let ticket = self.verify_tickets(&m.viewer, &m.request, now)?;
        let req = Request {
            kind: m.request.kind,
            viewer: m.viewer,
            mode: m.request.mode,
            ticket: ticket.as_ref(),
        };
        let decision = policy::decide(
            &req,
            &self.settings,
            &self.acl,
            self.server.as_ref().map(|s| &s.flags),
            now,
        );
        let span = tracing::info_span!("access", viewer = %m.viewer, kind = %m.request.kind);
        let _g = span.enter();
        match decision {
            Decision::Allow { permissions } => {
                let id = self.next_id;
                self.next_id += 1;
                let name = ticket
                    .as_ref()
                    .map(|t| t.subject.user.clone())
                    .unwrap_or_else(|| m.request.display_name.clone());
                tracing::info!(session = id, %permissions, "access allowed");
                self.sessions.insert(
                    id,
                    SessionInfo {
                        viewer: m.viewer,
                        name,
                        permissions,
                        started: now,
                    },
                );
                Ok(Granted {
                    session_id: id,
                    permissions,
                })
            }
            Decision::AskOwner { .. } => {
                tracing::info!(
                    "request needs the owner's approval; refused (no owner console yet)"
                );
                Err(Refusal { code: "owner_unavailable".into(), message: "this request needs the owner's approval, and this host has no owner console to ask".into() })
            }
            Decision::Refuse(reason) => {
                tracing::info!(reason = reason.code(), "access refused");
                Err(Refusal {
                    code: reason.code().into(),
                    message: reason.to_string(),
                })
            }
        }
    }
}

impl AccessControl {
    /// The first ticket that verifies, if the request carries any. A request with tickets none
    /// of which verify is refused (never treated as carrying no ticket).
    fn verify_tickets(
        &mut self,
        viewer: &PeerId,
        req: &AccessRequest,
        now: u64,
    ) -> Result<Option<Ticket>, Refusal> {
        if req.tickets.is_empty() {
            return Ok(None);
        }
        let Some(server) = &self.server else {
            return Err(Refusal {
                code: "no_server".into(),
                message: "this host is not registered with a server, so it cannot check tickets"
                    .into(),
            });
        };
        let mut last = None;
        for t in req.tickets.iter().take(MAX_TICKETS) {
            match ticket::verify(t, &server.key, &self.me, viewer, now, &mut self.replay) {
                Ok(t) => return Ok(Some(t)),
                Err(e) => last = Some(e),
            }
        }
        let e = last.map(|e| e.to_string()).unwrap_or_default();
        Err(Refusal {
            code: "bad_ticket".into(),
            message: format!("ticket refused: {e}"),
        })
    }
}

/// The host registered (or re-registered) with its server.
#[derive(Message)]
#[rtype(result = "()")]
pub struct SetServer(pub Option<ServerTrust>);

impl Handler<SetServer> for AccessControl {
    type Result = ();
    fn handle(&mut self, m: SetServer, _: &mut Context<Self>) {
        self.server = m.0;
    }
}

/// A session ended.
#[derive(Message)]
#[rtype(result = "()")]
pub struct SessionEnded(pub u64);

impl Handler<SessionEnded> for AccessControl {
    type Result = ();
    fn handle(&mut self, m: SessionEnded, _: &mut Context<Self>) {
        self.sessions.remove(&m.0);
    }
}

/// The live sessions.
#[derive(Message)]
#[rtype(result = "Vec<(u64, SessionInfo)>")]
pub struct ListSessions;

impl Handler<ListSessions> for AccessControl {
    type Result = MessageResult<ListSessions>;
    fn handle(&mut self, _: ListSessions, _: &mut Context<Self>) -> Self::Result {
        let mut v: Vec<_> = self.sessions.iter().map(|(k, v)| (*k, v.clone())).collect();
        v.sort_by_key(|(k, _)| *k);
        MessageResult(v)
    }
}

/// Whether a session's permissions allow input.
pub fn may_control(p: Permissions) -> bool {
    p.has(Permission::Control)
}
