//! Clipboard text sync against the real X clipboard of an Xvfb (read and set with xclip).
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

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use procs::*;
use x11::Xvfb;

fn xclip_get(x: &Xvfb) -> String {
    let out = Command::new("xclip")
        .args(["-o", "-selection", "clipboard"])
        .env("DISPLAY", &x.display)
        .output()
        .expect("xclip is not installed: run `make test`");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn xclip_set(x: &Xvfb, text: &str) {
    let mut c = Command::new("xclip")
        .args(["-selection", "clipboard"])
        .env("DISPLAY", &x.display)
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    c.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    c.wait().unwrap();
}

#[test]
fn clipboard_follows_permissions_and_the_owner() {
    let x = Xvfb::start();
    x.draw(&x11::desktop(10));
    let dir = tempfile::tempdir().unwrap();
    let (with, without) = (dir.path().join("with"), dir.path().join("without"));
    let acl = format!(
        "{}{}",
        acl(&peer_of(&with), "view,clipboard"),
        acl(&peer_of(&without), "view")
    );
    let hdir = dir.path().join("host");
    let mut host = Host::start(&x, &hdir, &acl, &["--allow-guests"]);
    let addr = host.tcp_addr();

    // Allowed: the viewer's text lands on the host; the host's copy reaches the viewer.
    let v = spawn_at(
        &with,
        &[
            "connect",
            &addr,
            "--headless",
            "--duration",
            "4",
            "--clipboard",
            "from the viewer",
        ],
    );
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(xclip_get(&x), "from the viewer");
    xclip_set(&x, "copied on the host");
    let out = wait_exit(v, Duration::from_secs(30));
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("clipboard from the host: \"copied on the host\""),
        "{}",
        text(&out)
    );

    // Without `clipboard`: refused, and the host's clipboard is untouched.
    let out = wait_exit(
        spawn_at(
            &without,
            &[
                "connect",
                &addr,
                "--headless",
                "--duration",
                "1.5",
                "--clipboard",
                "sneaky",
            ],
        ),
        Duration::from_secs(30),
    );
    assert!(
        text(&out).contains("may not use the clipboard"),
        "{}",
        text(&out)
    );
    assert_eq!(xclip_get(&x), "copied on the host");

    // A guest's paste waits for the owner.
    let g = spawn_at(
        &dir.path().join("guest"),
        &[
            "connect",
            &addr,
            "--as",
            "guest",
            "--name",
            "Gus",
            "--headless",
            "--duration",
            "6",
            "--clipboard",
            "guest text",
        ],
    );
    let id = request_id(&hdir, "guest Gus");
    assert!(Command::new(env!("CARGO_BIN_EXE_portico"))
        .arg("--data")
        .arg(&hdir)
        .args(["accept", &id.to_string()])
        .status()
        .unwrap()
        .success());
    let svc = request_id(&hdir, "send a clipboard");
    assert_eq!(
        xclip_get(&x),
        "copied on the host",
        "nothing pasted before the owner allows"
    );
    assert!(Command::new(env!("CARGO_BIN_EXE_portico"))
        .arg("--data")
        .arg(&hdir)
        .args(["allow", &svc.to_string()])
        .status()
        .unwrap()
        .success());
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(xclip_get(&x), "guest text");
    let out = wait_exit(g, Duration::from_secs(30));
    assert!(
        text(&out).contains("waiting for the owner to allow the clipboard")
            && text(&out).contains("clipboard set on the host"),
        "{}",
        text(&out)
    );
}
