//! The libp2p side: one behaviour for hosts and viewers (TCP + QUIC, Noise, Yamux, identify,
//! ping, relay client, DCUtR, autonat, mDNS, the signal protocol, session streams), and the
//! host's `Network` actor that owns the Swarm, registers with the server, keeps a relay
//! reservation and heartbeats.

use std::pin::Pin;
use std::task::Poll;
use std::time::Duration;

use actix::prelude::*;
use futures::StreamExt;
use libp2p::core::transport::ListenerId;
use libp2p::multiaddr::Protocol;
use libp2p::request_response;
use libp2p::swarm::SwarmEvent;
use libp2p::{mdns, relay, Multiaddr, PeerId, Swarm};
use portico_core::policy::ServerFlags;
use portico_core::wire::signal::{
    Ack, Change, CheckUsers, ErrorCode, Heartbeat, Register, Registered, SignalRequest,
    SignalResponse, MAX_CHECK_USERS,
};
use tokio::sync::watch;

use crate::access::{AccessControl, LiveUsers, ServerChange, ServerTrust, SetServer};

/// The remote address (as text) and relayed flag of each connected peer's latest connection.
pub type PeerAddrs =
    std::sync::Arc<std::sync::Mutex<std::collections::HashMap<PeerId, (String, bool)>>>;

pub use portico_signal_client::peer::{
    build_swarm, PeerBehaviour, PeerBehaviourEvent, PeerOptions, SESSION,
};

/// How often a host that waits for the admin's approval asks again.
const ENROLL_RETRY: Duration = Duration::from_secs(5);

/// Default direct port (TCP and QUIC).
pub const DEFAULT_PORT: u16 = portico_signal_client::ports::HOST_PORT;

/// What the host reports about itself as it comes up.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HostStatus {
    /// Direct listen addresses (with `/p2p/`).
    pub listen: Vec<Multiaddr>,
    /// Registration at the server.
    pub registered: Option<Registered>,
    /// A relay reservation is held.
    pub relayed: bool,
    /// Why the server has not registered this host yet (waiting for the admin's approval,
    /// or a refused token), in the server's words.
    pub refused: Option<String>,
}

/// The host's server link.
#[derive(Debug, Clone)]
pub struct ServerLink {
    /// Where (TCP multiaddr without `/p2p`).
    pub addr: Multiaddr,
    /// Its pinned PeerId.
    pub peer: PeerId,
    /// Node path wanted on first registration.
    pub name: Option<String>,
    /// Enrollment token for the first registration (from the server's admin or a bundle).
    pub enroll: Option<String>,
}

/// The host's network actor.
pub struct Network {
    /// The swarm.
    swarm: Swarm<PeerBehaviour>,
    /// The server, if any.
    server: Option<ServerLink>,
    /// Access control (learns server trust and flags).
    access: Addr<AccessControl>,
    /// Status for the CLI and tests.
    status: watch::Sender<HostStatus>,
    /// Heartbeat timer started.
    heartbeating: bool,
    /// Where each peer connects from (sessions show it to the owner).
    peers: PeerAddrs,
    /// The number of the last server event this host applied (or heard of when it
    /// registered): a higher number at a later registration means it missed some.
    seen_version: Option<u64>,
    /// The relay reservation's listener while it lives (asked for again at every
    /// registration without one: a restarted server has forgotten it).
    relay_listener: Option<ListenerId>,
    /// The delay before the next attempt to reach the server (doubles to
    /// [`MAX_REDIAL`], back to [`FIRST_REDIAL`] once connected).
    redial_delay: Duration,
    /// An attempt is scheduled (the TCP and QUIC dials fail separately; one retry).
    redial_scheduled: bool,
}

/// The first retry after the server went away.
const FIRST_REDIAL: Duration = Duration::from_secs(1);
/// The longest wait between attempts: a restarted server sees its hosts back within it.
const MAX_REDIAL: Duration = Duration::from_secs(8);

