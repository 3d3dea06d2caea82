//! The viewer's address book and servers, with real processes: a book round trip and
//! `connect NAME`; two servers with different pinned keys, a default server, and a server
//! that answers with another key at a pinned address refused.
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

fn succeeds(data: &std::path::Path, args: &[&str]) -> String {
    let out = run_at(data, args);
    assert!(out.status.success(), "{args:?}: {}", text(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn fails(data: &std::path::Path, args: &[&str]) -> String {
    let out = run_at(data, args);
    assert!(
        !out.status.success(),
        "{args:?} should fail: {}",
        text(&out)
    );
    text(&out)
}

#[test]
fn the_book_names_hosts_and_connect_name_uses_it() {
    let x = Xvfb::start();
    x.draw(&x11::desktop(7));
    let dir = tempfile::tempdir().unwrap();
    let (viewer, mut host) = trusted_host(&x, dir.path(), "view", &[]);
    let addr = host.tcp_addr();

    assert!(succeeds(&viewer, &["book", "list"]).contains("empty"));
    succeeds(&viewer, &["book", "add", "office", &addr, "--as", "peer"]);
    assert!(fails(&viewer, &["book", "add", "office", &addr]).contains("already"));
    assert!(fails(&viewer, &["book", "add", "/Sales/pc", &addr]).contains("cannot be a book name"));
    assert!(fails(&viewer, &["book", "add", "123 456", &addr]).contains("cannot be a book name"));
    assert!(fails(&viewer, &["book", "add", "x", &addr, "--as", "root"]).contains("--as"));
    let list = succeeds(&viewer, &["book", "list"]);
    assert!(list.contains(&format!("office\t{addr}\tas peer")), "{list}");
    // The file is TOML in the data dir, written through a temporary file.
    let file = std::fs::read_to_string(viewer.join("book.toml")).unwrap();
    assert!(file.contains("name = \"office\""), "{file}");
    assert!(!viewer.join("book.tmp").exists());

    let out = connect(&viewer, "office", &["--frames", "1"]);
    assert!(out.status.success(), "{}", text(&out));

    succeeds(&viewer, &["book", "remove", "office"]);
    assert!(fails(&viewer, &["book", "remove", "office"]).contains("no entry"));
    assert!(!connect(&viewer, "office", &["--frames", "1"])
        .status
        .success());
}

#[test]
fn two_servers_each_with_its_pinned_key_and_a_default() {
    let x = Xvfb::start();
    x.draw(&x11::desktop(8));
    let dir = tempfile::tempdir().unwrap();
    let (adir, bdir) = (dir.path().join("server-a"), dir.path().join("server-b"));
    let a = start_server(&adir);
    let b = start_server(&bdir);
    let viewer = dir.path().join("viewer");
    let token = enroll_token(&bdir, "/Lab");
    add_user(&adir, "alice", false);
    add_user(&bdir, "bob", false);
    let config = format!(
        "{}[[acl]]\nprincipal = \"user:bob\"\npermissions = [\"view\"]\napproval = \"never\"\n",
        acl(&peer_of(&viewer), "view")
    );
    let mut host = Host::start(
        &x,
        &dir.path().join("host"),
        &config,
        &["--server", &b.addr(), "--name", "pc-9", "--enroll", &token],
    );
    let id: String = host
        .wait_line("Internet-ID:")
        .split(" (")
        .next()
        .unwrap()
        .to_string();

    succeeds(&viewer, &["servers", "add", &a.addr()]);
    succeeds(&viewer, &["servers", "add", &b.addr()]);
    let list = succeeds(&viewer, &["servers", "list"]);
    let lines: Vec<&str> = list.lines().collect();
    assert_eq!(lines.len(), 2, "{list}");
    let fingerprint = |l: &str| l.split('\t').nth(1).unwrap().to_string();
    assert_ne!(fingerprint(lines[0]), fingerprint(lines[1]), "{list}");

    // Without --server and without signing in: the default server looks the ID up.
    assert!(
        fails(&viewer, &["connect", &id, "--headless", "--frames", "1"]).contains("default server")
    );
    assert!(fails(&viewer, &["servers", "default", "127.0.0.1:9"]).contains("not pinned"));
    succeeds(&viewer, &["servers", "default", &b.addr()]);
    assert!(succeeds(&viewer, &["servers", "list"]).contains("\tdefault"));
    let out = connect(&viewer, &id, &["--frames", "1"]);
    assert!(out.status.success(), "{}", text(&out));
    // A book entry can name the server for its ID.
    succeeds(&viewer, &["book", "add", "lab", &id, "--server", &b.addr()]);
    succeeds(&viewer, &["servers", "remove", &b.addr()]);
    succeeds(&viewer, &["servers", "add", &b.addr()]);
    let out = connect(&viewer, "lab", &["--frames", "1"]);
    assert!(out.status.success(), "{}", text(&out));

    // Signed in at both, each server with its own account.
    login(&viewer, &a.addr(), "alice", "alice-pw");
    login(&viewer, &b.addr(), "bob", "bob-pw");
    let who = succeeds(&viewer, &["whoami"]);
    assert!(who.contains("alice at") && who.contains("bob at"), "{who}");
    let list = succeeds(&viewer, &["servers", "list"]);
    assert!(
        list.contains("signed in as alice") && list.contains("signed in as bob"),
        "{list}"
    );
    // A node path at B uses bob's sign-in there (a server user: the ACL names bob).
    let out = connect(
        &viewer,
        "/Lab/pc-9",
        &["--server", &b.addr(), "--frames", "1"],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(fails(&viewer, &["logout"]).contains("several servers"));
    succeeds(&viewer, &["logout", "--server", &a.addr()]);
    let who = succeeds(&viewer, &["whoami"]);
    assert!(!who.contains("alice") && who.contains("bob at"), "{who}");

    // Another server (another key) at A's address: refused, however it is reached.
    let port = a.port;
    drop(a);
    let _impostor = Server::start_at(&dir.path().join("impostor"), &format!("127.0.0.1:{port}"));
    let addr_a = format!("127.0.0.1:{port}");
    let err = fails(&viewer, &["servers", "add", &addr_a]);
    assert!(
        err.contains("key changed") || err.contains("another server key"),
        "{err}"
    );
    let err = fails(
        &viewer,
        &[
            "connect",
            &id,
            "--server",
            &addr_a,
            "--headless",
            "--frames",
            "1",
        ],
    );
    assert!(
        err.contains("key changed") || err.contains("another server key"),
        "{err}"
    );
}
