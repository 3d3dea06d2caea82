//! The owner console in real headless Chromium (playwright-core, Debian's chromium), against
//! the real host and a real guest viewer on a real Xvfb.
//!
//! Set `PORTICO_SCREENSHOTS=DIR` to keep the console screenshots (docs/screenshots comes
//! from here).
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

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use procs::*;
use x11::Xvfb;

fn shot(tmp: &Path, name: &str) -> String {
    let dir = std::env::var_os("PORTICO_SCREENSHOTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| tmp.to_path_buf());
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name).to_string_lossy().into_owned()
}

fn spawn_guest(viewer: &Path, addr: &str, message: &str, extra: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_portico"))
        .env_remove("PORTICO_DATA")
        .env("RUST_LOG", "warn")
        .arg("--data")
        .arg(viewer)
        .args([
            "connect",
            addr,
            "--as",
            "guest",
            "--name",
            "Gus",
            "--message",
            message,
            "--headless",
            "--duration",
            "60",
        ])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

#[test]
fn guest_accepted_view_only_in_the_browser_sees_frames_moves_nothing_and_is_kicked() {
    let x = Xvfb::start();
    x.draw(&x11::desktop(3));
    x.warp(5, 5);
    let dir = tempfile::tempdir().unwrap();
    let mut host = Host::start(&x, &dir.path().join("host"), "", &["--allow-guests"]);
    let url = host.wait_line("Console:");
    let addr = host.tcp_addr();
    let script = dir.path().join("script.jsonl");
    std::fs::write(
        &script,
        r#"{"delay_ms":1200,"event":{"pointer_move":{"x":640,"y":360}}}"#,
    )
    .unwrap();
    let stats_path = dir.path().join("stats.json");
    let guest = spawn_guest(
        &dir.path().join("viewer"),
        &addr,
        "please help with the printer",
        &[
            "--force-input",
            "--input-script",
            script.to_str().unwrap(),
            "--stats",
            stats_path.to_str().unwrap(),
        ],
    );

    let row = drive(
        &url,
        &[
            "accept-view-only",
            "please help with the printer",
            &shot(dir.path(), "console-request.png"),
        ],
    );
    assert!(
        row.contains("guest Gus") && row.contains("127.0.0.1"),
        "the request row shows who and from where: {row}"
    );
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(x.pointer(), (5, 5), "a view-only guest moved the pointer");
    drive(&url, &["show", &shot(dir.path(), "console-session.png")]);

    let t = Instant::now();
    drive(&url, &["kick", "Gus"]);
    let out = wait_exit(guest, Duration::from_secs(15));
    let kicked_after = t.elapsed();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("waiting for the owner"), "{err}");
    assert!(err.contains("disconnected by the owner"), "{err}");
    let stats = stats(&stats_path);
    assert!(
        stats.num_field("frames") >= 1.0,
        "frames arrived before the kick"
    );
    assert_eq!(stats.str_field("permissions"), "view");
    // The browser click, the host's Bye and the viewer's exit; generous for a loaded CI box.
    assert!(
        kicked_after < Duration::from_secs(10),
        "kick took {kicked_after:?}"
    );
    let audit = std::fs::read_to_string(dir.path().join("host/audit.jsonl")).unwrap();
    assert!(
        audit.contains("owner_accepted") && audit.contains("kicked"),
        "{audit}"
    );
}

#[test]
fn guest_refused_in_the_browser_and_an_unanswered_request_times_out() {
    let x = Xvfb::start();
    x.draw(&x11::desktop(4));
    let dir = tempfile::tempdir().unwrap();
    let mut host = Host::start(
        &x,
        &dir.path().join("host"),
        "",
        // Long enough for Chromium to start and click on a loaded 2-core CI machine, short
        // enough for the unanswered request below.
        &["--allow-guests", "--owner-timeout", "10"],
    );
    let url = host.wait_line("Console:");
    let addr = host.tcp_addr();

    let g1 = spawn_guest(&dir.path().join("v1"), &addr, "refuse me please", &[]);
    drive(&url, &["refuse", "refuse me please"]);
    let out = wait_exit(g1, Duration::from_secs(15));
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("the owner refused"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let g2 = spawn_guest(&dir.path().join("v2"), &addr, "nobody answers", &[]);
    let out = wait_exit(g2, Duration::from_secs(25));
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("did not answer"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // With guest sharing off on the host, a guest is refused outright.
    let mut closed = Host::start(&x, &dir.path().join("closed"), "", &[]);
    let addr = closed.tcp_addr();
    let out = wait_exit(
        spawn_guest(&dir.path().join("v3"), &addr, "hello", &[]),
        Duration::from_secs(15),
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("guest access is turned off"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn time_limit_ends_the_session_and_the_owner_switches_view_only_to_interactive() {
    let x = Xvfb::start();
    x.draw(&x11::desktop(11));
    x.warp(5, 5);
    let dir = tempfile::tempdir().unwrap();
    let hdir = dir.path().join("host");
    let mut host = Host::start(&x, &hdir, "", &["--allow-guests"]);
    let url = host.wait_line("Console:");
    let addr = host.tcp_addr();
    let owner = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_portico"))
            .arg("--data")
            .arg(&hdir)
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let wait_line = |needle: &str, cmd: &str| -> u64 {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(l) = owner(&[cmd]).lines().find(|l| l.contains(needle)) {
                return l.split('\t').next().unwrap().parse().unwrap();
            }
            assert!(
                Instant::now() < deadline,
                "nothing with {needle:?} in `portico {cmd}`"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    };

    // Accepted for 2 s: the session ends by itself and the viewer is told why.
    let g = spawn_guest(&dir.path().join("v1"), &addr, "short visit", &[]);
    let id = wait_line("short visit", "requests");
    owner(&["accept", &id.to_string(), "--for", "2s"]);
    let out = wait_exit(g, Duration::from_secs(15));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("time limit"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Accepted view-only, then made interactive in the browser: input moves the pointer only after.
    let script = dir.path().join("script.jsonl");
    std::fs::write(&script, "{\"delay_ms\":500,\"event\":{\"pointer_move\":{\"x\":100,\"y\":100}}}\n{\"delay_ms\":4000,\"event\":{\"pointer_move\":{\"x\":640,\"y\":360}}}\n").unwrap();
    let g = spawn_guest(
        &dir.path().join("v2"),
        &addr,
        "switch me",
        &["--force-input", "--input-script", script.to_str().unwrap()],
    );
    let id = wait_line("switch me", "requests");
    owner(&["accept", &id.to_string(), "--view-only"]);
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(x.pointer(), (5, 5), "view-only input moved the pointer");
    let session = wait_line("guest Gus", "sessions");
    let c: portico_actors::console::ConsoleFile =
        serde_json::from_str(&std::fs::read_to_string(hdir.join("console.json")).unwrap()).unwrap();
    let r = ureq::post(&format!("{}/api/sessions/{session}/mode", c.url))
        .header("Authorization", &format!("Bearer {}", c.token))
        .send_json(serde_json::json!({"view_only": false}))
        .unwrap();
    assert_eq!(r.status(), 204);
    drive(&url, &["show"]);
    std::thread::sleep(Duration::from_millis(4000));
    assert_eq!(
        x.pointer(),
        (640, 360),
        "after the switch to interactive, input should arrive"
    );
    let t = Instant::now();
    owner(&["kick", &session.to_string()]);
    let out = wait_exit(g, Duration::from_secs(15));
    eprintln!("kick → viewer exit: {:?}", t.elapsed());
    assert!(String::from_utf8_lossy(&out.stderr).contains("disconnected by the owner"));
}
