//! The access decision (guests, visitors, server users, trusted keys), as a pure function.
//!
//! [`decide`] takes an already-authenticated request (the viewer's PeerId is the one the
//! Noise handshake proved; a ticket, if any, already passed [`crate::ticket::verify`]), the
//! host's settings, its ACL, the server's flags and `now`, and says: refuse (with a reason),
//! ask the owner (offering permissions), or allow (with permissions). The host's
//! AccessControl actor only carries out what this returns.

use std::fmt;
use std::str::FromStr;

use libp2p_identity::PeerId;
use serde::{Deserialize, Serialize};

use crate::ticket::{Ticket, TicketKind};

/// How a viewer asks to come in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccessKind {
    /// No account: the owner must accept (message and IP shown).
    Guest,
    /// Signed in at the server: the owner must accept (account name shown).
    Visitor,
    /// Signed in at the server: the host's ACL decides (Custom Server Security).
    User,
    /// A trusted viewer key listed in the host's ACL (like SSH authorized_keys).
    Peer,
}

impl fmt::Display for AccessKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Guest => "guest",
            Self::Visitor => "visitor",
            Self::User => "user",
            Self::Peer => "peer",
        })
    }
}

/// What the viewer asks to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RequestedMode {
    /// See and control.
    Interactive,
    /// Only see.
    ViewOnly,
}

/// One permission.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Permission {
    /// See the screen.
    View,
    /// Send mouse and keyboard input.
    Control,
    /// Send files to the host.
    Files,
    /// Sync clipboard text.
    Clipboard,
    /// List the host's shared folders and download from them (not implied by `files`).
    Browse,
}

impl Permission {
    /// Every permission, in display order.
    pub const ALL: [Permission; 5] = [
        Self::View,
        Self::Control,
        Self::Files,
        Self::Clipboard,
        Self::Browse,
    ];

    fn bit(self) -> u8 {
        match self {
            Self::View => 1,
            Self::Control => 2,
            Self::Files => 4,
            Self::Clipboard => 8,
            Self::Browse => 16,
        }
    }

    /// The permission's name.
    pub fn name(self) -> &'static str {
        match self {
            Self::View => "view",
            Self::Control => "control",
            Self::Files => "files",
            Self::Clipboard => "clipboard",
            Self::Browse => "browse",
        }
    }
}

/// A set of permissions. On the wire and in config files: a list of names.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(into = "Vec<Permission>", from = "Vec<Permission>")]
pub struct Permissions(u8);

impl Permissions {
    /// No permission.
    pub const NONE: Self = Self(0);
    /// `view` alone: view-only.
    pub const VIEW_ONLY: Self = Self(1);
    /// `view` and `control`: interactive.
    pub const INTERACTIVE: Self = Self(1 | 2);
    /// Everything.
    pub const ALL: Self = Self(1 | 2 | 4 | 8 | 16);

    /// Holds `p`.
    pub fn has(self, p: Permission) -> bool {
        self.0 & p.bit() != 0
    }

    /// Adds `p`.
    pub fn with(self, p: Permission) -> Self {
        Self(self.0 | p.bit())
    }

    /// Removes `p`.
    pub fn without(self, p: Permission) -> Self {
        Self(self.0 & !p.bit())
    }

    /// Union.
    pub fn union(self, o: Self) -> Self {
        Self(self.0 | o.0)
    }

    /// Intersection.
    pub fn intersect(self, o: Self) -> Self {
        Self(self.0 & o.0)
    }

    /// `view` and nothing else.
    pub fn is_view_only(self) -> bool {
        self == Self::VIEW_ONLY
    }

    /// Permissions narrowed to what `mode` asks for.
    pub fn for_mode(self, mode: RequestedMode) -> Self {
        match mode {
            RequestedMode::Interactive => self,
            RequestedMode::ViewOnly => self.intersect(Self::VIEW_ONLY),
        }
    }

