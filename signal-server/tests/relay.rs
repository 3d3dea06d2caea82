//! The relay over real libp2p on loopback: reservations only for registered hosts, and a
//! registered host reachable through a circuit that carries more than 10 MB without being cut
//! (libp2p's default limits would stop it at 128 KiB).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use futures::{AsyncReadExt, AsyncWriteExt, StreamExt};
use libp2p::multiaddr::Protocol;
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{noise, relay, tcp, yamux, Multiaddr, PeerId, StreamProtocol, Swarm, SwarmBuilder};
use portico_core::identity::Identity;
use portico_core::wire::signal::{Register, SignalRequest, SignalResponse};
use portico_signal::{Config, Store};
use portico_signal_client::client::SignalClient;

const BULK: StreamProtocol = StreamProtocol::new("/portico-test/bulk/1");
const TOTAL: usize = 12 * 1024 * 1024;

#[derive(NetworkBehaviour)]
struct Peer {
    relay: relay::client::Behaviour,
    stream: libp2p_stream::Behaviour,
}

fn peer_swarm(id: &Identity) -> Swarm<Peer> {
    SwarmBuilder::with_existing_identity(id.keypair().clone())
        .with_tokio()
        .with_tcp(
            tcp::Config::default().nodelay(true),
            noise::Config::new,
            yamux::Config::default,
        )
        .unwrap()
        .with_relay_client(noise::Config::new, yamux::Config::default)
        .unwrap()
        .with_behaviour(|_, relay| Peer {
            relay,
            stream: libp2p_stream::Behaviour::new(),
        })
        .unwrap()
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(60)))
        .build()
}

/// Listens on the relay; returns whether the reservation was accepted.
async fn reserve(swarm: &mut Swarm<Peer>, circuit: Multiaddr) -> bool {
    swarm.listen_on(circuit).unwrap();
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match swarm.select_next_some().await {
                SwarmEvent::Behaviour(PeerEvent::Relay(
                    relay::client::Event::ReservationReqAccepted { .. },
                )) => return true,
                SwarmEvent::ListenerClosed { .. } | SwarmEvent::ListenerError { .. } => {
                    return false
                }
                _ => {}
            }
        }
    })
    .await
    .unwrap_or(false)
}

/// A server in `dir` with `tune` applied to its config: the server, its TCP address and a
/// one-use enrollment token for `/Home`.
async fn start_relay(
    dir: &std::path::Path,
    tune: impl FnOnce(&mut Config),
) -> (portico_signal::Running, Multiaddr, String) {
    let (server_id, _) = Identity::load_or_create(dir).unwrap();
    let mut config = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        ..Config::default()
    };
    tune(&mut config);
    let store = Store::open(dir).unwrap();
    let home = portico_signal::store::NodePath::parse("/Home").unwrap();
    let (token, _) = store.create_enrollment(&home, 1, u64::MAX, 0).unwrap();
    let server = portico_signal::start(config, server_id, store, dir)
        .await
        .unwrap();
    let tcp = server
        .listen_addrs
        .iter()
        .find(|a| a.to_string().contains("/tcp/"))
        .unwrap()
        .clone();
    (server, tcp, token)
}

/// Registers `host_id` as `/Home/pc` with `token`; its signal client.
async fn enrol(
    server: &portico_signal::Running,
    tcp: &Multiaddr,
    host_id: &Identity,
    token: String,
) -> SignalClient {
    let signal = SignalClient::connect(host_id, tcp.clone(), Some(server.peer_id))
        .await
        .unwrap();
    let r = signal
        .request(SignalRequest::Register(Register {
            node_path: Some("/Home/pc".into()),
            addrs: vec![],
            agent: "t".into(),
            enroll: Some(token),
        }))
        .await
        .unwrap();
    assert!(matches!(r, SignalResponse::Registered(_)), "{r:?}");
    signal
}

