//! Every monitor: two monitors made with `xrandr --setmonitor` on one Xvfb screen are listed;
//! `--monitor 1` shows the right half (PSNR ≥ 45 dB against that half of the screen); a live
//! switch from the input script shows the left half; a click on monitor 1's picture lands at
//! the right root coordinates.
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

use std::process::Command;

use procs::*;
use x11::Xvfb;

const HALF: u32 = x11::W / 2;

fn xrandr(x: &Xvfb, args: &[&str]) {
    let out = Command::new("xrandr")
        .args(args)
        .env("DISPLAY", &x.display)
        .output()
        .expect("xrandr is not installed: run `make test`");
    assert!(
        out.status.success(),
        "xrandr {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The left or right half of an RGBA screen grab.
fn half(rgba: &[u8], right: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity((HALF * x11::H * 4) as usize);
    for y in 0..x11::H {
        let start = ((y * x11::W + if right { HALF } else { 0 }) * 4) as usize;
        out.extend_from_slice(&rgba[start..start + (HALF * 4) as usize]);
    }
    out
}

fn psnr_half(png: &std::path::Path, reference: &[u8]) -> f64 {
    let img = image::open(png).unwrap().to_rgba8();
    assert_eq!(
        img.dimensions(),
        (HALF, x11::H),
        "the picture is not one monitor"
    );
    portico_core::tiles::psnr_rgba(img.as_raw(), reference)
}

#[test]
fn two_monitors_pick_switch_and_click() {
    let x = Xvfb::start();
    x.draw(&x11::desktop(9));
    x.warp(5, 5);
    let w = format!("{HALF}/0x{}/0+0+0", x11::H);
    let w2 = format!("{HALF}/0x{}/0+{HALF}+0", x11::H);
    xrandr(&x, &["--setmonitor", "left", &w, "none"]);
    xrandr(&x, &["--setmonitor", "right", &w2, "none"]);
    let dir = tempfile::tempdir().unwrap();
    let viewer = dir.path().join("viewer");
    let vpeer = peer_of(&viewer);
    let mut host = Host::start(
        &x,
        &dir.path().join("host"),
        &acl(&vpeer, "view,control"),
        &[],
    );
    let addr = host.tcp_addr();
    let grab = x.grab();

    // Monitor 1, and a click at (100, 100) of its picture.
    let (snap, st) = (dir.path().join("m1.png"), dir.path().join("m1.json"));
    let sc = script(
        dir.path(),
        &[
            r#"{"delay_ms":800,"event":{"pointer_move":{"x":100,"y":100}}}"#,
            r#"{"delay_ms":50,"event":{"button":{"button":"left","down":true}}}"#,
            r#"{"delay_ms":50,"event":{"button":{"button":"left","down":false}}}"#,
        ],
    );
    let args = [
        "--monitor",
        "1",
        "--duration",
        "3",
        "--no-cursor",
        "--snapshot",
        snap.to_str().unwrap(),
        "--stats",
        st.to_str().unwrap(),
        "--input-script",
        sc.to_str().unwrap(),
    ];
    ok(&connect(&viewer, &addr, &args));
    let stats: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&st).unwrap()).unwrap();
    assert_eq!(
        stats["monitors"],
        serde_json::json!([[HALF, x11::H], [HALF, x11::H]])
    );
    let psnr = psnr_half(&snap, &half(&grab, true));
    assert!(
        psnr >= 45.0,
        "monitor 1: PSNR {psnr:.1} dB against the right half"
    );
    assert_eq!(
        x.pointer(),
        (HALF as i32 + 100, 100),
        "the click missed monitor 1"
    );

    // A live switch to monitor 0.
    let snap = dir.path().join("m0.png");
    let sc = script(dir.path(), &[r#"{"delay_ms":1000,"monitor":0}"#]);
    let args = [
        "--monitor",
        "1",
        "--duration",
        "3.5",
        "--no-cursor",
        "--snapshot",
        snap.to_str().unwrap(),
        "--input-script",
        sc.to_str().unwrap(),
    ];
    ok(&connect(&viewer, &addr, &args));
    let psnr = psnr_half(&snap, &half(&grab, false));
    assert!(
        psnr >= 45.0,
        "after the switch: PSNR {psnr:.1} dB against the left half"
    );
}