    /// The permissions held, in display order.
    pub fn iter(self) -> impl Iterator<Item = Permission> {
        Permission::ALL.into_iter().filter(move |p| self.has(*p))
    }
}

impl From<Permissions> for Vec<Permission> {
    fn from(p: Permissions) -> Self {
        p.iter().collect()
    }
}

impl From<Vec<Permission>> for Permissions {
    fn from(v: Vec<Permission>) -> Self {
        v.into_iter().fold(Self::NONE, Self::with)
    }
}

impl fmt::Debug for Permissions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Permissions({self})")
    }
}

impl fmt::Display for Permissions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.iter().map(Permission::name).collect();
        if names.is_empty() {
            f.write_str("none")
        } else {
            f.write_str(&names.join(","))
        }
    }
}

/// A permission list that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown permission {0:?}: use view, control, files, clipboard, browse (comma-separated)")]
pub struct BadPermission(String);

impl FromStr for Permissions {
    type Err = BadPermission;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .try_fold(Self::NONE, |acc, name| {
                let p = Permission::ALL
                    .into_iter()
                    .find(|p| p.name() == name)
                    .ok_or_else(|| BadPermission(name.to_string()))?;
                Ok(acc.with(p))
            })
    }
}

/// Who an ACL entry is about.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Principal {
    /// A server account (`user:NAME`).
    User(String),
    /// A server group (`group:NAME`).
    Group(String),
    /// A viewer key (`peer:12D3Koo…`).
    Peer(PeerId),
}

/// A principal that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad principal {input:?}: {reason}; write user:NAME, group:NAME or peer:PEERID")]
pub struct BadPrincipal {
    /// The input.
    pub input: String,
    /// What was wrong.
    pub reason: String,
}

impl FromStr for Principal {
    type Err = BadPrincipal;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |reason: &str| BadPrincipal {
            input: s.to_string(),
            reason: reason.to_string(),
        };
        let (kind, name) = s.split_once(':').ok_or_else(|| bad("missing ':'"))?;
        if name.is_empty() || name.chars().any(|c| c.is_control() || c == ':') {
            return Err(bad("empty name or forbidden character"));
        }
        match kind {
            "user" => Ok(Self::User(name.to_string())),
            "group" => Ok(Self::Group(name.to_string())),
            "peer" => name
                .parse()
                .map(Self::Peer)
                .map_err(|_| bad("not a PeerId")),
            _ => Err(bad("unknown kind")),
        }
    }
}

impl fmt::Display for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::User(n) => write!(f, "user:{n}"),
            Self::Group(n) => write!(f, "group:{n}"),
            Self::Peer(p) => write!(f, "peer:{p}"),
        }
    }
}

impl Serialize for Principal {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Principal {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Whether the owner must confirm a session an ACL entry grants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Approval {
    /// Connect without asking.
    #[default]
    Never,
    /// Ask the owner every time.
    Always,
}

/// One entry of the host's access-control list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AclEntry {
    /// Who.
    pub principal: Principal,
    /// What they may do.
    pub permissions: Permissions,
    /// Whether the owner confirms.
    #[serde(default)]
    pub approval: Approval,
    /// Unix seconds after which the entry no longer applies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<u64>,
}

/// The host's own switches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct HostSettings {
    /// Guest sharing on at the host (off by default).
    pub allow_guests: bool,
    /// Visitor sharing on at the host (off by default).
    pub allow_visitors: bool,
}

/// What the host's server says about it (present only when the host is registered).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ServerFlags {
    /// Server-wide guest sharing switch.
    pub guest_sharing: bool,
    /// Server-wide visitor sharing switch.
    pub visitor_sharing: bool,
    /// The host's node allows guests.
    pub node_allows_guests: bool,
    /// The host's node allows visitors.
    pub node_allows_visitors: bool,
}

/// An authenticated access request.
#[derive(Debug, Clone)]
pub struct Request<'a> {
    /// How the viewer asks to come in.
    pub kind: AccessKind,
    /// The viewer's PeerId, proven by the Noise handshake.
    pub viewer: PeerId,
    /// Interactive or view-only.
    pub mode: RequestedMode,
    /// The verified ticket, when one was presented.
    pub ticket: Option<&'a Ticket>,
}

