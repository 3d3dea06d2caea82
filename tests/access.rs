//! The ways in through a real server: visitors (the owner sees the account, in Chromium),
//! server users (Custom Server Security: no prompt, single sign-on), central revoke, and
//! forced server security. Real binaries, real Xvfb, real libp2p on loopback.
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
fn visitor_is_named_in_the_console_and_refused_when_a_switch_is_off() {
    let x = Xvfb::start();
    x.draw(&x11::desktop(5));
    let dir = tempfile::tempdir().unwrap();
    let sdir = dir.path().join("server");
    let signal = start_server(&sdir);
    let server = signal.addr();
    add_user(&sdir, "alice", false);
    admin(&sdir, &["settings", "set", "visitor-sharing", "on"], None);
    admin(&sdir, &["node", "mkdir", "/Lab"], None);
    admin(
        &sdir,
        &["node", "set", "/Lab", "--allow-visitors", "on"],
        None,
    );
    let token = enroll_token(&sdir, "/Lab");
    let mut host = Host::start(
        &x,
        &dir.path().join("host"),
        "",
        &[
            "--server",
            &server,
            "--name",
            "/Lab/pc",
            "--allow-visitors",
            "--enroll",
            &token,
        ],
    );
    let url = host.wait_line("Console:");
    let id = host
        .wait_line("Internet-ID:")
        .split(" (")
        .next()
        .unwrap()
        .to_string();
    let viewer = dir.path().join("viewer");
    login(&viewer, &server, "alice", "alice-pw");
    // A visitor connection that must be refused with `reason`.
    let visitor_refused = |reason: &str| {
        let out = wait_exit(
            spawn_at(
                &viewer,
                &[
                    "connect",
                    &id,
                    "--as",
                    "visitor",
                    "--headless",
                    "--frames",
                    "1",
                ],
            ),
            Duration::from_secs(20),
        );
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(reason),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };

    let v = spawn_at(
        &viewer,
        &[
            "connect",
            &id,
            "--as",
            "visitor",
            "--message",
            "it's Alice",
            "--headless",
            "--duration",
            "2",
        ],
    );
    let row = drive(&url, &["accept", "visitor alice"]);
    assert!(row.contains("visitor alice (signed in at hq)"), "{row}");
    let out = wait_exit(v, Duration::from_secs(20));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Node flag off: the server refuses the ticket.
    admin(
        &sdir,
        &["node", "set", "/Lab", "--allow-visitors", "off"],
        None,
    );
    visitor_refused("visitor access is turned off for that host's node");
    admin(
        &sdir,
        &["node", "set", "/Lab", "--allow-visitors", "on"],
        None,
    );
    // Global switch off.
    admin(&sdir, &["settings", "set", "visitor-sharing", "off"], None);
    visitor_refused("visitor access is turned off on this server");
    admin(&sdir, &["settings", "set", "visitor-sharing", "on"], None);
    // Host switch off, through the console's API.
    let c: portico_actors::console::ConsoleFile = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("host/console.json")).unwrap(),
    )
    .unwrap();
    let r = ureq::post(&format!("{}/api/sharing", c.url))
        .header("Authorization", &format!("Bearer {}", c.token))
        .send_json(serde_json::json!({"allow_visitors": false}))
        .unwrap();
    assert_eq!(r.status(), 204);
    visitor_refused("visitor access is turned off (Host)");
    // The console refuses a request without the token.
    let r = ureq::get(&format!("{}/api/state", c.url))
        .config()
        .http_status_as_error(false)
        .build()
        .call()
        .unwrap();
    assert_eq!(r.status(), 401);
}

