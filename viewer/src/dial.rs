//! Dialling the host: direct and relayed addresses at once, the host's key checked by
//! libp2p, and a direct connection noticed when hole punching succeeds after a relayed start.

use std::time::{Duration, Instant};

use futures::StreamExt;
use libp2p::multiaddr::Protocol;
use libp2p::swarm::SwarmEvent;
use libp2p::{Multiaddr, PeerId};
use portico_core::identity::Identity;
use tokio::sync::{mpsc, oneshot, watch};

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
    /// When a direct connection appeared after a relayed start (ms after dialling).
    pub(crate) direct: watch::Receiver<Option<f64>>,
    /// Closes the relayed connections to the host (once the session moved off them).
    pub(crate) close_relayed: mpsc::Sender<()>,
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
    let (direct_tx, direct) = watch::channel(None);
    let (close_relayed, close_rx) = mpsc::channel(1);
    let links = Links {
        first: tx,
        direct: direct_tx,
        close_relayed: close_rx,
    };
    let task = tokio::spawn(drive(swarm, expected, links, Instant::now()));
    let (peer, relayed) = tokio::time::timeout(Duration::from_secs(15), rx)
        .await
        .map_err(|_| ViewerError::Connect("no connection after 15 s".into()))?
        .map_err(|_| ViewerError::Connect("connection task ended".into()))??;
    Ok(Connected {
        peer,
        relayed,
        control,
        _task: task,
        direct,
        close_relayed,
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

/// What the swarm task tells the session and hears from it.
struct Links {
    /// The first connection to the host (or why there is none).
    first: Reply,
    /// A direct connection after a relayed start, ms after dialling.
    direct: watch::Sender<Option<f64>>,
    /// The session moved off the relay: close the relayed connections.
    close_relayed: mpsc::Receiver<()>,
}

/// Drives the swarm for the session's life: reports the first connection to the host (or a
/// key mismatch), notes when a direct connection follows a relayed start, and closes the
/// relayed connections when the session has moved off them.
async fn drive(
    mut swarm: libp2p::Swarm<portico_signal_client::peer::PeerBehaviour>,
    expected: Option<PeerId>,
    links: Links,
    t0: Instant,
) {
    let Links {
        first,
        direct,
        mut close_relayed,
    } = links;
    let mut tx = Some(first);
    let mut first_relayed = false;
    let mut relayed = Vec::new();
    let mut errors = Vec::new();
    loop {
        let event = tokio::select! {
            ev = swarm.select_next_some() => ev,
            Some(()) = close_relayed.recv() => {
                for c in relayed.drain(..) {
                    tracing::info!(connection = %c, "the session moved off the relay: closing the relayed connection");
                    swarm.close_connection(c);
                }
                continue;
            }
        };
        match event {
            SwarmEvent::ConnectionEstablished {
                peer_id,
                endpoint,
                connection_id,
                ..
            } => {
                tracing::info!(%peer_id, addr = %endpoint.get_remote_address(), relayed = endpoint.is_relayed(), "connected");
                if expected.is_none_or(|p| p == peer_id) {
                    if endpoint.is_relayed() {
                        relayed.push(connection_id);
                    }
                    if let Some(t) = tx.take() {
                        // The caller may have timed out; then nothing waits for this.
                        let _unused = t.send(Ok((peer_id, endpoint.is_relayed())));
                        first_relayed = endpoint.is_relayed();
                    } else if first_relayed && !endpoint.is_relayed() {
                        let ms = t0.elapsed().as_secs_f64() * 1e3;
                        direct.send_if_modified(|d| d.is_none() && d.replace(ms).is_none());
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
