//! The remote-desktop path end to end: a real Xvfb, the real `portico host` and
//! `portico connect` binaries, real libp2p over loopback (and a real server for Internet-ID).
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

use procs::*;

use std::time::Duration;

use x11::Xvfb;

#[test]
fn known_picture_arrives_sharp_and_input_moves_the_pointer() {
    let x = Xvfb::start();
    x.draw(&x11::desktop(0));
    x.warp(5, 5);
    let dir = tempfile::tempdir().unwrap();
    let viewer = dir.path().join("viewer");
    let vpeer = peer_of(&viewer);
    let mut host = Host::start(
        &x,
        &dir.path().join("host"),
        &acl(&vpeer, "view,control"),
        &[],
    );
    let addr = host.tcp_addr();
    let snap = dir.path().join("snap.png");
    let st = dir.path().join("stats.json");
    let sc = script(
        dir.path(),
        &[
            r#"{"delay_ms":300,"event":{"pointer_move":{"x":640,"y":360}}}"#,
            r#"{"delay_ms":50,"event":{"button":{"button":"left","down":true}}}"#,
            r#"{"delay_ms":50,"event":{"button":{"button":"left","down":false}}}"#,
        ],
    );
    let out = ok(&connect(
        &viewer,
        &addr,
        &[
            "--duration",
            "2.5",
            "--snapshot",
            snap.to_str().unwrap(),
            "--no-cursor",
            "--stats",
            st.to_str().unwrap(),
            "--input-script",
            sc.to_str().unwrap(),
        ],
    ));
    assert!(out.contains("pinned the host's key"), "{out}");
    assert_eq!(
        x.pointer(),
        (640, 360),
        "the input script should have moved the pointer"
    );
    let psnr = psnr_png(&snap, &x.grab());
    assert!(
        psnr >= 45.0,
        "still-screen picture PSNR {psnr:.1} dB < 45 dB"
    );
    let s = stats(&st);
    assert_eq!(s.str_field("path"), "direct");
    assert!(s.num_field("frames") >= 1.0);
    assert!(
        s.num_field("lossless_updates") >= 1.0,
        "lossless updates expected once the screen is still"
    );
    // A second connection uses the pinned key silently.
    let out = ok(&connect(&viewer, &addr, &["--frames", "1"]));
    assert!(!out.contains("pinned"), "{out}");
}

