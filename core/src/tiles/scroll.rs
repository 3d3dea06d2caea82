//! Finding content that moved vertically (a scrolled terminal, document or list) between two
//! frames, and applying such moves to a picture.
//!
//! Detection works on the part of the screen that changed: rows of the new frame are hashed
//! over the changed columns and looked up among the old frame's rows; every match votes for
//! a vertical offset. The offsets with the most votes are checked row by row against the
//! real pixels, and each run of matching rows becomes a [`CopyRect`]. The host applies the
//! same copies to its own model of the picture and sends only what the copies did not
//! explain (the revealed lines), so host and viewer stay in step by construction.

use std::collections::HashMap;

use xxhash_rust::xxh3::xxh3_64;

use crate::wire::session::{CopyRect, Rect, MAX_COPIES};

/// Fewest changed rows worth a search (a scroll of one text line moves more than this).
const MIN_ROWS: u32 = 16;
/// Fewest consecutive matching rows that become a copy.
const MIN_RUN: u32 = 8;
/// Fewest votes an offset needs before it is checked.
const MIN_VOTES: u32 = 4;
/// Offsets checked, best first (two panes scrolling differently).
const OFFSETS: usize = 2;

/// Why a copy from a peer is refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CopyError {
    /// The source or destination lies outside the screen (or is empty).
    #[error("copy {copy:?} does not fit the {width}×{height} screen")]
    OutOfBounds {
        /// The copy.
        copy: CopyRect,
        /// Screen width.
        width: u32,
        /// Screen height.
        height: u32,
    },
    /// More copies than allowed in one update.
    #[error("{0} copies in one update (at most {MAX_COPIES})")]
    TooMany(usize),
}

/// Checks that `c` fits a `width`×`height` screen.
pub fn check(c: &CopyRect, width: u32, height: u32) -> Result<(), CopyError> {
    let fits = |x: u32, y: u32| {
        x.checked_add(c.src.w).is_some_and(|e| e <= width)
            && y.checked_add(c.src.h).is_some_and(|e| e <= height)
    };
    if c.src.w == 0 || c.src.h == 0 || !fits(c.src.x, c.src.y) || !fits(c.dst_x, c.dst_y) {
        return Err(CopyError::OutOfBounds {
            copy: *c,
            width,
            height,
        });
    }
    Ok(())
}

/// Applies one copy to an RGBA picture (checked first; overlapping source and destination
/// are handled).
pub fn apply(rgba: &mut [u8], width: u32, height: u32, c: &CopyRect) -> Result<(), CopyError> {
    check(c, width, height)?;
    let stride = width as usize * 4;
    let len = c.src.w as usize * 4;
    let row = |y: u32, x: u32| y as usize * stride + x as usize * 4;
    // Moving down: copy bottom rows first, so a source row is read before it is written.
    let down = c.dst_y > c.src.y;
    for k in 0..c.src.h {
        let dy = if down { c.src.h - 1 - k } else { k };
        let from = row(c.src.y + dy, c.src.x);
        rgba.copy_within(from..from + len, row(c.dst_y + dy, c.dst_x));
    }
    Ok(())
}

/// The smallest rectangle within `area` holding every pixel that differs between `a` and
/// `b` (RGBA frames `width` wide), or `None` when none does.
pub fn diff_bounds(a: &[u8], b: &[u8], width: u32, area: Rect) -> Option<Rect> {
    let stride = width as usize * 4;
    let (x0, x1) = (area.x as usize * 4, (area.x + area.w) as usize * 4);
    let (mut top, mut bottom, mut left, mut right) = (u32::MAX, 0, usize::MAX, 0);
    for y in area.y..area.y + area.h {
        let at = y as usize * stride;
        let (ra, rb) = (&a[at + x0..at + x1], &b[at + x0..at + x1]);
        if ra == rb {
            continue;
        }
        top = top.min(y);
        bottom = y;
        if let Some(l) = ra.iter().zip(rb).position(|(p, q)| p != q) {
            left = left.min(l / 4);
        }
        if let Some(r) = ra
            .iter()
            .rev()
            .zip(rb.iter().rev())
            .position(|(p, q)| p != q)
        {
            right = right.max((x1 - x0 - 1 - r) / 4);
        }
    }
    (top != u32::MAX).then(|| Rect {
        x: area.x + left as u32,
        y: top,
        w: (right - left + 1) as u32,
        h: bottom - top + 1,
    })
}

