//! A deterministic synthetic desktop for benchmarks: a terminal-like text area scrolling by a
//! few pixels per frame, a window moving across a gradient background.

use portico_actors::capture::FrameSource;

fn hash(mut x: u64) -> u64 {
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51afd7ed558ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ceb9fe1a85ec53);
    x ^ (x >> 33)
}

/// Renders frame `t` (RGBA).
pub fn render(w: u32, h: u32, t: u32) -> Vec<u8> {
    let (w, h) = (w as usize, h as usize);
    let t = t as usize;
    let mut v = vec![0u8; w * h * 4];
    let text_w = w * 6 / 10;
    let scroll = t * 3;
    let (rx, ry) = ((t * 17) % (w - 300), (t * 9) % (h - 200));
    for y in 0..h {
        for x in 0..w {
            let i = (y * w + x) * 4;
            let (mut r, mut g, mut b) = (
                (x * 255 / w) as u8,
                (y * 255 / h) as u8,
                ((x ^ y) & 0x3f) as u8 + 96,
            );
            if x < text_w {
                let yy = y + scroll;
                let (cx, cy, px, py) = (x / 8, yy / 16, x % 8, yy % 16);
                (r, g, b) = (245, 245, 240);
                if px < 6 && (2..14).contains(&py) && cx % 13 != 12 {
                    let glyph = hash(((cx as u64) << 32) | cy as u64) % 96;
                    if hash(glyph * 1000 + (py * 8 + px) as u64) % 100 < 35 {
                        (r, g, b) = (20, 20, 30);
                    }
                }
            }
            if (rx..rx + 300).contains(&x) && (ry..ry + 200).contains(&y) {
                (r, g, b) = if y < ry + 20 {
                    (200, 200, 210)
                } else {
                    (40, 90, 200)
                };
            }
            v[i..i + 4].copy_from_slice(&[r, g, b, 255]);
        }
    }
    v
}

/// A [`FrameSource`] replaying pre-rendered frames (moving), or one frame (idle).
pub struct Synthetic {
    /// Frames to cycle through.
    frames: Vec<Vec<u8>>,
    /// Size.
    size: (u32, u32),
    /// Next frame.
    next: usize,
}

impl Synthetic {
    /// `n` frames of the moving desktop (`n = 1`: an idle desktop).
    pub fn new(w: u32, h: u32, n: u32) -> Self {
        Self {
            frames: (0..n.max(1)).map(|t| render(w, h, t)).collect(),
            size: (w, h),
            next: 0,
        }
    }
}

impl FrameSource for Synthetic {
    fn grab(&mut self) -> Result<(u32, u32, Vec<u8>), String> {
        let f = self.frames[self.next % self.frames.len()].clone();
        self.next += 1;
        Ok((self.size.0, self.size.1, f))
    }
}
