//! Dialling the host: direct and relayed addresses at once, the host's key checked by
//! libp2p, and a direct connection noticed when hole punching succeeds after a relayed start.

use std::time::{Duration, Instant};

use futures::StreamExt;
use libp2p::multiaddr::Protocol;
use libp2p::swarm::SwarmEvent;
use libp2p::{Multiaddr, PeerId};
use portico_core::identity::Identity;
use tokio::sync::oneshot;

use crate::{Dial, ViewerError};
use portico_signal_client::peer::{build_swarm, PeerOptions};

/// A connection to the host.
pub(crate) struct Connected {
    /// The host's PeerId.
    pub(crate) peer: PeerId,
    /// The first connection went through a relay.
    pub(crate) relayed: bool,
    /// Opens streams.
    pub(crate) control: libp2p_stream::Control,
    /// Drives the swarm (kept alive for the session).
    _task: tokio::task::JoinHandle<()>,
    /// When a direct connection appeared after a relayed start (ms).
    pub(crate) upgrade: std::sync::Arc<std::sync::Mutex<Option<f64>>>,
}

/// Dials and waits for a connection to the host.
pub(crate) async fn connect(identity: &Identity, dial: &Dial) -> Result<Connected, ViewerError> {
    let mut swarm = build_swarm(identity, PeerOptions::viewer()).map_err(ViewerError::Connect)?;
    let control = swarm.behaviour().stream.new_control();
    // Listening gives hole punching (DCUtR) a port to punch from; failures only cost that.
    for a in ["/ip4/0.0.0.0/udp/0/quic-v1", "/ip4/0.0.0.0/tcp/0"] {
        if let Ok(addr) = a.parse::<Multiaddr>() {
            if let Err(e) = swarm.listen_on(addr) {
                tracing::debug!(error = %e, "no local listener for hole punching");
            }
        }
    }
    if dial.addrs.is_empty() {
        return Err(ViewerError::Connect("no address to dial".into()));
    }
    for addr in &dial.addrs {
        let addr = with_peer(addr, dial.peer);
        if let Err(e) = swarm.dial(addr.clone()) {
            tracing::debug!(%addr, error = %e, "dial failed");
        }
    }
    let (tx, rx) = oneshot::channel();
    let expected = dial.peer;
    let upgrade = std::sync::Arc::new(std::sync::Mutex::new(None::<f64>));
    let upgrade_w = upgrade.clone();
    let t0 = Instant::now();
    let task = tokio::spawn(drive(swarm, expected, tx, upgrade_w, t0));
    let (peer, relayed) = tokio::time::timeout(Duration::from_secs(15), rx)
        .await
        .map_err(|_| ViewerError::Connect("no connection after 15 s".into()))?
        .map_err(|_| ViewerError::Connect("connection task ended".into()))??;
    Ok(Connected {
        peer,
        relayed,
        control,
        _task: task,
        upgrade,
    })
}

/// `addr` with the expected host's `/p2p/` appended (after a relay's `/p2p-circuit` too).
fn with_peer(addr: &Multiaddr, peer: Option<PeerId>) -> Multiaddr {
    match (peer, addr.iter().last()) {
        (Some(_), Some(Protocol::P2p(_))) | (None, _) => addr.clone(),
        (Some(p), _) => addr.clone().with(Protocol::P2p(p)),
    }
}

type Reply = oneshot::Sender<Result<(PeerId, bool), ViewerError>>;

/// Drives the swarm for the session's life: reports the first connection to the host (or a
/// key mismatch), and notes when a direct connection follows a relayed start.
async fn drive(
    mut swarm: libp2p::Swarm<portico_signal_client::peer::PeerBehaviour>,
    expected: Option<PeerId>,
    tx: Reply,
    upgrade_w: std::sync::Arc<std::sync::Mutex<Option<f64>>>,
    t0: Instant,
) {
    let mut tx = Some(tx);
    let mut first_relayed = false;
    let mut errors = Vec::new();
    loop {
        match swarm.select_next_some().await {
            SwarmEvent::ConnectionEstablished {
                peer_id, endpoint, ..
            } => {
                tracing::info!(%peer_id, addr = %endpoint.get_remote_address(), relayed = endpoint.is_relayed(), "connected");
                if expected.is_none_or(|p| p == peer_id) {
                    if let Some(t) = tx.take() {
                        // The caller may have timed out; then nothing waits for this.
                        let _unused = t.send(Ok((peer_id, endpoint.is_relayed())));
                        first_relayed = endpoint.is_relayed();
                    } else if first_relayed && !endpoint.is_relayed() {
                        if let Ok(mut u) = upgrade_w.lock() {
                            u.get_or_insert(t0.elapsed().as_secs_f64() * 1e3);
                        }
                    }
                }
            }
            SwarmEvent::OutgoingConnectionError { error, .. } => {
                if let libp2p::swarm::DialError::WrongPeerId { obtained, .. } = &error {
                    if let (Some(t), Some(e)) = (tx.take(), expected) {
                        let _unused = t.send(Err(ViewerError::KeyChanged {
                            expected: e.to_string(),
                            got: obtained.to_string(),
                        }));
                    }
                }
                errors.push(error.to_string());
            }
            SwarmEvent::Behaviour(portico_signal_client::peer::PeerBehaviourEvent::Dcutr(ev)) => {
                tracing::info!(?ev, "hole punching")
            }
            _ => {}
        }
    }
}