#[test]
fn server_user_connects_without_prompt_and_is_revoked_centrally_and_forced_users_cannot_be_guests()
{
    let x = Xvfb::start();
    x.draw(&x11::desktop(6));
    let dir = tempfile::tempdir().unwrap();
    let sdir = dir.path().join("server");
    let signal = start_server(&sdir);
    let server = signal.addr();
    add_user(&sdir, "alice", false);
    add_user(&sdir, "fred", true);
    admin(&sdir, &["group", "add", "Sales"], None);
    admin(&sdir, &["group", "add-member", "Sales", "alice"], None);
    let acl = "[[acl]]\nprincipal = \"group:Sales\"\npermissions = [\"view\", \"control\"]\napproval = \"never\"\n";
    let token = enroll_token(&sdir, "/Sales");
    let mut host = Host::start(
        &x,
        &dir.path().join("host"),
        acl,
        &[
            "--server",
            &server,
            "--name",
            "/Sales/pc-7",
            "--allow-guests",
            "--enroll",
            &token,
        ],
    );
    let id = host
        .wait_line("Internet-ID:")
        .split(" (")
        .next()
        .unwrap()
        .to_string();
    let viewer = dir.path().join("viewer");
    login(&viewer, &server, "alice", "alice-pw");

    // Single sign-on: by node path, no password, no owner prompt.
    let v = spawn_at(
        &viewer,
        &["connect", "/Sales/pc-7", "--headless", "--duration", "60"],
    );
    std::thread::sleep(Duration::from_secs(3));
    let t = Instant::now();
    admin(&sdir, &["group", "remove-member", "Sales", "alice"], None);
    let out = wait_exit(v, Duration::from_secs(10));
    let revoked_after = t.elapsed();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !err.contains("waiting for the owner"),
        "a group grant with approval = never must not prompt: {err}"
    );
    assert!(
        err.contains("connected") && err.contains("view,control"),
        "{err}"
    );
    assert!(err.contains("access revoked"), "{err}");
    eprintln!("central revoke ended the session {revoked_after:?} after the admin command");
    assert!(
        revoked_after < Duration::from_secs(2),
        "revocation took {revoked_after:?}"
    );

    // Not in the group any more: refused at once.
    let out = wait_exit(
        spawn_at(
            &viewer,
            &[
                "connect",
                &id,
                "--server",
                &server,
                "--headless",
                "--frames",
                "1",
            ],
        ),
        Duration::from_secs(20),
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no access entry"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // A forced user cannot come in as a guest (the viewer refuses; the host would too).
    let fv = dir.path().join("fred");
    login(&fv, &server, "fred", "fred-pw");
    let out = wait_exit(
        spawn_at(
            &fv,
            &[
                "connect",
                &id,
                "--server",
                &server,
                "--as",
                "guest",
                "--headless",
                "--frames",
                "1",
            ],
        ),
        Duration::from_secs(20),
    );
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("may only connect as a server user"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A guest by direct address: the host's refusal reason (or "" when it asked the owner).
fn guest_refusal(dir: &std::path::Path, addr: &str) -> String {
    let out = wait_exit(
        spawn_at(
            &dir.join("guest"),
            &[
                "connect",
                addr,
                "--as",
                "guest",
                "--name",
                "Gus",
                "--headless",
                "--frames",
                "1",
            ],
        ),
        Duration::from_secs(20),
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Two findings: a host waiting for its first registration applied no server switch at all
/// (guests reached the owner), and after `node move` the host dropped every later flag
/// change for its node until it restarted.
#[test]
fn node_flags_fail_closed_before_registration_and_follow_a_moved_host() {
    let x = Xvfb::start();
    x.draw(&x11::desktop(7));
    let dir = tempfile::tempdir().unwrap();
    let sdir = dir.path().join("server");
    let signal = start_server(&sdir);
    let server = signal.addr();
    admin(&sdir, &["settings", "set", "guest-sharing", "on"], None);
    for folder in ["/Lab", "/Desk"] {
        admin(&sdir, &["node", "mkdir", folder], None);
        admin(
            &sdir,
            &["node", "set", folder, "--allow-guests", "on"],
            None,
        );
    }
    let hdir = dir.path().join("host");
    let common = [
        "--server",
        &server,
        "--name",
        "/Lab/pc",
        "--allow-guests",
        "--owner-timeout",
        "2",
    ];

    // No token: the host waits for the admin's approval, and meanwhile refuses guests.
    let mut host = Host::start(&x, &hdir, "", &common);
    let addr = host.tcp_addr();
    assert!(host.wait_line("Server:").contains("not registered yet"));
    let why = guest_refusal(dir.path(), &addr);
    assert!(why.contains("guest access is turned off (Server)"), "{why}");
    drop(host);

    // The token from a file (`--enroll @FILE`): never on the command line.
    let token_file = dir.path().join("enroll.txt");
    std::fs::write(&token_file, format!("{}\n", enroll_token(&sdir, "/Lab"))).unwrap();
    let from_file = format!("@{}", token_file.display());
    let mut host = Host::start(
        &x,
        &hdir,
        "",
        &[&common[..], &["--enroll", &from_file]].concat(),
    );
    let addr = host.tcp_addr();
    assert!(host.wait_line("Internet-ID:").contains("/Lab/pc"));
    // Registered under a folder that allows guests: the owner is asked (and times out).
    let why = guest_refusal(dir.path(), &addr);
    assert!(!why.contains("turned off"), "{why}");

    // Moved to /Desk: the host learns its path, then /Desk's switch applies at once.
    admin(&sdir, &["node", "move", "/Lab/pc", "/Desk/pc"], None);
    assert!(host.wait_line("Node:").contains("/Desk/pc"));
    admin(
        &sdir,
        &["node", "set", "/Desk", "--allow-guests", "off"],
        None,
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let why = guest_refusal(dir.path(), &addr);
        if why.contains("guest access is turned off (Node)") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the moved host still lets guests ask: {why}"
        );
    }
    let record = std::fs::read_to_string(hdir.join("registration.toml")).unwrap();
    assert!(record.contains("/Desk/pc"), "{record}");
}
