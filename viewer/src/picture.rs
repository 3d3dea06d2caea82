//! The viewer's picture: the H.264 decoder's output composited with copies and lossless
//! regions.
//!
//! A tile written losslessly stays exact until a video frame's damage covers it; copies move
//! whatever the picture holds; the rest of the picture follows the decoder. The exact-tile
//! map changes by the same rules as the host's ([`Exact`]).

use openh264::decoder::Decoder;
use portico_core::tiles::exact::Exact;
use portico_core::tiles::lossless::{Canvas, LosslessDecoder, LosslessError};
use portico_core::tiles::scroll::{self, CopyError};
use portico_core::tiles::{copy_rect, intersects, Grid};
use portico_core::wire::session::{CopyUpdate, LosslessUpdate, VideoFrame, MAX_COPIES};

/// Largest picture accepted from a host (8K).
const MAX_SIDE: u32 = 8192;

/// Why an update from the host was not applied (the session goes on; the viewer asks for a
/// new start).
#[derive(Debug, thiserror::Error)]
pub enum PictureError {
    /// The picture size is out of range.
    #[error("picture size {width}x{height} is out of range (at most {MAX_SIDE} a side)")]
    Size {
        /// Width.
        width: u32,
        /// Height.
        height: u32,
    },
    /// The H.264 decoder refused the frame or its size disagrees.
    #[error("video: {0}")]
    Video(String),
    /// A copy does not fit.
    #[error("copy: {0}")]
    Copy(#[from] CopyError),
    /// Lossless data is malformed or continues a context this viewer lacks.
    #[error("lossless: {0}")]
    Lossless(#[from] LosslessError),
}

/// The composed picture.
pub struct Picture {
    /// H.264 decoder.
    decoder: Decoder,
    /// Size.
    grid: Option<Grid>,
    /// RGBA shown.
    canvas: Vec<u8>,
    /// Decoder output, RGBA.
    decoded: Vec<u8>,
    /// Tiles that hold exact pixels.
    exact: Exact,
    /// The lossless stream's context.
    lossless: LosslessDecoder,
}

impl Picture {
    /// An empty picture.
    pub fn new() -> Result<Self, portico_signal_client::session_io::StreamError> {
        let decoder = Decoder::new().map_err(|e| {
            portico_signal_client::session_io::StreamError::Io(std::io::Error::other(e.to_string()))
        })?;
        Ok(Self {
            decoder,
            grid: None,
            canvas: Vec::new(),
            decoded: Vec::new(),
            exact: Exact::new(Grid {
                width: 0,
                height: 0,
            }),
            lossless: LosslessDecoder::new(),
        })
    }

    /// Size, once known.
    pub fn size(&self) -> Option<(u32, u32)> {
        self.grid.map(|g| (g.width, g.height))
    }

    /// The RGBA pixels.
    pub fn rgba(&self) -> &[u8] {
        &self.canvas
    }

    fn resize(&mut self, w: u32, h: u32) -> Result<Grid, PictureError> {
        if w == 0 || h == 0 || w > MAX_SIDE || h > MAX_SIDE {
            return Err(PictureError::Size {
                width: w,
                height: h,
            });
        }
        let g = Grid {
            width: w,
            height: h,
        };
        if self.grid != Some(g) {
            self.grid = Some(g);
            self.canvas = vec![0; (w * h * 4) as usize];
            self.decoded = vec![0; (w * h * 4) as usize];
            self.exact = Exact::new(g);
        }
        Ok(g)
    }

    /// Decodes a video frame; returns whether a picture came out.
    pub fn video(&mut self, v: &VideoFrame) -> Result<bool, PictureError> {
        let g = self.resize(v.width, v.height)?;
        let yuv = match self.decoder.decode(&v.data) {
            Ok(Some(yuv)) => yuv,
            Ok(None) => return Ok(false),
            Err(e) => return Err(PictureError::Video(e.to_string())),
        };
        let (dw, dh) = openh264::formats::YUVSource::dimensions(&yuv);
        if (dw as u32, dh as u32) != (g.width, g.height) {
            return Err(PictureError::Video(format!(
                "decoded {dw}x{dh} but the frame says {}x{}",
                g.width, g.height
            )));
        }
        yuv.write_rgba8(&mut self.decoded);
        // No damage: the whole picture.
        let whole = v.damage.is_empty();
        for i in 0..g.len() {
            let r = g.rect(i);
            let damaged = whole || v.damage.iter().any(|d| intersects(d, &r));
            if damaged || !self.exact.get(i) {
                self.exact.set(i, false);
                copy_rect(&self.decoded, &mut self.canvas, g.width, r);
            }
        }
        Ok(true)
    }

    /// Applies copies (all checked before any is applied).
    pub fn copy(&mut self, c: &CopyUpdate) -> Result<(), PictureError> {
        let g = self.resize(c.width, c.height)?;
        if c.copies.len() > MAX_COPIES {
            return Err(CopyError::TooMany(c.copies.len()).into());
        }
        for cp in &c.copies {
            scroll::check(cp, g.width, g.height)?;
        }
        for cp in &c.copies {
            scroll::apply(&mut self.canvas, g.width, g.height, cp)?;
            self.exact.copied(cp);
        }
        Ok(())
    }

    /// Applies a lossless update; returns how many rectangles it wrote.
    pub fn lossless(&mut self, l: &LosslessUpdate) -> Result<usize, PictureError> {
        let g = self.resize(l.width, l.height)?;
        let rects = self.lossless.decode(
            l.reset,
            l.rects,
            &l.data,
            Canvas {
                rgba: &mut self.canvas,
                width: g.width,
                height: g.height,
            },
        )?;
        for r in &rects {
            self.exact.written(*r);
        }
        Ok(rects.len())
    }

    /// Tiles currently exact.
    pub fn exact_tiles(&self) -> usize {
        self.grid
            .map_or(0, |g| g.len() - self.exact.inexact().len())
    }

    /// The picture with the cursor drawn over it (when known and visible).
    pub fn with_cursor(&self, cursor: &Cursor) -> Vec<u8> {
        let mut out = self.canvas.clone();
        if let Some(g) = self.grid {
            cursor.draw(&mut out, g.width, g.height);
        }
        out
    }

    /// Writes the picture as PNG, with `cursor` drawn over it when given.
    pub fn save_png(&self, path: &std::path::Path, cursor: Option<&Cursor>) -> Result<(), String> {
        let (w, h) = self.size().ok_or("no picture was received")?;
        let rgba = match cursor {
            Some(c) => self.with_cursor(c),
            None => self.canvas.clone(),
        };
        let img = image::RgbaImage::from_raw(w, h, rgba).ok_or("picture buffer size mismatch")?;
        img.save(path).map_err(|e| e.to_string())
    }
}

/// The remote pointer: its shape (premultiplied RGBA, with hotspot) and where it is.
#[derive(Debug, Clone, Default)]
pub struct Cursor {
    /// The current shape.
    pub shape: Option<portico_core::wire::session::CursorShape>,
    /// The current position.
    pub position: Option<portico_core::wire::session::CursorPosition>,
}

impl Cursor {
    /// Draws the cursor into an RGBA picture of `width`×`height` ("over" with premultiplied
    /// alpha), clipped at the edges.
    pub fn draw(&self, rgba: &mut [u8], width: u32, height: u32) {
        let (Some(s), Some(p)) = (&self.shape, &self.position) else {
            return;
        };
        if !p.visible || !s.is_valid() {
            return;
        }
        let (ox, oy) = (p.x - i32::from(s.hot_x), p.y - i32::from(s.hot_y));
        for cy in 0..i32::from(s.height) {
            let y = oy + cy;
            if y < 0 || y >= height as i32 {
                continue;
            }
            for cx in 0..i32::from(s.width) {
                let x = ox + cx;
                if x < 0 || x >= width as i32 {
                    continue;
                }
                let si = ((cy * i32::from(s.width) + cx) * 4) as usize;
                let di = ((y as u32 * width + x as u32) * 4) as usize;
                let a = u32::from(s.rgba[si + 3]);
                for k in 0..3 {
                    let d = u32::from(rgba[di + k]);
                    rgba[di + k] = (u32::from(s.rgba[si + k]) + d * (255 - a) / 255).min(255) as u8;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use portico_core::tiles::lossless::LosslessEncoder;
    use portico_core::wire::session::{CopyRect, CursorPosition, CursorShape, Rect};

    fn lossless(reset: bool, rects: u32, data: Vec<u8>) -> LosslessUpdate {
        LosslessUpdate {
            frame: 1,
            capture_us: 0,
            monitor: 0,
            width: 128,
            height: 64,
            reset,
            rects,
            data,
        }
    }

    #[test]
    fn malformed_copies_and_lossless_updates_are_refused_and_the_picture_goes_on() {
        let mut p = Picture::new().unwrap();
        let src: Vec<u8> = (0..128 * 64)
            .flat_map(|i| [(i % 3) as u8 * 100, 0, 0, 255])
            .collect();
        let rects = [
            Rect {
                x: 0,
                y: 0,
                w: 64,
                h: 64,
            },
            Rect {
                x: 64,
                y: 0,
                w: 64,
                h: 64,
            },
        ];
        let mut enc = LosslessEncoder::new();
        let c = enc.encode(&src, 128, &rects).unwrap();
        assert_eq!(c.rects, 2);
        assert_eq!(p.lossless(&lossless(true, 2, c.data)).unwrap(), 2);
        assert_eq!(p.rgba(), &src[..]);
        assert_eq!(p.exact_tiles(), 2);
        let copy = |dst_y: u32, n: usize| CopyUpdate {
            frame: 2,
            capture_us: 0,
            monitor: 0,
            width: 128,
            height: 64,
            copies: vec![
                CopyRect {
                    src: Rect {
                        x: 0,
                        y: 0,
                        w: 128,
                        h: 32
                    },
                    dst_x: 0,
                    dst_y,
                };
                n
            ],
        };
        // Out of the screen, or too many: refused, and nothing of them is applied.
        assert!(matches!(
            p.copy(&copy(40, 1)),
            Err(PictureError::Copy(CopyError::OutOfBounds { .. }))
        ));
        assert!(matches!(
            p.copy(&copy(0, MAX_COPIES + 1)),
            Err(PictureError::Copy(CopyError::TooMany(_)))
        ));
        assert_eq!(p.rgba(), &src[..]);
        // Garbage lossless data, and an update for a context this viewer lost: refused.
        assert!(matches!(
            p.lossless(&lossless(false, 1, b"junk".to_vec())),
            Err(PictureError::Lossless(_))
        ));
        assert!(matches!(
            p.lossless(&lossless(true, 1, b"junk".to_vec())),
            Err(PictureError::Lossless(_))
        ));
        let more = enc.encode(&src, 128, &rects).unwrap().data;
        assert!(matches!(
            p.lossless(&lossless(false, 2, more)),
            Err(PictureError::Lossless(LosslessError::NoContext))
        ));
        // The next start works again; a valid copy applies.
        enc.reset();
        let data = enc.encode(&src, 128, &rects).unwrap().data;
        assert_eq!(p.lossless(&lossless(true, 2, data)).unwrap(), 2);
        p.copy(&copy(32, 1)).unwrap();
        assert_eq!(&p.rgba()[128 * 32 * 4..], &src[..128 * 32 * 4]);
    }

    #[test]
    fn cursor_is_drawn_at_its_hotspot_with_alpha_and_clipped() {
        // 2x1 cursor: an opaque red pixel, then a half-transparent white one; hotspot (1, 0).
        let c = Cursor {
            shape: Some(CursorShape {
                serial: 1,
                width: 2,
                height: 1,
                hot_x: 1,
                hot_y: 0,
                rgba: vec![255, 0, 0, 255, 128, 128, 128, 128],
            }),
            position: Some(CursorPosition {
                x: 1,
                y: 0,
                visible: true,
                serial: 1,
            }),
        };
        let mut px = vec![0u8; 3 * 4];
        c.draw(&mut px, 3, 1);
        assert_eq!(&px[0..4], &[255, 0, 0, 0]);
        assert_eq!(&px[4..7], &[128, 128, 128]);
        // Off the left edge: only what is inside is drawn, nothing panics.
        let mut c2 = c.clone();
        c2.position = Some(CursorPosition {
            x: 0,
            y: 0,
            visible: true,
            serial: 1,
        });
        let mut px = vec![10u8; 3 * 4];
        c2.draw(&mut px, 3, 1);
        assert_eq!(&px[0..3], &[132, 132, 132]);
        // Hidden: nothing.
        c2.position = Some(CursorPosition {
            x: 0,
            y: 0,
            visible: false,
            serial: 1,
        });
        let mut px = vec![10u8; 12];
        c2.draw(&mut px, 3, 1);
        assert_eq!(px, vec![10u8; 12]);
    }
}
