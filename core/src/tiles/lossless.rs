//! Lossless coding of screen regions, in the spirit of VNC's ZRLE/Tight but with a longer
//! memory.
//!
//! Each rectangle (at most [`TILE`]×[`TILE`], solid ones up to [`MAX_SOLID`]×[`MAX_SOLID`])
//! is written as a 6-byte header (x, y: u16 LE; width−1, height−1: u8) and one of:
//!
//! - `0` solid: one RGB colour;
//! - `1` palette: the colour count − 1 (u8), the colours (RGB each), then the indices row
//!   by row, packed most significant bits first at 1, 2 or 4 bits for up to 2, 4 or 16
//!   colours (8 bits above), each row starting on a byte (text is mostly two colours: one
//!   bit per pixel before zstd, as in VNC's Tight);
//! - `2` raw: RGB per pixel, row by row.
//!
//! All rectangles of every update of a stream go through **one** zstd stream, flushed at the
//! end of each update: glyphs, icons and UI pieces seen in an earlier update (up to the
//! window, [`WINDOW_LOG`]) cost a back-reference instead of their pixels. The context starts
//! afresh at start points (a viewer joins or falls behind), which the update marks with
//! `reset`, so a viewer can start decoding there.
//!
//! A start point is one complete zstd frame, coded at a higher level than the updates after
//! it ([`start_level`]: it is coded once per join and is most of what a viewer of a still
//! screen ever receives). The stream that follows is a new frame whose dictionary is the
//! start point's uncompressed bytes (their last [`WINDOW_LOG`] worth, after eight zero
//! bytes, which keep zstd from reading them as a formatted dictionary): the context still
//! spans the start point, as if one frame held both.

use std::io::Write;

use zstd::stream::raw::{CParameter, DParameter, Decoder, Operation};

use super::TILE;
use crate::wire::session::Rect;

/// zstd window of the encoder: 4 MiB of history (a 1080p screen of text is ~2 MiB coded).
pub const WINDOW_LOG: u32 = 22;
/// Largest window a viewer accepts (bounds its memory per stream).
pub const MAX_WINDOW_LOG: u32 = 23;
/// zstd level: 3 codes bit-packed text ~5% smaller than 1 at no visible cost (updates are
/// small); the context, not the level, is what pays off on screen content.
const LEVEL: i32 = 3;
/// Start points of at most this many uncompressed bytes are coded at level 18: a 720p
/// terminal's first picture is 6.4 KB instead of 7.2 KB at level 3, in ~30 ms once per join.
const START_SMALL: usize = 256 * 1024;
/// Start points up to this size are coded at level 16 (about half the time of 18 per byte);
/// larger ones (a screen of photos coded raw) at [`LEVEL`], which is ~10× faster.
const START_LARGE: usize = 1024 * 1024;
/// Largest edge of a solid rectangle (others are at most one tile): lined-up solid tiles of
/// one colour are sent as one.
pub const MAX_SOLID: u32 = 256;
/// Most colours a palette rectangle holds.
pub const MAX_PALETTE: usize = 256;
/// Most rectangles in one update (a 4K screen in 64×64 tiles is 2,040).
pub const MAX_RECTS: u32 = 4096;

const SOLID: u8 = 0;
const PALETTE: u8 = 1;
const RAW: u8 = 2;

