//! `/portico/signal/1`: viewer/host ↔ server, request-response with CBOR bodies.
//!
//! Hosts register and heartbeat; viewers log in, list the node tree, look hosts up and ask
//! for tickets. The server pushes [`ServerEvent`]s to registered hosts as requests of their
//! own (the host answers [`SignalResponse::Ack`]). The caller's PeerId is the one libp2p's
//! Noise authenticated on the connection, so no message carries a claim of who sent it.

use serde::{Deserialize, Serialize};

use super::{wire_enum, WirePeerId};
use crate::internet_id::InternetId;
use crate::ticket::{SignedTicket, TicketKind};

/// The libp2p protocol name.
pub const PROTOCOL: &str = "/portico/signal/1";

/// Largest signal message (a node listing of a few thousand hosts fits).
pub const MAX_SIGNAL_LEN: usize = 1024 * 1024;

/// An opaque sign-in session token (random, issued by the server, bound to the viewer PeerId).
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SessionToken(#[serde(with = "serde_bytes")] pub Vec<u8>);

impl std::fmt::Debug for SessionToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionToken(..)")
    }
}

wire_enum! {
    /// A request to the server (or, for `Event`, from the server to a host).
    pub enum SignalRequest: "signal", version 1, max MAX_SIGNAL_LEN {
        /// A host registers (or re-registers) itself.
        1 => Register(Register),
        /// A host's presence heartbeat with its current addresses.
        2 => Heartbeat(Heartbeat),
        /// Find a host by Internet-ID or node path.
        3 => Lookup(Lookup),
        /// Sign in with user name and password.
        4 => Login(Login),
        /// End a sign-in session.
        5 => Logout(Logout),
        /// List the node tree under a path.
        6 => ListNodes(ListNodes),
        /// Ask for a visitor or user ticket for one host.
        7 => IssueTicket(IssueTicket),
        /// Who is signed in with this token.
        8 => WhoAmI(WhoAmI),
        /// Server → host: something that may end live sessions changed.
        9 => Event(ServerEvent),
        /// A host checks that ACL principals exist on the server.
        10 => CheckPrincipals(CheckPrincipals),
        /// A host that missed events asks for the current state of some users.
        11 => CheckUsers(CheckUsers),
    }
}

wire_enum! {
    /// The server's answer to a [`SignalRequest`].
    pub enum SignalResponse: "signal", version 1, max MAX_SIGNAL_LEN {
        /// Registration accepted.
        1 => Registered(Registered),
        /// Heartbeat or event acknowledged.
        2 => Ack(Ack),
        /// Lookup result.
        3 => Found(Found),
        /// Signed in.
        4 => LoggedIn(LoggedIn),
        /// The node tree.
        5 => Nodes(Nodes),
        /// A ticket for the requested host.
        6 => Ticket(SignedTicket),
        /// The request failed.
        7 => Error(SignalError),
        /// Which principals exist.
        8 => Principals(Principals),
        /// The current state of the users asked about.
        9 => Users(Users),
    }
}

/// Host registration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Register {
    /// Node path wanted (`/Sales/pc-7`); `None` lands under `/unassigned/`.
    pub node_path: Option<String>,
    /// Multiaddrs the host listens on (as strings).
    pub addrs: Vec<String>,
    /// Agent string (`portico/0.1.0`).
    pub agent: String,
    /// An enrollment token from the server's admin (`portico-signal node enroll`), for a
    /// host the server does not know yet; ignored once the host is registered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enroll: Option<String>,
}

/// Presence heartbeat.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Heartbeat {
    /// Current listen and observed addresses.
    pub addrs: Vec<String>,
}

/// What to look up.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LookupTarget {
    /// By Internet-ID.
    Id(InternetId),
    /// By node path.
    Path(String),
}

/// Lookup request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Lookup {
    /// The host wanted.
    pub target: LookupTarget,
    /// Sign-in session, required for node paths of hosts not shared by ID.
    pub session: Option<SessionToken>,
}

/// Login request.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct Login {
    /// Account name.
    pub user: String,
    /// Password (the connection is Noise-encrypted end to end with the server).
    pub password: String,
}

impl std::fmt::Debug for Login {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Login")
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

/// Logout request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Logout {
    /// The session to end.
    pub session: SessionToken,
}

/// List the node tree.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ListNodes {
    /// Sign-in session.
    pub session: SessionToken,
    /// Subtree root (`/` for everything).
    pub path: String,
}

/// Ticket request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IssueTicket {
    /// Sign-in session.
    pub session: SessionToken,
    /// The host the ticket is for (its audience).
    pub host: WirePeerId,
    /// Visitor or user ticket.
    pub kind: TicketKind,
}

/// Who-am-I request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WhoAmI {
    /// Sign-in session.
    pub session: SessionToken,
}

/// Server → host notification.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServerEvent {
    /// Monotonic event number (per server), for logs and de-duplication.
    pub seq: u64,
    /// What changed.
    pub change: Change,
}

