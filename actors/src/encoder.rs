//! The `Encoder` actor: one content coding per monitor, shared by every viewer.
//!
//! Per captured frame ([`content`]): content that moved goes as copies, changed regions with
//! few colours (text, UI) go lossless at once through a persistent compressor context, and
//! regions with many colours go to H.264 ([`video`]); once the capture reports the screen
//! still, every tile H.264 carried is refreshed losslessly, so the picture is pixel-exact at
//! rest. Each packet is encoded to wire bytes once and published on a bounded broadcast
//! channel: a viewer that falls behind loses packets (never the others' or the capture's
//! pace), skips to the next start point and asks for one.

mod content;
mod video;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{select, Receiver};

use actix::prelude::*;
use portico_core::wire::session::SessionMessage;
use portico_core::wire::WireMessage;
use tokio::sync::broadcast;

use crate::capture::{Captured, CursorUpdate};
pub use content::TEXT_COLOURS;
pub use video::{h264_encoder, DEFAULT_BPS};

/// Packets buffered per viewer before it counts as lagging (a frame may be a copy, a video
/// frame and a lossless update).
pub const BROADCAST_DEPTH: usize = 64;

/// Shortest time between two start points (each codes the whole picture, ~30 ms for a
/// 720p screen of text): however many viewers join or ask, at most four per second.
pub const MIN_START_INTERVAL: Duration = Duration::from_millis(250);

/// An encoded packet, ready to encrypt per session.
#[derive(Debug)]
pub struct Packet {
    /// A viewer may start (or restart) here: a stream start's IDR or first lossless update.
    pub keyframe: bool,
    /// A cursor shape or position: every live session sends it, keyframe or not.
    pub cursor: bool,
    /// The encoded [`SessionMessage`].
    pub bytes: Vec<u8>,
}

/// Control messages to the encoder thread.
#[derive(Debug)]
enum Control {
    /// Start the stream again (a new viewer, or one that fell behind).
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
    ) -> std::io::Result<Self> {
        let (packets, _) = broadcast::channel(BROADCAST_DEPTH);
        let (control, control_rx) = crossbeam_channel::bounded(64);
        let tx = packets.clone();
        let inputs = Inputs {
            frames,
            cursor,
            control: control_rx,
        };
        // Detached: the thread ends when the capture side hangs up (its channel closes).
        std::thread::Builder::new()
            .name("portico-encoder".into())
            .spawn(move || encode_loop(inputs, tx, monitor))?;
        Ok(Self {
            packets,
            control,
            viewers,
        })
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

/// What the encoder thread waits on (all at once, blocking: no polling when idle).
struct Inputs {
    frames: Receiver<Captured>,
    cursor: Receiver<CursorUpdate>,
    control: Receiver<Control>,
}

fn encode_loop(inputs: Inputs, out: broadcast::Sender<Arc<Packet>>, monitor: u8) {
    let span = tracing::info_span!("encoder", monitor);
    let _g = span.enter();
    let mut st = match content::State::new(monitor, out) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot start the lossless coder");
            return;
        }
    };
    // The last cursor shape and position, published again for viewers that join.
    let mut cursor: (Option<Arc<Packet>>, Option<Arc<Packet>>) = (None, None);
    // Start points are spaced out: requests within MIN_START_INTERVAL of the last one are
    // served together when it has passed (joins, lags and viewers' requests alike).
    let mut last_start: Option<Instant> = None;
    let mut start_due = false;
    loop {
        let timer = match (start_due, last_start) {
            (true, Some(t)) => crossbeam_channel::at(t + MIN_START_INTERVAL),
            _ => crossbeam_channel::never(),
        };
        select! {
            recv(timer) -> _ => {}
            recv(inputs.frames) -> f => match f {
                Ok(f) => st.frame(f),
                Err(_) => return,
            },
            recv(inputs.cursor) -> c => match c {
                Ok(c) => publish_cursor(&st, &mut cursor, c),
                // A closed channel is always ready: looping on it would spin.
                Err(_) => return,
            },
            recv(inputs.control) -> c => match c {
                Ok(Control::Resync) => start_due = true,
                Ok(Control::Bitrate(bps)) => {
                    st.video.bps = bps;
                    st.video.restart();
                }
                Err(_) => return,
            },
        }
        if start_due && last_start.is_none_or(|t| t.elapsed() >= MIN_START_INTERVAL) {
            start_due = false;
            last_start = Some(Instant::now());
            for p in [cursor.0.clone(), cursor.1.clone()].into_iter().flatten() {
                st.send(p);
            }
            st.start();
        }
    }
}

fn publish_cursor(
    st: &content::State,
    last: &mut (Option<Arc<Packet>>, Option<Arc<Packet>>),
    c: CursorUpdate,
) {
    let (msg, shape) = match c {
        CursorUpdate::Shape(s) => match s.compress() {
            Ok(image) => (SessionMessage::Cursor(image), true),
            Err(e) => {
                tracing::warn!(error = %e, serial = s.serial, "cursor shape not sent");
                return;
            }
        },
        CursorUpdate::Position(p) => (SessionMessage::CursorPosition(p), false),
    };
    let Some(p) = packet(&msg, false, true) else {
        return;
    };
    if shape {
        last.0 = Some(p.clone());
    } else {
        last.1 = Some(p.clone());
    }
    st.send(p);
}

fn packet(msg: &SessionMessage, keyframe: bool, cursor: bool) -> Option<Arc<Packet>> {
    match msg.encode() {
        Ok(bytes) => Some(Arc::new(Packet {
            keyframe,
            cursor,
            bytes,
        })),
        Err(e) => {
            tracing::error!(error = %e, "cannot encode a media message");
            None
        }
    }
}
