//! The `Capture` actor: grabs one monitor with xcap on a dedicated thread, paced to a target
//! frame rate, and hands the encoder only what changed.
//!
//! - No viewer: the thread sleeps (nothing is captured).
//! - Changes: the frame goes to the encoder with its changed tiles. The hand-over slot holds
//!   one frame; if the encoder is still busy the frame is skipped and its damage is carried
//!   into the next one, so a slow encoder lowers the frame rate instead of queueing.
//! - Still: once nothing changed for `still_after`, one `still` notice tells the encoder to
//!   send lossless tiles; polling then slows to `idle_fps` until the next change.
//!
//! Two kinds of source drive it:
//!
//! - [`x11::X11Source`] (the default on X11): the X server's DAMAGE events say what changed;
//!   only those regions are read, and a still screen costs no screen reads (only a pointer
//!   position query ten times a second). It also reports the cursor's shape and position.
//! - a polled [`FrameSource`]: full grabs compared tile by tile — [`XcapSource`] (the
//!   portable path and the fallback without DAMAGE/XFIXES) and the synthetic desktop of the
//!   benchmarks.

mod shm;
pub mod x11;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use actix::prelude::*;
use crossbeam_channel::{Sender, TrySendError};
use portico_core::tiles::{changed_tiles, Grid};
use portico_core::wire::session::{CursorPosition, CursorShape};

/// A captured frame handed to the encoder.
#[derive(Debug, Clone)]
pub struct Captured {
    /// Capture time, µs since the Unix epoch.
    pub capture_us: u64,
    /// Frame size.
    pub grid: Grid,
    /// RGBA pixels.
    pub rgba: Arc<Vec<u8>>,
    /// Tiles changed since the previous frame handed over (all on the first frame).
    pub changed: Vec<usize>,
    /// The screen has been still for a while (`changed` is empty then).
    pub still: bool,
}

/// A cursor change for the encoder to publish.
#[derive(Debug, Clone, PartialEq)]
pub enum CursorUpdate {
    /// A new shape.
    Shape(CursorShape),
    /// A new position.
    Position(CursorPosition),
}

/// Where the capture thread sends its output.
pub struct Outputs {
    /// Frames (a one-slot channel: newest wins, damage carried over).
    pub frames: Sender<Captured>,
    /// Cursor changes.
    pub cursor: Sender<CursorUpdate>,
}

/// What the capture thread reads.
pub enum Source {
    /// Full grabs, compared tile by tile.
    Poll(Box<dyn FrameSource>),
    /// X11 damage events, damaged regions only, and the cursor.
    Damage(Box<x11::X11Source>),
}

/// How often a damage-driven capture reads the pointer's position when nothing else woke
/// it (a warp makes no motion event): one X round trip, no screen read.
const POINTER_POLL: Duration = Duration::from_millis(100);

/// Where frames come from.
pub trait FrameSource: Send + 'static {
    /// Grabs a frame: (width, height, RGBA).
    fn grab(&mut self) -> Result<(u32, u32, Vec<u8>), String>;
}

/// xcap on the X display in `$DISPLAY`.
pub struct XcapSource {
    /// The monitor captured.
    monitor: xcap::Monitor,
}

impl XcapSource {
    /// Opens monitor `index` (0 = primary, or the first when none is marked primary, as on
    /// Xvfb). Returns the monitors' sizes too, and this monitor's area in root coordinates.
    #[allow(clippy::type_complexity)]
    pub fn open(index: usize) -> Result<(Self, Vec<(u32, u32)>, (i16, i16, u16, u16)), String> {
        // xcap would take its Wayland path when these are set; Portico captures X11 here.
        if std::env::var_os("DISPLAY").is_none() {
            return Err("no X display: set DISPLAY (for example run under Xvfb)".into());
        }
        let mut monitors =
            xcap::Monitor::all().map_err(|e| format!("cannot list monitors: {e}"))?;
        if monitors.is_empty() {
            return Err("the X server reports no monitor".into());
        }
        if let Some(p) = monitors
            .iter()
            .position(|m| m.is_primary().unwrap_or(false))
        {
            monitors.swap(0, p);
        }
        let sizes = monitors
            .iter()
            .map(|m| (m.width().unwrap_or(0) & !1, m.height().unwrap_or(0) & !1))
            .collect();
        if index >= monitors.len() {
            return Err(format!(
                "monitor {index} does not exist; this display has {}",
                monitors.len()
            ));
        }
        let m = monitors.swap_remove(index);
        let area = (
            m.x().unwrap_or(0) as i16,
            m.y().unwrap_or(0) as i16,
            m.width().unwrap_or(0) as u16,
            m.height().unwrap_or(0) as u16,
        );
        Ok((Self { monitor: m }, sizes, area))
    }
}

impl FrameSource for XcapSource {
    fn grab(&mut self) -> Result<(u32, u32, Vec<u8>), String> {
        let img = self
            .monitor
            .capture_image()
            .map_err(|e| format!("capture failed: {e}"))?;
        let (w, h) = img.dimensions();
        Ok(even_crop(w, h, img.into_raw()))
    }
}