impl Network {
    /// A network actor over a swarm that is already listening.
    pub fn new(
        swarm: Swarm<PeerBehaviour>,
        server: Option<ServerLink>,
        access: Addr<AccessControl>,
        status: watch::Sender<HostStatus>,
        peers: PeerAddrs,
    ) -> Self {
        Self {
            swarm,
            server,
            access,
            status,
            heartbeating: false,
            peers,
            seen_version: None,
            relay_listener: None,
            redial_delay: FIRST_REDIAL,
            redial_scheduled: false,
        }
    }

    /// Tries the server again after the current delay (with jitter, so the hosts of a
    /// restarted server do not all come back in the same instant), doubling the next one.
    fn schedule_redial(&mut self, ctx: &mut Context<Self>) {
        if self.server.is_none() || self.redial_scheduled {
            return;
        }
        self.redial_scheduled = true;
        let jitter = Duration::from_millis(rand::random::<u64>() % 250);
        let delay = self.redial_delay + jitter;
        self.redial_delay = (self.redial_delay * 2).min(MAX_REDIAL);
        tracing::info!(in_ms = delay.as_millis() as u64, "trying the server again");
        ctx.run_later(delay, |act, _| {
            act.redial_scheduled = false;
            act.dial_server();
        });
    }

    fn peer_id(&self) -> PeerId {
        *self.swarm.local_peer_id()
    }

    fn direct_addrs(&self) -> Vec<String> {
        self.swarm
            .listeners()
            .filter(|a| !a.iter().any(|p| matches!(p, Protocol::P2pCircuit)))
            .map(|a| a.to_string())
            .collect()
    }

    fn on_event(&mut self, ev: SwarmEvent<PeerBehaviourEvent>, ctx: &mut Context<Self>) {
        if let SwarmEvent::ConnectionClosed {
            peer_id,
            num_established,
            cause,
            endpoint,
            ..
        } = &ev
        {
            let addr = endpoint.get_remote_address();
            match cause {
                Some(e) => tracing::info!(%peer_id, %addr, error = %e, "connection closed"),
                None => tracing::debug!(%peer_id, %addr, "connection closed"),
            }
            // The map of where peers connect from holds connected peers only.
            if *num_established == 0 {
                if let Ok(mut m) = self.peers.lock() {
                    m.remove(peer_id);
                }
            }
        }
        match ev {
            SwarmEvent::NewListenAddr { address, .. } => {
                let me = self.peer_id();
                if address.iter().any(|p| matches!(p, Protocol::P2pCircuit)) {
                    tracing::info!(%address, "reachable through the relay");
                } else {
                    tracing::info!(%address, "listening");
                    self.status
                        .send_modify(|s| s.listen.push(address.with(Protocol::P2p(me))));
                }
            }
            SwarmEvent::ConnectionEstablished {
                peer_id,
                endpoint,
                num_established,
                ..
            } => {
                tracing::debug!(%peer_id, addr = %endpoint.get_remote_address(), relayed = endpoint.is_relayed(), "connected");
                let addr = endpoint.get_remote_address();
                let ip = addr.iter().find_map(|p| match p {
                    Protocol::Ip4(ip) => Some(ip.to_string()),
                    Protocol::Ip6(ip) => Some(ip.to_string()),
                    Protocol::Dns(h) | Protocol::Dns4(h) | Protocol::Dns6(h) => Some(h.to_string()),
                    _ => None,
                });
                // A relayed viewer's address is only its PeerId: the table counts relayed
                // viewers in one pool, and the owner sees that it came through the relay.
                let shown = match (endpoint.is_relayed(), ip) {
                    (true, Some(ip)) => format!("{ip} (relay)"),
                    (true, None) => "unknown".into(),
                    (false, ip) => ip.unwrap_or_else(|| addr.to_string()),
                };
                if let Ok(mut m) = self.peers.lock() {
                    m.insert(peer_id, (shown, endpoint.is_relayed()));
                }
                // Registered once per link to the server (it may be TCP and QUIC at once).
                if self.server.as_ref().is_some_and(|s| s.peer == peer_id) {
                    self.redial_delay = FIRST_REDIAL;
                    if num_established.get() == 1 {
                        self.register();
                    }
                }
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                num_established: 0,
                ..
            } if self.server.as_ref().is_some_and(|s| s.peer == peer_id) => {
                tracing::warn!("lost the server connection; sessions go on, redialling");
                self.status.send_modify(|s| s.relayed = false);
                // The reservation died with the connection; the next registration asks anew.
                if let Some(id) = self.relay_listener.take() {
                    self.swarm.remove_listener(id);
                }
                self.schedule_redial(ctx);
            }
            SwarmEvent::OutgoingConnectionError {
                peer_id: Some(peer),
                error,
                ..
            } if self.server.as_ref().is_some_and(|s| s.peer == peer)
                && !self.swarm.is_connected(&peer) =>
            {
                tracing::warn!(%error, "cannot reach the server");
                self.schedule_redial(ctx);
            }
            SwarmEvent::Behaviour(PeerBehaviourEvent::Signal(
                request_response::Event::Message { peer, message, .. },
            )) => self.on_signal(peer, message, ctx),
            SwarmEvent::Behaviour(PeerBehaviourEvent::Relay(
                relay::client::Event::ReservationReqAccepted { relay_peer_id, .. },
            )) => {
                tracing::info!(relay = %relay_peer_id, "relay reservation accepted");
                self.status.send_modify(|s| s.relayed = true);
            }
            SwarmEvent::Behaviour(PeerBehaviourEvent::Dcutr(ev)) => {
                tracing::info!(?ev, "hole punching")
            }
            SwarmEvent::Behaviour(PeerBehaviourEvent::Mdns(mdns::Event::Discovered(peers))) => {
                for (peer, addr) in peers {
                    tracing::debug!(%peer, %addr, "mDNS discovered");
                }
            }
            SwarmEvent::ListenerClosed {
                listener_id,
                addresses,
                reason,
            } => {
                if self.relay_listener == Some(listener_id) {
                    self.relay_listener = None;
                    self.status.send_modify(|s| s.relayed = false);
                }
                tracing::warn!(?addresses, ?reason, "listener closed");
            }
            _ => {}
        }
    }

