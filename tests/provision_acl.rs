//! Provisioning bundles and `portico acl` against a real server and host: a host deployed
//! from a bundle admits the bundle's group by single sign-on; ACL changes apply to the
//! running host (names checked at the server), and removing a grant ends its sessions.
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

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use procs::*;
use x11::Xvfb;

#[test]
fn bundle_provisions_a_host_and_acl_changes_apply_live() {
    let x = Xvfb::start();
    x.draw(&x11::desktop(7));
    let dir = tempfile::tempdir().unwrap();
    let sdir = dir.path().join("server");
    let signal = start_server(&sdir);
    let server = signal.addr();
    for (u, g) in [("alice", Some("Marketing")), ("bob", None)] {
        add_user(&sdir, u, false);
        if let Some(g) = g {
            admin(&sdir, &["group", "add", g], None);
            admin(&sdir, &["group", "add-member", g, u], None);
        }
    }
    let bundle_path = dir.path().join("marketing.portico");
    admin(
        &sdir,
        &[
            "bundle",
            "--node",
            "/Marketing",
            "--grant",
            "group:Marketing=view,control",
            "--approval",
            "never",
            "--server",
            &server,
            "--output",
            bundle_path.to_str().unwrap(),
        ],
        None,
    );

    let fingerprint = admin(&sdir, &["id"], None)
        .lines()
        .find_map(|l| l.strip_prefix("Fingerprint:"))
        .unwrap()
        .trim()
        .to_string();
    // A bundle proves its origin only against a key the host was told to trust: without
    // one, or with another, the host refuses it and says what to check.
    let hdir = dir.path().join("host");
    let bundle_arg = bundle_path.to_str().unwrap();
    let none = run_at(
        &hdir,
        &["host", "--provision", bundle_arg, "--console", "off"],
    );
    assert!(!none.status.success());
    assert!(text(&none).contains("--trust-server"), "{}", text(&none));
    let wrong = run_at(
        &hdir,
        &[
            "host",
            "--provision",
            bundle_arg,
            "--trust-server",
            "0000-0000-0000-0000-0000",
            "--console",
            "off",
        ],
    );
    assert!(!wrong.status.success());
    assert!(
        text(&wrong).contains(&format!("signed by server key {fingerprint}")),
        "{}",
        text(&wrong)
    );
    let mut host = Host::start(
        &x,
        &hdir,
        "",
        &["--provision", bundle_arg, "--trust-server", &fingerprint],
    );
    let provisioned = host.wait_line("Provisioned from");
    assert!(
        provisioned.contains("group:Marketing=view,control"),
        "{provisioned}"
    );
    let id_line = host.wait_line("Internet-ID:");
    assert!(id_line.contains("/Marketing/"), "{id_line}");
    let id = id_line.split(" (").next().unwrap().to_string();
    assert!(text(&run_at(&hdir, &["acl", "list"]))
        .contains("group:Marketing\tview,control\tapproval=never"));
    assert!(text(&run_at(&hdir, &["id"])).contains(&format!("Internet-ID: {id}")));

    // alice (Marketing) gets in by single sign-on.
    let alice = dir.path().join("alice");
    login(&alice, &server, "alice", "alice-pw");
    let mut a = Command::new(env!("CARGO_BIN_EXE_portico"))
        .arg("--data")
        .arg(&alice)
        .args(["connect", &id, "--headless", "--duration", "60"])
        .stderr(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(2));
    if a.try_wait().unwrap().is_some() {
        panic!(
            "alice should be connected: {}",
            text(&a.wait_with_output().unwrap())
        );
    }

    // Unknown names are refused; known ones apply to the running host.
    let out = run_at(&hdir, &["acl", "add", "user:ghost", "view"]);
    assert!(
        !out.status.success() && text(&out).contains("does not exist"),
        "{}",
        text(&out)
    );
    let out = run_at(&hdir, &["acl", "add", "user:bob", "view"]);
    assert!(
        out.status.success() && text(&out).contains("applied to the running host"),
        "{}",
        text(&out)
    );
    let bob = dir.path().join("bob");
    login(&bob, &server, "bob", "bob-pw");
    let out = run_at(&bob, &["connect", &id, "--headless", "--frames", "1"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("permissions view"), "{}", text(&out));

    // Removing the group's grant ends alice's live session.
    let t = Instant::now();
    let out = run_at(&hdir, &["acl", "remove", "group:Marketing"]);
    assert!(out.status.success(), "{}", text(&out));
    let deadline = Instant::now() + Duration::from_secs(10);
    while a.try_wait().unwrap().is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = a.wait_with_output().unwrap();
    assert!(text(&out).contains("access revoked"), "{}", text(&out));
    eprintln!("ACL removal ended the session after {:?}", t.elapsed());
}