/// Finds vertical moves from `prev` to `cur` (RGBA, `width`×`height`) inside `area` (where
/// the screen changed). The copies, applied in order to `prev`, make their destination rows
/// equal to `cur`.
pub fn detect(prev: &[u8], cur: &[u8], width: u32, height: u32, area: Rect) -> Vec<CopyRect> {
    let Some(d) = diff_bounds(prev, cur, width, area) else {
        return Vec::new();
    };
    if d.h < MIN_ROWS {
        return Vec::new();
    }
    let stride = width as usize * 4;
    let (x0, x1) = (d.x as usize * 4, (d.x + d.w) as usize * 4);
    fn row(f: &[u8], y: u32, stride: usize, x0: usize, x1: usize) -> &[u8] {
        let at = y as usize * stride;
        &f[at + x0..at + x1]
    }
    let row = |f, y| row(f, y, stride, x0, x1);
    // Old rows within one changed-height of the change: a scroll moves no further.
    let (s0, s1) = (d.y.saturating_sub(d.h), (d.y + 2 * d.h).min(height));
    let mut old: HashMap<u64, Option<u32>> = HashMap::with_capacity((s1 - s0) as usize);
    for y in s0..s1 {
        old.entry(xxh3_64(row(prev, y)))
            .and_modify(|v| *v = None) // repeated rows (blank lines) vote for nothing
            .or_insert(Some(y));
    }
    let mut votes: HashMap<i64, u32> = HashMap::new();
    for y in d.y..d.y + d.h {
        if let Some(Some(from)) = old.get(&xxh3_64(row(cur, y))) {
            if *from != y {
                *votes.entry(i64::from(*from) - i64::from(y)).or_default() += 1;
            }
        }
    }
    let mut offsets: Vec<(i64, u32)> = votes.into_iter().filter(|v| v.1 >= MIN_VOTES).collect();
    offsets.sort_by_key(|&(dy, n)| (std::cmp::Reverse(n), dy.abs()));
    let mut claimed = vec![false; d.h as usize];
    let mut copies = Vec::new();
    for &(dy, _) in offsets.iter().take(OFFSETS) {
        let same = |claimed: &[bool], y: u32| {
            let from = i64::from(y) + dy;
            (0..i64::from(height)).contains(&from)
                && !claimed[(y - d.y) as usize]
                && row(cur, y) == row(prev, from as u32)
        };
        let mut y = d.y;
        while y < d.y + d.h {
            if !same(&claimed, y) {
                y += 1;
                continue;
            }
            let start = y;
            while y < d.y + d.h && same(&claimed, y) {
                y += 1;
            }
            if y - start >= MIN_RUN {
                claimed[(start - d.y) as usize..(y - d.y) as usize].fill(true);
                copies.push(CopyRect {
                    src: Rect {
                        x: d.x,
                        y: (i64::from(start) + dy) as u32,
                        w: d.w,
                        h: y - start,
                    },
                    dst_x: d.x,
                    dst_y: start,
                });
            }
        }
    }
    order(&mut copies);
    copies.truncate(MAX_COPIES);
    copies
}

