//! Content coding per captured frame: what moved goes as copies, what has few colours goes
//! lossless at once, what has many goes to H.264, and what H.264 carried is refreshed
//! losslessly once the screen is at rest.

use std::sync::Arc;

use portico_core::tiles::exact::Exact;
use portico_core::tiles::lossless::{few_colours, LosslessEncoder};
use portico_core::tiles::{copy_rect, scroll, Grid};
use portico_core::wire::session::{CopyUpdate, LosslessUpdate, Rect, SessionMessage};
use tokio::sync::broadcast;

use super::video::Video;
use super::{packet, Packet};
use crate::capture::Captured;

/// Most colours a region may have to be coded losslessly at once (text, UI, flat fills;
/// antialiased text stays well below).
pub const TEXT_COLOURS: usize = 48;
/// A tile that changed within this many frames before counts as moving.
const MOVING_FRAMES: u64 = 2;
/// Fewest changed tiles worth a search for moved content.
const MIN_SCROLL_TILES: usize = 4;
/// Rectangles per lossless message (keeps each well under the session maximum).
const RECTS_PER_MESSAGE: usize = 256;

/// The encoder thread's state for one monitor stream.
pub(super) struct State {
    /// Monitor index (in every message).
    pub(super) monitor: u8,
    /// The picture's size, once a frame came.
    grid: Option<Grid>,
    /// The source picture as of the last frame: what copies are found against.
    model: Vec<u8>,
    /// Capture time of the last frame.
    capture_us: u64,
    /// Captured frames coded (numbers the updates; viewers count picture updates by it).
    frame_no: u64,
    /// Which tiles the viewers have exactly.
    exact: Exact,
    /// The lossless stream.
    lossless: LosslessEncoder,
    /// The H.264 stream.
    pub(super) video: Video,
    /// The capture reported the screen still and nothing changed since.
    at_rest: bool,
    /// Per tile: the frame number of its last change (a tile changing frame after frame is
    /// motion).
    changed_at: Vec<u64>,
    /// Most of the last frame's change had many colours (a video playing): no search for
    /// moved content, which would not find any.
    busy: bool,
    /// Where packets go.
    out: broadcast::Sender<Arc<Packet>>,
}

impl State {
    pub(super) fn new(
        monitor: u8,
        out: broadcast::Sender<Arc<Packet>>,
    ) -> Result<Self, portico_core::tiles::lossless::LosslessError> {
        let grid = Grid {
            width: 0,
            height: 0,
        };
        Ok(Self {
            monitor,
            grid: None,
            model: Vec::new(),
            capture_us: 0,
            frame_no: 0,
            exact: Exact::new(grid),
            lossless: LosslessEncoder::new(),
            video: Video::new(),
            at_rest: false,
            changed_at: Vec::new(),
            busy: false,
            out,
        })
    }

    pub(super) fn publish(&self, msg: &SessionMessage, start: bool) {
        if let Some(p) = packet(msg, start, false) {
            self.send(p);
        }
    }

    pub(super) fn send(&self, p: Arc<Packet>) {
        // No subscriber is not an error: the capture pauses soon after.
        drop(self.out.send(p));
    }

    /// Codes one captured frame.
    pub(super) fn frame(&mut self, f: Captured) {
        self.capture_us = f.capture_us;
        if self.grid != Some(f.grid) {
            self.grid = Some(f.grid);
            self.model = f.rgba.to_vec();
            self.exact = Exact::new(f.grid);
            self.changed_at = vec![0; f.grid.len()];
            self.video.restart();
            self.at_rest = f.still;
            self.start();
            return;
        }
        if f.still {
            self.at_rest = true;
            self.refresh();
            return;
        }
        self.at_rest = false;
        self.frame_no += 1;
        let g = f.grid;
        let cur = &f.rgba[..];
        let mut touched = self.moves(g, cur, &f.changed);
        touched.extend_from_slice(&f.changed);
        touched.sort_unstable();
        touched.dedup();
        let (mut text, mut photo) = (Vec::new(), Vec::new());
        for &i in &touched {
            let t = g.rect(i);
            if let Some(r) = scroll::diff_bounds(&self.model, cur, g.width, t) {
                if few_colours(cur, g.width, r, TEXT_COLOURS) {
                    text.push((i, r));
                } else {
                    photo.push(i);
                }
                copy_rect(cur, &mut self.model, g.width, t);
            }
        }
        if !photo.is_empty() || self.video.has_carried() {
            // A video frame goes out anyway and codes the whole picture: few-colour tiles
            // that change frame after frame (inside a video, an animation) ride along
            // instead of being paid for twice; they are refreshed losslessly at rest.
            let frame_no = self.frame_no;
            let changed_at = &self.changed_at;
            let moving = |i: usize| frame_no.saturating_sub(changed_at[i]) <= MOVING_FRAMES;
            photo.extend(text.iter().filter(|(i, _)| moving(*i)).map(|(i, _)| *i));
            text.retain(|(i, _)| !moving(*i));
            self.video_frame(&photo, false, false);
        }
        for &i in &touched {
            self.changed_at[i] = self.frame_no;
        }
        self.busy = photo.len() * 2 > touched.len();
        if !text.is_empty() {
            let rects: Vec<Rect> = text.into_iter().map(|(_, r)| r).collect();
            self.send_lossless(&rects, false);
        }
    }

