//! The running server: a libp2p swarm (TCP + QUIC, Noise, Yamux) with the signal protocol,
//! a circuit-relay v2 server that only reserves for registered hosts, identify, autonat and
//! ping; plus the admin socket and metrics. [`start`] binds and returns a handle; [`run`]
//! serves until a shutdown future resolves.

mod circuits;
mod durable;
pub(crate) mod state;

use std::collections::HashMap;
use std::future::Future;
use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use libp2p::core::ConnectedPoint;
use libp2p::multiaddr::Protocol;
use libp2p::request_response;
use libp2p::swarm::{ConnectionId, NetworkBehaviour, SwarmEvent};
use libp2p::{
    autonat, identify, noise, ping, relay, yamux, Multiaddr, PeerId, Swarm, SwarmBuilder,
};
use portico_core::identity::Identity;
use portico_core::wire::signal::{Change, ServerEvent, SignalRequest};
use prometheus_client::registry::Registry;
use tokio::sync::{mpsc, oneshot};
use tracing::Instrument;

use crate::admin::socket::AdminRequest;
use crate::admin::{self, AdminCommand, AdminContext, AdminReply};
use crate::config::Config;
use crate::metrics::Metrics;
use crate::store::{Store, StoreError};
use portico_core::clock::Clock;
use portico_signal_client::codec::SignalCodec;
use portico_signal_client::swarm as net;
use state::State;

/// The server's libp2p behaviours.
#[derive(NetworkBehaviour)]
#[behaviour(prelude = "libp2p::swarm::derive_prelude")]
pub(crate) struct ServerBehaviour {
    relay: relay::Behaviour,
    identify: identify::Behaviour,
    autonat: autonat::Behaviour,
    ping: ping::Behaviour,
    signal: request_response::Behaviour<SignalCodec>,
}

/// Why the server cannot start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The transport could not be built or bound.
    #[error("cannot listen on {addr}: {reason}")]
    Listen {
        /// The address.
        addr: String,
        /// Why.
        reason: String,
    },
    /// Another I/O failure (admin socket, metrics).
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The error.
        source: std::io::Error,
    },
}

/// A started server.
pub struct Running {
    /// The server's PeerId.
    pub peer_id: PeerId,
    /// Addresses it listens on (with `/p2p/PEER`).
    pub listen_addrs: Vec<Multiaddr>,
    /// Where metrics are served.
    pub metrics_addr: Option<SocketAddr>,
    /// Stops the loop.
    shutdown: oneshot::Sender<()>,
    /// The loop.
    task: tokio::task::JoinHandle<()>,
}

impl Running {
    /// Stops the server and waits until it has stopped.
    pub async fn shutdown(self) {
        if self.shutdown.send(()).is_err() {
            tracing::debug!("server loop had already ended");
        }
        if let Err(e) = self.task.await {
            tracing::error!(error = %e, "server task failed");
        }
    }
}

fn listen_multiaddrs(addr: SocketAddr) -> [Multiaddr; 2] {
    let ip = match addr.ip() {
        IpAddr::V4(v4) => Protocol::Ip4(v4),
        IpAddr::V6(v6) => Protocol::Ip6(v6),
    };
    let base = Multiaddr::empty().with(ip);
    [
        base.clone().with(Protocol::Tcp(addr.port())),
        base.with(Protocol::Udp(addr.port())).with(Protocol::QuicV1),
    ]
}

