//! Revocation that cannot be lost: a host that was away from its server while an admin
//! disabled a user learns of it when it registers again (the server's event number moved),
//! and ends that user's live session — no event was ever pushed to it.
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

use procs::*;
use x11::Xvfb;

#[test]
fn a_user_disabled_while_the_host_was_away_loses_the_session_when_it_reconnects() {
    let x = Xvfb::start();
    x.draw(&x11::desktop(3));
    let dir = tempfile::tempdir().unwrap();
    let sdir = dir.path().join("server");
    let signal = start_server(&sdir);
    let (server, port) = (signal.addr(), signal.port);
    add_user(&sdir, "alice", false);
    admin(&sdir, &["group", "add", "Sales"], None);
    admin(&sdir, &["group", "add-member", "Sales", "alice"], None);
    let token = enroll_token(&sdir, "/Sales");
    let acl =
        "[[acl]]\nprincipal = \"group:Sales\"\npermissions = [\"view\"]\napproval = \"never\"\n";
    let mut host = Host::start(
        &x,
        &dir.path().join("host"),
        acl,
        &["--server", &server, "--name", "pc-1", "--enroll", &token],
    );
    host.wait_line("Internet-ID:");
    let viewer = dir.path().join("viewer");
    login(&viewer, &server, "alice", "alice-pw");
    let v = spawn_at(
        &viewer,
        &["connect", "/Sales/pc-1", "--headless", "--duration", "60"],
    );
    std::thread::sleep(Duration::from_secs(3));

    // The server goes away; meanwhile the admin disables alice in the store.
    drop(signal);
    admin(&sdir, &["user", "disable", "alice"], None);
    // The session goes on without the server...
    std::thread::sleep(Duration::from_secs(1));
    // ...until the server is back and the host has registered again (it redials every 5 s).
    let _back = Server::start_at(&sdir, &format!("127.0.0.1:{port}"));
    let out = wait_exit(v, Duration::from_secs(30));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("connected"), "{err}");
    assert!(err.contains("disabled"), "{err}");
}

#[test]
fn sessions_outlive_the_server_and_the_host_comes_back_under_its_id() {
    let x = Xvfb::start();
    x.draw(&x11::desktop(4));
    let dir = tempfile::tempdir().unwrap();
    let sdir = dir.path().join("server");
    let signal = start_server(&sdir);
    let (server, port) = (signal.addr(), signal.port);
    let token = enroll_token(&sdir, "/Lab");
    let viewer = dir.path().join("viewer");
    let mut host = Host::start(
        &x,
        &dir.path().join("host"),
        &acl(&peer_of(&viewer), "view"),
        &["--server", &server, "--name", "pc-2", "--enroll", &token],
    );
    let id_line = host.wait_line("Internet-ID:");
    let id: String = id_line.split(" (").next().unwrap().to_string();
    host.wait_line("Relay:");
    // Something changes on the screen ten times a second.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (s2, display) = (stop.clone(), x.display.clone());
    let animator = std::thread::spawn(move || {
        let painter = x11::Xvfb::attach(&display).painter();
        for t in 0u32.. {
            if s2.load(std::sync::atomic::Ordering::Relaxed) {
                break;
            }
            painter.fill(
                (t * 7 % 900) as i16,
                200,
                64,
                64,
                t.wrapping_mul(0x0001_0307),
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    });
    let st = dir.path().join("long.json");
    let long = spawn_at(
        &viewer,
        &[
            "connect",
            &id,
            "--server",
            &server,
            "--headless",
            "--duration",
            "16",
            "--stats",
            st.to_str().unwrap(),
        ],
    );
    std::thread::sleep(Duration::from_secs(2));

    // The server goes away for longer than several retries.
    drop(signal);
    let down = std::time::Instant::now();
    // A lookup meanwhile gets a clear error, not a hang.
    let out = connect(&viewer, &id, &["--server", &server, "--frames", "1"]);
    assert!(!out.status.success());
    assert!(
        down.elapsed() < Duration::from_secs(20),
        "the lookup hung for {:?}",
        down.elapsed()
    );
    let err = text(&out);
    assert!(err.contains("server"), "{err}");
    std::thread::sleep(Duration::from_secs(12).saturating_sub(down.elapsed()));

    // Back: the host is found under its Internet-ID, with a relay reservation again.
    let _back = Server::start_at(&sdir, &format!("127.0.0.1:{port}"));
    let back = std::time::Instant::now();
    loop {
        let out = connect(
            &viewer,
            &id,
            &["--server", &server, "--relay-only", "--frames", "1"],
        );
        if out.status.success() {
            break;
        }
        assert!(
            back.elapsed() < Duration::from_secs(10),
            "the host was not back under {id} 10 s after the server restarted: {}",
            text(&out)
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    eprintln!(
        "host back under its Internet-ID {:?} after the server restarted",
        back.elapsed()
    );

    // The session that began before the outage streamed through it.
    let out = wait_exit(long, Duration::from_secs(30));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    animator.join().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let s = stats(&st);
    assert!(s.num_field("seconds") > 15.0, "{}", text(&out));
    assert!(
        s.num_field("frames") >= 60.0,
        "only {} frames in 16 s",
        s.num_field("frames")
    );
}
