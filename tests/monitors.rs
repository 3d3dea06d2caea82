//! Every monitor: two monitors made with `xrandr --setmonitor` on one Xvfb screen are listed;
//! `--monitor 1` shows the right half (PSNR ≥ 45 dB against that half of the screen); a live
//! switch from the input script shows the left half; a click on monitor 1's picture lands at
//! the right root coordinates. Two viewers at once each watch their own monitor, switch
//! independently, and each one's click lands on its own monitor; the owner sees (in
//! `portico sessions` and in the console, in Chromium) what each watches.
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
use std::time::{Duration, Instant};

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

/// An Xvfb screen split into two RandR monitors (left, right), a desktop drawn on it.
fn two_monitor_display() -> Xvfb {
    let x = Xvfb::start();
    x.draw(&x11::desktop(9));
    x.warp(5, 5);
    let w = format!("{HALF}/0x{}/0+0+0", x11::H);
    let w2 = format!("{HALF}/0x{}/0+{HALF}+0", x11::H);
    xrandr(&x, &["--setmonitor", "left", &w, "none"]);
    xrandr(&x, &["--setmonitor", "right", &w2, "none"]);
    x
}

/// Waits until the X pointer is at `at`.
fn pointer_reaches(x: &Xvfb, at: (i32, i32), what: &str) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while x.pointer() != at {
        assert!(
            Instant::now() < deadline,
            "{what}: the pointer stayed at {:?}, not {at:?}",
            x.pointer()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits until `portico sessions` on the host lists `n` sessions that each watch one of
/// `areas` (in any order); returns the lines.
fn sessions_watching(host: &std::path::Path, areas: &[&str]) -> String {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let run = run_at(host, &["sessions"]);
        assert!(run.status.success(), "portico sessions: {}", text(&run));
        let out = String::from_utf8_lossy(&run.stdout).into_owned();
        let mut seen: Vec<&str> = out.lines().filter_map(|l| l.split('\t').nth(5)).collect();
        seen.sort_unstable();
        let mut want = areas.to_vec();
        want.sort_unstable();
        if seen == want {
            return out;
        }
        assert!(
            Instant::now() < deadline,
            "`portico sessions` never showed {areas:?}:\n{out}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn two_viewers_watch_switch_and_click_on_their_own_monitors() {
    let x = two_monitor_display();
    let dir = tempfile::tempdir().unwrap();
    let (va, vb) = (dir.path().join("va"), dir.path().join("vb"));
    let config = format!(
        "{}{}",
        acl(&peer_of(&va), "view,control"),
        acl(&peer_of(&vb), "view,control")
    );
    let hdir = dir.path().join("host");
    let mut host = Host::start(&x, &hdir, &config, &[]);
    let addr = host.tcp_addr();
    let console = host.wait_line("Console:");
    let grab = x.grab();

    // A watches monitor 0 and clicks at 1.5 s; B watches monitor 1 and clicks at 3 s; then
    // A switches to monitor 1 (at 9 s) and B to monitor 0 (at 9.5 s). A shared switch would
    // leave both on monitor 0.
    let sa = script(
        &va,
        &[
            r#"{"delay_ms":1500,"event":{"pointer_move":{"x":100,"y":100}}}"#,
            r#"{"delay_ms":50,"event":{"button":{"button":"left","down":true}}}"#,
            r#"{"delay_ms":50,"event":{"button":{"button":"left","down":false}}}"#,
            r#"{"delay_ms":7400,"monitor":1}"#,
        ],
    );
    let sb = script(
        &vb,
        &[
            r#"{"delay_ms":3000,"event":{"pointer_move":{"x":200,"y":150}}}"#,
            r#"{"delay_ms":50,"event":{"button":{"button":"left","down":true}}}"#,
            r#"{"delay_ms":50,"event":{"button":{"button":"left","down":false}}}"#,
            r#"{"delay_ms":6400,"monitor":0}"#,
        ],
    );
    let viewer = |data: &std::path::Path, monitor: &str, sc: &std::path::Path| {
        let snap = data.join("end.png");
        let child = spawn_at(
            data,
            &[
                "connect",
                &addr,
                "--headless",
                "--monitor",
                monitor,
                "--duration",
                "12",
                "--no-cursor",
                "--snapshot",
                snap.to_str().unwrap(),
                "--input-script",
                sc.to_str().unwrap(),
            ],
        );
        (child, snap)
    };
    let (a, snap_a) = viewer(&va, "0", &sa);
    let (b, snap_b) = viewer(&vb, "1", &sb);

    pointer_reaches(&x, (100, 100), "A's click on monitor 0");
    pointer_reaches(&x, (HALF as i32 + 200, 150), "B's click on monitor 1");
    // Each on its own monitor: the owner sees both choices, in the CLI and the console.
    let lines = sessions_watching(&hdir, &["monitor 0", "monitor 1"]);
    eprintln!("{lines}");
    let row = drive(&console, &["session", "monitor 1"]);
    assert!(row.contains("monitor 1"), "{row}");
    // After the switches: A on monitor 1, B on monitor 0 (the snapshots say which is which).
    let (oa, ob) = (
        wait_exit(a, Duration::from_secs(25)),
        wait_exit(b, Duration::from_secs(25)),
    );
    ok(&oa);
    ok(&ob);
    let pa = psnr_half(&snap_a, &half(&grab, true));
    let pb = psnr_half(&snap_b, &half(&grab, false));
    assert!(
        pa >= 45.0,
        "A after its switch to monitor 1: PSNR {pa:.1} dB"
    );
    assert!(
        pb >= 45.0,
        "B after its switch to monitor 0: PSNR {pb:.1} dB"
    );
}

#[test]
fn two_monitors_pick_switch_and_click() {
    let x = two_monitor_display();
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

    // The whole desktop is one more choice: both monitors in one picture.
    let snap = dir.path().join("desktop.png");
    let sc = script(dir.path(), &[r#"{"delay_ms":1000,"monitor":"desktop"}"#]);
    let args = [
        "--duration",
        "3.5",
        "--no-cursor",
        "--snapshot",
        snap.to_str().unwrap(),
        "--input-script",
        sc.to_str().unwrap(),
    ];
    ok(&connect(&viewer, &addr, &args));
    let psnr = psnr_png(&snap, &grab);
    assert!(psnr >= 45.0, "the whole desktop: PSNR {psnr:.1} dB");

    // A monitor the host does not have: a clear error, not a silent monitor 0.
    let out = connect(&viewer, &addr, &["--monitor", "5", "--duration", "2"]);
    assert!(!out.status.success());
    let said = text(&out);
    assert!(
        said.contains("the host has 2 monitor(s)") && said.contains("no monitor 5"),
        "{said}"
    );
}
