//! Many viewers at once: sixteen trusted viewers started in the same instant against one
//! host, three rounds; every one connects and gets a picture. The finding: a host handed
//! inbound session streams over through a one-place channel polled on its busy actix
//! thread, so most of a burst was dropped and viewers failed with "connection is closed".
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

const VIEWERS: usize = 16;
const ROUNDS: usize = 3;

#[test]
fn sixteen_viewers_at_once_all_connect_three_rounds_running() {
    let x = Xvfb::start();
    x.draw(&x11::desktop(11));
    let dir = tempfile::tempdir().unwrap();
    let viewers: Vec<_> = (0..VIEWERS)
        .map(|i| dir.path().join(format!("v{i}")))
        .collect();
    let config: String = viewers.iter().map(|v| acl(&peer_of(v), "view")).collect();
    let mut host = Host::start(&x, &dir.path().join("host"), &config, &[]);
    let addr = host.tcp_addr();
    for round in 0..ROUNDS {
        let children: Vec<_> = viewers
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let png = dir.path().join(format!("r{round}-v{i}.png"));
                let snapshot = png.to_str().unwrap().to_string();
                let args = [
                    "connect",
                    &addr,
                    "--headless",
                    "--frames",
                    "2",
                    "--snapshot",
                    &snapshot,
                ];
                (png.clone(), spawn_at(v, &args))
            })
            .collect();
        let mut failed = Vec::new();
        for (i, (png, child)) in children.into_iter().enumerate() {
            let out = wait_exit(child, Duration::from_secs(60));
            if !out.status.success() || !png.is_file() {
                failed.push(format!("viewer {i}: {}", text(&out)));
            }
        }
        assert!(
            failed.is_empty(),
            "round {round}: {} of {VIEWERS} failed:\n{}",
            failed.len(),
            failed.join("\n")
        );
    }
}