    fn dial_server(&mut self) {
        if let Some(s) = &self.server {
            if let Some(autonat) = self.swarm.behaviour_mut().autonat.as_mut() {
                autonat.add_server(s.peer, Some(s.addr.clone()));
            }
            // TCP, and QUIC from the listening socket as well: the server then sees (and
            // identify tells us) the address our QUIC port has outside our NAT, which is
            // what hole punching with a viewer needs (viewers reach the server over QUIC, so
            // their QUIC address is the one they can offer in return).
            let quic = portico_signal_client::client::quic_twin(&s.addr);
            for addr in std::iter::once(s.addr.clone()).chain(quic) {
                if let Err(e) = self.swarm.dial(addr.with(Protocol::P2p(s.peer))) {
                    tracing::warn!(error = %e, "cannot dial the server");
                }
            }
        }
    }

    fn register(&mut self) {
        let Some(s) = &self.server else { return };
        let req = SignalRequest::Register(Register {
            node_path: s.name.clone(),
            addrs: self.direct_addrs(),
            agent: format!("portico/{}", env!("CARGO_PKG_VERSION")),
            enroll: s.enroll.clone(),
        });
        let peer = s.peer;
        self.swarm.behaviour_mut().signal.send_request(&peer, req);
    }

    fn on_signal(
        &mut self,
        peer: PeerId,
        message: request_response::Message<SignalRequest, SignalResponse>,
        ctx: &mut Context<Self>,
    ) {
        let Some(server) = self.server.clone() else {
            return;
        };
        if peer != server.peer {
            tracing::warn!(%peer, "signal message from a peer that is not our server; ignored");
            return;
        }
        let message = match message {
            request_response::Message::Response {
                request_id,
                response,
            } => request_response::Message::Response {
                request_id,
                response: portico_signal_client::from_server::clean_response(response),
            },
            other => other,
        };
        match message {
            request_response::Message::Response {
                response: SignalResponse::Registered(r),
                ..
            } => {
                tracing::info!(id = %r.internet_id, path = %r.node_path, "registered with the server");
                self.trust(&r);
                if self.seen_version.is_some_and(|v| v < r.state_version) {
                    // Away from the server while things changed: ask now about the users
                    // of live sessions (flags came with this answer).
                    self.resync_users(ctx);
                }
                self.seen_version = Some(r.state_version);
                self.status.send_modify(|s| {
                    s.registered = Some(r.clone());
                    s.refused = None;
                });
                if self.relay_listener.is_none() {
                    let circuit = server
                        .addr
                        .clone()
                        .with(Protocol::P2p(server.peer))
                        .with(Protocol::P2pCircuit);
                    match self.swarm.listen_on(circuit) {
                        Ok(id) => self.relay_listener = Some(id),
                        Err(e) => {
                            tracing::warn!(error = %e, "cannot ask the server for a relay reservation")
                        }
                    }
                }
                if !self.heartbeating {
                    self.heartbeating = true;
                    ctx.run_interval(
                        Duration::from_secs(u64::from(r.heartbeat_secs.max(5))),
                        |act, _| {
                            if let Some(s) = act.server.clone() {
                                let addrs = act.direct_addrs();
                                act.swarm.behaviour_mut().signal.send_request(
                                    &s.peer,
                                    SignalRequest::Heartbeat(Heartbeat { addrs }),
                                );
                            }
                        },
                    );
                }
            }
            request_response::Message::Response {
                response: SignalResponse::Error(e),
                ..
            } => {
                tracing::warn!(code = ?e.code, message = %e.message, "the server refused a request");
                match e.code {
                    ErrorCode::NotRegistered => self.register(),
                    // Not registered yet: the owner sees why. A host waiting for the admin
                    // (or slowed down) asks again; a rejected or refused one stops asking.
                    ErrorCode::PendingApproval
                    | ErrorCode::RateLimited
                    | ErrorCode::Forbidden
                    | ErrorCode::BadRequest
                        if self.status.borrow().registered.is_none() =>
                    {
                        self.status
                            .send_modify(|s| s.refused = Some(e.message.clone()));
                        if matches!(e.code, ErrorCode::PendingApproval | ErrorCode::RateLimited) {
                            ctx.run_later(ENROLL_RETRY, |act, _| act.register());
                        }
                    }
                    _ => {}
                }
            }
            request_response::Message::Response {
                response:
                    SignalResponse::Ack(Ack {
                        state_version: Some(v),
                    }),
                ..
            } => {
                // A heartbeat's answer: an event this host never applied means one was lost
                // on the way; ask as after a reconnect: the registration's answer brings the
                // node's path and flags and the global switches, then the users.
                if self.seen_version.is_some_and(|seen| seen < v) {
                    self.seen_version = Some(v);
                    self.register();
                    self.resync_users(ctx);
                }
            }
            request_response::Message::Response {
                response: SignalResponse::Users(u),
                ..
            } => {
                tracing::info!(
                    users = u.users.len(),
                    "the server's word on the users of live sessions"
                );
                for change in u.users {
                    if matches!(change, Change::User { .. }) {
                        self.access.do_send(ServerChange(change));
                    }
                }
            }
            request_response::Message::Response { .. } => {}
            request_response::Message::Request {
                request, channel, ..
            } => {
                if let SignalRequest::Event(ev) = request {
                    tracing::info!(seq = ev.seq, change = ?ev.change, "server event");
                    self.seen_version = Some(self.seen_version.unwrap_or(0).max(ev.seq));
                    self.apply_change(&ev.change);
                    if matches!(ev.change, Change::User { .. }) {
                        self.access.do_send(ServerChange(ev.change.clone()));
                    }
                }
                if self
                    .swarm
                    .behaviour_mut()
                    .signal
                    .send_response(channel, SignalResponse::Ack(Ack::default()))
                    .is_err()
                {
                    tracing::debug!("server left before our ack");
                }
            }
        }
    }

