//! The `AccessControl` actor: decides every incoming request with `portico-core`'s policy,
//! verifies tickets against the pinned server key, asks the owner when the policy says so
//! (a request nobody answers in time is refused), and holds the live session table: kick,
//! view-only/interactive, time limits, and revocation when the server reports a change.

mod services;
mod table;

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use actix::prelude::*;
use libp2p::identity::PublicKey;
use libp2p::PeerId;
use portico_core::policy::{
    self, AccessKind, AclEntry, Decision, HostSettings, Permission, Permissions, Request,
    ServerFlags,
};
use portico_core::ticket::{self, ReplayCache, Ticket};
use portico_core::wire::handshake::AccessRequest;
use portico_core::wire::session::ByeReason;
use serde::Serialize;
use tokio::sync::{broadcast, mpsc, oneshot};

pub use services::{AnswerService, AskService, LogService, ServiceView};
pub use table::{
    may_control, Answer, ConsoleState, GetState, Kick, PendingView, ServerChange, SessionEnded,
    SessionView, SetManagedAcl, SetServer, SetSharing, SetViewOnly, WatchChanges, Withdraw,
};

/// Tickets checked per request at most.
const MAX_TICKETS: usize = 4;
/// Requests waiting for the owner at once; more are refused (a flood cannot hide real ones).
const MAX_PENDING: usize = 32;

/// The host's server, once registered.
#[derive(Debug, Clone)]
pub struct ServerTrust {
    /// The pinned server key (tickets must verify against it).
    pub key: PublicKey,
    /// What the server says about this host.
    pub flags: ServerFlags,
}

/// What the owner or the server tells a live session.
#[derive(Debug, Clone)]
pub enum SessionControl {
    /// End it with a reason the viewer shows.
    End(ByeReason, String),
    /// New permissions.
    Permissions(Permissions),
}

/// A live session.
#[derive(Debug)]
struct Live {
    viewer: PeerId,
    kind: AccessKind,
    name: String,
    ip: String,
    relayed: bool,
    /// Permissions as granted (what "interactive" restores).
    granted: Permissions,
    /// Permissions now.
    permissions: Permissions,
    started: Instant,
    time_limit: Option<Duration>,
    ticket: Option<Ticket>,
    control: mpsc::Sender<SessionControl>,
}

/// A request waiting for the owner.
#[derive(Debug)]
struct Pending {
    viewer: PeerId,
    kind: AccessKind,
    name: String,
    account: Option<String>,
    server_name: Option<String>,
    message: String,
    ip: String,
    relayed: bool,
    fingerprint: String,
    view_only_asked: bool,
    offered: Permissions,
    ticket: Option<Ticket>,
    created: Instant,
    timeout: Duration,
    reply: oneshot::Sender<Result<Granted, Refusal>>,
}

/// The access-control actor.
pub struct AccessControl {
    /// This host's PeerId (ticket audience).
    me: PeerId,
    /// Host switches.
    settings: HostSettings,
    /// The ACL from the config file.
    base_acl: Vec<AclEntry>,
    /// The ACL managed with `portico acl` (and provisioning), `DATA/acl.toml`.
    managed_acl: Vec<AclEntry>,
    /// Both, as the policy sees them.
    acl: Vec<AclEntry>,
    /// The server, when registered.
    server: Option<ServerTrust>,
    /// Seen ticket nonces.
    replay: ReplayCache,
    /// Next request / session number.
    next_id: u64,
    /// How long the owner has to answer.
    owner_timeout: Duration,
    /// Requests waiting for the owner.
    pending: HashMap<u64, Pending>,
    /// Live sessions.
    sessions: HashMap<u64, Live>,
    /// Service requests waiting for the owner.
    pending_services: HashMap<u64, services::PendingService>,
    /// Bumped on every change (the console listens).
    changes: broadcast::Sender<u64>,
    /// Change counter.
    version: u64,
    /// Host audit log.
    audit: Option<crate::audit_log::AuditLog>,
}

impl AccessControl {
    /// An access controller for host `me`.
    pub fn new(
        me: PeerId,
        settings: HostSettings,
        acl: Vec<AclEntry>,
        owner_timeout: Duration,
        audit: Option<crate::audit_log::AuditLog>,
    ) -> Self {
        let (changes, _) = broadcast::channel(64);
        Self {
            me,
            settings,
            base_acl: acl.clone(),
            managed_acl: Vec::new(),
            acl,
            server: None,
            replay: ReplayCache::new(4096),
            next_id: 1,
            owner_timeout,
            pending: HashMap::new(),
            pending_services: HashMap::new(),
            sessions: HashMap::new(),
            changes,
            version: 0,
            audit,
        }
    }