/// Orders copies so that, applied one after another to the old frame, none reads rows an
/// earlier one already overwrote: a copy goes before any other copy that writes over its
/// source. Copies that move up go top first, copies that move down bottom first; with two
/// offsets the up-movers go first.
fn order(copies: &mut [CopyRect]) {
    copies.sort_by_key(|c| {
        let up = c.src.y > c.dst_y;
        (
            !up,
            if up {
                i64::from(c.dst_y)
            } else {
                -i64::from(c.dst_y)
            },
        )
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A "terminal": line `i` of text at row band `i` (8 px per line), `first` the top line.
    fn terminal(w: u32, h: u32, first: u32) -> Vec<u8> {
        let mut v = vec![255u8; (w * h * 4) as usize];
        for y in 0..h {
            let line = first + y / 8;
            for x in 0..w {
                // Glyph-like pattern that differs per line and per row within the line.
                if (x * 7 + line * 13 + (y % 8) * 3) % 11 < 3 && y % 8 != 7 {
                    let i = ((y * w + x) * 4) as usize;
                    v[i..i + 3].copy_from_slice(&[0, 0, (line % 200) as u8]);
                }
            }
        }
        v
    }

    #[test]
    fn a_scrolled_terminal_becomes_one_copy_and_the_new_lines() {
        let (w, h) = (320u32, 240u32);
        let prev = terminal(w, h, 0);
        let cur = terminal(w, h, 3); // scrolled by three lines (24 px)
        let all = Rect { x: 0, y: 0, w, h };
        let copies = detect(&prev, &cur, w, h, all);
        assert_eq!(copies.len(), 1, "{copies:?}");
        let c = copies[0];
        assert_eq!((c.src.y, c.dst_y, c.src.h), (24, 0, h - 24));
        let mut model = prev.clone();
        for c in &copies {
            apply(&mut model, w, h, c).unwrap();
        }
        // Only the three revealed lines differ after the copy.
        let left = diff_bounds(&model, &cur, w, all).unwrap();
        // (a line's last row is blank, so the very last row may already match)
        assert!(left.y >= h - 24 && left.y + left.h >= h - 1, "{left:?}");
    }

    #[test]
    fn scrolling_down_and_a_still_frame() {
        let (w, h) = (200u32, 160u32);
        let prev = terminal(w, h, 10);
        let cur = terminal(w, h, 8);
        let all = Rect { x: 0, y: 0, w, h };
        let copies = detect(&prev, &cur, w, h, all);
        let mut model = prev.clone();
        for c in &copies {
            apply(&mut model, w, h, c).unwrap();
        }
        let left = diff_bounds(&model, &cur, w, all).unwrap();
        assert!(left.y == 0 && left.h <= 16, "{left:?}");
        assert!(detect(&prev, &prev, w, h, all).is_empty());
    }

    #[test]
    fn overlapping_copies_in_both_directions() {
        let (w, h) = (4u32, 6u32);
        let px = |v: u8| [v, v, v, 255];
        let frame: Vec<u8> = (0..h)
            .flat_map(|y| (0..w).flat_map(move |_| px(y as u8)))
            .collect();
        // Rows 4 high moved from `from` to `to`: each row's first byte after the copy.
        let moved = |from: u32, to: u32| -> Vec<u8> {
            let mut f = frame.clone();
            let c = CopyRect {
                src: Rect {
                    x: 0,
                    y: from,
                    w,
                    h: 4,
                },
                dst_x: 0,
                dst_y: to,
            };
            apply(&mut f, w, h, &c).unwrap();
            f.chunks_exact((w * 4) as usize).map(|r| r[0]).collect()
        };
        assert_eq!(moved(0, 2), [0, 1, 0, 1, 2, 3]);
        assert_eq!(moved(2, 0), [2, 3, 4, 5, 4, 5]);
    }

    #[test]
    fn copies_outside_the_screen_are_refused() {
        let mut f = vec![0u8; 16 * 16 * 4];
        let ok = CopyRect {
            src: Rect {
                x: 0,
                y: 0,
                w: 16,
                h: 8,
            },
            dst_x: 0,
            dst_y: 8,
        };
        assert!(apply(&mut f, 16, 16, &ok).is_ok());
        for bad in [
            CopyRect { dst_y: 9, ..ok },
            CopyRect {
                dst_x: u32::MAX,
                ..ok
            },
            CopyRect {
                src: Rect { x: 1, ..ok.src },
                ..ok
            },
            CopyRect {
                src: Rect { h: 0, ..ok.src },
                ..ok
            },
            CopyRect {
                src: Rect {
                    y: u32::MAX,
                    ..ok.src
                },
                ..ok
            },
        ] {
            assert!(matches!(
                apply(&mut f, 16, 16, &bad),
                Err(CopyError::OutOfBounds { .. })
            ));
        }
    }
}
