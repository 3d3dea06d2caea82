//! Keyboard end to end: text and key combinations from the viewer's input script arrive in a
//! real X client on the host (an xterm whose shell writes what it reads to a file), including
//! modifiers and non-ASCII text, and a key still held when the viewer leaves is released.
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

/// An xterm at the top left whose shell copies its input lines to `out`; killed on drop.
struct Xterm(std::process::Child);

impl Drop for Xterm {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn xterm(x: &Xvfb, out: &std::path::Path) -> Xterm {
    let child = Command::new("xterm")
        .args(["-u8", "-geometry", "80x10+0+0", "-e", "sh", "-c"])
        .arg(format!("stty -echo; exec cat > '{}'", out.display()))
        .env("DISPLAY", &x.display)
        .env("LANG", "C.UTF-8")
        .env("LC_ALL", "C.UTF-8")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("xterm is not installed: run `make test` (it installs xterm)");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !out.exists() {
        assert!(Instant::now() < deadline, "xterm did not start its shell");
        std::thread::sleep(Duration::from_millis(50));
    }
    // Its shell runs; give the window a moment to map.
    std::thread::sleep(Duration::from_millis(500));
    Xterm(child)
}

fn key(name: &str, down: bool) -> String {
    format!(r#"{{"delay_ms":30,"event":{{"key":{{"keysym":"{name}","down":{down}}}}}}}"#)
}

fn text(t: &str) -> String {
    format!(r#"{{"delay_ms":30,"event":{{"text":{{"text":"{t}"}}}}}}"#)
}

#[test]
fn text_combos_and_unicode_reach_an_xterm_and_held_keys_are_released() {
    let x = Xvfb::start();
    x.draw(&x11::desktop(1));
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("typed.txt");
    let _term = xterm(&x, &out);
    // No window manager: keyboard focus follows the pointer.
    x.warp(100, 40);
    let viewer = dir.path().join("viewer");
    let vpeer = peer_of(&viewer);
    let mut host = Host::start(
        &x,
        &dir.path().join("host"),
        &acl(&vpeer, "view,control"),
        &[],
    );
    let addr = host.tcp_addr();
    let lines = [
        // "abc" then Ctrl+U (the terminal's line kill): nothing of it may arrive.
        text("abc"),
        key("Control_L", true),
        key("u", true),
        key("u", false),
        key("Control_L", false),
        text("héllo wörld ✓"),
        key("Return", true),
        key("Return", false),
        // Shift+x is a capital X.
        key("Shift_L", true),
        key("x", true),
        key("x", false),
        key("Shift_L", false),
        key("Return", true),
        key("Return", false),
        // Held when the viewer leaves.
        key("Shift_L", true),
        key("Control_R", true),
    ];
    let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
    let sc = script(dir.path(), &lines);
    let o = connect(
        &viewer,
        &addr,
        &["--duration", "3", "--input-script", sc.to_str().unwrap()],
    );
    ok(&o);
    let deadline = Instant::now() + Duration::from_secs(5);
    let want = "héllo wörld ✓\nX\n";
    let mut got = String::new();
    while Instant::now() < deadline {
        got = std::fs::read_to_string(&out).unwrap_or_default();
        if got == want {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(got, want, "what the xterm read");
    let deadline = Instant::now() + Duration::from_secs(3);
    while !x.keys_down().is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        x.keys_down(),
        Vec::<u8>::new(),
        "keys still down after the viewer left"
    );
}
