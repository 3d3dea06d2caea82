//! End-to-end: the real `portico-signal` binary's help and identity command.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;

fn signal(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_portico-signal"))
        .args(args)
        .env_remove("PORTICO_SIGNAL_DATA")
        .output()
        .expect("run portico-signal")
}

#[test]
fn help_works() {
    let out = signal(&["--help"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("5655") && text.contains("--data"), "{text}");
}

#[test]
fn id_is_stable_and_honours_data_before_or_after() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let a = signal(&["--data", d, "id"]);
    let b = signal(&["id", "--data", d]);
    let c = Command::new(env!("CARGO_BIN_EXE_portico-signal"))
        .arg("id")
        .env("PORTICO_SIGNAL_DATA", d)
        .output()
        .unwrap();
    assert!(a.status.success() && b.status.success() && c.status.success());
    let peer = |o: &std::process::Output| {
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .find(|l| l.starts_with("PeerId:"))
            .unwrap()
            .to_string()
    };
    assert_eq!(peer(&a), peer(&b));
    assert_eq!(peer(&a), peer(&c));
}

fn run_with(dir: &std::path::Path, args: &[&str], stdin: Option<&str>) -> std::process::Output {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_portico-signal"))
        .arg("--data")
        .arg(dir)
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(s) = stdin {
        child.stdin.take().unwrap().write_all(s.as_bytes()).unwrap();
    }
    drop(child.stdin.take());
    child.wait_with_output().unwrap()
}

fn ok(o: &std::process::Output) -> String {
    assert!(
        o.status.success(),
        "failed: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).to_string()
}

fn fails(o: &std::process::Output) -> String {
    assert!(
        !o.status.success(),
        "should have failed: {}",
        String::from_utf8_lossy(&o.stdout)
    );
    String::from_utf8_lossy(&o.stderr).to_string()
}

/// Starts `portico-signal serve` and waits until its admin socket answers.
fn serve(dir: &std::path::Path) -> std::process::Child {
    let mut child = Command::new(env!("CARGO_BIN_EXE_portico-signal"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data"])
        .arg(dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    for _ in 0..200 {
        if std::os::unix::net::UnixStream::connect(dir.join("admin.sock")).is_ok() {
            return child;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    panic!("server did not open its admin socket");
}

#[test]
fn admin_commands_work_stopped_and_running_and_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // Stopped: straight to the store.
    ok(&run_with(
        d,
        &["user", "add", "alice", "--password-stdin"],
        Some("pw\n"),
    ));
    ok(&run_with(d, &["group", "add", "Sales"], None));
    ok(&run_with(
        d,
        &["group", "add-member", "Sales", "alice"],
        None,
    ));
    assert!(
        fails(&run_with(d, &["group", "add-member", "Sales", "bob"], None))
            .contains("unknown user \"bob\"")
    );
    assert!(fails(&run_with(d, &["group", "add", "Sales"], None)).contains("already exists"));
    assert!(fails(&run_with(d, &["node", "list", "/Nope"], None)).contains("not found"));
    assert!(fails(&run_with(d, &["user", "add", "carl"], None)).contains("--password-stdin"));

    // Running: through the admin socket; then kill -9 right after a write.
    let mut server = serve(d);
    ok(&run_with(
        d,
        &[
            "user",
            "add",
            "bob",
            "--password-stdin",
            "--force-server-security",
        ],
        Some("pw2\n"),
    ));
    ok(&run_with(d, &["node", "mkdir", "/Marketing/Floor2"], None));
    ok(&run_with(
        d,
        &["node", "set", "/Marketing", "--allow-visitors", "on"],
        None,
    ));
    ok(&run_with(
        d,
        &["settings", "set", "guest-sharing", "on"],
        None,
    ));
    let list = ok(&run_with(d, &["user", "list"], None));
    assert!(list.contains("alice") && list.contains("bob"), "{list}");
    ok(&run_with(
        d,
        &["group", "remove-member", "Sales", "alice"],
        None,
    ));
    server.kill().unwrap(); // SIGKILL
    server.wait().unwrap();

    // Stopped again (stale socket left behind): everything is there.
    let users = ok(&run_with(d, &["user", "list"], None));
    assert!(
        users.contains("bob\tenabled\tforce-server-security=on"),
        "{users}"
    );
    assert!(
        users
            .lines()
            .any(|l| l.starts_with("alice\t") && l.ends_with("groups=")),
        "alice left Sales: {users}"
    );
    let nodes = ok(&run_with(d, &["node", "list"], None));
    assert!(
        nodes.contains("/Marketing/Floor2") && nodes.contains("allow-visitors on (inherited)"),
        "{nodes}"
    );
    assert!(ok(&run_with(d, &["settings", "show"], None)).contains("guest-sharing on"));
    let audit = ok(&run_with(d, &["audit", "--verify"], None));
    assert!(
        audit.contains("group.remove_member") && audit.contains("audit chain OK: 8 entries"),
        "{audit}"
    );

    // Bundle: signed, verifies, refuses unknown groups.
    let out = d.join("m.portico");
    ok(&run_with(
        d,
        &[
            "bundle",
            "--node",
            "/Marketing",
            "--grant",
            "group:Sales=view,control",
            "--server",
            "10.0.0.1:5655",
            "-o",
            out.to_str().unwrap(),
        ],
        None,
    ));
    let (b, _) = portico_core::bundle::read(&std::fs::read(&out).unwrap()).unwrap();
    assert_eq!(b.node_path, "/Marketing");
    // It carries an enrollment token: the owner's alone, like a key.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&out).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "bundle mode {mode:o}");
    assert_eq!(b.acl[0].principal.to_string(), "group:Sales");
    assert!(fails(&run_with(
        d,
        &[
            "bundle",
            "--node",
            "/M",
            "--grant",
            "group:Nope=view",
            "--server",
            "x:1",
            "-o",
            "/dev/null"
        ],
        None
    ))
    .contains("unknown group"));
}

#[test]
fn audit_detects_a_hand_edited_entry() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(&run_with(d, &["group", "add", "A"], None));
    ok(&run_with(d, &["group", "add", "B"], None));
    ok(&run_with(d, &["group", "add", "C"], None));
    assert!(ok(&run_with(d, &["audit", "--verify"], None)).contains("audit chain OK: 3 entries"));
    {
        let db = sled::open(d.join("db")).unwrap();
        let audit = db.open_tree("audit").unwrap();
        let raw = audit.get(2u64.to_be_bytes()).unwrap().unwrap();
        let mut v: ciborium::Value = ciborium::de::from_reader(raw.as_ref()).unwrap();
        for (k, val) in v.as_map_mut().unwrap() {
            if k.as_text() == Some("detail") {
                *val = ciborium::Value::Text("Z".into());
            }
        }
        let mut bytes = Vec::new();
        ciborium::ser::into_writer(&v, &mut bytes).unwrap();
        audit.insert(2u64.to_be_bytes(), bytes).unwrap();
        db.flush().unwrap();
    }
    let err = fails(&run_with(d, &["audit", "--verify"], None));
    assert!(err.contains("tampered at entry 2"), "{err}");
}