    fn changed(&mut self) {
        self.version += 1;
        // Nobody listening is fine.
        drop(self.changes.send(self.version));
    }

    fn log(&mut self, action: &str, detail: String) {
        if let Some(a) = self.audit.as_mut() {
            if let Err(e) = a.append(action, &detail) {
                tracing::error!(error = %e, "cannot write the host audit log");
            }
        }
    }

    fn id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
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
#[rtype(result = "Result<Verdict, Refusal>")]
pub struct Decide {
    /// The viewer's PeerId.
    pub viewer: PeerId,
    /// Its address as the host sees it.
    pub ip: String,
    /// Whether the connection is relayed.
    pub relayed: bool,
    /// What it asks.
    pub request: AccessRequest,
}

/// The outcome of [`Decide`].
#[derive(Debug)]
pub enum Verdict {
    /// Allowed now.
    Granted(Granted),
    /// Waiting for the owner.
    Pending {
        /// The request's number (console, `portico accept ID`).
        request_id: u64,
        /// How long the owner has.
        timeout: Duration,
        /// The owner's answer (or the timeout's refusal).
        answer: oneshot::Receiver<Result<Granted, Refusal>>,
    },
}

/// Access granted.
#[derive(Debug)]
pub struct Granted {
    /// The session's number.
    pub session_id: u64,
    /// What it may do.
    pub permissions: Permissions,
    /// The owner's time limit.
    pub time_limit: Option<Duration>,
    /// The owner's and the server's instructions to this session.
    pub control: mpsc::Receiver<SessionControl>,
    /// Guests and visitors: the owner confirms each file transfer and clipboard sync.
    pub confirm_services: bool,
}

/// Access refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Refusal {
    /// Stable code.
    pub code: String,
    /// Sentence for the viewer.
    pub message: String,
}

impl Refusal {
    fn new(code: &str, message: impl Into<String>) -> Self {
        Self {
            code: code.into(),
            message: message.into(),
        }
    }
}

fn fingerprint(p: &PeerId) -> String {
    portico_core::identity::peer_fingerprint(p).unwrap_or_default()
}

impl Handler<Decide> for AccessControl {
    type Result = Result<Verdict, Refusal>;

    fn handle(&mut self, m: Decide, ctx: &mut Context<Self>) -> Self::Result {
        let now = unix_now();
        let span =
            tracing::info_span!("access", viewer = %m.viewer, kind = %m.request.kind, ip = %m.ip);
        let _g = span.enter();
        let ticket = match self.verify_tickets(&m.viewer, &m.request, now) {
            Ok(t) => t,
            Err(r) => {
                self.log(
                    "refused",
                    format!(
                        "{} {} from {}: {}",
                        m.request.kind, m.viewer, m.ip, r.message
                    ),
                );
                return Err(r);
            }
        };
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
        let name = ticket
            .as_ref()
            .map(|t| t.subject.user.clone())
            .unwrap_or_else(|| m.request.display_name.clone());
        match decision {
            Decision::Allow { permissions } => {
                tracing::info!(%permissions, "access allowed");
                self.log(
                    "allowed",
                    format!(
                        "{} {name} ({}) from {} with {permissions}",
                        m.request.kind, m.viewer, m.ip
                    ),
                );
                Ok(Verdict::Granted(self.grant(
                    m.viewer,
                    m.request.kind,
                    name,
                    m.ip,
                    m.relayed,
                    permissions,
                    None,
                    ticket,
                )))
            }
            Decision::AskOwner { permissions } => {
                if self.pending.len() >= MAX_PENDING {
                    return Err(Refusal::new(
                        "busy",
                        "too many requests are waiting for the owner; try again later",
                    ));
                }
                let id = self.id();
                let (reply, answer) = oneshot::channel();
                let timeout = self.owner_timeout;
                tracing::info!(request = id, "asking the owner");
                self.log(
                    "asked_owner",
                    format!(
                        "request {id}: {} {name} ({}) from {}: {:?}",
                        m.request.kind, m.viewer, m.ip, m.request.message
                    ),
                );
                let server_name = ticket.as_ref().map(|t| t.server_name.clone());
                self.pending.insert(
                    id,
                    Pending {
                        viewer: m.viewer,
                        kind: m.request.kind,
                        account: ticket
                            .as_ref()
                            .filter(|_| m.request.kind != AccessKind::Guest)
                            .map(|t| t.subject.user.clone()),
                        name: if m.request.kind == AccessKind::Guest {
                            m.request.display_name.clone()
                        } else {
                            name
                        },
                        server_name,
                        message: m.request.message.chars().take(500).collect(),
                        ip: m.ip,
                        relayed: m.relayed,
                        fingerprint: fingerprint(&m.viewer),
                        view_only_asked: m.request.mode == policy::RequestedMode::ViewOnly,
                        offered: permissions,
                        ticket,
                        created: Instant::now(),
                        timeout,
                        reply,
                    },
                );
                ctx.run_later(timeout, move |act, _| act.expire(id));
                self.changed();
                Ok(Verdict::Pending {
                    request_id: id,
                    timeout,
                    answer,
                })
            }
            Decision::Refuse(reason) => {
                tracing::info!(reason = reason.code(), "access refused");
                self.log(
                    "refused",
                    format!(
                        "{} {name} ({}) from {}: {}",
                        m.request.kind,
                        m.viewer,
                        m.ip,
                        reason.code()
                    ),
                );
                Err(Refusal::new(reason.code(), reason.to_string()))
            }
        }
    }
}

