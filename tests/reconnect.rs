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
