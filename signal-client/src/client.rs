//! A client for `/portico/signal/1`, used by viewers, the CLI, tests and simulations: it
//! dials the server, checks the server's PeerId against the pinned one (libp2p's Noise refuses any
//! other key), sends requests and receives the server's events.

use std::net::IpAddr;
use std::time::Duration;

use futures::StreamExt;
use libp2p::multiaddr::Protocol;
use libp2p::request_response::{self, OutboundRequestId};
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{identify, ping, relay, Multiaddr, PeerId, Swarm};
use portico_core::identity::Identity;
use portico_core::wire::signal::{Ack, ServerEvent, SignalRequest, SignalResponse};
use tokio::sync::{mpsc, oneshot};

use crate::codec::SignalCodec;
use crate::ports::SERVER_PORT;

/// Client errors.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server address does not parse.
    #[error("bad server address {addr:?}: {reason}; use HOST[:PORT] or a multiaddr")]
    BadAddress {
        /// The address.
        addr: String,
        /// Why.
        reason: String,
    },
    /// The transport could not be built.
    #[error("cannot set up networking: {0}")]
    Transport(String),
    /// The server could not be reached.
    #[error("cannot reach the server at {addr}: {reason} (is it running, and is the address right? `portico-signal serve` listens on TCP and UDP 5655)")]
    Unreachable {
        /// The address dialled.
        addr: String,
        /// Why.
        reason: String,
    },
    /// The server's key is not the pinned one.
    #[error("the server's key changed: expected {expected}, got {got}. Refusing to continue. If the server was reinstalled on purpose, remove its pin (`portico logout --forget-server`) and sign in again")]
    KeyChanged {
        /// The pinned PeerId.
        expected: Box<PeerId>,
        /// The PeerId that answered.
        got: Box<PeerId>,
    },
    /// The request failed in transit.
    #[error("request to the server failed: {0}")]
    Request(String),
    /// The client task ended.
    #[error("connection to the server closed")]
    Closed,
}

#[derive(NetworkBehaviour)]
#[behaviour(prelude = "libp2p::swarm::derive_prelude")]
struct ClientBehaviour {
    signal: request_response::Behaviour<SignalCodec>,
    identify: identify::Behaviour,
    ping: ping::Behaviour,
    /// Unused by the client, but part of the one transport stack.
    relay: relay::client::Behaviour,
}

type Pending = oneshot::Sender<Result<SignalResponse, ClientError>>;

/// A connected client.
pub struct SignalClient {
    /// Requests to the driving task.
    requests: mpsc::Sender<(SignalRequest, Pending)>,
    /// Events the server pushed.
    events: mpsc::Receiver<ServerEvent>,
    /// The server's PeerId.
    server: PeerId,
    /// Our PeerId.
    local: PeerId,
    /// The driving task.
    task: tokio::task::JoinHandle<()>,
}

impl Drop for SignalClient {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Turns `HOST[:PORT]`, `IP[:PORT]` or a multiaddr into a dialable multiaddr (TCP).
pub fn server_multiaddr(s: &str) -> Result<Multiaddr, ClientError> {
    let bad = |reason: &str| ClientError::BadAddress {
        addr: s.to_string(),
        reason: reason.to_string(),
    };
    if s.starts_with('/') {
        return s
            .parse()
            .map_err(|e: libp2p::multiaddr::Error| bad(&e.to_string()));
    }
    if let Ok(sa) = s.parse::<std::net::SocketAddr>() {
        return Ok(Multiaddr::from(sa.ip()).with(Protocol::Tcp(sa.port())));
    }
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Ok(Multiaddr::from(ip).with(Protocol::Tcp(SERVER_PORT)));
    }
    let (host, port) = match s.rsplit_once(':') {
        Some((h, p)) => (
            h,
            p.parse::<u16>()
                .map_err(|_| bad("the port is not a number"))?,
        ),
        None => (s, SERVER_PORT),
    };
    if host.is_empty() || host.contains(['/', ' ']) {
        return Err(bad("empty or invalid host name"));
    }
    Ok(Multiaddr::empty()
        .with(Protocol::Dns(host.to_string().into()))
        .with(Protocol::Tcp(port)))
}

