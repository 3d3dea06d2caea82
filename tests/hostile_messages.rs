//! A trusted viewer turned hostile sends 4 MiB session messages built to blow up a decoder
//! (deep nesting; millions of tiny items): the host answers by closing that stream, its
//! resident memory grows by less than 16 MiB, and the next viewer is served.
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

use futures::{AsyncReadExt, AsyncWriteExt};
use portico_core::identity::Identity;
use portico_core::policy::AccessKind;
use portico_core::wire::session::MAX_SESSION_LEN;
use procs::*;
use x11::Xvfb;

/// The host's peak resident memory so far (KiB).
fn peak_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .unwrap()
        .parse()
        .unwrap()
}

/// A session message envelope `[1, 5 (Input), body]` whose body is `body`, padded to
/// exactly [`MAX_SESSION_LEN`] bytes: the largest message the host accepts to decode.
fn hostile(body: impl Fn(usize) -> Vec<u8>) -> Vec<u8> {
    let head = [0x83, 0x01, 0x05];
    let mut m = head.to_vec();
    m.extend(body(MAX_SESSION_LEN - head.len()));
    assert_eq!(m.len(), MAX_SESSION_LEN);
    m
}

/// Completes the handshake as `id` and sends `message`; returns whether the host closed the
/// stream within 20 s (reading and dropping what the host sends meanwhile).
fn send_hostile(id: &Identity, addr: &str, message: Vec<u8>) -> bool {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let (mut control, peer) = raw::control(id, addr).await;
        let mut s = raw::open(&mut control, peer).await;
        let mut transport =
            raw::handshake(&mut s, id, peer, raw::request(AccessKind::Peer, "hostile")).await;
        let (mut rd, mut wr) = s;
        let sealed = transport.seal(&message).unwrap();
        // Drain the host's frames, so it is never blocked writing to us.
        let reader = tokio::spawn(async move {
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                match rd.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
            }
        });
        // The host may close while we still write: that is its answer too.
        if wr.write_all(&sealed).await.is_ok() {
            let _flushed = wr.flush().await;
        }
        tokio::time::timeout(Duration::from_secs(20), reader)
            .await
            .is_ok()
    })
}

#[test]
fn hostile_messages_cost_the_host_little_memory_and_only_their_own_stream() {
    let x = Xvfb::start();
    x.draw(&x11::desktop(5));
    let dir = tempfile::tempdir().unwrap();
    let viewer = dir.path().join("viewer");
    let (id, _) = Identity::load_or_create(&viewer).unwrap();
    let mut host = Host::start(
        &x,
        &dir.path().join("host"),
        &acl(&peer_of(&viewer), "view,control"),
        &[],
    );
    let addr = host.tcp_addr();
    let pid = host.child.id();
    // A first session, so what the host needs to serve anyone is already counted.
    ok(&connect(&viewer, &addr, &["--frames", "1"]));
    let before = peak_kib(pid);

    let nested = hostile(|n| vec![0x81; n]);
    assert!(send_hostile(&id, &addr, nested), "the host kept the stream");
    let after_nested = peak_kib(pid);
    // An array of four million `0`s (each item one byte on the wire).
    let items = hostile(|n| {
        let count = (n - 5) as u32;
        let mut b = vec![0x9a];
        b.extend_from_slice(&count.to_be_bytes());
        b.resize(n, 0x00);
        b
    });
    assert!(send_hostile(&id, &addr, items), "the host kept the stream");
    let after = peak_kib(pid);
    eprintln!(
        "host peak memory: {before} KiB before, {after_nested} KiB after the nested message, \
         {after} KiB after the many-item message"
    );
    assert!(
        after - before < 16 * 1024,
        "the host's peak memory grew by {} KiB",
        after - before
    );
    // The next viewer is served.
    ok(&connect(&viewer, &addr, &["--frames", "1"]));
}