    /// Finds what moved, sends it as copies and applies them to the model; returns the
    /// tiles the copies wrote (checked against the frame like the changed ones).
    fn moves(&mut self, g: Grid, cur: &[u8], changed: &[usize]) -> Vec<usize> {
        if changed.len() < MIN_SCROLL_TILES || self.busy {
            return Vec::new();
        }
        let Some(area) = g.bounds(changed) else {
            return Vec::new();
        };
        let copies = scroll::detect(&self.model, cur, g.width, g.height, area);
        let mut written = Vec::new();
        for c in &copies {
            if let Err(e) = scroll::apply(&mut self.model, g.width, g.height, c) {
                // Cannot happen (detect stays inside the frame); the copies already applied
                // are re-checked below like any change, so dropping the rest is safe.
                tracing::error!(error = %e, "own copy does not fit; not sent");
                break;
            }
            self.exact.copied(c);
            let dst = Rect {
                x: c.dst_x,
                y: c.dst_y,
                ..c.src
            };
            written.extend(g.touching(dst));
        }
        if copies.is_empty() {
            return written;
        }
        self.publish(
            &SessionMessage::Copy(CopyUpdate {
                frame: self.frame_no,
                capture_us: self.capture_us,
                monitor: self.monitor,
                width: g.width,
                height: g.height,
                copies,
            }),
            false,
        );
        written
    }

    /// A stream start (a viewer joined or fell behind, or the picture changed size): the
    /// whole picture, losslessly when it is text-like, else an IDR plus the text-like tiles.
    pub(super) fn start(&mut self) {
        let Some(g) = self.grid else { return };
        self.frame_no += 1;
        self.exact.clear();
        self.lossless.reset();
        let (mut text, mut photo) = (Vec::new(), Vec::new());
        for i in 0..g.len() {
            let r = g.rect(i);
            if few_colours(&self.model, g.width, r, TEXT_COLOURS) {
                text.push(r);
            } else {
                photo.push(i);
            }
        }
        if photo.is_empty() || !self.video_frame(&[], true, true) {
            // No H.264 frame for a screen of text: the next video frame is an IDR.
            self.video.force_key = true;
            let all: Vec<Rect> = (0..g.len()).map(|i| g.rect(i)).collect();
            self.send_lossless(&all, true);
            return;
        }
        self.send_lossless(&text, false);
        if self.at_rest {
            self.refresh();
        }
    }

    /// At rest: every tile not exact goes lossless.
    fn refresh(&mut self) {
        let Some(g) = self.grid else { return };
        let todo: Vec<Rect> = self
            .exact
            .inexact()
            .into_iter()
            .map(|i| g.rect(i))
            .collect();
        if !todo.is_empty() {
            self.send_lossless(&todo, false);
        }
    }

    /// Sends an H.264 frame of the model damaging `tiles` (or all of it when `whole`);
    /// whether one went out.
    fn video_frame(&mut self, tiles: &[usize], whole: bool, start: bool) -> bool {
        let Some(g) = self.grid else { return false };
        let Some((frame, damaged)) =
            self.video
                .encode(g, &self.model, tiles, whole, self.capture_us, self.monitor)
        else {
            return false;
        };
        for i in damaged {
            self.exact.set(i, false);
        }
        self.publish(&SessionMessage::Video(frame), start);
        true
    }

    /// Sends `rects` of the model losslessly; the first message is a start point when
    /// `start`.
    fn send_lossless(&mut self, rects: &[Rect], start: bool) {
        let Some(g) = self.grid else { return };
        for (n, batch) in rects.chunks(RECTS_PER_MESSAGE).enumerate() {
            let reset = self.lossless.at_start();
            let coded = match self.lossless.encode(&self.model, g.width, batch) {
                Ok(c) => c,
                Err(e) => {
                    // The viewers' contexts no longer match ours: a new context, and every
                    // tile counts as inexact, so the rest refresh re-sends the whole picture.
                    tracing::error!(error = %e, "lossless coding failed; starting a new context");
                    self.exact.clear();
                    self.lossless.reset();
                    return;
                }
            };
            let msg = SessionMessage::Lossless(LosslessUpdate {
                frame: self.frame_no,
                capture_us: self.capture_us,
                monitor: self.monitor,
                width: g.width,
                height: g.height,
                reset,
                rects: coded.rects,
                data: coded.data,
            });
            self.publish(&msg, start && n == 0);
            for &r in batch {
                self.exact.written(r);
            }
        }
    }
}