/// H.264 needs even sizes: drops a last odd column/row.
pub fn even_crop(w: u32, h: u32, rgba: Vec<u8>) -> (u32, u32, Vec<u8>) {
    let (ew, eh) = (w & !1, h & !1);
    if (ew, eh) == (w, h) {
        return (w, h, rgba);
    }
    let mut out = Vec::with_capacity((ew * eh * 4) as usize);
    for y in 0..eh as usize {
        let row = y * w as usize * 4;
        out.extend_from_slice(&rgba[row..row + ew as usize * 4]);
    }
    (ew, eh, out)
}

/// Capture pacing.
#[derive(Debug, Clone, Copy)]
pub struct Pacing {
    /// Frames per second while the screen changes.
    pub fps: u32,
    /// Polls per second while it is still.
    pub idle_fps: u32,
    /// How long without change counts as still.
    pub still_after: Duration,
}

impl Default for Pacing {
    fn default() -> Self {
        Self {
            fps: 30,
            idle_fps: 10,
            still_after: Duration::from_millis(250),
        }
    }
}

/// The capture actor (owns the capture thread).
pub struct Capture {
    /// Stops the thread.
    stop: Arc<AtomicBool>,
    /// The thread.
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Capture {
    /// Starts capturing from `source` into `out` while `viewers` > 0.
    pub fn new(
        source: Source,
        pacing: Pacing,
        viewers: Arc<AtomicUsize>,
        out: Outputs,
    ) -> std::io::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("portico-capture".into())
            .spawn(move || match source {
                Source::Poll(s) => capture_loop(s, pacing, viewers, out.frames, flag),
                Source::Damage(s) => damage_loop(*s, pacing, viewers, out, flag),
            })?;
        Ok(Self {
            stop,
            thread: Some(thread),
        })
    }
}

impl Actor for Capture {
    type Context = Context<Self>;

    fn stopped(&mut self, _: &mut Self::Context) {
        self.stop.store(true, Ordering::Relaxed);
        // The thread sees the flag within one wait (≤ 100 ms); joined off the arbiter, so
        // closing a screen nobody watches never stalls the sessions running there.
        if let Some(t) = self.thread.take() {
            let joined = std::thread::Builder::new()
                .name("portico-capture-join".into())
                .spawn(move || {
                    if t.join().is_err() {
                        tracing::error!("capture thread panicked");
                    }
                });
            if let Err(e) = joined {
                tracing::warn!(error = %e, "cannot wait for the capture thread; it stops on its own");
            }
        }
    }
}

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

fn capture_loop(
    mut source: Box<dyn FrameSource>,
    pacing: Pacing,
    viewers: Arc<AtomicUsize>,
    to_encoder: Sender<Captured>,
    stop: Arc<AtomicBool>,
) {
    let span = tracing::info_span!("capture", source = "poll");
    let _g = span.enter();
    let mut prev: Option<(Grid, Arc<Vec<u8>>)> = None;
    let mut hand = Handover::new(false);
    let mut next = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        if viewers.load(Ordering::Relaxed) == 0 {
            // Nobody watches: capture nothing; the next viewer gets a fresh full frame.
            prev = None;
            std::thread::sleep(Duration::from_millis(50));
            continue;
        }
        let idle = hand.still_sent;
        let period = Duration::from_secs_f64(
            1.0 / f64::from(if idle { pacing.idle_fps } else { pacing.fps }.max(1)),
        );
        let now = Instant::now();
        if next > now {
            std::thread::sleep(next - now);
        }
        // A fixed grid of capture times, so the time spent capturing does not lower the
        // rate; when more than a period behind (a slow grab), start the grid afresh.
        next += period;
        if next + period < Instant::now() {
            next = Instant::now() + period;
        }
        let (w, h, rgba) = match source.grab() {
            Ok(f) => f,
            Err(e) => {
                tracing::warn!(error = %e, "capture failed; retrying");
                std::thread::sleep(Duration::from_millis(200));
                continue;
            }
        };
        let grid = Grid {
            width: w,
            height: h,
        };
        let capture_us = now_us();
        let changed = match &prev {
            Some((g, p)) if *g == grid => changed_tiles(grid, p, &rgba),
            _ => {
                hand.pending.clear();
                (0..grid.len()).collect()
            }
        };
        let rgba = Arc::new(rgba);
        if !changed.is_empty() {
            prev = Some((grid, rgba.clone()));
        }
        let frame = |changed, still| Captured {
            capture_us,
            grid,
            rgba: rgba.clone(),
            changed,
            still,
        };
        if hand
            .step(&changed, frame, &to_encoder, pacing.still_after)
            .is_err()
        {
            return;
        }
    }
}

