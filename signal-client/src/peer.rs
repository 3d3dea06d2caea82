//! The swarm every Portico peer (host or viewer) runs: the shared transport stack with
//! session streams, identify, ping, relay client, DCUtR, autonat, mDNS and the signal
//! protocol; and the session protocol's name.

use std::time::Duration;

use libp2p::swarm::behaviour::toggle::Toggle;
use libp2p::{autonat, dcutr, mdns, ping, StreamProtocol, Swarm};
use portico_core::identity::Identity;

/// The session protocol.
pub const SESSION: StreamProtocol = StreamProtocol::new(portico_core::wire::session::PROTOCOL);
pub use crate::peer_behaviour::{PeerBehaviour, PeerBehaviourEvent};

/// Builds a swarm for `identity` (host or viewer): the shared transport stack with every
/// behaviour a Portico peer runs.
pub fn build_swarm(identity: &Identity, with_mdns: bool) -> Result<Swarm<PeerBehaviour>, String> {
    crate::swarm::build(identity, Duration::from_secs(60), |key, relay| {
        let peer = key.public().to_peer_id();
        let mdns = if with_mdns {
            mdns::tokio::Behaviour::new(mdns::Config::default(), peer)
                .map_err(|err| tracing::warn!(error = %err, "mDNS unavailable; LAN discovery off"))
                .ok()
        } else {
            None
        };
        PeerBehaviour {
            stream: libp2p_stream::Behaviour::new(),
            identify: crate::swarm::identify(
                &key.public(),
                format!("portico/{}", env!("CARGO_PKG_VERSION")),
            ),
            ping: ping::Behaviour::default(),
            relay,
            dcutr: dcutr::Behaviour::new(peer),
            autonat: autonat::Behaviour::new(
                peer,
                autonat::Config {
                    only_global_ips: false,
                    ..Default::default()
                },
            ),
            mdns: Toggle::from(mdns),
            signal: crate::swarm::signal(),
        }
    })
    .map_err(|e| e.to_string())
}