/// Where a sharing switch was off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// On this host.
    Host,
    /// On the host's node at the server.
    Node,
    /// Server-wide.
    Server,
}

/// Why a request is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RefuseReason {
    /// Guest sharing is off somewhere.
    #[error("guest access is turned off ({0:?})")]
    GuestSharingOff(Scope),
    /// Visitor sharing is off somewhere.
    #[error("visitor access is turned off ({0:?})")]
    VisitorSharingOff(Scope),
    /// Visitors need a registered host (to verify their server ticket).
    #[error("this host is not registered with a server, so it cannot check visitors")]
    NoServer,
    /// The request kind needs a ticket and none was presented.
    #[error("a {0:?} request needs a ticket from the server; sign in first")]
    MissingTicket(AccessKind),
    /// The ticket is not of the kind the request claims.
    #[error("a {got:?} ticket does not fit a {kind:?} request")]
    WrongTicketKind {
        /// The request's kind.
        kind: AccessKind,
        /// The ticket's kind.
        got: TicketKind,
    },
    /// The account must come in as a server user.
    #[error("account {0} may only connect with custom server security")]
    ForcedServerSecurity(String),
    /// No ACL entry grants anything.
    #[error("no access entry on this host grants you access")]
    NotInAcl,
    /// The matching entries do not include `view`.
    #[error("your access entry does not include the view permission")]
    NoViewPermission,
}

impl RefuseReason {
    /// A stable code for the wire and logs.
    pub fn code(&self) -> &'static str {
        match self {
            Self::GuestSharingOff(_) => "guest_sharing_off",
            Self::VisitorSharingOff(_) => "visitor_sharing_off",
            Self::NoServer => "no_server",
            Self::MissingTicket(_) => "missing_ticket",
            Self::WrongTicketKind { .. } => "wrong_ticket_kind",
            Self::ForcedServerSecurity(_) => "forced_server_security",
            Self::NotInAcl => "not_in_acl",
            Self::NoViewPermission => "no_view_permission",
        }
    }
}

/// The decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Refuse now.
    Refuse(RefuseReason),
    /// Ask the owner; if accepted interactively, grant `permissions`.
    AskOwner {
        /// Permissions an interactive acceptance grants.
        permissions: Permissions,
    },
    /// Allow now.
    Allow {
        /// What the session may do.
        permissions: Permissions,
    },
}

/// What guests and visitors get when the owner accepts them interactively; file transfer and
/// clipboard still need the owner's confirmation per use (see [`services_need_confirmation`]).
pub const OWNER_ACCEPTED: Permissions = Permissions::ALL;

/// Whether the owner confirms each file transfer / clipboard sync for this kind of session.
pub fn services_need_confirmation(kind: AccessKind) -> bool {
    matches!(kind, AccessKind::Guest | AccessKind::Visitor)
}

/// The access decision. `server` is `None` when the host is not registered with a server.
pub fn decide(
    req: &Request<'_>,
    host: &HostSettings,
    acl: &[AclEntry],
    server: Option<&ServerFlags>,
    now: u64,
) -> Decision {
    match decide_inner(req, host, acl, server, now) {
        Ok(d) => d,
        Err(reason) => Decision::Refuse(reason),
    }
}

