//! The host's `Network` actor: owns the Swarm (the behaviour shared with viewers lives in
//! `portico_signal_client::peer`), keeps the map of where peers connect from, and is the
//! shell of the host↔server link machine ([`portico_core::link`]): it feeds the machine the
//! connection's events and the server's messages and carries out what it decides (dial,
//! register, heartbeat, relay reservation, trust, resync).

use std::pin::Pin;
use std::task::Poll;
use std::time::Instant;

use actix::prelude::*;
use futures::StreamExt;
use libp2p::core::transport::ListenerId;
use libp2p::multiaddr::Protocol;
use libp2p::request_response;
use libp2p::swarm::SwarmEvent;
use libp2p::{mdns, relay, Multiaddr, PeerId, Swarm};
use portico_core::link::{Action, Link};
use portico_core::policy::ServerFlags;
use portico_core::wire::signal::{
    Ack, CheckUsers, Heartbeat, Register, Registered, SignalRequest, SignalResponse,
    MAX_CHECK_USERS,
};
use tokio::sync::watch;

use crate::access::{AccessControl, LiveUsers, ServerChange, ServerTrust, SetServer};

/// The remote address (as text) and relayed flag of each connected peer's latest connection.
pub type PeerAddrs =
    std::sync::Arc<std::sync::Mutex<std::collections::HashMap<PeerId, (String, bool)>>>;

pub use portico_signal_client::peer::{
    build_swarm, PeerBehaviour, PeerBehaviourEvent, PeerOptions, SESSION,
};

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

/// The host's network actor: a shell around the link machine ([`Link`]) that owns the
/// Swarm, feeds the machine what the connection and the server said, and carries out what
/// it decides.
pub struct Network {
    /// The swarm.
    swarm: Swarm<PeerBehaviour>,
    /// The server, if any.
    server: Option<ServerLink>,
    /// The link to it (none without a server).
    link: Option<Link>,
    /// Access control (learns server trust and flags).
    access: Addr<AccessControl>,
    /// Status for the CLI and tests.
    status: watch::Sender<HostStatus>,
    /// Where each peer connects from (sessions show it to the owner).
    peers: PeerAddrs,
    /// The relay reservation's listener while it lives.
    relay_listener: Option<ListenerId>,
    /// The link machine's next timer, and when it is due.
    timer: Option<(Instant, SpawnHandle)>,
}

impl Network {
    /// A network actor over a swarm that is already listening.
    pub fn new(
        swarm: Swarm<PeerBehaviour>,
        server: Option<ServerLink>,
        access: Addr<AccessControl>,
        status: watch::Sender<HostStatus>,
        peers: PeerAddrs,
    ) -> Self {
        let link = server.as_ref().map(|_| Link::new(rand::random()));
        Self {
            swarm,
            server,
            link,
            access,
            status,
            peers,
            relay_listener: None,
            timer: None,
        }
    }

    /// Feeds the link machine, then carries out what it decided and arms its timer.
    fn step(&mut self, ctx: &mut Context<Self>, input: impl FnOnce(&mut Link, Instant)) {
        let Some(link) = self.link.as_mut() else {
            return;
        };
        input(link, Instant::now());
        self.drive(ctx);
    }

    /// Carries out what the link machine decided and arms its timer.
    fn drive(&mut self, ctx: &mut Context<Self>) {
        while let Some(action) = self.link.as_mut().and_then(Link::poll_action) {
            self.carry_out(action, ctx);
        }
        let due = self.link.as_ref().and_then(Link::poll_timeout);
        if self.timer.as_ref().map(|t| t.0) != due {
            if let Some((_, handle)) = self.timer.take() {
                ctx.cancel_future(handle);
            }
            if let Some(at) = due {
                let wait = at.saturating_duration_since(Instant::now());
                let handle = ctx.run_later(wait, |act, ctx| {
                    act.timer = None;
                    if let Some(link) = act.link.as_mut() {
                        link.handle_timeout(Instant::now());
                    }
                    act.drive(ctx);
                });
                self.timer = Some((at, handle));
            }
        }
    }