#[test]
fn view_only_entry_drops_input_and_unknown_keys_are_refused() {
    let x = Xvfb::start();
    x.draw(&x11::desktop(1));
    x.warp(5, 5);
    let dir = tempfile::tempdir().unwrap();
    let viewer = dir.path().join("viewer");
    let vpeer = peer_of(&viewer);
    let mut host = Host::start(&x, &dir.path().join("host"), &acl(&vpeer, "view"), &[]);
    let addr = host.tcp_addr();
    let sc = script(
        dir.path(),
        &[
            r#"{"delay_ms":200,"event":{"pointer_move":{"x":640,"y":360}}}"#,
            r#"{"delay_ms":50,"event":{"button":{"button":"left","down":true}}}"#,
        ],
    );
    let st = dir.path().join("stats.json");
    let out = ok(&connect(
        &viewer,
        &addr,
        &[
            "--duration",
            "1.5",
            "--force-input",
            "--input-script",
            sc.to_str().unwrap(),
            "--stats",
            st.to_str().unwrap(),
        ],
    ));
    assert!(out.contains("view-only"), "{out}");
    assert_eq!(stats(&st).str_field("permissions"), "view");
    assert_eq!(x.pointer(), (5, 5), "a view-only session moved the pointer");

    // A viewer whose key is not in the ACL is refused with the reason.
    let stranger = dir.path().join("stranger");
    let out = connect(&stranger, &addr, &["--frames", "1"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no access entry"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn connect_by_internet_id_direct_and_through_the_relay() {
    let x = Xvfb::start();
    x.draw(&x11::desktop(2));
    let dir = tempfile::tempdir().unwrap();
    let signal = start_server(&dir.path().join("server"));
    let server = signal.addr();
    let viewer = dir.path().join("viewer");
    let vpeer = peer_of(&viewer);
    let token = enroll_token(&dir.path().join("server"), "/Lab");
    let mut host = Host::start(
        &x,
        &dir.path().join("host"),
        &acl(&vpeer, "view,control"),
        &[
            "--server",
            &server,
            "--name",
            "/Lab/pc-1",
            "--enroll",
            &token,
        ],
    );
    let id_line = host.wait_line("Internet-ID:");
    assert!(id_line.contains("/Lab/pc-1"), "{id_line}");
    let id: String = id_line.split(" (").next().unwrap().to_string();
    host.wait_line("Relay:");

    let st = dir.path().join("direct.json");
    let out = ok(&connect(
        &viewer,
        &id,
        &[
            "--server",
            &server,
            "--duration",
            "1.5",
            "--stats",
            st.to_str().unwrap(),
        ],
    ));
    assert!(out.contains("path direct"), "{out}");
    assert_eq!(stats(&st).str_field("path"), "direct");

    let st = dir.path().join("relayed.json");
    let snap = dir.path().join("relayed.png");
    let out = ok(&connect(
        &viewer,
        &id,
        &[
            "--server",
            &server,
            "--relay-only",
            "--duration",
            "2.5",
            "--stats",
            st.to_str().unwrap(),
            "--snapshot",
            snap.to_str().unwrap(),
            "--no-cursor",
        ],
    ));
    assert!(out.contains("path relayed"), "{out}");
    assert_eq!(stats(&st).str_field("path"), "relayed");
    assert!(psnr_png(&snap, &x.grab()) >= 45.0);

    // A typo in the ID is caught before anything is sent.
    let mut typo: Vec<char> = id.chars().collect();
    let last = typo.len() - 1;
    typo[last] = if typo[last] == '0' { '1' } else { '0' };
    let typo: String = typo.into_iter().collect();
    let out = connect(&viewer, &typo, &["--server", &server, "--frames", "1"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("typo"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Opens a raw `/portico/session/1` stream to `addr` (keep the runtime and swarm task alive).
fn raw_stream(
    identity: &portico_core::identity::Identity,
    addr: &str,
) -> (tokio::runtime::Runtime, libp2p::Stream, libp2p::PeerId) {
    use futures::StreamExt;
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (stream, peer) = rt.block_on(async {
        let mut swarm = portico_actors::network::build_swarm(
            identity,
            portico_actors::network::PeerOptions::viewer(),
        )
        .unwrap();
        let mut control = swarm.behaviour().stream.new_control();
        let ma: libp2p::Multiaddr = addr.parse().unwrap();
        let peer = ma
            .iter()
            .find_map(|p| {
                if let libp2p::multiaddr::Protocol::P2p(p) = p {
                    Some(p)
                } else {
                    None
                }
            })
            .unwrap();
        swarm.dial(ma).unwrap();
        tokio::spawn(async move {
            loop {
                swarm.select_next_some().await;
            }
        });
        let s = tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                match control
                    .open_stream(peer, portico_actors::network::SESSION)
                    .await
                {
                    Ok(s) => break s,
                    Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
        })
        .await
        .unwrap();
        (s, peer)
    });
    (rt, stream, peer)
}

#[test]
fn a_stalled_viewer_does_not_stall_another_and_garbage_does_not_hurt_the_host() {
    use futures::{AsyncReadExt, AsyncWriteExt};
    use portico_core::noise::Initiator;
    use portico_core::wire::handshake::AccessRequest;

    let x = Xvfb::start();
    x.draw(&x11::desktop(0));
    let dir = tempfile::tempdir().unwrap();
    let viewer = dir.path().join("viewer");
    let vpeer = peer_of(&viewer);
    let (stalled_id, _) = portico_core::identity::Identity::load_or_create(&viewer).unwrap();
    let mut host = Host::start(
        &x,
        &dir.path().join("host"),
        &acl(&vpeer, "view,control"),
        &[],
    );
    let addr = host.tcp_addr();

    // Garbage: a 4 GiB length prefix, then random bytes, then a truncated handshake.
    for junk in [
        vec![0xff, 0xff, 0xff, 0xff, 1, 2, 3],
        b"GET / HTTP/1.1\r\n\r\n".to_vec(),
        vec![0, 0, 0, 40, 1, 2],
    ] {
        let (rt, mut s, _) = raw_stream(&portico_core::identity::Identity::generate(), &addr);
        rt.block_on(async {
            s.write_all(&junk).await.unwrap();
            s.close().await.ok();
            let mut buf = [0u8; 16];
            let _ = tokio::time::timeout(Duration::from_secs(12), s.read(&mut buf)).await;
        });
    }

    // A viewer that completes the handshake, is accepted, and then never reads again.
    let (rt, mut stalled, peer) = raw_stream(&stalled_id, &addr);
    rt.block_on(async {
        let req = AccessRequest {
            kind: portico_core::policy::AccessKind::Peer,
            display_name: "stalled".into(),
            message: String::new(),
            tickets: vec![],
            mode: portico_core::policy::RequestedMode::Interactive,
            agent: "test".into(),
        };
        let (ini, m1) = Initiator::start(&stalled_id, peer, req).unwrap();
        stalled.write_all(&m1).await.unwrap();
        let mut prefix = [0u8; 4];
        stalled.read_exact(&mut prefix).await.unwrap();
        let mut m2 = vec![0u8; u32::from_be_bytes(prefix) as usize];
        stalled.read_exact(&mut m2).await.unwrap();
        let (m3, _t, _) = ini.finish(&m2).unwrap();
        stalled.write_all(&m3).await.unwrap();
        stalled.flush().await.unwrap();
    });

    // The screen keeps changing while the healthy viewer watches.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (s2, display) = (stop.clone(), x.display.clone());
    let animator = std::thread::spawn(move || {
        let x = x11::Xvfb::attach(&display);
        let mut t = 1;
        while !s2.load(std::sync::atomic::Ordering::Relaxed) {
            x.draw(&x11::desktop(t));
            t += 1;
            std::thread::sleep(Duration::from_millis(40));
        }
    });
    let st = dir.path().join("stats.json");
    let out = connect(
        &viewer,
        &addr,
        &["--duration", "3", "--stats", st.to_str().unwrap()],
    );
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    animator.join().unwrap();
    ok(&out);
    let frames = stats(&st).num_field("frames");
    assert!(
        frames >= 10.0,
        "the healthy viewer got only {frames} frames while another viewer stalled"
    );
    drop(stalled);
    drop(rt);
}