/// What has not reached the encoder yet, and whether the screen has been reported still.
/// Both capture loops hand over through it: new changes (or ones the encoder skipped while
/// busy) go out as one frame; once nothing changed for `still_after`, one still notice.
struct Handover {
    /// Tiles changed and not handed over.
    pending: Vec<usize>,
    /// When the screen last changed.
    last_change: Instant,
    /// The still notice went out since the last change.
    still_sent: bool,
}

/// The encoder is gone.
struct Disconnected;

impl Handover {
    fn new(still_sent: bool) -> Self {
        Self {
            pending: Vec::new(),
            last_change: Instant::now(),
            still_sent,
        }
    }

    /// Records `changed` and hands over what is due; `frame(changed, still)` builds the frame.
    fn step(
        &mut self,
        changed: &[usize],
        frame: impl Fn(Vec<usize>, bool) -> Captured,
        to: &Sender<Captured>,
        still_after: Duration,
    ) -> Result<(), Disconnected> {
        if !changed.is_empty() {
            self.last_change = Instant::now();
            self.still_sent = false;
            merge(&mut self.pending, changed);
        }
        if !self.pending.is_empty() {
            match to.try_send(frame(std::mem::take(&mut self.pending), false)) {
                Ok(()) => {}
                Err(TrySendError::Full(f)) => self.pending = f.changed,
                Err(TrySendError::Disconnected(_)) => return Err(Disconnected),
            }
        } else if !self.still_sent && self.last_change.elapsed() >= still_after {
            match to.try_send(frame(Vec::new(), true)) {
                Ok(()) => self.still_sent = true,
                Err(TrySendError::Full(_)) => {}
                Err(TrySendError::Disconnected(_)) => return Err(Disconnected),
            }
        }
        Ok(())
    }
}

/// The damage-driven loop: sleeps until the X server reports a change (or the still timer
/// or the safety poll is due), paces reads to the frame rate, hands over the changed tiles.
fn damage_loop(
    mut src: x11::X11Source,
    pacing: Pacing,
    viewers: Arc<AtomicUsize>,
    out: Outputs,
    stop: Arc<AtomicBool>,
) {
    let span = tracing::info_span!("capture", source = "x11-damage");
    let _g = span.enter();
    let period = Duration::from_secs_f64(1.0 / f64::from(pacing.fps.max(1)));
    let mut hand = Handover::new(true);
    let mut cursor: Vec<CursorUpdate> = Vec::new();
    let mut watching = false;
    let mut last_read = Instant::now() - period;
    let mut last_pointer = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        if viewers.load(Ordering::Relaxed) == 0 {
            // Nobody watches: read nothing (the damage waits in the X server).
            watching = false;
            std::thread::sleep(Duration::from_millis(100));
            continue;
        }
        let first = !watching;
        watching = true;
        let timeout = if !hand.pending.is_empty() || !cursor.is_empty() {
            period
        } else if !hand.still_sent {
            pacing
                .still_after
                .saturating_sub(hand.last_change.elapsed())
        } else {
            POINTER_POLL
        }
        .min(POINTER_POLL);
        if !first {
            src.wait(timeout);
        }
        // The pointer is read on its own clock: other wake-ups must not starve it.
        if last_pointer.elapsed() >= POINTER_POLL {
            src.poll_pointer();
            last_pointer = Instant::now();
        }
        // Pace: changes within one frame period are read together.
        let since = last_read.elapsed();
        if since < period {
            std::thread::sleep(period - since);
        }
        last_read = Instant::now();
        let up = match src.update(first) {
            Ok(u) => u,
            Err(e) => {
                tracing::warn!(error = %e, "damage capture failed; retrying");
                std::thread::sleep(Duration::from_millis(200));
                continue;
            }
        };
        cursor.extend(up.shape.map(CursorUpdate::Shape));
        cursor.extend(up.position.map(CursorUpdate::Position));
        while let Some(c) = cursor.first() {
            match out.cursor.try_send(c.clone()) {
                Ok(()) => drop(cursor.remove(0)),
                Err(TrySendError::Full(_)) => break,
                Err(TrySendError::Disconnected(_)) => return,
            }
        }
        let frame = |changed, still| Captured {
            capture_us: now_us(),
            grid: src.grid(),
            rgba: src.frame(),
            changed,
            still,
        };
        if hand
            .step(&up.changed, frame, &out.frames, pacing.still_after)
            .is_err()
        {
            return;
        }
    }
}

/// Sorted union of tile indices.
fn merge(into: &mut Vec<usize>, more: &[usize]) {
    into.extend_from_slice(more);
    into.sort_unstable();
    into.dedup();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn even_crop_drops_odd_edges() {
        let (w, h, px) = even_crop(3, 3, (0..36).collect());
        assert_eq!((w, h), (2, 2));
        assert_eq!(
            px,
            vec![0, 1, 2, 3, 4, 5, 6, 7, 12, 13, 14, 15, 16, 17, 18, 19]
        );
    }

    #[test]
    fn merge_is_a_sorted_union() {
        let mut v = vec![1, 5];
        merge(&mut v, &[5, 2, 9]);
        assert_eq!(v, vec![1, 2, 5, 9]);
    }
}
