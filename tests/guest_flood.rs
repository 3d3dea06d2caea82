//! 200 guest requests from one address (one stranger, 200 handshakes) while a real guest
//! from another address still reaches the owner and gets in: one address holds at most 4
//! places in the owner's queue. The host listens on IPv4 and IPv6 loopback, so the stranger
//! (from ::1) and the guest (from 127.0.0.1) have different addresses on one machine.
//! Through the relay, where a viewer's "address" is only its PeerId (free to make), fourteen
//! strangers share one small pool (those hole punching moved off the relay count under
//! their address).
#![allow(
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

#[path = "support/procs.rs"]
mod procs;
#[path = "support/raw.rs"]
mod raw;
#[path = "support/x11.rs"]
mod x11;

use std::time::Duration;

use portico_core::identity::Identity;
use portico_core::policy::AccessKind;
use procs::*;
use x11::Xvfb;

/// Guest requests the stranger makes.
const REQUESTS: usize = 200;

/// One stranger dialling `addr` completes `REQUESTS` guest handshakes over one connection and keeps every stream open.
/// Returns the runtime (dropping it ends the stranger) and the streams.
fn stranger(addr: &str) -> (tokio::runtime::Runtime, Vec<(raw::Read, raw::Write)>) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let id = Identity::generate();
    let streams = rt.block_on(async {
        let (mut control, peer) = raw::control(&id, addr).await;
        let mut streams = Vec::new();
        for i in 0..REQUESTS {
            let mut s = raw::open(&mut control, peer).await;
            let req = raw::request(AccessKind::Guest, &format!("flood-{i}"));
            raw::handshake(&mut s, &id, peer, req).await;
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

#[test]
fn relayed_strangers_share_one_pool() {
    let x = Xvfb::start();
    x.draw(&x11::desktop(5));
    let dir = tempfile::tempdir().unwrap();
    let sdir = dir.path().join("server");
    let signal = start_server(&sdir);
    admin(&sdir, &["settings", "set", "guest-sharing", "on"], None);
    admin(&sdir, &["node", "mkdir", "/Lab"], None);
    admin(
        &sdir,
        &["node", "set", "/Lab", "--allow-guests", "on"],
        None,
    );
    let token = enroll_token(&sdir, "/Lab");
    let hdir = dir.path().join("host");
    let server = signal.addr();
    let args = [
        "--server",
        &server,
        "--name",
        "/Lab/pc",
        "--enroll",
        &token,
        "--allow-guests",
    ];
    let mut host = Host::start(&x, &hdir, "", &args);
    let me = host.wait_line("PeerId:");
    host.wait_line("Relay:");
    let relayed = format!(
        "/ip4/127.0.0.1/tcp/{}/p2p/{}/p2p-circuit/p2p/{me}",
        signal.port, signal.peer
    );

    // Fourteen strangers (the relay holds 16 circuits per address), each its own PeerId, each one guest request through the relay.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let streams = rt.block_on(async {
        let mut streams = Vec::new();
        for i in 0..14 {
            let id = Identity::generate();
            let (mut control, peer) = raw::control(&id, &relayed).await;
            let mut s = raw::open(&mut control, peer).await;
            let req = raw::request(AccessKind::Guest, &format!("relayed-{i}"));
            raw::handshake(&mut s, &id, peer, req).await;
            streams.push((control, s));
        }
        streams
    });
    // Every handshake is done, so every request was decided: those still waiting are the
    // ones the owner sees. On loopback hole punching may move a stranger off the relay
    // before its request (then its address, 127.0.0.1, is what counts).
    let out = text(&run_at(&hdir, &["requests"]));
    let lines: Vec<&str> = out.lines().filter(|l| l.contains("relayed-")).collect();
    let via_relay = lines.iter().filter(|l| l.contains("via relay")).count();
    let direct = lines.len() - via_relay;
    assert!(
        via_relay <= portico_core::table::MAX_PENDING_RELAYED
            && direct <= portico_core::table::MAX_PENDING_PER_IP,
        "{lines:#?}"
    );

    drop(streams);
    drop(rt);
}
