//! The remote cursor, end to end on a real X server: the pointer moved on the host with
//! xdotool shows in the viewer's stats within 200 ms and is drawn into the snapshot at the
//! right place; the shape is sent once and again only when it changes. Also the capture paths:
//! X11 damage (default) and xcap full grabs (`--capture xcap`) both deliver a sharp picture.
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
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use procs::*;
use x11::Xvfb;

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

fn x_tool(x: &Xvfb, cmd: &str, args: &[&str]) {
    let ok = Command::new(cmd)
        .args(args)
        .env("DISPLAY", &x.display)
        .status()
        .unwrap()
        .success();
    assert!(ok, "{cmd} {args:?} failed");
}

#[test]
fn pointer_moves_show_in_stats_and_snapshot_and_shapes_arrive_once() {
    let x = Xvfb::start();
    x.draw(&x11::desktop(4));
    x.warp(100, 100);
    let dir = tempfile::tempdir().unwrap();
    let viewer = dir.path().join("viewer");
    let vpeer = peer_of(&viewer);
    let mut host = Host::start(&x, &dir.path().join("host"), &acl(&vpeer, "view"), &[]);
    let addr = host.tcp_addr();
    let (snap, st) = (dir.path().join("snap.png"), dir.path().join("stats.json"));
    let v = spawn_at(
        &viewer,
        &[
            "connect",
            &addr,
            "--headless",
            "--duration",
            "5",
            "--snapshot",
            snap.to_str().unwrap(),
            "--stats",
            st.to_str().unwrap(),
        ],
    );
    std::thread::sleep(Duration::from_millis(1500));
    for (px, py) in [(300, 200), (500, 300)] {
        x_tool(
            &x,
            "xdotool",
            &["mousemove", &px.to_string(), &py.to_string()],
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // A new shape, then the last move (timed).
    x_tool(&x, "xsetroot", &["-cursor_name", "crosshair"]);
    std::thread::sleep(Duration::from_millis(300));
    let moved_at = unix_ms();
    x_tool(&x, "xdotool", &["mousemove", "700", "400"]);
    let out = wait_exit(v, Duration::from_secs(20));
    assert!(out.status.success(), "{}", text(&out));
    let stats = std::fs::read_to_string(&st).unwrap();
    let s = stats::parse(&stats);
    let c = &s["cursor"];
    assert_eq!(
        (c["x"].as_i64(), c["y"].as_i64()),
        (Some(700), Some(400)),
        "{c}"
    );
    assert_eq!(c["visible"].as_bool(), Some(true));
    let latency = c["at_unix_ms"].as_u64().unwrap().saturating_sub(moved_at);
    assert!(
        latency <= 200,
        "the pointer move took {latency} ms to reach the viewer"
    );
    // The initial shape and the one change: two, not one per move.
    assert_eq!(s["cursor_shapes"].as_u64(), Some(2), "{stats}");

    // The snapshot has the pointer drawn at its hotspot; the host's own grab has none.
    let img = image::open(&snap).unwrap().to_rgba8();
    let grab = x.grab();
    let [w, h, hx, hy] = [0, 1, 2, 3].map(|i| c["shape"][i].as_u64().unwrap() as u32);
    let (ox, oy) = (700 - hx, 400 - hy);
    let mut differ = 0;
    for yy in oy..oy + h {
        for xx in ox..ox + w {
            let i = ((yy * x11::W + xx) * 4) as usize;
            if img.get_pixel(xx, yy).0[..3] != grab[i..i + 3] {
                differ += 1;
            }
        }
    }
    assert!(
        differ > 10,
        "the cursor is not in the snapshot ({differ} pixels differ)"
    );
}

#[test]
fn xcap_full_grabs_still_deliver_a_sharp_picture() {
    let x = Xvfb::start();
    x.draw(&x11::desktop(8));
    let dir = tempfile::tempdir().unwrap();
    let viewer = dir.path().join("viewer");
    let vpeer = peer_of(&viewer);
    let mut host = Host::start(
        &x,
        &dir.path().join("host"),
        &acl(&vpeer, "view"),
        &["--capture", "xcap"],
    );
    let addr = host.tcp_addr();
    let snap = dir.path().join("snap.png");
    let st = dir.path().join("stats.json");
    ok(&connect(
        &viewer,
        &addr,
        &[
            "--duration",
            "2.5",
            "--snapshot",
            snap.to_str().unwrap(),
            "--stats",
            st.to_str().unwrap(),
        ],
    ));
    let psnr = psnr_png(&snap, &x.grab());
    assert!(psnr >= 45.0, "xcap path: PSNR {psnr:.1} dB < 45 dB");
    // No cursor messages on this path.
    let s = stats::parse(&std::fs::read_to_string(&st).unwrap());
    assert_eq!(s["cursor_shapes"].as_u64(), Some(0));
}

/// The stats file as JSON values.
mod stats {
    pub fn parse(text: &str) -> serde_json::Value {
        serde_json::from_str(text).unwrap()
    }
}
