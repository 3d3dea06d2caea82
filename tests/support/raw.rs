//! Test support: a viewer's raw `/portico/session/1` streams, below the viewer library (to
//! play a stranger, a hostile viewer, or a viewer that resumes a session by hand).
#![allow(dead_code)]

use std::time::Duration;

use futures::{AsyncReadExt, AsyncWriteExt, StreamExt};
use libp2p::multiaddr::Protocol;
use libp2p::{Multiaddr, PeerId};
use portico_core::identity::Identity;
use portico_core::noise::{Initiator, Transport};
use portico_core::policy::{AccessKind, RequestedMode};
use portico_core::wire::handshake::AccessRequest;

pub type Read = futures::io::ReadHalf<libp2p::Stream>;
pub type Write = futures::io::WriteHalf<libp2p::Stream>;

/// A viewer swarm for `id` dialling `addr` (a multiaddr with `/p2p/`; through a relay, the
/// last one names the host), driven on the current runtime: the control that opens session
/// streams, and the host's PeerId.
pub async fn control(id: &Identity, addr: &str) -> (libp2p_stream::Control, PeerId) {
    let ma: Multiaddr = addr.parse().unwrap();
    let peer = ma
        .iter()
        .filter_map(|p| match p {
            Protocol::P2p(p) => Some(p),
            _ => None,
        })
        .last()
        .unwrap();
    let mut swarm =
        portico_actors::network::build_swarm(id, portico_actors::network::PeerOptions::viewer())
            .unwrap();
    let control = swarm.behaviour().stream.new_control();
    swarm.dial(ma).unwrap();
    tokio::spawn(async move {
        loop {
            swarm.select_next_some().await;
        }
    });
    (control, peer)
}

/// A new session stream to `peer` (retried until the connection is up, 10 s at most).
pub async fn open(control: &mut libp2p_stream::Control, peer: PeerId) -> (Read, Write) {
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match control
                .open_stream(peer, portico_actors::network::SESSION)
                .await
            {
                Ok(s) => return s.split(),
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    })
    .await
    .expect("no session stream within 10 s")
}

/// An access request of `kind` named `name`.
pub fn request(kind: AccessKind, name: &str) -> AccessRequest {
    AccessRequest {
        kind,
        display_name: name.into(),
        message: "let me in".into(),
        tickets: vec![],
        mode: RequestedMode::Interactive,
        agent: "test".into(),
    }
}

/// The Noise handshake as `id` asking `req`: the transport after it.
pub async fn handshake(
    (r, w): &mut (Read, Write),
    id: &Identity,
    peer: PeerId,
    req: AccessRequest,
) -> Transport {
    let (ini, m1) = Initiator::start(id, peer, req).unwrap();
    w.write_all(&m1).await.unwrap();
    let m2 = portico_signal_client::session_io::read_handshake(r)
        .await
        .unwrap();
    let (m3, transport, _) = ini.finish(&m2).unwrap();
    w.write_all(&m3).await.unwrap();
    w.flush().await.unwrap();
    transport
}

/// The host's answer to the access request (after any `Waiting`), 20 s at most.
pub async fn answer(
    (r, _): &mut (Read, Write),
    transport: &mut Transport,
) -> portico_core::wire::session::SessionMessage {
    use portico_core::wire::session::SessionMessage;
    tokio::time::timeout(Duration::from_secs(20), async {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            while let Some(m) = transport.recv().unwrap() {
                if !matches!(m, SessionMessage::Waiting(_)) {
                    return m;
                }
            }
            let n = r.read(&mut buf).await.unwrap();
            assert!(n > 0, "the host closed the stream without an answer");
            transport.push(&buf[..n]);
        }
    })
    .await
    .expect("no answer within 20 s")
}
