//! The host's session table as a sans-IO state machine: pending requests (waiting for the
//! owner), live sessions and service requests (file transfers, clipboard), with every
//! transition the owner, the server and the clock can cause.
//!
//! Inputs are method calls that take `now` ([`Clock`]); outputs are [`Effect`]s the shell
//! drains with [`SessionTable::poll_effect`] (grant or refuse a waiting viewer, change a live
//! session's permissions, end it, answer a service request, write the audit log) and the next
//! timer from [`SessionTable::next_deadline`]. The host's `AccessControl` actor only moves
//! these between channels, timers and the audit file.
//!
//! One rule holds every live session in step with the policy: after any change of settings,
//! ACL, server flags, groups or the owner's view-only switch, each live session's permissions
//! are recomputed as `policy now ∩ ceiling ∩ owner switch`. A session the policy refuses
//! ends; one whose permissions shrank (control → view, files or clipboard removed) is
//! narrowed at once, and its pending service requests that lost their permission are denied.

mod changes;
mod memory;
mod services;
mod view;

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use libp2p_identity::{PeerId, PublicKey};

use crate::policy::{
    self, AccessKind, AclEntry, Decision, HostSettings, OwnerAnswer, Permission, Permissions,
    Request, RequestedMode, ServerFlags,
};
use crate::ticket::{self, ReplayCache, Ticket};
use crate::wire::handshake::AccessRequest;
use crate::wire::session::{ByeReason, Service};
use crate::wire::signal::Change;

pub use memory::{TicketMemory, MAX_USER_CHANGES};
pub use view::{ConsoleState, PendingView, ServiceView, SessionView};

/// Tickets checked per request at most.
pub const MAX_TICKETS: usize = 4;
/// Requests waiting for the owner at once (each kind); more are refused, so a flood cannot
/// hide real ones.
pub const MAX_PENDING: usize = 32;
/// Requests waiting for the owner from one address: PeerIds are free, addresses are not, so
/// one address cannot fill the queue that real guests need.
pub const MAX_PENDING_PER_IP: usize = 4;
/// Characters of a viewer's message kept for the owner.
pub const MAX_MESSAGE_CHARS: usize = 500;
/// Requests through the relay that may wait for the owner at once, together: their
/// address is only a PeerId, which costs nothing, so they share one pool.
pub const MAX_PENDING_RELAYED: usize = 6;
/// Ticket nonces remembered against replay.
const REPLAY_CAPACITY: usize = 4096;

/// The time the table runs on: its timers on the instant, tickets and ACL expiry on Unix
/// seconds.
pub use crate::clock::Clock;

/// The host's server, once registered.
#[derive(Debug, Clone)]
pub struct ServerTrust {
    /// The pinned server key (tickets must verify against it).
    pub key: PublicKey,
    /// What the server says about this host.
    pub flags: ServerFlags,
}

/// A request from a viewer whose identity the session handshake proved.
#[derive(Debug, Clone, Copy)]
pub struct Incoming<'a> {
    /// The viewer's PeerId.
    pub viewer: PeerId,
    /// Its address as the host sees it.
    pub ip: &'a str,
    /// The connection runs through the relay.
    pub relayed: bool,
    /// What it asks.
    pub request: &'a AccessRequest,
}

/// Access granted to a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// The session's number.
    pub session_id: u64,
    /// What it may do now.
    pub permissions: Permissions,
    /// The owner's time limit.
    pub time_limit: Option<Duration>,
    /// Guests and visitors: the owner confirms each file transfer and clipboard sync.
    pub confirm_services: bool,
}

/// Access refused.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Refusal {
    /// Stable code.
    pub code: String,
    /// Sentence for the viewer.
    pub message: String,
}

/// The key the per-address limit counts a request under: one shared pool for relayed
/// viewers, an IPv6 address's /64, an IPv4 address (or whatever text the shell had).
fn source_key(ip: &str, relayed: bool) -> String {
    if relayed {
        return "relayed".into();
    }
    match ip.parse::<std::net::IpAddr>() {
        Ok(addr) => crate::ratelimit::limit_key(addr).to_string(),
        Err(_) => ip.to_string(),
    }
}

impl Refusal {
    fn new(code: &str, message: impl Into<String>) -> Self {
        Self {
            code: code.into(),
            message: message.into(),
        }
    }
}

/// The outcome of [`SessionTable::decide`] when not refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Allowed now.
    Granted(Grant),
    /// Waiting for the owner; the answer comes as [`Effect::Answered`].
    Pending {
        /// The request's number (console, `portico accept ID`).
        request_id: u64,
        /// How long the owner has.
        timeout: Duration,
    },
}

