//! Several hosts on one machine (one per display): the second finds the default direct and
//! console ports taken and takes free ones; each is reachable, with its own console.
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
use x11::Xvfb;

#[test]
fn two_hosts_on_one_machine_both_run_each_with_its_own_console() {
    let (xa, xb) = (Xvfb::start(), Xvfb::start());
    xa.draw(&x11::desktop(1));
    xb.draw(&x11::desktop(2));
    let dir = tempfile::tempdir().unwrap();
    let viewer = dir.path().join("viewer");
    let vpeer = peer_of(&viewer);
    let (da, db) = (dir.path().join("a"), dir.path().join("b"));
    let mut a = Host::start_on_default_ports(&xa, &da, &acl(&vpeer, "view"));
    let console_a = a.wait_line("Console:");
    let mut b = Host::start_on_default_ports(&xb, &db, &acl(&vpeer, "view"));
    let console_b = b.wait_line("Console:");
    assert_ne!(console_a, console_b);
    // Each console answers its own host's CLI (found through the data directory).
    for d in [&da, &db] {
        let out = run_at(d, &["sessions"]);
        assert!(out.status.success(), "{}", text(&out));
    }
    // Each host serves its own display.
    for (h, peer_dir) in [(&mut a, &da), (&mut b, &db)] {
        let addr = h.tcp_addr();
        let addr = addr.replace("/ip4/0.0.0.0/", "/ip4/127.0.0.1/");
        let out = connect(&viewer, &addr, &["--frames", "1"]);
        assert!(
            out.status.success(),
            "{}: {}",
            peer_dir.display(),
            text(&out)
        );
    }
}