fn build_swarm(
    config: &Config,
    identity: &Identity,
    state: &State,
    registry: &mut Registry,
) -> Result<Swarm<ServerBehaviour>, ServerError> {
    let registered = state.registered.clone();
    let gate = state.circuits.clone();
    let rc = &config.relay;
    let relay_config = relay::Config {
        max_reservations: rc.max_reservations,
        max_reservations_per_peer: 4,
        reservation_duration: Duration::from_secs(rc.reservation_secs),
        // Only registered hosts get a reservation: the gate reads the live registry, and a
        // poisoned lock refuses (fail closed).
        reservation_rate_limiters: vec![Box::new(move |peer: PeerId, _: &Multiaddr, _| {
            registered
                .read()
                .map(|set| set.contains(&peer))
                .unwrap_or(false)
        })],
        max_circuits: rc.max_circuits,
        max_circuits_per_peer: rc.max_circuits_per_peer,
        max_circuit_duration: Duration::from_secs(rc.max_circuit_secs),
        max_circuit_bytes: rc.max_circuit_bytes,
        // Circuits open at once per source address (PeerIds cost nothing): the relay asks
        // before accepting; a poisoned lock refuses (fail closed).
        circuit_src_rate_limiters: vec![Box::new(move |peer: PeerId, addr: &Multiaddr, _| {
            gate.lock()
                .map(|mut g| g.admit(peer, ip_of(addr)))
                .unwrap_or(false)
        })],
    };
    // New circuits per source, by key (free to make) and by address (not).
    let minute = Duration::from_secs(60);
    let relay_config = match NonZeroU32::new(rc.circuits_per_minute_per_peer) {
        Some(n) => relay_config.circuit_src_per_peer(n, minute),
        None => relay_config,
    };
    let relay_config = match NonZeroU32::new(rc.circuits_per_minute_per_ip) {
        Some(n) => relay_config.circuit_src_per_ip(n, minute),
        None => relay_config,
    };
    let fail = |reason: String| ServerError::Listen {
        addr: config.listen.to_string(),
        reason,
    };
    let swarm = SwarmBuilder::with_existing_identity(identity.keypair().clone())
        .with_tokio()
        .with_tcp(
            net::tcp_config(),
            noise::Config::new,
            yamux::Config::default,
        )
        .map_err(|e| fail(e.to_string()))?
        .with_quic()
        .with_bandwidth_metrics(registry)
        .with_behaviour(|key| ServerBehaviour {
            relay: relay::Behaviour::new(key.public().to_peer_id(), relay_config),
            identify: net::identify(
                &key.public(),
                format!("portico-signal/{}", env!("CARGO_PKG_VERSION")),
            ),
            autonat: autonat::Behaviour::new(
                key.public().to_peer_id(),
                autonat::Config {
                    only_global_ips: false,
                    ..Default::default()
                },
            ),
            ping: ping::Behaviour::default(),
            signal: net::signal(),
        })
        .map_err(|e| fail(e.to_string()))?
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(120)))
        .build();
    Ok(swarm)
}

/// Binds the server and starts serving in a task.
pub async fn start(
    config: Config,
    identity: Identity,
    store: Store,
    data_dir: &std::path::Path,
) -> Result<Running, ServerError> {
    let metrics = Metrics::default();
    let mut registry = Registry::default();
    metrics.register(&mut registry);
    let mut state = State::new(config.clone(), identity.clone(), store, metrics)?;
    let mut swarm = build_swarm(&config, &identity, &state, &mut registry)?;
    for addr in listen_multiaddrs(config.listen) {
        swarm
            .listen_on(addr.clone())
            .map_err(|e| ServerError::Listen {
                addr: addr.to_string(),
                reason: e.to_string(),
            })?;
    }
    // Wait until both transports report their addresses (port 0 resolves here).
    let mut listen_addrs = Vec::new();
    let deadline = tokio::time::sleep(Duration::from_secs(10));
    tokio::pin!(deadline);
    while !(listen_addrs
        .iter()
        .any(|a: &Multiaddr| a.iter().any(|p| matches!(p, Protocol::Tcp(_))))
        && listen_addrs
            .iter()
            .any(|a: &Multiaddr| a.iter().any(|p| matches!(p, Protocol::QuicV1))))
    {
        tokio::select! {
            ev = swarm.select_next_some() => match ev {
                SwarmEvent::NewListenAddr { address, .. } => listen_addrs.push(address),
                SwarmEvent::ListenerError { error, .. } | SwarmEvent::ListenerClosed { reason: Err(error), .. } => {
                    return Err(ServerError::Listen { addr: config.listen.to_string(), reason: error.to_string() });
                }
                _ => {}
            },
            () = &mut deadline => return Err(ServerError::Listen { addr: config.listen.to_string(), reason: "no listen address after 10 s".into() }),
        }
    }
    state.public_addrs = if config.external_addrs.is_empty() {
        listen_addrs.clone()
    } else {
        config
            .external_addrs
            .iter()
            .filter_map(|a| a.parse().ok())
            .collect()
    };
    for a in &state.public_addrs {
        swarm.add_external_address(a.clone());
    }
    let registry = Arc::new(registry);
    let metrics_addr = match config.metrics {
        Some(addr) => Some(
            crate::metrics::serve(addr, registry.clone())
                .await
                .map_err(|source| ServerError::Io {
                    what: "cannot serve metrics",
                    source,
                })?
                .0,
        ),
        None => None,
    };
    let (admin_tx, admin_rx) = mpsc::channel(16);
    let admin_task =
        admin::socket::serve(data_dir, admin_tx).map_err(|source| ServerError::Io {
            what: "cannot open the admin socket",
            source,
        })?;
    let peer_id = *swarm.local_peer_id();
    let (shutdown, shutdown_rx) = oneshot::channel();
    let span = tracing::info_span!("signal_server", peer = %peer_id);
    let task = tokio::spawn(
        async move {
            let (logins_tx, logins_rx) = mpsc::channel(MAX_LOGIN_CHECKS);
            Loop {
                swarm,
                state,
                logins_tx,
                logins_rx,
                logins_in_flight: 0,
                durable: durable::Durable::new(),
                remote: HashMap::new(),
                admin_rx,
            }
            .run(shutdown_rx)
            .await;
            admin_task.abort();
        }
        .instrument(span),
    );
    let listen_addrs = listen_addrs
        .into_iter()
        .map(|a| a.with(Protocol::P2p(peer_id)))
        .collect();
    Ok(Running {
        peer_id,
        listen_addrs,
        metrics_addr,
        shutdown,
        task,
    })
}