/// Why lossless data from a peer (or the local compressor) failed.
#[derive(Debug, thiserror::Error)]
pub enum LosslessError {
    /// A rectangle is empty, larger than a tile, or outside the screen.
    #[error("rectangle {rect:?} is empty, larger than {TILE}×{TILE} ({MAX_SOLID}×{MAX_SOLID} if solid) or outside the {width}×{height} screen")]
    BadRect {
        /// The rectangle.
        rect: Rect,
        /// Screen width.
        width: u32,
        /// Screen height.
        height: u32,
    },
    /// An update declares more rectangles than allowed.
    #[error("{count} rectangles in one update (at most {MAX_RECTS})")]
    TooManyRects {
        /// The declared count.
        count: u32,
    },
    /// A rectangle's coding byte is unknown.
    #[error("unknown rectangle coding {0}")]
    BadKind(u8),
    /// A palette index points past the palette.
    #[error("palette index {index} but the palette has {len} colours")]
    BadIndex {
        /// The index.
        index: u8,
        /// Palette size.
        len: usize,
    },
    /// The data ended before the declared rectangles did.
    #[error("the update's data ends before its rectangles do")]
    Truncated,
    /// Data is left after the declared rectangles.
    #[error("data is left after the update's rectangles")]
    Trailing,
    /// The update continues a context this viewer does not have (it joined or fell behind
    /// after the context started); it waits for the next `reset`.
    #[error("the update continues a compressor context this viewer does not have")]
    NoContext,
    /// The zstd stream is corrupt.
    #[error("corrupt compressed data: {0}")]
    Corrupt(std::io::Error),
    /// The local compressor failed.
    #[error("compressor failed: {0}")]
    Compress(std::io::Error),
}

/// Colours of one rectangle, found with a small open-addressing table (no allocation per
/// pixel, no hashing library: the key is the pixel itself).
struct Palette {
    /// Slots: 0 = empty, else `0xff_rr_gg_bb`.
    keys: [u32; 1024],
    /// The palette index in each slot.
    index: [u8; 1024],
    /// Colours in order of first use.
    colours: Vec<u32>,
}

impl Palette {
    fn new() -> Self {
        Self {
            keys: [0; 1024],
            index: [0; 1024],
            colours: Vec::with_capacity(MAX_PALETTE),
        }
    }

    fn clear(&mut self) {
        self.keys.fill(0);
        self.colours.clear();
    }

    /// The colour's index, adding it; `None` once more than `limit` colours are needed.
    #[inline]
    fn index_of(&mut self, key: u32, limit: usize) -> Option<u8> {
        let mut slot = (key.wrapping_mul(0x9e37_79b1) >> 22) as usize;
        loop {
            match self.keys[slot] {
                0 => {
                    if self.colours.len() >= limit {
                        return None;
                    }
                    let i = self.colours.len() as u8;
                    self.keys[slot] = key;
                    self.index[slot] = i;
                    self.colours.push(key);
                    return Some(i);
                }
                k if k == key => return Some(self.index[slot]),
                _ => slot = (slot + 1) & 1023,
            }
        }
    }
}

#[inline]
fn key(px: &[u8]) -> u32 {
    0xff00_0000 | u32::from(px[0]) << 16 | u32::from(px[1]) << 8 | u32::from(px[2])
}

/// Whether a rectangle of an RGBA frame has at most `limit` (≤ 256) colours: text, UI and
/// flat fills do; photos and video do not. Stops at the first colour past the limit.
pub fn few_colours(rgba: &[u8], width: u32, rect: Rect, limit: usize) -> bool {
    let mut p = Palette::new();
    pixels(rgba, width, rect).all(|px| p.index_of(key(px), limit.min(MAX_PALETTE)).is_some())
}

fn pixels(rgba: &[u8], width: u32, r: Rect) -> impl Iterator<Item = &[u8]> {
    (r.y..r.y + r.h).flat_map(move |y| {
        let row = (y as usize * width as usize + r.x as usize) * 4;
        rgba[row..row + r.w as usize * 4].chunks_exact(4)
    })
}

/// One coded update.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Coded {
    /// The bytes for [`crate::wire::session::LosslessUpdate::data`].
    pub data: Vec<u8>,
    /// How many rectangles they hold ([`crate::wire::session::LosslessUpdate::rects`]):
    /// fewer than asked for when solid ones were joined.
    pub rects: u32,
}

/// The zstd level of a start point of `len` uncompressed bytes (see the module doc).
pub fn start_level(len: usize) -> i32 {
    match len {
        0..=START_SMALL => 18,
        _ if len <= START_LARGE => 16,
        _ => LEVEL,
    }
}

