//! The behaviour struct (its own module: the derive generates an undocumented event enum).
#![allow(missing_docs)]

use crate::codec::SignalCodec;
use libp2p::swarm::behaviour::toggle::Toggle;
use libp2p::swarm::NetworkBehaviour;
use libp2p::{autonat, dcutr, identify, mdns, ping, relay, request_response};

/// Behaviours of a Portico peer.
#[derive(NetworkBehaviour)]
#[behaviour(prelude = "libp2p::swarm::derive_prelude")]
pub struct PeerBehaviour {
    /// Inbound connections per address (first: it refuses before the others see anything).
    pub limits: crate::ip_limits::IpLimits,
    /// Session streams (new ones on a direct connection when there is one).
    pub stream: crate::prefer_direct::PreferDirect<libp2p_stream::Behaviour>,
    /// Learns addresses and protocols.
    pub identify: identify::Behaviour,
    /// Keeps connections alive, measures RTT.
    pub ping: ping::Behaviour,
    /// Relay client (reservations at the server; dialling relayed addresses).
    pub relay: relay::client::Behaviour,
    /// Hole punching over a relayed connection.
    pub dcutr: dcutr::Behaviour,
    /// Learns whether we are reachable (hosts only).
    pub autonat: Toggle<autonat::Behaviour>,
    /// LAN discovery.
    pub mdns: Toggle<mdns::tokio::Behaviour>,
    /// `/portico/signal/1` (server registration, events), served on the connections to
    /// the host's own server only.
    pub signal: crate::only_peer::OnlyPeer<request_response::Behaviour<SignalCodec>>,
}