/// A change that may end live sessions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Change {
    /// A user's groups or disabled state changed (or the user was deleted).
    User {
        /// Account name.
        user: String,
        /// Current groups (empty when deleted).
        groups: Vec<String>,
        /// Disabled or deleted.
        disabled: bool,
        /// The account may only come in as a server user (live guest or visitor sessions
        /// of it end).
        #[serde(default)]
        force_server_security: bool,
        /// The change's date by the server's clock (Unix seconds), later than every
        /// ticket of this account issued before it: hosts refuse the account's tickets
        /// issued before it. 0 from servers that do not say.
        #[serde(default)]
        changed_at: u64,
    },
    /// The host's node flags changed.
    Node {
        /// Node path.
        path: String,
        /// Guests allowed on this node.
        allow_guests: bool,
        /// Visitors allowed on this node.
        allow_visitors: bool,
    },
    /// Global sharing switches changed.
    Global {
        /// Guest sharing on at the server.
        guest_sharing: bool,
        /// Visitor sharing on at the server.
        visitor_sharing: bool,
    },
}

/// Ask which principals exist.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckPrincipals {
    /// `user:NAME` / `group:NAME` strings.
    pub principals: Vec<String>,
}

/// Registration result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Registered {
    /// The host's stable Internet-ID.
    pub internet_id: InternetId,
    /// Where the host sits in the node tree.
    pub node_path: String,
    /// Guests allowed on this node (effective, inherited from folders).
    pub allow_guests: bool,
    /// Visitors allowed on this node (effective, inherited from folders).
    pub allow_visitors: bool,
    /// Server-wide guest sharing switch.
    pub guest_sharing: bool,
    /// Server-wide visitor sharing switch.
    pub visitor_sharing: bool,
    /// The server's display name (shown to owners: "signed in at SERVER").
    pub server_name: String,
    /// Heartbeat interval the server expects, in seconds.
    pub heartbeat_secs: u32,
    /// The number of the server's latest event ([`ServerEvent::seq`]; it survives
    /// restarts). A host that re-registers with another number than the last event it
    /// applied missed changes while away, and asks for its users' state ([`CheckUsers`]).
    #[serde(default)]
    pub state_version: u64,
}

/// Most users one [`CheckUsers`] may name.
pub const MAX_CHECK_USERS: usize = 256;

/// The users a host has live sessions of, to learn their state now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckUsers {
    /// Account names (at most [`MAX_CHECK_USERS`]).
    pub users: Vec<String>,
}

/// The state of the users asked about, in request order, as [`Change::User`] values
/// (unknown or deleted users come back disabled, with no groups).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Users {
    /// One `Change::User` per name asked.
    pub users: Vec<Change>,
}

/// Acknowledgement.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Ack {
    /// In the answer to a host's heartbeat: the number of the server's latest event, so a
    /// host that missed one while connected (it did not arrive or was not acknowledged)
    /// catches up within a heartbeat, as after a reconnect.
    #[serde(default, skip_serializing_if = "Option::is_none", rename = "v")]
    pub state_version: Option<u64>,
}

/// Lookup result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Found {
    /// The host's PeerId.
    pub peer: WirePeerId,
    /// Its Internet-ID.
    pub internet_id: InternetId,
    /// Its node path (empty for a caller that is not signed in).
    pub node_path: String,
    /// Direct addresses it reported.
    pub addrs: Vec<String>,
    /// Relayed addresses through this server.
    pub relay_addrs: Vec<String>,
    /// Seen within the heartbeat window.
    pub online: bool,
}

/// Sign-in result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoggedIn {
    /// The session token.
    pub session: SessionToken,
    /// Account name.
    pub user: String,
    /// Groups.
    pub groups: Vec<String>,
    /// The user may only come in as a server user.
    pub force_server_security: bool,
    /// When the session expires (Unix seconds).
    pub expires_at: u64,
    /// The server's display name.
    pub server_name: String,
}

/// One entry of the node tree.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeEntry {
    /// Full path.
    pub path: String,
    /// Folder or host.
    pub is_host: bool,
    /// Host's Internet-ID.
    pub internet_id: Option<InternetId>,
    /// Host online now.
    pub online: bool,
    /// Guests allowed.
    pub allow_guests: bool,
    /// Visitors allowed.
    pub allow_visitors: bool,
}

/// The node tree.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Nodes {
    /// Entries in path order.
    pub entries: Vec<NodeEntry>,
}

/// Which principals exist, in request order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Principals {
    /// `true` when the principal exists.
    pub known: Vec<bool>,
}

/// Error classes a client can act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The request was malformed.
    BadRequest,
    /// Nothing with that ID or path.
    NotFound,
    /// Wrong user or password (never says which), or session expired.
    Unauthorized,
    /// Too many attempts; retry later.
    RateLimited,
    /// Not allowed (sharing off, user disabled, forced server security).
    Forbidden,
    /// The caller must register first.
    NotRegistered,
    /// The server failed.
    Internal,
    /// The request is not supported by this server.
    Unsupported,
    /// The host is not enrolled; it waits for the admin's approval (it retries).
    PendingApproval,
}

/// A failed request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SignalError {
    /// The error class.
    pub code: ErrorCode,
    /// A message for humans.
    pub message: String,
    /// When to retry, for `RateLimited`.
    pub retry_after_ms: Option<u64>,
}