/// The QUIC address beside a server's TCP address (`…/tcp/P` → `…/udp/P/quic-v1`: the
/// server listens on both at one port); `None` when `addr` has no TCP part.
pub fn quic_twin(addr: &Multiaddr) -> Option<Multiaddr> {
    let mut has_tcp = false;
    let twin = addr
        .iter()
        .flat_map(|p| match p {
            Protocol::Tcp(port) => {
                has_tcp = true;
                vec![Protocol::Udp(port), Protocol::QuicV1]
            }
            other => vec![other],
        })
        .collect();
    has_tcp.then_some(twin)
}

fn build(identity: &Identity) -> Result<Swarm<ClientBehaviour>, ClientError> {
    crate::swarm::build(identity, Duration::from_secs(300), |key, relay| {
        ClientBehaviour {
            signal: crate::swarm::signal(),
            identify: crate::swarm::identify(
                &key.public(),
                format!("portico-signal-client/{}", env!("CARGO_PKG_VERSION")),
            ),
            ping: ping::Behaviour::default(),
            relay,
        }
    })
    .map_err(|e| ClientError::Transport(e.to_string()))
}

impl SignalClient {
    /// Connects to the server at `addr`. With `expected`, a server with any other key is
    /// refused ([`ClientError::KeyChanged`]); without, the caller pins what it gets.
    pub async fn connect(
        identity: &Identity,
        addr: Multiaddr,
        expected: Option<PeerId>,
    ) -> Result<Self, ClientError> {
        let mut swarm = build(identity)?;
        let dial = match addr.iter().last() {
            Some(Protocol::P2p(_)) => addr.clone(),
            _ => match expected {
                Some(p) => addr.clone().with(Protocol::P2p(p)),
                None => addr.clone(),
            },
        };
        swarm
            .dial(dial.clone())
            .map_err(|e| ClientError::Unreachable {
                addr: dial.to_string(),
                reason: e.to_string(),
            })?;
        let server = tokio::time::timeout(Duration::from_secs(15), async {
            loop {
                match swarm.select_next_some().await {
                    SwarmEvent::ConnectionEstablished { peer_id, .. } => return Ok(peer_id),
                    SwarmEvent::OutgoingConnectionError { error, .. } => {
                        if let libp2p::swarm::DialError::WrongPeerId { obtained, .. } = &error {
                            if let Some(expected) = expected {
                                return Err(ClientError::KeyChanged {
                                    expected: Box::new(expected),
                                    got: Box::new(*obtained),
                                });
                            }
                        }
                        return Err(ClientError::Unreachable {
                            addr: dial.to_string(),
                            reason: error.to_string(),
                        });
                    }
                    _ => {}
                }
            }
        })
        .await
        .map_err(|_| ClientError::Unreachable {
            addr: dial.to_string(),
            reason: "timed out after 15 s".into(),
        })??;
        if let Some(expected) = expected {
            if expected != server {
                return Err(ClientError::KeyChanged {
                    expected: Box::new(expected),
                    got: Box::new(server),
                });
            }
        }
        let local = *swarm.local_peer_id();
        let (requests, req_rx) = mpsc::channel(64);
        let (ev_tx, events) = mpsc::channel(256);
        let task = tokio::spawn(drive(swarm, server, req_rx, ev_tx));
        Ok(Self {
            requests,
            events,
            server,
            local,
            task,
        })
    }

    /// The server's PeerId (pin it).
    pub fn server_peer(&self) -> PeerId {
        self.server
    }

    /// Our PeerId (sessions and tickets are bound to it).
    pub fn local_peer(&self) -> PeerId {
        self.local
    }

    /// Sends a request and waits for the response.
    pub async fn request(&self, req: SignalRequest) -> Result<SignalResponse, ClientError> {
        let (tx, rx) = oneshot::channel();
        self.requests
            .send((req, tx))
            .await
            .map_err(|_| ClientError::Closed)?;
        rx.await
            .map_err(|_| ClientError::Closed)?
            .map(crate::from_server::clean_response)
    }