/// What the shell must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// A pending request was answered: accepted (a live session now exists) or refused
    /// (by the owner, by the timeout, or because the policy changed while it waited).
    Answered {
        /// The request.
        request_id: u64,
        /// The grant or the refusal.
        result: Result<Grant, Refusal>,
    },
    /// A live session's permissions changed; it must act on them at once.
    Permissions {
        /// The session.
        session_id: u64,
        /// What it may do now.
        permissions: Permissions,
    },
    /// A live session must end (the table has already removed it).
    End {
        /// The session.
        session_id: u64,
        /// Why, for the viewer.
        reason: ByeReason,
        /// A sentence for the viewer.
        message: String,
    },
    /// A service request was answered (false also when it timed out or lost its permission).
    Service {
        /// The request.
        id: u64,
        /// Allowed.
        allowed: bool,
    },
    /// An audit log line.
    Audit {
        /// What happened (`allowed`, `refused`, `narrowed`, …).
        action: &'static str,
        /// Details.
        detail: String,
    },
    /// The ticket memory changed ([`SessionTable::memory`]): write it to the data dir.
    Remember,
}

/// A request waiting for the owner.
#[derive(Debug, Clone)]
struct Pending {
    viewer: PeerId,
    kind: AccessKind,
    mode: RequestedMode,
    name: String,
    account: Option<String>,
    server_name: Option<String>,
    message: String,
    ip: String,
    /// What the per-address limit counts it under ([`source_key`]).
    source: String,
    relayed: bool,
    offered: Permissions,
    ticket: Option<Ticket>,
    deadline: Instant,
}

/// A live session.
#[derive(Debug, Clone)]
struct Live {
    viewer: PeerId,
    kind: AccessKind,
    /// The mode the policy is asked with on every re-check.
    mode: RequestedMode,
    name: String,
    ip: String,
    relayed: bool,
    /// The most this session may ever have (what "interactive" restores).
    ceiling: Permissions,
    /// The owner's view-only switch.
    view_only: bool,
    /// Permissions now (policy ∩ ceiling ∩ switch).
    permissions: Permissions,
    started: Instant,
    time_limit: Option<Duration>,
    ticket: Option<Ticket>,
    /// What the viewer watches (none until the session reports it).
    watching: Option<crate::area::Area>,
}

impl Live {
    fn who(&self) -> String {
        format!("{} {}", self.kind, self.name)
    }
}

/// A service request waiting for the owner.
#[derive(Debug, Clone)]
struct PendingService {
    session_id: u64,
    who: String,
    service: Service,
    detail: String,
    deadline: Instant,
}

/// The host's table of pending requests, live sessions and service requests.
#[derive(Debug)]
pub struct SessionTable {
    /// This host's PeerId (ticket audience).
    me: PeerId,
    /// Host switches.
    settings: HostSettings,
    /// The ACL from the config file.
    base_acl: Vec<AclEntry>,
    /// The ACL managed with `portico acl` (and provisioning).
    managed_acl: Vec<AclEntry>,
    /// Both, as the policy sees them.
    acl: Vec<AclEntry>,
    /// The server, when registered.
    server: Option<ServerTrust>,
    /// Seen ticket nonces.
    replay: ReplayCache,
    /// Users the server disabled, with when (Unix seconds): their tickets issued until then
    /// are refused, even the ones still within their lifetime.
    user_changes: BTreeMap<String, u64>,
    /// Refused resume attempts: one audit line a minute.
    resume_refusals: crate::ratelimit::Quiet,
    /// Next request / session number (one counter: numbers never collide).
    next_id: u64,
    /// How long the owner has to answer.
    owner_timeout: Duration,
    /// Requests waiting for the owner.
    pending: BTreeMap<u64, Pending>,
    /// Live sessions.
    sessions: BTreeMap<u64, Live>,
    /// Service requests waiting for the owner.
    services: BTreeMap<u64, PendingService>,
    /// Effects not yet taken by the shell.
    effects: VecDeque<Effect>,
    /// Bumped on every change the console shows.
    version: u64,
}

impl SessionTable {
    /// A table for host `me`.
    pub fn new(
        me: PeerId,
        settings: HostSettings,
        acl: Vec<AclEntry>,
        owner_timeout: Duration,
    ) -> Self {
        Self {
            me,
            settings,
            base_acl: acl.clone(),
            managed_acl: Vec::new(),
            acl,
            server: None,
            replay: ReplayCache::new(REPLAY_CAPACITY),
            user_changes: BTreeMap::new(),
            resume_refusals: crate::ratelimit::Quiet::new(Duration::from_secs(60)),
            next_id: 1,
            owner_timeout,
            pending: BTreeMap::new(),
            sessions: BTreeMap::new(),
            services: BTreeMap::new(),
            effects: VecDeque::new(),
            version: 0,
        }
    }

    /// The next effect to carry out.
    pub fn poll_effect(&mut self) -> Option<Effect> {
        self.effects.pop_front()
    }

