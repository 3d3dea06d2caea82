//! LAN discovery: Portico hosts that announce themselves by mDNS.
//!
//! mDNS gives a PeerId and addresses; the name comes from the host's identify agent string
//! (`portico/VERSION (NAME)`), so each host found is dialled once to read it. Nothing here
//! grants anything: connecting to a discovered host goes through its access policy like
//! any other, and its key is pinned like any other.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use futures::StreamExt;
use libp2p::swarm::SwarmEvent;
use libp2p::{identify, mdns, Multiaddr, PeerId};
use portico_core::identity::{peer_fingerprint, Identity};
use portico_signal_client::peer::{build_swarm, name_in_agent, PeerBehaviourEvent, PeerOptions};

use crate::ViewerError;

/// A host found on the LAN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Discovered {
    /// The name it shows (cleaned).
    pub name: String,
    /// Its key.
    pub peer: PeerId,
    /// Its key's fingerprint, to compare with what the host's owner reads out.
    pub fingerprint: String,
    /// Where it listens (as announced; loopback addresses left out).
    pub addrs: Vec<Multiaddr>,
}

/// The Portico hosts that answer on the LAN within `wait`, by name.
pub async fn discover(identity: &Identity, wait: Duration) -> Result<Vec<Discovered>, ViewerError> {
    let options = PeerOptions {
        mdns: true,
        ..PeerOptions::viewer()
    };
    let mut swarm = build_swarm(identity, options).map_err(ViewerError::Connect)?;
    if swarm.behaviour().mdns.as_ref().is_none() {
        return Err(ViewerError::Connect(
            "mDNS is not available on this machine (no multicast-capable network interface?)"
                .into(),
        ));
    }
    let mut addrs: BTreeMap<PeerId, Vec<Multiaddr>> = BTreeMap::new();
    let mut dialled = HashSet::new();
    let mut found: BTreeMap<PeerId, Discovered> = BTreeMap::new();
    let deadline = tokio::time::sleep(wait);
    tokio::pin!(deadline);
    loop {
        let event = tokio::select! {
            () = &mut deadline => break,
            ev = swarm.select_next_some() => ev,
        };
        match event {
            SwarmEvent::Behaviour(PeerBehaviourEvent::Mdns(mdns::Event::Discovered(list))) => {
                for (peer, addr) in list {
                    let known = addrs.entry(peer).or_default();
                    if !known.contains(&addr) {
                        known.push(addr.clone());
                    }
                    if dialled.insert(peer) {
                        let opts = libp2p::swarm::dial_opts::DialOpts::peer_id(peer)
                            .addresses(known.clone())
                            .build();
                        if let Err(e) = swarm.dial(opts) {
                            tracing::debug!(%peer, error = %e, "cannot dial a discovered peer");
                        }
                    }
                }
            }
            SwarmEvent::Behaviour(PeerBehaviourEvent::Identify(identify::Event::Received {
                peer_id,
                info,
                ..
            })) => {
                let is_host = info.protocols.contains(&crate::SESSION);
                let Some(name) = name_in_agent(&info.agent_version).filter(|_| is_host) else {
                    continue;
                };
                let mut listen: Vec<Multiaddr> = addrs.get(&peer_id).cloned().unwrap_or_default();
                for a in info.listen_addrs {
                    if !listen.contains(&a) {
                        listen.push(a);
                    }
                }
                listen.retain(|a| !is_loopback(a));
                found.insert(
                    peer_id,
                    Discovered {
                        name,
                        peer: peer_id,
                        fingerprint: peer_fingerprint(&peer_id).unwrap_or_default(),
                        addrs: listen,
                    },
                );
            }
            _ => {}
        }
    }
    let mut hosts: Vec<Discovered> = found.into_values().collect();
    hosts.sort_by(|a, b| a.name.cmp(&b.name).then(a.peer.cmp(&b.peer)));
    Ok(hosts)
}

fn is_loopback(a: &Multiaddr) -> bool {
    a.iter().any(|p| match p {
        libp2p::multiaddr::Protocol::Ip4(ip) => ip.is_loopback(),
        libp2p::multiaddr::Protocol::Ip6(ip) => ip.is_loopback(),
        _ => false,
    })
}
