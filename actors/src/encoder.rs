//! The `Encoder` actor: one H.264 encode per monitor, shared by every viewer.
//!
//! Changed frames are encoded with openh264 (screen-content mode, bitrate control) and carry
//! their damage rectangles; when the capture reports the screen still, the tiles changed
//! since the last lossless update go out as zstd-compressed RGB tiles, so the viewer's
//! picture becomes pixel-exact at rest. Each packet is encoded to wire bytes once and
//! published on a bounded broadcast channel: a viewer that falls behind loses packets (never
//! the others' or the capture's pace) and asks for a resync.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crossbeam_channel::{select, Receiver};

use actix::prelude::*;
use openh264::encoder::{
    BitRate, Encoder as H264, EncoderConfig, FrameRate, FrameType, RateControlMode, UsageType,
};
use openh264::formats::{RgbaSliceU8, YUVBuffer};
use openh264::OpenH264API;
use portico_core::wire::session::{Codec, FrameRole, SessionMessage, Tile, TileUpdate, VideoFrame};
use portico_core::wire::WireMessage;
use tokio::sync::broadcast;

use crate::capture::{Captured, CursorUpdate};
use portico_core::tiles::{damage_rects, encode_tile, Grid};

/// Packets buffered per viewer before it counts as lagging.
pub const BROADCAST_DEPTH: usize = 16;
/// Default target bitrate.
pub const DEFAULT_BPS: u32 = 4_000_000;

/// An encoded packet, ready to encrypt per session.
#[derive(Debug)]
pub struct Packet {
    /// A viewer may start (or restart) here.
    pub keyframe: bool,
    /// Lossless tiles (not a video frame).
    pub tiles: bool,
    /// A cursor shape or position: every live session sends it, keyframe or not.
    pub cursor: bool,
    /// The encoded [`SessionMessage`].
    pub bytes: Vec<u8>,
}

/// Control messages to the encoder thread.
#[derive(Debug)]
enum Control {
    /// Next frame is a keyframe and every tile is re-sent losslessly at rest.
    Resync,
    /// Change the target bitrate.
    Bitrate(u32),
}

/// The encoder actor (feeds the encoder thread).
pub struct Encoder {
    /// Publishes packets.
    packets: broadcast::Sender<Arc<Packet>>,
    /// Commands for the thread.
    control: crossbeam_channel::Sender<Control>,
    /// Viewers watching (the capture pauses at 0).
    viewers: Arc<AtomicUsize>,
}

impl Encoder {
    /// Starts encoding frames from `frames` (and publishing `cursor` changes) for monitor
    /// `monitor`.
    pub fn new(
        frames: Receiver<Captured>,
        cursor: Receiver<CursorUpdate>,
        monitor: u8,
        viewers: Arc<AtomicUsize>,
    ) -> Self {
        let (packets, _) = broadcast::channel(BROADCAST_DEPTH);
        let (control, control_rx) = crossbeam_channel::bounded(64);
        let tx = packets.clone();
        let inputs = Inputs {
            frames,
            cursor,
            control: control_rx,
        };
        // Detached: the thread ends when the capture side hangs up (its channel closes).
        if let Err(e) = std::thread::Builder::new()
            .name("portico-encoder".into())
            .spawn(move || encode_loop(inputs, tx, monitor))
        {
            tracing::error!(error = %e, "cannot start the encoder thread");
        }
        Self {
            packets,
            control,
            viewers,
        }
    }
}

impl Actor for Encoder {
    type Context = Context<Self>;
}

/// A viewer starts watching: returns its packet stream; the next packet is a keyframe.
#[derive(Message)]
#[rtype(result = "Subscription")]
pub struct Subscribe;

/// A viewer's packet stream. Dropping it stops counting the viewer.
pub struct Subscription {
    /// The packets.
    pub packets: broadcast::Receiver<Arc<Packet>>,
    /// Keeps the viewer count right.
    _guard: ViewerGuard,
}

