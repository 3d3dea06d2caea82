//! Content coding on a real X server: a scrolling xterm reaches the viewer as copies plus
//! the revealed lines and settles exact; a viewer joining a still screen of text gets it
//! losslessly with no H.264 frame at all.
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

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use procs::*;
use x11::Xvfb;

/// A process killed on drop.
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A white page of black glyph-like text (two colours: text-like in every tile).
fn text_page() -> Vec<u8> {
    let mut v = vec![250u8; (x11::W * x11::H * 3) as usize];
    for y in 0..x11::H {
        for x in 0..x11::W {
            let (cx, cy, px, py) = (x / 8, y / 16, x % 8, y % 16);
            if px < 6 && (2..14).contains(&py) && (cx * 7 + cy * 3 + px * py) % 5 < 2 {
                let i = ((y * x11::W + x) * 3) as usize;
                v[i..i + 3].copy_from_slice(&[20, 20, 30]);
            }
        }
    }
    v
}

#[test]
fn a_scrolling_xterm_arrives_as_copies_and_settles_exact() {
    let x = Xvfb::start();
    x.draw(&text_page());
    let dir = tempfile::tempdir().unwrap();
    let (go, done) = (dir.path().join("go"), dir.path().join("done"));
    // 150 lines at ~40 lines/s once `go` exists, then still.
    let script = format!(
        "while [ ! -e '{go}' ]; do sleep 0.05; done; i=0; \
         while [ $i -lt 150 ]; do i=$((i+1)); \
         echo \"line $i: the quick brown fox jumps over the lazy dog, $i times\"; \
         sleep 0.025; done; touch '{done}'; exec sleep 600",
        go = go.display(),
        done = done.display()
    );
    let _term = Killed(
        Command::new("xterm")
            .args(["-geometry", "100x40+0+0", "-e", "sh", "-c", &script])
            .env("DISPLAY", &x.display)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("xterm is not installed: run `make test` (it installs xterm)"),
    );
    x.warp(1200, 700);
    std::thread::sleep(Duration::from_millis(800));
    let viewer = dir.path().join("viewer");
    let vpeer = peer_of(&viewer);
    let mut host = Host::start(&x, &dir.path().join("host"), &acl(&vpeer, "view"), &[]);
    let addr = host.tcp_addr();
    let (snap, st) = (dir.path().join("s.png"), dir.path().join("s.json"));
    let go2 = go.clone();
    let trigger = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(1500));
        std::fs::write(go2, b"").unwrap();
    });
    ok(&connect(
        &viewer,
        &addr,
        &[
            "--duration",
            "8",
            "--snapshot",
            snap.to_str().unwrap(),
            "--no-cursor",
            "--stats",
            st.to_str().unwrap(),
        ],
    ));
    trigger.join().unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !done.exists() {
        assert!(
            Instant::now() < deadline,
            "the xterm did not finish scrolling"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let s = stats(&st);
    assert!(
        s.num_field("copy_updates") >= 10.0,
        "a scrolling terminal should arrive as copies: {} copy updates",
        s.num_field("copy_updates")
    );
    assert_eq!(s.num_field("bad_updates"), 0.0);
    let psnr = psnr_png(&snap, &x.grab());
    assert!(psnr >= 45.0, "settled picture PSNR {psnr:.1} dB < 45 dB");
}

#[test]
fn a_joining_viewer_of_still_text_gets_it_losslessly_without_video() {
    let x = Xvfb::start();
    x.draw(&text_page());
    x.warp(5, 5);
    let dir = tempfile::tempdir().unwrap();
    let viewer = dir.path().join("viewer");
    let vpeer = peer_of(&viewer);
    let mut host = Host::start(&x, &dir.path().join("host"), &acl(&vpeer, "view"), &[]);
    let addr = host.tcp_addr();
    let (snap, st) = (dir.path().join("s.png"), dir.path().join("s.json"));
    ok(&connect(
        &viewer,
        &addr,
        &[
            "--duration",
            "1.5",
            "--snapshot",
            snap.to_str().unwrap(),
            "--no-cursor",
            "--stats",
            st.to_str().unwrap(),
        ],
    ));
    let s = stats(&st);
    assert_eq!(
        s.num_field("video_frames"),
        0.0,
        "no H.264 for a still text screen"
    );
    assert!(s.num_field("lossless_updates") >= 1.0);
    let psnr = psnr_png(&snap, &x.grab());
    assert_eq!(psnr, 99.0, "the picture must be exact (PSNR {psnr:.1} dB)");
}
