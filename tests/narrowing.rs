//! Narrowing a live session: a trusted key's ACL entry goes from control to view while the
//! viewer keeps sending input; within 1 s the host stops injecting it (the pointer on the real
//! X server stops moving) and the viewer is told. Real binaries, real Xvfb, real libp2p.
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

use std::time::{Duration, Instant};

use procs::*;
use x11::Xvfb;

#[test]
fn control_to_view_stops_input_within_a_second() {
    let x = Xvfb::start();
    x.draw(&x11::desktop(3));
    x.warp(5, 5);
    let dir = tempfile::tempdir().unwrap();
    let hdir = dir.path().join("host");
    let viewer = dir.path().join("viewer");
    let vpeer = peer_of(&viewer);
    let mut host = Host::start(&x, &hdir, "", &[]);
    let addr = host.tcp_addr();
    let principal = format!("peer:{vpeer}");
    let out = run_at(&hdir, &["acl", "add", &principal, "view,control"]);
    assert!(out.status.success(), "{}", text(&out));

    // The pointer keeps moving for as long as the host injects: a new spot every 50 ms.
    let lines: Vec<String> = (0..400)
        .map(|i| {
            let (px, py) = (100 + (i * 37) % 500, 100 + (i * 53) % 300);
            format!(r#"{{"delay_ms":50,"event":{{"pointer_move":{{"x":{px},"y":{py}}}}}}}"#)
        })
        .collect();
    let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
    let sc = script(dir.path(), &lines);
    let v = spawn_at(
        &viewer,
        &[
            "connect",
            &addr,
            "--headless",
            "--duration",
            "12",
            "--input-script",
            sc.to_str().unwrap(),
            "--force-input",
        ],
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while x.pointer() == (5, 5) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let before = x.pointer();
    std::thread::sleep(Duration::from_millis(300));
    assert_ne!(
        before,
        x.pointer(),
        "interactive input should move the pointer"
    );

    let out = run_at(&hdir, &["acl", "add", &principal, "view"]);
    assert!(out.status.success(), "{}", text(&out));
    std::thread::sleep(Duration::from_secs(1));
    let settled = x.pointer();
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        settled,
        x.pointer(),
        "input from a session narrowed to view still moved the pointer after 1 s"
    );

    let out = wait_exit(v, Duration::from_secs(20));
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(t.contains("the host changed this session to view"), "{t}");
}
