//! The NAT matrix (simulations/netns/nat_matrix.sh) as a test: LAN by IP and by discovery,
//! Internet-ID across easy and symmetric NATs (easy/easy must end direct), a host with a
//! public address, the server killed after the session went direct, and restarted.
//!
//! It needs root with network namespaces and nftables (as CI here has). Anywhere else it
//! fails saying so, unless `PORTICO_SKIP_NETNS=1` skips it on purpose (reported as ignored:
//! the file has its own harness, libtest-mimic, so a skip is never counted as a pass).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::Command;

/// What the matrix needs that this machine lacks, if anything.
fn missing() -> Option<String> {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false);
    if !root {
        return Some("root (it builds network namespaces)".into());
    }
    for (tool, args) in [("ip", &["netns", "list"][..]), ("nft", &["--version"][..])] {
        let ok = Command::new(tool)
            .args(args)
            .output()
            .is_ok_and(|o| o.status.success());
        if !ok {
            return Some(format!("`{tool}` working here (`make deps` installs it)"));
        }
    }
    None
}

fn main() -> std::process::ExitCode {
    let args = libtest_mimic::Arguments::from_args();
    let skip = std::env::var_os("PORTICO_SKIP_NETNS").is_some();
    if skip {
        eprintln!("the NAT matrix is skipped: PORTICO_SKIP_NETNS is set");
    }
    let trial = libtest_mimic::Trial::test("the_nat_matrix_holds", the_nat_matrix_holds)
        .with_ignored_flag(skip);
    libtest_mimic::run(&args, vec![trial]).exit_code()
}

fn the_nat_matrix_holds() -> Result<(), libtest_mimic::Failed> {
    if let Some(what) = missing() {
        return Err(format!(
            "the NAT matrix needs {what}; run the tests as root on a machine with network \
             namespaces, or set PORTICO_SKIP_NETNS=1 to skip it deliberately (it is then \
             reported as ignored)"
        )
        .into());
    }
    let bin = Path::new(env!("CARGO_BIN_EXE_portico")).parent().unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("simulations/netns/nat_matrix.sh");
    let out = Command::new(&script).env("BIN", bin).output().unwrap();
    let table = String::from_utf8_lossy(&out.stdout);
    eprintln!("{table}");
    if !out.status.success() {
        return Err(format!(
            "the NAT matrix failed:\n{table}\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    Ok(())
}
