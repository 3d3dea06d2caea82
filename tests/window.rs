//! The native viewer window on its own Xvfb, showing a host on another Xvfb: the picture in
//! the window matches the host's screen, the title names host, mode and path, and mouse input
//! in the window reaches the host.
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

fn xdotool(x: &Xvfb, args: &[&str]) -> String {
    let out = Command::new("xdotool")
        .args(args)
        .env("DISPLAY", &x.display)
        .output()
        .expect("xdotool is not installed: run `make test`");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn the_window_shows_the_host_and_forwards_the_mouse() {
    let (hx, vx) = (Xvfb::start(), Xvfb::start());
    hx.draw(&x11::desktop(12));
    hx.warp(5, 5);
    let dir = tempfile::tempdir().unwrap();
    let viewer = dir.path().join("viewer");
    let downloads = dir.path().join("downloads");
    let mut host = Host::start(
        &hx,
        &dir.path().join("host"),
        &acl(&peer_of(&viewer), "view,control,files"),
        &["--download-dir", downloads.to_str().unwrap()],
    );
    let src = dir.path().join("from-window.txt");
    std::fs::write(&src, b"sent while the window is open").unwrap();
    let addr = host.tcp_addr();
    let mut child = Command::new(env!("CARGO_BIN_EXE_portico"))
        .env_remove("PORTICO_DATA")
        .env("DISPLAY", &vx.display)
        .env("RUST_LOG", "error")
        .arg("--data")
        .arg(&viewer)
        .args(["connect", &addr, "--send", src.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let title = loop {
        let t = xdotool(&vx, &["search", "--name", "Portico", "getwindowname"]);
        if t.contains("direct") {
            break t;
        }
        assert!(
            Instant::now() < deadline,
            "no viewer window with a session title: {t:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(title.contains("interactive, direct"), "{title}");
    // Let the still screen's lossless refresh arrive, then compare what the window shows.
    std::thread::sleep(Duration::from_secs(2));
    let psnr = portico_core::tiles::psnr_rgba(&vx.grab(), &hx.grab());
    assert!(
        psnr >= 40.0,
        "the window's picture differs from the host's screen: {psnr:.1} dB"
    );
    xdotool(&vx, &["mousemove", "640", "360", "click", "1"]);
    std::thread::sleep(Duration::from_millis(700));
    assert_eq!(
        hx.pointer(),
        (640, 360),
        "mouse input in the window did not reach the host"
    );
    // The file went while the window stayed open.
    assert_eq!(
        std::fs::read(downloads.join("from-window.txt")).unwrap(),
        b"sent while the window is open"
    );
    assert!(
        child.try_wait().unwrap().is_none(),
        "the window closed after the file was sent"
    );
    child.kill().unwrap();
    child.wait().unwrap();
}