    /// Changes so far (the console refreshes when it moves).
    pub fn version(&self) -> u64 {
        self.version
    }

    /// A live session's permissions now (`None`: no such session).
    pub fn permissions(&self, session_id: u64) -> Option<Permissions> {
        self.sessions.get(&session_id).map(|s| s.permissions)
    }

    fn changed(&mut self) {
        self.version += 1;
    }

    fn audit(&mut self, action: &'static str, detail: String) {
        self.effects.push_back(Effect::Audit { action, detail });
    }

    fn id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    /// Decides a request: refuse, grant now, or wait for the owner.
    pub fn decide(&mut self, now: Clock, inc: Incoming<'_>) -> Result<Outcome, Refusal> {
        let req = inc.request;
        let ticket = match self.verify_tickets(&inc.viewer, req, now.unix) {
            Ok(t) => t,
            Err(r) => {
                let detail = format!("{} {} from {}: {}", req.kind, inc.viewer, inc.ip, r.message);
                self.audit("refused", detail);
                return Err(r);
            }
        };
        let name = ticket
            .as_ref()
            .map(|t| t.subject.user.clone())
            .unwrap_or_else(|| crate::text::clean(&req.display_name, crate::text::MAX_NAME_CHARS));
        let decision = self.policy(req.kind, inc.viewer, req.mode, ticket.as_ref(), now.unix);
        let source = source_key(inc.ip, inc.relayed);
        if matches!(decision, Decision::AskOwner { .. }) {
            self.room_to_ask(&source, inc.relayed)?;
        }
        if !matches!(decision, Decision::Refuse(_)) {
            if let Err(r) = self.spend_ticket(ticket.as_ref(), now.unix) {
                let detail = format!(
                    "{} {name} ({}) from {}: {}",
                    req.kind, inc.viewer, inc.ip, r.message
                );
                self.audit("refused", detail);
                return Err(r);
            }
        }
        match decision {
            Decision::Allow { permissions } => {
                let detail = format!(
                    "{} {name} ({}) from {} with {permissions}",
                    req.kind, inc.viewer, inc.ip
                );
                self.audit("allowed", detail);
                let live = Live {
                    viewer: inc.viewer,
                    kind: req.kind,
                    mode: req.mode,
                    name,
                    ip: inc.ip.to_string(),
                    relayed: inc.relayed,
                    ceiling: Permissions::ALL,
                    view_only: false,
                    permissions,
                    started: now.at,
                    time_limit: None,
                    ticket,
                    watching: None,
                };
                Ok(Outcome::Granted(self.insert_live(live)))
            }
            Decision::AskOwner { permissions } => {
                let id = self.id();
                let message = crate::text::clean(&req.message, MAX_MESSAGE_CHARS);
                self.audit(
                    "asked_owner",
                    format!(
                        "request {id}: {} {name} ({}) from {}: {message:?}",
                        req.kind, inc.viewer, inc.ip
                    ),
                );
                let guest = req.kind == AccessKind::Guest;
                self.pending.insert(
                    id,
                    Pending {
                        viewer: inc.viewer,
                        kind: req.kind,
                        mode: req.mode,
                        account: ticket
                            .as_ref()
                            .filter(|_| !guest)
                            .map(|t| t.subject.user.clone()),
                        name: if guest {
                            crate::text::clean(&req.display_name, crate::text::MAX_NAME_CHARS)
                        } else {
                            name
                        },
                        server_name: ticket.as_ref().map(|t| t.server_name.clone()),
                        message,
                        ip: inc.ip.to_string(),
                        source,
                        relayed: inc.relayed,
                        offered: permissions,
                        ticket,
                        deadline: now.at + self.owner_timeout,
                    },
                );
                self.changed();
                Ok(Outcome::Pending {
                    request_id: id,
                    timeout: self.owner_timeout,
                })
            }
            Decision::Refuse(reason) => {
                let detail = format!(
                    "{} {name} ({}) from {}: {}",
                    req.kind,
                    inc.viewer,
                    inc.ip,
                    reason.code()
                );
                self.audit("refused", detail);
                Err(Refusal::new(reason.code(), reason.to_string()))
            }
        }
    }

    /// Room for one more request waiting for the owner, in all and from `source`.
    fn room_to_ask(&self, source: &str, relayed: bool) -> Result<(), Refusal> {
        if self.pending.len() >= MAX_PENDING {
            return Err(Refusal::new(
                "busy",
                "too many requests are waiting for the owner; try again later",
            ));
        }
        let cap = if relayed {
            MAX_PENDING_RELAYED
        } else {
            MAX_PENDING_PER_IP
        };
        if self.pending.values().filter(|q| q.source == source).count() >= cap {
            return Err(Refusal::new(
                "busy",
                "too many requests from your address are waiting for the owner; try again later",
            ));
        }
        Ok(())
    }

