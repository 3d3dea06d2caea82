//! Inbound connections per IP address, pending and established: PeerIds are free, addresses
//! are not, so one address cannot take all of a peer's connection slots or make it run many
//! Noise handshakes at once. The check runs before the handshake (a denied connection costs
//! us an accept and a close). Relayed connections are exempt: their address is the relay's,
//! and the relay limits its sources.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::IpAddr;
use std::task::{Context, Poll};

use libp2p::core::transport::PortUse;
use libp2p::core::Endpoint;
use libp2p::multiaddr::Protocol;
use libp2p::swarm::{
    dummy, ConnectionClosed, ConnectionDenied, ConnectionId, FromSwarm, ListenFailure,
    NetworkBehaviour, THandler, THandlerInEvent, THandlerOutEvent, ToSwarm,
};
use libp2p::{Multiaddr, PeerId};

/// Inbound connections one address may have at once by default (an office behind one NAT
/// fits; a host's `connections_per_ip` changes it).
pub const MAX_INBOUND_PER_IP: usize = 32;

/// A connection refused because its address has too many already.
#[derive(Debug, thiserror::Error)]
#[error("{limit} connections from {ip} already; refusing another")]
pub struct TooManyFromAddress {
    /// The address.
    pub ip: IpAddr,
    /// The limit.
    pub limit: usize,
}

/// The behaviour: counts inbound connections per address and refuses past the limit.
#[derive(Debug)]
pub struct IpLimits {
    /// Most inbound connections per address.
    limit: usize,
    /// Each counted connection's address (to release it when the connection goes).
    by_connection: HashMap<ConnectionId, IpAddr>,
    /// Inbound connections (pending or established) per address.
    per_ip: HashMap<IpAddr, usize>,
}

impl IpLimits {
    /// At most `limit` inbound connections per address.
    pub fn new(limit: usize) -> Self {
        Self {
            limit,
            by_connection: HashMap::new(),
            per_ip: HashMap::new(),
        }
    }

    fn release(&mut self, id: ConnectionId) {
        let Some(ip) = self.by_connection.remove(&id) else {
            return;
        };
        if let Some(n) = self.per_ip.get_mut(&ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.per_ip.remove(&ip);
            }
        }
    }
}

/// The first IP address in `addr`, as address limits count it (an IPv6 address's /64).
pub fn limit_ip(addr: &Multiaddr) -> Option<IpAddr> {
    addr.iter()
        .find_map(|p| match p {
            Protocol::Ip4(ip) => Some(IpAddr::V4(ip)),
            Protocol::Ip6(ip) => Some(IpAddr::V6(ip)),
            _ => None,
        })
        .map(portico_core::ratelimit::limit_key)
}

/// The address a direct connection is limited by; `None` for relayed ones.
fn ip_of(remote: &Multiaddr) -> Option<IpAddr> {
    if remote.iter().any(|p| matches!(p, Protocol::P2pCircuit)) {
        return None;
    }
    limit_ip(remote)
}

impl NetworkBehaviour for IpLimits {
    type ConnectionHandler = dummy::ConnectionHandler;
    type ToSwarm = Infallible;

    fn handle_pending_inbound_connection(
        &mut self,
        connection_id: ConnectionId,
        _local: &Multiaddr,
        remote: &Multiaddr,
    ) -> Result<(), ConnectionDenied> {
        let Some(ip) = ip_of(remote) else {
            return Ok(());
        };
        let n = self.per_ip.entry(ip).or_default();
        if *n >= self.limit {
            tracing::debug!(%ip, limit = self.limit, "inbound connection refused: too many from this address");
            return Err(ConnectionDenied::new(TooManyFromAddress {
                ip,
                limit: self.limit,
            }));
        }
        *n += 1;
        self.by_connection.insert(connection_id, ip);
        Ok(())
    }

    fn handle_established_inbound_connection(
        &mut self,
        _: ConnectionId,
        _: PeerId,
        _: &Multiaddr,
        _: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        Ok(dummy::ConnectionHandler)
    }

    fn handle_established_outbound_connection(
        &mut self,
        _: ConnectionId,
        _: PeerId,
        _: &Multiaddr,
        _: Endpoint,
        _: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        Ok(dummy::ConnectionHandler)
    }

    fn on_swarm_event(&mut self, event: FromSwarm) {
        match event {
            FromSwarm::ConnectionClosed(ConnectionClosed { connection_id, .. })
            | FromSwarm::ListenFailure(ListenFailure { connection_id, .. }) => {
                self.release(connection_id)
            }
            _ => {}
        }
    }

    fn on_connection_handler_event(
        &mut self,
        _: PeerId,
        _: ConnectionId,
        event: THandlerOutEvent<Self>,
    ) {
        match event {}
    }

    fn poll(&mut self, _: &mut Context<'_>) -> Poll<ToSwarm<Self::ToSwarm, THandlerInEvent<Self>>> {
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use libp2p::core::ConnectedPoint;

    #[test]
    fn one_address_is_limited_others_and_relayed_are_not_and_closing_frees_a_slot() {
        let mut l = IpLimits::new(3);
        let local: Multiaddr = "/ip4/10.0.0.1/tcp/5650".parse().unwrap();
        let from = |ip: &str| -> Multiaddr { format!("/ip4/{ip}/tcp/40000").parse().unwrap() };
        let id = ConnectionId::new_unchecked;
        for i in 0..3 {
            assert!(l
                .handle_pending_inbound_connection(id(i), &local, &from("203.0.113.9"))
                .is_ok());
        }
        assert!(l
            .handle_pending_inbound_connection(id(3), &local, &from("203.0.113.9"))
            .is_err());
        assert!(l
            .handle_pending_inbound_connection(id(4), &local, &from("198.51.100.1"))
            .is_ok());
        let relayed: Multiaddr = "/ip4/203.0.113.9/tcp/5655/p2p/12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN/p2p-circuit"
            .parse()
            .unwrap();
        for i in 5..10 {
            assert!(l
                .handle_pending_inbound_connection(id(i), &local, &relayed)
                .is_ok());
        }
        let endpoint = ConnectedPoint::Listener {
            local_addr: local.clone(),
            send_back_addr: from("203.0.113.9"),
        };
        l.on_swarm_event(FromSwarm::ConnectionClosed(ConnectionClosed {
            peer_id: PeerId::random(),
            connection_id: id(1),
            endpoint: &endpoint,
            cause: None,
            remaining_established: 0,
        }));
        assert!(l
            .handle_pending_inbound_connection(id(11), &local, &from("203.0.113.9"))
            .is_ok());
        assert!(l
            .handle_pending_inbound_connection(id(12), &local, &from("203.0.113.9"))
            .is_err());
    }
}
