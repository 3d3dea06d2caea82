//! A real `portico host` at a real server without an enrollment token: it says it waits for
//! the admin, the admin sees it in `portico-signal host pending`, approves it, and the host
//! registers at its next attempt with no restart.
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
fn a_host_without_a_token_waits_for_the_admin_and_registers_once_approved() {
    let x = Xvfb::start();
    let dir = tempfile::tempdir().unwrap();
    let sdir = dir.path().join("server");
    let signal = start_server(&sdir);
    let hdir = dir.path().join("host");
    let peer = peer_of(&hdir);
    let mut host = Host::start(
        &x,
        &hdir,
        "",
        &["--server", &signal.addr(), "--name", "/Branch/pc-9"],
    );
    let waiting = host.wait_line("Server:");
    assert!(
        waiting.contains(&format!("portico-signal host approve {peer}")),
        "{waiting}"
    );
    let pending = admin(&sdir, &["host", "pending"], None);
    assert!(
        pending.contains(&peer) && pending.contains("/Branch/pc-9"),
        "{pending}"
    );
    admin(&sdir, &["host", "approve", &peer], None);
    let id = host.wait_line("Internet-ID:");
    assert!(id.contains("/Branch/pc-9"), "{id}");
    let nodes = admin(&sdir, &["node", "list", "/Branch"], None);
    assert!(nodes.contains("/Branch/pc-9"), "{nodes}");
}
