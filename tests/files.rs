//! File transfer end to end: the owner allows (in Chromium) or denies each guest transfer;
//! what lands has the right hash; denied files and unsafe names write nothing outside the
//! download folder; a trusted key with `files` sends without a prompt.
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

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use procs::*;
use x11::Xvfb;

fn sha256(path: &Path) -> String {
    let out = Command::new("sha256sum").arg(path).output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

fn listing(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|r| {
            r.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

#[test]
fn guest_transfers_need_the_owner_and_land_intact() {
    let x = Xvfb::start();
    x.draw(&x11::desktop(8));
    let dir = tempfile::tempdir().unwrap();
    let downloads = dir.path().join("downloads");
    let hdir = dir.path().join("host");
    let mut host = Host::start(
        &x,
        &hdir,
        "",
        &[
            "--allow-guests",
            "--download-dir",
            downloads.to_str().unwrap(),
        ],
    );
    let url = host.wait_line("Console:");
    let addr = host.tcp_addr();
    let src = dir.path().join("report.bin");
    std::fs::write(
        &src,
        (0..2_500_000u32)
            .map(|i| (i * 31 % 251) as u8)
            .collect::<Vec<u8>>(),
    )
    .unwrap();

    // Allowed in the browser: lands with the right hash.
    let g = spawn_at(
        &dir.path().join("v1"),
        &[
            "connect",
            &addr,
            "--as",
            "guest",
            "--name",
            "Gus",
            "--headless",
            "--send",
            src.to_str().unwrap(),
        ],
    );
    let id = request_id(&hdir, "guest Gus");
    assert!(run_at(&hdir, &["accept", &id.to_string()]).status.success());
    let dir_shot = std::env::var_os("PORTICO_SCREENSHOTS")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| dir.path().to_path_buf());
    let node = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/console/drive.mjs");
    let out = Command::new("node")
        .arg(&node)
        .arg(&url)
        .args(["allow", "report.bin"])
        .arg(dir_shot.join("console-file.png"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let out = wait_exit(g, Duration::from_secs(30));
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("file sent: saved as"), "{}", text(&out));
    assert_eq!(sha256(&downloads.join("report.bin")), sha256(&src));

    // Denied: nothing written, and the viewer says why. A hidden-file name is made visible.
    let hidden = dir.path().join("..bashrc");
    std::fs::write(&hidden, b"alias ls=rm").unwrap();
    // A guest offers `hidden`; the owner accepts the guest, then answers the transfer.
    let guest_sends = |viewer: &str, name: &str, answer: &str| {
        let g = spawn_at(
            &dir.path().join(viewer),
            &[
                "connect",
                &addr,
                "--as",
                "guest",
                "--name",
                name,
                "--headless",
                "--send",
                hidden.to_str().unwrap(),
            ],
        );
        let id = request_id(&hdir, &format!("guest {name}"));
        assert!(run_at(&hdir, &["accept", &id.to_string()]).status.success());
        let svc = request_id(&hdir, "send a file");
        assert!(run_at(&hdir, &[answer, &svc.to_string()]).status.success());
        wait_exit(g, Duration::from_secs(30))
    };
    let out = guest_sends("v2", "Dee", "deny");
    assert!(
        !out.status.success() && text(&out).contains("the owner denied the file"),
        "{}",
        text(&out)
    );
    assert_eq!(
        listing(&downloads),
        vec!["report.bin".to_string()],
        "a denied transfer wrote something"
    );

    assert!(guest_sends("v3", "Eve", "allow").status.success());
    assert_eq!(
        listing(&downloads),
        vec!["bashrc".to_string(), "report.bin".to_string()]
    );
    let audit = std::fs::read_to_string(hdir.join("audit.jsonl")).unwrap();
    assert!(
        audit.contains("service_denied")
            && audit.contains("service_allowed")
            && audit.contains("file_received")
    );
}

#[test]
fn a_trusted_key_with_files_sends_without_a_prompt_and_one_without_is_refused() {
    let x = Xvfb::start();
    x.draw(&x11::desktop(9));
    let dir = tempfile::tempdir().unwrap();
    let downloads = dir.path().join("downloads");
    let (v_files, v_view) = (dir.path().join("vf"), dir.path().join("vv"));
    let acl = format!(
        "{}{}",
        acl(&peer_of(&v_files), "view,files"),
        acl(&peer_of(&v_view), "view")
    );
    let mut host = Host::start(
        &x,
        &dir.path().join("host"),
        &acl,
        &["--download-dir", downloads.to_str().unwrap()],
    );
    let addr = host.tcp_addr();
    let src = dir.path().join("notes.txt");
    std::fs::write(&src, b"meeting at 10").unwrap();
    let out = wait_exit(
        spawn_at(
            &v_files,
            &[
                "connect",
                &addr,
                "--headless",
                "--send",
                src.to_str().unwrap(),
            ],
        ),
        Duration::from_secs(30),
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        !text(&out).contains("waiting for the owner"),
        "{}",
        text(&out)
    );
    assert_eq!(
        std::fs::read(downloads.join("notes.txt")).unwrap(),
        b"meeting at 10"
    );
    let out = wait_exit(
        spawn_at(
            &v_view,
            &[
                "connect",
                &addr,
                "--headless",
                "--send",
                src.to_str().unwrap(),
            ],
        ),
        Duration::from_secs(30),
    );
    assert!(
        !out.status.success() && text(&out).contains("may not send files"),
        "{}",
        text(&out)
    );
    assert_eq!(listing(&downloads), vec!["notes.txt".to_string()]);
}

#[test]
fn a_host_killed_mid_transfer_leaves_no_partial_file_after_it_restarts() {
    let x = Xvfb::start();
    x.draw(&x11::desktop(10));
    let dir = tempfile::tempdir().unwrap();
    let downloads = dir.path().join("downloads");
    let hdir = dir.path().join("host");
    let viewer = dir.path().join("vf");
    let config = acl(&peer_of(&viewer), "view,files");
    let args = ["--download-dir", downloads.to_str().unwrap()];
    let mut host = Host::start(&x, &hdir, &config, &args);
    let addr = host.tcp_addr();
    // Big enough to be caught half-written.
    let src = dir.path().join("disk.img");
    let file = std::fs::File::create(&src).unwrap();
    file.set_len(768 * 1024 * 1024).unwrap();
    drop(file);
    let mut sender = spawn_at(
        &viewer,
        &[
            "connect",
            &addr,
            "--headless",
            "--send",
            src.to_str().unwrap(),
        ],
    );
    let partials = || {
        listing(&downloads)
            .into_iter()
            .filter(|n| n.starts_with(".portico-partial-"))
            .count()
    };
    let started = std::time::Instant::now();
    while partials() == 0 {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the transfer never started: {:?}",
            listing(&downloads)
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    // SIGKILL: no destructor runs, the partial file stays behind.
    host.child.kill().unwrap();
    host.child.wait().unwrap();
    let _ = sender.kill();
    let _ = sender.wait();
    assert_eq!(partials(), 1, "{:?}", listing(&downloads));

    let mut host = Host::start(&x, &hdir, &config, &args);
    host.tcp_addr();
    let restarted = std::time::Instant::now();
    while partials() != 0 {
        assert!(
            restarted.elapsed() < Duration::from_secs(10),
            "the restarted host left the partial file: {:?}",
            listing(&downloads)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(listing(&downloads), Vec::<String>::new());
}
