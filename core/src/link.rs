//! The host's link to its server, sans-IO: when to dial, register, heartbeat, ask for a
//! relay reservation and resynchronise, from what the connection and the server said.
//!
//! The host's network actor is a shell around it: it feeds in what happened (the server's
//! connection came up or went away, a dial failed, a response or event arrived, the relay
//! reservation came or went), calls [`Link::handle_timeout`] when [`Link::poll_timeout`]
//! says, and carries out each [`Action`] from [`Link::poll_action`] — dialing, sending,
//! listening, telling access control. Every input takes `now`; nothing here reads a clock,
//! so the tests drive outages, flapping links and lost events with a fake one.
//!
//! - **Fail closed** until the first registration: the first action trusts the server's key
//!   with every server and node switch off.
//! - **Redial** after an outage or a failed dial: 1 s, doubling to 8 s, each with up to
//!   250 ms of jitter (so a restarted server's hosts do not all return in one instant); one
//!   attempt scheduled at a time (the TCP and QUIC dials fail separately); back to 1 s once
//!   connected.
//! - **Registration** on every new connection; the answer brings the node's flags, the
//!   global switches and the server's latest event number. A number above the last event
//!   this host applied means it missed some while away: it asks for the users of its live
//!   sessions. A heartbeat's answer carries the number too, so an event lost on a live link
//!   is noticed within one heartbeat (then: register again, and ask for the users).
//! - **Enrollment**: waiting for the admin's approval (or slowed down) asks again every 5 s;
//!   a refused token or a rejected host stops asking; either way the owner sees why.
//! - **Relay**: a reservation is asked for at each registration without one (a restarted
//!   server forgot it) and is dropped with the connection.
//! - **Heartbeat** at the interval the server asked for (at least 5 s), while connected.

#[cfg(test)]
mod tests;

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::policy::ServerFlags;
use crate::wire::signal::{Change, ErrorCode, Registered};

/// The first retry after the server went away.
pub const FIRST_REDIAL: Duration = Duration::from_secs(1);
/// The longest wait between attempts: a restarted server sees its hosts back within it.
pub const MAX_REDIAL: Duration = Duration::from_secs(8);
/// Most jitter added to a redial.
pub const REDIAL_JITTER_MS: u64 = 250;
/// How often a host that waits for the admin's approval asks again.
pub const ENROLL_RETRY: Duration = Duration::from_secs(5);
/// The shortest heartbeat interval, whatever the server asks.
pub const MIN_HEARTBEAT: Duration = Duration::from_secs(5);

/// What the shell does next.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Dial the server (TCP, and QUIC from the listening socket).
    Dial,
    /// Send a registration (with the direct addresses, node path and enrollment token).
    Register,
    /// Send a heartbeat (with the direct addresses).
    Heartbeat,
    /// Ask the server for a relay reservation (listen on its circuit address); report
    /// [`Link::relay_failed`] if that cannot start.
    ListenRelay,
    /// The reservation died with the connection: remove its listener.
    DropRelay,
    /// Tell access control the server's key with these switches.
    Trust(ServerFlags),
    /// Ask access control for the users of live sessions and the server for their state.
    ResyncUsers,
    /// Hand a user's change (an event, or the state asked for) to access control.
    User(Change),
    /// [`Link::status`] changed: publish it.
    Status,
}

/// What the owner and the CLI see of the link.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LinkStatus {
    /// The registration, as last told (flags kept current by events).
    pub registered: Option<Registered>,
    /// Why the server has not registered this host yet, in the server's words.
    pub refused: Option<String>,
    /// A relay reservation is held.
    pub relayed: bool,
}

/// The relay reservation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Relay {
    /// None, and none asked for.
    None,
    /// Asked for; not accepted yet.
    Asked,
    /// Accepted.
    Held,
}