/// The host's side: codes rectangles into one persistent zstd stream.
pub struct LosslessEncoder {
    /// The stream; its output is taken after each update's flush. `None` until the next
    /// update, which is then a start point.
    z: Option<zstd::stream::write::Encoder<'static, Vec<u8>>>,
    /// Scratch: one update's uncompressed bytes.
    raw: Vec<u8>,
    /// Scratch: the current rectangle's palette.
    palette: Box<Palette>,
    /// Scratch: the current rectangle's indices.
    indices: Vec<u8>,
}

impl LosslessEncoder {
    /// A fresh context: the first update is a start point.
    pub fn new() -> Self {
        Self {
            z: None,
            raw: Vec::new(),
            palette: Box::new(Palette::new()),
            indices: Vec::with_capacity((TILE * TILE) as usize),
        }
    }

    /// Starts a new context: the next update is a start point, decoded without any before it.
    pub fn reset(&mut self) {
        self.z = None;
    }

    /// Whether the next update is a start point (its message carries `reset`).
    pub fn at_start(&self) -> bool {
        self.z.is_none()
    }

    /// Codes `rects` (each within a tile and the frame) of a `width`-wide RGBA frame as one
    /// update (lined-up solid ones joined).
    pub fn encode(
        &mut self,
        rgba: &[u8],
        width: u32,
        rects: &[Rect],
    ) -> Result<Coded, LosslessError> {
        self.raw.clear();
        let mut solids = Vec::new();
        let mut count = 0u32;
        for &r in rects {
            match solid_colour(rgba, width, r) {
                Some(c) => solids.push((r, c)),
                None => {
                    self.rect(rgba, width, r);
                    count += 1;
                }
            }
        }
        for (r, c) in merge_solids(solids) {
            self.raw.extend_from_slice(&header(r));
            self.raw.push(SOLID);
            self.raw.extend_from_slice(&rgb(c));
            count += 1;
        }
        let Some(z) = self.z.as_mut() else {
            let mut one = zstd::bulk::Compressor::new(start_level(self.raw.len()))
                .map_err(LosslessError::Compress)?;
            one.set_parameter(CParameter::WindowLog(WINDOW_LOG))
                .map_err(LosslessError::Compress)?;
            let data = one.compress(&self.raw).map_err(LosslessError::Compress)?;
            self.z = Some(continuation(&self.raw)?);
            return Ok(Coded { data, rects: count });
        };
        z.write_all(&self.raw).map_err(LosslessError::Compress)?;
        z.flush().map_err(LosslessError::Compress)?;
        Ok(Coded {
            data: std::mem::take(z.get_mut()),
            rects: count,
        })
    }

    fn rect(&mut self, rgba: &[u8], width: u32, r: Rect) {
        let out = &mut self.raw;
        out.extend_from_slice(&header(r));
        let p = &mut self.palette;
        p.clear();
        self.indices.clear();
        let mut fits = true;
        for px in pixels(rgba, width, r) {
            match p.index_of(key(px), MAX_PALETTE) {
                Some(i) => self.indices.push(i),
                None => {
                    fits = false;
                    break;
                }
            }
        }
        // Solid rectangles never come here: `encode` joins and writes them.
        if fits {
            out.push(PALETTE);
            out.push((p.colours.len() - 1) as u8);
            for &c in &p.colours {
                out.extend_from_slice(&rgb(c));
            }
            pack(
                &self.indices,
                r.w as usize,
                index_bits(p.colours.len()),
                out,
            );
        } else {
            out.push(RAW);
            for px in pixels(rgba, width, r) {
                out.extend_from_slice(&px[..3]);
            }
        }
    }
}