impl AccessControl {
    #[allow(clippy::too_many_arguments)]
    fn grant(
        &mut self,
        viewer: PeerId,
        kind: AccessKind,
        name: String,
        ip: String,
        relayed: bool,
        permissions: Permissions,
        time_limit: Option<Duration>,
        ticket: Option<Ticket>,
    ) -> Granted {
        let id = self.id();
        let (tx, control) = mpsc::channel(8);
        self.sessions.insert(
            id,
            Live {
                viewer,
                kind,
                name,
                ip,
                relayed,
                granted: permissions,
                permissions,
                started: Instant::now(),
                time_limit,
                ticket,
                control: tx,
            },
        );
        self.changed();
        Granted {
            session_id: id,
            permissions,
            time_limit,
            control,
            confirm_services: policy::services_need_confirmation(kind),
        }
    }

    fn expire(&mut self, id: u64) {
        if let Some(p) = self.pending.remove(&id) {
            tracing::info!(request = id, "the owner did not answer; refused");
            self.log(
                "timed_out",
                format!("request {id} from {} ({})", p.name, p.viewer),
            );
            // The viewer may have gone; nothing to tell then.
            drop(p.reply.send(Err(Refusal::new(
                "owner_timeout",
                "the owner did not answer in time",
            ))));
            self.changed();
        }
    }

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
            return Err(Refusal::new(
                "no_server",
                "this host is not registered with a server, so it cannot check tickets",
            ));
        };
        let mut last = None;
        for t in req.tickets.iter().take(MAX_TICKETS) {
            match ticket::verify(t, &server.key, &self.me, viewer, now, &mut self.replay) {
                Ok(t) => return Ok(Some(t)),
                Err(e) => last = Some(e),
            }
        }
        let e = last.map(|e| e.to_string()).unwrap_or_default();
        Err(Refusal::new("bad_ticket", format!("ticket refused: {e}")))
    }

    /// Ends every live session the current settings, flags and ACL no longer allow.
    fn recheck(&mut self) {
        let now = unix_now();
        let mut ended = Vec::new();
        for (id, s) in &self.sessions {
            let req = Request {
                kind: s.kind,
                viewer: s.viewer,
                mode: if s.granted.has(Permission::Control) {
                    policy::RequestedMode::Interactive
                } else {
                    policy::RequestedMode::ViewOnly
                },
                ticket: s.ticket.as_ref(),
            };
            let d = policy::decide(
                &req,
                &self.settings,
                &self.acl,
                self.server.as_ref().map(|x| &x.flags),
                now,
            );
            if let Decision::Refuse(reason) = d {
                ended.push((*id, reason.to_string()));
            }
        }
        for (id, why) in ended {
            if let Some(s) = self.sessions.remove(&id) {
                tracing::info!(session = id, %why, "access revoked");
                let msg = format!("access revoked: {why}");
                self.log(
                    "revoked",
                    format!("session {id} {} ({}): {why}", s.name, s.viewer),
                );
                if s.control
                    .try_send(SessionControl::End(ByeReason::Revoked, msg))
                    .is_err()
                {
                    tracing::debug!(session = id, "session already gone");
                }
            }
        }
        self.changed();
    }
}