    fn policy(
        &self,
        kind: AccessKind,
        viewer: PeerId,
        mode: RequestedMode,
        ticket: Option<&Ticket>,
        unix: u64,
    ) -> Decision {
        let req = Request {
            kind,
            viewer,
            mode,
            ticket,
        };
        policy::decide(
            &req,
            &self.settings,
            &self.acl,
            self.server.as_ref().map(|s| &s.flags),
            unix,
        )
    }

    fn insert_live(&mut self, live: Live) -> Grant {
        let id = self.id();
        let grant = Grant {
            session_id: id,
            permissions: live.permissions,
            time_limit: live.time_limit,
            confirm_services: policy::services_need_confirmation(live.kind),
        };
        self.sessions.insert(id, live);
        self.changed();
        grant
    }

    /// The first ticket that verifies, if the request carries any. A request with tickets none
    /// of which verify is refused (never treated as carrying no ticket).
    fn verify_tickets(
        &mut self,
        viewer: &PeerId,
        req: &AccessRequest,
        unix: u64,
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
            match ticket::verify(t, &server.key, &self.me, viewer, unix, &self.replay) {
                Ok(t) if self.issued_before_change(&t) => {
                    last = Some(format!(
                        "the account {} changed at the server after this ticket was issued; \
                         connect again for a new one",
                        t.subject.user
                    ))
                }
                Ok(t) => return Ok(Some(t)),
                Err(e) => last = Some(e.to_string()),
            }
        }
        let e = last.unwrap_or_default();
        Err(Refusal::new("bad_ticket", format!("ticket refused: {e}")))
    }

    /// A ticket counts from here on (the decision admits or asks the owner): its nonce is
    /// remembered, within the cache's bounds.
    fn spend_ticket(&mut self, ticket: Option<&Ticket>, unix: u64) -> Result<(), Refusal> {
        let Some(t) = ticket else { return Ok(()) };
        self.replay
            .remember(t, unix)
            .map_err(|e| Refusal::new("bad_ticket", format!("ticket refused: {e}")))?;
        self.remembered();
        Ok(())
    }

    /// The owner answers a pending request. An accept is checked again against the policy
    /// as it is now (a switch turned off while the request waited refuses it).
    pub fn answer(
        &mut self,
        now: Clock,
        request_id: u64,
        answer: OwnerAnswer,
        time_limit: Option<Duration>,
    ) -> Result<(), String> {
        let p = self.pending.remove(&request_id).ok_or_else(|| {
            format!("no pending request {request_id} (answered, withdrawn or timed out)")
        })?;
        self.changed();
        let result = match policy::apply_owner_answer(p.offered, answer) {
            None => {
                self.audit(
                    "owner_refused",
                    format!("request {request_id}: {} {}", p.kind, p.name),
                );
                Err(Refusal::new(
                    "owner_refused",
                    "the owner refused the request",
                ))
            }
            Some(permissions) => {
                let time_limit = time_limit.filter(|t| !t.is_zero());
                match self.policy(p.kind, p.viewer, p.mode, p.ticket.as_ref(), now.unix) {
                    Decision::Refuse(reason) => {
                        self.audit(
                            "refused",
                            format!("request {request_id}: accepted but {}", reason.code()),
                        );
                        Err(Refusal::new(reason.code(), reason.to_string()))
                    }
                    _ => {
                        self.audit(
                            "owner_accepted",
                            format!(
                                "request {request_id}: {} {} with {permissions}{}",
                                p.kind,
                                p.name,
                                time_limit
                                    .map(|l| format!(" for {} s", l.as_secs()))
                                    .unwrap_or_default()
                            ),
                        );
                        Ok(self.accept(now, p, permissions, time_limit))
                    }
                }
            }
        };
        self.effects
            .push_back(Effect::Answered { request_id, result });
        Ok(())
    }

    fn accept(
        &mut self,
        now: Clock,
        p: Pending,
        permissions: Permissions,
        time_limit: Option<Duration>,
    ) -> Grant {
        // "Interactive" later restores what an interactive acceptance grants, even for a
        // session accepted view-only: the owner decides, not the first answer.
        let (mode, ceiling) = if policy::services_need_confirmation(p.kind) {
            (RequestedMode::Interactive, policy::OWNER_ACCEPTED)
        } else {
            (p.mode, p.offered)
        };
        self.insert_live(Live {
            viewer: p.viewer,
            kind: p.kind,
            mode,
            name: p.name,
            ip: p.ip,
            relayed: p.relayed,
            ceiling,
            view_only: !permissions.has(Permission::Control) && ceiling.has(Permission::Control),
            permissions,
            started: now.at,
            time_limit,
            ticket: p.ticket,
            watching: None,
        })
    }
}

#[cfg(test)]
mod tests;