    /// Asks the server for the state of the users of live sessions now.
    fn resync_users(&mut self, ctx: &mut Context<Self>) {
        self.access
            .send(LiveUsers)
            .into_actor(self)
            .map(|users, act, _| {
                let users = match users {
                    Ok(u) => u,
                    Err(e) => {
                        tracing::error!(error = %e, "access control is gone; cannot resync users");
                        return;
                    }
                };
                let Some(server) = act.server.clone() else {
                    return;
                };
                tracing::info!(
                    users = users.len(),
                    "missed server events while away; asking about the users of live sessions"
                );
                for chunk in users.chunks(MAX_CHECK_USERS) {
                    act.swarm.behaviour_mut().signal.send_request(
                        &server.peer,
                        SignalRequest::CheckUsers(CheckUsers {
                            users: chunk.to_vec(),
                        }),
                    );
                }
            })
            .spawn(ctx);
    }

    fn trust(&self, r: &Registered) {
        self.trust_flags(ServerFlags {
            guest_sharing: r.guest_sharing,
            visitor_sharing: r.visitor_sharing,
            node_allows_guests: r.allow_guests,
            node_allows_visitors: r.allow_visitors,
        });
    }

    /// Tells access control the server's key and these switches.
    fn trust_flags(&self, flags: ServerFlags) {
        let Some(server) = &self.server else { return };
        match portico_core::identity::key_of(&server.peer) {
            Some(key) => self
                .access
                .do_send(SetServer(Some(ServerTrust { key, flags }))),
            None => tracing::error!(
                "the server's PeerId does not embed an ed25519 key; tickets will be refused"
            ),
        }
    }