    /// Does what the link machine decided.
    fn carry_out(&mut self, action: Action, ctx: &mut Context<Self>) {
        let Some(server) = self.server.clone() else {
            return;
        };
        match action {
            Action::Dial => self.dial_server(&server),
            Action::Register => self.register(&server),
            Action::Heartbeat => {
                let addrs = self.direct_addrs();
                let beat = SignalRequest::Heartbeat(Heartbeat { addrs });
                self.swarm
                    .behaviour_mut()
                    .signal
                    .send_request(&server.peer, beat);
            }
            Action::ListenRelay => {
                let circuit = server
                    .addr
                    .clone()
                    .with(Protocol::P2p(server.peer))
                    .with(Protocol::P2pCircuit);
                match self.swarm.listen_on(circuit) {
                    Ok(id) => self.relay_listener = Some(id),
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot ask the server for a relay reservation");
                        if let Some(link) = self.link.as_mut() {
                            link.relay_failed();
                        }
                    }
                }
            }
            Action::DropRelay => {
                if let Some(id) = self.relay_listener.take() {
                    self.swarm.remove_listener(id);
                }
            }
            Action::Trust(flags) => self.trust_flags(&server, flags),
            Action::ResyncUsers => self.resync_users(ctx),
            Action::User(change) => self.access.do_send(ServerChange(change)),
            Action::Status => {
                if let Some(link) = &self.link {
                    let now = link.status().clone();
                    self.status.send_modify(|s| {
                        s.registered = now.registered;
                        s.refused = now.refused;
                        s.relayed = now.relayed;
                    });
                }
            }
        }
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
        let server = self.server.as_ref().map(|s| s.peer);
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
                self.peer_connected(peer_id, &endpoint);
                // Registered once per link to the server (it may be TCP and QUIC at once).
                if server == Some(peer_id) && num_established.get() == 1 {
                    self.step(ctx, |link, now| link.connected(now));
                }
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                num_established,
                cause,
                endpoint,
                ..
            } => {
                let addr = endpoint.get_remote_address();
                match cause {
                    Some(e) => tracing::info!(%peer_id, %addr, error = %e, "connection closed"),
                    None => tracing::debug!(%peer_id, %addr, "connection closed"),
                }
                if num_established == 0 {
                    // The map of where peers connect from holds connected peers only.
                    if let Ok(mut m) = self.peers.lock() {
                        m.remove(&peer_id);
                    }
                    if server == Some(peer_id) {
                        tracing::warn!("lost the server connection; sessions go on, redialling");
                        self.step(ctx, |link, now| link.disconnected(now));
                    }
                }
            }
            SwarmEvent::OutgoingConnectionError {
                peer_id: Some(peer),
                error,
                ..
            } if server == Some(peer) && !self.swarm.is_connected(&peer) => {
                tracing::warn!(%error, "cannot reach the server");
                self.step(ctx, |link, now| link.dial_failed(now));
            }
            SwarmEvent::Behaviour(PeerBehaviourEvent::Signal(
                request_response::Event::Message { peer, message, .. },
            )) => self.on_signal(peer, message, ctx),
            SwarmEvent::Behaviour(PeerBehaviourEvent::Relay(
                relay::client::Event::ReservationReqAccepted { relay_peer_id, .. },
            )) => {
                tracing::info!(relay = %relay_peer_id, "relay reservation accepted");
                self.step(ctx, |link, _| link.relay_accepted());
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
                tracing::warn!(?addresses, ?reason, "listener closed");
                if self.relay_listener == Some(listener_id) {
                    self.relay_listener = None;
                    self.step(ctx, |link, _| link.relay_closed());
                }
            }
            _ => {}
        }
    }

    /// Remembers where a peer connects from (the owner sees it).
    fn peer_connected(&mut self, peer_id: PeerId, endpoint: &libp2p::core::ConnectedPoint) {
        let addr = endpoint.get_remote_address();
        let relayed = endpoint.is_relayed();
        tracing::debug!(%peer_id, %addr, relayed, "connected");
        let ip = addr.iter().find_map(|p| match p {
            Protocol::Ip4(ip) => Some(ip.to_string()),
            Protocol::Ip6(ip) => Some(ip.to_string()),
            Protocol::Dns(h) | Protocol::Dns4(h) | Protocol::Dns6(h) => Some(h.to_string()),
            _ => None,
        });
        // A relayed viewer's address is only its PeerId: the table counts relayed viewers
        // in one pool, and the owner sees that it came through the relay.
        let shown = match (relayed, ip) {
            (true, Some(ip)) => format!("{ip} (relay)"),
            (true, None) => "unknown".into(),
            (false, ip) => ip.unwrap_or_else(|| addr.to_string()),
        };
        if let Ok(mut m) = self.peers.lock() {
            m.insert(peer_id, (shown, relayed));
        }
    }

    fn dial_server(&mut self, s: &ServerLink) {
        if let Some(autonat) = self.swarm.behaviour_mut().autonat.as_mut() {
            autonat.add_server(s.peer, Some(s.addr.clone()));
        }
        // TCP, and QUIC from the listening socket as well: the server then sees (and
        // identify tells us) the address our QUIC port has outside our NAT, which is what
        // hole punching with a viewer needs (viewers reach the server over QUIC, so their
        // QUIC address is the one they can offer in return).
        let quic = portico_signal_client::client::quic_twin(&s.addr);
        for addr in std::iter::once(s.addr.clone()).chain(quic) {
            if let Err(e) = self.swarm.dial(addr.with(Protocol::P2p(s.peer))) {
                tracing::warn!(error = %e, "cannot dial the server");
            }
        }
    }

    fn register(&mut self, s: &ServerLink) {
        let req = SignalRequest::Register(Register {
            node_path: s.name.clone(),
            addrs: self.direct_addrs(),
            agent: format!("portico/{}", env!("CARGO_PKG_VERSION")),
            enroll: s.enroll.clone(),
        });
        self.swarm.behaviour_mut().signal.send_request(&s.peer, req);
    }

    /// A message from the server: its text cleaned, then fed to the link machine.
    fn on_signal(
        &mut self,
        peer: PeerId,
        message: request_response::Message<SignalRequest, SignalResponse>,
        ctx: &mut Context<Self>,
    ) {
        if self.server.as_ref().map(|s| s.peer) != Some(peer) {
            tracing::warn!(%peer, "signal message from a peer that is not our server; ignored");
            return;
        }
        let response = match message {
            request_response::Message::Response { response, .. } => {
                portico_signal_client::from_server::clean_response(response)
            }
            request_response::Message::Request {
                request, channel, ..
            } => {
                if let SignalRequest::Event(ev) = request {
                    tracing::info!(seq = ev.seq, change = ?ev.change, "server event");
                    self.step(ctx, |link, _| link.event(ev.seq, ev.change));
                }
                let ack = SignalResponse::Ack(Ack::default());
                if self
                    .swarm
                    .behaviour_mut()
                    .signal
                    .send_response(channel, ack)
                    .is_err()
                {
                    tracing::debug!("server left before our ack");
                }
                return;
            }
        };
        match response {
            SignalResponse::Registered(r) => {
                tracing::info!(id = %r.internet_id, path = %r.node_path, "registered with the server");
                self.step(ctx, |link, now| link.registered(now, r));
            }
            SignalResponse::Error(e) => {
                tracing::warn!(code = ?e.code, message = %e.message, "the server refused a request");
                self.step(ctx, |link, now| link.refused(now, e.code, e.message));
            }
            SignalResponse::Ack(Ack {
                state_version: Some(v),
            }) => self.step(ctx, |link, _| link.heartbeat_answered(v)),
            SignalResponse::Users(u) => {
                tracing::info!(
                    users = u.users.len(),
                    "the server's word on the users of live sessions"
                );
                self.step(ctx, |link, _| link.users(u.users));
            }
            _ => {}
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

    /// Tells access control the server's key and these switches.
    fn trust_flags(&self, server: &ServerLink, flags: ServerFlags) {
        match portico_core::identity::key_of(&server.peer) {
            Some(key) => self
                .access
                .do_send(SetServer(Some(ServerTrust { key, flags }))),
            None => tracing::error!(
                "the server's PeerId does not embed an ed25519 key; tickets will be refused"
            ),
        }
    }
}

impl Actor for Network {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.spawn(SwarmDriver);
        // The machine's first actions: trust with every switch off (fail closed until the
        // server has answered), then dial.
        self.step(ctx, |_, _| {});
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