struct ViewerGuard(Arc<AtomicUsize>);

impl Drop for ViewerGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Handler<Subscribe> for Encoder {
    type Result = MessageResult<Subscribe>;

    fn handle(&mut self, _: Subscribe, _: &mut Context<Self>) -> Self::Result {
        self.viewers.fetch_add(1, Ordering::Relaxed);
        let packets = self.packets.subscribe();
        self.send(Control::Resync);
        MessageResult(Subscription {
            packets,
            _guard: ViewerGuard(self.viewers.clone()),
        })
    }
}

impl Encoder {
    fn send(&self, c: Control) {
        match self.control.try_send(c) {
            Ok(()) => {}
            // 64 commands waiting: a resync among them does what this one would.
            Err(crossbeam_channel::TrySendError::Full(_)) => {
                tracing::debug!("encoder busy; command dropped")
            }
            Err(crossbeam_channel::TrySendError::Disconnected(_)) => {
                tracing::warn!("encoder thread is gone")
            }
        }
    }
}

/// Ask for a keyframe and a lossless refresh (a viewer lagged or asked).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Resync;

impl Handler<Resync> for Encoder {
    type Result = ();
    fn handle(&mut self, _: Resync, _: &mut Context<Self>) {
        self.send(Control::Resync);
    }
}

/// Change the target bitrate (takes effect with a keyframe).
#[derive(Message)]
#[rtype(result = "()")]
pub struct SetBitrate(pub u32);

impl Handler<SetBitrate> for Encoder {
    type Result = ();
    fn handle(&mut self, m: SetBitrate, _: &mut Context<Self>) {
        self.send(Control::Bitrate(m.0.clamp(100_000, 50_000_000)));
    }
}

/// Builds an openh264 encoder for screen content at `bps`.
pub fn h264_encoder(bps: u32) -> Result<H264, openh264::Error> {
    let cfg = EncoderConfig::new()
        .usage_type(UsageType::ScreenContentRealTime)
        .bitrate(BitRate::from_bps(bps))
        .max_frame_rate(FrameRate::from_hz(30.0))
        .rate_control_mode(RateControlMode::Bitrate)
        // Rate control only holds the bitrate when it may skip frames; a skipped frame's
        // damage stays marked for the lossless refresh, so nothing is lost at rest.
        .skip_frames(true)
        .adaptive_quantization(false)
        .background_detection(false)
        .num_threads(1);
    H264::with_api_config(OpenH264API::from_source(), cfg)
}

struct State {
    h264: Option<H264>,
    bps: u32,
    yuv: Option<YUVBuffer>,
    grid: Option<Grid>,
    last: Option<Arc<Vec<u8>>>,
    last_capture_us: u64,
    seq: u64,
    force_key: bool,
    /// Per tile: the viewer has it losslessly.
    synced: Vec<bool>,
    /// Damage of frames rate control skipped, carried into the next frame.
    carried: Vec<usize>,
    /// The capture reported the screen still and nothing changed since.
    at_rest: bool,
    monitor: u8,
    /// The last cursor shape and position, published again for viewers that join.
    cursor: (Option<Arc<Packet>>, Option<Arc<Packet>>),
    /// Capture times (µs) of recent changes: many in a short time is motion (scrolling,
    /// animation), which H.264 codes in far fewer bytes than lossless tiles.
    recent: std::collections::VecDeque<u64>,
}

/// What the encoder thread waits on (all at once, blocking: no polling when idle).
struct Inputs {
    frames: Receiver<Captured>,
    cursor: Receiver<CursorUpdate>,
    control: Receiver<Control>,
}

