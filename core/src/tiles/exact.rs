//! Which tiles of the viewer's picture are exact (lossless) rather than video.
//!
//! The host keeps one map for its stream and every viewer keeps its own; both change it by
//! the same rules on the same messages, so the host knows which tiles need a lossless
//! refresh when the screen comes to rest. The host may think a tile inexact that a viewer
//! has exact (it then re-sends it), never the other way round.

use super::Grid;
use crate::wire::session::{CopyRect, Rect};

/// Per tile of a grid: the picture holds the source's exact pixels there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exact {
    /// The grid.
    grid: Grid,
    /// One flag per tile.
    flags: Vec<bool>,
}

impl Exact {
    /// No tile exact.
    pub fn new(grid: Grid) -> Self {
        Self {
            grid,
            flags: vec![false; grid.len()],
        }
    }

    /// The grid.
    pub fn grid(&self) -> Grid {
        self.grid
    }

    /// Whether tile `i` is exact.
    pub fn get(&self, i: usize) -> bool {
        self.flags.get(i).copied().unwrap_or(false)
    }

    /// Marks tile `i`.
    pub fn set(&mut self, i: usize, exact: bool) {
        if let Some(f) = self.flags.get_mut(i) {
            *f = exact;
        }
    }

    /// Marks every tile inexact (a new stream start or a whole video frame).
    pub fn clear(&mut self) {
        self.flags.fill(false);
    }

    /// Tiles not exact, in order.
    pub fn inexact(&self) -> Vec<usize> {
        (0..self.flags.len()).filter(|&i| !self.flags[i]).collect()
    }

    /// A lossless rectangle was written: a tile it covers whole becomes exact; a tile it
    /// covers in part keeps its flag (exact stays exact, video stays video).
    pub fn written(&mut self, r: Rect) {
        for i in self.grid.touching(r) {
            let t = self.grid.rect(i);
            if contains(&r, &t) {
                self.flags[i] = true;
            }
        }
    }

    /// A copy moved pixels: a destination tile is exact only if every source tile it drew
    /// from was, and (when the copy covers it in part) it was exact itself.
    pub fn copied(&mut self, c: &CopyRect) {
        let dst = Rect {
            x: c.dst_x,
            y: c.dst_y,
            ..c.src
        };
        let before = self.flags.clone();
        for i in self.grid.touching(dst) {
            let t = self.grid.rect(i);
            let Some(part) = intersect(&t, &dst) else {
                continue;
            };
            let from = Rect {
                x: part.x - c.dst_x + c.src.x,
                y: part.y - c.dst_y + c.src.y,
                ..part
            };
            let own = contains(&dst, &t) || before[i];
            self.flags[i] = own && self.grid.touching(from).all(|s| before[s]);
        }
    }
}

fn contains(outer: &Rect, inner: &Rect) -> bool {
    outer.x <= inner.x
        && outer.y <= inner.y
        && outer.x + outer.w >= inner.x + inner.w
        && outer.y + outer.h >= inner.y + inner.h
}

fn intersect(a: &Rect, b: &Rect) -> Option<Rect> {
    let (x0, y0) = (a.x.max(b.x), a.y.max(b.y));
    let (x1, y1) = ((a.x + a.w).min(b.x + b.w), (a.y + a.h).min(b.y + b.h));
    (x0 < x1 && y0 < y1).then(|| Rect {
        x: x0,
        y: y0,
        w: x1 - x0,
        h: y1 - y0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_and_copies_follow_the_rules() {
        let g = Grid {
            width: 256,
            height: 256,
        };
        let mut e = Exact::new(g);
        // A whole tile written: exact; a part of one: unchanged.
        e.written(g.rect(0));
        e.written(Rect {
            x: 64,
            y: 0,
            w: 10,
            h: 10,
        });
        assert!(e.get(0) && !e.get(1));
        // Every tile of the top row exact, then the top two rows' content moves down 64 px:
        // row 1 gets row 0's exact pixels, row 2 gets row 1's inexact ones.
        for i in 0..4 {
            e.set(i, true);
        }
        e.copied(&CopyRect {
            src: Rect {
                x: 0,
                y: 0,
                w: 256,
                h: 128,
            },
            dst_x: 0,
            dst_y: 64,
        });
        assert!((4..8).all(|i| e.get(i)), "{e:?}");
        assert!((8..12).all(|i| !e.get(i)));
        // A copy covering part of an inexact tile leaves it inexact even from exact sources.
        e.copied(&CopyRect {
            src: Rect {
                x: 0,
                y: 0,
                w: 64,
                h: 32,
            },
            dst_x: 0,
            dst_y: 200,
        });
        assert!(!e.get(12));
        assert_eq!(e.inexact().len(), 16 - 8);
    }
}
