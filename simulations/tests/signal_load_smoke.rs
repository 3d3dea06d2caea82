//! The load simulation runs end to end against the real server binary and prints its figures
//! (small numbers: this checks behaviour, not speed).
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[test]
fn signal_load_prints_its_figures() {
    let bin = std::path::Path::new(env!("CARGO_BIN_EXE_signal_load"));
    let server = bin.with_file_name("portico-signal");
    assert!(
        server.exists(),
        "build the workspace first (`cargo build --workspace`): {} is missing",
        server.display()
    );
    let out = std::process::Command::new(bin)
        .args([
            "--hosts",
            "20",
            "--lookups",
            "20",
            "--duration",
            "2",
            "--heartbeat",
            "1",
            "--server-bin",
        ])
        .arg(&server)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("registrations: 20 hosts"), "{text}");
    assert!(text.contains("0 failed"), "{text}");
    assert!(text.contains(", 0 errors"), "{text}");
    assert!(text.contains("KiB per registered host"), "{text}");
}