fn encode_loop(inputs: Inputs, out: broadcast::Sender<Arc<Packet>>, monitor: u8) {
    let span = tracing::info_span!("encoder", monitor);
    let _g = span.enter();
    let mut st = State {
        h264: None,
        bps: DEFAULT_BPS,
        yuv: None,
        grid: None,
        last: None,
        last_capture_us: 0,
        seq: 0,
        force_key: true,
        synced: Vec::new(),
        carried: Vec::new(),
        at_rest: false,
        monitor,
        cursor: (None, None),
        recent: std::collections::VecDeque::new(),
    };
    loop {
        let frame = select! {
            recv(inputs.frames) -> f => match f {
                Ok(f) => f,
                Err(_) => return,
            },
            recv(inputs.cursor) -> c => match c {
                Ok(c) => {
                    publish_cursor(&mut st, &out, c);
                    continue;
                }
                // A closed channel is always ready: looping on it would spin.
                Err(_) => return,
            },
            recv(inputs.control) -> c => {
                match c {
                    Ok(Control::Resync) => resync(&mut st, &out),
                    Ok(Control::Bitrate(bps)) => {
                        st.bps = bps;
                        st.h264 = None;
                        st.force_key = true;
                    }
                    Err(_) => return,
                }
                continue;
            },
        };
        encode_frame(&mut st, &out, frame);
    }
}

fn publish_cursor(st: &mut State, out: &broadcast::Sender<Arc<Packet>>, c: CursorUpdate) {
    let (msg, shape) = match c {
        CursorUpdate::Shape(s) => (SessionMessage::CursorShape(s), true),
        CursorUpdate::Position(p) => (SessionMessage::CursorPosition(p), false),
    };
    let Some(p) = packet(&msg, false, false, true) else {
        return;
    };
    if shape {
        st.cursor.0 = Some(p.clone());
    } else {
        st.cursor.1 = Some(p.clone());
    }
    // No subscriber is not an error: the capture pauses soon after.
    drop(out.send(p));
}

/// A viewer joined or lagged: the cursor again, a keyframe of the last picture, and at rest
/// a lossless refresh.
fn resync(st: &mut State, out: &broadcast::Sender<Arc<Packet>>) {
    for p in [st.cursor.0.clone(), st.cursor.1.clone()]
        .into_iter()
        .flatten()
    {
        drop(out.send(p));
    }
    st.force_key = true;
    st.synced.iter_mut().for_each(|s| *s = false);
    // Re-encode the last picture now, so a new viewer of a still screen sees it at once.
    if let (Some(grid), Some(rgba)) = (st.grid, st.last.clone()) {
        let all: Vec<usize> = (0..grid.len()).collect();
        let at = st.last_capture_us;
        encode_video(st, out, grid, &rgba, &all, at);
        // At rest the capture will not report "still" again: refresh losslessly now.
        if st.at_rest {
            send_tiles(st, out, grid, &rgba);
        }
    }
}

fn encode_frame(st: &mut State, out: &broadcast::Sender<Arc<Packet>>, frame: Captured) {
    if st.grid != Some(frame.grid) {
        st.grid = Some(frame.grid);
        st.h264 = None;
        st.yuv = None;
        st.force_key = true;
        st.synced = vec![false; frame.grid.len()];
        st.carried.clear();
    }
    st.last = Some(frame.rgba.clone());
    st.last_capture_us = frame.capture_us;
    st.at_rest = frame.still;
    if frame.still {
        send_tiles(st, out, frame.grid, &frame.rgba);
    } else if !st.force_key
        && !in_motion(&mut st.recent, frame.capture_us)
        && small_text_change(frame.grid, &frame.rgba, &frame.changed)
    {
        // The H.264 stream catches up with the next motion frame (it encodes whole frames);
        // until a video frame's damage covers them, the viewer keeps these exact tiles.
        send_tile_list(st, out, frame.grid, &frame.rgba, frame.changed);
    } else {
        encode_video(
            st,
            out,
            frame.grid,
            &frame.rgba,
            &frame.changed,
            frame.capture_us,
        );
    }
}

