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