    fn apply_change(&mut self, change: &Change) {
        let mut reg = self.status.borrow().registered.clone();
        if let Some(r) = reg.as_mut() {
            match change {
                // The server sends a node's flags only to the host registered there, so
                // the event is about this host whatever its path says: after a move it
                // carries the new path, which the host takes.
                Change::Node {
                    path,
                    allow_guests,
                    allow_visitors,
                } => {
                    r.node_path.clone_from(path);
                    r.allow_guests = *allow_guests;
                    r.allow_visitors = *allow_visitors;
                }
                Change::Global {
                    guest_sharing,
                    visitor_sharing,
                } => {
                    r.guest_sharing = *guest_sharing;
                    r.visitor_sharing = *visitor_sharing;
                }
                _ => return,
            }
            self.trust(r);
            self.status.send_modify(|s| s.registered = reg.clone());
        }
    }
}

impl Actor for Network {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        // Fail closed until the server has answered: its key is known (tickets can be
        // checked), every server and node switch counts as off.
        self.trust_flags(ServerFlags {
            guest_sharing: false,
            visitor_sharing: false,
            node_allows_guests: false,
            node_allows_visitors: false,
        });
        ctx.spawn(SwarmDriver);
        self.dial_server();
    }
}

/// Polls the actor-owned swarm with `&mut` access to the actor.
struct SwarmDriver;

impl ActorFuture<Network> for SwarmDriver {
    type Output = ();

    fn poll(
        self: Pin<&mut Self>,
        act: &mut Network,
        ctx: &mut Context<Network>,
        task: &mut std::task::Context<'_>,
    ) -> Poll<()> {
        for _ in 0..64 {
            match act.swarm.poll_next_unpin(task) {
                Poll::Ready(Some(ev)) => act.on_event(ev, ctx),
                Poll::Ready(None) => return Poll::Ready(()),
                Poll::Pending => return Poll::Pending,
            }
        }
        // Yield to the mailbox, then continue.
        task.waker().wake_by_ref();
        Poll::Pending
    }
}