fn decide_inner(
    req: &Request<'_>,
    host: &HostSettings,
    acl: &[AclEntry],
    server: Option<&ServerFlags>,
    now: u64,
) -> Result<Decision, RefuseReason> {
    // A ticket that says "forced" closes every other way in, whatever the request claims.
    if let Some(t) = req.ticket {
        if t.subject.force_server_security && req.kind != AccessKind::User {
            return Err(RefuseReason::ForcedServerSecurity(t.subject.user.clone()));
        }
    }
    match req.kind {
        AccessKind::Guest => {
            if !host.allow_guests {
                return Err(RefuseReason::GuestSharingOff(Scope::Host));
            }
            if let Some(s) = server {
                if !s.guest_sharing {
                    return Err(RefuseReason::GuestSharingOff(Scope::Server));
                }
                if !s.node_allows_guests {
                    return Err(RefuseReason::GuestSharingOff(Scope::Node));
                }
            }
            Ok(Decision::AskOwner {
                permissions: OWNER_ACCEPTED.for_mode(req.mode),
            })
        }
        AccessKind::Visitor => {
            ticket_of_kind(req, TicketKind::Visitor)?;
            if !host.allow_visitors {
                return Err(RefuseReason::VisitorSharingOff(Scope::Host));
            }
            let s = server.ok_or(RefuseReason::NoServer)?;
            if !s.visitor_sharing {
                return Err(RefuseReason::VisitorSharingOff(Scope::Server));
            }
            if !s.node_allows_visitors {
                return Err(RefuseReason::VisitorSharingOff(Scope::Node));
            }
            Ok(Decision::AskOwner {
                permissions: OWNER_ACCEPTED.for_mode(req.mode),
            })
        }
        AccessKind::User => {
            let ticket = ticket_of_kind(req, TicketKind::User)?;
            let matches = |p: &Principal| match p {
                Principal::User(name) => *name == ticket.subject.user,
                Principal::Group(g) => ticket.subject.groups.iter().any(|tg| tg == g),
                Principal::Peer(_) => false,
            };
            grant(acl, matches, req.mode, now)
        }
        AccessKind::Peer => grant(acl, |p| *p == Principal::Peer(req.viewer), req.mode, now),
    }
}

fn ticket_of_kind<'a>(req: &Request<'a>, want: TicketKind) -> Result<&'a Ticket, RefuseReason> {
    let t = req.ticket.ok_or(RefuseReason::MissingTicket(req.kind))?;
    if t.kind != want {
        return Err(RefuseReason::WrongTicketKind {
            kind: req.kind,
            got: t.kind,
        });
    }
    Ok(t)
}

/// Entries that match and are not expired: if any with `approval = never` grants `view`,
/// allow with the union of those; otherwise ask the owner with the union of all matches.
fn grant(
    acl: &[AclEntry],
    matches: impl Fn(&Principal) -> bool,
    mode: RequestedMode,
    now: u64,
) -> Result<Decision, RefuseReason> {
    let live: Vec<&AclEntry> = acl
        .iter()
        .filter(|e| matches(&e.principal) && e.expires_at.is_none_or(|t| now < t))
        .collect();
    if live.is_empty() {
        return Err(RefuseReason::NotInAcl);
    }
    let union = |approval: Option<Approval>| {
        live.iter()
            .filter(|e| approval.is_none_or(|a| e.approval == a))
            .fold(Permissions::NONE, |acc, e| acc.union(e.permissions))
            .for_mode(mode)
    };
    let direct = union(Some(Approval::Never));
    if direct.has(Permission::View) {
        return Ok(Decision::Allow {
            permissions: direct,
        });
    }
    let asked = union(None);
    if !asked.has(Permission::View) {
        return Err(RefuseReason::NoViewPermission);
    }
    Ok(Decision::AskOwner { permissions: asked })
}

/// The owner's answer to a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OwnerAnswer {
    /// Accept with the offered permissions.
    Accept,
    /// Accept, view only.
    AcceptViewOnly,
    /// Refuse.
    Refuse,
}

/// Permissions after the owner answered (`None` = refused).
pub fn apply_owner_answer(offered: Permissions, answer: OwnerAnswer) -> Option<Permissions> {
    match answer {
        OwnerAnswer::Accept => Some(offered),
        OwnerAnswer::AcceptViewOnly => Some(offered.intersect(Permissions::VIEW_ONLY)),
        OwnerAnswer::Refuse => None,
    }
}

#[cfg(test)]
mod tests;
