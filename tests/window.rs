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

#[test]
fn without_a_target_the_window_lists_the_book_and_the_servers_nodes_and_connects_on_a_double_click()
{
    let (hx, vx) = (Xvfb::start(), Xvfb::start());
    hx.draw(&x11::desktop(13));
    let dir = tempfile::tempdir().unwrap();
    let sdir = dir.path().join("server");
    let signal = start_server(&sdir);
    let server = signal.addr();
    add_user(&sdir, "alice", false);
    let token = enroll_token(&sdir, "/Lab");
    let viewer = dir.path().join("viewer");
    let config = format!(
        "{}[[acl]]\nprincipal = \"user:alice\"\npermissions = [\"view\"]\napproval = \"never\"\n",
        acl(&peer_of(&viewer), "view")
    );
    let mut host = Host::start(
        &hx,
        &dir.path().join("host"),
        &config,
        &["--server", &server, "--name", "pc-9", "--enroll", &token],
    );
    host.wait_line("Internet-ID:");
    let addr = host.tcp_addr();
    login(&viewer, &server, "alice", "alice-pw");
    let book = run_at(&viewer, &["book", "add", "office", &addr, "--as", "peer"]);
    assert!(book.status.success(), "{}", text(&book));

    let log = dir.path().join("viewer.log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_portico"))
        .env_remove("PORTICO_DATA")
        .env("DISPLAY", &vx.display)
        .env("RUST_LOG", "info")
        .arg("--data")
        .arg(&viewer)
        .arg("connect")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let window = loop {
        let id = xdotool(&vx, &["search", "--name", "choose a host"]);
        if let Some(id) = id.lines().next() {
            break id.to_string();
        }
        assert!(Instant::now() < deadline, "no host-list window");
        std::thread::sleep(Duration::from_millis(200));
    };
    // The book's entry and the server's node, with its online state, are listed.
    loop {
        let raw = std::fs::read_to_string(&log).unwrap_or_default();
        // Without colour codes.
        let mut text = String::new();
        let mut chars = raw.chars();
        while let Some(c) = chars.next() {
            if c == '\u{1b}' {
                chars.by_ref().find(|&c| c == 'm');
            } else {
                text.push(c);
            }
        }
        let listed = |source: &str, target: &str| {
            text.lines().any(|l| {
                l.contains("host list entry")
                    && l.contains(&format!("source=\"{source}\""))
                    && l.contains(target)
            })
        };
        // The server's tree: its folder (a heading) and its host with online state.
        if listed("book", "target=office")
            && listed("server", "label=/Lab/ ")
            && listed("server", "target=/Lab/pc-9")
        {
            break;
        }
        assert!(Instant::now() < deadline, "the list lacks a row:\n{text}");
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(Duration::from_millis(300));
    if let Some(shots) = std::env::var_os("PORTICO_SCREENSHOTS") {
        let grab = vx.grab();
        image::RgbaImage::from_raw(x11::W, x11::H, grab)
            .unwrap()
            .save(std::path::Path::new(&shots).join("window-host-list.png"))
            .unwrap();
    }
    // A double click on the first row (the book's "office") connects to it.
    xdotool(
        &vx,
        &[
            "mousemove",
            "--window",
            &window,
            "300",
            "82",
            "click",
            "--repeat",
            "2",
            "--delay",
            "120",
            "1",
        ],
    );
    let title = loop {
        let t = xdotool(&vx, &["getwindowname", &window]);
        if t.contains("direct") {
            break t;
        }
        assert!(
            Instant::now() < deadline + Duration::from_secs(10),
            "the double click did not connect: {t:?}\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(title.contains("view-only, direct"), "{title}");
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn the_files_panel_lists_the_shared_folder_and_downloads_with_the_keyboard() {
    let (hx, vx) = (Xvfb::start(), Xvfb::start());
    hx.draw(&x11::desktop(16));
    let dir = tempfile::tempdir().unwrap();
    let share = dir.path().join("share");
    std::fs::create_dir_all(&share).unwrap();
    std::fs::write(share.join("notes.txt"), b"from the host's shared folder").unwrap();
    let viewer = dir.path().join("viewer");
    let home = dir.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let config = format!(
        "browse_roots = [{:?}]\n{}",
        share.display().to_string(),
        acl(&peer_of(&viewer), "view,browse")
    );
    let mut host = Host::start(&hx, &dir.path().join("host"), &config, &[]);
    let addr = host.tcp_addr();
    let log = dir.path().join("viewer.log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_portico"))
        .env_remove("PORTICO_DATA")
        .env("DISPLAY", &vx.display)
        .env("HOME", &home)
        .env("XDG_CONFIG_HOME", home.join(".config"))
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .arg("--data")
        .arg(&viewer)
        .args(["connect", &addr])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let window = loop {
        let t = xdotool(&vx, &["search", "--name", "direct"]);
        if let Some(id) = t.lines().next() {
            break id.to_string();
        }
        assert!(Instant::now() < deadline, "no session window");
        std::thread::sleep(Duration::from_millis(200));
    };
    let wait_log = |needle: &str| loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.contains(needle) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the viewer never logged {needle:?}:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    xdotool(
        &vx,
        &["windowfocus", "--sync", &window, "key", "ctrl+alt+f"],
    );
    wait_log("files panel listing path=/ status=1 entries");
    xdotool(&vx, &["key", "Return"]);
    wait_log("files panel listing path=/share status=1 entries");
    if let Some(shots) = std::env::var_os("PORTICO_SCREENSHOTS") {
        std::thread::sleep(Duration::from_millis(300));
        image::RgbaImage::from_raw(x11::W, x11::H, vx.grab())
            .unwrap()
            .save(std::path::Path::new(&shots).join("window-files-panel.png"))
            .unwrap();
    }
    xdotool(&vx, &["key", "Return"]);
    wait_log("saved as");
    let landed = home.join("Downloads/Portico/notes.txt");
    assert_eq!(
        std::fs::read(&landed).unwrap(),
        b"from the host's shared folder"
    );
    child.kill().unwrap();
    child.wait().unwrap();
}
