//! The swarm every Portico peer (host or viewer) runs: the shared transport stack with
//! session streams, identify, ping, relay client, DCUtR, autonat, mDNS and the signal
//! protocol; and the session protocol's name.

use std::time::Duration;

use libp2p::swarm::behaviour::toggle::Toggle;
use libp2p::{autonat, dcutr, mdns, ping, PeerId, StreamProtocol, Swarm};
use portico_core::identity::Identity;

/// The session protocol.
pub const SESSION: StreamProtocol = StreamProtocol::new(portico_core::wire::session::PROTOCOL);
pub use crate::peer_behaviour::{PeerBehaviour, PeerBehaviourEvent};

/// What a peer's swarm runs beyond the stack every peer shares.
#[derive(Debug, Clone)]
pub struct PeerOptions {
    /// LAN discovery by mDNS (hosts announce themselves; off for `--no-mdns`).
    pub mdns: bool,
    /// AutoNAT: a host learns from its server whether its addresses are reachable from
    /// outside (it asks only servers added with `add_server`). A viewer
    /// never accepts connections, so asking a host to dial it back (AutoNAT's probe, ~300
    /// bytes each way some seconds into every session) would only cost both sides.
    pub autonat: bool,
    /// The one peer `/portico/signal/1` is served to: a host's server (its pinned key).
    /// Everyone else, and every peer of a viewer, finds the protocol not offered.
    pub server: Option<PeerId>,
    /// Inbound connections one address may hold, pending or established.
    pub inbound_per_ip: usize,
    /// The name a host shows on the LAN (`portico discover`), in its identify agent
    /// string: `portico/VERSION (NAME)`.
    pub name: Option<String>,
}

impl PeerOptions {
    /// A host: AutoNAT, mDNS when `mdns`, the signal protocol with `server` only.
    pub fn host(mdns: bool, server: Option<PeerId>) -> Self {
        Self {
            mdns,
            autonat: true,
            server,
            inbound_per_ip: crate::ip_limits::MAX_INBOUND_PER_IP,
            name: None,
        }
    }

    /// A viewer: neither.
    pub fn viewer() -> Self {
        Self {
            mdns: false,
            autonat: false,
            server: None,
            inbound_per_ip: crate::ip_limits::MAX_INBOUND_PER_IP,
            name: None,
        }
    }
}

/// The identify agent string: `portico/VERSION`, with ` (NAME)` for a named host.
pub fn agent(name: Option<&str>) -> String {
    match name {
        Some(n) => format!("portico/{} ({n})", env!("CARGO_PKG_VERSION")),
        None => format!("portico/{}", env!("CARGO_PKG_VERSION")),
    }
}

/// The host name in an identify agent string made by [`agent`] (cleaned: it comes from
/// whoever answered on the LAN).
pub fn name_in_agent(agent: &str) -> Option<String> {
    let rest = agent.strip_prefix("portico/")?;
    let (_, name) = rest.split_once(" (")?;
    let name = portico_core::text::clean(name.strip_suffix(')')?, 64);
    (!name.is_empty()).then_some(name)
}

/// Builds a swarm for `identity` (host or viewer): the shared transport stack with the
/// behaviours `options` asks for.
pub fn build_swarm(
    identity: &Identity,
    options: PeerOptions,
) -> Result<Swarm<PeerBehaviour>, String> {
    crate::swarm::build(identity, Duration::from_secs(60), move |key, relay| {
        let peer = key.public().to_peer_id();
        let autonat = options.autonat.then(|| {
            autonat::Behaviour::new(
                peer,
                autonat::Config {
                    only_global_ips: false,
                    // Probes go to the host's own server (added as a server when it is
                    // dialled), never to connected viewers: strangers are not asked to dial
                    // back, and an idle session carries no probes.
                    use_connected: false,
                    ..Default::default()
                },
            )
        });
        let mdns = if options.mdns {
            mdns::tokio::Behaviour::new(mdns::Config::default(), peer)
                .map_err(|err| tracing::warn!(error = %err, "mDNS unavailable; LAN discovery off"))
                .ok()
        } else {
            None
        };
        PeerBehaviour {
            limits: crate::ip_limits::IpLimits::new(options.inbound_per_ip),
            stream: crate::prefer_direct::PreferDirect::new(libp2p_stream::Behaviour::new()),
            identify: crate::swarm::identify(&key.public(), agent(options.name.as_deref())),
            ping: ping::Behaviour::default(),
            relay,
            dcutr: dcutr::Behaviour::new(peer),
            autonat: Toggle::from(autonat),
            mdns: Toggle::from(mdns),
            signal: crate::only_peer::OnlyPeer::new(crate::swarm::signal(), options.server),
        }
    })
    .map_err(|e| e.to_string())
}
