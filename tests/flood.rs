//! A connection flood from many addresses — 1000 raw TCP connections and half-open Noise
//! handshakes at once, reconnecting as soon as they are dropped — while a trusted viewer
//! watches a changing screen: the viewer keeps at least 20 frames a second.
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

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use procs::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use x11::Xvfb;

/// Attacking connections held at once.
const FLOOD: usize = 1000;
/// Source addresses they come from (127.0.0.2 …): 32 each, so every address stays within
/// the host's per-address limit and all of them reach the handshake.
const SOURCES: usize = 32;

/// Opens connections from `source` to `target` until `stop`: even ones send nothing, odd
/// ones start a libp2p Noise handshake (multistream-select, `/noise`, message 1) and never
/// finish it. Counts connections made.
async fn attacker(n: usize, target: SocketAddr, stop: Arc<AtomicBool>, made: Arc<AtomicU64>) {
    let source = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2 + (n % SOURCES) as u8));
    let mut hello = Vec::new();
    hello.push(19u8);
    hello.extend_from_slice(b"/multistream/1.0.0\n");
    hello.push(7u8);
    hello.extend_from_slice(b"/noise\n");
    hello.extend_from_slice(&32u16.to_be_bytes());
    hello.extend((0..32u8).map(|i| i.wrapping_mul(37).wrapping_add(n as u8)));
    while !stop.load(Ordering::Relaxed) {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind(SocketAddr::new(source, 0)).unwrap();
        let Ok(mut conn) = socket.connect(target).await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        made.fetch_add(1, Ordering::Relaxed);
        if n % 2 == 1 && conn.write_all(&hello).await.is_err() {
            continue;
        }
        // Hold it until the host drops it (or the flood ends), reading whatever comes.
        let mut buf = [0u8; 1024];
        loop {
            tokio::select! {
                r = conn.read(&mut buf) => if matches!(r, Ok(0) | Err(_)) { break },
                _ = tokio::time::sleep(Duration::from_millis(200)) => {
                    if stop.load(Ordering::Relaxed) { return }
                }
            }
        }
    }
}

#[test]
fn a_trusted_viewer_keeps_its_frame_rate_through_a_connection_flood() {
    let x = Xvfb::start();
    x.draw(&x11::desktop(3));
    let dir = tempfile::tempdir().unwrap();
    let (viewer, mut host) = trusted_host(&x, dir.path(), "view", &[]);
    let addr = host.tcp_addr();
    let port: u16 = addr
        .split('/')
        .skip_while(|p| *p != "tcp")
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let target = SocketAddr::from(([127, 0, 0, 1], port));

    // Something moves on the screen 30 times a second (a small square: the frame rate is
    // the pacing's, not the encoder's on a loaded 2-core machine).
    let stop_drawing = Arc::new(AtomicBool::new(false));
    let (s2, display) = (stop_drawing.clone(), x.display.clone());
    let animator = std::thread::spawn(move || {
        let painter = x11::Xvfb::attach(&display).painter();
        for t in 0u32.. {
            if s2.load(Ordering::Relaxed) {
                break;
            }
            let (px, py) = ((t * 8 % 1000) as i16, (100 + t * 3 % 400) as i16);
            painter.fill(
                px,
                py,
                96,
                96,
                0x10_20_30 + t.wrapping_mul(0x01_07_0b) % 0xff_ff_ff,
            );
            std::thread::sleep(Duration::from_millis(33));
        }
    });
    let watch = |name: &str| {
        let st = dir.path().join(name);
        ok(&connect(
            &viewer,
            &addr,
            &["--duration", "4", "--stats", st.to_str().unwrap()],
        ));
        stats(&st).num_field("fps")
    };
    let calm = watch("calm.json");

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let made = Arc::new(AtomicU64::new(0));
    let tasks: Vec<_> = (0..FLOOD)
        .map(|n| rt.spawn(attacker(n, target, stop.clone(), made.clone())))
        .collect();
    std::thread::sleep(Duration::from_secs(1));
    let flooded = watch("flood.json");
    stop.store(true, Ordering::Relaxed);
    rt.block_on(async {
        for t in tasks {
            t.await.unwrap();
        }
    });
    stop_drawing.store(true, Ordering::Relaxed);
    animator.join().unwrap();
    let made = made.load(Ordering::Relaxed);
    eprintln!("{calm:.1} fps calm, {flooded:.1} fps under a flood of {made} connections");
    assert!(made >= FLOOD as u64, "the flood did not happen: {made}");
    assert!(
        flooded >= 20.0,
        "{flooded:.1} fps under the flood ({calm:.1} calm, {made} connections)"
    );
    // The host is still there for the next viewer.
    assert!(watch("after.json") > 0.0);
}