/// The host↔server link machine.
#[derive(Debug)]
pub struct Link {
    /// A connection to the server is up.
    connected: bool,
    /// What the owner sees.
    status: LinkStatus,
    /// The relay reservation.
    relay: Relay,
    /// The number of the last server event this host applied (or heard of when it
    /// registered).
    seen_version: Option<u64>,
    /// The delay before the next redial (without jitter).
    redial_delay: Duration,
    /// When the scheduled redial is due.
    redial_at: Option<Instant>,
    /// When to register again while waiting for the admin's approval.
    enroll_at: Option<Instant>,
    /// The heartbeat interval (set by the first registration).
    heartbeat_every: Option<Duration>,
    /// When the next heartbeat is due (while connected and registered).
    heartbeat_at: Option<Instant>,
    /// What to do.
    actions: VecDeque<Action>,
    /// Jitter source (xorshift64; the shell seeds it).
    rng: u64,
}

impl Link {
    /// A link that starts now: trust with every switch off, and dial.
    pub fn new(seed: u64) -> Self {
        let mut me = Self {
            connected: false,
            status: LinkStatus::default(),
            relay: Relay::None,
            seen_version: None,
            redial_delay: FIRST_REDIAL,
            redial_at: None,
            enroll_at: None,
            heartbeat_every: None,
            heartbeat_at: None,
            actions: VecDeque::new(),
            rng: seed | 1,
        };
        me.actions.push_back(Action::Trust(ServerFlags::default()));
        me.actions.push_back(Action::Dial);
        me
    }

    /// The next thing to do.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// When [`Self::handle_timeout`] is next due.
    pub fn poll_timeout(&self) -> Option<Instant> {
        [self.redial_at, self.enroll_at, self.heartbeat_at]
            .into_iter()
            .flatten()
            .min()
    }

    /// What the owner sees.
    pub fn status(&self) -> &LinkStatus {
        &self.status
    }

