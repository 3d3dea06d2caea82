//! Counts the picture updates a viewer shows: watches the X display in `DISPLAY` (the
//! viewer's own Xvfb) through DAMAGE and counts bursts of drawing separated by at least
//! `--gap-ms` of quiet as one displayed frame each. The same measure for every system, so
//! `make compare` can put frames delivered side by side (RFB viewers pull and draw
//! rectangle by rectangle; a burst is one update).
//!
//! `frame_count --seconds 10` prints `{"frames": N, "seconds": S}`.

use std::time::{Duration, Instant};

use clap::Parser;
use x11rb::connection::Connection;
use x11rb::protocol::damage::{self, ConnectionExt as _};
use x11rb::protocol::xfixes::ConnectionExt as _;
use x11rb::protocol::Event;

/// Frame counter.
#[derive(Debug, Parser)]
struct Args {
    /// How long to count.
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    /// Quiet time that separates two frames, in ms.
    #[arg(long, default_value_t = 8)]
    gap_ms: u64,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let (conn, screen) = x11rb::connect(None)
        .map_err(|e| anyhow::anyhow!("cannot open the X display in DISPLAY: {e}"))?;
    let root = conn.setup().roots[screen].root;
    conn.xfixes_query_version(5, 0)?.reply()?;
    conn.damage_query_version(1, 1)?.reply()?;
    let dmg = conn.generate_id()?;
    conn.damage_create(dmg, root, damage::ReportLevel::NON_EMPTY)?;
    conn.flush()?;
    let gap = Duration::from_millis(args.gap_ms);
    let start = Instant::now();
    let end = start + Duration::from_secs_f64(args.seconds);
    let mut frames = 0u64;
    let mut last: Option<Instant> = None;
    while Instant::now() < end {
        match conn.poll_for_event()? {
            Some(Event::DamageNotify(_)) => {
                let now = Instant::now();
                if last.is_none_or(|l| now - l >= gap) {
                    frames += 1;
                }
                last = Some(now);
                conn.damage_subtract(dmg, x11rb::NONE, x11rb::NONE)?;
                conn.flush()?;
            }
            Some(_) => {}
            None => std::thread::sleep(Duration::from_millis(1)),
        }
    }
    println!(
        "{{\"frames\": {frames}, \"seconds\": {:.2}}}",
        start.elapsed().as_secs_f64()
    );
    Ok(())
}