fn packet(msg: &SessionMessage, keyframe: bool, tiles: bool, cursor: bool) -> Option<Arc<Packet>> {
    match msg.encode() {
        Ok(bytes) => Some(Arc::new(Packet {
            keyframe,
            tiles,
            cursor,
            bytes,
        })),
        Err(e) => {
            tracing::error!(error = %e, "cannot encode a media message");
            None
        }
    }
}

fn publish(
    out: &broadcast::Sender<Arc<Packet>>,
    msg: &SessionMessage,
    keyframe: bool,
    tiles: bool,
) {
    if let Some(p) = packet(msg, keyframe, tiles, false) {
        // No subscriber is not an error: the capture pauses soon after.
        drop(out.send(p));
    }
}

fn encode_video(
    st: &mut State,
    out: &broadcast::Sender<Arc<Packet>>,
    grid: Grid,
    rgba: &[u8],
    changed: &[usize],
    capture_us: u64,
) {
    if st.h264.is_none() {
        match h264_encoder(st.bps) {
            Ok(e) => st.h264 = Some(e),
            Err(e) => {
                tracing::error!(error = %e, "cannot create the H.264 encoder");
                return;
            }
        }
    }
    let yuv = st
        .yuv
        .get_or_insert_with(|| YUVBuffer::new(grid.width as usize, grid.height as usize));
    yuv.read_rgba8(RgbaSliceU8::new(
        rgba,
        (grid.width as usize, grid.height as usize),
    ));
    for &i in changed {
        if let Some(s) = st.synced.get_mut(i) {
            *s = false;
        }
    }
    let Some(enc) = st.h264.as_mut() else { return };
    if st.force_key {
        enc.force_intra_frame();
    }
    let (data, keyframe) = match enc.encode(&*yuv) {
        Ok(bs) => (
            bs.to_vec(),
            matches!(bs.frame_type(), FrameType::IDR | FrameType::I),
        ),
        Err(e) => {
            tracing::warn!(error = %e, "encode failed; forcing a keyframe next");
            st.force_key = true;
            return;
        }
    };
    if data.is_empty() {
        st.carried.extend_from_slice(changed);
        return;
    }
    if keyframe {
        st.force_key = false;
    }
    st.seq += 1;
    let damage = if keyframe {
        vec![]
    } else {
        damage_rects(grid, changed)
    };
    let msg = SessionMessage::Video(VideoFrame {
        seq: st.seq,
        capture_us,
        keyframe,
        monitor: st.monitor,
        width: grid.width,
        height: grid.height,
        codec: Codec::H264,
        role: FrameRole::Update,
        damage,
        data,
    });
    publish(out, &msg, keyframe, false);
}

fn send_tiles(st: &mut State, out: &broadcast::Sender<Arc<Packet>>, grid: Grid, rgba: &[u8]) {
    let todo: Vec<usize> = st
        .synced
        .iter()
        .enumerate()
        .filter(|(_, s)| !**s)
        .map(|(i, _)| i)
        .collect();
    send_tile_list(st, out, grid, rgba, todo);
}

/// A window of this many µs holding more than [`MOTION_CHANGES`] changes is motion.
const MOTION_WINDOW_US: u64 = 300_000;
/// Changes within [`MOTION_WINDOW_US`] beyond which the screen counts as moving (typing at
/// ten keys a second stays below; a terminal scrolling at 30 fps is far above).
const MOTION_CHANGES: usize = 4;

/// Records a change at `at_us`; whether changes now come fast enough to count as motion.
fn in_motion(recent: &mut std::collections::VecDeque<u64>, at_us: u64) -> bool {
    recent.push_back(at_us);
    while recent
        .front()
        .is_some_and(|t| at_us.saturating_sub(*t) > MOTION_WINDOW_US)
    {
        recent.pop_front();
    }
    recent.len() > MOTION_CHANGES
}

/// Most tiles a change may touch and still go lossless at once (a few text lines).
const SMALL_CHANGE_TILES: usize = 64;
/// Most colours a tile may have to count as text or flat UI.
const TEXT_COLOURS: usize = 32;

