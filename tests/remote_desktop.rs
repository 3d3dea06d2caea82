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
#[path = "support/raw.rs"]
mod raw;
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

#[test]
fn a_stalled_viewer_does_not_stall_another_and_garbage_does_not_hurt_the_host() {
    use futures::{AsyncReadExt, AsyncWriteExt};
    use portico_core::identity::Identity;
    use portico_core::policy::AccessKind;

    let x = Xvfb::start();
    x.draw(&x11::desktop(0));
    let dir = tempfile::tempdir().unwrap();
    let viewer = dir.path().join("viewer");
    let vpeer = peer_of(&viewer);
    let (stalled_id, _) = Identity::load_or_create(&viewer).unwrap();
    let mut host = Host::start(
        &x,
        &dir.path().join("host"),
        &acl(&vpeer, "view,control"),
        &[],
    );
    let addr = host.tcp_addr();
    // Drives the raw viewers' swarms for the whole test.
    let rt = tokio::runtime::Runtime::new().unwrap();

    // Garbage: a 4 GiB length prefix, then random bytes, then a truncated handshake.
    for junk in [
        vec![0xff, 0xff, 0xff, 0xff, 1, 2, 3],
        b"GET / HTTP/1.1\r\n\r\n".to_vec(),
        vec![0, 0, 0, 40, 1, 2],
    ] {
        rt.block_on(async {
            let (mut control, peer) = raw::control(&Identity::generate(), &addr).await;
            let (mut r, mut w) = raw::open(&mut control, peer).await;
            w.write_all(&junk).await.unwrap();
            w.close().await.ok();
            let mut buf = [0u8; 16];
            let _ = tokio::time::timeout(Duration::from_secs(12), r.read(&mut buf)).await;
        });
    }

    // A viewer that completes the handshake, is accepted, and then never reads again.
    let stalled = rt.block_on(async {
        let (mut control, peer) = raw::control(&stalled_id, &addr).await;
        let mut halves = raw::open(&mut control, peer).await;
        let req = raw::request(AccessKind::Peer, "stalled");
        let transport = raw::handshake(&mut halves, &stalled_id, peer, req).await;
        (control, halves, transport)
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
