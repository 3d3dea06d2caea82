//! Media benchmark: per-stage costs at 1920×1080 and 1280×720 on a changing synthetic desktop
//! (scrolling text, a moving window), then end to end over loopback through the real host
//! pipeline (capture thread → encoder → Noise session over libp2p) and the real viewer, and
//! the cost of an idle desktop.
//!
//! `cargo run --release -p portico-simulations --bin media_bench` (or `make bench`).

use std::time::{Duration, Instant};

use clap::Parser;
use openh264::decoder::Decoder;
use openh264::formats::{RgbaSliceU8, YUVBuffer};
use portico_actors::capture::{FrameSource, Pacing, XcapSource};
use portico_actors::encoder::h264_encoder;
use portico_actors::host::{self, HostConfig};
use portico_core::identity::Identity;
use portico_core::policy::{AccessKind, AclEntry, Approval, HostSettings, RequestedMode};
use portico_core::tiles::lossless::{few_colours, LosslessEncoder};
use portico_core::tiles::{changed_tiles, scroll, Grid};
use portico_core::wire::handshake::AccessRequest;
use portico_core::wire::session::Rect;
use portico_simulations::desktop::{render, Synthetic};
use portico_simulations::percentile;
use portico_viewer::{self as viewer, Dial, Headless};

/// Media benchmark.
#[derive(Debug, Parser)]
struct Args {
    /// Seconds per end-to-end run.
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
    /// Capture pacing for the end-to-end runs (frames per second).
    #[arg(long, default_value_t = 60)]
    fps: u32,
    /// Only this size (e.g. 1280x720).
    #[arg(long)]
    only: Option<String>,
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    percentile(v, 50.0).unwrap_or(f64::NAN)
}

fn bitrate_for(w: u32) -> u32 {
    if w >= 1920 {
        8_000_000
    } else {
        4_000_000
    }
}

fn components(w: u32, h: u32) -> anyhow::Result<()> {
    let frames: Vec<Vec<u8>> = (0..60).map(|t| render(w, h, t)).collect();
    let mut yuv = YUVBuffer::new(w as usize, h as usize);
    let mut enc = h264_encoder(bitrate_for(w))?;
    let mut dec = Decoder::new()?;
    let (mut conv, mut encode, mut decode, mut sizes) = (vec![], vec![], vec![], vec![]);
    for f in &frames {
        let t = Instant::now();
        yuv.read_rgba8(RgbaSliceU8::new(f, (w as usize, h as usize)));
        conv.push(t.elapsed().as_secs_f64() * 1e3);
        let t = Instant::now();
        let bytes = enc.encode(&yuv)?.to_vec();
        encode.push(t.elapsed().as_secs_f64() * 1e3);
        sizes.push(bytes.len() as f64);
        if bytes.is_empty() {
            continue;
        }
        let t = Instant::now();
        let _picture = dec.decode(&bytes)?;
        decode.push(t.elapsed().as_secs_f64() * 1e3);
    }
    let first = sizes[0];
    let mean_p = sizes[1..].iter().sum::<f64>() / (sizes.len() - 1) as f64;
    println!(
        "  RGBA->I420 {:.2} ms | encode {:.2} ms | decode {:.2} ms (medians)",
        median(&mut conv),
        median(&mut encode),
        median(&mut decode)
    );
    println!("  H.264 bytes/frame: first (I) {first:.0}, then mean {mean_p:.0} = {:.2} Mbit/s at 30 fps (target {} Mbit/s)", mean_p * 8.0 * 30.0 / 1e6, bitrate_for(w) / 1_000_000);
    lossless_steps(w, h, &frames[0])?;
    content_coding(w, h, &frames)?;
    Ok(())
}

fn all_tiles(w: u32, h: u32) -> Vec<Rect> {
    let g = Grid {
        width: w,
        height: h,
    };
    (0..g.len()).map(|i| g.rect(i)).collect()
}