/// Whether a change is small and text-like enough to send as lossless tiles at once instead
/// of an H.264 frame: cheaper to encode (a one-line change costs a one-line encode), exact
/// on arrival, and fewer bytes for text. Natural images (many colours) stay on H.264.
pub fn small_text_change(grid: Grid, rgba: &[u8], changed: &[usize]) -> bool {
    let limit = SMALL_CHANGE_TILES.min(grid.len() / 8).max(1);
    if changed.is_empty() || changed.len() > limit {
        return false;
    }
    changed.iter().all(|&i| {
        let r = grid.rect(i);
        let mut colours = std::collections::HashSet::with_capacity(TEXT_COLOURS + 1);
        for y in r.y..r.y + r.h {
            let row = ((y * grid.width + r.x) * 4) as usize;
            for px in rgba[row..row + (r.w * 4) as usize].chunks_exact(4) {
                colours.insert([px[0], px[1], px[2]]);
                if colours.len() > TEXT_COLOURS {
                    return false;
                }
            }
        }
        true
    })
}

fn send_tile_list(
    st: &mut State,
    out: &broadcast::Sender<Arc<Packet>>,
    grid: Grid,
    rgba: &[u8],
    todo: Vec<usize>,
) {
    // Keep each message well under the session maximum: a batch per ~256 tiles.
    for batch in todo.chunks(256) {
        let mut tiles = Vec::with_capacity(batch.len());
        for &i in batch {
            let rect = grid.rect(i);
            match encode_tile(rgba, grid.width, rect) {
                Ok(data) => tiles.push(Tile { rect, data }),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot compress a tile");
                    return;
                }
            }
        }
        let msg = SessionMessage::Tiles(TileUpdate {
            after_seq: st.seq,
            monitor: st.monitor,
            width: grid.width,
            height: grid.height,
            tiles,
        });
        publish(out, &msg, false, true);
    }
    for i in todo {
        st.synced[i] = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn picture(grid: Grid, f: impl Fn(u32, u32) -> [u8; 3]) -> Vec<u8> {
        let mut v = Vec::with_capacity((grid.width * grid.height * 4) as usize);
        for y in 0..grid.height {
            for x in 0..grid.width {
                let [r, g, b] = f(x, y);
                v.extend_from_slice(&[r, g, b, 255]);
            }
        }
        v
    }

    #[test]
    fn small_text_changes_go_lossless_and_photos_or_big_ones_do_not() {
        let grid = Grid {
            width: 1024,
            height: 512,
        };
        // Text: two colours. Photo-like: a different colour per pixel.
        let text = picture(grid, |x, y| {
            if (x * 7 + y * 3) % 5 == 0 {
                [0, 0, 0]
            } else {
                [255, 255, 250]
            }
        });
        let photo = picture(grid, |x, y| {
            [(x % 251) as u8, (y % 241) as u8, ((x * y) % 239) as u8]
        });
        let line: Vec<usize> = (0..16).collect();
        assert!(small_text_change(grid, &text, &line));
        assert!(!small_text_change(grid, &photo, &line));
        assert!(!small_text_change(grid, &text, &[]));
        let half: Vec<usize> = (0..grid.len() / 2).collect();
        assert!(!small_text_change(grid, &text, &half));
    }

    #[test]
    fn frequent_changes_count_as_motion() {
        let mut recent = std::collections::VecDeque::new();
        // Typing, ten keys a second: never motion.
        assert!((0..50).all(|i| !in_motion(&mut recent, i * 100_000)));
        // Scrolling at 30 fps: motion from the fifth change in 300 ms.
        let mut recent = std::collections::VecDeque::new();
        let moving: Vec<bool> = (0..10)
            .map(|i| in_motion(&mut recent, i * 33_000))
            .collect();
        assert_eq!(
            moving,
            [false, false, false, false, true, true, true, true, true, true]
        );
        // After a pause it is sporadic again.
        assert!(!in_motion(&mut recent, 2_000_000));
    }
}
