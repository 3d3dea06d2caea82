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

    /// Writes the picture as PNG.
    pub fn save_png(&self, path: &std::path::Path) -> Result<(), String> {
        let (w, h) = self.size().ok_or("no picture was received")?;
        let img = image::RgbaImage::from_raw(w, h, self.canvas.clone())
            .ok_or("picture buffer size mismatch")?;
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
