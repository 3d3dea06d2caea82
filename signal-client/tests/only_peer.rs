//! A host serves `/portico/signal/1` to its server only: a stranger's signal request fails
//! at protocol negotiation (nothing decoded), the server's event arrives and is answered.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use futures::StreamExt;
use libp2p::request_response::{self, OutboundFailure};
use libp2p::swarm::SwarmEvent;
use libp2p::{Multiaddr, Swarm};
use portico_core::identity::Identity;
use portico_core::wire::signal::{Ack, Change, ServerEvent, SignalRequest, SignalResponse};
use portico_signal_client::peer::{build_swarm, PeerBehaviour, PeerBehaviourEvent, PeerOptions};

fn event() -> SignalRequest {
    SignalRequest::Event(ServerEvent {
        seq: 1,
        change: Change::User {
            user: "ann".into(),
            groups: vec![],
            disabled: true,
            force_server_security: false,
            changed_at: 0,
        },
    })
}

/// A swarm for `identity` that offers the signal protocol to `to`.
fn peer(identity: &Identity, to: libp2p::PeerId) -> Swarm<PeerBehaviour> {
    let options = PeerOptions {
        server: Some(to),
        ..PeerOptions::viewer()
    };
    build_swarm(identity, options).unwrap()
}

#[tokio::test]
async fn the_host_serves_signal_to_its_server_only() {
    let (host_id, server_id) = (Identity::generate(), Identity::generate());
    let mut host = build_swarm(
        &host_id,
        PeerOptions::host(false, Some(server_id.peer_id())),
    )
    .unwrap();
    // The test's server and stranger both offer signal to the host; what they get is the
    // host's choice.
    let mut server = peer(&server_id, host_id.peer_id());
    let mut stranger = peer(&Identity::generate(), host_id.peer_id());

    host.listen_on("/ip4/127.0.0.1/tcp/0".parse().unwrap())
        .unwrap();
    let addr: Multiaddr = loop {
        if let SwarmEvent::NewListenAddr { address, .. } = host.select_next_some().await {
            break address;
        }
    };
    let host_peer = *host.local_peer_id();
    server.add_peer_address(host_peer, addr.clone());
    stranger.add_peer_address(host_peer, addr);
    let stranger_req = stranger
        .behaviour_mut()
        .signal
        .send_request(&host_peer, event());
    let server_req = server
        .behaviour_mut()
        .signal
        .send_request(&host_peer, event());

    let mut stranger_refused = false;
    let mut server_answered = false;
    let mut host_heard = 0;
    let deadline = tokio::time::sleep(Duration::from_secs(20));
    tokio::pin!(deadline);
    while !(stranger_refused && server_answered) {
        tokio::select! {
            _ = &mut deadline => panic!(
                "timed out: stranger refused {stranger_refused}, server answered {server_answered}"
            ),
            ev = host.select_next_some() => {
                if let SwarmEvent::Behaviour(PeerBehaviourEvent::Signal(
                    request_response::Event::Message {
                        peer,
                        message: request_response::Message::Request { channel, .. },
                        ..
                    },
                )) = ev
                {
                    assert_eq!(peer, *server.local_peer_id(), "only the server's request arrives");
                    host_heard += 1;
                    host.behaviour_mut()
                        .signal
                        .send_response(channel, SignalResponse::Ack(Ack::default()))
                        .unwrap();
                }
            }
            ev = server.select_next_some() => {
                if let SwarmEvent::Behaviour(PeerBehaviourEvent::Signal(
                    request_response::Event::Message {
                        message: request_response::Message::Response { request_id, response },
                        ..
                    },
                )) = ev
                {
                    assert_eq!(request_id, server_req);
                    assert!(matches!(response, SignalResponse::Ack(_)));
                    server_answered = true;
                }
            }
            ev = stranger.select_next_some() => match ev {
                SwarmEvent::Behaviour(PeerBehaviourEvent::Signal(
                    request_response::Event::OutboundFailure { request_id, error, .. },
                )) => {
                    assert_eq!(request_id, stranger_req);
                    assert!(
                        matches!(error, OutboundFailure::UnsupportedProtocols),
                        "refused at negotiation, not after decoding: {error:?}"
                    );
                    stranger_refused = true;
                }
                SwarmEvent::Behaviour(PeerBehaviourEvent::Signal(
                    request_response::Event::Message { .. },
                )) => panic!("the stranger got an answer"),
                _ => {}
            },
        }
    }
    assert_eq!(host_heard, 1);
}