#[tokio::test]
async fn relay_serves_registered_hosts_only_and_carries_video_sized_circuits() {
    let dir = tempfile::tempdir().unwrap();
    // Every peer here comes from 127.0.0.1: three new circuits a minute from it, at most.
    let (server, tcp, token) =
        start_relay(dir.path(), |c| c.relay.circuits_per_minute_per_ip = 3).await;
    let circuit = tcp.clone().with(Protocol::P2pCircuit);

    // An unregistered peer is refused a reservation.
    let stranger = Identity::generate();
    let mut s = peer_swarm(&stranger);
    assert!(
        !reserve(&mut s, circuit.clone()).await,
        "unregistered peer got a reservation"
    );

    // Nor is a peer that asked to register without a token (it waits for an admin).
    let pending = SignalClient::connect(&stranger, tcp.clone(), Some(server.peer_id))
        .await
        .unwrap();
    let r = pending
        .request(SignalRequest::Register(Register {
            node_path: Some("/Home/squat".into()),
            addrs: vec![],
            agent: "t".into(),
            enroll: None,
        }))
        .await
        .unwrap();
    assert!(
        matches!(&r, SignalResponse::Error(e) if e.code == portico_core::wire::signal::ErrorCode::PendingApproval),
        "{r:?}"
    );
    assert!(
        !reserve(&mut s, circuit.clone()).await,
        "a host waiting for approval got a reservation"
    );

    // An enrolled host gets one.
    let host_id = Identity::generate();
    let signal = enrol(&server, &tcp, &host_id, token).await;
    let mut host = peer_swarm(&host_id);
    let mut incoming = host.behaviour().stream.new_control().accept(BULK).unwrap();
    assert!(
        reserve(&mut host, circuit.clone()).await,
        "registered host was refused a reservation"
    );
    tokio::spawn(async move {
        loop {
            host.select_next_some().await;
        }
    });
    // The host counts what arrives and answers with the count.
    tokio::spawn(async move {
        let (_, mut stream) = incoming.next().await.unwrap();
        let mut buf = vec![0u8; 64 * 1024];
        let mut n = 0u64;
        loop {
            let k = stream.read(&mut buf).await.unwrap();
            if k == 0 {
                break;
            }
            n += k as u64;
        }
        stream.write_all(&n.to_be_bytes()).await.unwrap();
        stream.close().await.unwrap();
    });

    // The lookup names the relayed address.
    let viewer_id = Identity::generate();
    let lookup = SignalClient::connect(&viewer_id, tcp.clone(), Some(server.peer_id))
        .await
        .unwrap();
    let reg_id = match signal
        .request(SignalRequest::Register(Register {
            node_path: None,
            addrs: vec![],
            agent: "t".into(),
            enroll: None,
        }))
        .await
        .unwrap()
    {
        SignalResponse::Registered(r) => r.internet_id,
        other => panic!("{other:?}"),
    };
    let found = match lookup
        .request(SignalRequest::Lookup(portico_core::wire::signal::Lookup {
            target: portico_core::wire::signal::LookupTarget::Id(reg_id),
            session: None,
        }))
        .await
        .unwrap()
    {
        SignalResponse::Found(f) => f,
        other => panic!("{other:?}"),
    };
    let relayed: Multiaddr = found
        .relay_addrs
        .iter()
        .find(|a| a.contains("/tcp/"))
        .expect("a relayed address")
        .parse()
        .unwrap();
    assert!(relayed
        .to_string()
        .ends_with(&format!("/p2p-circuit/p2p/{}", host_id.peer_id())));

    // The viewer dials through the relay and pushes 12 MB.
    let mut viewer = peer_swarm(&viewer_id);
    let mut control = viewer.behaviour().stream.new_control();
    viewer.dial(relayed.clone()).unwrap();
    let host_peer: PeerId = host_id.peer_id();
    let (conn_tx, conn_rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let mut conn_tx = Some(conn_tx);
        loop {
            if let SwarmEvent::ConnectionEstablished {
                peer_id, endpoint, ..
            } = viewer.select_next_some().await
            {
                if peer_id == host_peer {
                    if let Some(tx) = conn_tx.take() {
                        tx.send(endpoint.is_relayed()).unwrap();
                    }
                }
            }
        }
    });
    let relayed_conn = tokio::time::timeout(Duration::from_secs(10), conn_rx)
        .await
        .unwrap()
        .unwrap();
    assert!(relayed_conn, "connection should go through the relay");
    let mut stream = control.open_stream(host_peer, BULK).await.unwrap();
    let chunk = vec![0x5Au8; 64 * 1024];
    for _ in 0..TOTAL / chunk.len() {
        stream.write_all(&chunk).await.unwrap();
    }
    stream.close().await.unwrap();
    let mut count = [0u8; 8];
    tokio::time::timeout(Duration::from_secs(30), stream.read_exact(&mut count))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        u64::from_be_bytes(count),
        TOTAL as u64,
        "the circuit was cut before 12 MB"
    );
    // New circuits from one address are limited per minute, whatever the PeerIds: two more
    // get through, the next is refused.
    let mut opened = Vec::new();
    for _ in 0..3 {
        opened.push(dial_relayed(&Identity::generate(), relayed.clone(), host_peer).await);
    }
    assert_eq!(opened, [true, true, false]);
    server.shutdown().await;
}