/// A rectangle's first six header bytes: x, y (u16 LE), width−1, height−1.
fn header(r: Rect) -> [u8; 6] {
    let [x0, x1] = (r.x as u16).to_le_bytes();
    let [y0, y1] = (r.y as u16).to_le_bytes();
    [x0, x1, y0, y1, (r.w - 1) as u8, (r.h - 1) as u8]
}

fn rgb(c: u32) -> [u8; 3] {
    [(c >> 16) as u8, (c >> 8) as u8, c as u8]
}

/// The rectangle's colour when it has only one.
fn solid_colour(rgba: &[u8], width: u32, r: Rect) -> Option<u32> {
    let mut px = pixels(rgba, width, r);
    let first = key(px.next()?);
    px.all(|p| key(p) == first).then_some(first)
}

/// Joins solid rectangles of one colour that line up — side by side in a row, then rows of
/// the same span one above the other — into rectangles of up to [`MAX_SOLID`]×[`MAX_SOLID`]:
/// a screen's empty background costs a few headers instead of one per tile.
fn merge_solids(mut solids: Vec<(Rect, u32)>) -> Vec<(Rect, u32)> {
    let joins = |a: &Rect, b: &Rect, side: bool| {
        if side {
            a.y == b.y && a.h == b.h && a.x + a.w == b.x && a.w + b.w <= MAX_SOLID
        } else {
            a.x == b.x && a.w == b.w && a.y + a.h == b.y && a.h + b.h <= MAX_SOLID
        }
    };
    for side in [true, false] {
        solids.sort_by_key(|(r, _)| if side { (r.y, r.x) } else { (r.x, r.y) });
        let mut out: Vec<(Rect, u32)> = Vec::with_capacity(solids.len());
        for (r, c) in solids {
            match out.last_mut() {
                Some((last, lc)) if *lc == c && joins(last, &r, side) => {
                    if side {
                        last.w += r.w;
                    } else {
                        last.h += r.h;
                    }
                }
                _ => out.push((r, c)),
            }
        }
        solids = out;
    }
    solids
}

/// The dictionary a start point leaves for the stream after it: eight zero bytes (never
/// zstd's dictionary magic, so the rest is raw content) and the start's last window of bytes.
fn dictionary(start: &[u8]) -> Vec<u8> {
    let tail = &start[start.len().saturating_sub(1 << WINDOW_LOG)..];
    let mut d = Vec::with_capacity(8 + tail.len());
    d.extend_from_slice(&[0; 8]);
    d.extend_from_slice(tail);
    d
}

/// The stream that continues after a start point of `start` (uncompressed).
fn continuation(
    start: &[u8],
) -> Result<zstd::stream::write::Encoder<'static, Vec<u8>>, LosslessError> {
    let mut z =
        zstd::stream::write::Encoder::with_dictionary(Vec::new(), LEVEL, &dictionary(start))
            .map_err(LosslessError::Compress)?;
    z.window_log(WINDOW_LOG).map_err(LosslessError::Compress)?;
    Ok(z)
}

impl Default for LosslessEncoder {
    fn default() -> Self {
        Self::new()
    }
}

/// The viewer's side: decodes updates in order into its picture.
pub struct LosslessDecoder {
    /// The stream, when this viewer has its context.
    z: Option<Decoder<'static>>,
}

impl Default for LosslessDecoder {
    fn default() -> Self {
        Self::new()
    }
}

/// Where an update's pixels go.
pub struct Canvas<'a> {
    /// RGBA pixels.
    pub rgba: &'a mut [u8],
    /// Width.
    pub width: u32,
    /// Height.
    pub height: u32,
}

impl LosslessDecoder {
    /// A decoder without a context (it starts at the first `reset`).
    pub fn new() -> Self {
        Self { z: None }
    }

