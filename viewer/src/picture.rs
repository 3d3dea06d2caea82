//! The viewer's picture: the H.264 decoder's output composited with lossless tiles.
//!
//! A tile received losslessly stays on screen until a video frame's damage covers it; the
//! rest of the picture follows the decoder.

use openh264::decoder::Decoder;
use portico_core::wire::session::{Rect, TileUpdate, VideoFrame};

use portico_core::tiles::{apply_tile, Grid, TileError, TILE};

/// Largest picture accepted from a host (8K).
const MAX_SIDE: u32 = 8192;

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
    /// Per tile: the canvas holds lossless pixels.
    lossless: Vec<bool>,
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
            lossless: Vec::new(),
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

    fn resize(&mut self, w: u32, h: u32) -> Result<Grid, String> {
        if w == 0 || h == 0 || w > MAX_SIDE || h > MAX_SIDE {
            return Err(format!("picture size {w}x{h} is out of range"));
        }
        let g = Grid {
            width: w,
            height: h,
        };
        if self.grid != Some(g) {
            self.grid = Some(g);
            self.canvas = vec![0; (w * h * 4) as usize];
            self.decoded = vec![0; (w * h * 4) as usize];
            self.lossless = vec![false; g.len()];
        }
        Ok(g)
    }

    /// Decodes a video frame; returns whether a picture came out.
    pub fn video(&mut self, v: &VideoFrame) -> Result<bool, String> {
        let g = self.resize(v.width, v.height)?;
        let Some(yuv) = self.decoder.decode(&v.data).map_err(|e| e.to_string())? else {
            return Ok(false);
        };
        let (dw, dh) = openh264::formats::YUVSource::dimensions(&yuv);
        if (dw as u32, dh as u32) != (g.width, g.height) {
            return Err(format!(
                "decoded {dw}x{dh} but the frame says {}x{}",
                g.width, g.height
            ));
        }
        yuv.write_rgba8(&mut self.decoded);
        let whole = v.keyframe || v.damage.is_empty();
        for i in 0..g.len() {
            let r = g.rect(i);
            let damaged = whole || v.damage.iter().any(|d| intersects(d, &r));
            if damaged || !self.lossless[i] {
                self.lossless[i] = false;
                copy_rect(&self.decoded, &mut self.canvas, g.width, r);
            }
        }
        Ok(true)
    }

    /// Applies lossless tiles.
    pub fn tiles(&mut self, t: &TileUpdate) -> Result<(), TileError> {
        let g = self.resize(t.width, t.height).map_err(|_| {
            TileError::BadRect(Rect {
                x: 0,
                y: 0,
                w: t.width,
                h: t.height,
            })
        })?;
        for tile in &t.tiles {
            apply_tile(&mut self.canvas, g.width, g.height, tile.rect, &tile.data)?;
            if tile.rect.x % TILE == 0 && tile.rect.y % TILE == 0 {
                let i = (tile.rect.y / TILE * g.cols() + tile.rect.x / TILE) as usize;
                if let Some(l) = self.lossless.get_mut(i) {
                    *l = true;
                }
            }
        }
        Ok(())
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

fn intersects(a: &Rect, b: &Rect) -> bool {
    a.x < b.x + b.w
        && b.x < a.x.saturating_add(a.w)
        && a.y < b.y + b.h
        && b.y < a.y.saturating_add(a.h)
}

fn copy_rect(src: &[u8], dst: &mut [u8], width: u32, r: Rect) {
    for y in r.y..r.y + r.h {
        let row = ((y * width + r.x) * 4) as usize;
        let len = (r.w * 4) as usize;
        dst[row..row + len].copy_from_slice(&src[row..row + len]);
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
    use portico_core::wire::session::{CursorPosition, CursorShape};

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