/// Dials `addr` (a relayed address of `host`) from a fresh swarm; whether a connection to
/// the host came up through the relay (it closes again at once).
async fn dial_relayed(id: &Identity, addr: Multiaddr, host: PeerId) -> bool {
    hold_relayed(id, addr, host)
        .await
        .map(|held| held.abort())
        .is_some()
}

/// Dials `addr` (a relayed address of `host`) and keeps the connection open in a task of
/// its own (abort it to close); `None` when no connection came up.
async fn hold_relayed(
    id: &Identity,
    addr: Multiaddr,
    host: PeerId,
) -> Option<tokio::task::JoinHandle<()>> {
    let mut swarm = peer_swarm(id);
    swarm.dial(addr).unwrap();
    let up = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match swarm.select_next_some().await {
                SwarmEvent::ConnectionEstablished { peer_id, .. } if peer_id == host => {
                    return true
                }
                SwarmEvent::OutgoingConnectionError {
                    peer_id: Some(p), ..
                } if p == host => return false,
                _ => {}
            }
        }
    })
    .await
    .unwrap_or(false);
    up.then(|| {
        tokio::spawn(async move {
            loop {
                swarm.select_next_some().await;
            }
        })
    })
}

/// The finding: the relay counted circuits per PeerId and per minute only, so one machine
/// with fresh PeerIds could hold every circuit the relay allows. Now at most
/// `max_circuits_per_ip` stay open from one address.
#[tokio::test]
async fn one_address_holds_only_its_share_of_circuits() {
    let dir = tempfile::tempdir().unwrap();
    let (server, tcp, token) = start_relay(dir.path(), |c| c.relay.max_circuits_per_ip = 2).await;
    let host_id = Identity::generate();
    let _signal = enrol(&server, &tcp, &host_id, token).await;
    let mut host = peer_swarm(&host_id);
    assert!(reserve(&mut host, tcp.clone().with(Protocol::P2pCircuit)).await);
    tokio::spawn(async move {
        loop {
            host.select_next_some().await;
        }
    });
    let relayed = tcp
        .with(Protocol::P2pCircuit)
        .with(Protocol::P2p(host_id.peer_id()));
    let host_peer = host_id.peer_id();

    let first = hold_relayed(&Identity::generate(), relayed.clone(), host_peer).await;
    let second = hold_relayed(&Identity::generate(), relayed.clone(), host_peer).await;
    assert!(first.is_some() && second.is_some());
    assert!(
        hold_relayed(&Identity::generate(), relayed.clone(), host_peer)
            .await
            .is_none(),
        "a third circuit from the same address while two are open"
    );
    // One closes: its slot comes back once the relay saw it go.
    first.unwrap().abort();
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        if hold_relayed(&Identity::generate(), relayed.clone(), host_peer)
            .await
            .is_some()
        {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the closed circuit's slot never came back"
        );
    }
    server.shutdown().await;
}