    /// Decodes one update into `canvas`; returns the rectangles written. On any error the
    /// context is dropped: the decoder waits for the next `reset`.
    pub fn decode(
        &mut self,
        reset: bool,
        count: u32,
        data: &[u8],
        canvas: Canvas<'_>,
    ) -> Result<Vec<Rect>, LosslessError> {
        if count > MAX_RECTS {
            return Err(LosslessError::TooManyRects { count });
        }
        if reset {
            self.z = Some(stream_decoder(&[])?);
        }
        let z = self.z.as_mut().ok_or(LosslessError::NoContext)?;
        let mut input = Input {
            z,
            data,
            pos: 0,
            start: reset.then(Vec::new),
        };
        let out = decode_all(&mut input, count, canvas);
        let start = input.start;
        if out.is_err() {
            self.z = None;
        } else if let Some(start) = start {
            // The stream after a start point has the start's bytes as its dictionary.
            self.z = None;
            self.z = Some(stream_decoder(&dictionary(&start))?);
        }
        out
    }
}

/// A decoder for a start point (no dictionary) or the stream after one.
fn stream_decoder(dict: &[u8]) -> Result<Decoder<'static>, LosslessError> {
    let mut z = if dict.is_empty() {
        Decoder::new()
    } else {
        Decoder::with_dictionary(dict)
    }
    .map_err(LosslessError::Corrupt)?;
    z.set_parameter(DParameter::WindowLogMax(MAX_WINDOW_LOG))
        .map_err(LosslessError::Corrupt)?;
    Ok(z)
}

/// Reads rectangles from one update's data.
struct Input<'a, 'z> {
    z: &'a mut Decoder<'z>,
    data: &'a [u8],
    pos: usize,
    /// A start point's uncompressed bytes (the last two windows' worth at most), kept for
    /// the dictionary of the stream after it.
    start: Option<Vec<u8>>,
}

impl Input<'_, '_> {
    /// Fills `out` from the stream.
    fn read(&mut self, out: &mut [u8]) -> Result<(), LosslessError> {
        let mut filled = 0;
        while filled < out.len() {
            let st = self
                .z
                .run_on_buffers(&self.data[self.pos..], &mut out[filled..])
                .map_err(LosslessError::Corrupt)?;
            self.pos += st.bytes_read;
            filled += st.bytes_written;
            if st.bytes_read == 0 && st.bytes_written == 0 {
                return Err(LosslessError::Truncated);
            }
        }
        if let Some(start) = self.start.as_mut() {
            start.extend_from_slice(out);
            if start.len() > 2 << WINDOW_LOG {
                start.drain(..start.len() - (1 << WINDOW_LOG));
            }
        }
        Ok(())
    }

    /// Checks nothing is left after the last rectangle.
    fn finish(&mut self) -> Result<(), LosslessError> {
        let mut probe = [0u8; 1];
        loop {
            let st = self
                .z
                .run_on_buffers(&self.data[self.pos..], &mut probe)
                .map_err(LosslessError::Corrupt)?;
            self.pos += st.bytes_read;
            if st.bytes_written > 0 {
                return Err(LosslessError::Trailing);
            }
            if st.bytes_read == 0 {
                break;
            }
        }
        if self.pos < self.data.len() {
            return Err(LosslessError::Trailing);
        }
        Ok(())
    }
}

