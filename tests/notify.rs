//! The owner's desktop notification, with a real session bus (dbus-daemon) and a real
//! notification daemon (dunst) on Xvfb: a guest's request appears with the guest's name and
//! message, and picking the notification's Accept action (through dunst's own context
//! menu, as a person would) lets the guest in.
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

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use procs::*;
use x11::Xvfb;

/// Kills the daemons at the end.
struct Daemons(Vec<Child>);

impl Drop for Daemons {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn script(path: &std::path::Path, body: &str) {
    std::fs::write(path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn a_guests_request_raises_a_notification_whose_accept_lets_the_guest_in() {
    let x = Xvfb::start();
    x.draw(&x11::desktop(14));
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut bus = Command::new("dbus-daemon")
        .args(["--session", "--nofork", "--print-address=1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("dbus-daemon is not installed: run `make test`");
    let mut address = String::new();
    BufReader::new(bus.stdout.take().unwrap())
        .read_line(&mut address)
        .unwrap();
    let address = address.trim().to_string();
    // What dunst shows is recorded; its context menu picks "Accept" like a person would.
    let (seen, menu) = (d.join("seen.txt"), d.join("menu.txt"));
    script(
        &d.join("record.sh"),
        &format!(
            "printf '%s|%s|%s\\n' \"$1\" \"$2\" \"$3\" >> {}",
            seen.display()
        ),
    );
    script(
        &d.join("pick.sh"),
        &format!("tee {} | grep -m1 '#Accept'", menu.display()),
    );
    std::fs::write(
        d.join("dunstrc"),
        format!(
            "[global]\n    dmenu = {}\n[record]\n    appname = \"*\"\n    script = {}\n",
            d.join("pick.sh").display(),
            d.join("record.sh").display()
        ),
    )
    .unwrap();
    let dunst = Command::new("dunst")
        .arg("-conf")
        .arg(d.join("dunstrc"))
        .env("DISPLAY", &x.display)
        .env("DBUS_SESSION_BUS_ADDRESS", &address)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("dunst is not installed: run `make test`");
    let _daemons = Daemons(vec![bus, dunst]);

    let mut host = Host::start_env(
        &x,
        &d.join("host"),
        "",
        &["--allow-guests"],
        &[("DBUS_SESSION_BUS_ADDRESS", address.as_str())],
    );
    let addr = host.tcp_addr();
    let guest = spawn_at(
        &d.join("guest"),
        &[
            "connect",
            &addr,
            "--as",
            "guest",
            "--name",
            "Gus",
            "--message",
            "please <b>help</b> with the printer",
            "--headless",
            "--frames",
            "1",
        ],
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    let shown = loop {
        let s = std::fs::read_to_string(&seen).unwrap_or_default();
        if s.contains("Gus") {
            break s;
        }
        assert!(Instant::now() < deadline, "no notification reached dunst");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(
        shown.starts_with("Portico|guest Gus wants to connect|"),
        "{shown}"
    );
    assert!(
        shown.contains("please &lt;b&gt;help&lt;/b&gt; with the printer")
            || shown.contains("please <b>help</b> with the printer"),
        "the guest's message is not in the notification: {shown}"
    );
    assert!(shown.contains("from 127.0.0.1"), "{shown}");
    if let Some(shots) = std::env::var_os("PORTICO_SCREENSHOTS") {
        std::thread::sleep(Duration::from_millis(500));
        image::RgbaImage::from_raw(x11::W, x11::H, x.grab())
            .unwrap()
            .save(std::path::Path::new(&shots).join("notification.png"))
            .unwrap();
    }

    // The owner picks Accept in the notification.
    let out = Command::new("dunstctl")
        .arg("context")
        .env("DBUS_SESSION_BUS_ADDRESS", &address)
        .env("DISPLAY", &x.display)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let out = wait_exit(guest, Duration::from_secs(30));
    assert!(
        out.status.success(),
        "the guest was not let in: {}",
        text(&out)
    );
    let menu = std::fs::read_to_string(&menu).unwrap();
    for action in ["Accept", "View only", "Refuse", "Open the console"] {
        assert!(menu.contains(&format!("#{action}")), "{menu}");
    }
}
