//! New session streams go on a direct connection when there is one.
//!
//! `libp2p_stream` opens a stream on any connection to the peer, chosen at random. After a
//! relayed start and a successful hole punch there are two: the stream that moves the
//! session off the relay must not land on the relayed one. [`PreferDirect`] wraps the
//! stream behaviour and, once a peer has a direct connection, tells it the peer's relayed
//! connections are gone. Streams already open on them carry on (their handlers are
//! untouched; only the choice of connection for new streams changes), and the relayed
//! connection itself closes when the session has moved.

use std::collections::HashMap;
use std::task::{Context, Poll};

use libp2p::core::transport::PortUse;
use libp2p::core::{ConnectedPoint, Endpoint};
use libp2p::swarm::behaviour::ConnectionEstablished;
use libp2p::swarm::{
    ConnectionClosed, ConnectionDenied, ConnectionId, FromSwarm, NetworkBehaviour, THandler,
    THandlerInEvent, THandlerOutEvent, ToSwarm,
};
use libp2p::{Multiaddr, PeerId};

/// `inner`, told to forget a peer's relayed connections once it has a direct one.
pub struct PreferDirect<B> {
    /// The stream behaviour.
    inner: B,
    /// Relayed connections the inner behaviour still knows: peer and endpoint (to
    /// describe them when they are hidden).
    relayed: HashMap<ConnectionId, (PeerId, ConnectedPoint)>,
}

impl<B> PreferDirect<B> {
    /// Wraps `inner`.
    pub fn new(inner: B) -> Self {
        Self {
            inner,
            relayed: HashMap::new(),
        }
    }
}

impl<B> std::ops::Deref for PreferDirect<B> {
    type Target = B;
    fn deref(&self) -> &B {
        &self.inner
    }
}

impl<B: NetworkBehaviour> NetworkBehaviour for PreferDirect<B> {
    type ConnectionHandler = B::ConnectionHandler;
    type ToSwarm = B::ToSwarm;

    delegate_pending!();

    fn handle_established_inbound_connection(
        &mut self,
        connection_id: ConnectionId,
        peer: PeerId,
        local_addr: &Multiaddr,
        remote_addr: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        self.inner.handle_established_inbound_connection(
            connection_id,
            peer,
            local_addr,
            remote_addr,
        )
    }

    fn handle_established_outbound_connection(
        &mut self,
        connection_id: ConnectionId,
        peer: PeerId,
        addr: &Multiaddr,
        role_override: Endpoint,
        port_use: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        self.inner.handle_established_outbound_connection(
            connection_id,
            peer,
            addr,
            role_override,
            port_use,
        )
    }

    fn on_swarm_event(&mut self, event: FromSwarm) {
        let direct_to = match &event {
            FromSwarm::ConnectionEstablished(ConnectionEstablished {
                peer_id,
                connection_id,
                endpoint,
                ..
            }) => {
                if endpoint.is_relayed() {
                    self.relayed
                        .insert(*connection_id, (*peer_id, (*endpoint).clone()));
                    None
                } else {
                    Some(*peer_id)
                }
            }
            FromSwarm::ConnectionClosed(ConnectionClosed { connection_id, .. }) => {
                self.relayed.remove(connection_id);
                None
            }
            _ => None,
        };
        self.inner.on_swarm_event(event);
        let Some(peer) = direct_to else { return };
        let hidden: Vec<ConnectionId> = self
            .relayed
            .iter()
            .filter(|(_, (p, _))| *p == peer)
            .map(|(c, _)| *c)
            .collect();
        for connection_id in hidden {
            if let Some((peer_id, endpoint)) = self.relayed.remove(&connection_id) {
                tracing::debug!(%peer_id, %connection_id, "direct connection: new streams avoid the relayed one");
                self.inner
                    .on_swarm_event(FromSwarm::ConnectionClosed(ConnectionClosed {
                        peer_id,
                        connection_id,
                        endpoint: &endpoint,
                        cause: None,
                        remaining_established: 1,
                    }));
            }
        }
    }

    fn on_connection_handler_event(
        &mut self,
        peer_id: PeerId,
        connection_id: ConnectionId,
        event: THandlerOutEvent<Self>,
    ) {
        self.inner
            .on_connection_handler_event(peer_id, connection_id, event)
    }

    fn poll(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<ToSwarm<Self::ToSwarm, THandlerInEvent<Self>>> {
        self.inner.poll(cx)
    }
}