/// What each step of the lossless coding buys on the synthetic desktop's text area (the
/// left 60%): per-tile zstd of RGB (the old coding), palette + one zstd stream, and the same
/// picture once more through the persistent context.
fn lossless_steps(w: u32, h: u32, frame: &[u8]) -> anyhow::Result<()> {
    let text: Vec<Rect> = all_tiles(w, h)
        .into_iter()
        .filter(|r| r.x + r.w <= w * 6 / 10)
        .collect();
    let raw: usize = text.iter().map(|r| (r.w * r.h * 3) as usize).sum();
    let t = Instant::now();
    let mut per_tile = 0;
    for r in &text {
        let mut rgb = Vec::with_capacity((r.w * r.h * 3) as usize);
        for y in r.y..r.y + r.h {
            let at = ((y * w + r.x) * 4) as usize;
            for px in frame[at..at + (r.w * 4) as usize].chunks_exact(4) {
                rgb.extend_from_slice(&px[..3]);
            }
        }
        per_tile += zstd::bulk::compress(&rgb, 3)?.len();
    }
    let per_tile_ms = t.elapsed().as_secs_f64() * 1e3;
    let mut enc = LosslessEncoder::new();
    let t = Instant::now();
    let first = enc.encode(frame, w, &text)?.data.len();
    let first_ms = t.elapsed().as_secs_f64() * 1e3;
    let t = Instant::now();
    let again = enc.encode(frame, w, &text)?.data.len();
    let again_ms = t.elapsed().as_secs_f64() * 1e3;
    println!(
        "  lossless, text area ({} KiB raw RGB): per-tile zstd {:.1} KiB in {per_tile_ms:.1} ms | palette + stream {:.1} KiB in {first_ms:.1} ms | the same again in context {:.2} KiB in {again_ms:.1} ms",
        raw / 1024,
        per_tile as f64 / 1024.0,
        first as f64 / 1024.0,
        again as f64 / 1024.0
    );
    Ok(())
}

/// The per-frame content coding on the scrolling synthetic desktop: moves found and applied,
/// the rest split into few-colour regions (lossless, persistent context) and many-colour
/// tiles (H.264), against coding every changed frame as H.264.
fn content_coding(w: u32, h: u32, frames: &[Vec<u8>]) -> anyhow::Result<()> {
    let grid = Grid {
        width: w,
        height: h,
    };
    let mut enc = LosslessEncoder::new();
    let (mut ms, mut bytes, mut fresh_bytes, mut copies, mut photo) =
        (vec![], 0usize, 0usize, 0usize, 0usize);
    for pair in frames.windows(2) {
        let (prev, cur) = (&pair[0], &pair[1]);
        let mut model = prev.clone();
        let t = Instant::now();
        let changed = changed_tiles(grid, prev, cur);
        let moves = match grid.bounds(&changed) {
            Some(area) => scroll::detect(&model, cur, w, h, area),
            None => Vec::new(),
        };
        for c in &moves {
            scroll::apply(&mut model, w, h, c)?;
        }
        let mut text = Vec::new();
        for &i in &changed {
            if let Some(r) = scroll::diff_bounds(&model, cur, w, grid.rect(i)) {
                if few_colours(cur, w, r, portico_actors::encoder::TEXT_COLOURS) {
                    text.push(r);
                } else {
                    photo += 1;
                }
            }
        }
        let data = enc.encode(cur, w, &text)?.data;
        ms.push(t.elapsed().as_secs_f64() * 1e3);
        bytes += data.len() + moves.len() * 24;
        copies += moves.len();
        fresh_bytes += LosslessEncoder::new().encode(cur, w, &text)?.data.len();
    }
    let n = (frames.len() - 1) as f64;
    println!(
        "  content coding per frame: {:.2} ms (median), {:.1} copies, lossless {:.0} B/frame ({:.0} B with a fresh context each frame), {:.0} many-colour tiles/frame left to H.264",
        median(&mut ms),
        copies as f64 / n,
        bytes as f64 / n,
        fresh_bytes as f64 / n,
        photo as f64 / n
    );
    Ok(())
}

