//! Remote file browsing with real processes: refused without `files`; a trusted key with
//! `files` lists and downloads (hash checked) inside the shared folder while `..` and a
//! symlink out of it are refused; a guest browses only after the owner allows it.
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

use std::time::Duration;

use procs::*;
use x11::Xvfb;

fn files(viewer: &std::path::Path, args: &[&str]) -> std::process::Output {
    run_at(viewer, &[&["files"][..], args].concat())
}

#[test]
fn browsing_is_gated_confined_and_checked() {
    let x = Xvfb::start();
    x.draw(&x11::desktop(15));
    let dir = tempfile::tempdir().unwrap();
    let share = dir.path().join("share");
    let secret = dir.path().join("secret");
    std::fs::create_dir_all(share.join("docs")).unwrap();
    std::fs::create_dir_all(&secret).unwrap();
    std::fs::write(secret.join("key"), b"not for viewers").unwrap();
    std::os::unix::fs::symlink(&secret, share.join("escape")).unwrap();
    let data: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 253) as u8).collect();
    std::fs::write(share.join("docs/report.bin"), &data).unwrap();

    let (viewer, reader) = (dir.path().join("viewer"), dir.path().join("reader"));
    let config = format!(
        "browse_roots = [{:?}]\n{}{}",
        share.display().to_string(),
        acl(&peer_of(&viewer), "view"),
        acl(&peer_of(&reader), "view,files")
    );
    let hdir = dir.path().join("host");
    let mut host = Host::start(&x, &hdir, &config, &["--allow-guests"]);
    let addr = host.tcp_addr();

    // Without `files`: refused.
    let out = files(&viewer, &["ls", &addr, "/share"]);
    assert!(!out.status.success());
    assert!(text(&out).contains("files permission"), "{}", text(&out));

    // With `files`: the shared folders, a listing without the escaping link.
    let out = files(&reader, &["ls", &addr, "/"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "share/");
    let out = files(&reader, &["ls", &addr, "/share"]);
    assert!(out.status.success(), "{}", text(&out));
    let listing = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(listing.trim(), "docs/", "{listing}");
    // Escapes: refused.
    for (op, path, why) in [
        ("ls", "/share/../secret", ".."),
        ("get", "/share/escape/key", "outside"),
        ("ls", "/share/escape", "outside"),
    ] {
        let out = files(&reader, &[op, &addr, path]);
        assert!(!out.status.success(), "{path} was served");
        assert!(text(&out).contains(why), "{path}: {}", text(&out));
    }
    // A download lands whole, with the same hash, and never over an existing file.
    let downloads = dir.path().join("downloads");
    std::fs::create_dir_all(&downloads).unwrap();
    let out = files(
        &reader,
        &[
            "get",
            &addr,
            "/share/docs/report.bin",
            "--out",
            downloads.to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(std::fs::read(downloads.join("report.bin")).unwrap(), data);
    let out = files(
        &reader,
        &[
            "get",
            &addr,
            "/share/docs/report.bin",
            "--out",
            downloads.to_str().unwrap(),
        ],
    );
    assert!(!out.status.success());
    assert!(text(&out).contains("exists already"), "{}", text(&out));
    assert_eq!(
        std::fs::read_dir(&downloads).unwrap().count(),
        1,
        "a partial file stayed behind"
    );

    // A guest: the owner accepts the guest, then allows browsing for the session.
    let guest = spawn_at(
        &dir.path().join("guest"),
        &[
            "files",
            "ls",
            &addr,
            "/share/docs",
            "--as",
            "guest",
            "--name",
            "Gus",
        ],
    );
    let id = request_id(&hdir, "guest Gus");
    assert!(run_at(&hdir, &["accept", &id.to_string()]).status.success());
    let browse = request_id(&hdir, "browse");
    assert!(run_at(&hdir, &["allow", &browse.to_string()])
        .status
        .success());
    let out = wait_exit(guest, Duration::from_secs(30));
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("report.bin\t300000 bytes"),
        "{}",
        text(&out)
    );
    let audit = std::fs::read_to_string(hdir.join("audit.jsonl")).unwrap();
    assert!(
        audit.contains("browse_list") && audit.contains("file_sent"),
        "{audit}"
    );
}