fn decode_all(
    input: &mut Input<'_, '_>,
    count: u32,
    c: Canvas<'_>,
) -> Result<Vec<Rect>, LosslessError> {
    let mut rects = Vec::with_capacity(count as usize);
    let mut buf = vec![0u8; (TILE * TILE * 3) as usize];
    for _ in 0..count {
        let mut head = [0u8; 7];
        input.read(&mut head)?;
        let r = Rect {
            x: u32::from(u16::from_le_bytes([head[0], head[1]])),
            y: u32::from(u16::from_le_bytes([head[2], head[3]])),
            w: u32::from(head[4]) + 1,
            h: u32::from(head[5]) + 1,
        };
        let edge = if head[6] == SOLID { MAX_SOLID } else { TILE };
        if r.w > edge || r.h > edge || r.x + r.w > c.width || r.y + r.h > c.height {
            return Err(LosslessError::BadRect {
                rect: r,
                width: c.width,
                height: c.height,
            });
        }
        let n = (r.w * r.h) as usize;
        match head[6] {
            SOLID => {
                let mut rgb = [0u8; 3];
                input.read(&mut rgb)?;
                fill(c.rgba, c.width, r, |_| rgb);
            }
            PALETTE => {
                let mut len = [0u8; 1];
                input.read(&mut len)?;
                let len = usize::from(len[0]) + 1;
                let mut colours = [0u8; MAX_PALETTE * 3];
                input.read(&mut colours[..len * 3])?;
                let bits = index_bits(len);
                let packed = r.h as usize * row_bytes(r.w as usize, bits);
                let mut raw = [0u8; (TILE * TILE) as usize];
                input.read(&mut raw[..packed])?;
                unpack(&raw[..packed], r.w as usize, bits, &mut buf[..n]);
                if let Some(&index) = buf[..n].iter().find(|&&i| usize::from(i) >= len) {
                    return Err(LosslessError::BadIndex { index, len });
                }
                let at = |i: usize| {
                    let k = usize::from(buf[i]) * 3;
                    [colours[k], colours[k + 1], colours[k + 2]]
                };
                fill(c.rgba, c.width, r, at);
            }
            RAW => {
                input.read(&mut buf[..n * 3])?;
                fill(c.rgba, c.width, r, |i| {
                    [buf[i * 3], buf[i * 3 + 1], buf[i * 3 + 2]]
                });
            }
            k => return Err(LosslessError::BadKind(k)),
        }
        rects.push(r);
    }
    input.finish()?;
    Ok(rects)
}

/// Bits per palette index: 1, 2 or 4 for palettes of up to 2, 4 or 16 colours (text is
/// mostly two), else 8.
fn index_bits(colours: usize) -> usize {
    match colours {
        0..=2 => 1,
        3..=4 => 2,
        5..=16 => 4,
        _ => 8,
    }
}

/// Bytes per packed row of `w` indices.
fn row_bytes(w: usize, bits: usize) -> usize {
    (w * bits).div_ceil(8)
}

/// Packs indices row by row, most significant bits first, each row starting on a byte.
fn pack(indices: &[u8], w: usize, bits: usize, out: &mut Vec<u8>) {
    if bits == 8 {
        out.extend_from_slice(indices);
        return;
    }
    let per = 8 / bits;
    for row in indices.chunks_exact(w) {
        for group in row.chunks(per) {
            let mut b = 0u8;
            for (k, &i) in group.iter().enumerate() {
                b |= i << (8 - bits * (k + 1));
            }
            out.push(b);
        }
    }
}

/// The inverse of [`pack`]: `out` holds `w`-wide rows of indices.
fn unpack(packed: &[u8], w: usize, bits: usize, out: &mut [u8]) {
    if bits == 8 {
        out.copy_from_slice(packed);
        return;
    }
    let (per, mask) = (8 / bits, (1u8 << bits) - 1);
    let rb = row_bytes(w, bits);
    for (row, src) in out.chunks_exact_mut(w).zip(packed.chunks_exact(rb)) {
        for (x, i) in row.iter_mut().enumerate() {
            *i = (src[x / per] >> (8 - bits * (x % per + 1))) & mask;
        }
    }
}

/// Writes `r`'s pixels: `at(i)` is the RGB of the rectangle's `i`-th pixel (row by row).
fn fill(rgba: &mut [u8], width: u32, r: Rect, at: impl Fn(usize) -> [u8; 3]) {
    let mut i = 0;
    for y in r.y..r.y + r.h {
        let row = (y as usize * width as usize + r.x as usize) * 4;
        for dst in rgba[row..row + r.w as usize * 4].chunks_exact_mut(4) {
            let [cr, cg, cb] = at(i);
            dst.copy_from_slice(&[cr, cg, cb, 255]);
            i += 1;
        }
    }
}

#[cfg(test)]
mod tests;
