//! Remote file browsing with real processes: refused without `browse` (`files` alone is
//! for sending); a trusted key with `browse` lists and downloads (hash checked) inside the shared folder while `..` and a
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
        acl(&peer_of(&reader), "view,browse")
    );
    let hdir = dir.path().join("host");
    let mut host = Host::start(&x, &hdir, &config, &["--allow-guests"]);
    let addr = host.tcp_addr();

    // Without `browse`: refused.
    let out = files(&viewer, &["ls", &addr, "/share"]);
    assert!(!out.status.success());
    assert!(text(&out).contains("browse permission"), "{}", text(&out));

    // With `browse`: the shared folders, a listing without the escaping link.
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

/// The finding this guards: with no `browse_roots` the whole home folder was shared, so a
/// viewer allowed `files` downloaded the host's identity key and `~/.ssh`.
#[test]
fn the_hosts_keys_are_never_served() {
    let x = Xvfb::start();
    x.draw(&x11::desktop(16));
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let data = home.join("portico-data");
    std::fs::create_dir_all(home.join(".ssh")).unwrap();
    std::fs::write(home.join(".ssh/id_ed25519"), b"the owner's ssh key").unwrap();
    std::fs::write(home.join("notes.txt"), b"plain").unwrap();
    std::fs::create_dir_all(&data).unwrap();
    std::os::unix::fs::symlink("portico-data/identity.key", home.join("link-to-key")).unwrap();
    let (sender, reader) = (dir.path().join("sender"), dir.path().join("reader"));
    let acls = format!(
        "{}{}",
        acl(&peer_of(&sender), "view,files"),
        acl(&peer_of(&reader), "view,browse")
    );
    let env = [("HOME", home.to_str().unwrap())];

    // No browse_roots: only ~/Public, created empty.
    let mut host = Host::start_env(&x, &data, &acls, &[], &env);
    let addr = host.tcp_addr();
    assert!(data.join("identity.key").is_file());
    let out = files(&sender, &["ls", &addr, "/"]);
    assert!(
        text(&out).contains("browse permission"),
        "files alone: {}",
        text(&out)
    );
    let out = files(&reader, &["ls", &addr, "/"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "Public/");
    let out = files(&reader, &["ls", &addr, "/Public"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "");
    assert!(home.join("Public").is_dir());
    drop(host);

    // The owner shares the whole home: still no dot-folder, key or data dir.
    let config = format!("browse_roots = [{:?}]\n{acls}", home.display().to_string());
    let mut host = Host::start_env(&x, &data, &config, &[], &env);
    let addr = host.tcp_addr();
    let out = files(&reader, &["ls", &addr, "/home"]);
    assert!(out.status.success(), "{}", text(&out));
    let listing = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(listing.contains("notes.txt"), "{listing}");
    for hidden in [".ssh", "portico-data", "link-to-key", "host.toml"] {
        assert!(!listing.contains(hidden), "{hidden} listed: {listing}");
    }
    let out_dir = dir.path().join("got");
    std::fs::create_dir_all(&out_dir).unwrap();
    for path in [
        "/home/portico-data/identity.key",
        "/home/.ssh/id_ed25519",
        "/home/link-to-key",
        "/home/portico-data/host.toml",
    ] {
        let out = files(
            &reader,
            &["get", &addr, path, "--out", out_dir.to_str().unwrap()],
        );
        assert!(!out.status.success(), "{path} was served");
        assert!(text(&out).contains("not shared"), "{path}: {}", text(&out));
    }
    assert_eq!(std::fs::read_dir(&out_dir).unwrap().count(), 0);
}
