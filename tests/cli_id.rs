//! End-to-end: the real `portico` binary's identity command and its error messages.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::{Command, Output};

fn portico(args: &[&str], env_data: Option<&Path>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_portico"));
    cmd.args(args).env_remove("PORTICO_DATA");
    if let Some(d) = env_data {
        cmd.env("PORTICO_DATA", d);
    }
    cmd.output().expect("run portico")
}

fn field(out: &Output, name: &str) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout);
    stdout
        .lines()
        .find_map(|l| l.strip_prefix(name).map(|v| v.trim().to_string()))
        .unwrap_or_else(|| panic!("no {name} in:\n{stdout}"))
}

#[test]
fn id_is_created_once_and_stable_with_data_anywhere() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let d = data.to_str().unwrap();
    let first = portico(&["--data", d, "id"], None);
    assert!(first.status.success(), "{first:?}");
    assert!(String::from_utf8_lossy(&first.stdout).contains("Created a new identity"));
    let peer = field(&first, "PeerId:");
    assert!(peer.starts_with("12D3Koo"), "{peer}");
    let fp = field(&first, "Fingerprint:");
    assert!(field(&first, "Internet-ID:").starts_with("not registered"));

    // --data after the subcommand, and through the environment: same identity.
    let after = portico(&["id", "--data", d], None);
    assert_eq!(field(&after, "PeerId:"), peer);
    assert!(!String::from_utf8_lossy(&after.stdout).contains("Created"));
    let env = portico(&["id"], Some(&data));
    assert_eq!(field(&env, "PeerId:"), peer);
    assert_eq!(field(&env, "Fingerprint:"), fp);
}

#[cfg(unix)]
#[test]
fn loose_key_permissions_are_refused_with_a_fix() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    assert!(portico(&["id", "--data", d], None).status.success());
    let key = dir.path().join("identity.key");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o640)).unwrap();
    let out = portico(&["id", "--data", d], None);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("readable by other users") && err.contains("chmod 600"),
        "{err}"
    );
}

#[test]
fn unknown_command_says_what_to_do() {
    let out = portico(&["frobnicate"], None);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("unrecognized subcommand") && err.contains("--help"),
        "{err}"
    );
}

#[test]
fn help_lists_commands() {
    let out = portico(&["--help"], None);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("id") && text.contains("--data"), "{text}");
}
