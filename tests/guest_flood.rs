//! 200 guest requests from one address (one stranger, 200 handshakes) while a real guest
//! from another address still reaches the owner and gets in: one address holds at most 4
//! places in the owner's queue. The host listens on IPv4 and IPv6 loopback, so the stranger
//! (from ::1) and the guest (from 127.0.0.1) have different addresses on one machine.
#![allow(
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

#[path = "support/procs.rs"]
mod procs;
#[path = "support/x11.rs"]
mod x11;

use std::time::Duration;

use futures::{AsyncReadExt, AsyncWriteExt, StreamExt};
use libp2p::multiaddr::Protocol;
use libp2p::Multiaddr;
use portico_core::identity::Identity;
use portico_core::noise::Initiator;
use portico_core::policy::{AccessKind, RequestedMode};
use portico_core::wire::handshake::AccessRequest;
use procs::*;
use x11::Xvfb;

/// Guest requests the stranger makes.
const REQUESTS: usize = 200;

/// One stranger dialling `addr` completes `REQUESTS` guest handshakes over one connection and keeps every stream open.
/// Returns the runtime (dropping it ends the stranger) and the streams.
fn stranger(addr: &str) -> (tokio::runtime::Runtime, Vec<libp2p::Stream>) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let id = Identity::generate();
    let ma: Multiaddr = addr.parse().unwrap();
    let peer = ma
        .iter()
        .find_map(|p| match p {
            Protocol::P2p(p) => Some(p),
            _ => None,
        })
        .unwrap();
    let streams = rt.block_on(async {
        let mut swarm = portico_actors::network::build_swarm(
            &id,
            portico_actors::network::PeerOptions::viewer(),
        )
        .unwrap();
        let mut control = swarm.behaviour().stream.new_control();
        swarm.dial(ma).unwrap();
        tokio::spawn(async move {
            loop {
                swarm.select_next_some().await;
            }
        });
        let mut streams = Vec::new();
        for i in 0..REQUESTS {
            let mut s = tokio::time::timeout(Duration::from_secs(10), async {
                loop {
                    match control
                        .open_stream(peer, portico_actors::network::SESSION)
                        .await
                    {
                        Ok(s) => break s,
                        Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                    }
                }
            })
            .await
            .unwrap_or_else(|_| panic!("no stream {i}"));
            let req = AccessRequest {
                kind: AccessKind::Guest,
                display_name: format!("flood-{i}"),
                message: "let me in".into(),
                tickets: vec![],
                mode: RequestedMode::Interactive,
                agent: "test".into(),
            };
            let (ini, m1) = Initiator::start(&id, peer, req).unwrap();
            s.write_all(&m1).await.unwrap();
            let mut prefix = [0u8; 4];
            s.read_exact(&mut prefix).await.unwrap();
            let mut m2 = vec![0u8; u32::from_be_bytes(prefix) as usize];
            s.read_exact(&mut m2).await.unwrap();
            let (m3, _t, _) = ini.finish(&m2).unwrap();
            s.write_all(&m3).await.unwrap();
            s.flush().await.unwrap();
            streams.push(s);
        }
        streams
    });
    (rt, streams)
}

#[test]
fn one_address_cannot_fill_the_owners_queue() {
    let x = Xvfb::start();
    x.draw(&x11::desktop(4));
    let dir = tempfile::tempdir().unwrap();
    let hdir = dir.path().join("host");
    let mut host = Host::start(&x, &hdir, "", &["--allow-guests", "--listen", "[::1]:0"]);
    let addr = format!(
        "/ip4/127.0.0.1/tcp/{}",
        host.wait_line("Listening:   /ip4/127.0.0.1/tcp/")
    );
    let v6 = format!(
        "/ip6/::1/tcp/{}",
        host.wait_line("Listening:   /ip6/::1/tcp/")
    );

    let (rt, streams) = stranger(&v6);
    assert_eq!(streams.len(), REQUESTS);
    // The stranger's requests that reached the owner: its share, from its own address.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let flood = loop {
        let out = text(&run_at(&hdir, &["requests"]));
        let lines: Vec<String> = out
            .lines()
            .filter(|l| l.contains("flood-"))
            .map(str::to_string)
            .collect();
        if lines.len() >= 4 || std::time::Instant::now() > deadline {
            break lines;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(flood.len(), 4, "{flood:#?}");
    assert!(flood.iter().all(|l| l.contains("from ::1")), "{flood:#?}");

    // A real guest from another address is still heard and let in.
    let guest = spawn_at(
        &dir.path().join("guest"),
        &[
            "connect",
            &addr,
            "--as",
            "guest",
            "--name",
            "Real",
            "--headless",
            "--frames",
            "1",
        ],
    );
    let id = request_id(&hdir, "guest Real");
    assert!(run_at(&hdir, &["accept", &id.to_string()]).status.success());
    let out = wait_exit(guest, Duration::from_secs(30));
    assert!(out.status.success(), "{}", text(&out));
    drop(streams);
    drop(rt);
}