/// Capture cost on a private Xvfb of this size, when Xvfb is installed.
fn capture(w: u32, h: u32) -> String {
    let display = format!(":{}", 900 + std::process::id() % 90);
    let child = std::process::Command::new("Xvfb")
        .args([
            display.as_str(),
            "-screen",
            "0",
            &format!("{w}x{h}x24"),
            "-noreset",
            "-nolisten",
            "tcp",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn();
    let Ok(mut child) = child else {
        return "n/a (Xvfb not installed)".into();
    };
    std::thread::sleep(Duration::from_millis(700));
    // Single-threaded at this point: the benchmark sets DISPLAY for xcap only here.
    std::env::set_var("DISPLAY", &display);
    let full = match XcapSource::open(0) {
        Ok((mut src, _, _)) => {
            let mut t = Vec::new();
            for _ in 0..20 {
                let s = Instant::now();
                if src.grab().is_err() {
                    break;
                }
                t.push(s.elapsed().as_secs_f64() * 1e3);
            }
            format!("{:.2} ms (median of {})", median(&mut t), t.len())
        }
        Err(e) => format!("n/a ({e})"),
    };
    let damage = damage_capture(w, h).unwrap_or_else(|e| format!("n/a ({e})"));
    let result = format!("full grab (xcap) {full}\n  {damage}");
    if let Err(e) = child.kill() {
        eprintln!("could not stop Xvfb: {e}");
    }
    let _status = child.wait();
    result
}

/// The damage-driven path on the display in `DISPLAY`: a full read, a still screen, and a
/// one-line change (a 16-pixel strip drawn by another client) read and then encoded.
fn damage_capture(w: u32, h: u32) -> anyhow::Result<String> {
    use portico_actors::capture::x11::X11Source;
    use x11rb::connection::Connection;
    use x11rb::protocol::xproto::{ChangeGCAux, ConnectionExt as _, CreateGCAux, Rectangle};
    use x11rb::wrapper::ConnectionExt as _;
    let mut src = X11Source::open().map_err(anyhow::Error::msg)?;
    let (conn, screen) = x11rb::connect(None)?;
    let root = conn.setup().roots[screen].root;
    let gc = conn.generate_id()?;
    conn.create_gc(gc, root, &CreateGCAux::new().foreground(0x00ff_ffff))?;
    conn.flush()?;
    let (mut full, mut still, mut line, mut line_tiles, mut encode) =
        (vec![], vec![], vec![], vec![], vec![]);
    let mut lossless = vec![];
    let mut lossless_enc = LosslessEncoder::new();
    let mut enc = h264_encoder(bitrate_for(w))?;
    let mut yuv = YUVBuffer::new(w as usize, h as usize);
    for i in 0..20u32 {
        // A whole-screen read through the same path (what a monitor switch costs).
        let t = Instant::now();
        src.set_area(src.desktop()).map_err(anyhow::Error::msg)?;
        full.push(t.elapsed().as_secs_f64() * 1e3);
        let t = Instant::now();
        src.update(false).map_err(anyhow::Error::msg)?;
        still.push(t.elapsed().as_secs_f64() * 1e3);
        // One text line changes: a 16-pixel strip across the screen.
        conn.change_gc(
            gc,
            &ChangeGCAux::new().foreground(0x0010_1010 * (i % 15 + 1)),
        )?;
        let y = (i * 37 % (h - 16)) as i16;
        conn.poly_fill_rectangle(
            root,
            gc,
            &[Rectangle {
                x: 0,
                y,
                width: w as u16,
                height: 16,
            }],
        )?;
        conn.sync()?;
        let t = Instant::now();
        src.wait(Duration::from_secs(1));
        let up = src.update(false).map_err(anyhow::Error::msg)?;
        line.push(t.elapsed().as_secs_f64() * 1e3);
        line_tiles.push(up.changed.len() as f64);
        let frame = src.frame();
        // What the encoder does with it: a few-colour change goes out lossless at once.
        let grid = src.grid();
        let t = Instant::now();
        let rects: Vec<Rect> = up.changed.iter().map(|&i| grid.rect(i)).collect();
        if rects
            .iter()
            .all(|&r| few_colours(&frame, w, r, portico_actors::encoder::TEXT_COLOURS))
        {
            lossless_enc.encode(&frame, w, &rects)?;
            lossless.push(t.elapsed().as_secs_f64() * 1e3);
        }
        let t = Instant::now();
        yuv.read_rgba8(RgbaSliceU8::new(&frame, (w as usize, h as usize)));
        let _bytes = enc.encode(&yuv)?.to_vec();
        encode.push(t.elapsed().as_secs_f64() * 1e3);
    }
    Ok(format!(
        "damage (X11 DAMAGE; MIT-SHM for regions of 128x128 and up, GetImage below): full read {:.2} ms | still screen {:.3} ms | one-line change read {:.2} ms ({:.0} tiles) + lossless coding {:.2} ms ({} of 20 took that path; H.264 of the whole frame would be {:.2} ms) (medians)",
        median(&mut full),
        median(&mut still),
        median(&mut line),
        median(&mut line_tiles),
        median(&mut lossless.clone()),
        lossless.len(),
        median(&mut encode),
    ))
}

struct E2e {
    fps: f64,
    kbps: f64,
    p50: f64,
    p95: f64,
    first_ms: f64,
    idle_bps_after_1s: f64,
}

fn end_to_end(w: u32, h: u32, moving: bool, secs: f64, fps: u32) -> anyhow::Result<E2e> {
    let host_id = Identity::generate();
    let viewer_id = Identity::generate();
    let acl = vec![AclEntry {
        principal: format!("peer:{}", viewer_id.peer_id()).parse()?,
        permissions: "view".parse()?,
        approval: Approval::Never,
        expires_at: None,
    }];
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let n = if moving { 120 } else { 1 };
    let host_thread = std::thread::spawn(move || {
        let sys = actix::System::new();
        sys.block_on(async move {
            let config = HostConfig {
                listen: host::listen_addrs("127.0.0.1:0")
                    .unwrap_or_default()
                    .into_iter()
                    .take(1)
                    .collect(),
                server: None,
                settings: HostSettings::default(),
                acl,
                area: Default::default(),
                pacing: Pacing {
                    fps,
                    ..Pacing::default()
                },
                mdns: false,
                source: Some(Box::new(Synthetic::new(w, h, n)) as Box<dyn FrameSource>),
                capture: Default::default(),
                owner_timeout: Duration::from_secs(60),
                data_dir: None,
                console: None,
                download_dir: std::env::temp_dir().join("portico-bench-downloads"),
                connections_per_ip: portico_signal_client::ip_limits::MAX_INBOUND_PER_IP,
                lan_name: "bench".into(),
                notifications: false,
                browse_roots: Vec::new(),
                private_files: Vec::new(),
            };
            match host::start(host_id, config).await {
                Ok(h) => {
                    let addr = h.status.borrow().listen.first().cloned();
                    if addr_tx.send(addr).is_err() {
                        return;
                    }
                    // Runs until the benchmark is done.
                    let _done = stop_rx.await;
                }
                Err(e) => {
                    eprintln!("host failed: {e}");
                    let _ = addr_tx.send(None);
                }
            }
        });
    });
    let addr = addr_rx
        .recv()?
        .ok_or_else(|| anyhow::anyhow!("the host did not start"))?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let request = AccessRequest {
        kind: AccessKind::Peer,
        display_name: "bench".into(),
        message: String::new(),
        tickets: vec![],
        mode: RequestedMode::ViewOnly,
        agent: "media_bench".into(),
    };
    let opts = Headless {
        duration: Some(Duration::from_secs_f64(secs)),
        ..Headless::default()
    };
    let report = rt.block_on(viewer::run_headless(
        &viewer_id,
        Dial {
            stay_relayed: false,
            addrs: vec![addr],
            peer: None,
        },
        request,
        opts,
    ))?;
    if stop_tx.send(()).is_err() {
        eprintln!("host thread already gone");
    }
    let _joined = host_thread.join();
    let mut lat: Vec<f64> = report.frame_stats.iter().map(|f| f.latency_ms).collect();
    lat.sort_by(f64::total_cmp);
    let late: usize = report
        .frame_stats
        .iter()
        .filter(|f| f.at_ms > 1000.0)
        .map(|f| f.bytes)
        .sum();
    Ok(E2e {
        fps: report.fps,
        kbps: report.kbps,
        p50: percentile(&lat, 50.0).unwrap_or(f64::NAN),
        p95: percentile(&lat, 95.0).unwrap_or(f64::NAN),
        first_ms: report.connect_to_first_frame_ms.unwrap_or(f64::NAN),
        idle_bps_after_1s: late as f64 / (report.seconds - 1.0).max(0.001),
    })
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    println!(
        "portico media benchmark (synthetic desktop: scrolling text 3 px/frame, moving window)"
    );
    for (w, h) in [(1920u32, 1080u32), (1280, 720)] {
        if args.only.as_ref().is_some_and(|o| *o != format!("{w}x{h}")) {
            continue;
        }
        println!("\n{w}x{h}");
        println!("  capture on Xvfb: {}", capture(w, h));
        components(w, h)?;
        let m = end_to_end(w, h, true, args.seconds, args.fps)?;
        println!(
            "  end to end, moving, capture paced at {} fps: {:.1} fps decoded, {:.0} kbit/s, latency capture->decoded p50 {:.1} ms p95 {:.1} ms, first frame {:.0} ms",
            args.fps, m.fps, m.kbps, m.p50, m.p95, m.first_ms
        );
        let i = end_to_end(w, h, false, 3.0, args.fps)?;
        println!(
            "  idle desktop: {:.0} video bytes/s after the first second (first frame {:.0} ms)",
            i.idle_bps_after_1s, i.first_ms
        );
    }
    Ok(())
}
