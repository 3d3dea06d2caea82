//! A behaviour served on the connections to one peer only.
//!
//! A host's `/portico/signal/1` is for its server: registration answers and the server's
//! events. Served to everyone, any stranger could open signal streams and make the host
//! decode up to a megabyte per request only to drop it. [`OnlyPeer`] gives the inner
//! behaviour a handler on connections to the allowed peer and a [`dummy`] handler on every
//! other connection, so the protocol is not even offered there: a stranger's stream fails
//! at protocol negotiation and costs the host nothing.
//!
//! The inner behaviour sees only the connections it has a handler on: connection events
//! for other peers are withheld, so it never routes a request to a connection that cannot
//! carry it.

use std::task::{Context, Poll};

use either::Either;
use libp2p::core::transport::PortUse;
use libp2p::core::Endpoint;
use libp2p::swarm::behaviour::ConnectionEstablished;
use libp2p::swarm::{
    dummy, AddressChange, ConnectionClosed, ConnectionDenied, ConnectionId, FromSwarm,
    NetworkBehaviour, THandler, THandlerInEvent, THandlerOutEvent, ToSwarm,
};
use libp2p::{Multiaddr, PeerId};

/// `inner`, served only on connections to `peer` (and on none when `peer` is `None`).
pub struct OnlyPeer<B> {
    /// The behaviour being gated.
    inner: B,
    /// The one peer it is served to.
    peer: Option<PeerId>,
}

impl<B> OnlyPeer<B> {
    /// `inner` for connections to `peer` only.
    pub fn new(inner: B, peer: Option<PeerId>) -> Self {
        Self { inner, peer }
    }

    /// The peer the behaviour is served to.
    pub fn peer(&self) -> Option<PeerId> {
        self.peer
    }

    fn allows(&self, peer: PeerId) -> bool {
        self.peer == Some(peer)
    }
}

impl<B> std::ops::Deref for OnlyPeer<B> {
    type Target = B;
    fn deref(&self) -> &B {
        &self.inner
    }
}

impl<B> std::ops::DerefMut for OnlyPeer<B> {
    fn deref_mut(&mut self) -> &mut B {
        &mut self.inner
    }
}

impl<B: NetworkBehaviour> NetworkBehaviour for OnlyPeer<B> {
    type ConnectionHandler = Either<THandler<B>, dummy::ConnectionHandler>;
    type ToSwarm = B::ToSwarm;

    delegate_pending!();

    fn handle_established_inbound_connection(
        &mut self,
        connection_id: ConnectionId,
        peer: PeerId,
        local_addr: &Multiaddr,
        remote_addr: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        if !self.allows(peer) {
            return Ok(Either::Right(dummy::ConnectionHandler));
        }
        self.inner
            .handle_established_inbound_connection(connection_id, peer, local_addr, remote_addr)
            .map(Either::Left)
    }

    fn handle_established_outbound_connection(
        &mut self,
        connection_id: ConnectionId,
        peer: PeerId,
        addr: &Multiaddr,
        role_override: Endpoint,
        port_use: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        if !self.allows(peer) {
            return Ok(Either::Right(dummy::ConnectionHandler));
        }
        self.inner
            .handle_established_outbound_connection(
                connection_id,
                peer,
                addr,
                role_override,
                port_use,
            )
            .map(Either::Left)
    }

    fn on_swarm_event(&mut self, event: FromSwarm) {
        let peer = match &event {
            FromSwarm::ConnectionEstablished(ConnectionEstablished { peer_id, .. })
            | FromSwarm::ConnectionClosed(ConnectionClosed { peer_id, .. })
            | FromSwarm::AddressChange(AddressChange { peer_id, .. }) => Some(*peer_id),
            _ => None,
        };
        if peer.is_none_or(|p| self.allows(p)) {
            self.inner.on_swarm_event(event);
        }
    }

    fn on_connection_handler_event(
        &mut self,
        peer_id: PeerId,
        connection_id: ConnectionId,
        event: THandlerOutEvent<Self>,
    ) {
        match event {
            Either::Left(event) => {
                self.inner
                    .on_connection_handler_event(peer_id, connection_id, event)
            }
            Either::Right(never) => match never {},
        }
    }

    fn poll(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<ToSwarm<Self::ToSwarm, THandlerInEvent<Self>>> {
        self.inner
            .poll(cx)
            .map(|action| action.map_in(Either::Left))
    }
}