    /// The next event the server pushed (`None` once the connection is gone).
    pub async fn next_event(&mut self) -> Option<ServerEvent> {
        self.events.recv().await
    }
}

async fn drive(
    mut swarm: Swarm<ClientBehaviour>,
    server: PeerId,
    mut requests: mpsc::Receiver<(SignalRequest, Pending)>,
    events: mpsc::Sender<ServerEvent>,
) {
    let mut pending: std::collections::HashMap<OutboundRequestId, Pending> = Default::default();
    loop {
        tokio::select! {
            req = requests.recv() => match req {
                Some((req, reply)) => {
                    let id = swarm.behaviour_mut().signal.send_request(&server, req);
                    pending.insert(id, reply);
                }
                None => return,
            },
            ev = swarm.select_next_some() => match ev {
                SwarmEvent::Behaviour(ClientBehaviourEvent::Signal(request_response::Event::Message { message, peer, .. })) => match message {
                    request_response::Message::Response { request_id, response } => {
                        if let Some(reply) = pending.remove(&request_id) {
                            // The caller may have given up waiting; nothing to do then.
                            let _unused = reply.send(Ok(response));
                        }
                    }
                    request_response::Message::Request { request, channel, .. } => {
                        let ack = SignalResponse::Ack(Ack::default());
                        if peer != server {
                            tracing::warn!(%peer, "ignoring a signal request from a peer that is not our server");
                            continue;
                        }
                        if let SignalRequest::Event(ev) = request {
                            if events.try_send(ev).is_err() {
                                tracing::warn!("server event dropped: the event queue is full");
                            }
                        }
                        if swarm.behaviour_mut().signal.send_response(channel, ack).is_err() {
                            tracing::debug!("server left before our ack");
                        }
                    }
                },
                SwarmEvent::Behaviour(ClientBehaviourEvent::Signal(request_response::Event::OutboundFailure { request_id, error, .. })) => {
                    if let Some(reply) = pending.remove(&request_id) {
                        let _unused = reply.send(Err(ClientError::Request(error.to_string())));
                    }
                }
                SwarmEvent::ConnectionClosed { peer_id, num_established: 0, .. } if peer_id == server => {
                    for (_, reply) in pending.drain() {
                        let _unused = reply.send(Err(ClientError::Closed));
                    }
                    return;
                }
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_addresses_parse() {
        assert_eq!(
            server_multiaddr("10.0.0.1").unwrap().to_string(),
            "/ip4/10.0.0.1/tcp/5655"
        );
        assert_eq!(
            server_multiaddr("10.0.0.1:7000").unwrap().to_string(),
            "/ip4/10.0.0.1/tcp/7000"
        );
        assert_eq!(
            server_multiaddr("[::1]:7000").unwrap().to_string(),
            "/ip6/::1/tcp/7000"
        );
        assert_eq!(
            server_multiaddr("signal.example").unwrap().to_string(),
            "/dns/signal.example/tcp/5655"
        );
        assert_eq!(
            server_multiaddr("signal.example:1").unwrap().to_string(),
            "/dns/signal.example/tcp/1"
        );
        assert!(server_multiaddr("host:port").is_err());
        assert!(server_multiaddr("/not/a/multiaddr").is_err());
    }

    #[test]
    fn the_quic_twin_of_a_tcp_address() {
        let twin = |s: &str| quic_twin(&s.parse().unwrap()).map(|a| a.to_string());
        assert_eq!(
            twin("/dns/signal.example/tcp/5655").as_deref(),
            Some("/dns/signal.example/udp/5655/quic-v1")
        );
        assert_eq!(
            twin("/ip4/10.0.0.1/tcp/7000").as_deref(),
            Some("/ip4/10.0.0.1/udp/7000/quic-v1")
        );
        assert_eq!(twin("/ip4/10.0.0.1/udp/7000/quic-v1"), None);
    }
}