    /// The timers that are due.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.redial_at.is_some_and(|t| t <= now) {
            self.redial_at = None;
            self.actions.push_back(Action::Dial);
        }
        if self.enroll_at.is_some_and(|t| t <= now) {
            self.enroll_at = None;
            self.actions.push_back(Action::Register);
        }
        if let (Some(t), Some(every)) = (self.heartbeat_at, self.heartbeat_every) {
            if t <= now {
                self.heartbeat_at = Some(now + every);
                self.actions.push_back(Action::Heartbeat);
            }
        }
    }

    /// The first connection to the server came up (TCP and QUIC count once).
    pub fn connected(&mut self, _now: Instant) {
        self.connected = true;
        self.redial_delay = FIRST_REDIAL;
        self.redial_at = None;
        self.actions.push_back(Action::Register);
    }

    /// The last connection to the server closed: sessions go on; the reservation is gone.
    pub fn disconnected(&mut self, now: Instant) {
        self.connected = false;
        self.heartbeat_at = None;
        self.enroll_at = None;
        if self.relay != Relay::None {
            self.relay = Relay::None;
            self.actions.push_back(Action::DropRelay);
        }
        self.set_relayed(false);
        self.schedule_redial(now);
    }

    /// A dial to the server failed (and no connection is up).
    pub fn dial_failed(&mut self, now: Instant) {
        if !self.connected {
            self.schedule_redial(now);
        }
    }

    fn schedule_redial(&mut self, now: Instant) {
        if self.redial_at.is_some() {
            return;
        }
        let jitter = Duration::from_millis(self.next_random() % REDIAL_JITTER_MS);
        self.redial_at = Some(now + self.redial_delay + jitter);
        self.redial_delay = (self.redial_delay * 2).min(MAX_REDIAL);
    }

    fn next_random(&mut self) -> u64 {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        self.rng
    }

    /// The server registered this host.
    pub fn registered(&mut self, now: Instant, r: Registered) {
        self.actions.push_back(Action::Trust(flags_of(&r)));
        if self.seen_version.is_some_and(|v| v < r.state_version) {
            // Away while things changed: ask about the users of live sessions (the flags
            // came with this answer).
            self.actions.push_back(Action::ResyncUsers);
        }
        self.seen_version = Some(r.state_version);
        if self.relay == Relay::None {
            self.relay = Relay::Asked;
            self.actions.push_back(Action::ListenRelay);
        }
        let every = Duration::from_secs(u64::from(r.heartbeat_secs)).max(MIN_HEARTBEAT);
        self.heartbeat_every = Some(every);
        if self.heartbeat_at.is_none() {
            self.heartbeat_at = Some(now + every);
        }
        self.enroll_at = None;
        self.status.registered = Some(r);
        self.status.refused = None;
        self.actions.push_back(Action::Status);
    }

    /// The server refused a request.
    pub fn refused(&mut self, now: Instant, code: ErrorCode, message: String) {
        match code {
            ErrorCode::NotRegistered => self.actions.push_back(Action::Register),
            // Not registered yet: the owner sees why. Waiting for the admin (or slowed
            // down) asks again; a rejected or refused host stops asking.
            ErrorCode::PendingApproval
            | ErrorCode::RateLimited
            | ErrorCode::Forbidden
            | ErrorCode::BadRequest
                if self.status.registered.is_none() =>
            {
                self.status.refused = Some(message);
                self.actions.push_back(Action::Status);
                if matches!(code, ErrorCode::PendingApproval | ErrorCode::RateLimited) {
                    self.enroll_at = Some(now + ENROLL_RETRY);
                }
            }
            _ => {}
        }
    }

    /// A heartbeat's answer, with the server's latest event number: one this host never
    /// applied was lost on the way; ask as after a reconnect.
    pub fn heartbeat_answered(&mut self, state_version: u64) {
        if self.seen_version.is_some_and(|seen| seen < state_version) {
            self.seen_version = Some(state_version);
            self.actions.push_back(Action::Register);
            self.actions.push_back(Action::ResyncUsers);
        }
    }

    /// An event from the server (the shell acknowledges it).
    pub fn event(&mut self, seq: u64, change: Change) {
        self.seen_version = Some(self.seen_version.unwrap_or(0).max(seq));
        let Some(r) = self.status.registered.as_mut() else {
            if matches!(change, Change::User { .. }) {
                self.actions.push_back(Action::User(change));
            }
            return;
        };
        match change {
            // The server sends a node's flags only to the host registered there, so the
            // event is about this host whatever its path says: after a move it carries the
            // new path, which the host takes.
            Change::Node {
                path,
                allow_guests,
                allow_visitors,
            } => {
                r.node_path = path;
                r.allow_guests = allow_guests;
                r.allow_visitors = allow_visitors;
            }
            Change::Global {
                guest_sharing,
                visitor_sharing,
            } => {
                r.guest_sharing = guest_sharing;
                r.visitor_sharing = visitor_sharing;
            }
            user @ Change::User { .. } => {
                self.actions.push_back(Action::User(user));
                return;
            }
        }
        let flags = flags_of(r);
        self.actions.push_back(Action::Trust(flags));
        self.actions.push_back(Action::Status);
    }

    /// The server's word on the users asked about.
    pub fn users(&mut self, users: Vec<Change>) {
        for change in users {
            if matches!(change, Change::User { .. }) {
                self.actions.push_back(Action::User(change));
            }
        }
    }

    /// The relay accepted the reservation.
    pub fn relay_accepted(&mut self) {
        self.relay = Relay::Held;
        self.set_relayed(true);
    }

    /// The reservation could not be asked for (the next registration asks again).
    pub fn relay_failed(&mut self) {
        self.relay = Relay::None;
    }

    /// The reservation's listener closed.
    pub fn relay_closed(&mut self) {
        self.relay = Relay::None;
        self.set_relayed(false);
    }

    fn set_relayed(&mut self, relayed: bool) {
        if self.status.relayed != relayed {
            self.status.relayed = relayed;
            self.actions.push_back(Action::Status);
        }
    }
}

/// The switches a registration says.
fn flags_of(r: &Registered) -> ServerFlags {
    ServerFlags {
        guest_sharing: r.guest_sharing,
        visitor_sharing: r.visitor_sharing,
        node_allows_guests: r.allow_guests,
        node_allows_visitors: r.allow_visitors,
    }
}