/// Serves until `shutdown` resolves (mini-redis style), printing the server's identity.
pub async fn run(
    config: Config,
    identity: Identity,
    store: Store,
    data_dir: &std::path::Path,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServerError> {
    let running = start(config, identity.clone(), store, data_dir).await?;
    let mut banner = format!(
        "portico-signal {}\nPeerId:      {}\nFingerprint: {}\n",
        env!("CARGO_PKG_VERSION"),
        running.peer_id,
        identity.fingerprint()
    );
    for a in &running.listen_addrs {
        banner.push_str(&format!("Listening:   {a}\n"));
    }
    if let Some(m) = running.metrics_addr {
        banner.push_str(&format!("Metrics:     http://{m}/metrics\n"));
    }
    // A closed stdout (a supervisor that stopped reading) must not stop the server.
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_all(banner.as_bytes()).and_then(|()| out.flush()) {
        tracing::warn!(error = %e, "could not print the start banner");
    }
    drop(out);
    shutdown.await;
    running.shutdown().await;
    Ok(())
}

/// Password checks running off the event loop at once; more are told to retry.
const MAX_LOGIN_CHECKS: usize = 4;

/// A finished password check: the reply channel, the login, and whether it matched.
type LoginDone = (
    request_response::ResponseChannel<portico_core::wire::signal::SignalResponse>,
    state::LoginCheck,
    bool,
);

struct Loop {
    swarm: Swarm<ServerBehaviour>,
    state: State,
    /// Finished password checks come back here.
    logins_tx: mpsc::Sender<LoginDone>,
    /// See `logins_tx`.
    logins_rx: mpsc::Receiver<LoginDone>,
    /// Password checks in flight.
    logins_in_flight: usize,
    /// Answers held until the store is on disk (new hosts' registrations).
    durable: durable::Durable,
    /// Remote address per connection (for the caller's IP).
    remote: HashMap<ConnectionId, Multiaddr>,
    admin_rx: mpsc::Receiver<AdminRequest>,
}

/// The caller's address as limits and the audit see it (an IPv6 address's /64).
fn ip_of(addr: &Multiaddr) -> Option<IpAddr> {
    portico_signal_client::ip_limits::limit_ip(addr)
}

impl Loop {
    async fn run(mut self, mut shutdown: oneshot::Receiver<()>) {
        let mut purge = tokio::time::interval(Duration::from_secs(60));
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                ev = self.swarm.select_next_some() => self.on_event(ev),
                Some((cmd, reply)) = self.admin_rx.recv() => {
                    let out = self.admin(cmd);
                    if reply.send(out).is_err() {
                        tracing::debug!("admin client went away before the reply");
                    }
                }
                Some((channel, check, ok)) = self.logins_rx.recv() => {
                    self.logins_in_flight -= 1;
                    let response = self.state.login_end(check, ok, Clock::now());
                    if self.swarm.behaviour_mut().signal.send_response(channel, response).is_err() {
                        tracing::debug!("peer left before the login answer");
                    }
                }
                Some(result) = self.durable.done_rx.recv() => {
                    for (channel, response) in self.durable.finished(&self.state.store, result) {
                        if self.swarm.behaviour_mut().signal.send_response(channel, response).is_err() {
                            tracing::debug!("peer left before its registration was saved");
                        }
                    }
                }
                _ = purge.tick() => {
                    if let Err(e) = self.state.store.purge_sessions(Clock::now().unix) {
                        tracing::warn!(error = %e, "purging expired sessions failed");
                    }
                }
            }
        }
        if let Err(e) = self.state.store.flush() {
            tracing::error!(error = %e, "final flush failed");
        }
        tracing::info!("server stopped");
    }

    fn admin(&mut self, cmd: AdminCommand) -> AdminReply {
        let state = &self.state;
        let clock = Clock::now();
        let online = |peer: &str| peer.parse().is_ok_and(|p| state.is_online(&p, clock.at));
        let ctx = AdminContext {
            store: &state.store,
            identity: &state.identity,
            server_name: &state.config.server_name,
            server_addrs: state
                .public_addrs
                .iter()
                .map(|a| format!("{a}/p2p/{}", state.identity.peer_id()))
                .collect(),
            online: &online,
            now: clock.unix,
        };
        let (reply, events) = admin::execute(&ctx, cmd);
        for event in events {
            self.broadcast(event);
        }
        reply
    }

    /// Tells the connected registered hosts a change concerns about it: a node's flags go
    /// to the host at that node, user and global changes to every host. A host that is away
    /// learns of what it missed by the event number when it registers again.
    fn broadcast(&mut self, event: ServerEvent) {
        let only = match &event.change {
            Change::Node { path, .. } => Some(self.state.host_at(path)),
            Change::User { .. } | Change::Global { .. } => None,
        };
        let hosts: Vec<PeerId> = self
            .swarm
            .connected_peers()
            .filter(|p| self.state.is_registered(p))
            .filter(|p| only.is_none_or(|host| host == Some(**p)))
            .copied()
            .collect();
        for host in hosts {
            tracing::debug!(%host, seq = event.seq, "sending event");
            self.swarm
                .behaviour_mut()
                .signal
                .send_request(&host, SignalRequest::Event(event.clone()));
        }
    }

    fn on_event(&mut self, ev: SwarmEvent<ServerBehaviourEvent>) {
        match ev {
            SwarmEvent::ConnectionEstablished {
                connection_id,
                endpoint,
                ..
            } => {
                let addr = match endpoint {
                    ConnectedPoint::Dialer { address, .. } => address,
                    ConnectedPoint::Listener { send_back_addr, .. } => send_back_addr,
                };
                self.remote.insert(connection_id, addr);
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                connection_id,
                num_established,
                ..
            } => {
                self.remote.remove(&connection_id);
                if num_established == 0 {
                    self.state.disconnected(&peer_id);
                }
            }
            SwarmEvent::Behaviour(ServerBehaviourEvent::Signal(
                request_response::Event::Message {
                    peer,
                    connection_id,
                    message,
                    ..
                },
            )) => match message {
                request_response::Message::Request {
                    request: SignalRequest::Login(login),
                    channel,
                    ..
                } => {
                    let ip = self.remote.get(&connection_id).and_then(ip_of);
                    self.login(peer, ip, login, channel);
                }
                request_response::Message::Request {
                    request, channel, ..
                } => {
                    let ip = self.remote.get(&connection_id).and_then(ip_of);
                    let response = self.state.handle(peer, ip, request, Clock::now());
                    if std::mem::take(&mut self.state.unflushed) {
                        self.durable.push(&self.state.store, (channel, response));
                    } else if self
                        .swarm
                        .behaviour_mut()
                        .signal
                        .send_response(channel, response)
                        .is_err()
                    {
                        tracing::debug!(%peer, "peer left before the response");
                    }
                }
                request_response::Message::Response { .. } => {}
            },
            SwarmEvent::Behaviour(ServerBehaviourEvent::Signal(
                request_response::Event::InboundFailure { peer, error, .. },
            )) => {
                tracing::debug!(%peer, %error, "bad signal request; stream closed");
            }
            SwarmEvent::Behaviour(ServerBehaviourEvent::Signal(
                request_response::Event::OutboundFailure { peer, error, .. },
            )) => {
                tracing::debug!(%peer, %error, "event delivery failed");
            }
            SwarmEvent::Behaviour(ServerBehaviourEvent::Relay(ev)) => self.on_relay(ev),
            SwarmEvent::IncomingConnectionError { error, .. } => {
                tracing::debug!(%error, "incoming connection failed")
            }
            _ => {}
        }
    }

    /// Checks the password on the blocking pool so argon2 never stalls the event loop.
    fn login(
        &mut self,
        peer: PeerId,
        ip: Option<IpAddr>,
        login: portico_core::wire::signal::Login,
        channel: request_response::ResponseChannel<portico_core::wire::signal::SignalResponse>,
    ) {
        use portico_core::wire::signal::{ErrorCode, SignalError, SignalResponse};
        let refusal = if self.logins_in_flight >= MAX_LOGIN_CHECKS {
            SignalResponse::Error(SignalError {
                code: ErrorCode::RateLimited,
                message: "the server is busy checking sign-ins; retry in a moment".into(),
                retry_after_ms: Some(500),
            })
        } else {
            match self
                .state
                .login_begin(peer, ip, login, std::time::Instant::now())
            {
                Ok(check) => {
                    self.logins_in_flight += 1;
                    let tx = self.logins_tx.clone();
                    tokio::task::spawn_blocking(move || {
                        let ok =
                            crate::store::accounts::verify_password(&check.password, &check.hash);
                        if tx.blocking_send((channel, check, ok)).is_err() {
                            tracing::debug!("server stopped during a password check");
                        }
                    });
                    return;
                }
                Err(e) => e,
            }
        };
        if self
            .swarm
            .behaviour_mut()
            .signal
            .send_response(channel, refusal)
            .is_err()
        {
            tracing::debug!(%peer, "peer left before the answer");
        }
    }

    fn on_relay(&mut self, ev: relay::Event) {
        let m = &self.state.metrics;
        match ev {
            relay::Event::ReservationReqAccepted { src_peer_id, .. } => {
                tracing::info!(host = %src_peer_id, "relay reservation accepted");
                self.state.reservations.insert(src_peer_id);
            }
            relay::Event::ReservationReqDenied { src_peer_id, .. } => {
                tracing::info!(peer = %src_peer_id, "relay reservation denied (not a registered host)");
            }
            relay::Event::ReservationTimedOut { src_peer_id } => {
                self.state.reservations.remove(&src_peer_id);
            }
            relay::Event::CircuitReqAccepted {
                src_peer_id,
                dst_peer_id,
            } => {
                tracing::info!(viewer = %src_peer_id, host = %dst_peer_id, "relay circuit opened");
                m.circuits.inc();
                m.circuits_total.inc();
                let opened = self
                    .state
                    .circuits
                    .lock()
                    .map(|mut g| g.opened(src_peer_id, dst_peer_id));
                if !matches!(opened, Ok(circuits::Opened::Fine)) {
                    tracing::warn!(viewer = %src_peer_id, host = %dst_peer_id, "too many relayed circuits to one host; dropping the newest");
                    if self.swarm.disconnect_peer_id(src_peer_id).is_err() {
                        tracing::debug!(viewer = %src_peer_id, "already gone");
                    }
                }
            }
            relay::Event::CircuitClosed {
                src_peer_id,
                dst_peer_id,
                error,
            } => {
                tracing::info!(viewer = %src_peer_id, host = %dst_peer_id, ?error, "relay circuit closed");
                m.circuits.dec();
                if let Ok(mut g) = self.state.circuits.lock() {
                    g.closed(src_peer_id, dst_peer_id);
                }
            }
            _ => {}
        }
        m.reservations.set(self.state.reservations.len() as i64);
    }
}
