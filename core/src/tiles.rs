//! Screen content, shared by host and viewer: the 64×64 tile grid, change detection and
//! damage rectangles, and the content coding built on them:
//!
//! - [`scroll`]: vertical moves found between two frames, sent as copies;
//! - [`lossless`]: palette/raw coding of regions through one persistent zstd context;
//! - [`exact`]: which tiles of a picture are exact, kept by the same rules on both ends.
//!
//! H.264 4:2:0 alone cannot show text exactly (it blurs colour edges and sits around 35 dB),
//! and re-encoding a whole frame for a one-line change costs far more than the line; so
//! regions with few colours (text, UI, flat fills) go lossless at once, regions with many go
//! to H.264, and what H.264 carried is refreshed losslessly once the screen is at rest.

use crate::wire::session::Rect;

pub mod exact;
pub mod lossless;
pub mod scroll;

/// Tile edge in pixels.
pub const TILE: u32 = 64;

/// A grid of tiles over a `width`×`height` screen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grid {
    /// Screen width.
    pub width: u32,
    /// Screen height.
    pub height: u32,
}

impl Grid {
    /// Tiles per row.
    pub fn cols(&self) -> u32 {
        self.width.div_ceil(TILE)
    }

    /// Tile rows.
    pub fn rows(&self) -> u32 {
        self.height.div_ceil(TILE)
    }

    /// Number of tiles.
    pub fn len(&self) -> usize {
        (self.cols() * self.rows()) as usize
    }

    /// Whether the grid is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Tiles a rectangle (inside the screen) touches, row by row.
    pub fn touching(&self, r: Rect) -> impl Iterator<Item = usize> {
        let cols = self.cols();
        let (c0, r0) = (r.x / TILE, r.y / TILE);
        let c1 = (r.x + r.w).div_ceil(TILE).min(cols);
        let r1 = (r.y + r.h).div_ceil(TILE).min(self.rows());
        (r0..r1).flat_map(move |row| (c0..c1).map(move |c| (row * cols + c) as usize))
    }

    /// The bounding box of tiles (`None` for none).
    pub fn bounds(&self, tiles: &[usize]) -> Option<Rect> {
        let mut it = tiles.iter().map(|&i| self.rect(i));
        let first = it.next()?;
        let (x0, y0, x1, y1) = it.fold(
            (first.x, first.y, first.x + first.w, first.y + first.h),
            |(x0, y0, x1, y1), r| {
                (
                    x0.min(r.x),
                    y0.min(r.y),
                    x1.max(r.x + r.w),
                    y1.max(r.y + r.h),
                )
            },
        );
        Some(Rect {
            x: x0,
            y: y0,
            w: x1 - x0,
            h: y1 - y0,
        })
    }

    /// The rectangle of tile `i` (clipped to the screen).
    pub fn rect(&self, i: usize) -> Rect {
        let (c, r) = (i as u32 % self.cols(), i as u32 / self.cols());
        let (x, y) = (c * TILE, r * TILE);
        Rect {
            x,
            y,
            w: TILE.min(self.width - x),
            h: TILE.min(self.height - y),
        }
    }
}

/// Indices of tiles that differ between two RGBA frames of the grid's size.
pub fn changed_tiles(grid: Grid, prev: &[u8], cur: &[u8]) -> Vec<usize> {
    let stride = grid.width as usize * 4;
    let mut out = Vec::new();
    for i in 0..grid.len() {
        let r = grid.rect(i);
        let (x0, x1) = (r.x as usize * 4, (r.x + r.w) as usize * 4);
        let changed = (r.y..r.y + r.h).any(|y| {
            let row = y as usize * stride;
            prev.get(row + x0..row + x1) != cur.get(row + x0..row + x1)
        });
        if changed {
            out.push(i);
        }
    }
    out
}

/// Whether two rectangles overlap (saturating: safe on rectangles from a peer).
pub fn intersects(a: &Rect, b: &Rect) -> bool {
    a.x < b.x.saturating_add(b.w)
        && b.x < a.x.saturating_add(a.w)
        && a.y < b.y.saturating_add(b.h)
        && b.y < a.y.saturating_add(a.h)
}

/// Copies `r` from one RGBA frame to another of the same width.
pub fn copy_rect(from: &[u8], to: &mut [u8], width: u32, r: Rect) {
    let len = r.w as usize * 4;
    for y in r.y..r.y + r.h {
        let at = (y as usize * width as usize + r.x as usize) * 4;
        to[at..at + len].copy_from_slice(&from[at..at + len]);
    }
}

/// Merges tile indices into rectangles: horizontal runs of adjacent tiles per tile row.
pub fn damage_rects(grid: Grid, tiles: &[usize]) -> Vec<Rect> {
    let mut out: Vec<Rect> = Vec::new();
    let mut last: Option<usize> = None;
    for &i in tiles {
        let r = grid.rect(i);
        match (last, out.last_mut()) {
            (Some(l), Some(prev)) if l + 1 == i && i as u32 % grid.cols() != 0 => prev.w += r.w,
            _ => out.push(r),
        }
        last = Some(i);
    }
    out
}

/// PSNR of two RGB(A) images over their RGB channels, in dB (99 when identical).
pub fn psnr_rgba(a: &[u8], b: &[u8]) -> f64 {
    let (mut sse, mut n) = (0f64, 0f64);
    for (pa, pb) in a.chunks_exact(4).zip(b.chunks_exact(4)) {
        for c in 0..3 {
            let d = f64::from(pa[c]) - f64::from(pb[c]);
            sse += d * d;
            n += 1.0;
        }
    }
    if sse == 0.0 {
        99.0
    } else {
        10.0 * (255.0f64 * 255.0 / (sse / n)).log10()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(w: u32, h: u32, seed: u8) -> Vec<u8> {
        (0..w * h * 4)
            .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
            .collect()
    }

    #[test]
    fn changed_tiles_and_rects() {
        let g = Grid {
            width: 200,
            height: 130,
        };
        assert_eq!((g.cols(), g.rows(), g.len()), (4, 3, 12));
        assert_eq!(
            g.rect(3),
            Rect {
                x: 192,
                y: 0,
                w: 8,
                h: 64
            }
        );
        let a = frame(200, 130, 0);
        let mut b = a.clone();
        assert!(changed_tiles(g, &a, &b).is_empty());
        // Touch a pixel in tile (1,0) and one in tile (2,0) and one in the last tile.
        for (x, y) in [(70u32, 5u32), (130, 60), (199, 129)] {
            b[((y * 200 + x) * 4) as usize] ^= 0xff;
        }
        let tiles = changed_tiles(g, &a, &b);
        assert_eq!(tiles, vec![1, 2, 11]);
        assert_eq!(
            g.bounds(&tiles),
            Some(Rect {
                x: 64,
                y: 0,
                w: 136,
                h: 130
            })
        );
        assert_eq!(g.bounds(&[]), None);
        assert_eq!(
            g.touching(Rect {
                x: 60,
                y: 60,
                w: 10,
                h: 10
            })
            .collect::<Vec<_>>(),
            vec![0, 1, 4, 5]
        );
        assert_eq!(
            damage_rects(g, &tiles),
            vec![
                Rect {
                    x: 64,
                    y: 0,
                    w: 128,
                    h: 64
                },
                Rect {
                    x: 192,
                    y: 128,
                    w: 8,
                    h: 2
                }
            ]
        );
    }
}
